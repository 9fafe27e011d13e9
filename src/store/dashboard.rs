//! Figures for the staff dashboard.

use chrono::NaiveDate;
use sqlx::PgExecutor;

/// Subscribers by status, e.g. ("confirmed", 120).
pub async fn subscribers_by_status(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(String, i64)>> {
    sqlx::query_as("SELECT status, count(*) FROM subscribers GROUP BY status ORDER BY status")
        .fetch_all(db)
        .await
}

/// People who signed up for the first time, and people who unsubscribed, per day of `zone`
/// (an IANA name) for the last `days` days, today included, oldest first; every day present.
/// People, not events: someone imported again, or who unsubscribed twice in a day, counts once
/// (a sign-up counts on the day of the person's first one only).
pub async fn daily_signups_and_unsubscribes(
    db: impl PgExecutor<'_>,
    days: i32,
    zone: &str,
) -> sqlx::Result<Vec<(NaiveDate, i64, i64)>> {
    sqlx::query_as(
        "WITH bounds AS (
             SELECT (now() AT TIME ZONE $2)::date AS today,
                    (((now() AT TIME ZONE $2)::date - ($1 - 1))::timestamp AT TIME ZONE $2) AS since)
         , firsts AS (
             SELECT (e.occurred_at AT TIME ZONE $2)::date AS day,
                    count(DISTINCT e.subscriber_id) AS people
             FROM consent_events e, bounds
             WHERE e.kind = 'signup' AND e.occurred_at >= bounds.since
               AND NOT EXISTS (SELECT 1 FROM consent_events p
                               WHERE p.subscriber_id = e.subscriber_id AND p.kind = 'signup'
                                 AND p.occurred_at < e.occurred_at)
             GROUP BY 1)
         , leaves AS (
             SELECT (e.occurred_at AT TIME ZONE $2)::date AS day,
                    count(DISTINCT coalesce(e.subscriber_id::text, e.id::text)) AS people
             FROM consent_events e, bounds
             WHERE e.kind = 'unsubscribe' AND e.occurred_at >= bounds.since
             GROUP BY 1)
         SELECT d::date, coalesce(f.people, 0), coalesce(l.people, 0)
         FROM bounds, generate_series(bounds.today - ($1 - 1), bounds.today, interval '1 day') AS d
         LEFT JOIN firsts f ON f.day = d::date
         LEFT JOIN leaves l ON l.day = d::date
         ORDER BY d",
    )
    .bind(days)
    .bind(zone)
    .fetch_all(db)
    .await
}
