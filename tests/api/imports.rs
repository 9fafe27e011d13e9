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
async fn an_import_never_brings_back_unsubscribed_and_erased_addresses() {
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
        (
            last["imported"].as_i64(),
            last["suppressed"].as_i64(),
            last["refused"].as_i64()
        ),
        (Some(1), Some(2), Some(0)),
        "suppressed, not refused: nothing in those rows can be fixed: {last}"
    );
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
        (
            last["imported"].as_i64(),
            last["suppressed"].as_i64(),
            last["already_there"].as_i64()
        ),
        (Some(1), Some(1), Some(1)),
        "{last}"
    );
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

/// A job's id from the answer that started it.
async fn job_id(r: reqwest::Response) -> String {
    assert_eq!(r.status(), 202);
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Every person as an export would have to carry them: address, name, status, state, and the
/// lists they are on or waiting to join (`slug:status`).
async fn people(
    pool: &sqlx::PgPool,
) -> Vec<(String, Option<String>, String, Option<String>, Vec<String>)> {
    sqlx::query_as(
        "SELECT s.email, s.name, s.status, s.us_state,
                ARRAY(SELECT l.slug || ':' || x.status FROM subscriptions x JOIN lists l ON l.id = x.list_id
                      WHERE x.subscriber_id = s.id AND x.status <> 'unsubscribed' ORDER BY 1)
         FROM subscribers s ORDER BY s.email",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The lists both installations have besides the shipped ones.
async fn make_lists(app: &TestApp, token: &str) {
    for body in [
        serde_json::json!({"slug": "texas-alliance", "name": "Texas Alliance", "state": "TX"}),
        serde_json::json!({"slug": "donors", "name": "Donors", "public": false}),
    ] {
        let r = app
            .api(Method::POST, "/api/v1/lists", token, Some(body))
            .await;
        assert_eq!(r.status(), 201);
    }
}

/// Adds a confirmed person through the API (as staff do) and returns their id.
async fn add(
    app: &TestApp,
    token: &str,
    email: &str,
    name: &str,
    state: &str,
    lists: &[&str],
) -> String {
    let r = app
        .api(
            Method::POST,
            "/api/v1/subscribers",
            token,
            Some(
                serde_json::json!({"email": email, "name": name, "state": state,
                                    "lists": lists, "source": "Town hall"}),
            ),
        )
        .await;
    assert_eq!(r.status(), 201, "{email}");
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn our_own_export_imports_into_a_fresh_database_as_it_was() {
    let old = spawn_app().await;
    let token = old.api_token().await;
    make_lists(&old, &token).await;
    // Names a spreadsheet would run as formulas, which the export guards with a quote.
    add(
        &old,
        &token,
        "ana@example.org",
        "=Ana",
        "NY",
        &["us-icc-updates", "donors"],
    )
    .await;
    add(
        &old,
        &token,
        "bo@example.org",
        "+Bo",
        "TX",
        &["texas-alliance"],
    )
    .await;
    add(&old, &token, "cy@example.org", "-Cy", "", &["donors"]).await;
    add(
        &old,
        &token,
        "coalition@example.org",
        "@CoalitionNY",
        "NY",
        &["new-york-alliance"],
    )
    .await;
    add(
        &old,
        &token,
        "quote@example.org",
        "'Quoted",
        "",
        &["us-icc-updates"],
    )
    .await;
    // Someone who signed up and never confirmed: pending on the lists they asked for.
    let r = old
        .post_form(
            "/subscriptions",
            "email=dee%40example.org&name=Dee&lists=us-icc-updates&state=TX",
        )
        .await;
    assert_eq!(r.status(), 303);
    // Someone who left, someone whose mail bounced, someone who complained.
    let ed = add(
        &old,
        &token,
        "ed@example.org",
        "Ed",
        "NY",
        &["us-icc-updates"],
    )
    .await;
    let r = old
        .api(
            Method::POST,
            &format!("/api/v1/subscribers/{ed}/unsubscribe"),
            &token,
            None,
        )
        .await;
    assert!(r.status().is_success());
    for (email, status) in [
        ("fay@example.org", "bounced"),
        ("gus@example.org", "complained"),
    ] {
        let id = add(&old, &token, email, "Out", "", &["us-icc-updates"]).await;
        sqlx::query(
            "WITH s AS (UPDATE subscribers SET status = $2, unsubscribed_at = now() WHERE id = $1::uuid)
             UPDATE subscriptions SET status = 'unsubscribed' WHERE subscriber_id = $1::uuid",
        )
        .bind(&id)
        .bind(status)
        .execute(&old.pool)
        .await
        .unwrap();
    }
    // Someone list hygiene lapsed: still on their list, not mailed, not suppressed.
    let hal = add(
        &old,
        &token,
        "hal@example.org",
        "Hal",
        "",
        &["us-icc-updates"],
    )
    .await;
    sqlx::query("UPDATE subscribers SET status = 'lapsed' WHERE id = $1::uuid")
        .bind(&hal)
        .execute(&old.pool)
        .await
        .unwrap();
    old.wait_for_queue_to_drain().await;
    let export = old
        .api(Method::GET, "/api/v1/subscribers/export", &token, None)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        export.contains("'=Ana") && export.contains("'@CoalitionNY"),
        "{export}"
    );

    let new = spawn_app().await;
    let new_token = new.api_token().await;
    make_lists(&new, &new_token).await;
    let id = job_id(
        start(
            &new,
            &new_token,
            "source=Export%20of%20the%20old%20server",
            export,
        )
        .await,
    )
    .await;
    let job = follow(&new, &new_token, &id).await.pop().unwrap();

    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(people(&new.pool).await, people(&old.pool).await);
    assert_eq!(
        (
            job["imported"].as_i64(),
            job["suppressed"].as_i64(),
            job["refused"].as_i64()
        ),
        (Some(7), Some(3), Some(0)),
        "{job}"
    );
    let suppressed: i64 = sqlx::query_scalar("SELECT count(*) FROM suppressions")
        .fetch_one(&new.pool)
        .await
        .unwrap();
    assert_eq!(
        suppressed, 3,
        "the three who left are suppressed, not the lapsed one"
    );
    let mails: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries")
        .fetch_one(&new.pool)
        .await
        .unwrap();
    assert_eq!(
        mails, 0,
        "nobody is mailed: the pending person was asked on the old server"
    );
}

/// Moving a list from another service with the people who left it (Mailtrain #325, Keila #259,
/// craft-campaign #384): they stay out, and a weekly sheet that names them later (sendportal
/// #165) brings none of them back.
#[tokio::test]
async fn a_status_column_is_honoured_and_no_later_import_brings_the_departed_back() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let file = "email,name,status\n\
                new@example.org,New,\n\
                sure@example.org,Sure,Confirmed\n\
                pend@example.org,Pending Person,pending\n\
                gone@example.org,Gone,unsubscribed\n\
                bad@example.org,Bad,bounced\n\
                spam@example.org,Spam,complained\n\
                erased@example.org,,erased\n\
                odd@example.org,Odd,active\n";
    let id = job_id(start(&app, &token, "source=Old%20service", file.into()).await).await;
    let job = follow(&app, &token, &id).await.pop().unwrap();
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(
        (
            job["imported"].as_i64(),
            job["suppressed"].as_i64(),
            job["refused"].as_i64()
        ),
        (Some(3), Some(4), Some(1)),
        "{job}"
    );
    let error = &job["errors"][0];
    assert_eq!(
        (error["line"].as_i64(), error["field"].as_str()),
        (Some(9), Some("status"))
    );
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("\"active\"") && message.contains("pending"),
        "{message}"
    );
    for (email, status) in [
        ("new@example.org", Some("confirmed")),
        ("sure@example.org", Some("confirmed")),
        ("pend@example.org", Some("pending")),
        ("gone@example.org", Some("unsubscribed")),
        ("bad@example.org", Some("bounced")),
        ("spam@example.org", Some("complained")),
        ("erased@example.org", None),
        ("odd@example.org", None),
    ] {
        assert_eq!(
            app.subscriber_status(email).await.as_deref(),
            status,
            "{email}"
        );
    }
    app.wait_for_queue_to_drain().await;
    assert!(app.smtp.messages().is_empty(), "no mail without opt-in");

    // A weekly sheet with no status column names them again.
    let sheet = "email\ngone@example.org\nERASED@example.org\nbad@example.org\nnew@example.org\n";
    let id = job_id(start(&app, &token, "source=Weekly%20sheet", sheet.into()).await).await;
    let job = follow(&app, &token, &id).await.pop().unwrap();
    assert_eq!(
        (
            job["imported"].as_i64(),
            job["suppressed"].as_i64(),
            job["already_there"].as_i64()
        ),
        (Some(0), Some(3), Some(1)),
        "{job}"
    );
    assert_eq!(app.subscriber_status("erased@example.org").await, None);
    assert_eq!(
        app.subscriber_status("gone@example.org").await.as_deref(),
        Some("unsubscribed")
    );
    // Nor does staff adding one by hand.
    let r = app
        .api(
            Method::POST,
            "/api/v1/subscribers",
            &token,
            Some(serde_json::json!({"email": "erased@example.org", "source": "phone call"})),
        )
        .await;
    assert_eq!(r.status(), 422);
    assert_eq!(app.subscriber_status("erased@example.org").await, None);
}

#[tokio::test]
async fn pending_rows_are_asked_to_confirm_only_in_the_opt_in_mode() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let file = "email,status\nwait@example.org,pending\nleft@example.org,unsubscribed\n";
    let id = job_id(
        start(
            &app,
            &token,
            "mode=opt-in&source=Event%20sheet",
            file.into(),
        )
        .await,
    )
    .await;
    let job = follow(&app, &token, &id).await.pop().unwrap();
    assert_eq!(
        (job["imported"].as_i64(), job["suppressed"].as_i64()),
        (Some(1), Some(1)),
        "{job}"
    );
    app.wait_for_queue_to_drain().await;
    let to: Vec<String> = app
        .smtp
        .messages()
        .iter()
        .map(|m| m.rcpt_to[0].clone())
        .collect();
    assert_eq!(to, ["wait@example.org"]);
    assert_eq!(
        app.subscriber_status("left@example.org").await.as_deref(),
        Some("unsubscribed")
    );
}

/// Every row is counted somewhere (listmonk #1883: a duplicate went unmentioned), a bad value
/// is quoted with what would be accepted, and the refused rows come back as a CSV that imports
/// once fixed.
#[tokio::test]
async fn the_result_counts_every_row_and_offers_the_refused_ones_to_fix() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let people = app.seed_confirmed(2, "example.org").await;
    let left = app.seed_confirmed_from(5, 1, "example.org").await;
    let r = app
        .api(
            Method::POST,
            &format!("/api/v1/subscribers/{}/unsubscribe", left[0].0),
            &token,
            None,
        )
        .await;
    assert!(r.status().is_success());
    let long = "x".repeat(200);
    let file = format!(
        "email,name,state\n\
         {},Reader,NY\n\
         {},Reader,\n\
         ana@example.org,Ana,New York\n\
         Ana@Example.org,Ana again,NY\n\
         bo@example.org,Bo,Calif.\n\
         {},,\n\
         not-an-address,X,\n\
         cy@example.org,Cy,{long}\n",
        people[0].1, people[1].1, left[0].1
    );
    let id = job_id(start(&app, &token, "source=Fair", file).await).await;
    let job = follow(&app, &token, &id).await.pop().unwrap();
    assert_eq!(job["status"], "done", "{job}");
    let counts: Vec<Option<i64>> = [
        "rows",
        "imported",
        "added_to_lists",
        "already_there",
        "duplicates",
        "refused",
        "suppressed",
    ]
    .iter()
    .map(|k| job[k].as_i64())
    .collect();
    assert_eq!(
        counts,
        [8, 1, 1, 1, 1, 3, 1].map(Some),
        "rows, imported, added, already there, duplicates, refused, suppressed: {job}"
    );
    assert_eq!(
        job["refused_by"],
        serde_json::json!({"email": 1, "state": 2}),
        "{job}"
    );
    let state_error = job["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["line"] == 6)
        .unwrap_or_else(|| panic!("{job}"));
    assert_eq!(state_error["field"], "state");
    let message = state_error["message"].as_str().unwrap();
    assert!(
        message.contains("\"Calif.\"") && message.contains("two-letter"),
        "{message}"
    );
    let cut = job["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["line"] == 9)
        .unwrap_or_else(|| panic!("{job}"));
    let message = cut["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("\"{}…\"", "x".repeat(80))) && !message.contains(&"x".repeat(81)),
        "{message}"
    );
    let on_alliance: Vec<String> = sqlx::query_scalar(
        "SELECT s.email FROM subscriptions x JOIN lists l ON l.id = x.list_id
         JOIN subscribers s ON s.id = x.subscriber_id
         WHERE l.slug = 'new-york-alliance' AND x.status = 'confirmed' ORDER BY 1",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        on_alliance,
        ["ana@example.org".to_owned(), people[0].1.clone()]
    );

    let r = app
        .api(
            Method::GET,
            &format!("/api/v1/imports/{id}/refused.csv"),
            &token,
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let refused = r.text().await.unwrap();
    let lines: Vec<&str> = refused.lines().collect();
    assert_eq!(lines.len(), 4, "{refused}");
    assert_eq!(lines[0], "email,name,state,error");
    assert!(
        lines[1].starts_with("bo@example.org,Bo,Calif.,"),
        "{refused}"
    );
    assert!(lines[2].starts_with("not-an-address,X,,"), "{refused}");

    let fixed = refused
        .replace("Calif.", "CA")
        .replace("not-an-address", "x@example.org")
        .replace(&long, "Texas");
    let id = job_id(start(&app, &token, "source=Fair", fixed).await).await;
    let job = follow(&app, &token, &id).await.pop().unwrap();
    assert_eq!(
        (job["imported"].as_i64(), job["refused"].as_i64()),
        (Some(3), Some(0)),
        "{job}"
    );
}

async fn refused_csv(app: &TestApp, token: &str, id: &str) -> String {
    app.api(
        Method::GET,
        &format!("/api/v1/imports/{id}/refused.csv"),
        token,
        None,
    )
    .await
    .text()
    .await
    .unwrap()
}

#[tokio::test]
async fn the_refused_rows_of_an_old_import_are_forgotten_and_its_counts_stay() {
    let app = crate::helpers::spawn_app_with(&[("worker.housekeeping_seconds", 1.into())]).await;
    let token = app.api_token().await;
    let file = "email,name\nok@example.org,Ok\nnot-an-address,Private Name\n";
    let id = job_id(start(&app, &token, "source=Fair", file.into()).await).await;
    let job = follow(&app, &token, &id).await.pop().unwrap();
    assert_eq!(job["refused"], 1, "{job}");
    assert!(refused_csv(&app, &token, &id)
        .await
        .contains("Private Name"));

    sqlx::query(
        "UPDATE import_jobs SET finished_at = now() - interval '31 days' WHERE id = $1::uuid",
    )
    .bind(&id)
    .execute(&app.pool)
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let job = loop {
        let job: Value = app
            .api(Method::GET, &format!("/api/v1/imports/{id}"), &token, None)
            .await
            .json()
            .await
            .unwrap();
        if job["errors"][0].get("message").is_none() {
            break job;
        }
        assert!(Instant::now() < deadline, "never forgotten: {job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (
            job["imported"].as_i64(),
            job["refused"].as_i64(),
            job["errors"][0]["line"].as_i64()
        ),
        (Some(1), Some(1), Some(3)),
        "{job}"
    );
    assert!(!job.to_string().contains("not-an-address"), "{job}");
    assert_eq!(refused_csv(&app, &token, &id).await, "email,name,error\n");
}

/// A NUL in one cell refuses that row, naming it, and the others go in. (Before, the job failed
/// as a whole on writing its outcome: PostgreSQL stores no NUL in `jsonb`, and the good rows
/// were lost with the bad one. Found from outside.)
#[tokio::test]
async fn a_nul_in_one_cell_refuses_that_row_and_the_import_goes_on() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let file = "email,name\nnul1@example.org,J\0\nnul2@example.org,K\n".to_owned();
    let r = start(&app, &token, "mode=confirmed&source=A%20sheet", file).await;
    assert_eq!(r.status(), 202);
    let job: Value = r.json().await.unwrap();
    let seen = follow(&app, &token, job["id"].as_str().unwrap()).await;
    let last = seen.last().unwrap();
    assert_eq!(last["status"], "done", "{last}");
    assert_eq!(last["imported"], 1, "{last}");
    assert_eq!(last["refused"], 1, "{last}");
    assert_eq!(
        app.subscriber_status("nul2@example.org").await.as_deref(),
        Some("confirmed")
    );
    assert_eq!(app.subscriber_status("nul1@example.org").await, None);
    let refused = app
        .api(
            Method::GET,
            &format!(
                "/api/v1/imports/{}/refused.csv",
                job["id"].as_str().unwrap()
            ),
            &token,
            None,
        )
        .await;
    assert_eq!(refused.status(), 200);
    assert!(refused.text().await.unwrap().contains("nul1@example.org"));
}
