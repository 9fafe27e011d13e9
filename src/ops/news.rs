//! The news desk: add, edit, approve, delete and list news items, and pick them for an update.
//! The same checks as an update's inline items (bounded texts, http(s)/mailto links, topic
//! slugs). Any member of staff may change the desk; each change is audited.

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::roles::{self, Forbidden, Operation};
use super::{audit, Actor};
use crate::domain::{parse_topic, FieldErrors, NewsItemInput, UpdateInput, MAX_NEWS_ITEMS};
use crate::ops::updates::UpdateError;
use crate::store::feeds;
use crate::store::news as store;

pub use crate::store::news::NewsRecord;

/// Most items one listing shows.
pub const MAX_LIST: i64 = 500;

#[derive(Debug, thiserror::Error)]
pub enum NewsError {
    #[error("no such news item")]
    NotFound,
    /// Each field's error by the field's name.
    #[error("invalid news item")]
    Invalid(FieldErrors),
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for NewsError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

/// Which items a listing shows.
#[derive(Debug, Default, Clone)]
pub struct NewsFilter {
    pub topic: Option<String>,
    /// Only items not yet in an update that has started sending.
    pub unsent_only: bool,
    /// Only items awaiting review (from feeds not trusted to approve their own).
    pub awaiting_review_only: bool,
}

pub async fn list(pool: &PgPool, filter: &NewsFilter) -> Result<Vec<NewsRecord>, NewsError> {
    let topic = parse_topic(filter.topic.as_deref())
        .map_err(|e| NewsError::Invalid(FieldErrors::from([("topic", e)])))?;
    let status = filter.awaiting_review_only.then_some("awaiting_review");
    Ok(store::list(pool, topic.as_deref(), filter.unsent_only, status, MAX_LIST).await?)
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<NewsRecord, NewsError> {
    store::get(pool, id).await?.ok_or(NewsError::NotFound)
}

pub async fn add(
    pool: &PgPool,
    actor: &Actor,
    input: &NewsItemInput,
) -> Result<NewsRecord, NewsError> {
    roles::authorize(actor, Operation::News)?;
    let item = input.parse_fields().map_err(NewsError::Invalid)?;
    let mut tx = pool.begin().await?;
    let id = store::insert(&mut *tx, &item, &actor.label()).await?;
    let detail = json!({ "title": item.title });
    audit::record(&mut *tx, actor, "news-add", Some(&id.to_string()), detail).await?;
    tx.commit().await?;
    get(pool, id).await
}

/// Replaces an item's content, audited with what changed. Updates that already carry it keep
/// their copy until their draft is saved again.
pub async fn edit(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    input: &NewsItemInput,
) -> Result<NewsRecord, NewsError> {
    roles::authorize(actor, Operation::News)?;
    let item = input.parse_fields().map_err(NewsError::Invalid)?;
    let mut tx = pool.begin().await?;
    let before = store::get(&mut *tx, id).await?.ok_or(NewsError::NotFound)?;
    if !store::replace(&mut *tx, id, &item).await? {
        return Err(NewsError::NotFound);
    }
    let after = store::get(&mut *tx, id).await?.ok_or(NewsError::NotFound)?;
    let detail = json!({ "changed": audit::changes(&before.as_input(), &after.as_input()) });
    audit::record(&mut *tx, actor, "news-edit", Some(&id.to_string()), detail).await?;
    tx.commit().await?;
    Ok(after)
}

/// Approves an item awaiting review: from now on digests may carry it. Audited.
pub async fn approve(pool: &PgPool, actor: &Actor, id: Uuid) -> Result<NewsRecord, NewsError> {
    roles::authorize(actor, Operation::News)?;
    let mut tx = pool.begin().await?;
    if !store::approve(&mut *tx, id).await? {
        return Err(NewsError::NotFound);
    }
    audit::record(
        &mut *tx,
        actor,
        "news-approve",
        Some(&id.to_string()),
        json!({}),
    )
    .await?;
    tx.commit().await?;
    get(pool, id).await
}

/// Deletes an item from the desk; updates that carried it keep their copy. An item a feed
/// brought stays deleted: its entry is remembered and never stored again. Audited with its
/// title.
pub async fn delete(pool: &PgPool, actor: &Actor, id: Uuid) -> Result<(), NewsError> {
    roles::authorize(actor, Operation::News)?;
    let mut tx = pool.begin().await?;
    let before = store::get(&mut *tx, id).await?.ok_or(NewsError::NotFound)?;
    // A feed's item stays deleted: its next polls skip the entry.
    feeds::remember_deleted(&mut *tx, id).await?;
    if !store::delete(&mut *tx, id).await? {
        return Err(NewsError::NotFound);
    }
    let detail = json!({ "title": before.title, "url": before.url });
    audit::record(
        &mut *tx,
        actor,
        "news-delete",
        Some(&id.to_string()),
        detail,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// `input` with its `news_item_ids` turned into news items (after the inline ones, in the order
/// given), each linked to its desk record. Unknown ids are an invalid field.
pub async fn expand(pool: &PgPool, input: &UpdateInput) -> Result<UpdateInput, UpdateError> {
    let mut input = input.clone();
    let Some(ids) = input.news_item_ids.take() else {
        return Ok(input);
    };
    let invalid = |m: String| UpdateError::Invalid(FieldErrors::from([("news_item_ids", m)]));
    if ids.len() > MAX_NEWS_ITEMS {
        return Err(invalid(format!("At most {MAX_NEWS_ITEMS} news items.")));
    }
    let found = store::get_many(pool, &ids).await?;
    let mut items = input.news_items.take().unwrap_or_default();
    let mut unknown = Vec::new();
    for id in &ids {
        match found.iter().find(|r| r.id == *id) {
            Some(record) => items.push(record.as_input()),
            None => unknown.push(id.to_string()),
        }
    }
    if !unknown.is_empty() {
        return Err(invalid(format!(
            "No such news items: {}.",
            unknown.join(", ")
        )));
    }
    input.news_items = Some(items);
    Ok(input)
}
