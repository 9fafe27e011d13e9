//! Digest occurrences, their own task: fires each due occurrence of every active schedule
//! exactly once whatever the number of workers (`store::digests::fire_due`: the schedule row
//! locked with `SKIP LOCKED`, one row per occurrence under a unique key), then builds its
//! update (`ops::digests::build`) and records the outcome on the occurrence.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::mail::MailTemplates;
use crate::ops::digests;
use crate::ops::updates::UpdateError;
use crate::store::digests as store;

/// How often the task looks for due occurrences (or `worker.poll_interval_ms`, when longer).
const TICK: Duration = Duration::from_secs(1);
/// An occurrence still being built after this long was interrupted (its worker died).
const INTERRUPTED_AFTER: Duration = Duration::from_secs(10 * 60);

pub async fn run(pool: PgPool, settings: Arc<Settings>, shutdown: CancellationToken) {
    let templates = match MailTemplates::load(&settings.templates) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = ?e, "cannot load the mail templates; digests do not fire");
            return;
        }
    };
    let tick = TICK.max(settings.worker.poll_interval);
    while !shutdown.is_cancelled() {
        if let Err(e) = fire_due(&pool, &settings, &templates, &shutdown).await {
            tracing::error!(error = ?e, "firing digests failed");
        }
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(tick) => {}
        }
    }
}

async fn fire_due(
    pool: &PgPool,
    settings: &Settings,
    templates: &MailTemplates,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let interrupted = store::fail_interrupted(pool, INTERRUPTED_AFTER)
        .await
        .context("closing interrupted digest occurrences")?;
    if interrupted > 0 {
        tracing::warn!(
            interrupted,
            "digest occurrences interrupted while being built"
        );
    }
    while !shutdown.is_cancelled() {
        let Some(fired) = store::fire_due(pool, |r, after| r.next_after(after))
            .await
            .context("firing a due digest occurrence")?
        else {
            return Ok(());
        };
        let digest_id = fired.digest.id;
        if fired.news_ids.is_empty() {
            tracing::info!(%digest_id, due_at = %fired.due_at, "digest skipped: no new items");
            continue;
        }
        let built = match digests::build(pool, settings, templates, &fired).await {
            Ok(built) => built,
            Err(e) => {
                let why = match &e {
                    UpdateError::Invalid(fields) => fields
                        .iter()
                        .map(|(k, v)| format!("{k}: {v}"))
                        .collect::<Vec<_>>()
                        .join("; "),
                    other => other.to_string(),
                };
                tracing::error!(error = ?e, %digest_id, "building a digest failed");
                digests::Built {
                    outcome: "failed",
                    reason: Some(format!("the update could not be built: {why}")),
                    update_id: None,
                }
            }
        };
        tracing::info!(%digest_id, due_at = %fired.due_at, outcome = built.outcome, "digest fired");
        store::finish_run(
            pool,
            fired.run_id,
            built.outcome,
            built.reason.as_deref(),
            built.update_id,
        )
        .await
        .context("recording a digest occurrence")?;
    }
    Ok(())
}
