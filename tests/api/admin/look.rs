//! The Look page (issue 27 item 5): the look of the mails without HTML. In a real browser an
//! admin uploads a logo, is refused a colour too light for white text, sets a colour, a footer
//! and a social link, and the next update's mail carries them in its text and HTML parts; the
//! logo is served by its content hash; bad input is refused naming the field; an update
//! released before a change goes out with the look it was released with.

use std::time::Duration;

use fantoccini::Locator;
use newsletter::domain::{LookInput, StaffRole};
use newsletter::ops::Actor;
use reqwest::header::{CONTENT_TYPE, COOKIE, ORIGIN};
use sha2::{Digest, Sha256};

use super::browser::{click, fill, sign_in, wait_for_contains};
use super::{add_staff, signed_in, spawn_staff_app, Browser};
use crate::browser::Driver;
use crate::helpers::spawn_app_without_worker;

/// A 96 × 32 PNG.
pub const LOGO: &[u8] = include_bytes!("../../fixtures/logo.png");
const BOUNDARY: &str = "----newsletter-logo-boundary";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Sends the logo form as a browser does: the session's CSRF token (or `csrf`), the file.
pub async fn upload_logo(
    browser: &mut Browser<'_>,
    csrf: Option<&str>,
    (file_name, content_type): (&str, &str),
    file: &[u8],
) -> reqwest::Response {
    let csrf = match csrf {
        Some(given) => given.to_owned(),
        None => browser.csrf().await,
    };
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n{csrf}\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"logo\"; filename=\"{file_name}\"\r\n\
         Content-Type: {content_type}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let app = browser.app;
    app.http
        .post(app.url("/admin/look/logo"))
        .header(COOKIE, browser.cookies.join("; "))
        .header(ORIGIN, app.settings.server.base_url.as_str())
        .header(
            CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .await
        .unwrap()
}

/// The text and HTML parts of a mail as received.
pub(super) fn parts(raw: &[u8]) -> (String, String) {
    let message = mail_parser::MessageParser::default().parse(raw).unwrap();
    (
        message.body_text(0).unwrap().into_owned(),
        message.body_html(0).unwrap().into_owned(),
    )
}

#[tokio::test]
async fn an_admin_changes_the_look_in_a_real_browser_and_the_next_update_carries_it() {
    let app = spawn_staff_app(&[]).await;
    app.seed_confirmed(1, "example.org").await;
    add_staff(&app, "ana@example.org", StaffRole::Admin).await;
    let dir = std::env::temp_dir().join(format!("newsletter-look-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("our logo.png");
    std::fs::write(&file, LOGO).unwrap();
    let driver = Driver::start();
    let browser = driver.connect().await;
    sign_in(&browser, &app, "ana@example.org").await;

    browser
        .find(Locator::LinkText("Look"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_contains(&browser, "h1", "Look of the mails").await;
    browser
        .find(Locator::Css("#logo"))
        .await
        .unwrap()
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
    click(&browser, "#upload-logo").await;
    wait_for_contains(&browser, "#look-version", "version 1").await;
    let shown = browser
        .find(Locator::Css("#logo-now"))
        .await
        .unwrap()
        .attr("src")
        .await
        .unwrap()
        .unwrap();
    let logo_path = format!("/brand/logo-{}.png", hex(&Sha256::digest(LOGO)));
    assert!(shown.ends_with(&logo_path), "{shown}");

    // Too light for white text: refused with the ratio, nothing saved.
    fill(&browser, "#colour", "#ffcc00").await;
    click(&browser, "#save-look").await;
    let error = wait_for_contains(&browser, "#colour-error", "1.51:1").await;
    assert!(error.contains("4.5:1"), "{error}");

    fill(&browser, "#colour", "#0b5d1e").await;
    fill(
        &browser,
        "#footer",
        "Made by **the Coalition**. [Donate](https://donate.example/now)",
    )
    .await;
    fill(&browser, "#social_label_1", "Mastodon").await;
    fill(
        &browser,
        "#social_url_1",
        "https://social.example/@coalition",
    )
    .await;
    click(&browser, "#save-look").await;
    wait_for_contains(&browser, "#look-version", "version 2").await;
    browser.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);

    let token = app.api_token().await;
    let id = app.create_update(&token, "Our week").await;
    app.send_now(&token, &id).await;
    let mails = app.smtp.wait_for(1, Duration::from_secs(30)).await;
    let (text, html) = parts(&mails[0].data);
    assert!(
        text.contains("Made by the Coalition. Donate <https://donate.example/now>")
            && text.contains("Mastodon: https://social.example/@coalition"),
        "{text}"
    );
    let logo_url = app.url(&logo_path);
    for wanted in [
        "Made by <strong>the Coalition</strong>.",
        r#"<a style="color: #0b5d1e;" href="https://donate.example/now">Donate</a>"#,
        r#"href="https://social.example/@coalition""#,
        &format!(r#"<img src="{logo_url}""#),
        "border-top: 6px solid #0b5d1e",
    ] {
        assert!(html.contains(wanted), "{wanted} not in {html}");
    }
    // The required parts stay whatever the footer says.
    assert!(html.contains("/unsubscribe/") && text.contains("/manage/"));

    // The mail's logo URL answers with the image, for good.
    let logo = app.http.get(&logo_url).send().await.unwrap();
    assert_eq!(logo.status(), 200);
    assert_eq!(logo.headers()[CONTENT_TYPE], "image/png");
    assert_eq!(
        logo.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(logo.headers()["x-content-type-options"], "nosniff");
    assert_eq!(&logo.bytes().await.unwrap()[..], LOGO);
    let audited: Vec<serde_json::Value> =
        sqlx::query_scalar("SELECT detail FROM audit_log WHERE action = 'look' ORDER BY id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(audited.len(), 2, "one entry per save: {audited:?}");
    let changed = &audited[1]["changes"];
    assert_eq!(changed["colour"]["to"], "#0b5d1e", "{changed}");
    assert!(changed.get("logo").is_none(), "{changed}");
}

#[tokio::test]
async fn the_logo_is_served_by_its_content_hash_and_an_unknown_name_is_not_found() {
    let app = spawn_staff_app(&[]).await;
    let mut admin = signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    let answer = upload_logo(&mut admin, None, ("logo.png", "image/png"), LOGO).await;
    assert_eq!(answer.status(), 303);
    let hash = hex(&Sha256::digest(LOGO));
    assert_eq!(
        app.get(&format!("/brand/logo-{hash}.png")).await.status(),
        200
    );
    for missing in [
        format!("/brand/logo-{hash}.gif"),
        format!("/brand/logo-{}.png", "0".repeat(64)),
        format!("/brand/logo-{}.png", &hash[..16]),
        "/brand/logo-x.png".to_owned(),
        format!("/brand/{hash}.png"),
    ] {
        assert_eq!(app.get(&missing).await.status(), 404, "{missing}");
    }

    // Removing it: the mails carry none, the file stays for the mails already sent.
    let removed = admin.post("/admin/look/logo/remove", &[]).await;
    assert_eq!(removed.status(), 303);
    let page = admin.get("/admin/look").await.text().await.unwrap();
    assert!(page.contains("No logo"), "{page}");
    assert_eq!(
        app.get(&format!("/brand/logo-{hash}.png")).await.status(),
        200
    );
}

#[tokio::test]
async fn what_cannot_be_a_logo_is_refused_naming_why_and_nothing_changes() {
    let app = spawn_staff_app(&[]).await;
    let mut admin = signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#;
    let cases = [
        (
            "an SVG",
            ("logo.svg", "image/svg+xml"),
            svg.to_vec(),
            422,
            "an SVG can carry script",
        ),
        (
            "an SVG named .png",
            ("logo.png", "image/png"),
            svg.to_vec(),
            422,
            "SVG",
        ),
        (
            "a text named .png",
            ("logo.png", "image/png"),
            b"hello".to_vec(),
            422,
            "not a PNG, JPEG, GIF or WebP",
        ),
        (
            "too large",
            ("logo.png", "image/png"),
            [LOGO, &vec![0; 600 * 1024]].concat(),
            422,
            "at most 512 KiB",
        ),
        (
            "far too large",
            ("logo.png", "image/png"),
            vec![0; 3 << 20],
            413,
            "larger than 512 KiB",
        ),
    ];
    for (what, name, file, status, words) in cases {
        let answer = upload_logo(&mut admin, None, name, &file).await;
        assert_eq!(answer.status(), status, "{what}");
        let page = answer.text().await.unwrap();
        assert!(page.contains(words), "{what}: {page}");
    }
    let forged = upload_logo(&mut admin, Some("nope"), ("logo.png", "image/png"), LOGO).await;
    assert_eq!(forged.status(), 403);
    let saved: i64 = sqlx::query_scalar("SELECT count(*) FROM look_versions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(saved, 0);
}

#[tokio::test]
async fn the_look_form_refuses_bad_input_naming_the_field() {
    let app = spawn_staff_app(&[]).await;
    let mut admin = signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    let long = "x".repeat(2001);
    let cases = [
        (vec![("colour", "#ffcc00")], "colour-error", "1.51:1"),
        (vec![("colour", "red")], "colour-error", "#rrggbb"),
        (
            vec![("colour", "#000000"), ("footer", "bad \u{fffe} character")],
            "footer-error",
            "U+FFFE",
        ),
        (
            vec![
                ("colour", "#000000"),
                ("social_label_1", "Web"),
                ("social_url_1", "javascript:alert(1)"),
            ],
            "social_url_1-error",
            "https://",
        ),
        (
            vec![("colour", "#000000"), ("social_url_2", "https://x.example")],
            "social_label_2-error",
            "needs a label",
        ),
        (
            vec![("colour", "#000000"), ("footer", long.as_str())],
            "footer-error",
            "2000",
        ),
    ];
    for (fields, id, words) in cases {
        let answer = admin.post("/admin/look", &fields).await;
        assert_eq!(answer.status(), 422, "{fields:?}");
        let page = answer.text().await.unwrap();
        let at = page
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("no {id} for {fields:?}: {page}"));
        assert!(
            page[at..].split("</p>").next().unwrap().contains(words),
            "{id}: {page}"
        );
    }
    let nul = admin
        .post("/admin/look", &[("colour", "#000000"), ("footer", "a\0b")])
        .await;
    assert_eq!(nul.status(), 422);
    assert!(nul.text().await.unwrap().contains("footer"));
    let saved: i64 = sqlx::query_scalar("SELECT count(*) FROM look_versions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(saved, 0);
}

/// What was seen is what is sent: the look is fixed with the templates when an update is
/// released (`templates_as_of`), so a change after that reaches the next update, not this one.
#[tokio::test]
async fn an_update_released_before_a_look_change_goes_out_with_the_look_it_was_released_with() {
    let app = spawn_app_without_worker(&[]).await;
    app.seed_confirmed(1, "example.org").await;
    let look = |footer: &str| LookInput {
        colour: "#000000".into(),
        footer: footer.into(),
        social: Vec::new(),
    };
    newsletter::ops::look::save(&app.pool, &Actor::CommandLine, &look("Footer as released"))
        .await
        .unwrap();
    let token = app.api_token().await;
    let id = app.create_update(&token, "Released").await;
    app.send_now(&token, &id).await;
    newsletter::ops::look::save(&app.pool, &Actor::CommandLine, &look("Footer saved later"))
        .await
        .unwrap();

    app.start_worker(&[]);
    let mails = app.smtp.wait_for(1, Duration::from_secs(30)).await;
    let (text, html) = parts(&mails[0].data);
    assert!(text.contains("Footer as released"), "{text}");
    assert!(!html.contains("Footer saved later"), "{html}");

    let next = app.create_and_send(&token, "Next").await;
    app.wait_for_update_status(&next, "sent").await;
    let mails = app.smtp.wait_for(2, Duration::from_secs(30)).await;
    let (text, _) = parts(&mails[1].data);
    assert!(text.contains("Footer saved later"), "{text}");
}

#[tokio::test]
async fn an_editor_sees_the_look_and_cannot_change_it() {
    let app = spawn_staff_app(&[]).await;
    let mut editor = signed_in(&app, "ed@example.org", StaffRole::Editor).await;
    let page = editor.get("/admin/look").await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("Only an admin may change the look") && !page.contains("save-look"));
    assert_eq!(
        editor
            .post("/admin/look", &[("colour", "#000000")])
            .await
            .status(),
        403
    );
    assert_eq!(
        upload_logo(&mut editor, None, ("logo.png", "image/png"), LOGO)
            .await
            .status(),
        403
    );
    assert_eq!(
        editor.post("/admin/look/logo/remove", &[]).await.status(),
        403
    );
}
