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
use crate::mail::{prepare_update, render_update_for, LiveTemplates, MailTemplates, RenderedMail};
use crate::ops::roles::{self, Forbidden, Operation};
use crate::ops::Actor;
use crate::store::lists;
use crate::store::subscribers::{self, Contact};
use crate::store::updates::{self as store, Applied, Author, Confirmed, Replaced, UpdateContent};

pub use crate::store::updates::{recent, versions, Action, DeliveryRow, UpdateRecord};

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
    /// A scheduled, approved or waiting update is not changed in place.
    #[error(
        "The update is {0}: it cannot be changed in place. Unschedule it first: it goes back \
         to draft, and any approval is void."
    )]
    Frozen(String),
    /// The action was confirmed for another version than the update's current one.
    #[error(
        "The update changed since it was confirmed (version {confirmed} was confirmed; it is at \
         version {current} now). Look at it again and confirm the current version."
    )]
    Stale { confirmed: i32, current: i32 },
    /// An approval of a request for approval that was withdrawn or made again since.
    #[error(
        "The request for approval you saw was withdrawn or made again since: look at the update \
         again before approving it."
    )]
    StaleRequest,
    /// Past a limit per member of staff or token; try again after `retry_after_seconds`.
    #[error("{message}")]
    TooMany {
        message: String,
        retry_after_seconds: u64,
    },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<Forbidden> for UpdateError {
    fn from(e: Forbidden) -> Self {
        Self::Forbidden(e.0)
    }
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

fn author<'a>(actor: &Actor, label: &'a str) -> Author<'a> {
    Author {
        label,
        staff_id: actor.staff_id(),
    }
}

/// Creates a draft (version 1), audited. Any member of staff may.
pub async fn create(
    pool: &PgPool,
    templates: &MailTemplates,
    mail: &MailSettings,
    actor: &Actor,
    input: &UpdateInput,
) -> Result<UpdateView, UpdateError> {
    roles::authorize(actor, Operation::UpdateCompose)?;
    let input = crate::ops::news::expand(pool, input).await?;
    let (update, list_ids) = checked(pool, templates, mail, &input).await?;
    let label = actor.label();
    let id = store::create(pool, &update, &list_ids, author(actor, &label)).await?;
    let detail = serde_json::json!({ "version": 1, "subject": update.subject });
    crate::ops::audit::record(pool, actor, "update-create", Some(&id.to_string()), detail).await?;
    view(pool, id).await
}

/// Changes a draft: a new version when anything changed, audited field by field. A scheduled,
/// approved or waiting update is frozen ([`UpdateError::Frozen`]): it goes back to draft with
/// [`Action::Unschedule`] first.
pub async fn patch(
    pool: &PgPool,
    templates: &MailTemplates,
    mail: &MailSettings,
    actor: &Actor,
    id: Uuid,
    patch: UpdateInput,
) -> Result<UpdateView, UpdateError> {
    roles::authorize(actor, Operation::UpdateCompose)?;
    let current = store::get(pool, id).await?.ok_or(UpdateError::NotFound)?;
    if current.status != "draft" {
        return Err(
            if matches!(current.status.as_str(), "scheduled" | "awaiting_approval")
                || (current.status == "paused" && current.started_at.is_none())
            {
                UpdateError::Frozen(current.status)
            } else {
                UpdateError::Conflict(current.status)
            },
        );
    }
    let merged = crate::ops::news::expand(pool, &current.as_input().merged(patch)).await?;
    let (update, list_ids) = checked(pool, templates, mail, &merged).await?;
    let label = actor.label();
    match store::replace(pool, id, &update, &list_ids, author(actor, &label)).await? {
        Replaced::NotFound => Err(UpdateError::NotFound),
        Replaced::NotEditable(status) => Err(UpdateError::Frozen(status)),
        Replaced::Saved(None) => view(pool, id).await,
        Replaced::Saved(Some(made)) => {
            let after = store::get(pool, id).await?.ok_or(UpdateError::NotFound)?;
            let detail = serde_json::json!({
                "version": made.version,
                "changed": changes(&current.content(), &after.content()),
            });
            crate::ops::audit::record(pool, actor, "update-edit", Some(&id.to_string()), detail)
                .await?;
            view(pool, id).await
        }
    }
}

/// What changed between two versions, field by field: `{"subject": {"from": .., "to": ..}}`
/// (news items by their titles).
pub fn changes(before: &UpdateContent, after: &UpdateContent) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    let mut field = |name: &str, from: serde_json::Value, to: serde_json::Value| {
        if from != to {
            out.insert(name.into(), serde_json::json!({ "from": from, "to": to }));
        }
    };
    field(
        "subject",
        before.subject.as_str().into(),
        after.subject.as_str().into(),
    );
    field(
        "preheader",
        before.preheader.as_str().into(),
        after.preheader.as_str().into(),
    );
    field(
        "intro",
        before.intro.as_str().into(),
        after.intro.as_str().into(),
    );
    field(
        "template",
        before.template.as_str().into(),
        after.template.as_str().into(),
    );
    field(
        "from",
        before.from.clone().into(),
        after.from.clone().into(),
    );
    field(
        "reply_to",
        before.reply_to.clone().into(),
        after.reply_to.clone().into(),
    );
    field(
        "lists",
        before.lists.clone().into(),
        after.lists.clone().into(),
    );
    let titles = |c: &UpdateContent| -> serde_json::Value {
        c.news_items
            .iter()
            .map(|n| n.title.as_str())
            .collect::<Vec<_>>()
            .into()
    };
    if before.news_items != after.news_items {
        out.insert(
            "news_items".into(),
            serde_json::json!({ "from": titles(before), "to": titles(after) }),
        );
    }
    out.into()
}

/// Whether `actor` may take `action` at all, by role alone: the first check of every door,
/// before any other (a form key, a time, the update's state). Sending, scheduling, pausing,
/// resuming, cancelling, approving and unscheduling are an admin's; any member of staff may
/// ask for approval. An editor may also withdraw their own request ([`act`] checks whose it
/// is).
pub fn authorize(actor: &Actor, action: &Action) -> Result<(), UpdateError> {
    let operation = match action {
        Action::RequestApproval(..) | Action::Unschedule => Operation::UpdateRequestApproval,
        Action::Approve(_) => Operation::UpdateApprove,
        _ => Operation::UpdateSend,
    };
    roles::authorize(actor, operation).map_err(|refused| {
        if actor.rights() < roles::Rights::Editor {
            refused.into()
        } else {
            UpdateError::Forbidden(
                "Only an admin may send, schedule, pause, resume, cancel or approve an update; \
                 ask for approval instead."
                    .into(),
            )
        }
    })
}

/// The audit log's name for an action.
fn audited_as(action: &Action) -> &'static str {
    match action {
        Action::Schedule(_) => "schedule",
        Action::SendNow => "send",
        Action::Pause => "pause",
        Action::Resume => "resume",
        Action::Cancel => "cancel",
        Action::RequestApproval(..) => "request-approval",
        Action::Approve(_) => "approve",
        Action::Unschedule => "unschedule",
    }
}

/// Schedules, sends now, pauses, resumes, cancels, asks for approval, approves or unschedules,
/// audited. Roles first ([`authorize`]). With `sending.approval_threshold`, a send or schedule
/// to more than the threshold of recipients waits in `awaiting_approval` until an admin other
/// than the one who asked and the one who made its current version approves it; every admin
/// who may approve gets a notice. `confirmed`: the version the actor saw and confirmed; the
/// action is refused ([`UpdateError::Stale`]) when the update is at another now.
pub async fn act(
    pool: &PgPool,
    settings: &Settings,
    actor: &Actor,
    id: Uuid,
    action: Action,
    confirmed: Option<i32>,
) -> Result<UpdateView, UpdateError> {
    let confirmed = Confirmed {
        version: confirmed,
        request: None,
    };
    act_confirmed(pool, settings, actor, id, action, confirmed).await
}

/// An admin's approval of version `version` in answer to the request for approval made at
/// `request` (as the approver's page showed it): refused when the update changed or the
/// request was withdrawn or made again since.
pub async fn approve(
    pool: &PgPool,
    settings: &Settings,
    actor: &Actor,
    id: Uuid,
    version: i32,
    request: Option<DateTime<Utc>>,
) -> Result<UpdateView, UpdateError> {
    let confirmed = Confirmed {
        version: Some(version),
        request,
    };
    act_confirmed(
        pool,
        settings,
        actor,
        id,
        Action::Approve(Uuid::nil()),
        confirmed,
    )
    .await
}

async fn act_confirmed(
    pool: &PgPool,
    settings: &Settings,
    actor: &Actor,
    id: Uuid,
    action: Action,
    confirmed: Confirmed,
) -> Result<UpdateView, UpdateError> {
    authorize(actor, &action)?;
    // An explicit request for approval comes from a draft: an editor never takes what an
    // admin scheduled (or approved) back into their own hands.
    if let Action::RequestApproval(..) = action {
        let update = store::get(pool, id).await?.ok_or(UpdateError::NotFound)?;
        if update.status != "draft" {
            return Err(UpdateError::Conflict(update.status));
        }
    }
    let at = match action {
        Action::Schedule(at) | Action::RequestApproval(at, _) => Some(at),
        _ => None,
    };
    let action = match action {
        Action::Approve(_) => approval(pool, actor, id).await?,
        Action::Unschedule if !actor.is_admin() => {
            let update = store::get(pool, id).await?.ok_or(UpdateError::NotFound)?;
            let own = update.status == "awaiting_approval"
                && update.approval_requested_by.is_some()
                && update.approval_requested_by == actor.staff_id();
            if !own {
                return Err(UpdateError::Forbidden(
                    "Only an admin may unschedule an update; an editor may withdraw only their \
                     own request for approval."
                        .into(),
                ));
            }
            Action::Unschedule
        }
        Action::RequestApproval(at, _) => Action::RequestApproval(at, actor.staff_id()),
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
    match store::apply(pool, id, action, actor.staff_id(), confirmed).await? {
        None => Err(UpdateError::NotFound),
        Some(Applied::NotFrom(status)) => Err(UpdateError::Conflict(status)),
        Some(Applied::Stale(current)) => Err(UpdateError::Stale {
            confirmed: confirmed.version.unwrap_or(current),
            current,
        }),
        Some(Applied::StaleRequest) => Err(UpdateError::StaleRequest),
        Some(Applied::Done(status)) => {
            let update = store::get(pool, id).await?.ok_or(UpdateError::NotFound)?;
            let mut detail = serde_json::json!({
                "at": at,
                "status": status,
                "version": update.version,
            });
            if let Action::Approve(_) = action {
                detail["lists"] = update.approved_lists.clone().into();
                detail["recipients"] = update.approved_recipients.into();
            }
            let what = audited_as(&action);
            crate::ops::audit::record(pool, actor, what, Some(&id.to_string()), detail).await?;
            if status == "awaiting_approval" {
                notify_approvers(pool, settings, &update, &actor.label()).await?;
            }
            view(pool, id).await
        }
    }
}

/// What the worker's scheduler reports when a due update was held for approval (its audience
/// grew past the threshold since it was scheduled): audited, and the admins hear of it.
pub async fn held_for_approval(
    pool: &PgPool,
    settings: &Settings,
    id: Uuid,
    recipients: i64,
) -> Result<(), UpdateError> {
    let update = store::get(pool, id).await?.ok_or(UpdateError::NotFound)?;
    let detail = serde_json::json!({
        "status": "awaiting_approval",
        "version": update.version,
        "recipients": recipients,
        "reason": update.status_reason,
    });
    let actor = Actor::Scheduler;
    crate::ops::audit::record(
        pool,
        &actor,
        "request-approval",
        Some(&id.to_string()),
        detail,
    )
    .await?;
    notify_approvers(pool, settings, &update, &actor.label()).await
}

/// The admins who may approve `update` now: every admin but the one who asked and the one
/// who made its current version.
pub async fn approvers(
    pool: &PgPool,
    update: &UpdateRecord,
) -> Result<Vec<crate::store::staff::StaffMember>, UpdateError> {
    Ok(crate::store::staff::list(pool)
        .await?
        .into_iter()
        .filter(|m| m.role == crate::domain::StaffRole::Admin)
        .filter(|m| Some(m.id) != update.approval_requested_by && Some(m.id) != update.changed_by)
        .collect())
}

/// Queues a notice to every admin who may approve `update`, with the link to its page.
async fn notify_approvers(
    pool: &PgPool,
    settings: &Settings,
    update: &UpdateRecord,
    asked_by: &str,
) -> Result<(), UpdateError> {
    let url = settings
        .server
        .base_url
        .join(&format!("/admin/updates/{}", update.id));
    let subject = format!("Waiting for your approval: {}", update.subject);
    let text = format!(
        "{asked_by} asks to send the update \"{}\" (version {}) to {}. It goes out only once an \
         admin other than the one who asked and the one who last changed it approves it.",
        update.subject,
        update.version,
        update.lists.join(", "),
    );
    for admin in approvers(pool, update).await? {
        store::queue_notice(
            pool,
            &admin.email,
            &subject,
            &text,
            "Review and approve",
            &url,
        )
        .await?;
    }
    Ok(())
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

/// An approval by `actor`: a member of staff other than the one who asked for it and the one
/// who made the update's current version.
async fn approval(pool: &PgPool, actor: &Actor, id: Uuid) -> Result<Action, UpdateError> {
    let Some(approver) = actor.staff_id() else {
        return Err(UpdateError::Forbidden(
            "An update is approved by a second admin in the staff area.".into(),
        ));
    };
    let update = store::get(pool, id).await?.ok_or(UpdateError::NotFound)?;
    if update.approval_requested_by == Some(approver) {
        return Err(UpdateError::Forbidden(
            "A different admin must approve this update: you asked for it to be sent.".into(),
        ));
    }
    if update.changed_by == Some(approver) {
        return Err(UpdateError::Forbidden(
            "A different admin must approve this update: you made its current version.".into(),
        ));
    }
    Ok(Action::Approve(approver))
}

/// The people the update would go to if it started now.
pub async fn recipient_count(pool: &PgPool, id: Uuid) -> Result<i64, UpdateError> {
    store::get(pool, id).await?.ok_or(UpdateError::NotFound)?;
    Ok(store::recipient_count(pool, id).await?)
}

/// A local date-time (`2027-03-15T09:00`) in an IANA zone as an instant, with the zone: `at`
/// or `time_zone` named in the error (a time the clocks skip is refused, one they pass twice
/// is the first).
pub fn local_time(at: &str, zone: &str) -> Result<(DateTime<Utc>, chrono_tz::Tz), UpdateError> {
    let invalid =
        |field: &'static str, m: String| UpdateError::Invalid(FieldErrors::from([(field, m)]));
    let tz = schedule::time_zone(zone).map_err(|m| invalid("time_zone", m))?;
    let at = schedule::local_to_utc(at, tz).map_err(|m| invalid("at", m))?;
    Ok((at, tz))
}

/// Schedules for a local time in an IANA zone (the staff area's form), remembering the zone.
/// Roles first: an editor is refused before the time is read.
pub async fn schedule_local(
    pool: &PgPool,
    settings: &Settings,
    actor: &Actor,
    id: Uuid,
    (at, zone): (&str, &str),
    confirmed: Option<i32>,
) -> Result<UpdateView, UpdateError> {
    authorize(actor, &Action::Schedule(Utc::now()))?;
    let (at, tz) = local_time(at, zone)?;
    let view = act(pool, settings, actor, id, Action::Schedule(at), confirmed).await?;
    store::set_time_zone(pool, id, tz.name()).await?;
    Ok(view)
}

/// The update's mail as one subscriber would get it (a sample person when `email` is None), by
/// the rendering code every send uses (`mail::render_update_for`). `Ok(None)`: that person
/// would get no mail of it (none of its news items is in their topics).
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
    let prepared = prepare_update(settings, templates.current(pool).await?, record)?;
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

/// Queues one test mail of the update's current version to `to`, marked `[Test]` in its
/// subject; the update's ledger is not touched. Any member of staff may, up to
/// `sending.test_mails_per_hour` per member of staff or API token (then
/// [`UpdateError::TooMany`]), never to an address that is suppressed or whose subscriber
/// unsubscribed, bounced or complained. Each one is audited (who, to whom, which version);
/// the audit log is also what the limit counts, under a lock per actor so that concurrent
/// requests cannot pass it together.
pub async fn send_test(
    pool: &PgPool,
    settings: &Settings,
    actor: &Actor,
    id: Uuid,
    to: &str,
) -> Result<(), UpdateError> {
    roles::authorize(actor, Operation::UpdateTest)?;
    let invalid = |m: String| UpdateError::Invalid(FieldErrors::from([("to", m)]));
    let to = EmailAddress::parse(to).map_err(invalid)?;
    let update = store::get(pool, id).await?.ok_or(UpdateError::NotFound)?;
    let hashes = crate::store::preferences::suppression_hashes(&to);
    if let Some(why) = subscribers::refusal(pool, to.canonical(), &hashes).await? {
        return Err(invalid(format!(
            "No mail goes to {}: {why}. Send the test to another address.",
            to.as_str()
        )));
    }
    let label = actor.label();
    let limit = settings.sending.test_mails_per_hour;
    let mut tx = pool.begin().await?;
    let (sent, oldest) =
        crate::store::audit::recent_by(&mut tx, &label, "update-test", TEST_WINDOW).await?;
    if sent >= i64::from(limit) {
        let retry_after_seconds = oldest
            .map(|t| (t + TEST_WINDOW - Utc::now()).num_seconds().max(1) as u64)
            .unwrap_or(60);
        return Err(UpdateError::TooMany {
            message: format!(
                "At most {limit} test mails an hour: try again in {} minutes.",
                retry_after_seconds.div_ceil(60)
            ),
            retry_after_seconds,
        });
    }
    store::queue_test(&mut *tx, id, update.version, to.as_str()).await?;
    let detail = serde_json::json!({ "to": to.as_str(), "version": update.version });
    crate::ops::audit::record(
        &mut *tx,
        actor,
        "update-test",
        Some(&id.to_string()),
        detail,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The window `sending.test_mails_per_hour` counts over.
const TEST_WINDOW: chrono::Duration = chrono::Duration::hours(1);

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
    roles::authorize(actor, Operation::UpdateSend)?;
    store::get(pool, id).await?.ok_or(UpdateError::NotFound)?;
    let n = store::retry_failed(pool, id).await?;
    let detail = serde_json::json!({ "mails": n });
    crate::ops::audit::record(pool, actor, "retry-failed", Some(&id.to_string()), detail).await?;
    Ok(n)
}
