//! Operations on updates shared by the admin pages, the API and the command line: parse, check against the
//! database and the templates, then call `store::updates`.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::config::{MailSettings, Settings};
use crate::domain::schedule;
use crate::domain::{EmailAddress, FieldErrors, UpdateInput};
use crate::mail::{LiveTemplates, MailTemplates, RenderedMail};
use crate::ops::Actor;
use crate::store::lists;
use crate::store::subscribers::{self, Contact};
use crate::store::updates::{self as store, Action, DeliveryRow, UpdateRecord};
use crate::worker::{prepare, render_update_for};

/// Window over which the current send rate is measured.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// Largest page of deliveries.
pub const MAX_PAGE: i64 = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("no such update")]
    NotFound,
    #[error("invalid input")]
    Invalid(FieldErrors),
    #[error("the update is {0}: not allowed now")]
    Conflict(String),
    #[error("{0}")]
    Refused(String),
    /// The actor's role does not allow it.
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for UpdateError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

/// An update with its delivery counts and current rate: what the API shows.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UpdateView {
    #[serde(flatten)]
    pub update: UpdateRecord,
    /// Mails by status. `queued` includes the recipients of a sending or paused update whose
    /// rows are not written yet (workers write them as they claim them): its recipients as
    /// counted once after the start, less its rows (`store::updates::unwritten_recipients`).
    pub counts: BTreeMap<String, i64>,
    /// Mails reported bounced (hard or soft) after the relay took them.
    pub bounced: i64,
    /// Mails reported as spam (ARF reports, provider complaint events).
    pub complained: i64,
    pub rate_per_second: f64,
}

pub async fn view(pool: &PgPool, id: Uuid) -> Result<UpdateView, UpdateError> {
    let update = store::get(pool, id).await?.ok_or(UpdateError::NotFound)?;
    let (bounced, complained) = crate::store::bounces::update_counts(pool, id).await?;
    let mut counts = store::counts(pool, id).await?;
    let rows = counts.values().sum();
    *counts.entry("queued".to_owned()).or_default() +=
        store::unwritten_recipients(pool, id, rows).await?;
    Ok(UpdateView {
        counts,
        bounced,
        complained,
        rate_per_second: store::recent_rate(pool, id, RATE_WINDOW).await?,
        update,
    })
}

async fn checked(
    pool: &PgPool,
    templates: &MailTemplates,
    mail: &MailSettings,
    input: &UpdateInput,
) -> Result<(crate::domain::NewUpdate, Vec<Uuid>), UpdateError> {
    let parsed = input.parse().map_err(UpdateError::Invalid)?;
    let mut errors = FieldErrors::new();
    if let (Some(from), Some(dkim)) = (&parsed.from, &mail.dkim) {
        let domain = from.email.domain();
        if !crate::mail::aligned(domain, &dkim.domain) {
            errors.insert(
                "from",
                format!(
                    "The From domain {domain:?} is not aligned with the DKIM signing domain {:?} \
                     (mail.dkim.domain): receivers would fail DMARC for it. Use an address at {:?} \
                     or one of its subdomains.",
                    dkim.domain, dkim.domain
                ),
            );
        }
    }
    if !templates.has(&parsed.template) {
        errors.insert(
            "template",
            format!("There is no mail template {:?}.", parsed.template),
        );
    } else if !templates.is_for_updates(&parsed.template) {
        errors.insert(
            "template",
            format!(
                "The mail template {:?} is not made for updates; use \"update\" or a template made for updates.",
                parsed.template
            ),
        );
    }
    let list_ids = match lists::resolve_any(pool, &parsed.lists).await? {
        Ok(found) => found.into_iter().map(|(id, _)| id).collect(),
        Err(problem) => {
            errors.insert("lists", problem.message("Unknown lists:"));
            Vec::new()
        }
    };
    if errors.is_empty() {
        Ok((parsed, list_ids))
    } else {
        Err(UpdateError::Invalid(errors))
    }
}

pub async fn create(
    pool: &PgPool,
    templates: &MailTemplates,
    mail: &MailSettings,
    input: &UpdateInput,
) -> Result<UpdateView, UpdateError> {
    let input = crate::ops::news::expand(pool, input).await?;
    let (update, list_ids) = checked(pool, templates, mail, &input).await?;
    let id = store::create(pool, &update, &list_ids).await?;
    view(pool, id).await
}

pub async fn patch(
    pool: &PgPool,
    templates: &MailTemplates,
    mail: &MailSettings,
    id: Uuid,
    patch: UpdateInput,
) -> Result<UpdateView, UpdateError> {
    let current = store::get(pool, id).await?.ok_or(UpdateError::NotFound)?;
    let merged = crate::ops::news::expand(pool, &current.as_input().merged(patch)).await?;
    let (update, list_ids) = checked(pool, templates, mail, &merged).await?;
    match store::replace(pool, id, &update, &list_ids).await? {
        None => Err(UpdateError::NotFound),
        Some(false) => Err(UpdateError::Conflict(current.status)),
        Some(true) => view(pool, id).await,
    }
}

/// Schedules, sends now, pauses, resumes, cancels or approves. Only an admin may; with
/// `sending.require_approval`, a send or schedule to more than the threshold of recipients
/// waits in `awaiting_approval` until a different admin approves it.
pub async fn act(
    pool: &PgPool,
    settings: &Settings,
    actor: &Actor,
    id: Uuid,
    action: Action,
) -> Result<UpdateView, UpdateError> {
    if !actor.is_admin() {
        return Err(UpdateError::Forbidden(
            "Only an admin may send, schedule, pause, resume, cancel or approve an update.".into(),
        ));
    }
    let (what, at) = match action {
        Action::Schedule(at) => ("schedule", Some(at)),
        Action::SendNow => ("send", None),
        Action::Pause => ("pause", None),
        Action::Resume => ("resume", None),
        Action::Cancel => ("cancel", None),
        Action::RequestApproval(at, _) => ("schedule", Some(at)),
        Action::Approve(_) => ("approve", None),
    };
    let action = match action {
        Action::Approve(_) => approval(pool, actor, id).await?,
        Action::Schedule(at) if needs_approval(pool, settings, id).await? => {
            Action::RequestApproval(at, actor.staff_id())
        }
        Action::SendNow if needs_approval(pool, settings, id).await? => {
            Action::RequestApproval(Utc::now(), actor.staff_id())
        }
        other => other,
    };
    let starts = matches!(
        action,
        Action::Schedule(_) | Action::SendNow | Action::Resume | Action::RequestApproval(..)
    );
    if starts || matches!(action, Action::Approve(_)) {
        let archived = store::archived_lists(pool, id).await?;
        if !archived.is_empty() {
            return Err(UpdateError::Refused(format!(
                "Its lists include an archived list ({}), which takes no sends: reopen the list or change the update's lists first.",
                archived.join(", ")
            )));
        }
    }
    if starts && settings.mail.postal_address.is_empty() {
        return Err(UpdateError::Refused(
            "mail.postal_address is empty: every update must show a postal address; set it before sending".into(),
        ));
    }
    if let Action::Schedule(at) | Action::RequestApproval(at, _) = action {
        if at < Utc::now() - chrono::Duration::minutes(1) {
            let errors = FieldErrors::from([(
                "at",
                "The time is in the past; use send to send now.".to_owned(),
            )]);
            return Err(UpdateError::Invalid(errors));
        }
    }
    match store::apply(pool, id, action).await? {
        None => Err(UpdateError::NotFound),
        Some(Err(status)) => Err(UpdateError::Conflict(status)),
        Some(Ok(status)) => {
            let detail = serde_json::json!({ "at": at, "status": status });
            crate::ops::audit::record(pool, actor, what, Some(&id.to_string()), detail).await?;
            view(pool, id).await
        }
    }
}

/// Whether sending this update now needs a second admin.
async fn needs_approval(pool: &PgPool, settings: &Settings, id: Uuid) -> Result<bool, UpdateError> {
    match settings.sending.approval_threshold {
        None => Ok(false),
        Some(threshold) => {
            let n = store::recipient_count(pool, id).await?;
            Ok(u64::try_from(n).unwrap_or(0) > threshold)
        }
    }
}

/// An approval by `actor`: a member of staff other than the admin who asked.
async fn approval(pool: &PgPool, actor: &Actor, id: Uuid) -> Result<Action, UpdateError> {
    let Some(approver) = actor.staff_id() else {
        return Err(UpdateError::Forbidden(
            "An update is approved by a second admin in the staff area.".into(),
        ));
    };
    let update = store::get(pool, id).await?.ok_or(UpdateError::NotFound)?;
    if update.approval_requested_by == Some(approver) {
        return Err(UpdateError::Forbidden(
            "A different admin must approve this update.".into(),
        ));
    }
    Ok(Action::Approve(approver))
}

/// The people the update would go to if it started now.
pub async fn recipient_count(pool: &PgPool, id: Uuid) -> Result<i64, UpdateError> {
    store::get(pool, id).await?.ok_or(UpdateError::NotFound)?;
    Ok(store::recipient_count(pool, id).await?)
}

/// Schedules for a local time in an IANA zone (the staff area's form), remembering the zone.
pub async fn schedule_local(
    pool: &PgPool,
    settings: &Settings,
    actor: &Actor,
    id: Uuid,
    at: &str,
    zone: &str,
) -> Result<UpdateView, UpdateError> {
    let invalid =
        |field: &'static str, m: String| UpdateError::Invalid(FieldErrors::from([(field, m)]));
    let tz = schedule::time_zone(zone).map_err(|m| invalid("time_zone", m))?;
    let at = schedule::local_to_utc(at, tz).map_err(|m| invalid("at", m))?;
    let view = act(pool, settings, actor, id, Action::Schedule(at)).await?;
    store::set_time_zone(pool, id, tz.name()).await?;
    Ok(view)
}

/// The update's mail as one subscriber would get it (a sample person when `email` is None), by
/// the worker's own rendering code. `Ok(None)`: that person would get no mail of it (none of
/// its news items is in their topics).
pub async fn preview(
    pool: &PgPool,
    settings: &Settings,
    templates: &LiveTemplates,
    id: Uuid,
    email: Option<&str>,
) -> Result<Option<RenderedMail>, UpdateError> {
    let record = store::get(pool, id).await?.ok_or(UpdateError::NotFound)?;
    let contact = match email.map(str::trim).filter(|e| !e.is_empty()) {
        None => Contact {
            id: Uuid::nil(),
            email: "reader@example.org".into(),
            name: Some("Sample Reader".into()),
            status: "confirmed".into(),
            link_version: 0,
            topics: None,
            lists: record.lists.clone(),
        },
        Some(raw) => {
            let address = EmailAddress::parse(raw)
                .map_err(|e| UpdateError::Invalid(FieldErrors::from([("email", e)])))?;
            subscribers::contact_by_email(pool, address.canonical())
                .await?
                .ok_or_else(|| {
                    UpdateError::Invalid(FieldErrors::from([(
                        "email",
                        format!("{raw} is not a subscriber."),
                    )]))
                })?
        }
    };
    let prepared = prepare(settings, templates.current(pool).await?, record)?;
    Ok(render_update_for(settings, &prepared, &contact)?)
}

/// Parses an RFC 3339 time for scheduling.
pub fn parse_time(raw: &str) -> Result<DateTime<Utc>, UpdateError> {
    DateTime::parse_from_rfc3339(raw.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            UpdateError::Invalid(FieldErrors::from([(
                "at",
                format!("{raw:?} is not an RFC 3339 time like 2026-11-23T14:00:00Z"),
            )]))
        })
}

/// Queues one test mail of the update to `to`; the update's ledger is not touched.
pub async fn send_test(pool: &PgPool, id: Uuid, to: &str) -> Result<(), UpdateError> {
    let to = EmailAddress::parse(to)
        .map_err(|e| UpdateError::Invalid(FieldErrors::from([("to", e)])))?;
    store::get(pool, id).await?.ok_or(UpdateError::NotFound)?;
    store::queue_test(pool, id, to.as_str()).await?;
    Ok(())
}

pub async fn deliveries(
    pool: &PgPool,
    id: Uuid,
    status: Option<&str>,
    after: i64,
    limit: i64,
) -> Result<Vec<DeliveryRow>, UpdateError> {
    const STATUSES: &[&str] = &["queued", "sending", "sent", "deferred", "failed", "skipped"];
    if let Some(s) = status.filter(|s| !STATUSES.contains(s)) {
        return Err(UpdateError::Invalid(FieldErrors::from([(
            "status",
            format!("{s:?} is not one of {}", STATUSES.join(", ")),
        )])));
    }
    store::get(pool, id).await?.ok_or(UpdateError::NotFound)?;
    Ok(store::deliveries(pool, id, status, after, limit.clamp(1, MAX_PAGE)).await?)
}

pub async fn retry_failed(pool: &PgPool, actor: &Actor, id: Uuid) -> Result<u64, UpdateError> {
    if !actor.is_admin() {
        return Err(UpdateError::Forbidden(
            "Only an admin may send failed mails again.".into(),
        ));
    }
    store::get(pool, id).await?.ok_or(UpdateError::NotFound)?;
    Ok(store::retry_failed(pool, id).await?)
}
