//! The workers scenario: one update sent by 1, 2, 4 ... separate `newsletter worker` processes
//! against one database, so the gain from another process is measured, not claimed.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::PgPool;

use super::sink::Sink;
use super::{row, update_input, wait_until, Row};
use crate::config::Settings;
use crate::store::{self, updates::Action};

/// Worker processes, killed when dropped (the scenario ends them with SIGTERM first).
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start(settings: &Settings, sink: &Sink, count: usize) -> anyhow::Result<Workers> {
    let exe = std::env::current_exe().context("finding this program to start workers")?;
    let mut children = Vec::with_capacity(count);
    for _ in 0..count {
        let child = Command::new(&exe)
            .arg("worker")
            .env("DATABASE_URL", settings.database.url.expose())
            .env("NEWSLETTER__SMTP__URL", sink.url())
            .env(
                "NEWSLETTER__SMTP__POOL_SIZE",
                settings.smtp.pool_size.to_string(),
            )
            .env(
                "NEWSLETTER__SECURITY__SECRET_KEY",
                settings.security.secret_key.expose(),
            )
            .env(
                "NEWSLETTER__MAIL__POSTAL_ADDRESS",
                &settings.mail.postal_address,
            )
            .env(
                "NEWSLETTER__SENDING__CONCURRENCY",
                settings.sending.concurrency.to_string(),
            )
            .env(
                "NEWSLETTER__WORKER__BATCH_SIZE",
                settings.worker.batch_size.to_string(),
            )
            .env("NEWSLETTER__WORKER__POLL_INTERVAL_MS", "20")
            .env("NEWSLETTER__DATABASE__MAX_CONNECTIONS", "16")
            .env("NEWSLETTER__LOG__LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting a worker process")?;
        children.push(child);
    }
    Ok(Workers(children))
}

/// Sends one update to `n` new subscribers with each count of worker processes in `counts`.
pub async fn run(
    settings: &Settings,
    pool: &PgPool,
    sink: &Sink,
    n: i64,
    counts: &[usize],
) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut first_rate = None;
    for &count in counts {
        let list = super::send::seed_list(pool, n, &format!("workers-{count}")).await?;
        let update = update_input()
            .parse()
            .map_err(|e| anyhow::anyhow!("the bench update does not parse: {e:?}"))?;
        let id = store::updates::create(pool, &update, &[list], super::send::BENCH_AUTHOR).await?;
        sqlx::query("DELETE FROM workers").execute(pool).await?;
        let workers = start(settings, sink, count)?;
        let limit = super::SCENARIO_LIMIT + Duration::from_millis(u64::try_from(n).unwrap_or(0));
        wait_until(
            "the workers to register",
            Duration::from_secs(60),
            Duration::from_millis(20),
            || async {
                let live: i64 = sqlx::query_scalar("SELECT count(*) FROM workers")
                    .fetch_one(pool)
                    .await?;
                Ok(live >= i64::try_from(count).unwrap_or(i64::MAX))
            },
        )
        .await?;
        let already = sink.received();
        let target = already + u64::try_from(n).unwrap_or(0);
        let started = Instant::now();
        store::updates::apply(pool, id, Action::SendNow, None, Default::default()).await?;
        let done = wait_until("sending", limit, Duration::from_millis(5), || async {
            Ok(sink.received() >= target)
        })
        .await?;
        drop(workers);
        let rate = n as f64 / (done - started).as_secs_f64();
        let gain = first_rate.map_or(String::new(), |one: f64| {
            format!(", {:.2}× the rate of one", rate / one)
        });
        first_rate.get_or_insert(rate);
        rows.push(row(
            &format!("workers {count}"),
            rate,
            "mails/s",
            None,
            format!("{n} subscribers, {count} `newsletter worker` processes{gain}"),
        ));
    }
    Ok(rows)
}
