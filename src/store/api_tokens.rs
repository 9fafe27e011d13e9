//! Bearer tokens for the API; only hashes are stored. A token is live until it is revoked or
//! its `expires_at` passes.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, Row};
use uuid::Uuid;

use crate::domain::{Token, TokenHash, TokenScope};

/// A token as staff see it: never its secret, nor its hash.
#[derive(Debug, Clone, Serialize)]
pub struct TokenRecord {
    pub id: Uuid,
    pub name: String,
    pub scope: TokenScope,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

fn record(r: &sqlx::postgres::PgRow) -> TokenRecord {
    TokenRecord {
        id: r.get("id"),
        name: r.get("name"),
        // The column's CHECK allows only the three scopes.
        scope: TokenScope::parse(r.get("scope")).unwrap_or(TokenScope::Read),
        created_by: r.get("created_by"),
        created_at: r.get("created_at"),
        last_used_at: r.get("last_used_at"),
        expires_at: r.get("expires_at"),
        revoked_at: r.get("revoked_at"),
    }
}

/// A token to make.
pub struct NewToken<'a> {
    pub name: &'a str,
    pub scope: TokenScope,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_by: &'a str,
}

/// Makes a token: its id and its secret (shown once; only the hash is kept).
pub async fn create(db: impl PgExecutor<'_>, new: NewToken<'_>) -> sqlx::Result<(Uuid, Token)> {
    let id = Uuid::new_v4();
    let token = Token::generate();
    sqlx::query(
        "INSERT INTO api_tokens (id, name, token_hash, scope, expires_at, created_by)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(new.name)
    .bind(token.hash().0.as_slice())
    .bind(new.scope.as_str())
    .bind(new.expires_at)
    .bind(new.created_by)
    .execute(db)
    .await?;
    Ok((id, token))
}

/// Every token, the newest first, revoked ones included.
pub async fn list(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<TokenRecord>> {
    Ok(
        sqlx::query("SELECT * FROM api_tokens ORDER BY created_at DESC, id")
            .fetch_all(db)
            .await?
            .iter()
            .map(record)
            .collect(),
    )
}

pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<TokenRecord>> {
    Ok(sqlx::query("SELECT * FROM api_tokens WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?
        .as_ref()
        .map(record))
}

/// Revokes the token from now on. `None`: no such token; `Some(false)`: it was revoked before.
pub async fn revoke(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<bool>> {
    sqlx::query_scalar(
        "WITH t AS (SELECT id, revoked_at IS NULL AS live FROM api_tokens WHERE id = $1 FOR UPDATE)
         , r AS (UPDATE api_tokens a SET revoked_at = now() FROM t WHERE a.id = t.id AND t.live)
         SELECT live FROM t",
    )
    .bind(id)
    .fetch_optional(db)
    .await
}

/// The id and scope of the live token (neither revoked nor expired) with this hash. Its use is
/// noted in `last_used_at`, at most once a minute, so that a busy client does not write a row
/// per request.
pub async fn authenticate(
    db: impl PgExecutor<'_>,
    hash: &TokenHash,
) -> sqlx::Result<Option<(Uuid, TokenScope)>> {
    let found: Option<(Uuid, String)> = sqlx::query_as(
        "WITH t AS (SELECT id, scope, last_used_at FROM api_tokens
                    WHERE token_hash = $1 AND revoked_at IS NULL
                      AND (expires_at IS NULL OR expires_at > now()))
         , used AS (UPDATE api_tokens a SET last_used_at = now() FROM t
                    WHERE a.id = t.id
                      AND (t.last_used_at IS NULL OR t.last_used_at < now() - interval '1 minute'))
         SELECT id, scope FROM t",
    )
    .bind(hash.0.as_slice())
    .fetch_optional(db)
    .await?;
    Ok(found.and_then(|(id, scope)| TokenScope::parse(&scope).ok().map(|s| (id, s))))
}
