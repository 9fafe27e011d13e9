//! Bounces and complaints that arrive later (after the relay took the mail), whatever way
//! they come in: the inbound SMTP listener (`inbound`), a mailbox, or a provider's webhook.
//! Each is classified once ([`classify`]), matched to the mail it is about, and recorded with
//! its effects (`store::bounces`).
//!
//! Matching, most exact first: a VERP token (`domain::verp`, the address the report was sent
//! to, or the ARF `Original-Mail-From` it states) names the delivery row; otherwise the original mail's Message-ID carried in the report
//! (`update.<update>.<subscriber>@host`, or `<kind>.<key>@host` for other mails); otherwise
//! (provider events) the recipient's address. A report whose contents contradict its token
//! (it carries the Message-ID of another mail, or names another recipient) is kept unmatched
//! and changes nothing: a token only ever speaks for its own mail.

pub mod classify;
pub mod inbound;
pub mod mailbox;
pub mod providers;

use anyhow::Context;
use sqlx::PgPool;
use uuid::Uuid;

pub use classify::{classify, Report, ReportKind};

use crate::config::Settings;
use crate::domain::EmailAddress;
use crate::store::bounces::{self, Effect, Limits, NewReport, Target};

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
}

/// What became of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Processed {
    pub kind: ReportKind,
    pub matched: bool,
    pub effect: Effect,
}

/// Matches `report` (already classified; `raw` is what arrived, kept for staff) and records
/// it. `verp_delivery`: the delivery a VERP token in the envelope recipient named. Errors only
/// when the database fails: then nothing was recorded, and the caller must not drop the report
/// (answer 4xx, leave it in the mailbox, let the provider retry).
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
    let verp_delivery = verp_delivery.or_else(|| {
        let domain = &settings.bounce.return_path_domain;
        let secret = settings.security.secret_key.expose().as_bytes();
        report
            .original_sender
            .as_deref()
            .filter(|_| !domain.is_empty())
            .and_then(|sender| crate::domain::verp::delivery_of(secret, sender, domain))
    });
    let (target, why_unmatched) = match_report(pool, settings, report, verp_delivery).await?;
    let target = target.filter(|t| t.subscriber_id.is_some() || t.delivery_id.is_some());
    let detail = match (&target, why_unmatched) {
        (None, Some(why)) => format!("{} [unmatched: {why}]", report.detail),
        _ => report.detail.clone(),
    };
    let effect = bounces::record(
        pool,
        &NewReport {
            source: source.as_str(),
            kind: report.kind.as_str(),
            status_code: report.status.as_deref(),
            detail: &detail,
            target: target.as_ref(),
            raw,
            max_raw_bytes: settings.bounce.max_report_bytes,
        },
        Limits {
            hard_limit: settings.bounce.hard_limit,
            soft_limit: settings.bounce.soft_limit,
            soft_window: settings.bounce.soft_window,
        },
    )
    .await?;
    let processed = Processed {
        kind: report.kind,
        matched: target.is_some(),
        effect,
    };
    match (&target, why_unmatched) {
        (Some(t), _) => tracing::info!(
            source = source.as_str(),
            kind = report.kind.as_str(),
            status = report.status.as_deref().unwrap_or(""),
            delivery_id = t.delivery_id,
            update_id = ?t.update_id,
            effect = ?effect,
            "report recorded"
        ),
        (None, why) => tracing::warn!(
            source = source.as_str(),
            kind = report.kind.as_str(),
            reason = why.unwrap_or("it names no mail of ours"),
            effect = ?effect,
            "report matched no delivery: kept unmatched for staff, nothing else changed"
        ),
    }
    if report.kind == ReportKind::Complaint && effect != Effect::Duplicate {
        if let Some(update) = target.as_ref().and_then(|t| t.update_id) {
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
    }
    Ok(processed)
}

/// The mail a report is about, or why none could be trusted.
async fn match_report(
    pool: &PgPool,
    settings: &Settings,
    report: &Report,
    verp_delivery: Option<i64>,
) -> anyhow::Result<(Option<Target>, Option<&'static str>)> {
    let by_message_id = match report
        .message_id
        .as_deref()
        .and_then(|m| our_message_id(settings, m))
    {
        Some(MessageRef::Update(update, subscriber)) => {
            bounces::by_update_and_subscriber(pool, update, subscriber).await?
        }
        Some(MessageRef::Key(key)) => bounces::by_message_key(pool, key).await?,
        None => None,
    };
    if let Some(id) = verp_delivery {
        let Some(target) = bounces::by_delivery(pool, id).await? else {
            return Ok((
                None,
                Some("its VERP token names a delivery that no longer exists"),
            ));
        };
        if report.message_id.is_some() && by_message_id.as_ref().is_some_and(|m| *m != target) {
            return Ok((
                None,
                Some("it carries the Message-ID of another mail than the one its VERP token names"),
            ));
        }
        let recipient_differs = report
            .recipient
            .as_deref()
            .zip(target.address.as_deref())
            .is_some_and(|(r, a)| canonical(r).as_deref() != Some(a));
        if recipient_differs && by_message_id.is_none() {
            return Ok((
                None,
                Some("it names another recipient than the mail its VERP token names"),
            ));
        }
        return Ok((Some(target), None));
    }
    if by_message_id.is_some() {
        return Ok((by_message_id, None));
    }
    if let Some(address) = report.recipient.as_deref().and_then(canonical) {
        if let Some(target) = bounces::by_address(pool, &address).await? {
            return Ok((Some(target), None));
        }
    }
    Ok((None, None))
}

fn canonical(address: &str) -> Option<String> {
    EmailAddress::parse(address)
        .ok()
        .map(|a| a.canonical().to_owned())
}

enum MessageRef {
    Update(Uuid, Uuid),
    Key(Uuid),
}

/// The mail a Message-ID of ours names (`worker::delivery::message_id` makes them), checking
/// the host is ours.
fn our_message_id(settings: &Settings, id: &str) -> Option<MessageRef> {
    let (local, host) = id.trim_matches(['<', '>']).rsplit_once('@')?;
    if !host.eq_ignore_ascii_case(settings.server.base_url.host()) {
        return None;
    }
    let mut parts = local.split('.');
    match (parts.next()?, parts.next()?, parts.next(), parts.next()) {
        ("update", u, Some(s), None) => Some(MessageRef::Update(u.parse().ok()?, s.parse().ok()?)),
        (_, key, None, None) => Some(MessageRef::Key(key.parse().ok()?)),
        _ => None,
    }
}
