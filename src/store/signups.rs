//! The sign-up: subscriber, subscriptions, consent event and (when due) a confirmation token
//! plus its queued mail, in one statement and one commit. No mail is sent here.
//!
//! Group commit: the web server hands its sign-ups to a `SignupWriter`, which writes the
//! sign-ups that arrive together in one statement (one commit, one WAL flush) and answers each
//! only after that commit. The guarantee is the same as one commit each (an acknowledged
//! sign-up is durable); the per-commit work is shared.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::{PgExecutor, PgPool, Row};
use uuid::Uuid;

use super::consent::RequestOrigin;
use super::seconds;
use crate::batched::{Batched, SharedError};
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

/// One sign-up as it is written: the request with its fresh subscriber id and confirmation
/// token (the token's hash is stored; the queued mail holds the nonce it is derived from).
#[derive(Clone)]
pub struct Signup {
    id: Uuid,
    email: String,
    normalized: String,
    name: Option<String>,
    state: Option<&'static str>,
    resend_after: f64,
    list_ids: Vec<Uuid>,
    slugs: Vec<String>,
    token_hash: Vec<u8>,
    confirm_ttl: f64,
    nonce: String,
    source: &'static str,
    ip: Option<String>,
    user_agent: Option<String>,
    consent_text: String,
    consent_version: String,
}

impl Signup {
    pub fn new(s: SignupRecord<'_>) -> Self {
        let nonce = Token::nonce();
        let token = Token::derive(s.secret_key, CONFIRM_PURPOSE, &nonce);
        Self {
            id: Uuid::new_v4(),
            email: s.request.email.as_str().to_owned(),
            normalized: s.request.email.canonical().to_owned(),
            name: s.request.name.as_ref().map(|n| n.as_str().to_owned()),
            state: s.request.state.map(|st| st.code()),
            resend_after: seconds(s.resend_after),
            list_ids: s.lists.iter().map(|(id, _)| *id).collect(),
            slugs: s.lists.iter().map(|(_, slug)| slug.clone()).collect(),
            token_hash: token.hash().0.to_vec(),
            confirm_ttl: seconds(s.confirm_ttl),
            nonce,
            source: s.source.as_str(),
            ip: s.origin.ip.map(|ip| ip.to_string()),
            user_agent: s.origin.user_agent.clone(),
            consent_text: s.consent_text.to_owned(),
            consent_version: s.consent_version.to_owned(),
        }
    }
}

/// Records one sign-up (see `record_many`).
pub async fn record(pool: &PgPool, s: SignupRecord<'_>) -> anyhow::Result<SignupOutcome> {
    let mut outcomes = record_many(pool, &[Signup::new(s)]).await?;
    outcomes.pop().context("record_signup gave no answer")
}

/// Records sign-ups in one statement (one round trip, one commit) through the `record_signups`
/// function (migrations/…_create_record_signups_function.sql): the new addresses among them are
/// written as sets (one `INSERT` per table for all of them), then each other sign-up (an address
/// already known, or given twice) through `record_signup`, one by one in address order. Either
/// way a sign-up:
/// 1. upserts the subscriber by normalized address;
/// 2. adds the asked-for subscriptions as pending (an unsubscribed one becomes pending again);
/// 3. unless they are confirmed with nothing pending (nothing to confirm), or a confirmation was
///    queued less than `resend_after` ago (throttled), stores the hash of a fresh token and
///    queues the mail that carries it; the queue row holds only a nonce, from which the worker
///    derives the token with the secret key;
/// 4. logs the consent event.
///
/// A later sign-up of the statement sees what an earlier one wrote (one address twice: the
/// second is throttled). One failure fails them all: nothing of the statement is kept.
pub async fn record_many(
    db: impl PgExecutor<'_>,
    signups: &[Signup],
) -> anyhow::Result<Vec<SignupOutcome>> {
    let column = |f: fn(&Signup) -> Option<String>| signups.iter().map(f).collect::<Vec<_>>();
    let (mut list_of, mut list_ids, mut slugs) = (Vec::new(), Vec::new(), Vec::new());
    for (n, s) in (1i32..).zip(signups) {
        for (id, slug) in s.list_ids.iter().zip(&s.slugs) {
            list_of.push(n);
            list_ids.push(*id);
            slugs.push(slug.as_str());
        }
    }
    let rows = sqlx::query(
        "SELECT n, outcome FROM record_signups($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,
                                                $12, $13, $14, $15, $16, $17)",
    )
    .bind(signups.iter().map(|s| s.id).collect::<Vec<_>>())
    .bind(column(|s| Some(s.email.clone())))
    .bind(column(|s| Some(s.normalized.clone())))
    .bind(column(|s| s.name.clone()))
    .bind(column(|s| s.state.map(str::to_owned)))
    .bind(signups.iter().map(|s| s.resend_after).collect::<Vec<_>>())
    .bind(
        signups
            .iter()
            .map(|s| s.token_hash.clone())
            .collect::<Vec<_>>(),
    )
    .bind(signups.iter().map(|s| s.confirm_ttl).collect::<Vec<_>>())
    .bind(column(|s| Some(s.nonce.clone())))
    .bind(column(|s| Some(s.source.to_owned())))
    .bind(column(|s| s.ip.clone()))
    .bind(column(|s| s.user_agent.clone()))
    .bind(column(|s| Some(s.consent_text.clone())))
    .bind(column(|s| Some(s.consent_version.clone())))
    .bind(list_of)
    .bind(list_ids)
    .bind(slugs)
    .fetch_all(db)
    .await
    .context("recording the sign-up")?;
    let mut outcomes = vec![None; signups.len()];
    for row in rows {
        let n: i32 = row.get("n");
        let outcome: String = row.get("outcome");
        let slot = usize::try_from(n - 1)
            .ok()
            .and_then(|i| outcomes.get_mut(i))
            .context("record_signup answered for a sign-up it was not given")?;
        *slot = Some(match outcome.as_str() {
            "confirmation_queued" => SignupOutcome::ConfirmationQueued,
            "throttled" => SignupOutcome::Throttled,
            "nothing_to_confirm" => SignupOutcome::NothingToConfirm,
            other => anyhow::bail!("record_signup answered {other:?}"),
        });
    }
    outcomes
        .into_iter()
        .map(|o| o.context("record_signup gave no answer for a sign-up"))
        .collect()
}

/// Most sign-ups written by one statement.
const MAX_BATCH: usize = 64;
/// Statements (database connections) writing sign-ups at once, per process. Measured on 2
/// cores: batches of 10 sign-ups from 2 connections wrote 4,000 a second where single
/// statements from 16 wrote 2,000 (BENCHMARKS.md).
const WRITERS: usize = 2;

/// Group commit for sign-ups: each sign-up waits until the statement that holds it has
/// committed; sign-ups that arrive while `WRITERS` statements run go together into the next
/// (at most `MAX_BATCH`). Within a statement sign-ups are written in address order, so two
/// statements never wait on each other's addresses in opposite orders. When a statement fails
/// for another reason than an unreachable database, its sign-ups are written again one by one,
/// so one bad sign-up fails only itself.
#[derive(Clone)]
pub struct SignupWriter(Batched<Signup, Result<SignupOutcome, SharedError>>);

impl SignupWriter {
    /// Starts the writing tasks; they end when every clone is dropped.
    pub fn start(pool: PgPool) -> Self {
        Self(Batched::start_many(
            MAX_BATCH,
            WRITERS,
            move |batch: Vec<Signup>| {
                let pool = pool.clone();
                async move { Ok(write_batch(&pool, batch).await) }
            },
        ))
    }

    /// Records a sign-up and answers once it is committed.
    pub async fn record(&self, s: SignupRecord<'_>) -> anyhow::Result<SignupOutcome> {
        self.0
            .ask(Signup::new(s))
            .await?
            .map_err(anyhow::Error::new)
    }
}

async fn write_batch(pool: &PgPool, batch: Vec<Signup>) -> Vec<Result<SignupOutcome, SharedError>> {
    let mut order: Vec<usize> = (0..batch.len()).collect();
    order.sort_by(|a, b| batch[*a].normalized.cmp(&batch[*b].normalized));
    let sorted: Vec<Signup> = order.iter().map(|i| batch[*i].clone()).collect();
    let e = match record_many(pool, &sorted).await {
        Ok(outcomes) => {
            let mut answers = vec![None; batch.len()];
            for (i, outcome) in order.into_iter().zip(outcomes) {
                answers[i] = Some(outcome);
            }
            return answers.into_iter().flatten().map(Ok).collect();
        }
        Err(e) => Arc::new(e),
    };
    if batch.len() == 1 || super::is_unavailable(&e) {
        return batch
            .iter()
            .map(|_| Err(SharedError::new(Arc::clone(&e))))
            .collect();
    }
    tracing::warn!(error = ?e, signups = batch.len(), "a batch of sign-ups failed; writing them one by one");
    let mut answers = Vec::with_capacity(batch.len());
    for signup in batch {
        answers.push(
            record_many(pool, std::slice::from_ref(&signup))
                .await
                .and_then(|mut o| o.pop().context("record_signup gave no answer"))
                .map_err(|e| SharedError::new(Arc::new(e))),
        );
    }
    answers
}
