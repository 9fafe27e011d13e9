//! The sign-up: subscriber, subscriptions, consent event and (when due) a confirmation token
//! plus its queued mail, in one statement and one commit. No mail is sent here.

use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::consent::RequestOrigin;
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

/// Records a sign-up in one statement (one round trip, one commit) through the
/// `record_signup` function (migrations/…_create_record_signup_function.sql):
/// 1. upserts the subscriber by normalized address;
/// 2. adds the asked-for subscriptions as pending (an unsubscribed one becomes pending again);
/// 3. unless they are confirmed with nothing pending (nothing to confirm), or a confirmation was
///    queued less than `resend_after` ago (throttled), stores the hash of a fresh token and
///    queues the mail that carries it; the queue row holds only a nonce, from which the worker
///    derives the token with the secret key;
/// 4. logs the consent event.
pub async fn record(pool: &PgPool, s: SignupRecord<'_>) -> anyhow::Result<SignupOutcome> {
    let nonce = Token::nonce();
    let token = Token::derive(s.secret_key, CONFIRM_PURPOSE, &nonce);
    let list_ids: Vec<Uuid> = s.lists.iter().map(|(id, _)| *id).collect();
    let slugs: Vec<&str> = s.lists.iter().map(|(_, slug)| slug.as_str()).collect();
    let outcome: String = sqlx::query_scalar(
        "SELECT record_signup($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::inet, $13, $14, $15, $16)",
    )
    .bind(Uuid::new_v4())
    .bind(s.request.email.as_str())
    .bind(s.request.email.canonical())
    .bind(s.request.name.as_ref().map(|n| n.as_str()))
    .bind(s.request.state.map(|st| st.code()))
    .bind(seconds(s.resend_after))
    .bind(&list_ids)
    .bind(token.hash().0.as_slice())
    .bind(seconds(s.confirm_ttl))
    .bind(json!({ "nonce": nonce }))
    .bind(s.source.as_str())
    .bind(s.origin.ip.map(|ip| ip.to_string()))
    .bind(s.origin.user_agent.as_deref())
    .bind(s.consent_text)
    .bind(s.consent_version)
    .bind(&slugs)
    .fetch_one(pool)
    .await
    .context("recording the sign-up")?;
    match outcome.as_str() {
        "confirmation_queued" => Ok(SignupOutcome::ConfirmationQueued),
        "throttled" => Ok(SignupOutcome::Throttled),
        "nothing_to_confirm" => Ok(SignupOutcome::NothingToConfirm),
        other => anyhow::bail!("record_signup answered {other:?}"),
    }
}
