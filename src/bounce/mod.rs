//! Bounces and complaints that arrive later (after the relay took the mail), whatever way
//! they come in: the inbound SMTP listener (`inbound`), a mailbox, or a provider's webhook.
//! Each is classified once ([`classify`]), matched to the mail it is about, and recorded with
//! its effects (`store::bounces`).
//!
//! **The matching rule, by how far a source can be trusted** (written once, in
//! [`match_report`]):
//! - A report that came by mail (the listener, the mailbox) can be sent by anyone. It changes a
//!   person only through something an outsider cannot make: our VERP token for that mail (the
//!   address it was sent to, or the ARF `Original-Mail-From` it states), or the Message-ID of a
//!   mail we sent to that person (`update.<update>.<subscriber>@host` or `<kind>.<key>@host`,
//!   random parts, found in the ledger as handed to the relay). A report that names only an
//!   address is kept, unmatched, with that reason; nobody changes.
//! - A provider's webhook call whose signature or credentials checked out may also name the
//!   person by the recipient's address alone.
//! - Never when the names disagree: a token and a Message-ID of two different mails, a
//!   Message-ID of ours that names no mail we sent, or a recipient other than the mail's keep
//!   the report unmatched, changing nothing. A token only ever speaks for its own mail.

pub mod classify;
pub mod inbound;
pub mod mailbox;
pub mod providers;

use std::collections::HashSet;

use anyhow::Context;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub use classify::{classify, Report, ReportKind};

use crate::config::Settings;
use crate::domain::EmailAddress;
use crate::store::bounces::{self, Effect, Limits, NewReport, Target};
use providers::{Event, EventKind};

/// Where a report came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Smtp,
    Imap,
    Ses,
    Postmark,
    Sendgrid,
    Mailgun,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Smtp => "smtp",
            Source::Imap => "imap",
            Source::Ses => "ses",
            Source::Postmark => "postmark",
            Source::Sendgrid => "sendgrid",
            Source::Mailgun => "mailgun",
        }
    }

    fn trust(self) -> Trust {
        match self {
            Source::Smtp | Source::Imap => Trust::Mail,
            Source::Ses | Source::Postmark | Source::Sendgrid | Source::Mailgun => Trust::Provider,
        }
    }
}

/// How far what a source says about a person can be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trust {
    /// Anyone can send it: only our VERP token or the Message-ID of a mail we sent names a
    /// person.
    Mail,
    /// A provider whose signature or credentials checked out: the recipient's address is
    /// enough.
    Provider,
}

/// What became of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Processed {
    pub kind: ReportKind,
    pub matched: bool,
    pub effect: Effect,
}

/// What a report or event names: the mail a VERP token names, the original Message-ID it
/// carries, the recipients it states.
struct Names<'a> {
    verp: Option<i64>,
    message_id: Option<&'a str>,
    recipients: Vec<&'a str>,
}

impl<'a> Names<'a> {
    fn of(report: &'a Report, verp: Option<i64>) -> Self {
        let mut recipients: Vec<&str> = report
            .recipients
            .iter()
            .map(|v| v.recipient.as_str())
            .collect();
        if recipients.is_empty() {
            recipients.extend(report.recipient.as_deref());
        }
        Self {
            verp,
            message_id: report.message_id.as_deref(),
            recipients,
        }
    }
}

/// The mail a report is about, or why none can be trusted.
type Matched = Result<Target, &'static str>;

/// Matches `report` (classified from mail; `raw` is what arrived, kept for staff) and records
/// it with its effects in one transaction. `verp_delivery`: the delivery a VERP token in the
/// envelope recipient named. Errors only when the database fails: then nothing was recorded,
/// and the caller must not drop the report (answer 4xx, leave it in the mailbox).
pub async fn record(
    pool: &PgPool,
    settings: &Settings,
    source: Source,
    raw: &[u8],
    report: &Report,
    verp_delivery: Option<i64>,
) -> anyhow::Result<Processed> {
    // A feedback report sent elsewhere (the complaints address, a mailbox) may still state the
    // VERP envelope sender of the original: its token names the mail as exactly.
    let verp = verp_delivery.or_else(|| {
        let domain = &settings.bounce.return_path_domain;
        let secret = settings.security.secret_key.expose().as_bytes();
        report
            .original_sender
            .as_deref()
            .filter(|_| !domain.is_empty())
            .and_then(|sender| crate::domain::verp::delivery_of(secret, sender, domain))
    });
    let names = Names::of(report, verp);
    let mut tx = pool.begin().await.context("starting to record a report")?;
    let found = match_report(&mut tx, settings, source.trust(), &names).await?;
    let effect = store_report(&mut tx, settings, source, raw, report, &found).await?;
    tx.commit().await.context("committing the report")?;
    after_commit(pool, settings, source, report, &found, effect).await?;
    Ok(Processed {
        kind: report.kind,
        matched: found.is_ok(),
        effect,
    })
}

/// Records the events of a provider's call whose signature or credentials checked out, all in
/// one transaction, and returns how many were taken. A call whose `token` (Mailgun's signature
/// token, SNS's MessageId, SendGrid's signature) was seen before takes nothing; an event whose
/// provider id was seen before is skipped. Errors only when the database fails: nothing was
/// recorded and no id marked seen, so the provider's retry is taken.
pub async fn record_call(
    pool: &PgPool,
    settings: &Settings,
    source: Source,
    token: Option<&str>,
    events: &[Event],
) -> anyhow::Result<usize> {
    let seen_key = |kind: &str, id: &str| -> [u8; 32] {
        Sha256::new()
            .chain_update(kind)
            .chain_update(b"\0")
            .chain_update(id)
            .finalize()
            .into()
    };
    let token_key = token.map(|t| seen_key("token", t));
    let event_keys: Vec<Option<[u8; 32]>> = events
        .iter()
        .map(|e| e.id.as_deref().map(|id| seen_key("event", id)))
        .collect();
    let keys: Vec<[u8; 32]> = token_key
        .iter()
        .chain(event_keys.iter().flatten())
        .copied()
        .collect();
    let mut tx = pool.begin().await.context("starting to record a call")?;
    let mut fresh: HashSet<[u8; 32]> = if keys.is_empty() {
        HashSet::new()
    } else {
        bounces::first_seen(&mut tx, source.as_str(), &keys)
            .await
            .context("marking the call's ids seen")?
            .into_iter()
            .collect()
    };
    if token_key.is_some_and(|t| !fresh.contains(&t)) {
        tracing::warn!(
            source = source.as_str(),
            "webhook call whose token was seen before: acknowledged, nothing changed"
        );
        return Ok(0);
    }
    let mut taken = Vec::new();
    for (event, key) in events.iter().zip(&event_keys) {
        if key.is_some_and(|k| !fresh.remove(&k)) {
            tracing::info!(
                source = source.as_str(),
                "webhook event seen before: skipped"
            );
            continue;
        }
        let names = match &event.kind {
            EventKind::Report { report, .. } => Names::of(report, None),
            EventKind::Delivered {
                recipient,
                message_id,
            } => Names {
                verp: None,
                message_id: message_id.as_deref(),
                recipients: recipient.as_deref().into_iter().collect(),
            },
        };
        let found = match_report(&mut tx, settings, Trust::Provider, &names).await?;
        taken.push((event, found));
    }
    // Subscribers are locked in one order, so two calls about the same people never deadlock.
    taken.sort_by_key(|(_, found)| found.as_ref().ok().and_then(|t| t.subscriber_id));
    let mut recorded = 0;
    let mut outcomes = Vec::new();
    for (event, found) in taken {
        match &event.kind {
            EventKind::Report { report, raw } => {
                let effect =
                    store_report(&mut tx, settings, source, raw.as_bytes(), report, &found).await?;
                if effect != Effect::Duplicate {
                    recorded += 1;
                }
                outcomes.push((report, found, effect));
            }
            EventKind::Delivered { .. } => {
                if let Some(id) = found.ok().and_then(|t| t.subscriber_id) {
                    bounces::clear_soft_bounces(&mut tx, id)
                        .await
                        .context("clearing soft bounces after a delivery")?;
                    recorded += 1;
                }
            }
        }
    }
    tx.commit().await.context("committing the call's events")?;
    for (report, found, effect) in outcomes {
        after_commit(pool, settings, source, report, &found, effect).await?;
    }
    Ok(recorded)
}

/// Records one matched (or unmatched, with its reason) report in the caller's transaction; of
/// a report about several recipients, what it says of the matched person.
async fn store_report(
    tx: &mut PgConnection,
    settings: &Settings,
    source: Source,
    raw: &[u8],
    report: &Report,
    found: &Matched,
) -> anyhow::Result<Effect> {
    let about_them;
    let report = match found.as_ref().ok().and_then(|t| t.address.as_deref()) {
        Some(address) => {
            about_them = report.for_recipient(|r| canonical(r).as_deref() == Some(address));
            &about_them
        }
        None => report,
    };
    let detail = match found {
        Ok(_) => report.detail.clone(),
        Err(why) => format!("{} [unmatched: {why}]", report.detail),
    };
    bounces::record(
        tx,
        &NewReport {
            source: source.as_str(),
            kind: report.kind.as_str(),
            status_code: report.status.as_deref(),
            detail: &detail,
            message_id: report.message_id.as_deref(),
            target: found.as_ref().ok(),
            raw,
            max_raw_bytes: settings.bounce.max_report_bytes,
        },
        Limits {
            hard_limit: settings.bounce.hard_limit,
            soft_limit: settings.bounce.soft_limit,
            soft_window: settings.bounce.soft_window,
        },
    )
    .await
}

/// After the commit: the log line, and the complaint breaker for a new complaint.
async fn after_commit(
    pool: &PgPool,
    settings: &Settings,
    source: Source,
    report: &Report,
    found: &Matched,
    effect: Effect,
) -> anyhow::Result<()> {
    match found {
        Ok(t) => tracing::info!(
            source = source.as_str(),
            kind = report.kind.as_str(),
            status = report.status.as_deref().unwrap_or(""),
            delivery_id = t.delivery_id,
            update_id = ?t.update_id,
            effect = ?effect,
            "report recorded"
        ),
        Err(why) => tracing::warn!(
            source = source.as_str(),
            kind = report.kind.as_str(),
            reason = why,
            effect = ?effect,
            "report matched no delivery: kept unmatched for staff, nothing else changed"
        ),
    }
    if report.kind != ReportKind::Complaint || effect == Effect::Duplicate {
        return Ok(());
    }
    if let Some(update) = found.as_ref().ok().and_then(|t| t.update_id) {
        if bounces::trip_complaint_breaker(
            pool,
            update,
            settings.bounce.complaint_percent,
            settings.sending.breaker.min_sends,
        )
        .await
        .context("checking the complaint breaker")?
        {
            tracing::warn!(update_id = %update, "complaint breaker: update paused");
        }
    }
    Ok(())
}

/// The matching rule (see the module documentation): the mail `names` is about, or why
/// nobody may be changed.
async fn match_report(
    tx: &mut PgConnection,
    settings: &Settings,
    trust: Trust,
    names: &Names<'_>,
) -> anyhow::Result<Matched> {
    let by_token = match names.verp {
        Some(id) => match bounces::by_delivery(&mut *tx, id).await? {
            Some(target) => Some(target),
            None => return Ok(Err("its VERP token names a delivery that no longer exists")),
        },
        None => None,
    };
    // Some(None): a Message-ID of ours in form that names no mail we handed to the relay.
    let by_message_id = match names.message_id.and_then(|m| our_message_id(settings, m)) {
        Some(MessageRef::Update(update, subscriber)) => {
            Some(bounces::by_update_and_subscriber(&mut *tx, update, subscriber).await?)
        }
        Some(MessageRef::Key(key)) => Some(bounces::by_message_key(&mut *tx, key).await?),
        Some(MessageRef::NotOurs) => Some(None),
        None => None,
    };
    let target =
        match (by_token, by_message_id) {
            (Some(token), Some(Some(mail))) if mail != token => {
                return Ok(Err(
                    "it carries the Message-ID of another mail than the one its VERP token names",
                ))
            }
            (Some(_), Some(None)) => return Ok(Err(
                "it carries a Message-ID of ours that names no mail we sent, beside its VERP token",
            )),
            (Some(token), _) => token,
            (None, Some(Some(mail))) => mail,
            (None, Some(None)) if trust == Trust::Mail => {
                return Ok(Err(
                    "it carries a Message-ID of ours that names no mail we sent",
                ))
            }
            (None, _) if trust == Trust::Mail => {
                return Ok(Err(if !names.recipients.is_empty() {
                    "it names only an address: a report by mail changes a person only through our \
                 VERP token or the Message-ID of a mail we sent them"
                } else {
                    "it names no mail of ours"
                }))
            }
            (None, _) => match names.recipients.first().and_then(|r| canonical(r)) {
                Some(address) => match bounces::by_address(&mut *tx, &address).await? {
                    Some(target) => target,
                    None => return Ok(Err("it names an address that is no subscriber's")),
                },
                None => return Ok(Err("it names no mail of ours and no recipient")),
            },
        };
    let other_recipient = match target.address.as_deref() {
        Some(address) => {
            !names.recipients.is_empty()
                && !names
                    .recipients
                    .iter()
                    .any(|r| canonical(r).as_deref() == Some(address))
        }
        None => false,
    };
    if other_recipient {
        return Ok(Err(
            "it names another recipient than the person the mail it names went to",
        ));
    }
    if target.subscriber_id.is_none() && target.delivery_id.is_none() {
        return Ok(Err("the mail it names is no longer in the ledger"));
    }
    Ok(Ok(target))
}

fn canonical(address: &str) -> Option<String> {
    EmailAddress::parse(address)
        .ok()
        .map(|a| a.canonical().to_owned())
}

enum MessageRef {
    Update(Uuid, Uuid),
    Key(Uuid),
    /// An update mail's Message-ID in our form, on our host, whose mac does not check out: no
    /// mail we sent (one made up from a person's ids, or one of a release before the mac).
    NotOurs,
}

/// The mail a Message-ID of ours names (`worker::delivery::message_id` makes them), checking
/// the host is ours and, for an update mail, its mac (`domain::message_id`): `None` for one
/// made by anyone without our key.
fn our_message_id(settings: &Settings, id: &str) -> Option<MessageRef> {
    let (local, host) = id.trim_matches(['<', '>']).rsplit_once('@')?;
    if !host.eq_ignore_ascii_case(settings.server.base_url.host()) {
        return None;
    }
    if local.starts_with("update.") {
        let secret = settings.security.secret_key.expose().as_bytes();
        return Some(
            match crate::domain::message_id::parse_update_local(secret, local) {
                Some((update, subscriber)) => MessageRef::Update(update, subscriber),
                None => MessageRef::NotOurs,
            },
        );
    }
    let mut parts = local.split('.');
    match (parts.next()?, parts.next()?, parts.next()) {
        (_, key, None) => Some(MessageRef::Key(key.parse().ok()?)),
        _ => None,
    }
}
