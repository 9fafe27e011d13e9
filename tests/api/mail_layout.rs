//! Every mail laid out on a phone: headless Chromium emulating a 375 px screen opens each HTML
//! part (an update with a 1200 px image and a long link, a confirmation, a welcome) and finds
//! no horizontal scrolling, no text under 14 px and no tap target under 24 px.

use std::time::Duration;

use fantoccini::Locator;
use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::browser::Driver;
use crate::helpers::{confirmation_link, spawn_app};

const WAIT: Duration = Duration::from_secs(10);

/// Serves a 1200 × 300 image (SVG) to every request; returns its URL.
async fn wide_image() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let svg = r##"<svg xmlns="http://www.w3.org/2000/svg" width="1200" height="300"><rect width="1200" height="300" fill="#14406b"/></svg>"##;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: image/svg+xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{svg}",
                    svg.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    format!("http://127.0.0.1:{port}/wide.svg")
}

/// What the page measures: its width against the screen's, text under 14 px, tap targets
/// under 24 px high (links in the staff-written intro are inline in sentences, which WCAG 2.5.8
/// exempts).
const MEASURE: &str = r#"
const small = [], taps = [];
for (const el of document.body.querySelectorAll('*')) {
  const style = getComputedStyle(el);
  if (style.display === 'none' || el.closest('[style*="display: none"]')) continue;
  const ownText = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
  if (ownText && parseFloat(style.fontSize) < 14) small.push(el.textContent.trim().slice(0, 40));
  if (el.tagName === 'A' && !el.closest('.intro') && el.getBoundingClientRect().height < 24)
    taps.push(el.textContent.trim());
}
const img = document.querySelector('img');
return {scroll: document.documentElement.scrollWidth, inner: window.innerWidth,
        image: img ? img.getBoundingClientRect().width : null, imageLoaded: img ? img.naturalWidth : null,
        small, taps};
"#;

#[tokio::test]
async fn every_mail_fits_a_375_px_phone_screen_without_horizontal_scrolling() {
    let app = spawn_app().await;
    sqlx::query("UPDATE lists SET welcome = true WHERE slug = 'us-icc-updates'")
        .execute(&app.pool)
        .await
        .unwrap();
    let token = app.api_token().await;
    app.seed_confirmed(1, "example.com").await;
    let image = wide_image().await;
    let created = app
        .api(
            Method::POST,
            "/api/v1/updates",
            &token,
            Some(json!({
                "subject": "A week of hearings", "preheader": "Three things", "lists": ["us-icc-updates"],
                "intro": format!("Dear reader, see ![A chart of the vote]({image}) and \
                    https://example.org/a/very/long/address/that/goes/on/and/on/without/any/break/at/all/1234567890"),
                "news_items": [{"title": "Senate hearing on the ICC", "summary": "The committee heard testimony.",
                    "source": "Reuters", "url": "https://example.org/senate", "published_on": "2026-11-20", "topic": "congress"}]
            })),
        )
        .await;
    assert_eq!(created.status(), 201);
    let id = created.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.send_now(&token, &id).await;
    app.smtp.wait_for(1, WAIT).await;
    let long = "areaderwithaverylongaddressthatgoesonandonfortyseven@example.com";
    assert_eq!(
        app.post_form("/subscriptions", &format!("email={long}"))
            .await
            .status(),
        303
    );
    let mails = app.smtp.wait_for(2, WAIT).await;
    let link = confirmation_link(&mails[1].data);
    let token = link.split("token=").nth(1).unwrap();
    app.post_form("/subscriptions/confirm", &format!("token={token}"))
        .await;
    let mails = app.smtp.wait_for(3, WAIT).await;

    let driver = Driver::start();
    let browser = driver.connect_phone().await;
    for (mail, kind) in mails.iter().zip(["update", "confirmation", "welcome"]) {
        let parsed = mail_parser::MessageParser::default()
            .parse(&mail.data)
            .unwrap();
        let html = parsed.body_html(0).unwrap();
        let file = std::env::temp_dir().join(format!("mail-{}.html", uuid::Uuid::new_v4()));
        std::fs::write(&file, html.as_bytes()).unwrap();
        browser
            .goto(&format!("file://{}", file.display()))
            .await
            .unwrap();
        let m = browser.execute(MEASURE, vec![]).await.unwrap();
        let _ = std::fs::remove_file(&file);
        assert_eq!(m["inner"], 375, "{kind}: emulates a 375 px screen: {m}");
        assert!(
            m["scroll"].as_f64().unwrap() <= m["inner"].as_f64().unwrap(),
            "{kind} scrolls sideways on a phone: {m}"
        );
        assert_eq!(m["small"], json!([]), "{kind}: text under 14 px: {m}");
        assert_eq!(m["taps"], json!([]), "{kind}: tap targets under 24 px: {m}");
        if kind == "update" {
            assert_eq!(m["imageLoaded"], 1200, "the wide image loaded: {m}");
            assert!(m["image"].as_f64().unwrap() <= 375.0, "{m}");
        }
    }

    // The welcome's preferences page, for that 64-character address, on the same phone.
    assert!(long.len() >= 64);
    let manage = crate::self_service::link_path(&app, &mails[2].data, "/manage/");
    browser.goto(&app.url(&manage)).await.unwrap();
    let m = browser.execute(MEASURE, vec![]).await.unwrap();
    // A page too wide for its viewport widens the layout viewport on a phone (zooming out), so
    // its width must stay that of the screen, too.
    assert_eq!(
        m["inner"], 375,
        "the preferences page is wider than the phone: {m}"
    );
    assert!(
        m["scroll"].as_f64().unwrap() <= m["inner"].as_f64().unwrap(),
        "the preferences page scrolls sideways on a phone: {m}"
    );
    let name = browser.find(Locator::Css("#name")).await.unwrap();
    assert_eq!(
        name.attr("autocomplete").await.unwrap().as_deref(),
        Some("name")
    );
    browser
        .find(Locator::Css("#erase"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css("#erase-confirmed"))
        .await
        .unwrap();
    browser
        .find(Locator::Css("a#keep"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css("#save"))
        .await
        .expect("the delete step leads back to the preferences");
    browser.close().await.unwrap();
}
