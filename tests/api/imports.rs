//! `/api/v1/imports`: a CSV body becomes a background job whose progress and problems (by line
//! in the file) the API shows; what may never come back is refused.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use crate::helpers::{spawn_app, TestApp};

pub(crate) async fn start(
    app: &TestApp,
    token: &str,
    query: &str,
    csv: String,
) -> reqwest::Response {
    app.http
        .post(app.url(&format!("/api/v1/imports?{query}")))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap()
}

/// Polls the job until it is no longer running; returns every state seen, the last one final.
pub(crate) async fn follow(app: &TestApp, token: &str, id: &str) -> Vec<Value> {
    let started = Instant::now();
    let mut seen = Vec::new();
    loop {
        let r = app
            .api(Method::GET, &format!("/api/v1/imports/{id}"), token, None)
            .await;
        assert_eq!(r.status(), 200);
        let job: Value = r.json().await.unwrap();
        let status = job["status"].as_str().unwrap().to_owned();
        seen.push(job);
        if status == "done" || status == "failed" {
            return seen;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "import stuck");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_100000_row_import_through_the_api_runs_in_the_background_with_progress() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let mut csv = String::from("name,email\n");
    for i in 0..100_000 {
        csv.push_str(&format!("Person {i},person{i}@import.example\n"));
    }
    csv.push_str("Bad Row,not-an-address\n");
    let r = start(
        &app,
        &token,
        "list=us-icc-updates&mode=confirmed&source=Conference%202026",
        csv,
    )
    .await;
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let seen = follow(&app, &token, &id).await;
    let last = seen.last().unwrap();
    assert_eq!(last["status"], "done", "{last}");
    assert_eq!(last["rows"], 100_001);
    assert_eq!(last["imported"], 100_000);
    assert_eq!(last["refused"], 1);
    assert_eq!(last["errors"][0]["line"], 100_002);
    assert_eq!(last["errors"][0]["field"], "email");
    assert!(
        seen.iter()
            .any(|j| j["status"] == "running" && j["processed"].as_i64().unwrap() < 100_000),
        "progress is visible while it runs"
    );
    let confirmed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM subscriptions x JOIN lists l ON l.id = x.list_id
         WHERE l.slug = 'us-icc-updates' AND x.status = 'confirmed'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(confirmed, 100_000);
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'import' AND subject = $1",
    )
    .bind(&id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(audited, 1);
}

#[tokio::test]
async fn an_import_refuses_unsubscribed_and_erased_addresses() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let people = app.seed_confirmed(2, "example.org").await;
    let (left, erased) = (&people[0], &people[1]);
    app.api(
        Method::POST,
        &format!("/api/v1/subscribers/{}/unsubscribe", left.0),
        &token,
        None,
    )
    .await;
    app.api(
        Method::DELETE,
        &format!("/api/v1/subscribers/{}", erased.0),
        &token,
        None,
    )
    .await;
    let csv = format!(
        "email\nnew@example.org\n{}\n{}\n",
        left.1.to_uppercase(),
        erased.1
    );
    let r = start(&app, &token, "source=old%20list", csv).await;
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let last = follow(&app, &token, &id).await.pop().unwrap();
    assert_eq!(
        (last["imported"].as_i64(), last["refused"].as_i64()),
        (Some(1), Some(2)),
        "{last}"
    );
    let lines: Vec<i64> = last["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_i64().unwrap())
        .collect();
    assert_eq!(lines, [3, 4]);
    assert_eq!(
        app.subscriber_status(&left.1).await.as_deref(),
        Some("unsubscribed")
    );
    assert_eq!(app.subscriber_status(&erased.1).await, None);
}

#[tokio::test]
async fn an_import_without_a_source_or_with_an_unknown_list_is_refused_before_it_starts() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let r = start(
        &app,
        &token,
        "list=nope&mode=sometimes",
        "email\na@example.org\n".into(),
    )
    .await;
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    for field in ["list", "mode", "source"] {
        assert!(body["errors"][field].is_string(), "{field}: {body}");
    }
    let plain = app
        .http
        .post(app.url("/api/v1/imports?source=x"))
        .bearer_auth(&token)
        .body("email\n")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 415);
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM import_jobs")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(jobs, 0);
}

#[tokio::test]
async fn an_opt_in_import_asks_each_new_person_to_confirm_and_mails_no_one_who_left() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let people = app.seed_confirmed(2, "example.org").await;
    let (left, member) = (&people[0], &people[1]);
    app.api(
        Method::POST,
        &format!("/api/v1/subscribers/{}/unsubscribe", left.0),
        &token,
        None,
    )
    .await;
    let csv = format!(
        "email,name\nnew@example.org,New\n{}\n{}\n",
        left.1, member.1
    );
    let r = start(&app, &token, "mode=opt-in&source=Event%20sheet", csv).await;
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let last = follow(&app, &token, &id).await.pop().unwrap();
    assert_eq!(last["status"], "done", "{last}");
    assert_eq!(
        (last["imported"].as_i64(), last["refused"].as_i64()),
        (Some(1), Some(1)),
        "{last}"
    );
    assert_eq!(last["errors"][0]["line"], 3);
    assert_eq!(
        app.subscriber_status("new@example.org").await.as_deref(),
        Some("pending")
    );
    assert_eq!(
        app.subscriber_status(&left.1).await.as_deref(),
        Some("unsubscribed")
    );
    app.wait_for_queue_to_drain().await;
    let to: Vec<String> = app
        .smtp
        .messages()
        .iter()
        .map(|m| m.rcpt_to[0].clone())
        .collect();
    assert_eq!(
        to,
        ["new@example.org"],
        "one confirmation, to the new person only"
    );
    let source: String = sqlx::query_scalar(
        "SELECT c.source FROM consent_events c JOIN subscribers s ON s.id = c.subscriber_id
         WHERE s.email = 'new@example.org'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(source, "import");
}

/// Kills (SIGKILL) the process on drop.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn an_import_survives_its_web_process_being_killed_and_counts_every_row_once() {
    use newsletter::app::Application;
    use sqlx::Connection;
    use tokio_util::sync::CancellationToken;

    use crate::helpers::{test_settings, TestDatabase};

    const ROWS: usize = 25_000;
    let db = TestDatabase::create().await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    // Someone already pending, in the second chunk of 10,000: holding their row makes the
    // import wait there, after its first chunk counted.
    sqlx::query(
        "INSERT INTO subscribers (id, email, email_normalized, status)
         VALUES (gen_random_uuid(), 'person15000@import.example', 'person15000@import.example', 'pending')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let mut holder = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let mut hold = holder.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM subscribers WHERE email_normalized = 'person15000@import.example' FOR UPDATE")
        .execute(&mut *hold)
        .await
        .unwrap();
    let token = crate::helpers::make_api_token(&pool, "tests", "send").await;
    let lease = [("NEWSLETTER__WORKER__IMPORT_LEASE_SECONDS", "2")];
    let (child, port) = crate::cli::serve(&db.url, &["--no-worker"], &lease);
    let mut child = Killed(child);

    let mut csv = String::from("email\n");
    for i in 0..ROWS {
        csv.push_str(&format!("person{i}@import.example\n"));
    }
    let r = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{port}/api/v1/imports?list=us-icc-updates&source=Gala%202026"
        ))
        .bearer_auth(token.as_str())
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id: uuid::Uuid = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // The first chunk counted and the second waits on the held row: kill the process there.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (processed, waiting): (i32, i64) = sqlx::query_as(
            "SELECT (SELECT processed FROM import_jobs WHERE id = $1),
                    (SELECT count(*) FROM pg_stat_activity
                     WHERE datname = current_database() AND wait_event_type = 'Lock')",
        )
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
        if processed == 10_000 && waiting > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the import never reached its second chunk"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    hold.rollback().await.unwrap();
    let status: String = sqlx::query_scalar("SELECT status FROM import_jobs WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, "running", "left running by the dead process");

    // A new web process takes the job over once its lease has passed, and finishes it.
    let smtp = crate::smtp_server::TestSmtp::start().await;
    let settings = test_settings(
        &db.url,
        &smtp.url(),
        &[("worker.import_lease_seconds", 2.into())],
    );
    let app = Application::build(settings, false).await.unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run_until(shutdown.clone()));
    let deadline = Instant::now() + Duration::from_secs(120);
    let job = loop {
        let job = newsletter::ops::imports::status(&pool, id).await.unwrap();
        if job.status != "running" {
            break job;
        }
        assert!(Instant::now() < deadline, "the import was never taken over");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    shutdown.cancel();
    server.await.unwrap().unwrap();

    assert_eq!(job.status, "done", "{job:?}");
    assert_eq!((job.rows, job.processed), (25_000, 25_000));
    assert_eq!(
        (job.imported, job.refused),
        (24_999, 0),
        "one was there already"
    );
    let (people, confirmed, members, consents): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM subscribers),
                (SELECT count(*) FROM subscribers WHERE status = 'confirmed'),
                (SELECT count(*) FROM subscriptions WHERE status = 'confirmed'),
                (SELECT count(*) FROM consent_events WHERE source = 'import')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (people, confirmed, members, consents),
        (25_000, 25_000, 25_000, 25_000),
        "every row imported exactly once"
    );
    pool.close().await;
}
