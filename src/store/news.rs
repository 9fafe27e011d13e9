//! The news desk: news items as their own records. "Sent" means copied into an update that has
//! started sending.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, Row};
use uuid::Uuid;

use crate::domain::{NewsItem, NewsItemInput};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NewsRecord {
    pub id: Uuid,
    pub title: String,
    pub summary: String,
    pub source: String,
    pub url: Option<String>,
    pub published_on: Option<NaiveDate>,
    pub topic: Option<String>,
    pub added_by: String,
    pub added_at: DateTime<Utc>,
    /// Whether an update that carries it has started sending.
    pub sent: bool,
    /// `approved`, or `awaiting_review` (an entry of a feed not trusted to approve its own).
    pub status: String,
    pub approved_at: Option<DateTime<Utc>>,
    /// The feed it came from, if any.
    pub feed_id: Option<Uuid>,
}

impl NewsRecord {
    /// The record as the input that made it (for editing).
    pub fn as_input(&self) -> NewsItemInput {
        NewsItemInput {
            title: self.title.clone(),
            summary: self.summary.clone(),
            source: self.source.clone(),
            url: self.url.clone(),
            published_on: self.published_on.map(|d| d.to_string()),
            topic: self.topic.clone(),
            news_id: Some(self.id),
        }
    }
}

/// Every column of `news` and whether the item went out (SQL composed at compile time).
macro_rules! select {
    () => {
        "SELECT n.*, EXISTS (SELECT 1 FROM news_items ni JOIN updates u ON u.id = ni.update_id
                             WHERE ni.news_id = n.id AND u.started_at IS NOT NULL) AS sent
         FROM news n"
    };
}

fn record(r: &sqlx::postgres::PgRow) -> NewsRecord {
    NewsRecord {
        id: r.get("id"),
        title: r.get("title"),
        summary: r.get("summary"),
        source: r.get("source"),
        url: r.get("url"),
        published_on: r.get("published_on"),
        topic: r.get("topic"),
        added_by: r.get("added_by"),
        added_at: r.get("added_at"),
        sent: r.get("sent"),
        status: r.get("status"),
        approved_at: r.get("approved_at"),
        feed_id: r.get("feed_id"),
    }
}

pub async fn insert(
    db: impl PgExecutor<'_>,
    item: &NewsItem,
    added_by: &str,
) -> sqlx::Result<Uuid> {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO news (id, title, summary, source, url, published_on, topic, added_by, approved_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now())",
    )
    .bind(id)
    .bind(&item.title)
    .bind(&item.summary)
    .bind(&item.source)
    .bind(&item.url)
    .bind(item.published_on)
    .bind(&item.topic)
    .bind(added_by)
    .execute(db)
    .await?;
    Ok(id)
}

/// Replaces the content of a record; `false` when there is none.
pub async fn replace(db: impl PgExecutor<'_>, id: Uuid, item: &NewsItem) -> sqlx::Result<bool> {
    let n = sqlx::query(
        "UPDATE news SET title = $2, summary = $3, source = $4, url = $5, published_on = $6,
                topic = $7, updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(&item.title)
    .bind(&item.summary)
    .bind(&item.source)
    .bind(&item.url)
    .bind(item.published_on)
    .bind(&item.topic)
    .execute(db)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Approves an item awaiting review; `false` when there is no such item. Approving an approved
/// item changes nothing.
pub async fn approve(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<bool> {
    let n = sqlx::query(
        "UPDATE news SET status = 'approved', approved_at = coalesce(approved_at, now()),
                updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .execute(db)
    .await?
    .rows_affected();
    Ok(n == 1)
}

pub async fn delete(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<bool> {
    let n = sqlx::query("DELETE FROM news WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?
        .rows_affected();
    Ok(n == 1)
}

pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<NewsRecord>> {
    Ok(sqlx::query(concat!(select!(), " WHERE n.id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?
        .as_ref()
        .map(record))
}

/// The records with these ids, in no particular order.
pub async fn get_many(db: impl PgExecutor<'_>, ids: &[Uuid]) -> sqlx::Result<Vec<NewsRecord>> {
    Ok(sqlx::query(concat!(select!(), " WHERE n.id = ANY($1)"))
        .bind(ids)
        .fetch_all(db)
        .await?
        .iter()
        .map(record)
        .collect())
}

/// Newest first, optionally of one topic, of one status, and only those not yet sent.
pub async fn list(
    db: impl PgExecutor<'_>,
    topic: Option<&str>,
    unsent_only: bool,
    status: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<NewsRecord>> {
    Ok(sqlx::query(concat!(
        "SELECT * FROM (",
        select!(),
        ") x WHERE ($1::text IS NULL OR topic = $1) AND NOT ($2 AND sent)
           AND ($4::text IS NULL OR status = $4)
         ORDER BY added_at DESC, id LIMIT $3"
    ))
    .bind(topic)
    .bind(unsent_only)
    .bind(limit)
    .bind(status)
    .fetch_all(db)
    .await?
    .iter()
    .map(record)
    .collect())
}
