//! Idempotency keys: the first request with a key does the work and stores its answer; a retry
//! with the same key gets the stored answer.

use serde_json::Value;
use sqlx::PgExecutor;
use uuid::Uuid;

pub enum Claim {
    /// First time (or a claim abandoned by a process that died): do the work, then `store`
    /// the answer, or `release` the key when the work failed.
    Fresh,
    /// Done before: this was the answer.
    Done(u16, Value),
    /// Another request with this key is still running.
    InProgress,
    /// The key was used before for a different request (method, path or body).
    Mismatch,
}

/// Claims `key` for a request whose method, path and body hash to `request_hash`. A claim
/// still unanswered after `abandoned_after` is taken over: its process died mid-request (a
/// request whose client went away still runs to its end, see `routes::api::updates`).
pub async fn claim(
    db: impl PgExecutor<'_> + Copy,
    token: Uuid,
    key: &str,
    scope: &str,
    request_hash: &[u8; 32],
    abandoned_after: std::time::Duration,
) -> sqlx::Result<Claim> {
    let taken = sqlx::query(
        "INSERT INTO idempotency_keys
             (api_token_id, key, scope, response_status, response_body, request_hash)
         VALUES ($1, $2, $3, 0, 'null', $4)
         ON CONFLICT (api_token_id, key, scope) DO UPDATE SET created_at = now()
         WHERE idempotency_keys.response_status = 0
           AND idempotency_keys.created_at < now() - make_interval(secs => $5)
           AND idempotency_keys.request_hash IS NOT DISTINCT FROM excluded.request_hash",
    )
    .bind(token)
    .bind(key)
    .bind(scope)
    .bind(request_hash.as_slice())
    .bind(super::seconds(abandoned_after))
    .execute(db)
    .await?
    .rows_affected();
    if taken == 1 {
        return Ok(Claim::Fresh);
    }
    let (status, body, hash): (i16, Value, Option<Vec<u8>>) = sqlx::query_as(
        "SELECT response_status, response_body, request_hash FROM idempotency_keys
         WHERE api_token_id = $1 AND key = $2 AND scope = $3",
    )
    .bind(token)
    .bind(key)
    .bind(scope)
    .fetch_one(db)
    .await?;
    Ok(if hash.is_some_and(|h| h != request_hash) {
        Claim::Mismatch
    } else if status == 0 {
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
