//! The send scenario: one update to `n` confirmed subscribers of a list of their own, through a
//! real worker to the local sink, timed from "send now" to the first mail, to all delivery rows
//! written, and to the last mail; with CPU time and peak RSS.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::sink::Sink;
use super::{cpu_time, peak_rss_mb, reset_peak_rss, update_input, wait_until};
use crate::app;
use crate::config::Settings;
use crate::store::{self, updates::Action};

/// Who made the bench's updates, as their first version names it.
pub const BENCH_AUTHOR: store::updates::Author<'static> = store::updates::Author {
    label: "bench",
    staff_id: None,
};

pub struct SendRun {
    pub subscribers: i64,
    pub mails_per_second: f64,
    /// This process's CPU a mail, the sink's included.
    pub cpu_per_mail: Duration,
    /// The in-process sink's share of `cpu_per_mail`.
    pub sink_cpu_per_mail: Duration,
    pub first_mail: Duration,
    pub rows_written: Duration,
    pub peak_rss_mb: f64,
}

/// `n` confirmed subscribers on a new list `bench-{name}`, `reader{i}@{name}.bench.example`;
/// returns the list's id.
pub(super) async fn seed_list(pool: &PgPool, n: i64, name: &str) -> anyhow::Result<Uuid> {
    let slug = format!("bench-{name}");
    let list: Uuid = sqlx::query_scalar(
        "INSERT INTO lists (slug, name) VALUES ($1, $1) ON CONFLICT (slug) DO UPDATE SET name = $1
         RETURNING id",
    )
    .bind(&slug)
    .fetch_one(pool)
    .await?;
    super::seed(pool, n, &format!("{name}.bench.example"), &slug)
        .await
        .with_context(|| format!("seeding {n} subscribers"))?;
    sqlx::query("ANALYZE subscribers").execute(pool).await?;
    sqlx::query("ANALYZE subscriptions").execute(pool).await?;
    Ok(list)
}

/// Sends one update to the `n` subscribers of `list` (seeded by `seed_list`, so that the
/// seeding is not counted) with a worker in this process and waits (bounded) for the sink to
/// have every mail.
pub async fn run(
    settings: &Settings,
    pool: &PgPool,
    sink: &Sink,
    n: i64,
    list: Uuid,
) -> anyhow::Result<SendRun> {
    let update = update_input()
        .parse()
        .map_err(|e| anyhow::anyhow!("the bench update does not parse: {e:?}"))?;
    let id = store::updates::create(pool, &update, &[list], BENCH_AUTHOR).await?;
    let worker = app::build_worker(Arc::new(settings.clone()), pool.clone())?;
    let stop = CancellationToken::new();
    let worker_task = tokio::spawn(worker.run(stop.clone()));
    let already = sink.received();
    let limit = super::SCENARIO_LIMIT + Duration::from_millis(u64::try_from(n).unwrap_or(0));
    reset_peak_rss();
    let (cpu0, sink0, t0) = (cpu_time(), sink.cpu_time(), Instant::now());
    store::updates::apply(pool, id, Action::SendNow, None, Default::default()).await?;
    let first = wait_until(
        "the first mail",
        limit,
        Duration::from_millis(1),
        || async { Ok(sink.received() > already) },
    )
    .await?;
    let rows_written = wait_until(
        "writing the delivery rows",
        limit,
        Duration::from_millis(20),
        || async {
            Ok(sqlx::query_scalar::<_, bool>(
                "SELECT status <> 'scheduled' AND recipients_complete FROM updates WHERE id = $1",
            )
            .bind(id)
            .fetch_one(pool)
            .await?)
        },
    )
    .await?;
    let target = already + u64::try_from(n).unwrap_or(0);
    let done = wait_until("sending", limit, Duration::from_millis(5), || async {
        Ok(sink.received() >= target)
    })
    .await?;
    let (cpu, sink_cpu) = (cpu_time() - cpu0, sink.cpu_time() - sink0);
    let rss = peak_rss_mb();
    stop.cancel();
    let _ = worker_task.await;
    let elapsed = done - t0;
    Ok(SendRun {
        subscribers: n,
        mails_per_second: n as f64 / elapsed.as_secs_f64(),
        cpu_per_mail: cpu / u32::try_from(n).unwrap_or(u32::MAX).max(1),
        sink_cpu_per_mail: sink_cpu / u32::try_from(n).unwrap_or(u32::MAX).max(1),
        first_mail: first - t0,
        rows_written: rows_written - t0,
        peak_rss_mb: rss,
    })
}
