//! Feeds: the worker polls RSS 2.0 and Atom feeds served by a local HTTP server, puts each entry
//! on the news desk once, records the errors of broken feeds without holding up the others,
//! answers a 304 with nothing new, and refuses internal addresses unless allowed. Relative links
//! become absolute, a deleted item stays deleted, a failing feed backs off, and characters XML
//! forbids are cleaned out of what a feed brings.

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use newsletter::domain::StaffRole;
use reqwest::Method;
use serde_json::{json, Value};

use crate::admin::{signed_in, spawn_staff_app};
use crate::feed_server::FeedServer;
use crate::helpers::{spawn_app, spawn_app_with, TestApp};

async fn add_feed(app: &TestApp, token: &str, body: Value) -> Value {
    let response = app
        .api(Method::POST, "/api/v1/feeds", token, Some(body))
        .await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

/// Waits until every feed was polled after `since`; returns the feeds by URL.
pub(crate) async fn wait_polled(app: &TestApp, token: &str, since: DateTime<Utc>) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let feeds: Value = app
            .api(Method::GET, "/api/v1/feeds", token, None)
            .await
            .json()
            .await
            .unwrap();
        let feeds = feeds["feeds"].as_array().unwrap().clone();
        let polled = |f: &Value| {
            f["last_polled_at"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| t > since)
        };
        if feeds.iter().all(polled) {
            return feeds;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "feeds not polled: {feeds:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn poll_again(app: &TestApp) -> DateTime<Utc> {
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    // The time to poll again comes (feeds.poll_minutes is 30).
    sqlx::query("UPDATE feeds SET next_poll_at = now()")
        .execute(&app.pool)
        .await
        .unwrap();
    now
}

async fn news(app: &TestApp, token: &str) -> Vec<Value> {
    let body: Value = app
        .api(Method::GET, "/api/v1/news", token, None)
        .await
        .json()
        .await
        .unwrap();
    body["news"].as_array().unwrap().clone()
}

fn error_of<'a>(feeds: &'a [Value], url: &str) -> Option<&'a str> {
    feeds
        .iter()
        .find(|f| f["url"] == url)
        .unwrap_or_else(|| panic!("no feed {url}"))["last_error"]
        .as_str()
}

#[tokio::test]
async fn feeds_give_news_items_once_each_and_broken_feeds_record_their_error_alone() {
    let server = FeedServer::start().await;
    let app = spawn_app_with(&[
        ("feeds.timeout_seconds", 2.into()),
        ("feeds.max_bytes", 20_000.into()),
    ])
    .await;
    let token = app.api_token().await;
    let start = poll_again(&app).await;
    add_feed(
        &app,
        &token,
        json!({"url": server.url("/rss.xml"), "topic": "court"}),
    )
    .await;
    add_feed(
        &app,
        &token,
        json!({"url": server.url("/atom.xml"), "topic": "alliances", "approve": true}),
    )
    .await;
    for path in [
        "/broken.xml",
        "/stall.xml",
        "/big.xml",
        "/page.html",
        "/missing.xml",
    ] {
        add_feed(&app, &token, json!({"url": server.url(path)})).await;
    }

    let feeds = wait_polled(&app, &token, start).await;

    assert_eq!(error_of(&feeds, &server.url("/rss.xml")), None);
    assert_eq!(error_of(&feeds, &server.url("/atom.xml")), None);
    let broken = error_of(&feeds, &server.url("/broken.xml")).unwrap();
    assert!(broken.contains("not a valid RSS or Atom feed"), "{broken}");
    let stalled = error_of(&feeds, &server.url("/stall.xml")).unwrap();
    assert!(
        stalled.contains("timed out") || stalled.contains("within 2 s"),
        "{stalled}"
    );
    let big = error_of(&feeds, &server.url("/big.xml")).unwrap();
    assert!(big.contains("larger than 20000 bytes"), "{big}");
    let page = error_of(&feeds, &server.url("/page.html")).unwrap();
    assert!(page.contains("content type is text/html"), "{page}");
    let missing = error_of(&feeds, &server.url("/missing.xml")).unwrap();
    assert!(missing.contains("404"), "{missing}");
    for f in &feeds {
        if f["last_error"].is_string() {
            assert!(f["last_error_at"].is_string(), "{f}");
        }
    }

    let items = news(&app, &token).await;
    let mut titles: Vec<(&str, &str, &str)> = items
        .iter()
        .map(|n| {
            (
                n["title"].as_str().unwrap(),
                n["status"].as_str().unwrap(),
                n["topic"].as_str().unwrap(),
            )
        })
        .collect();
    titles.sort();
    assert_eq!(
        titles,
        [
            ("Hearing scheduled", "awaiting_review", "court"),
            ("Judges elected", "awaiting_review", "court"),
            ("Letter to Congress", "approved", "alliances"),
            ("Town hall in Ohio", "approved", "alliances"),
        ],
        "one item per GUID (else link), the RSS feed's awaiting review, the trusted Atom feed's approved"
    );
    let judges = items
        .iter()
        .find(|n| n["title"] == "Judges elected")
        .unwrap();
    assert_eq!(judges["summary"], "Six judges were elected.");
    assert_eq!(judges["source"], "Court press releases");
    assert_eq!(judges["url"], "https://court.example/pr/1");
    assert_eq!(judges["published_on"], "2026-11-23");
    assert_eq!(
        judges["feed_id"],
        feeds
            .iter()
            .find(|f| f["url"] == server.url("/rss.xml"))
            .unwrap()["id"]
    );
    let waiting: Value = app
        .api(
            Method::GET,
            "/api/v1/news?status=awaiting_review",
            &token,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(waiting["news"].as_array().unwrap().len(), 2);
    let approved: Value = app
        .api(
            Method::POST,
            &format!("/api/v1/news/{}/approve", judges["id"].as_str().unwrap()),
            &token,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(approved["status"], "approved");
    assert!(approved["approved_at"].is_string());
    let bad = app
        .api(Method::GET, "/api/v1/news?status=whatever", &token, None)
        .await;
    assert_eq!(bad.status(), 400);
    assert!(bad.json::<Value>().await.unwrap()["error"].is_string());

    // A second round: the RSS feed answers 304 to its ETag, the Atom feed (no validators)
    // sends everything again; nothing is stored twice.
    let again = poll_again(&app).await;
    let feeds = wait_polled(&app, &token, again).await;
    assert_eq!(server.counts.rss_full.load(Ordering::SeqCst), 1);
    assert_eq!(server.counts.rss_not_modified.load(Ordering::SeqCst), 1);
    assert_eq!(server.counts.atom.load(Ordering::SeqCst), 2);
    assert_eq!(news(&app, &token).await.len(), 4);
    assert_eq!(error_of(&feeds, &server.url("/rss.xml")), None);

    // A new entry: one new item.
    server.add_rss_item("Prosecutor's statement", "pr-3");
    let third = poll_again(&app).await;
    wait_polled(&app, &token, third).await;
    let items = news(&app, &token).await;
    assert_eq!(items.len(), 5);
    assert!(items.iter().any(|n| n["title"] == "Prosecutor's statement"));
}

#[tokio::test]
async fn a_feed_on_an_internal_address_is_refused_unless_allowed() {
    let server = FeedServer::start().await;
    let app = spawn_app_with(&[("feeds.allow_private_addresses", false.into())]).await;
    let token = app.api_token().await;
    let start = poll_again(&app).await;
    let port = server.base.rsplit(':').next().unwrap().to_owned();
    add_feed(&app, &token, json!({"url": server.url("/rss.xml")})).await;
    add_feed(
        &app,
        &token,
        json!({"url": format!("http://localhost:{port}/rss.xml")}),
    )
    .await;

    let feeds = wait_polled(&app, &token, start).await;

    for f in &feeds {
        let error = f["last_error"].as_str().unwrap_or_default();
        assert!(error.contains("internal address"), "{f}");
    }
    assert_eq!(server.counts.rss_full.load(Ordering::SeqCst), 0);
    assert!(news(&app, &token).await.is_empty());
}

#[tokio::test]
async fn the_feeds_api_checks_its_input_and_answers_errors_in_json() {
    let app = spawn_app_with(&[]).await;
    let token = app.api_token().await;
    for (body, field) in [
        (json!({"url": "ftp://example.org/feed"}), "url"),
        (json!({"url": "javascript:alert(1)"}), "url"),
        (json!({"url": ""}), "url"),
        (
            json!({"url": "https://example.org/f", "topic": "Not A Slug"}),
            "topic",
        ),
    ] {
        let response = app
            .api(Method::POST, "/api/v1/feeds", &token, Some(body))
            .await;
        assert_eq!(response.status(), 422);
        let errors: Value = response.json().await.unwrap();
        assert!(errors["errors"][field].is_string(), "{errors}");
    }
    let feed = add_feed(&app, &token, json!({"url": "https://example.org/feed.xml"})).await;
    let twice = app
        .api(
            Method::POST,
            "/api/v1/feeds",
            &token,
            Some(json!({"url": "https://example.org/feed.xml"})),
        )
        .await;
    assert_eq!(twice.status(), 422);

    let id = feed["id"].as_str().unwrap();
    let patched: Value = app
        .api(
            Method::PATCH,
            &format!("/api/v1/feeds/{id}"),
            &token,
            Some(json!({"topic": "court", "active": false})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(patched["topic"], "court");
    assert_eq!(patched["active"], false);
    assert_eq!(patched["url"], "https://example.org/feed.xml");

    let gone = app
        .api(Method::DELETE, &format!("/api/v1/feeds/{id}"), &token, None)
        .await;
    assert_eq!(gone.status(), 204);
    for method in [Method::GET, Method::PATCH, Method::DELETE] {
        let body = (method == Method::PATCH).then(|| json!({"topic": "court"}));
        let response = app
            .api(method, &format!("/api/v1/feeds/{id}"), &token, body)
            .await;
        assert_eq!(response.status(), 404);
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"], "No such feed.");
    }
    let unauthorized = app.http.get(app.url("/api/v1/feeds")).send().await.unwrap();
    assert_eq!(unauthorized.status(), 401);
}

#[tokio::test]
async fn redirects_are_followed_up_to_the_limit() {
    let server = FeedServer::start().await;
    let app = spawn_app_with(&[("feeds.max_redirects", 1.into())]).await;
    let token = app.api_token().await;
    let start = poll_again(&app).await;
    add_feed(&app, &token, json!({"url": server.url("/moved.xml")})).await;
    add_feed(&app, &token, json!({"url": server.url("/moved-twice.xml")})).await;

    let feeds = wait_polled(&app, &token, start).await;

    assert_eq!(error_of(&feeds, &server.url("/moved.xml")), None);
    let refused = error_of(&feeds, &server.url("/moved-twice.xml")).unwrap();
    assert!(refused.contains("more than 1 redirects"), "{refused}");
    assert_eq!(
        news(&app, &token).await.len(),
        2,
        "the RSS feed's two entries, once"
    );
}

#[tokio::test]
async fn several_workers_never_fetch_one_feed_at_once_nor_store_an_entry_twice() {
    let server = FeedServer::start().await;
    let app = spawn_app_with(&[]).await;
    app.start_worker(&[]);
    app.start_worker(&[]);
    let token = app.api_token().await;
    add_feed(&app, &token, json!({"url": server.url("/slow.xml")})).await;

    for _ in 0..4 {
        let since = poll_again(&app).await;
        wait_polled(&app, &token, since).await;
    }

    assert!(server.counts.slow.load(Ordering::SeqCst) >= 4);
    assert_eq!(server.counts.slow_most_at_once.load(Ordering::SeqCst), 1);
    assert_eq!(news(&app, &token).await.len(), 2);
}

/// The desk item titled `title`.
fn item<'a>(items: &'a [Value], title: &str) -> &'a Value {
    items
        .iter()
        .find(|n| n["title"] == title)
        .unwrap_or_else(|| panic!("no item {title:?} in {items:#?}"))
}

/// Creates an update to the default list carrying the desk items `ids` and sends it; waits for
/// its one mail and gives its text and HTML parts.
async fn send_items(app: &TestApp, token: &str, subject: &str, ids: &[&Value]) -> (String, String) {
    let created = app
        .api(
            Method::POST,
            "/api/v1/updates",
            token,
            Some(json!({"subject": subject, "lists": ["us-icc-updates"], "news_item_ids": ids})),
        )
        .await;
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.send_now(token, &id).await;
    app.wait_for_update_status(&id, "sent").await;
    let mail = app
        .smtp
        .wait_for(1, Duration::from_secs(20))
        .await
        .remove(0);
    let parsed = mail_parser::MessageParser::default()
        .parse(&mail.data)
        .unwrap();
    // With the counted links' targets in place (the content under test).
    (
        crate::helpers::unrewritten(app, &parsed.body_text(0).unwrap()).await,
        crate::helpers::unrewritten(app, &parsed.body_html(0).unwrap()).await,
    )
}

#[tokio::test]
async fn a_feed_of_relative_links_gives_absolute_ones_a_deleted_item_stays_gone_and_the_mail_links_right(
) {
    let server = FeedServer::start().await;
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.seed_confirmed(1, "example.org").await;
    let start = poll_again(&app).await;
    // Followed at its old address, which redirects: links resolve against where it is now.
    add_feed(&app, &token, json!({"url": server.url("/old/feed")})).await;
    wait_polled(&app, &token, start).await;

    let items = news(&app, &token).await;
    assert_eq!(
        item(&items, "Hearing notes")["url"],
        server.url("/blog/posts/hearing.html")
    );
    assert_eq!(
        item(&items, "Rooted link without a guid")["url"],
        server.url("/press/rooted.html")
    );
    assert_eq!(
        item(&items, "Court release")["url"],
        "https://court.example/pr/2026/7",
        "the item's xml:base"
    );
    assert_eq!(
        item(&items, "Scripted")["url"],
        Value::Null,
        "a javascript: link is dropped, the item kept"
    );

    // Staff delete one item known by its GUID and one known by its link only.
    for title in ["Court release", "Rooted link without a guid"] {
        let id = item(&items, title)["id"].as_str().unwrap().to_owned();
        let gone = app
            .api(Method::DELETE, &format!("/api/v1/news/{id}"), &token, None)
            .await;
        assert_eq!(gone.status(), 204);
    }
    let again = poll_again(&app).await;
    wait_polled(&app, &token, again).await;
    assert_eq!(server.counts.relative.load(Ordering::SeqCst), 2);
    let items = news(&app, &token).await;
    let mut titles: Vec<&str> = items.iter().map(|n| n["title"].as_str().unwrap()).collect();
    titles.sort();
    assert_eq!(
        titles,
        ["Hearing notes", "Scripted"],
        "deleted items stay deleted"
    );
    // Staff may still put the story on the desk by hand.
    let by_hand = app
        .api(
            Method::POST,
            "/api/v1/news",
            &token,
            Some(json!({"title": "Court release", "url": "https://court.example/pr/2026/7"})),
        )
        .await;
    assert_eq!(by_hand.status(), 201);

    let (text, html) = send_items(
        &app,
        &token,
        "Coalition notes",
        &[&item(&items, "Hearing notes")["id"]],
    )
    .await;
    let link = server.url("/blog/posts/hearing.html");
    assert!(text.contains(&link), "{text}");
    assert!(
        html.replace("&#x2F;", "/")
            .replace("&#x3D;", "=")
            .contains(&format!("href=\"{link}\"")),
        "{html}"
    );
}

/// Minutes from a feed's last poll to its next.
fn wait_minutes(feed: &Value) -> i64 {
    let at = |k: &str| DateTime::parse_from_rfc3339(feed[k].as_str().unwrap()).unwrap();
    (at("next_poll_at") - at("last_polled_at")).num_seconds() / 60
}

#[tokio::test]
async fn a_failing_feed_waits_twice_as_long_after_each_failure_up_to_a_day_and_its_page_says_why() {
    let server = FeedServer::start().await;
    let app = spawn_staff_app(&[]).await;
    let token = app.api_token().await;
    for bad in [4, 10_081, 0] {
        let r = app
            .api(
                Method::POST,
                "/api/v1/feeds",
                &token,
                Some(json!({"url": server.url("/flaky.xml"), "poll_minutes": bad})),
            )
            .await;
        assert_eq!(r.status(), 422, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert!(body["errors"]["poll_minutes"].is_string(), "{body}");
    }
    let mut since = poll_again(&app).await;
    let feed = add_feed(
        &app,
        &token,
        json!({"url": server.url("/flaky.xml"), "poll_minutes": 5}),
    )
    .await;
    assert_eq!(feed["poll_minutes"], 5);

    let mut seen = Vec::new();
    for _ in 0..10 {
        let feeds = wait_polled(&app, &token, since).await;
        seen.push((
            feeds[0]["failures"].as_i64().unwrap(),
            wait_minutes(&feeds[0]),
        ));
        since = poll_again(&app).await;
    }
    assert_eq!(
        seen,
        [
            (1, 10),
            (2, 20),
            (3, 40),
            (4, 80),
            (5, 160),
            (6, 320),
            (7, 640),
            (8, 1280),
            (9, 1440),
            (10, 1440)
        ],
        "each failure doubles the wait from the feed's 5 minutes, up to a day"
    );
    let mut ana = signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    let page = ana.get("/admin/feeds").await.text().await.unwrap();
    assert!(page.contains("Failed 10 times in a row"), "{page}");
    assert!(page.contains("503"), "the error in words: {page}");

    // It answers again: the count and the wait start over.
    server.failing.store(false, Ordering::SeqCst);
    let feeds = wait_polled(&app, &token, since).await;
    assert_eq!(feeds[0]["failures"], 0);
    assert_eq!(feeds[0]["last_error"], Value::Null);
    assert_eq!(wait_minutes(&feeds[0]), 5);
    let page = ana.get("/admin/feeds").await.text().await.unwrap();
    assert!(!page.contains("Failed"), "{page}");

    // Its own interval changes through the API; an absent one follows feeds.poll_minutes.
    let id = feed["id"].as_str().unwrap();
    let patched: Value = app
        .api(
            Method::PATCH,
            &format!("/api/v1/feeds/{id}"),
            &token,
            Some(json!({"poll_minutes": 60})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(patched["poll_minutes"], 60);
    let since = poll_again(&app).await;
    let feeds = wait_polled(&app, &token, since).await;
    assert_eq!(wait_minutes(&feeds[0]), 60);
}

#[tokio::test]
async fn a_feed_with_characters_xml_forbids_is_stored_clean_and_the_archive_feed_stays_well_formed()
{
    let server = FeedServer::start().await;
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.seed_confirmed(1, "example.org").await;
    let start = poll_again(&app).await;
    add_feed(
        &app,
        &token,
        json!({"url": server.url("/bad-characters.xml")}),
    )
    .await;

    let feeds = wait_polled(&app, &token, start).await;

    assert_eq!(feeds[0]["last_error"], Value::Null, "{feeds:?}");
    assert_eq!(feeds[0]["title"], "Court watch");
    let items = news(&app, &token).await;
    assert_eq!(items.len(), 1, "the entry is kept, cleaned: {items:?}");
    assert_eq!(items[0]["title"], "Ruling today");
    assert_eq!(items[0]["summary"], "Judges ruled.");
    assert_eq!(items[0]["source"], "Court watch");

    send_items(
        &app,
        &token,
        "Court watch: Ruling today",
        &[&items[0]["id"]],
    )
    .await;
    let xml = app.get("/archive/feed.xml").await.text().await.unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("the archive's feed is well-formed XML");
    assert!(doc
        .descendants()
        .any(|n| n.has_tag_name("title") && n.text() == Some("Court watch: Ruling today")));
}
