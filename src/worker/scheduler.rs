//! The scheduler: holds stale schedules for staff, starts due updates (creating their delivery
//! rows in one statement) and marks finished ones sent. Safe with any number of workers.

use anyhow::Context;
use sqlx::PgPool;

use crate::config::Settings;
use crate::store::updates;

pub async fn tick(pool: &PgPool, settings: &Settings) -> anyhow::Result<()> {
    let held = updates::hold_stale(pool, settings.sending.stale_after)
        .await
        .context("holding stale schedules")?;
    if held > 0 {
        tracing::warn!(
            held,
            "scheduled updates found far past their time were paused for staff to confirm"
        );
    }
    while let Some((update_id, recipients)) = updates::start_one_due(pool)
        .await
        .context("starting a due update")?
    {
        tracing::info!(%update_id, recipients, "update started");
    }
    updates::skip_cancelled_leftovers(pool)
        .await
        .context("skipping the rest of cancelled updates")?;
    let purged =
        crate::store::subscribers::purge_unconfirmed(pool, settings.signup.purge_unconfirmed_after)
            .await
            .context("purging unconfirmed sign-ups")?;
    if purged > 0 {
        tracing::info!(purged, "unconfirmed sign-ups purged");
    }
    for update_id in updates::finish_done(pool)
        .await
        .context("finishing updates")?
    {
        tracing::info!(%update_id, "update sent");
    }
    Ok(())
}
