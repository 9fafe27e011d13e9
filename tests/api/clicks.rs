//! Aggregate link counts (issue 29, item 1): each link in a sent update's body goes out as
//! `/l/{code}`, the same for every recipient; a click is counted per link and day and
//! redirected to the link as written; nothing about the person is recorded; any other code
//! is 404 and redirects nowhere; our own pages' links are never rewritten; test mails are not.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::admin::spawn_staff_app;
use crate::helpers::{snapshot, TestApp};

const WAIT: Duration = Duration::from_secs(20);

/// The parts of a received mail: (HTML, text).
fn parts(raw: &[u8]) -> (String, String) {
    let message = mail_parser::MessageParser::default().parse(raw).unwrap();
    (
        message.body_html(0).unwrap().into_owned(),
        message.body_text(0).unwrap().into_owned(),
    )
}

/// Every `<base>/l/<code>` address in `text`.
fn redirects(app: &TestApp, text: &str) -> BTreeSet<String> {
    let prefix = app.settings.server.base_url.join("/l/");
    text.match_indices(&prefix)
        .map(|(at, _)| {
            let code: String = text[at + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            format!("{prefix}{code}")
        })
        .collect()
}

/// An update whose intro links to two pages (one as an autolink) and to our own archive, with
/// two news items, created and sent to the default list.
async fn send_with_links(app: &TestApp) -> String {
    let token = app.api_token().await;
    let archive = app.settings.server.base_url.join("/archive");
    let body = json!({
        "subject": "Links", "lists": ["us-icc-updates"],
        "intro": format!("Read [the statement](https://example.org/statement) and \
                          <https://example.org/auto>, or [our archive]({archive})."),
        "news_items": [
            {"title": "Senate hearing", "url": "https://example.org/senate"},
            {"title": "The Assembly opens", "url": "https://example.org/asp"}
        ]
    });
    let id = app.create_update_from(&token, body).await;
    app.send_now(&token, &id).await;
    id
}

/// Follows `url` without redirects: (status, Location).
async fn click(app: &TestApp, url: &str) -> (u16, Option<String>) {
    let r = app.http.get(url).send().await.unwrap();
    let location = r
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned());
    (r.status().as_u16(), location)
}

async fn clicks_by_url(app: &TestApp, update: &str) -> BTreeMap<String, i64> {
    newsletter::store::links::clicks(&app.pool, update.parse().unwrap())
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.url, l.clicks))
        .collect()
}

const ORIGINALS: [&str; 4] = [
    "https://example.org/statement",
    "https://example.org/auto",
    "https://example.org/senate",
    "https://example.org/asp",
];

#[tokio::test]
async fn a_sent_updates_links_go_through_l_the_same_for_all_and_land_on_the_original() {
    let app = spawn_staff_app(&[]).await;
    app.seed_confirmed(3, "example.org").await;
    let update = send_with_links(&app).await;
    let mails = app.smtp.wait_for(3, WAIT).await;

    let mut seen: Option<BTreeSet<String>> = None;
    for mail in &mails {
        let (html, text) = parts(&mail.data);
        let in_html = redirects(&app, &html);
        assert_eq!(in_html.len(), 4, "four links rewritten: {html}");
        assert_eq!(
            redirects(&app, &text),
            in_html,
            "the text part's too: {text}"
        );
        for original in ORIGINALS {
            assert!(
                !html.contains(&format!("href=\"{original}\"")),
                "{original} is not linked directly: {html}"
            );
        }
        // The autolink still shows its address to the reader.
        assert!(html.contains(">https://example.org/auto</a>"), "{html}");
        // Our own pages keep their addresses.
        let base = app.settings.server.base_url.as_str();
        assert!(html.contains(&format!("href=\"{base}/archive\"")), "{html}");
        assert!(html.contains(&format!("{base}/unsubscribe/")));
        assert!(html.contains(&format!("{base}/manage/")));
        assert!(text.contains(&format!("{base}/unsubscribe/")));
        match &seen {
            None => seen = Some(in_html),
            Some(first) => assert_eq!(first, &in_html, "the same codes for every recipient"),
        }
    }

    // Each lands where the update pointed.
    let mut landed = BTreeMap::new();
    for url in seen.unwrap() {
        let (status, location) = click(&app, &url).await;
        assert_eq!(status, 302);
        landed.insert(location.unwrap(), url);
    }
    assert_eq!(
        landed.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        ORIGINALS.into_iter().collect()
    );

    // The counts add up; a HEAD (a link checker's) is not a click.
    let statement = &landed["https://example.org/statement"];
    for _ in 0..4 {
        assert_eq!(click(&app, statement).await.0, 302);
    }
    assert_eq!(
        click(&app, &landed["https://example.org/senate"]).await.0,
        302
    );
    let head = app.http.head(statement).send().await.unwrap();
    assert_eq!(head.status(), 302);
    let counts = clicks_by_url(&app, &update).await;
    assert_eq!(
        counts,
        BTreeMap::from([
            ("https://example.org/statement".to_owned(), 5),
            ("https://example.org/auto".to_owned(), 1),
            ("https://example.org/senate".to_owned(), 2),
            ("https://example.org/asp".to_owned(), 1),
        ])
    );
}

#[tokio::test]
async fn a_click_writes_one_count_and_nothing_that_names_a_person() {
    let app = spawn_staff_app(&[]).await;
    app.seed_confirmed(2, "example.org").await;
    send_with_links(&app).await;
    let mails = app.smtp.wait_for(2, WAIT).await;
    app.wait_for_queue_to_drain().await;
    let url = redirects(&app, &parts(&mails[0].data).0)
        .into_iter()
        .next()
        .unwrap();

    let before = snapshot(&app.pool).await;
    let r = app
        .http
        .get(&url)
        .header("user-agent", "Reader's phone")
        .header("x-forwarded-for", "198.51.100.7")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let after = snapshot(&app.pool).await;
    let changed: Vec<&String> = after
        .iter()
        .filter(|(table, (_, rows))| before.get(*table).map(|(_, b)| b) != Some(rows))
        // the worker's heartbeat (its id and times) moves on by itself
        .filter(|(table, _)| table.as_str() != "workers")
        .map(|(table, _)| table)
        .collect();
    assert_eq!(changed, ["link_clicks"], "only the count is written");
    let (columns, rows) = &after["link_clicks"];
    assert_eq!(
        columns,
        &["clicks", "code", "day"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["clicks"], 1);
}

#[tokio::test]
async fn any_other_code_is_404_and_redirects_nowhere() {
    let app = spawn_staff_app(&[]).await;
    app.seed_confirmed(1, "example.org").await;
    send_with_links(&app).await;
    let mails = app.smtp.wait_for(1, WAIT).await;
    let real = redirects(&app, &parts(&mails[0].data).0)
        .into_iter()
        .next()
        .unwrap();
    let code = real.rsplit('/').next().unwrap().to_owned();
    let mut tampered = code.clone().into_bytes();
    tampered[15] = if tampered[15] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let base = app.settings.server.base_url.join("/l/");
    for other in [
        tampered.clone(),
        code.to_uppercase(),
        format!("{code}A"),
        code[..15].to_owned(),
        "AAAAAAAAAAAAAAAA".to_owned(),
        "..%2F..%2Fadmin".to_owned(),
        "https%3A%2F%2Fevil.example".to_owned(),
        format!("{code}%00"),
        "%F0%9F%98%80".repeat(4),
    ] {
        if other == code {
            continue;
        }
        let (status, location) = click(&app, &format!("{base}{other}")).await;
        assert_eq!(status, 404, "/l/{other}");
        assert_eq!(location, None, "/l/{other} redirects nowhere");
    }
    let (status, _) = click(&app, &format!("{base}?url=https://evil.example")).await;
    assert_eq!(status, 404);
    let counted: i64 = sqlx::query_scalar("SELECT count(*) FROM link_clicks")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(counted, 0, "nothing counted");
}

#[tokio::test]
async fn with_count_clicks_off_and_in_test_mails_links_go_out_as_written() {
    let app = spawn_staff_app(&[("engagement.count_clicks", false.into())]).await;
    app.seed_confirmed(1, "example.org").await;
    send_with_links(&app).await;
    let mails = app.smtp.wait_for(1, WAIT).await;
    let (html, _) = parts(&mails[0].data);
    assert!(redirects(&app, &html).is_empty(), "{html}");
    assert!(html.contains("href=\"https://example.org/statement\""));

    // On: a test mail of a draft is not rewritten (nothing is counted before it goes out).
    let app = spawn_staff_app(&[]).await;
    let token = app.api_token().await;
    let id = app.create_update(&token, "Draft").await;
    let r = app
        .api(
            Method::POST,
            &format!("/api/v1/updates/{id}/test"),
            &token,
            Some(json!({"to": "staff@example.org"})),
        )
        .await;
    assert_eq!(r.status(), 202);
    let mails = app.smtp.wait_for(1, WAIT).await;
    let (html, _) = parts(&mails[0].data);
    assert!(redirects(&app, &html).is_empty(), "{html}");
    assert!(html.contains("href=\"https://example.org/senate\""));
    let links: i64 = sqlx::query_scalar("SELECT count(*) FROM update_links")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(links, 0);
}

#[tokio::test]
async fn an_update_with_a_link_too_long_to_count_goes_out_and_redirects_are_valid_uris() {
    let app = spawn_staff_app(&[]).await;
    app.seed_confirmed(1, "example.org").await;
    let token = app.api_token().await;
    let long = format!("https://example.org/{}", "x".repeat(5000));
    let body = json!({
        "subject": "Odd links", "lists": ["us-icc-updates"],
        "intro": format!("[long]({long}) and [idn](<https://bücher.example/straße?q=ü a>)"),
    });
    let id = app.create_update_from(&token, body).await;
    app.send_now(&token, &id).await;
    // It goes out (a link longer than a link code may stand for once held the update back).
    let mails = app.smtp.wait_for(1, WAIT).await;
    let (html, _) = parts(&mails[0].data);
    assert!(
        !html.contains(&long),
        "a link over 2,048 characters is never a target"
    );
    let counted = redirects(&app, &html);
    assert_eq!(counted.len(), 1, "{html}");
    let (status, location) = click(&app, counted.iter().next().unwrap()).await;
    assert_eq!(status, 302);
    assert_eq!(
        location.as_deref(),
        Some("https://xn--bcher-kva.example/stra%C3%9Fe?q=%C3%BC%20a")
    );
}
