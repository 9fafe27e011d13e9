//! Feeds staff follow, their polling state, and the news items their entries become.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, PgPool, Row};
use uuid::Uuid;

use super::seconds;
use crate::domain::FeedEntry;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct FeedRecord {
    pub id: Uuid,
    pub url: String,
    pub title: String,
    pub topic: Option<String>,
    /// Entries are approved at once (else they await review on the news desk).
    pub approve: bool,
    pub active: bool,
    pub next_poll_at: DateTime<Utc>,
    pub last_polled_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// Polls that failed in a row since the last good one (each doubles the wait, up to a day).
    pub failures: i32,
    /// Minutes between polls; null: every `feeds.poll_minutes`.
    pub poll_minutes: Option<i32>,
    pub items_added: i64,
    pub added_by: String,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, url, title, topic, approve, active, next_poll_at, last_polled_at, \
                       last_success_at, last_error, last_error_at, failures, poll_minutes, \
                       items_added, added_by, created_at";

/// A feed's settings as staff give them.
#[derive(Debug, Clone)]
pub struct FeedFields {
    pub url: String,
    pub topic: Option<String>,
    pub approve: bool,
    pub active: bool,
    pub poll_minutes: Option<i32>,
}

/// Inserts a feed, due for its first poll now; `None` when the URL is followed already.
pub async fn insert(
    db: impl PgExecutor<'_>,
    fields: &FeedFields,
    added_by: &str,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "INSERT INTO feeds (id, url, topic, approve, active, added_by, poll_minutes)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (url) DO NOTHING RETURNING id",
    )
    .bind(Uuid::new_v4())
    .bind(&fields.url)
    .bind(&fields.topic)
    .bind(fields.approve)
    .bind(fields.active)
    .bind(added_by)
    .bind(fields.poll_minutes)
    .fetch_optional(db)
    .await
}

/// Replaces a feed's settings. A new URL forgets the old one's validators and its failures, and
/// is polled now. `Ok(None)`: no such feed; `Ok(Some(false))`: another feed has that URL.
pub async fn replace(
    db: impl PgExecutor<'_>,
    id: Uuid,
    fields: &FeedFields,
) -> sqlx::Result<Option<bool>> {
    let result = sqlx::query(
        "UPDATE feeds SET topic = $3, approve = $4, active = $5, poll_minutes = $6,
                etag = CASE WHEN url = $2 THEN etag END,
                last_modified = CASE WHEN url = $2 THEN last_modified END,
                failures = CASE WHEN url = $2 THEN failures ELSE 0 END,
                next_poll_at = CASE WHEN url = $2 AND active = $5 THEN next_poll_at ELSE now() END,
                url = $2
         WHERE id = $1",
    )
    .bind(id)
    .bind(&fields.url)
    .bind(&fields.topic)
    .bind(fields.approve)
    .bind(fields.active)
    .bind(fields.poll_minutes)
    .execute(db)
    .await;
    match result {
        Ok(done) if done.rows_affected() == 1 => Ok(Some(true)),
        Ok(_) => Ok(None),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(Some(false)),
        Err(e) => Err(e),
    }
}

pub async fn delete(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM feeds WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<FeedRecord>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM feeds WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

/// The feed, its row locked for the rest of the transaction (a change decided on what it is
/// now).
pub async fn get_for_update(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<FeedRecord>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM feeds WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(db)
    .await
}

/// Every feed, by URL.
pub async fn list(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<FeedRecord>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM feeds ORDER BY url"))
        .fetch_all(db)
        .await
}

/// What waits for staff: news items awaiting review, and feeds whose last read failed.
pub async fn needing_attention(db: impl PgExecutor<'_>) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM news WHERE status = 'awaiting_review'),
                (SELECT count(*) FROM feeds WHERE active AND last_error IS NOT NULL)",
    )
    .fetch_one(db)
    .await
}

/// A feed claimed for one poll.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: Uuid,
    pub claim: Uuid,
    pub url: String,
    pub topic: Option<String>,
    pub approve: bool,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub poll_minutes: Option<i32>,
    /// Polls that failed in a row before this one.
    pub failures: i32,
}

/// Claims one active feed due for polling, for `lease` (longer than a fetch may take): no other
/// worker takes it until the poll is recorded or the lease runs out.
pub async fn claim_due(pool: &PgPool, lease: Duration) -> sqlx::Result<Option<Claimed>> {
    let claim = Uuid::new_v4();
    let row = sqlx::query(
        "UPDATE feeds SET poll_claim = $1, poll_claimed_until = now() + make_interval(secs => $2)
         WHERE id = (SELECT id FROM feeds
                     WHERE active AND next_poll_at <= now()
                       AND (poll_claimed_until IS NULL OR poll_claimed_until < now())
                     ORDER BY next_poll_at LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING id, url, topic, approve, etag, last_modified, poll_minutes, failures",
    )
    .bind(claim)
    .bind(seconds(lease))
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| Claimed {
        id: r.get("id"),
        claim,
        url: r.get("url"),
        topic: r.get("topic"),
        approve: r.get("approve"),
        etag: r.get("etag"),
        last_modified: r.get("last_modified"),
        poll_minutes: r.get("poll_minutes"),
        failures: r.get("failures"),
    }))
}

/// What a poll found.
pub enum PollResult<'a> {
    /// 304: nothing changed.
    NotModified,
    Fetched {
        title: &'a str,
        entries: &'a [FeedEntry],
        etag: Option<&'a str>,
        last_modified: Option<&'a str>,
    },
    Failed(&'a str),
}

/// Records a poll by the worker holding `feed.claim`, and stores new entries as news items
/// (once per entry key, whatever other polls do at the same time; never one staff deleted), in
/// one transaction; the next poll is due after `wait`. A failure counts one more in a row, a
/// good poll sets the count back to 0. Returns how many items were added, or `None` when the
/// claim was lost (taken over).
pub async fn record_poll(
    pool: &PgPool,
    feed: &Claimed,
    wait: Duration,
    result: PollResult<'_>,
) -> anyhow::Result<Option<u64>> {
    let mut tx = pool.begin().await?;
    let held: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM feeds WHERE id = $1 AND poll_claim = $2 FOR UPDATE")
            .bind(feed.id)
            .bind(feed.claim)
            .fetch_optional(&mut *tx)
            .await?;
    if held.is_none() {
        return Ok(None);
    }
    let mut added = 0;
    match result {
        PollResult::Failed(error) => {
            sqlx::query(
                "UPDATE feeds SET last_error = $2, last_error_at = now(), failures = failures + 1
                 WHERE id = $1",
            )
            .bind(feed.id)
            .bind(error)
            .execute(&mut *tx)
            .await?;
        }
        PollResult::NotModified => {
            sqlx::query(
                "UPDATE feeds SET last_success_at = now(), last_error = NULL, last_error_at = NULL,
                        failures = 0
                 WHERE id = $1",
            )
            .bind(feed.id)
            .execute(&mut *tx)
            .await?;
        }
        PollResult::Fetched {
            title,
            entries,
            etag,
            last_modified,
        } => {
            added = insert_entries(&mut tx, feed, entries).await?;
            sqlx::query(
                "UPDATE feeds SET title = $2, etag = $3, last_modified = $4, last_success_at = now(),
                        last_error = NULL, last_error_at = NULL, failures = 0,
                        items_added = items_added + $5
                 WHERE id = $1",
            )
            .bind(feed.id)
            .bind(title)
            .bind(etag)
            .bind(last_modified)
            .bind(i64::try_from(added).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
        }
    }
    sqlx::query(
        "UPDATE feeds SET last_polled_at = now(), poll_claim = NULL, poll_claimed_until = NULL,
                next_poll_at = now() + make_interval(secs => $2)
         WHERE id = $1",
    )
    .bind(feed.id)
    .bind(seconds(wait))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(added))
}

async fn insert_entries(
    tx: &mut sqlx::PgConnection,
    feed: &Claimed,
    entries: &[FeedEntry],
) -> sqlx::Result<u64> {
    let n = entries.len();
    let (mut ids, mut keys, mut titles, mut summaries, mut sources, mut urls, mut dates) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for e in entries {
        ids.push(Uuid::new_v4());
        keys.push(e.key.clone());
        titles.push(e.item.title.clone());
        summaries.push(e.item.summary.clone());
        sources.push(e.item.source.clone());
        urls.push(e.item.url.clone());
        dates.push(e.item.published_on);
    }
    let done = sqlx::query(
        "INSERT INTO news (id, title, summary, source, url, published_on, topic, added_by, status,
                           approved_at, feed_id, feed_entry)
         SELECT DISTINCT ON (k) i, t, s, src, u, d, $2, 'feed ' || $3,
                CASE WHEN $4 THEN 'approved' ELSE 'awaiting_review' END,
                CASE WHEN $4 THEN now() END, $1, k
         FROM unnest($5::uuid[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::date[])
              AS x(i, k, t, s, src, u, d)
         WHERE NOT EXISTS (SELECT 1 FROM feed_entries_deleted g WHERE g.feed_id = $1 AND g.entry_key = k)
         ON CONFLICT (feed_id, feed_entry) WHERE feed_id IS NOT NULL DO NOTHING",
    )
    .bind(feed.id)
    .bind(&feed.topic)
    .bind(&feed.url)
    .bind(feed.approve)
    .bind(&ids)
    .bind(&keys)
    .bind(&titles)
    .bind(&summaries)
    .bind(&sources)
    .bind(&urls)
    .bind(&dates)
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected())
}

/// Remembers the feed entry a news item came from (if it came from one) as deleted, so that
/// no later poll brings it back.
pub async fn remember_deleted(db: impl PgExecutor<'_>, news_id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO feed_entries_deleted (feed_id, entry_key)
         SELECT feed_id, feed_entry FROM news
         WHERE id = $1 AND feed_id IS NOT NULL AND feed_entry IS NOT NULL
         ON CONFLICT DO NOTHING",
    )
    .bind(news_id)
    .execute(db)
    .await?;
    Ok(())
}
