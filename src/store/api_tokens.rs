//! Bearer tokens for the API; only hashes are stored.

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::domain::{Token, TokenHash};

pub async fn create(db: impl PgExecutor<'_>, name: &str) -> sqlx::Result<(Uuid, Token)> {
    let id = Uuid::new_v4();
    let token = Token::generate();
    sqlx::query("INSERT INTO api_tokens (id, name, token_hash) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(name)
        .bind(token.hash().0.as_slice())
        .execute(db)
        .await?;
    Ok((id, token))
}

/// The id of the live token with this hash, noting its use.
pub async fn authenticate(db: impl PgExecutor<'_>, hash: &TokenHash) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "UPDATE api_tokens SET last_used_at = now()
         WHERE token_hash = $1 AND revoked_at IS NULL RETURNING id",
    )
    .bind(hash.0.as_slice())
    .fetch_optional(db)
    .await
}
