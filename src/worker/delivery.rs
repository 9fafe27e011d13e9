//! One delivery attempt: look the recipient up, render, wait for the rate limits, under a
//! global rate look the recipient up again (an unsubscribe takes effect up to the moment the
//! mail is handed to the relay), send, and say what happened.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;
use uuid::Uuid;

use super::contacts::Contacts;
use super::{backoff, Worker};
use crate::domain::{NewsItem, Token};
use crate::mail::{
    self, items_for, ConfirmationMail, Envelope, Links, PreparedUpdate, SendError, SendErrorKind,
};
use crate::store::deliveries::{Claimed, Outcome};
use crate::store::signups::CONFIRM_PURPOSE;
use crate::store::subscribers::{self, Contact};

/// The message to send, or why there is nothing to send (any more, or from this worker).
enum Composed {
    Send(lettre::Message),
    Skip(String),
    /// This worker must not make the mail (its configuration lacks something the mail needs);
    /// it goes back to the queue, its attempt not counted, for a worker that can.
    Hold(String),
}

/// Why a mail could not be composed.
#[derive(Debug, thiserror::Error)]
pub(super) enum ComposeError {
    /// Reading what the mail needs failed (the database): a later attempt may succeed.
    #[error("{0:#}")]
    Database(anyhow::Error),
    /// The mail cannot be built from what it is made of (a template that needs data this kind
    /// of mail does not have, an address or header lettre refuses): no retry will change that.
    #[error("{0:#}")]
    Broken(anyhow::Error),
}

/// Longest wait for a domain's rate limit inside an attempt, holding a slot; a longer one
/// postpones the mail (back to the queue, spread out so postponed mails do not return together).
const MAX_DOMAIN_WAIT: Duration = Duration::from_millis(100);
const POSTPONE_SPREAD: Duration = Duration::from_secs(2);
/// When a mail could not be composed because the database did not answer.
const DATABASE_RETRY: Duration = Duration::from_secs(5);
/// When a mail this worker must not make is offered again.
const HOLD_RETRY: Duration = Duration::from_secs(60);

/// Why a mail whose lease ends at `lease_ends` must not be sent now (less than half of a
/// `lease` is left), or None when it may.
fn lease_too_short(lease_ends: Instant, lease: Duration) -> Option<String> {
    let left = lease_ends.saturating_duration_since(Instant::now());
    (left < lease / 2).then(|| {
        format!(
            "postponed: {:.1} s of its {:.1} s lease left when its turn came, under half",
            left.as_secs_f64(),
            lease.as_secs_f64()
        )
    })
}

pub async fn attempt(worker: &Worker, job: &Claimed, contacts: &Contacts) -> Outcome {
    let message = match composed(worker, job, contacts).await {
        Ok(message) => message,
        Err(outcome) => return outcome,
    };
    let domain = message
        .envelope()
        .to()
        .first()
        .map(|a| a.domain().to_ascii_lowercase())
        .unwrap_or_default();
    let throttle = worker.throttle();
    let mut waited = false;
    while let Some(wait) = throttle.domain_wait(&domain) {
        if waited || wait > MAX_DOMAIN_WAIT {
            return Outcome::Postponed {
                retry_in: wait + POSTPONE_SPREAD.mul_f64(rand::random::<f64>()),
                reason: format!("held back: {domain} is rate-limited or slowed down"),
            };
        }
        tokio::time::sleep(wait).await;
        waited = true;
    }
    // Under a global rate, a mail is composed again once its turn has come, from the recipient
    // as they are then: someone who unsubscribed (or left the lists) while it waited does not
    // get it. The recipient is checked before the wait too, so a mail that will be skipped or
    // held back for its domain never takes a share of the global rate.
    let message = if throttle.wait_global().await {
        match composed(worker, job, contacts).await {
            Ok(message) => message,
            Err(outcome) => return outcome,
        }
    } else {
        message
    };
    // A mail goes to the relay only while at least half its lease is left, so that the send
    // and the write of its outcome fit inside it. A mail claimed before the database went away
    // for longer than the lease (or one held up that long by the limits) may meanwhile have
    // been taken over and sent by another worker: it goes back instead (the attempt-number
    // fence keeps this postponement from touching a row another worker took).
    if let Some(reason) = lease_too_short(job.lease_ends, worker.settings.worker.lease) {
        return Outcome::Postponed {
            retry_in: Duration::ZERO,
            reason,
        };
    }
    match worker.mailer.send(message).await {
        Ok(reply) => Outcome::Sent {
            message_id: message_id(worker, job),
            reply,
        },
        Err(e) if e.kind == SendErrorKind::Permanent => {
            if e.is_hard_bounce() {
                if let Some(id) = job.subscriber_id {
                    match subscribers::record_hard_bounce(
                        &worker.pool,
                        id,
                        worker.settings.bounce.hard_limit,
                    )
                    .await
                    {
                        Ok(true) => tracing::info!("subscriber marked bounced"),
                        Ok(false) => {}
                        Err(err) => tracing::error!(error = ?err, "recording a hard bounce failed"),
                    }
                }
            }
            Outcome::Failed {
                reply: e.reply,
                ambiguous: e.ambiguous,
            }
        }
        Err(e) if e.code == Some(421) && e.is_policy() => {
            let pause = throttle.slow_down(&domain);
            tracing::warn!(%domain, ?pause, "relay throttles this domain: slowing down");
            match retry_or_give_up(worker, job, e) {
                Outcome::Deferred {
                    retry_in,
                    reply,
                    ambiguous,
                } => Outcome::Deferred {
                    retry_in: retry_in.max(pause),
                    reply,
                    ambiguous,
                },
                other => other,
            }
        }
        Err(e) => retry_or_give_up(worker, job, e),
    }
}

/// The mail for the recipient as they are now, or the outcome of an attempt that ends before
/// sending: skipped, held back, postponed while the database is away, retried after a database
/// error, or failed at once when the mail cannot be built (retrying would not change it).
async fn composed(
    worker: &Worker,
    job: &Claimed,
    contacts: &Contacts,
) -> Result<lettre::Message, Outcome> {
    match compose(worker, job, contacts).await {
        Ok(Composed::Send(message)) => Ok(message),
        Ok(Composed::Skip(reason)) => Err(Outcome::Skipped { reason }),
        Ok(Composed::Hold(reason)) => {
            if hold_log_due() {
                tracing::error!(%reason, "mail held back (logged at most once a minute)");
            }
            Err(Outcome::Held {
                retry_in: HOLD_RETRY,
                reason,
            })
        }
        // The database did not answer: nothing was tried, so the attempt does not count.
        Err(ComposeError::Database(e)) if crate::store::is_unavailable(&e) => {
            tracing::warn!(error = %format!("{e:#}"), "could not read what the mail needs; postponed");
            Err(Outcome::Postponed {
                retry_in: DATABASE_RETRY,
                reason: format!("postponed: the database did not answer: {e:#}"),
            })
        }
        Err(ComposeError::Database(e)) => {
            tracing::warn!(error = %format!("{e:#}"), "could not read what the mail needs; retried later");
            Err(retry_or_give_up(
                worker,
                job,
                SendError::transient(format!("compose: {e:#}"), false),
            ))
        }
        Err(ComposeError::Broken(e)) => {
            tracing::error!(error = %format!("{e:#}"), "the mail cannot be composed; failed");
            Err(Outcome::Failed {
                reply: format!("the mail cannot be composed: {e:#}"),
                ambiguous: false,
            })
        }
    }
}

/// Whether to log that mail is held back: at most once per `HOLD_RETRY` in this process, however
/// many mails are held (each has the reason in the ledger).
fn hold_log_due() -> bool {
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    let mut last = LAST.lock().expect("hold log lock");
    let due = last.is_none_or(|at| at.elapsed() >= HOLD_RETRY);
    if due {
        *last = Some(Instant::now());
    }
    due
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

/// Mails that must show the postal address (CAN-SPAM): a worker without one does not make them.
const NEED_POSTAL_ADDRESS: &[&str] = &["update", "welcome"];

async fn compose(
    worker: &Worker,
    job: &Claimed,
    contacts: &Contacts,
) -> Result<Composed, ComposeError> {
    if NEED_POSTAL_ADDRESS.contains(&job.kind.as_str())
        && worker.settings.mail.postal_address.is_empty()
    {
        return Ok(Composed::Hold(
            "held back: mail.postal_address is empty in this worker's configuration; \
             every update and welcome mail must show it"
                .into(),
        ));
    }
    if job.kind == "test" {
        return compose_test(worker, job).await;
    }
    if job.kind == "notice" {
        // A notice to a subscriber (list hygiene's question) goes only while they are
        // confirmed; one to staff names nobody.
        if let Some(subscriber_id) = job.subscriber_id {
            let contact = contacts
                .ask(subscriber_id)
                .await
                .map_err(ComposeError::Database)?;
            match contact {
                Some(c) if c.status == "confirmed" => {}
                Some(c) => return Ok(Composed::Skip(format!("subscriber is {}", c.status))),
                None => return Ok(Composed::Skip("the subscriber no longer exists".into())),
            }
        }
        return compose_notice(worker, job);
    }
    let Some(subscriber_id) = job.subscriber_id else {
        return Ok(Composed::Skip("the subscriber's data was erased".into()));
    };
    let Some(contact) = contacts
        .ask(subscriber_id)
        .await
        .map_err(ComposeError::Database)?
    else {
        return Ok(Composed::Skip("the subscriber no longer exists".into()));
    };
    match (job.kind.as_str(), job.update_id) {
        ("confirmation", _) => compose_confirmation(worker, job, &contact),
        ("update", Some(update_id)) => {
            if contact.status != "confirmed" {
                return Ok(Composed::Skip(format!("subscriber is {}", contact.status)));
            }
            let update = worker.prepared(update_id).await?;
            if !contact.on_any(&update.record.lists) {
                return Ok(Composed::Skip("subscriber left the update's lists".into()));
            }
            let Some(items) = items_for(&update.record.news_items, contact.topics.as_deref())
            else {
                return Ok(Composed::Skip(
                    "none of the update's news items is in the subscriber's topics".into(),
                ));
            };
            let links = Links::for_subscriber(&worker.settings, &contact);
            compose_update(
                worker,
                job,
                &update,
                &items,
                (&contact.email, contact.name.as_deref()),
                &links,
            )
            .map(Composed::Send)
        }
        ("welcome", _) => {
            if contact.status != "confirmed" {
                return Ok(Composed::Skip(format!("subscriber is {}", contact.status)));
            }
            compose_welcome(worker, job, &contact).map(Composed::Send)
        }
        (other, _) => Ok(Composed::Skip(format!("unknown delivery kind {other}"))),
    }
}

fn compose_confirmation(
    worker: &Worker,
    job: &Claimed,
    contact: &Contact,
) -> Result<Composed, ComposeError> {
    let Some(nonce) = job.payload.get("nonce").and_then(|n| n.as_str()) else {
        return Ok(Composed::Skip(
            "the confirmation link was already used or withdrawn".into(),
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
        &worker.templates.cached(),
        &Envelope {
            return_path: return_path(worker, job),
            ..Envelope::new(
                &settings.mail,
                &contact.email,
                None,
                message_id(worker, job),
            )
        },
        &ConfirmationMail {
            email: &contact.email,
            confirm_url: &confirm_url,
            expires_hours: settings.signup.confirm_ttl.as_secs() / 3600,
            postal_address: &settings.mail.postal_address,
        },
    )
    .map_err(ComposeError::Broken)?;
    Ok(Composed::Send(message))
}

async fn compose_test(worker: &Worker, job: &Claimed) -> Result<Composed, ComposeError> {
    let update_id = job
        .payload
        .get("update_id")
        .and_then(|v| v.as_str())
        .and_then(|v| v.parse::<Uuid>().ok());
    let to = job.payload.get("to").and_then(|v| v.as_str());
    let version = job
        .payload
        .get("version")
        .and_then(serde_json::Value::as_i64)
        .and_then(|v| i32::try_from(v).ok());
    let (Some(update_id), Some(to)) = (update_id, to) else {
        return Ok(Composed::Skip("malformed test mail".into()));
    };
    let update = Arc::new(
        super::prepared::for_test(
            &worker.pool,
            &worker.settings,
            &worker.templates,
            update_id,
            version,
        )
        .await?,
    );
    // A test mail's links point nowhere real: they are signed for the nil subscriber.
    let links = Links::for_id(&worker.settings, Uuid::nil(), 0);
    let items: Vec<&NewsItem> = update.record.news_items.iter().collect();
    compose_update(worker, job, &update, &items, (to, None), &links).map(Composed::Send)
}

/// A notice to a member of staff; its payload holds `to`, `subject`, `text`, `action`, `url`.
fn compose_notice(worker: &Worker, job: &Claimed) -> Result<Composed, ComposeError> {
    let field = |name: &str| job.payload.get(name).and_then(|v| v.as_str());
    let (Some(to), Some(subject), Some(text), Some(action), Some(url)) = (
        field("to"),
        field("subject"),
        field("text"),
        field("action"),
        field("url"),
    ) else {
        return Ok(Composed::Skip("malformed notice".into()));
    };
    let message = mail::notice_message(
        &worker.templates.cached(),
        &Envelope {
            return_path: return_path(worker, job),
            ..Envelope::new(&worker.settings.mail, to, None, message_id(worker, job))
        },
        &mail::Notice {
            subject,
            text,
            action,
            url,
        },
    )
    .map_err(ComposeError::Broken)?;
    Ok(Composed::Send(message))
}

fn compose_update(
    worker: &Worker,
    job: &Claimed,
    update: &Arc<PreparedUpdate>,
    items: &[&NewsItem],
    (to, name): (&str, Option<&str>),
    links: &Links,
) -> Result<lettre::Message, ComposeError> {
    let settings = &worker.settings;
    // An empty name is no name (a template's `{{#if name}}` reads it so).
    let name = name.filter(|n| !n.is_empty());
    let envelope = Envelope {
        to_email: to,
        to_name: name,
        message_id: message_id(worker, job),
        from: update.from.clone(),
        reply_to: update.reply_to.clone(),
        return_path: return_path(worker, job),
    };
    let list = mail::ListHeaders {
        // `?update=`: an unsubscribe through it is counted for the update's report.
        unsubscribe_url: format!("{}?update={}", links.unsubscribe, update.record.id),
        unsubscribe_mailto: links.mailto.clone(),
        list_id: update.list_id.clone(),
        feedback_id: update.feedback_id.clone(),
    };
    // A test mail is rendered in full, its subject marked as the subject line's first word.
    let stencil = match update.test {
        false => mail::update_stencil(settings, update, items, name.is_some())
            .map_err(ComposeError::Broken)?,
        true => None,
    };
    match stencil {
        Some(stencil) => {
            let unsubscribe = format!("{}?update={}", links.unsubscribe, update.record.id);
            let mail = stencil.fill_encoded(&[name.unwrap_or(""), to, &unsubscribe, &links.manage]);
            mail::bulk_message_encoded(&envelope, mail, &list)
        }
        None => {
            let rendered = mail::render_update(settings, update, items, (to, name), links)
                .map_err(ComposeError::Broken)?;
            mail::bulk_message_rendered(&envelope, rendered, &list)
        }
    }
    .map_err(ComposeError::Broken)
}

#[derive(Serialize)]
struct WelcomeMail<'a> {
    name: Option<&'a str>,
    lists: Vec<&'a str>,
    manage_url: &'a str,
    unsubscribe_url: &'a str,
    postal_address: &'a str,
}

fn compose_welcome(
    worker: &Worker,
    job: &Claimed,
    contact: &Contact,
) -> Result<lettre::Message, ComposeError> {
    let settings = &worker.settings;
    let lists: Vec<&str> = job
        .payload
        .get("lists")
        .and_then(|l| l.as_array())
        .map(|l| l.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let first_slug = job
        .payload
        .get("slugs")
        .and_then(|l| l.get(0))
        .and_then(|v| v.as_str());
    let first_name = lists.first().copied();
    let host = settings.server.base_url.host();
    let links = Links::for_subscriber(&worker.settings, contact);
    mail::bulk_message(
        &worker.templates.cached(),
        "welcome",
        &Envelope {
            return_path: return_path(worker, job),
            ..Envelope::new(
                &settings.mail,
                &contact.email,
                contact.name.as_deref(),
                message_id(worker, job),
            )
        },
        &WelcomeMail {
            name: contact.name.as_deref(),
            lists,
            manage_url: &links.manage,
            unsubscribe_url: &links.unsubscribe,
            postal_address: &settings.mail.postal_address,
        },
        &mail::ListHeaders {
            unsubscribe_url: links.unsubscribe.clone(),
            unsubscribe_mailto: links.mailto.clone(),
            // The same List-Id as the list's updates (rows queued before slugs were kept: the
            // first list's name only).
            list_id: mail::list_id(first_name, first_slug.unwrap_or("welcome"), host),
            feedback_id: format!("welcome:{}:welcome:{host}", first_slug.unwrap_or("welcome")),
        },
    )
    .map_err(ComposeError::Broken)
}

/// Stable across the retries of a row: per (update, subscriber) for updates (the update's
/// UUID makes it unique), and for every other mail the random key the row got at its first
/// claim, so no two installations (or one restored from a backup) ever reuse an id.
fn message_id(worker: &Worker, job: &Claimed) -> String {
    let host = worker.settings.server.base_url.host();
    match (job.update_id, job.subscriber_id) {
        (Some(update), Some(subscriber)) => {
            let secret = worker.settings.security.secret_key.expose().as_bytes();
            let local = crate::domain::message_id::update_local(secret, update, subscriber);
            format!("{local}@{host}")
        }
        // Only update rows lack a key (the claim gives every other row one), and an update row
        // without a subscriber is skipped before anything is composed.
        _ => format!(
            "{}.{}@{host}",
            job.kind,
            job.message_key.unwrap_or_else(Uuid::new_v4).simple()
        ),
    }
}

/// The VERP envelope sender naming this row (`bounces+<token>@bounce.return_path_domain`), or
/// None when `bounce.return_path_domain` is empty (the From address is the envelope sender).
fn return_path(worker: &Worker, job: &Claimed) -> Option<String> {
    let domain = &worker.settings.bounce.return_path_domain;
    (!domain.is_empty()).then(|| {
        crate::domain::verp::return_path(
            worker.settings.security.secret_key.expose().as_bytes(),
            job.id,
            domain,
        )
    })
}

/// A log-safe summary of an outcome (no addresses).
pub fn summary(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Sent { .. } => "sent",
        Outcome::Deferred { .. } => "deferred",
        Outcome::Failed { .. } => "failed",
        Outcome::Skipped { .. } => "skipped",
        Outcome::Postponed { .. } => "postponed",
        Outcome::Held { .. } => "held",
    }
}
