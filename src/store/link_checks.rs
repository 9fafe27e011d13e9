//! `link_checks`: the last result of fetching each URL staff had checked (`ops::link_check`).

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

/// One URL's last check.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct LinkCheck {
    pub url: String,
    pub checked_at: DateTime<Utc>,
    /// The final HTTP status after redirects; none when no answer came.
    pub status: Option<i32>,
    /// Why the link failed, in words; none when it answered 2xx.
    pub error: Option<String>,
}

/// The results of `urls` checked less than `within_seconds` ago.
pub async fn recent(
    db: impl PgExecutor<'_>,
    urls: &[String],
    within_seconds: f64,
) -> sqlx::Result<Vec<LinkCheck>> {
    sqlx::query_as(
        "SELECT url, checked_at, status, error FROM link_checks
         WHERE url = ANY($1) AND checked_at > now() - make_interval(secs => $2)",
    )
    .bind(urls)
    .bind(within_seconds)
    .fetch_all(db)
    .await
}

/// Records a check of `url` (replacing the one before).
pub async fn record(
    db: impl PgExecutor<'_>,
    url: &str,
    status: Option<i32>,
    error: Option<&str>,
) -> sqlx::Result<LinkCheck> {
    sqlx::query_as(
        "INSERT INTO link_checks (url, status, error) VALUES ($1, $2, $3)
         ON CONFLICT (url) DO UPDATE SET checked_at = now(), status = $2, error = $3
         RETURNING url, checked_at, status, error",
    )
    .bind(url)
    .bind(status)
    .bind(error)
    .fetch_one(db)
    .await
}

/// The `error` of a URL claimed by a check under way.
pub const BEING_CHECKED: &str = "being checked";

/// Claims the URLs of `urls` with no check younger than `within_seconds` for a check now (each
/// marked [`BEING_CHECKED`]), so two checks at once never fetch one URL twice; a claim older
/// than `stale_seconds` (its check died) is taken over. Returns those claimed.
pub async fn claim(
    db: impl PgExecutor<'_>,
    urls: &[String],
    within_seconds: f64,
    stale_seconds: f64,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "INSERT INTO link_checks (url, status, error)
         SELECT u, NULL, $4 FROM unnest($1::text[]) AS u
         ON CONFLICT (url) DO UPDATE SET checked_at = now(), status = NULL, error = $4
         WHERE link_checks.checked_at <= now() - make_interval(secs => $2)
            OR (link_checks.error = $4 AND link_checks.status IS NULL
                AND link_checks.checked_at <= now() - make_interval(secs => $3))
         RETURNING url",
    )
    .bind(urls)
    .bind(within_seconds)
    .bind(stale_seconds)
    .bind(BEING_CHECKED)
    .fetch_all(db)
    .await
}

/// Gives up the claims of `urls` this check did not reach: they stay unchecked, and the next
/// check fetches them.
pub async fn release(db: impl PgExecutor<'_>, urls: &[String]) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM link_checks WHERE url = ANY($1) AND error = $2 AND status IS NULL")
        .bind(urls)
        .bind(BEING_CHECKED)
        .execute(db)
        .await?;
    Ok(())
}
