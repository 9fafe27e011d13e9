//! Figures for `/metrics` read from the database, so they hold across all processes.

use sqlx::PgExecutor;

pub struct Snapshot {
    /// (kind, status, count)
    pub deliveries: Vec<(String, String, i64)>,
    /// (class of the enhanced status code, e.g. "5.1", or "none"; count) of failed deliveries
    pub failures: Vec<(String, i64)>,
    pub queue_depth: i64,
    pub sent_last_10s: i64,
    /// (kind, count)
    pub consent_events: Vec<(String, i64)>,
    /// (status, count)
    pub subscribers: Vec<(String, i64)>,
    /// (kind, source, count) of bounce and complaint reports received
    pub reports: Vec<(String, String, i64)>,
}

pub async fn snapshot(db: impl PgExecutor<'_> + Copy) -> sqlx::Result<Snapshot> {
    Ok(Snapshot {
        deliveries: sqlx::query_as("SELECT kind, status, count(*) FROM deliveries GROUP BY 1, 2 ORDER BY 1, 2")
            .fetch_all(db)
            .await?,
        failures: sqlx::query_as(
            "SELECT coalesce(substring(last_reply from '(?:^|[^0-9.])([245]\\.[0-9]{1,3})\\.[0-9]{1,3}'), 'none'), count(*)
             FROM deliveries WHERE status = 'failed' GROUP BY 1 ORDER BY 1",
        )
        .fetch_all(db)
        .await?,
        queue_depth: sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE status IN ('queued', 'deferred', 'sending')")
            .fetch_one(db)
            .await?,
        sent_last_10s: sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE sent_at > now() - interval '10 seconds'")
            .fetch_one(db)
            .await?,
        consent_events: sqlx::query_as("SELECT kind, count(*) FROM consent_events GROUP BY 1 ORDER BY 1")
            .fetch_all(db)
            .await?,
        subscribers: sqlx::query_as("SELECT status, count(*) FROM subscribers GROUP BY 1 ORDER BY 1")
            .fetch_all(db)
            .await?,
        reports: sqlx::query_as("SELECT kind, source, count(*) FROM bounce_reports GROUP BY 1, 2 ORDER BY 1, 2")
            .fetch_all(db)
            .await?,
    })
}
