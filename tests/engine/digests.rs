//! A weekly digest across the November daylight-saving change, with two `newsletter worker`
//! processes racing for its occurrences: 09:00 New York time on both sides, each occurrence
//! once, one update, one mail per subscriber.

use std::time::Duration;

use chrono::{DateTime, Datelike, Timelike, Utc, Weekday};
use chrono_tz::America::New_York;
use newsletter::app::Application;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::helpers::{test_settings, TestDatabase};
use crate::smtp_server::TestSmtp;
use crate::workers::WorkerProcess;

#[tokio::test]
async fn a_weekly_digest_fires_at_nine_local_across_the_november_change_once_with_two_workers() {
    let _turn = crate::exclusive().await;
    let db = TestDatabase::create().await;
    let smtp = TestSmtp::start().await;
    let app = Application::build(test_settings(&db.url, &smtp.url(), &[]), false)
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let pool = app.pool().clone();
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run_until(shutdown.clone()));
    sqlx::query(
        "WITH people AS (
             INSERT INTO subscribers (id, email, email_normalized, status)
             SELECT gen_random_uuid(), 'r' || i || '@example.org', 'r' || i || '@example.org', 'confirmed'
             FROM generate_series(1, 5) AS i RETURNING id)
         INSERT INTO subscriptions (subscriber_id, list_id, status)
         SELECT p.id, l.id, 'confirmed' FROM people p, lists l WHERE l.slug = 'us-icc-updates'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let token = crate::helpers::make_api_token(&pool, "tests", "send").await;
    let http = reqwest::Client::new();
    let news = http
        .post(format!("{base}/api/v1/news"))
        .bearer_auth(token.as_str())
        .json(&json!({"title": "The Court elects its president", "url": "https://example.org/p"}))
        .send()
        .await
        .unwrap();
    assert_eq!(news.status(), 201);
    let created: Value = http
        .post(format!("{base}/api/v1/digests"))
        .bearer_auth(token.as_str())
        .json(&json!({
            "name": "Monday digest", "lists": ["us-icc-updates"], "mode": "send",
            "recurrence": {"frequency": "weekly", "weekdays": ["monday"], "time": "09:00"},
            "time_zone": "America/New_York"
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    // The service was down since before Monday 26 October 2026, 09:00 EDT; the workers that
    // start now allow any lateness, so every Monday since then fires (the first with the item).
    sqlx::query("UPDATE digests SET next_at = '2026-10-26T13:00:00Z' WHERE id = $1::uuid")
        .bind(&id)
        .execute(&pool)
        .await
        .unwrap();
    let late = [("NEWSLETTER__SENDING__STALE_AFTER_HOURS", "1000000")];
    let _workers = [
        WorkerProcess::start(&db.url, &smtp.url(), &late),
        WorkerProcess::start(&db.url, &smtp.url(), &late),
    ];

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let runs: Vec<(DateTime<Utc>, String, Option<uuid::Uuid>)> = loop {
        let next: DateTime<Utc> =
            sqlx::query_scalar("SELECT next_at FROM digests WHERE id = $1::uuid")
                .bind(&id)
                .fetch_one(&pool)
                .await
                .unwrap();
        let runs: Vec<(DateTime<Utc>, String, Option<uuid::Uuid>)> = sqlx::query_as(
            "SELECT due_at, outcome, update_id FROM digest_runs WHERE digest_id = $1::uuid ORDER BY due_at",
        )
        .bind(&id)
        .fetch_all(&pool)
        .await
        .unwrap();
        if next > Utc::now() && runs.iter().all(|r| r.1 != "building") {
            break runs;
        }
        assert!(tokio::time::Instant::now() < deadline, "{runs:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let due: Vec<String> = runs.iter().map(|r| r.0.to_rfc3339()).collect();
    assert_eq!(due[0], "2026-10-26T13:00:00+00:00", "09:00 EDT");
    assert_eq!(due[1], "2026-11-02T14:00:00+00:00", "09:00 EST");
    for (at, _, _) in &runs {
        let local = at.with_timezone(&New_York);
        assert_eq!(
            (local.weekday(), local.hour(), local.minute()),
            (Weekday::Mon, 9, 0),
            "{local}"
        );
    }
    for pair in runs.windows(2) {
        let days = (pair[1].0.with_timezone(&New_York).date_naive()
            - pair[0].0.with_timezone(&New_York).date_naive())
        .num_days();
        assert_eq!(days, 7, "every Monday once: {due:?}");
    }
    assert_eq!(runs[0].1, "sent");
    assert!(runs[1..].iter().all(|r| r.1 == "skipped"), "{runs:?}");
    let updates: i64 = sqlx::query_scalar("SELECT count(*) FROM updates")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        updates, 1,
        "one digest built, whatever the number of workers"
    );
    let update_id = runs[0].2.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status: String = sqlx::query_scalar("SELECT status FROM updates WHERE id = $1")
            .bind(update_id)
            .fetch_one(&pool)
            .await
            .unwrap();
        if status == "sent" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "update is {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.count(), 5, "one mail per subscriber");
    shutdown.cancel();
}
