//! Double opt-in: looking a token up, and confirming with it.

use anyhow::Context;
use sqlx::{PgExecutor, PgPool, Row};

use super::consent::{self, ConsentEvent, RequestOrigin};
use super::preferences::suppression_hashes;
use crate::domain::{EmailAddress, TokenHash};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    Valid,
    AlreadyUsed,
    /// The person unsubscribed after this link was made (used or not): it confirms nothing;
    /// only a new sign-up (and its new link) brings them back.
    Unsubscribed,
    Expired,
    Unknown,
}

macro_rules! state_sql {
    () => {
        "SELECT t.subscriber_id,
        CASE WHEN s.status IN ('unsubscribed', 'complained') AND s.unsubscribed_at >= t.created_at THEN 'unsubscribed'
             WHEN t.used_at IS NOT NULL THEN 'used'
             WHEN t.expires_at < now() THEN 'expired'
             ELSE 'valid' END AS state
    FROM confirmation_tokens t JOIN subscribers s ON s.id = t.subscriber_id
    WHERE t.token_hash = $1"
    };
}

fn state_of(row: Option<&sqlx::postgres::PgRow>) -> TokenState {
    match row.map(|r| r.get::<String, _>("state")).as_deref() {
        Some("valid") => TokenState::Valid,
        Some("used") => TokenState::AlreadyUsed,
        Some("unsubscribed") => TokenState::Unsubscribed,
        Some(_) => TokenState::Expired,
        None => TokenState::Unknown,
    }
}

/// Read-only: what a GET of the confirmation link may show.
pub async fn state(db: impl PgExecutor<'_>, hash: &TokenHash) -> sqlx::Result<TokenState> {
    let row = sqlx::query(state_sql!())
        .bind(hash.0.as_slice())
        .fetch_optional(db)
        .await?;
    Ok(state_of(row.as_ref()))
}

/// Confirms the subscriber and their pending subscriptions. Returns the token's state before the
/// call: `Valid` means this call confirmed; `AlreadyUsed` means an earlier call did;
/// `Unsubscribed` means the person left after the link was made, and nothing changed.
/// `remember_activity`: set `last_active_on` to today as well (`engagement.remember_last_activity`).
pub async fn confirm(
    pool: &PgPool,
    hash: &TokenHash,
    origin: &RequestOrigin,
    remember_activity: bool,
) -> anyhow::Result<TokenState> {
    let mut tx = pool
        .begin()
        .await
        .context("starting the confirmation transaction")?;
    let row = sqlx::query(concat!(state_sql!(), " FOR UPDATE"))
        .bind(hash.0.as_slice())
        .fetch_optional(&mut *tx)
        .await
        .context("looking up the confirmation token")?;
    let state = state_of(row.as_ref());
    let Some(row) = row.filter(|_| state == TokenState::Valid) else {
        return Ok(state);
    };
    let subscriber_id: uuid::Uuid = row.get("subscriber_id");
    let lists: Vec<String> = sqlx::query_scalar(
        "WITH used AS (
             UPDATE confirmation_tokens SET used_at = now() WHERE token_hash = $1)
         , person AS (
             UPDATE subscribers
             SET status = 'confirmed', confirmed_at = now(), unsubscribed_at = NULL, updated_at = now(),
                 last_active_on = CASE WHEN $3 THEN (now() AT TIME ZONE 'UTC')::date
                                       ELSE last_active_on END
             WHERE id = $2)
         , confirmed AS (
             UPDATE subscriptions SET status = 'confirmed', updated_at = now()
             WHERE subscriber_id = $2 AND status = 'pending'
             RETURNING list_id)
         SELECT l.slug FROM confirmed c JOIN lists l ON l.id = c.list_id ORDER BY l.slug",
    )
    .bind(hash.0.as_slice())
    .bind(subscriber_id)
    .bind(remember_activity)
    .fetch_all(&mut *tx)
    .await
    .context("confirming the subscriber")?;
    // Welcome mail for the lists that have one; and a confirmed address is no longer
    // suppressed, under any spelling it was erased under.
    let address: String =
        sqlx::query_scalar("SELECT email_normalized FROM subscribers WHERE id = $1")
            .bind(subscriber_id)
            .fetch_one(&mut *tx)
            .await
            .context("reading the confirmed address")?;
    let hashes = EmailAddress::parse(&address)
        .map(|a| suppression_hashes(&a))
        .unwrap_or_default();
    sqlx::query(
        "WITH welcome AS (
             INSERT INTO deliveries (kind, subscriber_id, payload)
             SELECT 'welcome', $1, jsonb_build_object('lists', array_agg(l.name ORDER BY l.name),
                                                     'slugs', array_agg(l.slug ORDER BY l.name))
             FROM lists l WHERE l.slug = ANY($2) AND l.welcome
             HAVING count(*) > 0)
         DELETE FROM suppressions WHERE email_hash = ANY($3)",
    )
    .bind(subscriber_id)
    .bind(&lists)
    .bind(&hashes)
    .execute(&mut *tx)
    .await
    .context("queueing the welcome mail")?;
    consent::record(
        &mut *tx,
        ConsentEvent {
            subscriber_id,
            kind: "confirm",
            source: "link",
            origin,
            consent: None,
            lists: &lists,
        },
    )
    .await
    .context("recording the confirmation")?;
    tx.commit().await.context("committing the confirmation")?;
    Ok(TokenState::Valid)
}
