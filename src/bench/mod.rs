//! `newsletter bench`: measured figures, each beside a ceiling measured in the same run on the
//! same machine. Sets up its own database (dropped at the end) and a local SMTP sink; sends
//! traffic only to 127.0.0.1; every loop is bounded in count and time.

mod http_load;
mod load;
mod search;
mod send;
mod sink;
mod workers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::app::Application;
use crate::config::{Secret, Settings};
use crate::domain::subscriber_link::{self, LinkPurpose};
use crate::domain::UpdateInput;
use crate::mail::{Envelope, ListHeaders, MailTemplates, Mailer};
use crate::store;

use sink::Sink;

/// Longest any scenario may wait for its work to finish (a send run gets 1 ms more per mail).
const SCENARIO_LIMIT: Duration = Duration::from_secs(600);
/// Pre-built messages the ceiling run pushes through a bare pool, cycling over 1,000 of them.
const CEILING_MAILS: usize = 100_000;

pub struct BenchOptions {
    pub subscribers: i64,
    /// List sizes of the scale scenario.
    pub scale: Vec<i64>,
    pub seconds: u64,
    /// The fixed-rate load: requests per second on each endpoint, and for how long.
    pub load_rate: u32,
    pub load_seconds: u64,
    pub import_rows: usize,
    /// Worker process counts of the workers scenario.
    pub workers: Vec<usize>,
    /// Subscribers the search scenario searches among.
    pub search_subscribers: i64,
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
    println!("bench database: {db_name} (dropped at the end)");
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
    stat_cpu_time("/proc/self/stat")
}

/// User + system CPU time from a `/proc/…/stat` file (a process's or a thread's).
fn stat_cpu_time(path: &str) -> Duration {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
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

/// CPU time (user + system) of every process named `postgres` on this machine, with that of
/// their children that ended (`cutime` + `cstime`: the postmaster reaps its backends, so a
/// connection closed during the send still counts): the database server's share of the work,
/// when it runs here (None when none is visible).
fn postgres_cpu_time() -> Option<Duration> {
    let mut ticks = 0u64;
    let mut seen = false;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((name, rest)) = stat.split_once(") ") else {
            continue;
        };
        if !name.ends_with("(postgres") {
            continue;
        }
        let fields: Vec<&str> = rest.split_whitespace().collect();
        seen = true;
        // utime, stime, cutime, cstime: fields 14 to 17 of stat, 11 to 14 after the state
        ticks += fields[11.min(fields.len())..15.min(fields.len())]
            .iter()
            .filter_map(|t| t.parse::<u64>().ok())
            .sum::<u64>();
    }
    seen.then(|| Duration::from_millis(ticks * 10))
}

fn status_kb(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// Peak resident memory of this process since the last `reset_peak_rss`, in MB.
fn peak_rss_mb() -> f64 {
    status_kb("VmHWM:") / 1024.0
}

/// Resident memory of this process now, in MB.
fn rss_mb() -> f64 {
    status_kb("VmRSS:") / 1024.0
}

/// Starts a new peak-RSS window (Linux: writing 5 to clear_refs resets VmHWM).
fn reset_peak_rss() {
    if let Err(e) = std::fs::write("/proc/self/clear_refs", "5") {
        tracing::warn!(error = %e, "could not reset the peak RSS; figures are peaks since start");
    }
}

/// Polls `done` every `poll` until it holds; an error after `limit`.
async fn wait_until<F, Fut>(
    what: &str,
    limit: Duration,
    poll: Duration,
    mut done: F,
) -> anyhow::Result<Instant>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let started = Instant::now();
    while !done().await? {
        anyhow::ensure!(
            started.elapsed() < limit,
            "{what} took longer than {limit:?}"
        );
        tokio::time::sleep(poll).await;
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

/// `n` confirmed subscribers of the list `list`, `reader{i}@{domain}`, 100,000 a statement.
async fn seed(pool: &PgPool, n: i64, domain: &str, list: &str) -> anyhow::Result<()> {
    const CHUNK: i64 = 100_000;
    for from in (1..=n).step_by(CHUNK as usize) {
        sqlx::query(
            "WITH people AS (
                 INSERT INTO subscribers (id, email, email_normalized, name, status, confirmed_at)
                 SELECT gen_random_uuid(), 'reader' || i || '@' || $3, 'reader' || i || '@' || $3,
                        'Reader ' || i, 'confirmed', now()
                 FROM generate_series($1, $2) AS i RETURNING id)
             INSERT INTO subscriptions (subscriber_id, list_id, status)
             SELECT p.id, l.id, 'confirmed' FROM people p, lists l WHERE l.slug = $4",
        )
        .bind(from)
        .bind((from + CHUNK - 1).min(n))
        .bind(domain)
        .bind(list)
        .execute(pool)
        .await
        .context("seeding subscribers")?;
    }
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
    let templates = MailTemplates::load(&settings.templates)?;
    let mut rows = Vec::new();

    let mut runs: Vec<send::SendRun> = Vec::new();
    if wants("send") {
        // Seeded first: neither the statements nor PostgreSQL's CPU below count the seeding.
        let n = opts.subscribers;
        let list = send::seed_list(&pool, n, &n.to_string()).await?;
        let statements = statements_start(&pool).await;
        let pg0 = postgres_cpu_time();
        let run = send::run(&settings, &pool, &sink, n, list).await?;
        let statements = match statements {
            Ok(()) => statements_per_mail(&pool, run.subscribers).await,
            Err(why) => Ok(vec![row("PostgreSQL statements", 0.0, "-", None, why)]),
        }?;
        let pg = postgres_cpu_time()
            .zip(pg0)
            .map(|(b, a)| b.saturating_sub(a));
        let n = run.subscribers;
        let render = render_only(&settings, &templates, 20_000)?;
        let ceiling_mails = usize::try_from(n).unwrap_or(0).clamp(1, CEILING_MAILS);
        let ceiling = bare_pool_ceiling(&settings, &templates, &sink, ceiling_mails).await?;
        rows.push(row(
            "send",
            run.mails_per_second,
            "mails/s",
            Some(ceiling.mails_per_second),
            format!("{n} subscribers, 8 news items; claim → render → SMTP → ledger. Ceiling: {ceiling_mails} pre-built mails through a bare pool"),
        ));
        let per_mail = |d: Duration| d.as_secs_f64() * 1e6;
        let total = per_mail(run.cpu_per_mail);
        let sink_us = per_mail(run.sink_cpu_per_mail);
        let sender = total - sink_us;
        let render_us = 1e6 / render[1].figure;
        let smtp_us = per_mail(
            ceiling
                .cpu_per_mail
                .saturating_sub(ceiling.sink_cpu_per_mail),
        );
        rows.push(row(
            "send CPU per mail",
            total,
            "µs",
            None,
            "this process: worker and sink".into(),
        ));
        rows.push(row(
            "  the sink",
            sink_us,
            "µs",
            None,
            "the in-process SMTP sink's own thread: the receiving end, not the sender's work"
                .into(),
        ));
        rows.push(row(
            "  sender (without the sink)",
            sender,
            "µs",
            None,
            "the worker: render, SMTP client, queue and ledger".into(),
        ));
        rows.push(row(
            "  render + build",
            render_us,
            "µs",
            None,
            "from the render-only run (stencil)".into(),
        ));
        rows.push(row(
            "  SMTP client",
            smtp_us,
            "µs",
            None,
            "from the ceiling run, its sink's thread left out".into(),
        ));
        rows.push(row(
            "  queue, ledger, rest",
            (sender - render_us - smtp_us).max(0.0),
            "µs",
            None,
            "the remainder: claims, lookups, records, scheduling".into(),
        ));
        if let Some(pg) = pg {
            rows.push(row(
                "  PostgreSQL server",
                per_mail(pg) / n as f64,
                "µs",
                None,
                "CPU of the postgres processes on this machine during the send".into(),
            ));
        }
        rows.push(row(
            "peak RSS during send",
            run.peak_rss_mb,
            "MB",
            None,
            "VmHWM of the bench process".into(),
        ));
        rows.extend(render);
        rows.extend(statements);
        runs.push(run);
    }
    if wants("scale") {
        for &n in &opts.scale {
            if !runs.iter().any(|r| r.subscribers == n) {
                let list = send::seed_list(&pool, n, &n.to_string()).await?;
                runs.push(send::run(&settings, &pool, &sink, n, list).await?);
            }
        }
        runs.sort_by_key(|r| r.subscribers);
        for r in runs.iter().filter(|r| opts.scale.contains(&r.subscribers)) {
            rows.push(row(
                &format!("scale {}", r.subscribers),
                r.mails_per_second,
                "mails/s",
                None,
                format!(
                    "peak RSS {:.0} MB, CPU {:.0} µs a mail",
                    r.peak_rss_mb,
                    r.cpu_per_mail.as_secs_f64() * 1e6
                ),
            ));
        }
    }
    if let Some(largest) = runs.iter().max_by_key(|r| r.subscribers) {
        let n = largest.subscribers;
        rows.push(row(
            "start: first mail",
            largest.first_mail.as_secs_f64(),
            "s",
            None,
            format!("after send now, {n} subscribers"),
        ));
        rows.push(row(
            "start: rows written",
            largest.rows_written.as_secs_f64(),
            "s",
            None,
            format!("all {n} delivery rows, in chunks, while sending"),
        ));
    }

    if wants("workers") {
        rows.extend(workers::run(&settings, &pool, &sink, opts.subscribers, &opts.workers).await?);
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
    if wants("search") {
        rows.extend(search::run(&pool, opts.search_subscribers).await?);
    }
    if wants("load") {
        rows.extend(
            load::run(
                &settings,
                &pool,
                opts.load_rate,
                Duration::from_secs(opts.load_seconds),
            )
            .await?,
        );
    }
    Ok(rows)
}

/// The envelope of bench mail `i` to `email`.
fn bench_envelope<'a>(settings: &Settings, email: &'a str, i: usize) -> Envelope<'a> {
    Envelope::new(
        &settings.mail,
        email,
        None,
        format!("bench.{i}@bench.example"),
    )
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
        "web_url": "https://bench.example/archive/2026-11-20-x", "postal_address": settings.mail.postal_address,
    });
    let envelope = bench_envelope(settings, &email, i);
    let list = ListHeaders {
        unsubscribe_url: "https://bench.example/unsubscribe/x".into(),
        unsubscribe_mailto: None,
        list_id: "<bench.example>".into(),
        feedback_id: "bench:bench:update:bench.example".into(),
    };
    crate::mail::bulk_message(templates, "update", &envelope, &data, &list)
}

/// Starts counting statements with pg_stat_statements; why not, when the server lacks it
/// (it must be in `shared_preload_libraries`).
async fn statements_start(pool: &PgPool) -> Result<(), String> {
    let ready = async {
        sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .execute(pool)
            .await?;
        sqlx::query("SELECT pg_stat_statements_reset()")
            .execute(pool)
            .await?;
        Ok::<_, sqlx::Error>(())
    };
    ready
        .await
        .map_err(|e| format!("not measured: pg_stat_statements is not loaded on this server ({e})"))
}

/// The statements this database ran since `statements_start`, costliest first (at most 8):
/// calls and execution time per mail.
async fn statements_per_mail(pool: &PgPool, mails: i64) -> anyhow::Result<Vec<Row>> {
    let top: Vec<(i64, f64, String)> = sqlx::query_as(
        "SELECT s.calls, s.total_exec_time,
                left(regexp_replace(s.query, '\\s+', ' ', 'g'), 70)
         FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
         WHERE d.datname = current_database() AND s.query NOT ILIKE '%pg_stat_statements%'
         ORDER BY s.total_exec_time DESC LIMIT 8",
    )
    .fetch_all(pool)
    .await
    .context("reading pg_stat_statements")?;
    let mails = mails.max(1) as f64;
    let (calls, ms): (i64, f64) = top.iter().fold((0, 0.0), |(c, t), s| (c + s.0, t + s.1));
    let mut rows = vec![row(
        "PostgreSQL statements",
        calls as f64 / mails,
        "per mail",
        None,
        format!(
            "the 8 costliest: {:.1} µs of execution per mail in all",
            ms * 1e3 / mails
        ),
    )];
    for (i, (calls, total, query)) in top.into_iter().enumerate() {
        rows.push(row(
            &format!("  statement {}", i + 1),
            total * 1e3 / mails,
            "µs/mail",
            None,
            format!("{:.3} calls a mail: {query}", calls as f64 / mails),
        ));
    }
    Ok(rows)
}

/// Templates + message building + formatting only, on one task, the update's data made once
/// as the worker does: rendering the template for each recipient (the first row), and filling
/// a stencil rendered once, the worker's way (the second, with its speed-up over the first).
fn render_only(
    settings: &Settings,
    templates: &MailTemplates,
    n: usize,
) -> anyhow::Result<Vec<Row>> {
    let update = update_input()
        .parse()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let intro_html = crate::mail::markdown::to_safe_html(&update.intro_markdown);
    let data = |name: &str, email: &str, unsubscribe: &str, manage: &str| {
        serde_json::json!({
            "subject": update.subject, "preheader": update.preheader, "intro": update.intro_markdown,
            "intro_html": intro_html, "news_items": update.news_items, "name": name, "email": email,
            "unsubscribe_url": unsubscribe, "manage_url": manage,
            "web_url": "https://bench.example/archive/2026-11-20-x", "postal_address": settings.mail.postal_address,
        })
    };
    let list = ListHeaders {
        unsubscribe_url: "https://bench.example/unsubscribe/x".into(),
        unsubscribe_mailto: None,
        list_id: "<bench.example>".into(),
        feedback_id: "bench:bench:update:bench.example".into(),
    };
    let personal = |i: usize| {
        (
            format!("Reader {i}"),
            format!("reader{i}@bench.example"),
            format!("https://bench.example/unsubscribe/{i}"),
            format!("https://bench.example/manage/{i}"),
        )
    };
    let (started, mut bytes) = (Instant::now(), 0);
    for i in 0..n {
        let (name, email, unsubscribe, manage) = personal(i);
        let rendered = templates.render("update", &data(&name, &email, &unsubscribe, &manage))?;
        let envelope = bench_envelope(settings, &email, i);
        let message = crate::mail::bulk_message_rendered(&envelope, rendered, &list)?;
        bytes += message.formatted().len();
    }
    let per_recipient = n as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let stencil =
        crate::mail::Stencil::new(templates, "update", 4, |h| data(&h[0], &h[1], &h[2], &h[3]))?
            .context("the update template takes a stencil")?;
    for i in 0..n {
        let (name, email, unsubscribe, manage) = personal(i);
        let filled = stencil.fill_encoded(&[&name, &email, &unsubscribe, &manage]);
        let envelope = bench_envelope(settings, &email, i);
        let message = crate::mail::bulk_message_encoded(&envelope, filled, &list)?;
        std::hint::black_box(message.formatted());
    }
    let filled = n as f64 / started.elapsed().as_secs_f64();
    Ok(vec![
        row(
            "render only",
            per_recipient,
            "mails/s",
            None,
            format!("one thread, the template rendered per recipient, {} KB a mail", bytes / n / 1024),
        ),
        row(
            "render only, stencil",
            filled,
            "mails/s",
            None,
            format!("one thread, rendered once and filled per recipient (the worker's way): {:.1}× the above", filled / per_recipient),
        ),
    ])
}

struct Ceiling {
    mails_per_second: f64,
    cpu_per_mail: Duration,
    sink_cpu_per_mail: Duration,
}

/// `n` pre-built messages (1,000 built, cycled) pushed by our bare pool to the same sink.
async fn bare_pool_ceiling(
    settings: &Settings,
    templates: &MailTemplates,
    sink: &Sink,
    n: usize,
) -> anyhow::Result<Ceiling> {
    let mailer = Arc::new(Mailer::from_settings(&settings.smtp, None)?);
    let messages: Vec<lettre::Message> = (0..n.min(1_000))
        .map(|i| bench_message(settings, templates, i))
        .collect::<anyhow::Result<_>>()?;
    let slots = Arc::new(tokio::sync::Semaphore::new(
        settings.sending.concurrency as usize,
    ));
    let (cpu0, sink0, started) = (cpu_time(), sink.cpu_time(), Instant::now());
    let mut tasks = tokio::task::JoinSet::new();
    for m in messages.iter().cycle().take(n) {
        let permit = Arc::clone(&slots).acquire_owned().await?;
        let (mailer, m) = (Arc::clone(&mailer), m.clone());
        tasks.spawn(async move {
            let ok = mailer.send(m).await.is_ok();
            drop(permit);
            ok
        });
        while tasks.try_join_next().is_some() {}
        anyhow::ensure!(
            started.elapsed() < SCENARIO_LIMIT,
            "the ceiling run took too long"
        );
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    Ok(Ceiling {
        mails_per_second: n as f64 / elapsed.as_secs_f64(),
        cpu_per_mail: (cpu_time() - cpu0) / u32::try_from(n).unwrap_or(u32::MAX).max(1),
        sink_cpu_per_mail: (sink.cpu_time() - sink0) / u32::try_from(n).unwrap_or(u32::MAX).max(1),
    })
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

/// Sign-ups through the app against a bare handler doing one `INSERT`. The app's answer floor
/// (`signup.min_answer_ms`, a deliberate wait so that timing does not tell addresses apart) is
/// off for the measured run: it holds no CPU, and the ceiling has none. A second run with the
/// configured floor shows what it does to rate and latency.
async fn signup(settings: &Settings, pool: &PgPool, seconds: u64) -> anyhow::Result<Vec<Row>> {
    let duration = Duration::from_secs(seconds);
    let mut no_floor = settings.clone();
    no_floor.signup.min_answer = Duration::ZERO;
    let ours = signup_load(&no_floor, "a", duration).await?;
    let floored = signup_load(settings, "b", duration).await?;

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
                "{CONNECTIONS} connections, {seconds} s, {} 5xx; answer floor off",
                ours.errors
            ),
        ),
        row(
            "signup, answer floor on",
            floored.per_second(),
            "requests/s",
            Some(ceiling.per_second()),
            format!(
                "signup.min_answer_ms = {}: p50 {:.1} ms, p99 {:.1} ms, {} 5xx",
                settings.signup.min_answer.as_millis(),
                ms(floored.percentile(0.5)),
                ms(floored.percentile(0.99)),
                floored.errors
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

/// `seconds` of closed-loop sign-ups through the app built from `settings`; `tag` keeps the
/// addresses of two runs apart.
async fn signup_load(
    settings: &Settings,
    tag: &'static str,
    duration: Duration,
) -> anyhow::Result<http_load::LoadResult> {
    let stop = CancellationToken::new();
    let app = Application::build(settings.clone(), false).await?;
    let port = app.port();
    tokio::spawn(app.run_until(stop.clone()));
    let result = http_load::post_load(port, FORM, CONNECTIONS, duration, move |c, n| {
        (
            "/subscriptions".into(),
            format!("email={tag}{c}x{n}%40bench.example"),
        )
    })
    .await;
    stop.cancel();
    result
}

/// Seeds `n` subscribers at `domain` and returns the one-click unsubscribe path of each.
async fn unsubscribe_paths(
    settings: &Settings,
    pool: &PgPool,
    n: i64,
    domain: &str,
) -> anyhow::Result<Arc<Vec<String>>> {
    seed(pool, n, domain, "us-icc-updates").await?;
    let people: Vec<(Uuid, i32)> = sqlx::query_as(
        "SELECT id, link_version FROM subscribers WHERE email_normalized LIKE '%@' || $1",
    )
    .bind(domain)
    .fetch_all(pool)
    .await?;
    let secret = settings.security.secret_key.expose().as_bytes();
    Ok(Arc::new(
        people
            .iter()
            .map(|(id, v)| {
                format!(
                    "/unsubscribe/{}",
                    subscriber_link::sign(secret, LinkPurpose::Unsubscribe, *id, *v).as_str()
                )
            })
            .collect(),
    ))
}

async fn unsubscribe(settings: &Settings, pool: &PgPool, seconds: u64) -> anyhow::Result<Row> {
    let paths = unsubscribe_paths(settings, pool, 20_000, "unsubscribe.example").await?;
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
    let imported = crate::ops::imports::import_file(
        pool,
        &crate::ops::Actor::CommandLine,
        &file,
        &[],
        "bench",
        |_, _| {},
    )
    .await;
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
