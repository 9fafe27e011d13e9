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
        "SELECT d::date,
                count(e.id) FILTER (WHERE e.kind = 'signup'),
                count(e.id) FILTER (WHERE e.kind = 'unsubscribe')
         FROM generate_series(current_date - ($1 - 1), current_date, interval '1 day') AS d
         LEFT JOIN consent_events e
                ON e.occurred_at >= d AND e.occurred_at < d + interval '1 day'
               AND e.kind IN ('signup', 'unsubscribe')
         GROUP BY d ORDER BY d",
    )
    .bind(days)
    .fetch_all(db)
    .await
}
