//! Separate `newsletter worker` processes against one database: killed with SIGKILL mid-update
//! and restarted, every recipient still gets the update, with duplicates only within the
//! in-flight bound; two workers never both send one mail, and the global rate holds.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use newsletter::app::Application;
use rand::Rng;
use reqwest::Method;
use tokio_util::sync::CancellationToken;

use crate::helpers::{test_settings, TestDatabase, SECRET_KEY};
use crate::rate_limits::{last_after, least_time};
use crate::smtp_server::TestSmtp;

/// A worker process; killed (SIGKILL) on drop.
pub(crate) struct WorkerProcess(Child);

impl WorkerProcess {
    pub(crate) fn start(db_url: &str, smtp_url: &str, extra: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_newsletter"));
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("worker")
            .env("DATABASE_URL", db_url)
            .env("NEWSLETTER__SMTP__URL", smtp_url)
            .env("NEWSLETTER__SECURITY__SECRET_KEY", SECRET_KEY)
            .env(
                "NEWSLETTER__MAIL__POSTAL_ADDRESS",
                "1 Test Street, Springfield",
            )
            .env("NEWSLETTER__WORKER__POLL_INTERVAL_MS", "50")
            .env("NEWSLETTER__WORKER__LEASE_SECONDS", "3")
            .env("NEWSLETTER__SMTP__TIMEOUT_SECONDS", "2")
            .env("NEWSLETTER__SENDING__BACKOFF_SECONDS", "[1]")
            .env("NEWSLETTER__LOG__LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        Self(cmd.spawn().expect("starting a worker process"))
    }

    pub(crate) fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The web server alone (no worker in the test process), for the API.
pub(crate) struct Web {
    base: String,
    pool: sqlx::PgPool,
    shutdown: CancellationToken,
}

impl Web {
    pub(crate) async fn start(db: &TestDatabase, smtp: &TestSmtp) -> Self {
        let settings = test_settings(&db.url, &smtp.url(), &[]);
        let app = Application::build(settings, false).await.unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        let pool = app.pool().clone();
        let shutdown = CancellationToken::new();
        tokio::spawn(app.run_until(shutdown.clone()));
        Self {
            base,
            pool,
            shutdown,
        }
    }

    pub(crate) async fn send_update(&self, recipients: i64) -> String {
        sqlx::query(
            "WITH people AS (
                 INSERT INTO subscribers (id, email, email_normalized, status)
                 SELECT gen_random_uuid(), 'r' || i || '@example.org', 'r' || i || '@example.org', 'confirmed'
                 FROM generate_series(1, $1) AS i RETURNING id)
             INSERT INTO subscriptions (subscriber_id, list_id, status)
             SELECT p.id, l.id, 'confirmed' FROM people p, lists l WHERE l.slug = 'us-icc-updates'",
        )
        .bind(recipients)
        .execute(&self.pool)
        .await
        .unwrap();
        let token = crate::helpers::make_api_token(&self.pool, "tests", "send").await;
        let http = reqwest::Client::new();
        let created: serde_json::Value = http
            .request(Method::POST, format!("{}/api/v1/updates", self.base))
            .bearer_auth(token.as_str())
            .json(&serde_json::json!({"subject": "Crash test", "lists": ["us-icc-updates"]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = created["id"].as_str().unwrap().to_owned();
        let sent = http
            .post(format!("{}/api/v1/updates/{id}/send", self.base))
            .bearer_auth(token.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(sent.status(), 200);
        id
    }

    pub(crate) async fn status(&self, id: &str) -> String {
        sqlx::query_scalar("SELECT status FROM updates WHERE id = $1::uuid")
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    pub(crate) async fn wait_until_sent(&self, id: &str, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.status(id).await != "sent" {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the update was not sent in time"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether `count` workers are registered and each has beaten since the last one joined,
    /// so each has taken its share of the rate for that many workers (100 ms later: a beat that
    /// began just before the last one registered may not have counted it).
    pub(crate) async fn workers_share_the_rate(&self, count: i64) -> bool {
        sqlx::query_scalar(
            "SELECT count(*) = $1 AND min(heartbeat_at) > max(started_at) + interval '100 ms'
             FROM workers",
        )
        .bind(count)
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }

    pub(crate) async fn live_workers(&self) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM workers WHERE heartbeat_at > now() - interval '10 seconds'",
        )
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }
}

impl Drop for Web {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// What the relay received for an update of `recipients` mails, held against its ledger.
pub(crate) struct Ledger {
    /// Mails the relay received, per recipient.
    pub(crate) per_recipient: HashMap<String, usize>,
    /// Mails received beyond the first for their recipient.
    pub(crate) duplicates: usize,
    /// Recipients the relay received nothing for.
    pub(crate) lost: usize,
    /// Recipients whose ledger row is `sent`.
    pub(crate) sent_rows: Vec<String>,
    /// The ledger rows of the recipients received more than once: address, attempts, ambiguous.
    pub(crate) duplicated: Vec<(String, i32, bool)>,
}

impl Ledger {
    pub(crate) async fn read(web: &Web, smtp: &TestSmtp, id: &str, recipients: i64) -> Self {
        let mails = smtp.messages();
        let mut per_recipient: HashMap<String, usize> = HashMap::new();
        for m in &mails {
            *per_recipient.entry(m.rcpt_to[0].clone()).or_default() += 1;
        }
        let duplicates = mails.len() - per_recipient.len();
        let sent_rows: Vec<String> = sqlx::query_scalar(
            "SELECT s.email FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
             WHERE d.update_id = $1::uuid AND d.status = 'sent'",
        )
        .bind(id)
        .fetch_all(&web.pool)
        .await
        .unwrap();
        let lost = recipients as usize - per_recipient.len();
        let twice: Vec<String> = per_recipient
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(r, _)| r.clone())
            .collect();
        let duplicated: Vec<(String, i32, bool)> = sqlx::query_as(
            "SELECT s.email, d.attempts, d.ambiguous FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
             WHERE d.update_id = $1::uuid AND s.email = ANY($2)",
        )
        .bind(id)
        .bind(&twice)
        .fetch_all(&web.pool)
        .await
        .unwrap();
        Self {
            per_recipient,
            duplicates,
            lost,
            sent_rows,
            duplicated,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_killed_with_sigkill_mid_update_lose_nobody_and_duplicate_within_the_in_flight_bound(
) {
    let _turn = crate::exclusive().await;
    // The long variant (NEWSLETTER_FAULTS_LONG=1): 10,000 recipients, 20 kills.
    let long = std::env::var("NEWSLETTER_FAULTS_LONG").is_ok_and(|v| v == "1");
    let (recipients, max_kills, rate) = if long {
        (10_000, 20, "400")
    } else {
        (2_000, 12, "300")
    };
    const CONCURRENCY: usize = 8;
    let db = TestDatabase::create().await;
    let smtp = TestSmtp::start().await;
    let web = Web::start(&db, &smtp).await;
    let env = [
        ("NEWSLETTER__SENDING__RATE_PER_SECOND", rate),
        ("NEWSLETTER__SENDING__CONCURRENCY", "8"),
        ("NEWSLETTER__WORKER__BATCH_SIZE", "20"),
    ];
    let mut workers: Vec<WorkerProcess> = (0..3)
        .map(|_| WorkerProcess::start(&db.url, &smtp.url(), &env))
        .collect();
    let id = web.send_update(recipients).await;

    let mut kills = 0;
    let mut rng = rand::thread_rng();
    while web.status(&id).await != "sent" && kills < max_kills {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(300..800))).await;
        if web.status(&id).await == "sent" {
            break;
        }
        let victim = rng.gen_range(0..workers.len());
        workers[victim].kill();
        kills += 1;
        workers[victim] = WorkerProcess::start(&db.url, &smtp.url(), &env);
    }
    web.wait_until_sent(&id, Duration::from_secs(300)).await;

    let Ledger {
        per_recipient,
        duplicates,
        lost,
        sent_rows,
        duplicated: explained,
    } = Ledger::read(&web, &smtp, &id, recipients).await;
    let (ambiguous, in_flight): (Vec<_>, Vec<_>) = explained.iter().partition(|(_, _, amb)| *amb);
    println!(
        "duplicates: {} in flight at a kill (sent again after the lease expired), {} ambiguous replies",
        in_flight.len(),
        ambiguous.len()
    );
    assert!(
        explained.iter().all(|(_, attempts, _)| *attempts >= 2),
        "every duplicate was attempted again: {explained:?}"
    );
    println!(
        "crash test: recipients {recipients}, delivered {}, duplicates {duplicates}, lost {lost}, kills {kills}",
        per_recipient.len()
    );
    assert!(
        kills >= 5,
        "the update finished after only {kills} kills: make it slower"
    );
    assert_eq!(lost, 0, "every recipient got the update at least once");
    assert!(
        duplicates <= kills * CONCURRENCY,
        "{duplicates} duplicates for {kills} kills"
    );
    assert_eq!(
        sent_rows.len(),
        recipients as usize,
        "every ledger row ends sent"
    );
    assert!(
        sent_rows.iter().all(|e| per_recipient.contains_key(e)),
        "the ledger agrees with the relay"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_send_each_mail_once_and_share_the_global_rate() {
    let _turn = crate::exclusive().await;
    const RECIPIENTS: i64 = 600;
    let db = TestDatabase::create().await;
    let smtp = TestSmtp::start().await;
    let web = Web::start(&db, &smtp).await;
    let env = [
        ("NEWSLETTER__SENDING__RATE_PER_SECOND", "200"),
        ("NEWSLETTER__SMTP__POOL_SIZE", "16"),
        ("NEWSLETTER__SENDING__BURST", "20"),
    ];
    let _workers: Vec<WorkerProcess> = (0..2)
        .map(|_| WorkerProcess::start(&db.url, &smtp.url(), &env))
        .collect();
    // Both registered, then both beat again: each now holds half the rate.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !web.workers_share_the_rate(2).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "workers did not register"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let start = std::time::Instant::now();
    let id = web.send_update(RECIPIENTS).await;
    web.wait_until_sent(&id, Duration::from_secs(60)).await;
    let mails = smtp.messages();
    let mut recipients: Vec<&str> = mails.iter().map(|m| m.rcpt_to[0].as_str()).collect();
    recipients.sort();
    recipients.dedup();
    assert_eq!(
        (mails.len(), recipients.len()),
        (RECIPIENTS as usize, RECIPIENTS as usize),
        "no recipient twice"
    );
    let took = last_after(mails.iter().map(|m| m.started_at), start);
    println!("two workers: {RECIPIENTS} mails at 200/s + burst 20 took {took:?}");
    assert!(
        took >= least_time(RECIPIENTS as u32, 200, 20),
        "the two workers together went faster than the global rate: {took:?}"
    );
}
