//! The scheduler: holds stale schedules for staff, starts due updates (the delivery loop writes
//! their rows as it claims them), skips what cancelled updates left, and marks finished updates
//! sent. Runs beside the delivery loop; safe with any number of workers.
//! Beside it, as their own tasks: feed polling (`feeds`) and digest occurrences (`digests`).

mod digests;
mod feeds;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::store::updates;

/// Ticks every `worker.poll_interval` until `shutdown` fires (between two statements).
pub async fn run(pool: PgPool, settings: Arc<Settings>, shutdown: CancellationToken) {
    let beside = [
        tokio::spawn(feeds::run(
            pool.clone(),
            Arc::clone(&settings),
            shutdown.clone(),
        )),
        tokio::spawn(digests::run(
            pool.clone(),
            Arc::clone(&settings),
            shutdown.clone(),
        )),
    ];
    let mut chores_due = tokio::time::Instant::now();
    while !shutdown.is_cancelled() {
        if let Err(e) = tick(&pool, &settings).await {
            tracing::error!(error = ?e, "scheduler tick failed");
        }
        if tokio::time::Instant::now() >= chores_due {
            // No deadline to keep, and each run reads the pending sign-ups: not every tick.
            chores_due = tokio::time::Instant::now() + settings.worker.housekeeping;
            if let Err(e) = chores(&pool, &settings).await {
                tracing::error!(error = ?e, "scheduler chores failed");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(settings.worker.poll_interval) => {}
        }
    }
    for task in beside {
        if task.await.is_err() {
            tracing::error!("a scheduler task (feeds or digests) panicked");
        }
    }
}

async fn tick(pool: &PgPool, settings: &Settings) -> anyhow::Result<()> {
    let held = updates::hold_stale(pool, settings.sending.stale_after)
        .await
        .context("holding stale schedules")?;
    for id in &held {
        tracing::warn!(update_id = %id, "a scheduled update found far past its time was paused for staff to confirm");
        let detail = serde_json::json!({ "status": "paused", "reason": updates::STALE_REASON });
        crate::ops::audit::record(
            pool,
            &crate::ops::Actor::Scheduler,
            "pause",
            Some(&id.to_string()),
            detail,
        )
        .await
        .context("auditing a stale schedule held")?;
    }
    let archived = updates::hold_archived(pool)
        .await
        .context("holding updates for archived lists")?;
    if archived > 0 {
        tracing::warn!(
            archived,
            "scheduled updates addressed to an archived list were paused"
        );
    }
    while let Some(started) = updates::start_one_due(
        pool,
        (
            settings.sending.approval_threshold,
            settings.sending.stale_after,
        ),
        settings.server.time_zone,
    )
    .await
    .context("starting a due update")?
    {
        match started {
            updates::Started::Sending(update_id) => tracing::info!(%update_id, "update started"),
            updates::Started::HeldForApproval { id, recipients } => {
                tracing::warn!(update_id = %id, recipients, "update held for approval: its audience grew past the threshold");
                crate::ops::updates::held_for_approval(pool, settings, id, recipients)
                    .await
                    .context("reporting an update held for approval")?;
            }
        }
    }
    if let Some(update_id) = updates::count_expected_recipients(pool)
        .await
        .context("counting a started update's recipients")?
    {
        tracing::info!(%update_id, "recipients of the started update counted");
    }
    updates::skip_cancelled_leftovers(pool)
        .await
        .context("skipping the rest of cancelled updates")?;
    for update_id in updates::finish_done(pool)
        .await
        .context("finishing updates")?
    {
        tracing::info!(%update_id, "update sent");
    }
    Ok(())
}

async fn chores(pool: &PgPool, settings: &Settings) -> anyhow::Result<()> {
    let purged =
        crate::store::subscribers::purge_unconfirmed(pool, settings.signup.purge_unconfirmed_after)
            .await
            .context("purging unconfirmed sign-ups")?;
    if purged > 0 {
        tracing::info!(purged, "unconfirmed sign-ups purged");
    }
    // Twice the window a signed call's time may be off, and a day for Postmark, whose calls
    // carry no signed time and whose retries go on for hours.
    let keep = (settings.webhooks.max_age * 2).max(Duration::from_secs(24 * 3600));
    let forgotten = crate::store::bounces::prune_seen(pool, keep)
        .await
        .context("pruning the webhook ids seen")?;
    if forgotten > 0 {
        tracing::info!(forgotten, "webhook ids seen long ago forgotten");
    }
    let dropped =
        crate::store::import_jobs::forget_refused(pool, settings.worker.import_refused_kept)
            .await
            .context("forgetting the refused rows of old imports")?;
    if dropped > 0 {
        tracing::info!(dropped, "refused rows of old imports forgotten");
    }
    crate::ops::hygiene::run(pool, settings)
        .await
        .context("list hygiene")?;
    Ok(())
}
