//! Digest schedules: at each occurrence the worker builds an update from the approved news
//! items added since the schedule's previous digest, and sends it (`send`) or leaves it as a
//! draft for staff with a notice (`review`). Here: checking, storing and showing schedules, and
//! building one occurrence's update (called by `worker::scheduler::digests`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::roles::{self, Forbidden, Operation};
use super::{audit, Actor};
use crate::config::Settings;
use crate::domain::{text, FieldErrors, ListSlug, Recurrence, RecurrenceInput, UpdateInput};
use crate::mail::{bounds, MailTemplates};
use crate::ops::updates::{self, UpdateError};
use crate::store::digests::{self as store, DigestFields, DigestRecord, DigestRun, Fired};
use crate::store::lists;
use crate::store::updates::Action;

const MAX_NAME: usize = 150;
const MAX_INTRO: usize = 20_000;
/// Occurrences shown ahead, and past ones shown back.
pub const UPCOMING: usize = 5;
pub const RECENT_RUNS: i64 = 20;

#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error("no such digest schedule")]
    NotFound,
    #[error("invalid digest schedule")]
    Invalid(FieldErrors),
    /// The actor's role does not allow it.
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<Forbidden> for DigestError {
    fn from(e: Forbidden) -> Self {
        Self::Forbidden(e.0)
    }
}

impl From<sqlx::Error> for DigestError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

/// A schedule as staff give it; on PATCH, absent fields keep their value.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DigestInput {
    pub name: Option<String>,
    pub lists: Option<Vec<String>>,
    pub topics: Option<Vec<String>>,
    /// Markdown; `{{name}}`, `{{date}}` and `{{count}}` are filled in at each occurrence.
    pub intro: Option<String>,
    pub template: Option<String>,
    pub recurrence: Option<RecurrenceInput>,
    /// IANA zone of the recurrence (default `America/New_York`).
    pub time_zone: Option<String>,
    /// `send` or `review`.
    pub mode: Option<String>,
    pub active: Option<bool>,
}

impl DigestInput {
    pub fn merged(self, patch: DigestInput) -> DigestInput {
        DigestInput {
            name: patch.name.or(self.name),
            lists: patch.lists.or(self.lists),
            topics: patch.topics.or(self.topics),
            intro: patch.intro.or(self.intro),
            template: patch.template.or(self.template),
            recurrence: patch.recurrence.or(self.recurrence),
            time_zone: patch.time_zone.or(self.time_zone),
            mode: patch.mode.or(self.mode),
            active: patch.active.or(self.active),
        }
    }
}

impl From<&DigestRecord> for DigestInput {
    fn from(r: &DigestRecord) -> Self {
        let f = &r.fields;
        Self {
            name: Some(f.name.clone()),
            lists: Some(f.lists.clone()),
            topics: Some(f.topics.clone()),
            intro: Some(f.intro.clone()),
            template: Some(f.template.clone()),
            recurrence: Some(f.recurrence.as_input()),
            time_zone: Some(f.recurrence.zone.name().to_owned()),
            mode: Some(f.mode.clone()),
            active: Some(f.active),
        }
    }
}

/// A schedule as the API and the pages show it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DigestView {
    pub id: Uuid,
    #[serde(flatten)]
    pub input: DigestInput,
    /// In words, e.g. "every Monday at 09:00 America/New_York".
    pub describes: String,
    /// The next occurrences (UTC), the first being the next to fire.
    pub next_occurrences: Vec<DateTime<Utc>>,
    /// The same, as read in the schedule's zone.
    pub next_occurrences_local: Vec<String>,
    pub runs: Vec<DigestRun>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Renders an intro template with the values of one occurrence (strict: an unknown name
/// fails), checked and bounded as a mail template is (`mail::bounds`).
///
/// # Errors
/// Outer: the rendering could not run. Inner: why the intro does not render.
async fn render_intro(
    settings: &Settings,
    intro: &str,
    name: &str,
    date: &str,
    count: usize,
) -> anyhow::Result<Result<String, String>> {
    let data = json!({ "name": name, "date": date, "count": count });
    let rendered = bounds::render_text(intro, data, (&settings.templates).into()).await?;
    Ok(rendered.map_err(|e| format!("The intro template does not render: {e}")))
}

async fn checked(
    pool: &PgPool,
    settings: &Settings,
    templates: &MailTemplates,
    input: &DigestInput,
) -> Result<DigestFields, DigestError> {
    let mut errors = FieldErrors::new();
    let name = input.name.as_deref().unwrap_or("").trim().to_owned();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        errors.insert(
            "name",
            format!("A name of 1 to {MAX_NAME} characters, on one line."),
        );
    } else if let Err(e) = text::check_line("name", &name) {
        errors.insert("name", e);
    }
    let mut slugs = Vec::new();
    for raw in input.lists.clone().unwrap_or_default() {
        match ListSlug::parse(raw.trim()) {
            Ok(s) => slugs.push(s),
            Err(e) => {
                errors.insert("lists", e);
            }
        }
    }
    if slugs.is_empty() && !errors.contains_key("lists") {
        errors.insert("lists", "Choose at least one list.".into());
    } else if !slugs.is_empty() {
        if let Err(problem) = lists::resolve_any(pool, &slugs).await? {
            errors.insert("lists", problem.message("Unknown lists:"));
        }
    }
    let known_topics: Vec<&str> = settings
        .preferences
        .topics
        .iter()
        .map(|(slug, _)| slug.as_str())
        .collect();
    let topics: Vec<String> = input
        .topics
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect();
    if let Some(bad) = topics.iter().find(|t| !known_topics.contains(&t.as_str())) {
        errors.insert(
            "topics",
            format!(
                "{bad:?} is not one of the topics: {}.",
                known_topics.join(", ")
            ),
        );
    }
    let intro = input.intro.clone().unwrap_or_default();
    if intro.chars().count() > MAX_INTRO {
        errors.insert("intro", format!("At most {MAX_INTRO} characters."));
    } else if let Err(e) = text::check_text("intro", &intro) {
        errors.insert("intro", e);
    } else if let Err(e) = render_intro(settings, &intro, "Digest", "December 7, 2026", 3).await? {
        errors.insert("intro", e);
    }
    let template = input
        .template
        .clone()
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| "update".into());
    if !templates.is_for_updates(&template) {
        errors.insert(
            "template",
            format!("{template:?} is not a mail template for updates."),
        );
    }
    let recurrence = match &input.recurrence {
        None => {
            errors.insert("recurrence", "A digest needs a recurrence.".into());
            None
        }
        Some(r) => match Recurrence::parse(r, input.time_zone.as_deref().unwrap_or("")) {
            Ok(r) => Some(r),
            // The zone is a field of its own; the others are parts of `recurrence`.
            Err(("time_zone", message)) => {
                errors.insert("time_zone", message);
                None
            }
            Err((part, message)) => {
                errors.insert("recurrence", format!("{part}: {message}"));
                None
            }
        },
    };
    let mode = input.mode.clone().unwrap_or_else(|| "review".into());
    if mode != "send" && mode != "review" {
        errors.insert("mode", format!("{mode:?} is not send or review."));
    }
    match recurrence {
        Some(recurrence) if errors.is_empty() => Ok(DigestFields {
            name,
            lists: slugs.iter().map(|s| s.as_str().to_owned()).collect(),
            topics,
            intro,
            template,
            recurrence,
            mode,
            active: input.active.unwrap_or(true),
        }),
        _ => Err(DigestError::Invalid(errors)),
    }
}

pub async fn view(pool: &PgPool, id: Uuid) -> Result<DigestView, DigestError> {
    let record = store::get(pool, id).await?.ok_or(DigestError::NotFound)?;
    let runs = store::runs(pool, id, RECENT_RUNS).await?;
    Ok(view_of(&record, runs))
}

fn view_of(record: &DigestRecord, runs: Vec<DigestRun>) -> DigestView {
    let r = &record.fields.recurrence;
    let next_occurrences = if record.fields.active {
        let mut all = vec![record.next_at];
        all.extend(r.upcoming(record.next_at, UPCOMING - 1));
        all
    } else {
        Vec::new()
    };
    DigestView {
        id: record.id,
        input: DigestInput::from(record),
        describes: r.describe(),
        next_occurrences_local: next_occurrences
            .iter()
            .map(|t| crate::domain::schedule::shown_in(*t, r.zone))
            .collect(),
        next_occurrences,
        runs,
        created_by: record.created_by.clone(),
        created_at: record.created_at,
        updated_at: record.updated_at,
    }
}

pub async fn list(pool: &PgPool) -> Result<Vec<DigestView>, DigestError> {
    let mut out = Vec::new();
    for record in store::list(pool).await? {
        let runs = store::runs(pool, record.id, 1).await?;
        out.push(view_of(&record, runs));
    }
    Ok(out)
}

/// The first check of every change to a schedule: any member of staff may set up one that
/// leaves each digest for review; one in `send` mode (what it is, or what it is made) sends
/// updates, which is an admin's.
fn authorize(actor: &Actor, modes: &[Option<&str>]) -> Result<(), DigestError> {
    roles::authorize(actor, Operation::DigestReview)?;
    if modes.contains(&Some("send")) {
        roles::authorize(actor, Operation::DigestSend).map_err(|_| forbidden())?;
    }
    Ok(())
}

/// Sets up a schedule (in `review` mode unless asked otherwise), audited.
pub async fn create(
    pool: &PgPool,
    settings: &Settings,
    templates: &MailTemplates,
    actor: &Actor,
    input: &DigestInput,
) -> Result<DigestView, DigestError> {
    authorize(actor, &[input.mode.as_deref().map(str::trim)])?;
    let fields = checked(pool, settings, templates, input).await?;
    let next_at = fields.recurrence.next_after(Utc::now());
    let mut tx = pool.begin().await?;
    let id = store::insert(&mut *tx, &fields, next_at, &actor.label()).await?;
    let detail = json!({ "name": fields.name, "mode": fields.mode, "lists": fields.lists });
    audit::record(
        &mut *tx,
        actor,
        "digest-create",
        Some(&id.to_string()),
        detail,
    )
    .await?;
    tx.commit().await?;
    view(pool, id).await
}

/// Changes the fields `patch` names, audited with what changed. A new recurrence, zone or a
/// schedule switched on again counts from now: occurrences missed while it was off do not fire.
pub async fn change(
    pool: &PgPool,
    settings: &Settings,
    templates: &MailTemplates,
    actor: &Actor,
    id: Uuid,
    patch: DigestInput,
) -> Result<DigestView, DigestError> {
    authorize(actor, &[patch.mode.as_deref().map(str::trim)])?;
    let current = store::get(pool, id).await?.ok_or(DigestError::NotFound)?;
    authorize(actor, &[Some(current.fields.mode.as_str())])?;
    let before = DigestInput::from(&current);
    let merged = before.clone().merged(patch);
    let fields = checked(pool, settings, templates, &merged).await?;
    let restart =
        fields.recurrence != current.fields.recurrence || (fields.active && !current.fields.active);
    let next_at = if restart {
        fields.recurrence.next_after(Utc::now())
    } else {
        current.next_at
    };
    let mut tx = pool.begin().await?;
    if !store::replace(&mut *tx, id, &fields, next_at).await? {
        return Err(DigestError::NotFound);
    }
    let after = store::get(&mut *tx, id)
        .await?
        .ok_or(DigestError::NotFound)?;
    let detail = json!({ "changed": audit::changes(&before, &DigestInput::from(&after)) });
    audit::record(
        &mut *tx,
        actor,
        "digest-change",
        Some(&id.to_string()),
        detail,
    )
    .await?;
    tx.commit().await?;
    view(pool, id).await
}

fn forbidden() -> DigestError {
    DigestError::Forbidden(
        "Only an admin may set up or change a digest that is sent without review.".into(),
    )
}

/// Deletes a schedule (the updates it built stay), audited with its name.
pub async fn remove(pool: &PgPool, actor: &Actor, id: Uuid) -> Result<(), DigestError> {
    authorize(actor, &[])?;
    let current = store::get(pool, id).await?.ok_or(DigestError::NotFound)?;
    authorize(actor, &[Some(current.fields.mode.as_str())])?;
    let mut tx = pool.begin().await?;
    if !store::delete(&mut *tx, id).await? {
        return Err(DigestError::NotFound);
    }
    let detail = json!({ "name": current.fields.name, "mode": current.fields.mode });
    audit::record(
        &mut *tx,
        actor,
        "digest-remove",
        Some(&id.to_string()),
        detail,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// What became of an occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub outcome: &'static str,
    pub reason: Option<String>,
    pub update_id: Option<Uuid>,
}

/// Builds the update of a fired occurrence and sends it or leaves it for review. An occurrence
/// found more than `sending.stale_after_hours` late (the service was down) is not sent late
/// silently: it is left as a draft for staff, with a notice, as a stale schedule is held.
pub async fn build(
    pool: &PgPool,
    settings: &Settings,
    templates: &MailTemplates,
    fired: &Fired,
) -> Result<Built, UpdateError> {
    let f = &fired.digest.fields;
    let date = fired
        .due_at
        .with_timezone(&f.recurrence.zone)
        .format("%B %-d, %Y")
        .to_string();
    let count = fired.news_ids.len();
    let intro = render_intro(settings, &f.intro, &f.name, &date, count)
        .await?
        .map_err(|e| UpdateError::Invalid(FieldErrors::from([("intro", e)])))?;
    let input = UpdateInput {
        subject: Some(format!("{}: {date}", f.name)),
        preheader: Some(if count == 1 {
            "1 news item".to_owned()
        } else {
            format!("{count} news items")
        }),
        intro: Some(intro),
        lists: Some(f.lists.clone()),
        news_items: None,
        news_item_ids: Some(fired.news_ids.clone()),
        template: Some(f.template.clone()),
        from: None,
        reply_to: None,
    };
    let actor = Actor::DigestSchedule(fired.digest.id);
    let update = updates::create(pool, templates, &settings.mail, &actor, &input).await?;
    let id = update.update.id;
    let late = Utc::now() - fired.due_at;
    let stale = late
        > chrono::Duration::from_std(settings.sending.stale_after).unwrap_or(chrono::Duration::MAX);
    let (outcome, reason) = if stale {
        (
            "held",
            Some(format!(
                "its time passed while the service was down ({} h late); left as a draft for staff to send",
                late.num_hours()
            )),
        )
    } else if f.mode == "review" {
        ("review", None)
    } else {
        return match updates::act(pool, settings, &actor, id, Action::SendNow, None).await {
            Ok(view) if view.update.status == "awaiting_approval" => Ok(Built {
                outcome: "sent",
                reason: Some("waiting for a second admin's approval".into()),
                update_id: Some(id),
            }),
            Ok(_) => Ok(Built {
                outcome: "sent",
                reason: None,
                update_id: Some(id),
            }),
            Err(UpdateError::Refused(reason) | UpdateError::Forbidden(reason)) => Ok(Built {
                outcome: "failed",
                reason: Some(format!("left as a draft: {reason}")),
                update_id: Some(id),
            }),
            Err(e) => Err(e),
        };
    };
    let why = reason
        .as_deref()
        .unwrap_or("this schedule asks staff to review each digest before it goes out");
    let noticed = notify_staff(pool, settings, id, &update.update.subject, why).await?;
    Ok(Built {
        outcome,
        reason: Some(match reason {
            Some(r) => format!("{r}; {noticed} staff notified"),
            None => format!("a draft for review; {noticed} staff notified"),
        }),
        update_id: Some(id),
    })
}

/// Mails every member of staff a notice that the digest `update_id` waits for them, with a
/// link to its page in the staff area (preview, edit, send).
async fn notify_staff(
    pool: &PgPool,
    settings: &Settings,
    update_id: Uuid,
    subject: &str,
    why: &str,
) -> Result<usize, UpdateError> {
    let staff = crate::store::staff::list(pool).await?;
    let url = settings
        .server
        .base_url
        .join(&format!("/admin/updates/{update_id}"));
    let text = format!("The digest \u{201c}{subject}\u{201d} is a draft: {why}.");
    for member in &staff {
        crate::store::updates::queue_notice(
            pool,
            &member.email,
            &format!("Digest to review: {subject}"),
            &text,
            "Review, edit and send it",
            &url,
        )
        .await
        .map_err(|e| UpdateError::Internal(e.into()))?;
    }
    Ok(staff.len())
}
