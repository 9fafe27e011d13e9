//! Feeds: the worker polls RSS 2.0 and Atom feeds served by a local HTTP server, puts each entry
//! on the news desk once, records the errors of broken feeds without holding up the others,
//! answers a 304 with nothing new, and refuses internal addresses unless allowed.

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{json, Value};

use crate::feed_server::FeedServer;
use crate::helpers::{spawn_app_with, TestApp};

async fn add_feed(app: &TestApp, token: &str, body: Value) -> Value {
    let response = app
        .api(Method::POST, "/api/v1/feeds", token, Some(body))
        .await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

/// Waits until every feed was polled after `since`; returns the feeds by URL.
async fn wait_polled(app: &TestApp, token: &str, since: DateTime<Utc>) -> Vec<Value> {
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

async fn poll_again(app: &TestApp) -> DateTime<Utc> {
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
