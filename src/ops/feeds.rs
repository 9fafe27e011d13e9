//! Feeds staff follow (RSS 2.0, Atom): add, change, remove, list. The worker polls them
//! (`worker::scheduler::feeds`) and puts their entries on the news desk.

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use super::Actor;
use crate::domain::{FieldErrors, ListSlug};
use crate::store::feeds::{self as store, FeedFields, FeedRecord};

/// Longest feed URL accepted.
const MAX_URL: usize = 2048;

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("no such feed")]
    NotFound,
    #[error("invalid feed")]
    Invalid(FieldErrors),
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
        if errors.is_empty() {
            Ok(FeedFields {
                url,
                topic,
                approve: self.approve.unwrap_or(false),
                active: self.active.unwrap_or(true),
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

/// Follows a feed; its first poll is due at once.
pub async fn add(pool: &PgPool, actor: &Actor, input: &FeedInput) -> Result<FeedRecord, FeedError> {
    let fields = input.parse().map_err(FeedError::Invalid)?;
    let id = store::insert(pool, &fields, &actor.label())
        .await?
        .ok_or_else(taken)?;
    get(pool, id).await
}

/// Changes the fields `patch` names.
pub async fn change(pool: &PgPool, id: Uuid, patch: FeedInput) -> Result<FeedRecord, FeedError> {
    let current = get(pool, id).await?;
    let fields = FeedInput::from(&current)
        .merged(patch)
        .parse()
        .map_err(FeedError::Invalid)?;
    match store::replace(pool, id, &fields).await? {
        None => Err(FeedError::NotFound),
        Some(false) => Err(taken()),
        Some(true) => get(pool, id).await,
    }
}

/// Stops following a feed; the items it brought stay on the desk.
pub async fn remove(pool: &PgPool, id: Uuid) -> Result<(), FeedError> {
    if store::delete(pool, id).await? {
        Ok(())
    } else {
        Err(FeedError::NotFound)
    }
}
