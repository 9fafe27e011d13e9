//! Passkeys (WebAuthn credentials) of staff accounts, and the WebAuthn ceremonies under way
//! (their state, for the SHA-256 of an id the browser holds; taken once).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, Row};
use uuid::Uuid;

use super::seconds;

/// A passkey as stored.
#[derive(Debug, Clone)]
pub struct StoredPasskey {
    pub id: Uuid,
    pub staff_id: Uuid,
    pub name: String,
    /// The credential as webauthn-rs serialises it.
    pub credential: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

fn passkey(r: &sqlx::postgres::PgRow) -> StoredPasskey {
    StoredPasskey {
        id: r.get("id"),
        staff_id: r.get("staff_id"),
        name: r.get("name"),
        credential: r.get("credential"),
        created_at: r.get("created_at"),
        last_used_at: r.get("last_used_at"),
    }
}

/// Adds a passkey; `false` when a passkey with this credential id exists already (on any
/// account).
pub async fn insert(
    db: impl PgExecutor<'_>,
    staff_id: Uuid,
    name: &str,
    credential_id: &[u8],
    credential: &serde_json::Value,
) -> sqlx::Result<bool> {
    Ok(sqlx::query(
        "INSERT INTO staff_passkeys (id, staff_id, name, credential_id, credential)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (credential_id) DO NOTHING",
    )
    .bind(Uuid::new_v4())
    .bind(staff_id)
    .bind(name)
    .bind(credential_id)
    .bind(credential)
    .execute(db)
    .await?
    .rows_affected()
        == 1)
}

/// The passkeys of `staff_id`, oldest first.
pub async fn of_member(
    db: impl PgExecutor<'_>,
    staff_id: Uuid,
) -> sqlx::Result<Vec<StoredPasskey>> {
    Ok(
        sqlx::query("SELECT * FROM staff_passkeys WHERE staff_id = $1 ORDER BY created_at, id")
            .bind(staff_id)
            .fetch_all(db)
            .await?
            .iter()
            .map(passkey)
            .collect(),
    )
}

/// The passkey with this credential id, if any.
pub async fn by_credential_id(
    db: impl PgExecutor<'_>,
    credential_id: &[u8],
) -> sqlx::Result<Option<StoredPasskey>> {
    Ok(
        sqlx::query("SELECT * FROM staff_passkeys WHERE credential_id = $1")
            .bind(credential_id)
            .fetch_optional(db)
            .await?
            .as_ref()
            .map(passkey),
    )
}

/// Notes a use of passkey `id`, with its credential as updated (its signature counter).
pub async fn used(
    db: impl PgExecutor<'_>,
    id: Uuid,
    credential: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE staff_passkeys SET credential = $2, last_used_at = now() WHERE id = $1")
        .bind(id)
        .bind(credential)
        .execute(db)
        .await?;
    Ok(())
}

/// Removes passkey `id` of `staff_id`; its name, or `None` when they have no such passkey.
pub async fn remove(
    db: impl PgExecutor<'_>,
    staff_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("DELETE FROM staff_passkeys WHERE staff_id = $1 AND id = $2 RETURNING name")
        .bind(staff_id)
        .bind(id)
        .fetch_optional(db)
        .await
}

/// Keeps the state of a ceremony under `id_hash` (`kind`: `register` or `authenticate`;
/// `staff_id`: whose, when known), and forgets ceremonies older than `max_age`.
pub async fn save_ceremony(
    db: impl PgExecutor<'_>,
    id_hash: &[u8; 32],
    staff_id: Option<Uuid>,
    kind: &str,
    state: &serde_json::Value,
    max_age: Duration,
) -> sqlx::Result<()> {
    sqlx::query(
        "WITH old AS (DELETE FROM webauthn_ceremonies
                      WHERE created_at < now() - make_interval(secs => $5))
         INSERT INTO webauthn_ceremonies (id_hash, staff_id, kind, state) VALUES ($1, $2, $3, $4)",
    )
    .bind(id_hash.as_slice())
    .bind(staff_id)
    .bind(kind)
    .bind(state)
    .bind(seconds(max_age))
    .execute(db)
    .await?;
    Ok(())
}

/// Takes (removes and returns) the ceremony under `id_hash` of `kind`, if it is younger than
/// `max_age`: (whose, state).
pub async fn take_ceremony(
    db: impl PgExecutor<'_>,
    id_hash: &[u8; 32],
    kind: &str,
    max_age: Duration,
) -> sqlx::Result<Option<(Option<Uuid>, serde_json::Value)>> {
    sqlx::query_as(
        "DELETE FROM webauthn_ceremonies
         WHERE id_hash = $1 AND kind = $2 AND created_at > now() - make_interval(secs => $3)
         RETURNING staff_id, state",
    )
    .bind(id_hash.as_slice())
    .bind(kind)
    .bind(seconds(max_age))
    .fetch_optional(db)
    .await
}
