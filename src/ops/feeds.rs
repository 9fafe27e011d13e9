//! Feeds staff follow (RSS 2.0, Atom): add, change, remove, list. The worker polls them
//! (`worker::scheduler::feeds`) and puts their entries on the news desk. Any member of staff
//! may follow a feed whose entries wait for review; a trusted feed (`approve`: its entries go
//! on the desk approved, ready for a digest that is sent without review) is an admin's to make,
//! change or remove. Each change is audited.

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use super::roles::{self, Forbidden, Operation};
use super::{audit, Actor};
use crate::domain::{FieldErrors, ListSlug, POLL_MINUTES};
use crate::store::feeds::{self as store, FeedFields};

pub use crate::store::feeds::{needing_attention, FeedRecord};

/// Longest feed URL accepted.
const MAX_URL: usize = 2048;

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("no such feed")]
    NotFound,
    #[error("invalid feed")]
    Invalid(FieldErrors),
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for FeedError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

/// A feed as staff give it (the API's body; absent fields keep their value on PATCH).
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedInput {
    pub url: Option<String>,
    pub topic: Option<String>,
    /// Entries go on the desk approved (a source trusted as it is), else awaiting review.
    pub approve: Option<bool>,
    /// false: not polled.
    pub active: Option<bool>,
    /// Minutes between polls, 5 to 10080 (7 days); absent on creation: `feeds.poll_minutes`.
    pub poll_minutes: Option<i32>,
}

impl FeedInput {
    fn parse(&self) -> Result<FeedFields, FieldErrors> {
        let mut errors = FieldErrors::new();
        let url = self.url.as_deref().map(str::trim).unwrap_or_default();
        let url = match url::Url::parse(url) {
            _ if url.is_empty() => {
                errors.insert("url", "A feed needs its URL.".into());
                String::new()
            }
            _ if url.len() > MAX_URL => {
                errors.insert("url", format!("At most {MAX_URL} characters."));
                String::new()
            }
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                if u.username().is_empty() && u.password().is_none() {
                    u.to_string()
                } else {
                    errors.insert("url", "A feed URL carries no user name or password.".into());
                    String::new()
                }
            }
            _ => {
                errors.insert(
                    "url",
                    format!("{url:?} is not an http:// or https:// address."),
                );
                String::new()
            }
        };
        let topic = match self
            .topic
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            None => None,
            Some(t) => match ListSlug::parse(t) {
                Ok(slug) => Some(slug.as_str().to_owned()),
                Err(_) => {
                    errors.insert("topic", format!("{t:?}: a topic uses a-z, 0-9 and - only."));
                    None
                }
            },
        };
        if let Some(m) = self.poll_minutes.filter(|m| !POLL_MINUTES.contains(m)) {
            errors.insert(
                "poll_minutes",
                format!(
                    "{m}: a feed is read every {} minutes at the most often and every {} \
                     minutes (7 days) at the least.",
                    POLL_MINUTES.start(),
                    POLL_MINUTES.end()
                ),
            );
        }
        if errors.is_empty() {
            Ok(FeedFields {
                url,
                topic,
                approve: self.approve.unwrap_or(false),
                active: self.active.unwrap_or(true),
                poll_minutes: self.poll_minutes,
            })
        } else {
            Err(errors)
        }
    }

    /// `self` with the fields of `patch` that are present.
    pub fn merged(self, patch: FeedInput) -> FeedInput {
        FeedInput {
            url: patch.url.or(self.url),
            topic: patch.topic.or(self.topic),
            approve: patch.approve.or(self.approve),
            active: patch.active.or(self.active),
            poll_minutes: patch.poll_minutes.or(self.poll_minutes),
        }
    }
}

impl From<&FeedRecord> for FeedInput {
    fn from(r: &FeedRecord) -> Self {
        Self {
            url: Some(r.url.clone()),
            topic: r.topic.clone(),
            approve: Some(r.approve),
            active: Some(r.active),
            poll_minutes: r.poll_minutes,
        }
    }
}

impl From<&FeedFields> for FeedInput {
    fn from(f: &FeedFields) -> Self {
        Self {
            url: Some(f.url.clone()),
            topic: f.topic.clone(),
            approve: Some(f.approve),
            active: Some(f.active),
            poll_minutes: f.poll_minutes,
        }
    }
}

fn taken() -> FeedError {
    FeedError::Invalid(FieldErrors::from([(
        "url",
        "This feed is followed already.".to_owned(),
    )]))
}

pub async fn list(pool: &PgPool) -> Result<Vec<FeedRecord>, FeedError> {
    Ok(store::list(pool).await?)
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<FeedRecord, FeedError> {
    store::get(pool, id).await?.ok_or(FeedError::NotFound)
}

/// Follows a feed; its first poll is due at once. A trusted one (`approve`) is an admin's.
pub async fn add(pool: &PgPool, actor: &Actor, input: &FeedInput) -> Result<FeedRecord, FeedError> {
    roles::authorize(actor, Operation::FeedFollow)?;
    if input.approve == Some(true) {
        roles::authorize(actor, Operation::FeedTrust)?;
    }
    let fields = input.parse().map_err(FeedError::Invalid)?;
    let mut tx = pool.begin().await?;
    let id = store::insert(&mut *tx, &fields, &actor.label())
        .await?
        .ok_or_else(taken)?;
    let detail = serde_json::to_value(FeedInput::from(&fields)).map_err(anyhow::Error::from)?;
    audit::record(&mut *tx, actor, "feed-add", Some(&id.to_string()), detail).await?;
    tx.commit().await?;
    get(pool, id).await
}

/// The current feed, locked, once `actor` may change it: a trusted feed, or trusting one, is
/// an admin's.
async fn changeable(
    tx: &mut sqlx::PgConnection,
    actor: &Actor,
    id: Uuid,
    trusting: bool,
) -> Result<FeedRecord, FeedError> {
    roles::authorize(actor, Operation::FeedFollow)?;
    if trusting {
        roles::authorize(actor, Operation::FeedTrust)?;
    }
    let current = store::get_for_update(&mut *tx, id)
        .await?
        .ok_or(FeedError::NotFound)?;
    if current.approve {
        roles::authorize(actor, Operation::FeedTrust)?;
    }
    Ok(current)
}

/// Changes the fields `patch` names, audited with what changed.
pub async fn change(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    patch: FeedInput,
) -> Result<FeedRecord, FeedError> {
    let mut tx = pool.begin().await?;
    let current = changeable(&mut tx, actor, id, patch.approve == Some(true)).await?;
    let before = FeedInput::from(&current);
    let after = before.clone().merged(patch);
    let fields = after.parse().map_err(FeedError::Invalid)?;
    match store::replace(&mut *tx, id, &fields).await? {
        None => return Err(FeedError::NotFound),
        Some(false) => return Err(taken()),
        Some(true) => {}
    }
    let detail =
        serde_json::json!({ "changed": audit::changes(&before, &FeedInput::from(&fields)) });
    audit::record(
        &mut *tx,
        actor,
        "feed-change",
        Some(&id.to_string()),
        detail,
    )
    .await?;
    tx.commit().await?;
    get(pool, id).await
}

/// Stops following a feed; the items it brought stay on the desk. Audited with its URL.
pub async fn remove(pool: &PgPool, actor: &Actor, id: Uuid) -> Result<(), FeedError> {
    let mut tx = pool.begin().await?;
    let current = changeable(&mut tx, actor, id, false).await?;
    if !store::delete(&mut *tx, id).await? {
        return Err(FeedError::NotFound);
    }
    let detail = serde_json::json!({ "url": current.url, "approve": current.approve });
    audit::record(
        &mut *tx,
        actor,
        "feed-remove",
        Some(&id.to_string()),
        detail,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
