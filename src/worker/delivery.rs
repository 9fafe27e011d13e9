//! One delivery attempt: look the recipient up, render, send, and say what happened.

use chrono::Utc;

use super::{backoff, Worker};
use crate::domain::Token;
use crate::mail::{self, ConfirmationMail, Envelope, SendError, SendErrorKind};
use crate::store::deliveries::{Claimed, Outcome};
use crate::store::signups::CONFIRM_PURPOSE;
use crate::store::subscribers;

pub async fn attempt(worker: &Worker, job: &Claimed) -> Outcome {
    let message = match compose(worker, job).await {
        Ok(Ok(message)) => message,
        Ok(Err(reason)) => return Outcome::Skipped { reason },
        Err(e) => {
            tracing::error!(error = ?e, "could not compose the mail");
            return retry_or_give_up(
                worker,
                job,
                SendError {
                    kind: SendErrorKind::Transient,
                    reply: format!("compose: {e:#}"),
                    ambiguous: false,
                },
            );
        }
    };
    let message_id = message_id(worker, job);
    match worker.mailer.send(message).await {
        Ok(reply) => Outcome::Sent { message_id, reply },
        Err(e) if e.kind == SendErrorKind::Permanent => Outcome::Failed {
            reply: e.reply,
            ambiguous: e.ambiguous,
        },
        Err(e) => retry_or_give_up(worker, job, e),
    }
}

fn retry_or_give_up(worker: &Worker, job: &Claimed, e: SendError) -> Outcome {
    let age = (Utc::now() - job.created_at).to_std().unwrap_or_default();
    if age >= worker.settings.sending.give_up_after {
        return Outcome::Failed {
            reply: format!("gave up after {} attempts: {}", job.attempt, e.reply),
            ambiguous: e.ambiguous,
        };
    }
    Outcome::Deferred {
        retry_in: backoff::retry_in(&worker.settings.sending.backoff, job.attempt),
        reply: e.reply,
        ambiguous: e.ambiguous,
    }
}

/// The message to send, `Ok(Err(reason))` when there is nothing to send any more.
async fn compose(
    worker: &Worker,
    job: &Claimed,
) -> anyhow::Result<Result<lettre::Message, String>> {
    let Some(subscriber_id) = job.subscriber_id else {
        return Ok(Err("the subscriber's data was erased".into()));
    };
    let Some(contact) = subscribers::contact(&worker.pool, subscriber_id).await? else {
        return Ok(Err("the subscriber no longer exists".into()));
    };
    match job.kind.as_str() {
        "confirmation" => {
            let Some(nonce) = job.payload.get("nonce").and_then(|n| n.as_str()) else {
                return Ok(Err(
                    "the confirmation link was already used or withdrawn".into()
                ));
            };
            let settings = &worker.settings;
            let token = Token::derive(
                settings.security.secret_key.expose().as_bytes(),
                CONFIRM_PURPOSE,
                nonce,
            );
            let confirm_url = settings
                .server
                .base_url
                .join(&format!("/subscriptions/confirm?token={}", token.as_str()));
            let message = mail::confirmation_message(
                &worker.templates,
                &settings.mail,
                &Envelope {
                    to_email: &contact.email,
                    to_name: contact.name.as_deref(),
                    message_id: message_id(worker, job),
                },
                &ConfirmationMail {
                    name: contact.name.as_deref(),
                    email: &contact.email,
                    confirm_url: &confirm_url,
                    expires_hours: settings.signup.confirm_ttl.as_secs() / 3600,
                    postal_address: &settings.mail.postal_address,
                },
            )?;
            Ok(Ok(message))
        }
        other => Ok(Err(format!("unknown delivery kind {other}"))),
    }
}

/// Deterministic per delivery row, so a retry carries the same Message-ID.
fn message_id(worker: &Worker, job: &Claimed) -> String {
    format!(
        "{}.{}@{}",
        job.kind,
        job.id,
        worker.settings.server.base_url.host()
    )
}

/// A log-safe summary of an outcome (no addresses).
pub fn summary(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Sent { .. } => "sent",
        Outcome::Deferred { .. } => "deferred",
        Outcome::Failed { .. } => "failed",
        Outcome::Skipped { .. } => "skipped",
    }
}
