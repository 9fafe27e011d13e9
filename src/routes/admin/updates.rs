//! `/admin/updates`: the composer (new, edit a draft, preview, test send) and sending (send now
//! with an idempotency key, schedule in a time zone, pause, resume, cancel, approve, retry
//! failed), and the progress page. Who may do what is decided in `crate::ops::updates`.

use super::done;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{staff_page, AdminError, AdminForm, CurrentStaff, Fields};
use crate::app::AppState;
use crate::domain::schedule;
use crate::domain::{NewsItemInput, Token, UpdateInput};
use crate::ops::news::{self, NewsFilter};
use crate::ops::updates::{self, Action, UpdateError, UpdateRecord};
use crate::ops::{engagement, link_check, lists, staff};

/// Failed deliveries shown on the progress page.
const FAILED_SHOWN: i64 = 200;
/// Seconds between reloads of the progress page while the update goes out.
const REFRESH_SECONDS: u32 = 2;

/// The preview frame's own policy: the mail's inline styles and remote images, no script, and
/// framed only by our own pages.
const PREVIEW_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; \
                           frame-ancestors 'self'; sandbox";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/updates", get(list).post(create))
        .route("/admin/updates/new", get(new_form))
        .route("/admin/updates/{id}", get(show).post(save))
        .route("/admin/updates/{id}/edit", get(edit_form))
        .route("/admin/updates/{id}/preview", get(preview))
        .route("/admin/updates/{id}/test", post(test))
        .route("/admin/updates/{id}/confirm", get(confirm))
        .route("/admin/updates/{id}/send", post(send))
        .route("/admin/updates/{id}/schedule", post(schedule_at))
        .route("/admin/updates/{id}/unschedule", post(unschedule))
        .route(
            "/admin/updates/{id}/request-approval",
            post(request_approval),
        )
        .route("/admin/updates/{id}/pause", post(pause))
        .route("/admin/updates/{id}/resume", post(resume))
        .route("/admin/updates/{id}/cancel", post(cancel))
        .route("/admin/updates/{id}/approve", post(approve))
        .route("/admin/updates/{id}/retry-failed", post(retry_failed))
        .route("/admin/updates/{id}/report", get(report))
        .route("/admin/updates/{id}/check-links", post(check_links))
        .route("/admin/updates/{id}/report.csv", get(report_csv))
}

impl From<UpdateError> for AdminError {
    fn from(e: UpdateError) -> Self {
        match e {
            UpdateError::NotFound => AdminError::NotFound,
            UpdateError::Invalid(errors) => AdminError::Status(
                StatusCode::UNPROCESSABLE_ENTITY,
                errors.into_values().collect::<Vec<_>>().join(" "),
            ),
            e @ (UpdateError::Conflict(_)
            | UpdateError::Frozen(_)
            | UpdateError::Stale { .. }
            | UpdateError::StaleRequest) => AdminError::Status(StatusCode::CONFLICT, e.to_string()),
            UpdateError::TooMany {
                message,
                retry_after_seconds,
            } => AdminError::TooMany(message, retry_after_seconds),
            UpdateError::Refused(m) => AdminError::Status(StatusCode::UNPROCESSABLE_ENTITY, m),
            UpdateError::Forbidden(m) => AdminError::Forbidden(m),
            UpdateError::Internal(e) => AdminError::Internal(e),
        }
    }
}

fn update_id(raw: &str) -> Result<Uuid, AdminError> {
    raw.parse().map_err(|_| AdminError::NotFound)
}

fn back_to(id: Uuid, key: &str) -> Response {
    done(&format!("/admin/updates/{id}"), key)
}

async fn list(State(state): State<AppState>, staff: CurrentStaff) -> Result<Response, AdminError> {
    let updates = updates::recent(&state.pool, 200)
        .await
        .map_err(anyhow::Error::from)?;
    Ok(staff_page(
        &state,
        &staff,
        StatusCode::OK,
        "updates",
        json!({ "title": "Updates", "updates": updates }),
    ))
}

/// The composer's fields as an update (the desk items by id, in the order of the form).
fn input_from(fields: &Fields) -> Result<UpdateInput, AdminError> {
    let ids = fields
        .all("news_item_ids")
        .iter()
        .map(|raw| raw.parse::<Uuid>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| {
            AdminError::Status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "A news item was not recognised; reload the page.".into(),
            )
        })?;
    Ok(UpdateInput {
        subject: Some(fields.text("subject")),
        preheader: Some(fields.text("preheader")),
        intro: Some(fields.text("intro")),
        lists: Some(fields.all("lists")),
        news_items: None,
        news_item_ids: Some(ids),
        template: Some(fields.text("template")).filter(|t| !t.trim().is_empty()),
        from: Some(fields.text("from")),
        reply_to: Some(fields.text("reply_to")),
    })
}

/// The composer page: new (`id` None) or editing a draft.
/// The templates an update may use, `chosen` selected (and listed even if it is no longer one,
/// so saving the draft does not change it silently; the save then says why it is refused).
fn templates(state: &AppState, chosen: &str) -> Vec<serde_json::Value> {
    let templates = state.mail_templates.cached();
    let mut names: Vec<&str> = templates.for_updates().collect();
    if !names.contains(&chosen) {
        names.push(chosen);
    }
    names
        .into_iter()
        .map(|name| json!({ "name": name, "selected": name == chosen }))
        .collect()
}

async fn composer(
    state: &AppState,
    staff: &CurrentStaff,
    id: Option<Uuid>,
    input: &UpdateInput,
    inline_items: &[NewsItemInput],
    status: StatusCode,
    errors: Option<&crate::domain::FieldErrors>,
) -> Result<Response, AdminError> {
    let lists = lists::all(&state.pool).await?;
    let chosen_lists = input.lists.clone().unwrap_or_default();
    // An archived list is offered only where the update names it already.
    let lists: Vec<_> = lists
        .iter()
        .filter(|l| l.archived_at.is_none() || chosen_lists.contains(&l.slug))
        .map(|l| {
            json!({ "slug": l.slug, "name": l.name, "confirmed": l.confirmed_subscribers,
                    "checked": chosen_lists.contains(&l.slug) || (id.is_none() && chosen_lists.is_empty() && l.default) })
        })
        .collect();
    let desk = news::list(&state.pool, &NewsFilter::default()).await?;
    let picked = input.news_item_ids.clone().unwrap_or_default();
    // One slot per chosen item and a few empty ones, each a choice among the desk's items.
    let slots = (0..(picked.len() + 5).min(crate::domain::MAX_NEWS_ITEMS))
        .map(|i| {
            let options: Vec<_> = desk
                .iter()
                .map(|n| {
                    json!({ "id": n.id, "title": n.title, "topic": n.topic, "sent": n.sent,
                                 "selected": picked.get(i) == Some(&n.id) })
                })
                .collect();
            json!({ "number": i + 1, "options": options })
        })
        .collect::<Vec<_>>();
    Ok(staff_page(
        state,
        staff,
        status,
        "update_form",
        json!({
            "title": if id.is_some() { "Edit the draft" } else { "New update" },
            "id": id,
            "values": input,
            "default_from": state.settings.mail.from.to_string(),
            "default_reply_to": state.settings.mail.reply_to.as_ref().map(ToString::to_string),
            "templates": templates(state, input.template.as_deref().unwrap_or("update")),
            "lists": lists,
            "slots": slots,
            "composer_script": true,
            "inline_items": inline_items,
            "errors": errors,
        }),
    ))
}

async fn new_form(
    State(state): State<AppState>,
    staff: CurrentStaff,
) -> Result<Response, AdminError> {
    composer(
        &state,
        &staff,
        None,
        &UpdateInput::default(),
        &[],
        StatusCode::OK,
        None,
    )
    .await
}

async fn create(State(state): State<AppState>, form: AdminForm) -> Result<Response, AdminError> {
    let input = input_from(&form.fields)?;
    match updates::create(
        &state.pool,
        &state.mail_templates.cached(),
        &state.settings.mail,
        &form.staff.actor(),
        &input,
    )
    .await
    {
        Ok(view) => Ok(back_to(view.update.id, "created")),
        Err(UpdateError::Invalid(errors)) => {
            composer(
                &state,
                &form.staff,
                None,
                &input,
                &[],
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(&errors),
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

/// Items written into the update directly (through the API), which the composer keeps as they are.
fn inline_items(record: &UpdateRecord) -> Vec<NewsItemInput> {
    record
        .as_input()
        .news_items
        .unwrap_or_default()
        .into_iter()
        .filter(|i| i.news_id.is_none())
        .collect()
}

async fn edit_form(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path(id): Path<String>,
) -> Result<Response, AdminError> {
    let view = updates::view(&state.pool, update_id(&id)?).await?;
    let record = &view.update;
    if record.status != "draft" {
        // Frozen: its page offers "Unschedule and edit" where that is possible.
        return Ok(back_to(record.id, "frozen"));
    }
    let mut input = record.as_input();
    input.news_item_ids = Some(record.news_items.iter().filter_map(|i| i.news_id).collect());
    composer(
        &state,
        &staff,
        Some(record.id),
        &input,
        &inline_items(record),
        StatusCode::OK,
        None,
    )
    .await
}

async fn save(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let id = update_id(&id)?;
    let current = updates::view(&state.pool, id).await?.update;
    let kept = inline_items(&current);
    let mut input = input_from(&form.fields)?;
    input.news_items = Some(kept.clone());
    match updates::patch(
        &state.pool,
        &state.mail_templates.cached(),
        &state.settings.mail,
        &form.staff.actor(),
        id,
        input.clone(),
    )
    .await
    {
        Ok(_) => Ok(back_to(id, "saved")),
        Err(UpdateError::Invalid(errors)) => {
            composer(
                &state,
                &form.staff,
                Some(id),
                &input,
                &kept,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(&errors),
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize, Default)]
struct ShowQuery {
    email: Option<String>,
    /// The preview's width: `desktop` (600 px, the default) or `phone` (375 px).
    width: Option<String>,
}

/// "about 3 minutes" for a number of seconds.
fn about(seconds: f64) -> String {
    match seconds {
        s if s < 90.0 => format!("about {} seconds", s.ceil() as u64),
        s if s < 5400.0 => format!("about {} minutes", (s / 60.0).ceil() as u64),
        s => format!("about {} hours", (s / 3600.0).ceil() as u64),
    }
}

async fn show(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path(id): Path<String>,
    Query(q): Query<ShowQuery>,
) -> Result<Response, AdminError> {
    let id = update_id(&id)?;
    let view = updates::view(&state.pool, id).await?;
    let failed = updates::deliveries(&state.pool, id, Some("failed"), 0, FAILED_SHOWN).await?;
    let in_archive = crate::ops::archive::is_listed(&state.pool, id).await?;
    let record = &view.update;
    let status = record.status.as_str();
    let can_send = matches!(status, "draft" | "scheduled")
        || (status == "paused" && record.started_at.is_none());
    // Who it would go to if sent now: shown only while it can be sent (a count over every
    // subscriber, not repeated on each refresh of a send in progress).
    let recipients = if can_send || status == "awaiting_approval" {
        Some(updates::recipient_count(&state.pool, id).await?)
    } else {
        None
    };
    let counts = &view.counts;
    let count = |s: &str| counts.get(s).copied().unwrap_or(0);
    let remaining = count("queued") + count("sending") + count("deferred");
    let estimate = (status == "sending" && view.rate_per_second > 0.0).then(|| {
        let seconds = remaining as f64 / view.rate_per_second;
        let at = Utc::now() + chrono::Duration::milliseconds((seconds * 1000.0) as i64);
        json!({ "in": about(seconds), "at": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true) })
    });
    let zone = zone_of(&state, record)?;
    let due = record.scheduled_at.is_some_and(|t| t <= Utc::now());
    let going = status == "sending" || (status == "scheduled" && due);
    let preview_email = q.email.clone().unwrap_or_default();
    let preview_query = form_urlencoded::Serializer::new(String::new())
        .append_pair("email", &preview_email)
        .append_pair("v", &record.version.to_string())
        .finish();
    let frozen = matches!(status, "scheduled" | "awaiting_approval")
        || (status == "paused" && record.started_at.is_none());
    let own_request =
        status == "awaiting_approval" && record.approval_requested_by == Some(staff.member.id);
    let approvers: Vec<String> = if status == "awaiting_approval" {
        updates::approvers(&state.pool, record)
            .await?
            .into_iter()
            .map(|m| m.email)
            .collect()
    } else {
        Vec::new()
    };
    let versions = updates::versions(&state.pool, id)
        .await
        .map_err(anyhow::Error::from)?;
    let versions: Vec<_> = versions
        .iter()
        .map(|v| {
            json!({ "version": v.version, "changed": v.changed.join(", "), "actor": v.actor,
                    "at": v.created_at })
        })
        .collect();
    Ok(staff_page(
        &state,
        &staff,
        StatusCode::OK,
        "update",
        json!({
            "title": record.subject,
            "update": record,
            "counts": counts,
            "bounced": view.bounced,
            "complained": view.complained,
            "rate": format!("{:.1}", view.rate_per_second),
            "estimate": estimate,
            "recipients": recipients,
            "scheduled_at": record.scheduled_at,
            "editable": status == "draft",
            "frozen": frozen,
            "can_unschedule": frozen && (staff.actor().is_admin() || own_request),
            "can_send": can_send,
            "can_request_approval": status == "draft",
            "can_pause": matches!(status, "scheduled" | "sending"),
            "can_resume": status == "paused",
            "can_cancel": matches!(status, "draft" | "awaiting_approval" | "scheduled" | "sending" | "paused"),
            "awaiting_approval": status == "awaiting_approval",
            "approvers": approvers,
            "may_approve": status == "awaiting_approval"
                && staff.actor().is_admin()
                && record.approval_requested_by != Some(staff.member.id)
                && record.changed_by != Some(staff.member.id),
            "approved": record.approved_version.map(|v| json!({
                "version": v, "lists": record.approved_lists, "recipients": record.approved_recipients,
            })),
            "sent_version": record.sent_version,
            "requested_at": record
                .approval_requested_at
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            "versions": versions,
            "failed": failed,
            "in_archive": in_archive,
            "time_zone": zone.name(),
            "preview_email": preview_email,
            "phone": q.width.as_deref() == Some("phone"),
            "preview_query": preview_query,
            "refresh_seconds": going.then_some(REFRESH_SECONDS),
            "link_check": link_check_view(link_check::results(&state.pool, id).await?),
            "link_check_back": format!("/admin/updates/{id}"),
        }),
    ))
}

/// The zone the update's times are shown in: the one its schedule was given in, else the
/// organisation's (`server.time_zone`).
fn zone_of(state: &AppState, record: &UpdateRecord) -> Result<chrono_tz::Tz, AdminError> {
    match record.time_zone.as_deref() {
        Some(z) => Ok(schedule::time_zone(z).map_err(|e| anyhow::anyhow!(e))?),
        None => Ok(state.settings.server.time_zone),
    }
}

#[derive(Deserialize)]
struct ConfirmQuery {
    /// `send`, `schedule` or `request` (ask for approval).
    action: String,
    /// For `schedule`: the local time and its zone, as the update's page asked.
    at: Option<String>,
    time_zone: Option<String>,
}

/// The last look before an update leaves: subject, from, lists, recipients now, when, and the
/// approval it will need. Its button carries the version shown, so that a change made since
/// (by anyone, in any door) makes the send refused instead of sending what nobody confirmed.
async fn confirm(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path(id): Path<String>,
    Query(q): Query<ConfirmQuery>,
) -> Result<Response, AdminError> {
    let id = update_id(&id)?;
    let actor = staff.actor();
    let when_now = Utc::now();
    let (action, title) = match q.action.as_str() {
        "send" => (Action::SendNow, "Send this update now?"),
        "schedule" => (Action::Schedule(when_now), "Schedule this update?"),
        "request" => (
            Action::RequestApproval(when_now, None),
            "Ask an admin to approve this update?",
        ),
        _ => {
            return Err(AdminError::Status(
                StatusCode::BAD_REQUEST,
                "action is send, schedule or request.".into(),
            ))
        }
    };
    updates::authorize(&actor, &action)?;
    let view = updates::view(&state.pool, id).await?;
    let record = &view.update;
    let zone = zone_of(&state, record)?;
    let recipients = updates::recipient_count(&state.pool, id).await?;
    let threshold = state.settings.sending.approval_threshold;
    let needs_approval = matches!(action, Action::RequestApproval(..))
        || threshold.is_some_and(|t| u64::try_from(recipients).unwrap_or(0) > t);
    let (at, time_zone) = (q.at.unwrap_or_default(), q.time_zone.unwrap_or_default());
    let when = match action {
        Action::Schedule(_) => {
            let (utc, tz) = updates::local_time(&at, &time_zone)?;
            schedule::shown_in(utc, tz)
        }
        _ => "now".to_owned(),
    };
    let from = match &record.from {
        Some(f) => f.clone(),
        None => state.settings.mail.from.to_string(),
    };
    Ok(staff_page(
        &state,
        &staff,
        StatusCode::OK,
        "update_confirm",
        json!({
            "title": title,
            "update": record,
            "action": q.action,
            "from": from,
            "reply_to": record.reply_to.clone().or_else(|| state.settings.mail.reply_to.as_ref().map(ToString::to_string)),
            "recipients": recipients,
            "when": when,
            "at": at,
            "time_zone": time_zone,
            "zone": zone.name(),
            "needs_approval": needs_approval,
            "threshold": threshold,
            "send_key": Token::generate().as_str(),
            "link_check": link_check_view(link_check::results(&state.pool, id).await?),
            "link_check_back": format!("/admin/updates/{id}/confirm?{}", form_urlencoded::Serializer::new(String::new())
                .append_pair("action", &q.action)
                .append_pair("at", &at)
                .append_pair("time_zone", &time_zone)
                .finish()),
        }),
    ))
}

/// The link checker's results as the `link_check` partial reads them: the lists and their sizes.
fn link_check_view(report: link_check::LinkReport) -> serde_json::Value {
    json!({
        "links": report.links.len(),
        "failed": report.failed,
        "failed_count": report.failed.len(),
        "ok_count": report.ok.len(),
        "unchecked_count": report.unchecked.len(),
    })
}

/// "Check links", from the update's page or its confirmation page: fetches the update's links
/// (`ops::link_check`) and goes back to the page it came from (`back`, one of those two
/// pages of this update; anything else goes to the update's page).
async fn check_links(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let id = update_id(&id)?;
    let report = link_check::check(&state.pool, &state.settings, &form.staff.actor(), id).await?;
    let page = format!("/admin/updates/{id}");
    let back = form.fields.text("back");
    let confirm = format!("{page}/confirm?");
    // Plain URL characters only: nothing a Location header would carry into a page.
    let plain = back
        .bytes()
        .all(|b| b.is_ascii_graphic() && !b"<>\"'\\#`".contains(&b));
    let back = if back.starts_with(&confirm) && plain {
        back
    } else {
        page
    };
    let key = if report.failed.is_empty() {
        "links-checked"
    } else {
        "links-failed"
    };
    Ok(done(&back, key))
}

/// The version a confirmation page showed (its hidden `version` field).
fn confirmed_version(form: &AdminForm) -> Result<i32, AdminError> {
    form.fields.text("version").trim().parse().map_err(|_| {
        AdminError::Status(
            StatusCode::BAD_REQUEST,
            "The form is incomplete (no version was confirmed); go back to the update's page."
                .into(),
        )
    })
}

#[derive(Deserialize)]
struct PreviewQuery {
    email: Option<String>,
    format: Option<String>,
}

/// The mail alone, for the sandboxed frame on the update's page (or read as plain text).
async fn preview(
    State(state): State<AppState>,
    _staff: CurrentStaff,
    Path(id): Path<String>,
    Query(q): Query<PreviewQuery>,
) -> Result<Response, AdminError> {
    let id = update_id(&id)?;
    let rendered = updates::preview(
        &state.pool,
        &state.settings,
        &state.mail_templates,
        id,
        q.email.as_deref(),
    )
    .await?;
    let response = match (rendered, q.format.as_deref()) {
        (None, _) => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "This person would get no mail of this update: none of its news items is in their topics.",
        )
            .into_response(),
        (Some(mail), Some("text")) => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("Subject: {}\n\n{}", mail.subject, mail.text),
        )
            .into_response(),
        (Some(mail), None | Some("html")) => Html(mail.html).into_response(),
        (Some(_), Some(_)) => {
            return Err(AdminError::Status(
                StatusCode::BAD_REQUEST,
                "format is html or text.".into(),
            ))
        }
    };
    Ok(in_mail_frame(response))
}

/// `response` (a rendered mail) with the preview frame's own policy: shown in a sandboxed
/// frame of our own pages, with the mail's inline styles applied and no script.
pub(super) fn in_mail_frame(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PREVIEW_CSP),
    );
    headers.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    // Always the version as it is now: a frame kept from before an edit would show old text.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn test(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let id = update_id(&id)?;
    let to = form.fields.text("to");
    updates::send_test(&state.pool, &state.settings, &form.staff.actor(), id, &to).await?;
    Ok(back_to(id, "test"))
}

/// Send now, from the confirmation page. Roles first; then the form's key is claimed, so a
/// second submit of the same form (a double click, a reload) does nothing more; the send is
/// refused when the update is no longer at the version the page showed.
async fn send(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let id = update_id(&id)?;
    let actor = form.staff.actor();
    updates::authorize(&actor, &Action::SendNow)?;
    let key = form.fields.text("idempotency_key");
    if Token::parse(&key).is_err() {
        return Err(AdminError::Status(
            StatusCode::BAD_REQUEST,
            "The form is incomplete; reload the page.".into(),
        ));
    }
    let version = confirmed_version(&form)?;
    let internal = |e: sqlx::Error| AdminError::Internal(e.into());
    if !staff::claim_form_key(&state.pool, &key, form.staff.member.id)
        .await
        .map_err(internal)?
    {
        return Ok(back_to(id, "used"));
    }
    let done = updates::act(
        &state.pool,
        &state.settings,
        &actor,
        id,
        Action::SendNow,
        Some(version),
    )
    .await;
    match done {
        Ok(view) if view.update.status == "awaiting_approval" => Ok(back_to(id, "awaiting")),
        Ok(_) => Ok(back_to(id, "sent")),
        Err(e) => {
            staff::release_form_key(&state.pool, &key)
                .await
                .map_err(internal)?;
            Err(e.into())
        }
    }
}

async fn schedule_at(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let id = update_id(&id)?;
    let actor = form.staff.actor();
    updates::authorize(&actor, &Action::Schedule(Utc::now()))?;
    let version = confirmed_version(&form)?;
    let view = updates::schedule_local(
        &state.pool,
        &state.settings,
        &actor,
        id,
        (&form.fields.text("at"), &form.fields.text("time_zone")),
        Some(version),
    )
    .await?;
    Ok(back_to(
        id,
        if view.update.status == "awaiting_approval" {
            "awaiting"
        } else {
            "scheduled"
        },
    ))
}

/// Asks an admin to approve (and so send) the version the confirmation page showed: the way
/// an editor's update goes out.
async fn request_approval(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let id = update_id(&id)?;
    let version = confirmed_version(&form)?;
    let action = Action::RequestApproval(Utc::now(), None);
    let actor = form.staff.actor();
    updates::act(
        &state.pool,
        &state.settings,
        &actor,
        id,
        action,
        Some(version),
    )
    .await?;
    Ok(back_to(id, "awaiting"))
}

/// Back to draft ("Unschedule and edit"), then to the composer.
async fn unschedule(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let id = update_id(&id)?;
    let actor = form.staff.actor();
    updates::act(
        &state.pool,
        &state.settings,
        &actor,
        id,
        Action::Unschedule,
        None,
    )
    .await?;
    Ok(done(&format!("/admin/updates/{id}/edit"), "unscheduled"))
}

async fn act(
    state: &AppState,
    form: &AdminForm,
    id: &str,
    action: Action,
    done: &str,
) -> Result<Response, AdminError> {
    let id = update_id(id)?;
    updates::act(
        &state.pool,
        &state.settings,
        &form.staff.actor(),
        id,
        action,
        None,
    )
    .await?;
    Ok(back_to(id, done))
}

async fn pause(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    act(&state, &form, &id, Action::Pause, "paused").await
}

async fn resume(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    act(&state, &form, &id, Action::Resume, "resumed").await
}

async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    act(&state, &form, &id, Action::Cancel, "cancelled").await
}

async fn approve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let id = update_id(&id)?;
    let actor = form.staff.actor();
    updates::authorize(&actor, &Action::Approve(Uuid::nil()))?;
    // The approval names the version and the request the approver saw.
    let version = confirmed_version(&form)?;
    let request = match form.fields.text("requested_at").trim() {
        "" => None,
        raw => Some(
            chrono::DateTime::parse_from_rfc3339(raw)
                .map_err(|_| {
                    AdminError::Status(
                        StatusCode::BAD_REQUEST,
                        "The form is incomplete; go back to the update's page.".into(),
                    )
                })?
                .with_timezone(&Utc),
        ),
    };
    updates::approve(&state.pool, &state.settings, &actor, id, version, request).await?;
    Ok(back_to(id, "approved"))
}

async fn retry_failed(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let id = update_id(&id)?;
    updates::retry_failed(&state.pool, &form.staff.actor(), id).await?;
    Ok(back_to(id, "retried"))
}

/// The report page: the ledger's figures, clicks per link (bars and a table), by provider with
/// the complaint rate against Gmail's lines, refusals grouped by reply code.
async fn report(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path(id): Path<String>,
) -> Result<Response, AdminError> {
    let id = update_id(&id)?;
    let record = updates::view(&state.pool, id).await?.update;
    let report = engagement::report(&state.pool, id)
        .await?
        .ok_or(AdminError::NotFound)?;
    let most = report
        .links
        .iter()
        .map(|l| l.clicks)
        .max()
        .unwrap_or(0)
        .max(1);
    let links: Vec<_> = report
        .links
        .iter()
        .enumerate()
        .map(|(i, l)| {
            json!({
                "url": l.url,
                "clicks": l.clicks,
                // its bar, 0 to 200 units long, in its own row of the table
                "width": l.clicks * 200 / most,
                "row": i + 1,
            })
        })
        .collect();
    let providers: Vec<_> = report.providers.iter().map(provider_row).collect();
    Ok(staff_page(
        &state,
        &staff,
        StatusCode::OK,
        "update_report",
        json!({
            "title": format!("Report: {}", record.subject),
            "update": { "id": record.id, "subject": record.subject, "status": record.status },
            "report": report,
            "links": links,
            "providers": providers,
            "accounted": report.recipients == report.sent + report.failed + report.skipped + report.queued,
            "count_clicks": state.settings.engagement.count_clicks,
        }),
    ))
}

/// The report as CSV (`ops::engagement::report_csv`).
async fn report_csv(
    State(state): State<AppState>,
    _staff: CurrentStaff,
    Path(id): Path<String>,
) -> Result<Response, AdminError> {
    let id = update_id(&id)?;
    let report = engagement::report(&state.pool, id)
        .await?
        .ok_or(AdminError::NotFound)?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"update-{id}-report.csv\""),
            ),
        ],
        engagement::report_csv(&report),
    )
        .into_response())
}

/// A mailbox provider's row as the report page and the dashboard show it: counts, the
/// complaint rate in per cent, and how it stands against Gmail's 0.1 % and 0.3 % lines.
pub(super) fn provider_row(p: &engagement::ProviderCounts) -> serde_json::Value {
    let rate = p.complaint_rate;
    json!({
        "provider": p.provider,
        "delivered": p.delivered,
        "bounced": p.bounced,
        "complained": p.complained,
        "rate": format!("{:.2} %", rate * 100.0),
        "judgement": if p.delivered == 0 {
            ""
        } else if rate >= crate::domain::report::COMPLAINT_RATE_LIMIT {
            "at or over 0.3 %: Gmail refuses or filters such a sender's mail"
        } else if rate >= crate::domain::report::COMPLAINT_RATE_GOOD {
            "over 0.1 %: Gmail asks senders to stay under it"
        } else {
            "under 0.1 %"
        },
    })
}
