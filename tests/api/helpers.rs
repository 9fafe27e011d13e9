//! Test harness: a fresh PostgreSQL database per test, the real service on a random port, and a
//! real SMTP server over TCP.

use std::time::Duration;

use newsletter::app::Application;
use newsletter::config::Settings;
use newsletter::store;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use toml::Value;
use uuid::Uuid;

use crate::smtp_server::TestSmtp;

pub const SECRET_KEY: &str = "test-secret-key-0123456789abcdef-0123456789";

/// The Python of `target/pyenv`, where `scripts/test` installs the third-party checkers
/// (dkimpy, flufl.bounce); `NEWSLETTER_TEST_PYTHON` names another.
pub fn python() -> std::path::PathBuf {
    std::env::var_os("NEWSLETTER_TEST_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/pyenv/bin/python")
        })
}

/// The server the tests create their databases on (`DATABASE_URL`, any database on it).
pub fn server_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A new, migrated database; dropped (with its connections) when the guard drops.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let db = Self::empty().await;
        let pool = PgPool::connect(&db.url)
            .await
            .expect("connecting to the test database");
        store::migrate(&pool)
            .await
            .expect("migrating the test database");
        pool.close().await;
        db
    }

    /// A new database with no tables at all (not migrated).
    pub async fn empty() -> Self {
        let name = format!("newsletter_test_{}", Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&server_url())
            .await
            .expect("cannot reach PostgreSQL: set DATABASE_URL or run scripts/test");
        conn.execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
            .await
            .expect("creating the test database");
        let url = newsletter::store::url_with_database(&server_url(), &name);
        Self { name, url }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&server_url()).await {
                    let _ = conn
                        .execute(
                            format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str(),
                        )
                        .await;
                }
            });
        })
        .join();
    }
}

/// Settings for a test: fast polling and retries, a generous rate limit, mail to `smtp_url`.
pub fn test_settings(db_url: &str, smtp_url: &str, overrides: &[(&str, Value)]) -> Settings {
    let mut all: Vec<(&str, Value)> = vec![
        ("server.bind", "127.0.0.1:0".into()),
        ("database.url", db_url.into()),
        // generous: a busy CI machine may be slow to open a connection (no test depends on
        // speed); the test of an unreachable database sets its own
        ("database.acquire_timeout_seconds", 10.into()),
        ("smtp.url", smtp_url.into()),
        ("smtp.timeout_seconds", 5.into()),
        ("security.secret_key", SECRET_KEY.into()),
        ("signup.per_ip_per_minute", 10_000.into()),
        ("links.per_ip_per_minute", 10_000.into()),
        ("worker.poll_interval_ms", 50.into()),
        ("worker.lease_seconds", 30.into()),
        ("sending.backoff_seconds", Value::Array(vec![1.into()])),
        // The tests' feed servers listen on 127.0.0.1.
        ("feeds.allow_private_addresses", true.into()),
        // Tests of other things sign staff in with a password alone; the second-factor tests
        // (`admin::second_factor`, the first-run walk) set the rule they test.
        ("admin.require_second_factor", "none".into()),
        (
            "mail.postal_address",
            "1 Test Street, Springfield, IL 62701, USA".into(),
        ),
    ];
    all.extend(overrides.iter().cloned());
    Settings::from_overrides(all).expect("test settings are valid")
}

pub struct TestApp {
    pub address: String,
    /// The port of the app's inbound SMTP listener, when `inbound.bind` is set.
    pub inbound_port: Option<u16>,
    pub pool: PgPool,
    pub smtp: TestSmtp,
    pub settings: Settings,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    // dropped last: the database outlives the pool and the server
    _db: TestDatabase,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub async fn spawn_app_with(overrides: &[(&str, Value)]) -> TestApp {
    let smtp = TestSmtp::start().await;
    spawn_app_on(smtp, overrides).await
}

pub async fn spawn_app_on(smtp: TestSmtp, overrides: &[(&str, Value)]) -> TestApp {
    let url = smtp.url();
    spawn(smtp, &url, overrides).await
}

/// The app sending to a relay that is not our test server (its `smtp` handle stays unused).
pub async fn spawn_app_on_url(smtp_url: &str, overrides: &[(&str, Value)]) -> TestApp {
    spawn(TestSmtp::start().await, smtp_url, overrides).await
}

/// The web server alone, no worker: start workers with [`TestApp::start_worker`].
pub async fn spawn_app_without_worker(overrides: &[(&str, Value)]) -> TestApp {
    let smtp = TestSmtp::start().await;
    let url = smtp.url();
    spawn_with(smtp, &url, overrides, false).await
}

async fn spawn(smtp: TestSmtp, smtp_url: &str, overrides: &[(&str, Value)]) -> TestApp {
    spawn_with(smtp, smtp_url, overrides, true).await
}

async fn spawn_with(
    smtp: TestSmtp,
    smtp_url: &str,
    overrides: &[(&str, Value)],
    with_worker: bool,
) -> TestApp {
    spawn_with_database(
        TestDatabase::create().await,
        smtp,
        smtp_url,
        overrides,
        with_worker,
    )
    .await
}

/// The app, with its worker, on a database made elsewhere (e.g. one at an older schema that
/// the app migrates as it starts), sending to a new test relay.
pub async fn spawn_app_on_database(db: TestDatabase, overrides: &[(&str, Value)]) -> TestApp {
    let smtp = TestSmtp::start().await;
    let url = smtp.url();
    spawn_with_database(db, smtp, &url, overrides, true).await
}

async fn spawn_with_database(
    db: TestDatabase,
    smtp: TestSmtp,
    smtp_url: &str,
    overrides: &[(&str, Value)],
    with_worker: bool,
) -> TestApp {
    try_spawn_with_database(db, smtp, smtp_url, overrides, with_worker)
        .await
        .expect("building the app")
}

/// Like [`spawn_app_with`], but a failure to start (e.g. a `server.bind` port another test
/// took meanwhile) is returned.
pub async fn try_spawn_app_with(overrides: &[(&str, Value)]) -> anyhow::Result<TestApp> {
    let smtp = TestSmtp::start().await;
    let url = smtp.url();
    try_spawn_with_database(TestDatabase::create().await, smtp, &url, overrides, true).await
}

async fn try_spawn_with_database(
    db: TestDatabase,
    smtp: TestSmtp,
    smtp_url: &str,
    overrides: &[(&str, Value)],
    with_worker: bool,
) -> anyhow::Result<TestApp> {
    let settings = test_settings(&db.url, smtp_url, overrides);
    let app = Application::build(settings.clone(), with_worker).await?;
    let address = format!("http://127.0.0.1:{}", app.port());
    let inbound_port = app.inbound_port();
    let pool = app.pool().clone();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run_until(shutdown.clone()));
    Ok(TestApp {
        address,
        inbound_port,
        pool,
        smtp,
        settings,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        shutdown,
        server: Some(server),
        _db: db,
    })
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("GET failed")
    }

    pub async fn post_form(&self, path: &str, body: &str) -> reqwest::Response {
        self.post_raw(
            path,
            "application/x-www-form-urlencoded",
            body.as_bytes().to_vec(),
        )
        .await
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.post_raw(path, "application/json", serde_json::to_vec(body).unwrap())
            .await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("POST failed")
    }

    pub async fn signup(&self, email: &str) -> reqwest::Response {
        self.post_form("/subscriptions", &format!("email={}", urlencode(email)))
            .await
    }

    /// Waits until no mail is due or in flight (mail held back for later may remain).
    pub async fn wait_for_queue_to_drain(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let busy: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM deliveries WHERE status = 'sending'
                 OR (status IN ('queued', 'deferred') AND next_attempt_at <= now())",
            )
            .fetch_one(&self.pool)
            .await
            .unwrap();
            if busy == 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "queue did not drain: {busy} left"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Counts rows in the tables a sign-up writes to.
    pub async fn row_counts(&self) -> (i64, i64, i64, i64) {
        sqlx::query_as(
            "SELECT (SELECT count(*) FROM subscribers), (SELECT count(*) FROM subscriptions),
                    (SELECT count(*) FROM consent_events), (SELECT count(*) FROM deliveries)",
        )
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }

    pub async fn subscriber_status(&self, email: &str) -> Option<String> {
        sqlx::query_scalar("SELECT status FROM subscribers WHERE email_normalized = lower($1)")
            .bind(email)
            .fetch_optional(&self.pool)
            .await
            .unwrap()
    }

    /// A worker on this app's database and relay, with its own settings (the app's test
    /// settings with `overrides`), as `newsletter worker` runs one; it stops with the app.
    pub fn start_worker(&self, overrides: &[(&str, Value)]) {
        let settings = test_settings(
            self.settings.database.url.expose(),
            &self.smtp.url(),
            overrides,
        );
        let worker =
            newsletter::app::build_worker(std::sync::Arc::new(settings), self.pool.clone())
                .expect("building the worker");
        tokio::spawn(worker.run(self.shutdown.child_token()));
    }

    /// The URL of this app's database.
    pub fn database_url(&self) -> &str {
        &self._db.url
    }

    /// Sends `raw` by SMTP to the app's inbound listener, from the null sender (as bounces
    /// come) to `rcpt`: the listener's final reply, or its refusal.
    pub async fn send_report(
        &self,
        rcpt: &str,
        raw: &[u8],
    ) -> Result<lettre::transport::smtp::response::Response, lettre::transport::smtp::Error> {
        use lettre::AsyncTransport;
        let port = self.inbound_port.expect("inbound.bind is set for this app");
        let transport =
            lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous("127.0.0.1")
                .port(port)
                .timeout(Some(Duration::from_secs(10)))
                .build();
        let envelope = lettre::address::Envelope::new(None, vec![rcpt.parse().unwrap()]).unwrap();
        transport.send_raw(&envelope, raw).await
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub fn urlencode(s: &str) -> String {
    form_urlencoded_byte_serialize(s)
}

fn form_urlencoded_byte_serialize(s: &str) -> String {
    serde_urlencoded::to_string([("v", s)]).unwrap()[2..].to_owned()
}

/// The confirmation link in a received mail's text part.
pub fn confirmation_link(raw: &[u8]) -> String {
    let message = mail_parser::MessageParser::default()
        .parse(raw)
        .expect("mail parses as MIME");
    let text = message.body_text(0).expect("mail has a text part");
    text.split_whitespace()
        .find(|w| w.contains("/subscriptions/confirm?token="))
        .expect("text part carries the confirmation link")
        .to_owned()
}

/// A fresh API token of `scope` (`read`, `write` or `send`), made as `newsletter api-token
/// create` makes one.
pub async fn make_api_token(pool: &sqlx::PgPool, name: &str, scope: &str) -> String {
    let input = newsletter::ops::api_tokens::TokenInput {
        name: name.into(),
        scope: scope.into(),
        expires_days: String::new(),
    };
    let actor = newsletter::ops::Actor::CommandLine;
    let made = newsletter::ops::api_tokens::create(pool, &actor, &input)
        .await
        .unwrap();
    made.secret.as_str().to_owned()
}

impl TestApp {
    /// A fresh API token of scope `send` (an admin's rights), as `newsletter api-token create`
    /// makes one by default.
    pub async fn api_token(&self) -> String {
        make_api_token(&self.pool, "tests", "send").await
    }

    /// A fresh API token of `scope`.
    pub async fn api_token_of(&self, scope: &str) -> String {
        make_api_token(&self.pool, scope, scope).await
    }

    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<serde_json::Value>,
    ) -> reqwest::Response {
        let mut request = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("API request failed")
    }

    /// `n` confirmed subscribers of the default list, `reader{i}@{domain}` named "Reader {i}".
    pub async fn seed_confirmed(&self, n: i64, domain: &str) -> Vec<(Uuid, String)> {
        self.seed_confirmed_from(0, n, domain).await
    }

    pub async fn seed_confirmed_from(
        &self,
        start: i64,
        n: i64,
        domain: &str,
    ) -> Vec<(Uuid, String)> {
        sqlx::query_as(
            "WITH people AS (
                 INSERT INTO subscribers (id, email, email_normalized, name, status, confirmed_at)
                 SELECT gen_random_uuid(), 'reader' || i || '@' || $3, 'reader' || i || '@' || $3,
                        'Reader ' || i, 'confirmed', now()
                 FROM generate_series($1::bigint, $1::bigint + $2 - 1) AS i
                 RETURNING id, email)
             , subs AS (
                 INSERT INTO subscriptions (subscriber_id, list_id, status)
                 SELECT p.id, l.id, 'confirmed' FROM people p, lists l WHERE l.slug = 'us-icc-updates')
             SELECT id, email FROM people ORDER BY email",
        )
        .bind(start)
        .bind(n)
        .bind(domain)
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }

    /// Creates a draft update to the default list and returns its id.
    pub async fn create_update(&self, token: &str, subject: &str) -> String {
        let body = serde_json::json!({
            "subject": subject, "preheader": "This week in US–ICC news",
            "intro": "Dear reader, *three* things happened.", "lists": ["us-icc-updates"],
            "news_items": [
                {"title": "Senate hearing on the ICC", "summary": "The committee heard testimony.",
                 "source": "Reuters", "url": "https://example.org/senate", "published_on": "2026-11-20", "topic": "congress"},
                {"title": "Assembly of States Parties opens", "summary": "Delegates met in The Hague.",
                 "source": "ICC", "url": "https://example.org/asp", "published_on": "2026-11-21", "topic": "asp"}
            ]
        });
        self.create_update_from(token, body).await
    }

    /// Creates a draft update from `body` (as `POST /api/v1/updates` takes it); returns its id.
    pub async fn create_update_from(&self, token: &str, body: serde_json::Value) -> String {
        let response = self
            .api(reqwest::Method::POST, "/api/v1/updates", token, Some(body))
            .await;
        assert_eq!(response.status(), 201, "creating an update");
        response.json::<serde_json::Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn update_view(&self, token: &str, id: &str) -> serde_json::Value {
        self.api(
            reqwest::Method::GET,
            &format!("/api/v1/updates/{id}"),
            token,
            None,
        )
        .await
        .json()
        .await
        .unwrap()
    }

    /// Waits until the update reaches `status`.
    pub async fn wait_for_update_status(&self, id: &str, status: &str) {
        self.wait_for_update_status_within(id, status, Duration::from_secs(60))
            .await;
    }

    /// Waits up to `limit` until the update reaches `status`.
    pub async fn wait_for_update_status_within(&self, id: &str, status: &str, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let current: String =
                sqlx::query_scalar("SELECT status FROM updates WHERE id = $1::uuid")
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await
                    .unwrap();
            if current == status {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "update stayed {current}, expected {status}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until the update has `n` delivery rows: a started update's rows are written as a
    /// worker claims them, not with the start.
    pub async fn wait_for_delivery_rows(&self, id: &str, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let rows = self.delivery_statuses(id).await.len();
            if rows >= n {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the update has {rows} delivery rows, expected {n}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Delivery statuses of an update by subscriber e-mail: (e-mail, status, attempts).
    pub async fn delivery_statuses(&self, id: &str) -> Vec<(String, String, i32)> {
        sqlx::query_as(
            "SELECT s.email, d.status, d.attempts FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
             WHERE d.update_id = $1::uuid ORDER BY s.email",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }

    /// Mails claimed before a pause, cancel or unsubscribe finish their attempt; waits for them.
    pub async fn wait_for_no_mail_in_flight(&self, update_id: &str) {
        for _ in 0..400 {
            let in_flight: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM deliveries WHERE update_id = $1::uuid AND status = 'sending'",
            )
            .bind(update_id)
            .fetch_one(&self.pool)
            .await
            .unwrap();
            if in_flight == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("mails stayed in flight");
    }

    /// Sends an update now through the API.
    pub async fn send_now(&self, token: &str, id: &str) {
        let response = self
            .api(
                reqwest::Method::POST,
                &format!("/api/v1/updates/{id}/send"),
                token,
                None,
            )
            .await;
        assert_eq!(response.status(), 200, "sending update {id}");
    }

    /// Creates a draft to the default list and sends it now; returns its id.
    pub async fn create_and_send(&self, token: &str, subject: &str) -> String {
        let id = self.create_update(token, subject).await;
        self.send_now(token, &id).await;
        id
    }
}

/// Every row of every table, as JSON objects, by table; and each table's columns.
pub async fn snapshot(
    pool: &PgPool,
) -> std::collections::BTreeMap<String, (std::collections::BTreeSet<String>, Vec<serde_json::Value>)>
{
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE'
           AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut all = std::collections::BTreeMap::new();
    for table in tables {
        let columns: Vec<String> = sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name = $1",
        )
        .bind(&table)
        .fetch_all(pool)
        .await
        .unwrap();
        let rows: serde_json::Value = sqlx::query_scalar(&format!(
            r#"SELECT coalesce(jsonb_agg(to_jsonb(t)), '[]') FROM "{table}" t"#
        ))
        .fetch_one(pool)
        .await
        .unwrap();
        let serde_json::Value::Array(rows) = rows else {
            unreachable!()
        };
        all.insert(table, (columns.into_iter().collect(), rows));
    }
    all
}

/// `text` (a sent mail's part) with each of the app's `/l/{code}` addresses replaced by the
/// link it stands for (`update_links`): what the mail says, for tests of its content.
pub async fn unrewritten(app: &TestApp, text: &str) -> String {
    let links: Vec<(String, String)> = sqlx::query_as("SELECT code, url FROM update_links")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    let mut out = text.to_owned();
    for (code, url) in links {
        let redirect = app.settings.server.base_url.join(&format!("/l/{code}"));
        out = out.replace(&redirect, &url);
    }
    out
}
