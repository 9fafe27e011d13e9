//! Figures for the staff dashboard.

use chrono::NaiveDate;
use sqlx::PgExecutor;

/// Subscribers by status, e.g. ("confirmed", 120).
pub async fn subscribers_by_status(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(String, i64)>> {
    sqlx::query_as("SELECT status, count(*) FROM subscribers GROUP BY status ORDER BY status")
        .fetch_all(db)
        .await
}

/// Sign-ups and unsubscribes (consent events) per day for the last `days` days, today
/// included, oldest first; every day present.
pub async fn daily_signups_and_unsubscribes(
    db: impl PgExecutor<'_>,
    days: i32,
) -> sqlx::Result<Vec<(NaiveDate, i64, i64)>> {
    sqlx::query_as(
        "WITH per_day AS (
             SELECT occurred_at::date AS day,
                    count(*) FILTER (WHERE kind = 'signup') AS signups,
                    count(*) FILTER (WHERE kind = 'unsubscribe') AS unsubscribes
             FROM consent_events
             WHERE occurred_at >= current_date - ($1 - 1) AND kind IN ('signup', 'unsubscribe')
             GROUP BY 1)
         SELECT d::date, coalesce(p.signups, 0), coalesce(p.unsubscribes, 0)
         FROM generate_series(current_date - ($1 - 1), current_date, interval '1 day') AS d
         LEFT JOIN per_day p ON p.day = d::date
         ORDER BY d",
    )
    .bind(days)
    .fetch_all(db)
    .await
}
