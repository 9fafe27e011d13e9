//! Idempotency keys: the first request with a key does the work and stores its answer; a retry
//! with the same key gets the stored answer.

use serde_json::Value;
use sqlx::PgExecutor;
use uuid::Uuid;

pub enum Claim {
    /// First time: do the work, then `store` the answer.
    Fresh,
    /// Done before: this was the answer.
    Done(u16, Value),
    /// Another request with this key is still running.
    InProgress,
}

pub async fn claim(
    db: impl PgExecutor<'_> + Copy,
    token: Uuid,
    key: &str,
    scope: &str,
) -> sqlx::Result<Claim> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (api_token_id, key, scope, response_status, response_body)
         VALUES ($1, $2, $3, 0, 'null') ON CONFLICT DO NOTHING",
    )
    .bind(token)
    .bind(key)
    .bind(scope)
    .execute(db)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(Claim::Fresh);
    }
    let (status, body): (i16, Value) = sqlx::query_as(
        "SELECT response_status, response_body FROM idempotency_keys
         WHERE api_token_id = $1 AND key = $2 AND scope = $3",
    )
    .bind(token)
    .bind(key)
    .bind(scope)
    .fetch_one(db)
    .await?;
    Ok(if status == 0 {
        Claim::InProgress
    } else {
        Claim::Done(status as u16, body)
    })
}

pub async fn store(
    db: impl PgExecutor<'_>,
    token: Uuid,
    key: &str,
    scope: &str,
    status: u16,
    body: &Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE idempotency_keys SET response_status = $4, response_body = $5
         WHERE api_token_id = $1 AND key = $2 AND scope = $3",
    )
    .bind(token)
    .bind(key)
    .bind(scope)
    .bind(status as i16)
    .bind(body)
    .execute(db)
    .await?;
    Ok(())
}

/// Forgets a claimed key whose request failed, so it can be retried.
pub async fn release(
    db: impl PgExecutor<'_>,
    token: Uuid,
    key: &str,
    scope: &str,
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM idempotency_keys WHERE api_token_id = $1 AND key = $2 AND scope = $3 AND response_status = 0")
        .bind(token)
        .bind(key)
        .bind(scope)
        .execute(db)
        .await?;
    Ok(())
}
