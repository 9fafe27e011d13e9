//! API tokens: create (the secret shown once), list (never a secret), revoke; admins only,
//! each change audited. A token acts with its scope's rights (`Actor::ApiToken`); a revoked or
//! expired one is not accepted at all.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::roles::{self, Forbidden, Operation};
use super::{audit, Actor};
use crate::domain::{FieldErrors, Token, TokenHash, TokenName, TokenScope, MAX_TOKEN_DAYS};
use crate::store::api_tokens::{self as store, NewToken, TokenRecord};

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no such API token")]
    NotFound,
    #[error("invalid API token")]
    Invalid(FieldErrors),
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for TokenError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

/// A token as asked for (the command line's flags, the staff area's form).
#[derive(Debug, Clone, Default)]
pub struct TokenInput {
    pub name: String,
    /// `read`, `write` or `send` (required; the command line's `--scope` defaults to `send`).
    pub scope: String,
    /// Days until it expires; blank: never.
    pub expires_days: String,
}

/// A token just made: its record and its secret, which is shown this once.
pub struct Created {
    pub record: TokenRecord,
    pub secret: Token,
}

fn parse(input: &TokenInput) -> Result<(TokenName, TokenScope, Option<DateTime<Utc>>), TokenError> {
    let mut errors = FieldErrors::new();
    let name = TokenName::parse(&input.name)
        .map_err(|e| errors.insert("name", e))
        .ok();
    // No default: a form posted without its scope must not get the widest one.
    let scope = match input.scope.trim() {
        "" => {
            errors.insert(
                "scope",
                "Choose a scope: read (GET only), write (an editor's rights) or send (an admin's)."
                    .to_owned(),
            );
            None
        }
        raw => TokenScope::parse(raw)
            .map_err(|e| errors.insert("scope", e))
            .ok(),
    };
    let expires_at = match input.expires_days.trim() {
        "" => None,
        raw => match raw.parse::<u32>() {
            Ok(days @ 1..=MAX_TOKEN_DAYS) => Some(Utc::now() + chrono::Duration::days(days.into())),
            _ => {
                errors.insert(
                    "expires_days",
                    format!(
                        "A whole number of days from 1 to {MAX_TOKEN_DAYS}, or blank for never."
                    ),
                );
                None
            }
        },
    };
    match (name, scope) {
        (Some(name), Some(scope)) if errors.is_empty() => Ok((name, scope, expires_at)),
        _ => Err(TokenError::Invalid(errors)),
    }
}

/// Makes a token of the scope asked for, audited with its name, scope and expiry.
pub async fn create(
    pool: &PgPool,
    actor: &Actor,
    input: &TokenInput,
) -> Result<Created, TokenError> {
    roles::authorize(actor, Operation::TokenManage)?;
    let (name, scope, expires_at) = parse(input)?;
    let mut tx = pool.begin().await?;
    let label = actor.label();
    let (id, secret) = store::create(
        &mut *tx,
        NewToken {
            name: name.as_str(),
            scope,
            expires_at,
            created_by: &label,
        },
    )
    .await?;
    let detail =
        json!({ "name": name.as_str(), "scope": scope.as_str(), "expires_at": expires_at });
    audit::record(
        &mut *tx,
        actor,
        "token-create",
        Some(&id.to_string()),
        detail,
    )
    .await?;
    tx.commit().await?;
    let record = store::get(pool, id).await?.ok_or(TokenError::NotFound)?;
    Ok(Created { record, secret })
}

/// Every token, the newest first (revoked and expired ones too).
pub async fn list(pool: &PgPool, actor: &Actor) -> Result<Vec<TokenRecord>, TokenError> {
    roles::authorize(actor, Operation::TokenManage)?;
    Ok(store::list(pool).await?)
}

/// Revokes a token: from the next request on it is refused (`401`). False when it was revoked
/// already (nothing changes, nothing is audited).
pub async fn revoke(pool: &PgPool, actor: &Actor, id: Uuid) -> Result<bool, TokenError> {
    roles::authorize(actor, Operation::TokenManage)?;
    let mut tx = pool.begin().await?;
    let revoked = store::revoke(&mut *tx, id)
        .await?
        .ok_or(TokenError::NotFound)?;
    if revoked {
        let name = store::get(&mut *tx, id).await?.map(|t| t.name);
        audit::record(
            &mut *tx,
            actor,
            "token-revoke",
            Some(&id.to_string()),
            json!({ "name": name }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(revoked)
}

/// The actor behind a bearer token, if it is live.
pub async fn authenticate(pool: &PgPool, hash: &TokenHash) -> anyhow::Result<Option<Actor>> {
    Ok(store::authenticate(pool, hash)
        .await?
        .map(|(id, scope)| Actor::ApiToken { id, scope }))
}
