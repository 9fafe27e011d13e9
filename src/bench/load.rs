//! The load scenario: sign-ups and one-click unsubscribes, both held at a fixed rate for a few
//! minutes against the full service (web server and worker, confirmations sent to the sink),
//! watching for 5xx, database pool exhaustion and memory growth.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::http_load::{self, LoadResult};
use super::{row, rss_mb, unsubscribe_paths, Row, FORM};
use crate::app::Application;
use crate::config::Settings;

/// Connections per endpoint; a request waits for a free one, and the wait counts in its latency.
const CONNECTIONS: usize = 16;
/// Memory is compared from this long after the start, when pools and caches are warm.
const WARM_UP: Duration = Duration::from_secs(10);

/// Samples of the process and the app's database pool, once a second.
#[derive(Default)]
struct Samples {
    rss_mb: Vec<f64>,
    max_connections_busy: u32,
}

pub async fn run(
    settings: &Settings,
    pool: &PgPool,
    rate: u32,
    duration: Duration,
) -> anyhow::Result<Vec<Row>> {
    let paths = unsubscribe_paths(settings, pool, 10_000, "load.example").await?;
    let stop = CancellationToken::new();
    let app = Application::build(settings.clone(), true).await?;
    let (port, app_pool) = (app.port(), app.pool().clone());
    let server = tokio::spawn(app.run_until(stop.clone()));

    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut samples = Samples::default();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            while !done.load(Ordering::Relaxed) {
                tick.tick().await;
                samples.rss_mb.push(rss_mb());
                let busy = app_pool.size() - u32::try_from(app_pool.num_idle()).unwrap_or(0);
                samples.max_connections_busy = samples.max_connections_busy.max(busy);
            }
            samples
        })
    };
    let signups = http_load::fixed_rate(port, FORM, CONNECTIONS, rate, duration, |n| {
        (
            "/subscriptions".into(),
            format!("email=load{n}%40signup.example"),
        )
    });
    let unsubscribes = http_load::fixed_rate(port, FORM, CONNECTIONS, rate, duration, move |n| {
        (
            paths[n % paths.len()].clone(),
            "List-Unsubscribe=One-Click".into(),
        )
    });
    let limit = duration + super::SCENARIO_LIMIT;
    let (signups, unsubscribes) =
        tokio::time::timeout(limit, async { tokio::join!(signups, unsubscribes) })
            .await
            .map_err(|_| anyhow::anyhow!("the load ran past {limit:?}"))?;
    done.store(true, Ordering::Relaxed);
    let samples = sampler.await?;
    stop.cancel();
    server.await??;
    let (signups, unsubscribes) = (signups?, unsubscribes?);

    let warm = usize::try_from(WARM_UP.as_secs()).unwrap_or(0);
    let after_warm_up = samples
        .rss_mb
        .get(warm)
        .or(samples.rss_mb.first())
        .copied()
        .unwrap_or_default();
    let end = samples.rss_mb.last().copied().unwrap_or_default();
    let max = samples.rss_mb.iter().copied().fold(0.0, f64::max);
    let seconds = duration.as_secs();
    let endpoint_row = |name: &str, r: &LoadResult| {
        row(
            name,
            r.per_second(),
            "requests/s",
            None,
            format!(
                "{} requests at {rate}/s for {seconds} s: {} 5xx, {} 4xx, p50 {:.1} ms, p99 {:.1} ms",
                r.requests,
                r.errors,
                r.rejected,
                r.percentile(0.5).as_secs_f64() * 1e3,
                r.percentile(0.99).as_secs_f64() * 1e3
            ),
        )
    };
    Ok(vec![
        endpoint_row("load: sign-up", &signups),
        endpoint_row("load: one-click", &unsubscribes),
        row(
            "load: RSS growth",
            end - after_warm_up,
            "MB",
            None,
            format!(
                "{after_warm_up:.1} MB after {} s, {end:.1} MB at the end, {max:.1} MB at most",
                WARM_UP.as_secs()
            ),
        ),
        row(
            "load: pool connections busy",
            f64::from(samples.max_connections_busy),
            "at most",
            Some(f64::from(settings.database.max_connections)),
            "sampled once a second; a full pool would make requests wait, then fail".into(),
        ),
    ])
}
