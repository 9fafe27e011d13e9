//! The registry of live workers: each beats every scheduler tick; the global send rate is
//! divided among those that beat recently.

use std::time::Duration;

use sqlx::PgExecutor;
use uuid::Uuid;

use super::seconds;

/// Records a heartbeat and returns how many workers are live (this one included).
pub async fn beat(db: impl PgExecutor<'_>, id: Uuid, live_within: Duration) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "WITH me AS (
             INSERT INTO workers (id) VALUES ($1)
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = now())
         , gone AS (
             DELETE FROM workers WHERE heartbeat_at < now() - interval '1 hour')
         SELECT 1 + count(*) FROM workers
         WHERE id <> $1 AND heartbeat_at > now() - make_interval(secs => $2)",
    )
    .bind(id)
    .bind(seconds(live_within))
    .fetch_one(db)
    .await
}

pub async fn leave(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM workers WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}
