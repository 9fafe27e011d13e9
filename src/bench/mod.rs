//! `newsletter bench`: measured figures, each beside a ceiling measured in the same run on the
//! same machine. Sets up its own database (dropped at the end) and a local SMTP sink; sends
//! traffic only to 127.0.0.1; every loop is bounded in count and time.

mod http_load;
mod sink;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::app::{self, Application};
use crate::config::{Secret, Settings};
use crate::domain::subscriber_link::{self, LinkPurpose};
use crate::domain::UpdateInput;
use crate::mail::{Envelope, ListHeaders, MailTemplates, Mailer};
use crate::store::{self, updates::Action};

use sink::Sink;

/// Longest any scenario may wait for its work to finish.
const SCENARIO_LIMIT: Duration = Duration::from_secs(600);

pub struct BenchOptions {
    pub subscribers: i64,
    pub seconds: u64,
    pub import_rows: usize,
    pub only: Vec<String>,
    pub json: std::path::PathBuf,
}

#[derive(Debug, Serialize)]
pub struct Row {
    pub scenario: String,
    pub figure: f64,
    pub unit: String,
    pub ceiling: Option<f64>,
    pub ratio: Option<f64>,
    pub note: String,
}

fn row(scenario: &str, figure: f64, unit: &str, ceiling: Option<f64>, note: String) -> Row {
    Row {
        scenario: scenario.into(),
        figure,
        unit: unit.into(),
        ceiling,
        ratio: ceiling.map(|c| figure / c),
        note,
    }
}

pub async fn run(base: &Settings, opts: BenchOptions) -> anyhow::Result<()> {
    let wants = |s: &str| opts.only.is_empty() || opts.only.iter().any(|o| o == s);
    let db_name = format!("newsletter_bench_{}", Uuid::new_v4().simple());
    let server_url = base.database.url.expose().to_owned();
    let mut admin = PgConnection::connect(&server_url)
        .await
        .context("connecting to PostgreSQL (database.url)")?;
    admin
        .execute(format!(r#"CREATE DATABASE "{db_name}""#).as_str())
        .await?;
    let result = scenarios(base, &opts, &db_name, &server_url, &wants).await;
    let _ = admin
        .execute(format!(r#"DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)"#).as_str())
        .await;
    let rows = result?;
    println!(
        "\n{:<28} {:>14} {:<12} {:>14} {:>7}  note",
        "scenario", "figure", "unit", "ceiling", "ratio"
    );
    for r in &rows {
        let ceiling = r.ceiling.map_or("-".into(), |c| format!("{c:.0}"));
        let ratio = r
            .ratio
            .map_or("-".into(), |x| format!("{:.0} %", x * 100.0));
        println!(
            "{:<28} {:>14.1} {:<12} {:>14} {:>7}  {}",
            r.scenario, r.figure, r.unit, ceiling, ratio, r.note
        );
    }
    std::fs::write(&opts.json, serde_json::to_string_pretty(&rows)?)
        .with_context(|| format!("writing {}", opts.json.display()))?;
    println!("\nwritten to {}", opts.json.display());
    Ok(())
}

/// Process CPU time (user + system) so far.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: u64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Peak resident memory of this process so far, in MB.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn wait_until<F, Fut>(what: &str, mut done: F) -> anyhow::Result<Instant>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let started = Instant::now();
    while !done().await? {
        anyhow::ensure!(
            started.elapsed() < SCENARIO_LIMIT,
            "{what} took longer than {SCENARIO_LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(Instant::now())
}

fn update_input() -> UpdateInput {
    let items: Vec<serde_json::Value> = (1..=8)
        .map(|i| {
            let topic = ["congress", "administration", "court", "asp"][i % 4];
            serde_json::json!({"title": format!("News item {i}: the Senate hears testimony on the International Criminal Court"),
                "summary": "A committee heard testimony on US cooperation with the Court. ".repeat(4),
                "source": "Reuters", "url": format!("https://news.example.org/item/{i}"), "published_on": "2026-11-20",
                "topic": topic})
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "subject": "This week in US–ICC news", "preheader": "Congress, the Court and the Assembly",
        "intro": "Dear reader, **eight** things happened this week.", "lists": ["us-icc-updates"], "news_items": items
    }))
    .expect("the bench update is valid")
}

/// `n` confirmed subscribers of the default list, `reader{i}@{domain}`.
async fn seed(pool: &PgPool, n: i64, domain: &str) -> anyhow::Result<()> {
    sqlx::query(
        "WITH people AS (
             INSERT INTO subscribers (id, email, email_normalized, name, status, confirmed_at)
             SELECT gen_random_uuid(), 'reader' || i || '@' || $2, 'reader' || i || '@' || $2,
                    'Reader ' || i, 'confirmed', now()
             FROM generate_series(1, $1) AS i RETURNING id)
         INSERT INTO subscriptions (subscriber_id, list_id, status)
         SELECT p.id, l.id, 'confirmed' FROM people p, lists l WHERE l.slug = 'us-icc-updates'",
    )
    .bind(n)
    .bind(domain)
    .execute(pool)
    .await
    .context("seeding subscribers")?;
    Ok(())
}

async fn scenarios(
    base: &Settings,
    opts: &BenchOptions,
    db_name: &str,
    server_url: &str,
    wants: &dyn Fn(&str) -> bool,
) -> anyhow::Result<Vec<Row>> {
    let sink = Sink::start().await?;
    let mut settings = base.clone();
    settings.database.url = Secret::new(store::url_with_database(server_url, db_name));
    settings.database.max_connections = 16;
    settings.smtp.url = Some(Secret::new(sink.url()));
    settings.smtp.pool_size = 16;
    settings.server.bind = "127.0.0.1:0".parse()?;
    settings.mail.postal_address = "1 Bench Street, Springfield".into();
    settings.mail.dkim = None;
    settings.sending.rate_per_second = None;
    settings.sending.domain_limits.clear();
    settings.sending.concurrency = 64;
    settings.worker.batch_size = 500;
    settings.worker.poll_interval = Duration::from_millis(20);
    settings.signup.per_ip_per_minute = u32::MAX / 2;
    settings.links.per_ip_per_minute = u32::MAX / 2;
    let pool = store::pool(&settings.database)?;
    store::migrate(&pool).await?;
    let templates = MailTemplates::load(&settings.templates.dir)?;
    let mut rows = Vec::new();

    if wants("send") {
        let n = opts.subscribers;
        seed(&pool, n, "bench.example").await?;
        let update = update_input()
            .parse()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let list_ids: Vec<Uuid> =
            sqlx::query_scalar("SELECT id FROM lists WHERE slug = 'us-icc-updates'")
                .fetch_all(&pool)
                .await?;
        let id = store::updates::create(&pool, &update, &list_ids).await?;
        let worker = app::build_worker(Arc::new(settings.clone()), pool.clone())?;
        let stop = CancellationToken::new();
        let worker_task = tokio::spawn(worker.run(stop.clone()));
        let (cpu0, t0) = (cpu_time(), Instant::now());
        store::updates::apply(&pool, id, Action::SendNow).await?;
        let first = wait_until("the first mail", || async { Ok(sink.received() > 0) }).await?;
        let rows_created = wait_until("creating the delivery rows", || async {
            Ok(store::updates::get(&pool, id)
                .await?
                .is_some_and(|u| u.status != "scheduled"))
        })
        .await?;
        let done = wait_until("sending", || async { Ok(sink.received() >= n as u64) }).await?;
        let cpu = cpu_time() - cpu0;
        let rss = peak_rss_mb();
        stop.cancel();
        let _ = worker_task.await;
        let elapsed = done - t0;
        let rate = n as f64 / elapsed.as_secs_f64();

        let ceiling = bare_pool_ceiling(&settings, &templates, n as usize).await?;
        rows.push(row(
            "send",
            rate,
            "mails/s",
            Some(ceiling),
            format!("{n} subscribers, 8 news items; claim → render → SMTP → ledger"),
        ));
        rows.push(row(
            "send CPU per mail",
            cpu.as_secs_f64() * 1e6 / n as f64,
            "µs",
            None,
            "whole process, sink included".into(),
        ));
        rows.push(row(
            "start: first mail",
            (first - t0).as_secs_f64(),
            "s",
            None,
            format!("after send now, {n} subscribers"),
        ));
        rows.push(row(
            "start: rows created",
            (rows_created - t0).as_secs_f64(),
            "s",
            None,
            "all delivery rows, one statement".into(),
        ));
        rows.push(row(
            "peak RSS after send",
            rss,
            "MB",
            None,
            "VmHWM of the bench process".into(),
        ));
        rows.push(render_only(&settings, &templates, 20_000)?);
    }

    if wants("signup") {
        rows.extend(signup(&settings, &pool, opts.seconds).await?);
    }
    if wants("unsubscribe") {
        rows.push(unsubscribe(&settings, &pool, opts.seconds).await?);
    }
    if wants("import") {
        rows.extend(import(&pool, opts.import_rows).await?);
    }
    Ok(rows)
}

fn bench_message(
    settings: &Settings,
    templates: &MailTemplates,
    i: usize,
) -> anyhow::Result<lettre::Message> {
    let update = update_input()
        .parse()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let email = format!("reader{i}@bench.example");
    let data = serde_json::json!({
        "subject": update.subject, "preheader": update.preheader, "intro": update.intro_markdown,
        "intro_html": crate::mail::markdown::to_safe_html(&update.intro_markdown),
        "news_items": update.news_items, "name": format!("Reader {i}"), "email": email,
        "unsubscribe_url": "https://bench.example/unsubscribe/x", "manage_url": "https://bench.example/manage/x",
        "web_url": "https://bench.example/updates/x", "postal_address": settings.mail.postal_address,
    });
    let envelope = Envelope::new(
        &settings.mail,
        &email,
        None,
        format!("bench.{i}@bench.example"),
    );
    let list = ListHeaders {
        unsubscribe_url: "https://bench.example/unsubscribe/x".into(),
        list_id: "bench.example".into(),
    };
    crate::mail::bulk_message(templates, "update", &envelope, &data, &list)
}

/// Templates + message building + formatting only, on one task.
fn render_only(settings: &Settings, templates: &MailTemplates, n: usize) -> anyhow::Result<Row> {
    let started = Instant::now();
    let mut bytes = 0;
    for i in 0..n {
        bytes += bench_message(settings, templates, i)?.formatted().len();
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    Ok(row(
        "render only",
        rate,
        "mails/s",
        None,
        format!("one thread, {} KB a mail", bytes / n / 1024),
    ))
}

/// The same number of pre-built messages pushed by our bare pool to the same sink.
async fn bare_pool_ceiling(
    settings: &Settings,
    templates: &MailTemplates,
    n: usize,
) -> anyhow::Result<f64> {
    let mailer = Arc::new(Mailer::from_settings(&settings.smtp, None)?);
    let messages: Vec<lettre::Message> = (0..n)
        .map(|i| bench_message(settings, templates, i))
        .collect::<anyhow::Result<_>>()?;
    let slots = Arc::new(tokio::sync::Semaphore::new(
        settings.sending.concurrency as usize,
    ));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for m in messages {
        let permit = Arc::clone(&slots).acquire_owned().await?;
        let mailer = Arc::clone(&mailer);
        tasks.spawn(async move {
            let ok = mailer.send(m).await.is_ok();
            drop(permit);
            ok
        });
        anyhow::ensure!(
            started.elapsed() < SCENARIO_LIMIT,
            "the ceiling run took too long"
        );
    }
    while tasks.join_next().await.is_some() {}
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Serves `router` on 127.0.0.1 until the token is cancelled; returns the port.
async fn serve(router: axum::Router, stop: CancellationToken) -> anyhow::Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(stop.cancelled_owned())
        .await;
    });
    Ok(port)
}

const CONNECTIONS: usize = 64;
const FORM: &str = "application/x-www-form-urlencoded";

async fn signup(settings: &Settings, pool: &PgPool, seconds: u64) -> anyhow::Result<Vec<Row>> {
    let duration = Duration::from_secs(seconds);
    let stop = CancellationToken::new();
    let app = Application::build(settings.clone(), false).await?;
    let port = app.port();
    tokio::spawn(app.run_until(stop.clone()));
    let ours = http_load::post_load(port, FORM, CONNECTIONS, duration, |c, n| {
        (
            "/subscriptions".into(),
            format!("email=s{c}x{n}%40bench.example"),
        )
    })
    .await?;
    stop.cancel();

    sqlx::query("CREATE TABLE bench_ceiling (email text PRIMARY KEY)")
        .execute(pool)
        .await?;
    let bare = axum::Router::new()
        .route(
            "/x",
            axum::routing::post(
                |axum::extract::State(pool): axum::extract::State<PgPool>,
                 body: axum::body::Bytes| async move {
                    let email = String::from_utf8_lossy(&body).into_owned();
                    match sqlx::query(
                        "INSERT INTO bench_ceiling (email) VALUES ($1) ON CONFLICT DO NOTHING",
                    )
                    .bind(email)
                    .execute(&pool)
                    .await
                    {
                        Ok(_) => axum::http::StatusCode::NO_CONTENT,
                        Err(_) => axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    }
                },
            ),
        )
        .with_state(pool.clone());
    let stop = CancellationToken::new();
    let port = serve(bare, stop.clone()).await?;
    let ceiling = http_load::post_load(port, FORM, CONNECTIONS, duration, |c, n| {
        ("/x".into(), format!("e{c}x{n}"))
    })
    .await?;
    stop.cancel();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok(vec![
        row(
            "signup",
            ours.per_second(),
            "requests/s",
            Some(ceiling.per_second()),
            format!(
                "{CONNECTIONS} connections, {seconds} s, {} 5xx",
                ours.errors
            ),
        ),
        row(
            "signup p50",
            ms(ours.percentile(0.5)),
            "ms",
            Some(ms(ceiling.percentile(0.5))),
            "latency".into(),
        ),
        row(
            "signup p99",
            ms(ours.percentile(0.99)),
            "ms",
            Some(ms(ceiling.percentile(0.99))),
            "latency".into(),
        ),
    ])
}

async fn unsubscribe(settings: &Settings, pool: &PgPool, seconds: u64) -> anyhow::Result<Row> {
    seed(pool, 20_000, "unsubscribe.example").await?;
    let people: Vec<(Uuid, i32)> = sqlx::query_as(
        "SELECT id, link_version FROM subscribers WHERE email_normalized LIKE '%@unsubscribe.example'",
    )
    .fetch_all(pool)
    .await?;
    let secret = settings.security.secret_key.expose().as_bytes();
    let paths: Arc<Vec<String>> = Arc::new(
        people
            .iter()
            .map(|(id, v)| {
                format!(
                    "/unsubscribe/{}",
                    subscriber_link::sign(secret, LinkPurpose::Unsubscribe, *id, *v).as_str()
                )
            })
            .collect(),
    );
    let stop = CancellationToken::new();
    let app = Application::build(settings.clone(), false).await?;
    let port = app.port();
    tokio::spawn(app.run_until(stop.clone()));
    let result = http_load::post_load(
        port,
        FORM,
        CONNECTIONS,
        Duration::from_secs(seconds),
        move |c, n| {
            (
                paths[(n * CONNECTIONS + c) % paths.len()].clone(),
                "List-Unsubscribe=One-Click".into(),
            )
        },
    )
    .await?;
    stop.cancel();
    Ok(row(
        "unsubscribe (one-click)",
        result.per_second(),
        "requests/s",
        None,
        format!("{CONNECTIONS} connections, {} 5xx", result.errors),
    ))
}

async fn import(pool: &PgPool, n: usize) -> anyhow::Result<Vec<Row>> {
    use sqlx::postgres::PgPoolCopyExt;
    let mut csv = String::from("email,name\n");
    for i in 0..n {
        csv.push_str(&format!("imported{i}@bench.example,Imported {i}\n"));
    }
    let file = std::env::temp_dir().join(format!("newsletter-bench-{}.csv", Uuid::new_v4()));
    std::fs::write(&file, &csv)?;
    let started = Instant::now();
    let imported = crate::cli::run_import(pool, &file, &[], "bench").await;
    let ours = n as f64 / started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&file);
    imported?;

    sqlx::query("CREATE TABLE bench_copy (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), email text UNIQUE, name text)")
        .execute(pool)
        .await?;
    let started = Instant::now();
    let mut copy = pool
        .copy_in_raw("COPY bench_copy (email, name) FROM STDIN (FORMAT csv, HEADER true)")
        .await?;
    copy.send(csv.as_bytes()).await?;
    copy.finish().await?;
    let ceiling = n as f64 / started.elapsed().as_secs_f64();
    Ok(vec![row(
        "import",
        ours,
        "rows/s",
        Some(ceiling),
        format!("{n} rows through newsletter import; ceiling: COPY"),
    )])
}
