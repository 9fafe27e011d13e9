//! The sign-up transaction: subscriber, subscriptions, consent event and (when due) a
//! confirmation token plus its queued mail, in one commit. No mail is sent here.

use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::consent::{self, ConsentEvent, RequestOrigin};
use super::seconds;
use crate::domain::{SignupRequest, SignupSource, Token};

/// The purpose string under which confirmation tokens are derived.
pub const CONFIRM_PURPOSE: &str = "confirm";

pub struct SignupRecord<'a> {
    pub request: &'a SignupRequest,
    pub lists: &'a [(Uuid, String)],
    pub source: SignupSource,
    pub origin: &'a RequestOrigin,
    pub consent_text: &'a str,
    pub consent_version: &'a str,
    pub resend_after: Duration,
    pub confirm_ttl: Duration,
    pub secret_key: &'a [u8],
}

/// What a sign-up did. Never shown to the visitor (the answer is the same for all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignupOutcome {
    ConfirmationQueued,
    /// A confirmation was queued less than `resend_after` ago.
    Throttled,
    /// Already confirmed on every list asked for.
    NothingToConfirm,
}

pub async fn record(pool: &PgPool, s: SignupRecord<'_>) -> anyhow::Result<SignupOutcome> {
    let mut tx = pool
        .begin()
        .await
        .context("starting the sign-up transaction")?;
    let row = sqlx::query(
        "INSERT INTO subscribers (id, email, email_normalized, name, us_state)
         VALUES ($1, $2, $3, $4, $6)
         ON CONFLICT (email_normalized) DO UPDATE SET updated_at = now()
         RETURNING id, status,
                   last_confirmation_at IS NOT NULL
                       AND last_confirmation_at > now() - make_interval(secs => $5) AS recently_sent",
    )
    .bind(Uuid::new_v4())
    .bind(s.request.email.as_str())
    .bind(s.request.email.normalized())
    .bind(s.request.name.as_ref().map(|n| n.as_str()))
    .bind(seconds(s.resend_after))
    .bind(s.request.state.map(|st| st.code()))
    .fetch_one(&mut *tx)
    .await
    .context("upserting the subscriber")?;
    let subscriber_id: Uuid = row.get("id");
    let status: String = row.get("status");
    let recently_sent: bool = row.get("recently_sent");

    let list_ids: Vec<Uuid> = s.lists.iter().map(|(id, _)| *id).collect();
    let pending: i64 = sqlx::query_scalar(
        "WITH wanted AS (
             INSERT INTO subscriptions (subscriber_id, list_id)
             SELECT $1, unnest($2::uuid[])
             ON CONFLICT (subscriber_id, list_id) DO UPDATE
                 SET status = 'pending', updated_at = now()
                 WHERE subscriptions.status = 'unsubscribed'
             RETURNING 1)
         SELECT (SELECT count(*) FROM wanted)
              + (SELECT count(*) FROM subscriptions WHERE subscriber_id = $1 AND status = 'pending')",
    )
    .bind(subscriber_id)
    .bind(&list_ids)
    .fetch_one(&mut *tx)
    .await
    .context("recording the subscriptions")?;

    let outcome = if status == "confirmed" && pending == 0 {
        SignupOutcome::NothingToConfirm
    } else if recently_sent {
        SignupOutcome::Throttled
    } else {
        queue_confirmation(&mut tx, subscriber_id, s.confirm_ttl, s.secret_key).await?;
        SignupOutcome::ConfirmationQueued
    };

    let slugs: Vec<String> = s.lists.iter().map(|(_, slug)| slug.clone()).collect();
    consent::record(
        &mut *tx,
        ConsentEvent {
            subscriber_id,
            kind: "signup",
            source: s.source.as_str(),
            origin: s.origin,
            consent: Some((s.consent_text, s.consent_version)),
            lists: &slugs,
        },
    )
    .await
    .context("recording the consent event")?;
    tx.commit().await.context("committing the sign-up")?;
    Ok(outcome)
}

/// Stores the hash of a fresh token and queues the mail that carries it. The queue row holds
/// only a nonce; the worker derives the token from it with the secret key.
async fn queue_confirmation(
    tx: &mut sqlx::PgConnection,
    subscriber_id: Uuid,
    ttl: Duration,
    secret_key: &[u8],
) -> anyhow::Result<()> {
    let nonce = Token::nonce();
    let token = Token::derive(secret_key, CONFIRM_PURPOSE, &nonce);
    sqlx::query(
        "WITH token AS (
             INSERT INTO confirmation_tokens (token_hash, subscriber_id, expires_at)
             VALUES ($1, $2, now() + make_interval(secs => $3)))
         , mail AS (
             INSERT INTO deliveries (kind, subscriber_id, payload)
             VALUES ('confirmation', $2, $4))
         UPDATE subscribers SET last_confirmation_at = now() WHERE id = $2",
    )
    .bind(token.hash().0.as_slice())
    .bind(subscriber_id)
    .bind(seconds(ttl))
    .bind(json!({ "nonce": nonce }))
    .execute(&mut *tx)
    .await
    .context("queueing the confirmation mail")?;
    Ok(())
}
