//! `/admin/feeds` (feeds the worker polls into the news desk, with their last error) and
//! `/admin/digests` (digest schedules, their next occurrences and what each occurrence did).
//! Also the archive switch of an update's page (`/admin/updates/{id}/archive`). Rules live in
//! `ops::feeds`, `ops::digests` and `ops::archive`.

use super::done;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{staff_page, AdminError, AdminForm, CurrentStaff, Fields};
use crate::app::AppState;
use crate::domain::RecurrenceInput;
use crate::ops::digests::{self, DigestError, DigestInput};
use crate::ops::feeds::{self, FeedError, FeedInput};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/feeds", get(feed_list).post(feed_add))
        .route("/admin/feeds/{id}/active", post(feed_active))
        .route("/admin/feeds/{id}/trust", post(feed_trust))
        .route("/admin/feeds/{id}/interval", post(feed_interval))
        .route("/admin/feeds/{id}/delete", post(feed_delete))
        .route("/admin/updates/{id}/archive", post(archive_state))
        .route("/admin/digests", get(digest_list).post(digest_add))
        .route("/admin/digests/{id}", get(digest_show).post(digest_save))
        .route("/admin/digests/{id}/edit", get(digest_edit))
        .route("/admin/digests/{id}/active", post(digest_active))
        .route("/admin/digests/{id}/delete", post(digest_delete))
}

impl From<FeedError> for AdminError {
    fn from(e: FeedError) -> Self {
        match e {
            FeedError::NotFound => AdminError::NotFound,
            FeedError::Invalid(errors) => AdminError::Status(
                StatusCode::UNPROCESSABLE_ENTITY,
                errors.values().cloned().collect::<Vec<_>>().join(" "),
            ),
            FeedError::Forbidden(e) => AdminError::Forbidden(e.0),
            FeedError::Internal(e) => AdminError::Internal(e),
        }
    }
}

impl From<DigestError> for AdminError {
    fn from(e: DigestError) -> Self {
        match e {
            DigestError::NotFound => AdminError::NotFound,
            DigestError::Forbidden(m) => AdminError::Forbidden(m),
            DigestError::Invalid(errors) => AdminError::Status(
                StatusCode::UNPROCESSABLE_ENTITY,
                errors.values().cloned().collect::<Vec<_>>().join(" "),
            ),
            DigestError::Internal(e) => AdminError::Internal(e),
        }
    }
}

fn id_of(raw: &str) -> Result<Uuid, AdminError> {
    raw.parse().map_err(|_| AdminError::NotFound)
}

/// The configured topics, each marked when it is in `chosen`.
fn topics(state: &AppState, chosen: &[String]) -> Value {
    state
        .settings
        .preferences
        .topics
        .iter()
        .map(|(slug, label)| json!({ "slug": slug, "label": label, "selected": chosen.contains(slug) }))
        .collect()
}

async fn feed_page(
    state: &AppState,
    staff: &CurrentStaff,
    status: StatusCode,
    errors: Option<Value>,
    values: Value,
) -> Result<Response, AdminError> {
    let feeds = feeds::list(&state.pool).await?;
    let chosen: Vec<String> = values["topic"]
        .as_str()
        .map(str::to_owned)
        .into_iter()
        .collect();
    Ok(staff_page(
        state,
        staff,
        status,
        "feeds",
        json!({
            "title": "Feeds",
            "feeds": feeds,
            "default_poll_minutes": state.settings.feeds.poll_every.as_secs() / 60,
            "topics": topics(state, &chosen),
            "errors": errors,
            "values": values,
        }),
    ))
}

async fn feed_list(
    State(state): State<AppState>,
    staff: CurrentStaff,
) -> Result<Response, AdminError> {
    feed_page(&state, &staff, StatusCode::OK, None, json!({})).await
}

async fn feed_add(State(state): State<AppState>, form: AdminForm) -> Result<Response, AdminError> {
    let input = FeedInput {
        url: form.fields.get("url").map(str::to_owned),
        topic: form.fields.get("topic").map(str::to_owned),
        approve: Some(form.fields.get("approve").is_some()),
        active: Some(true),
        poll_minutes: poll_minutes(&form.fields),
    };
    match feeds::add(&state.pool, &form.staff.actor(), &input).await {
        Ok(_) => Ok(done("/admin/feeds", "feed-added")),
        Err(FeedError::Invalid(errors)) => {
            let values = serde_json::to_value(&input).map_err(anyhow::Error::from)?;
            feed_page(
                &state,
                &form.staff,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(json!(errors)),
                values,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

async fn feed_active(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let patch = FeedInput {
        active: Some(form.fields.get("active") == Some("true")),
        ..FeedInput::default()
    };
    feeds::change(&state.pool, &form.staff.actor(), id_of(&id)?, patch).await?;
    Ok(done("/admin/feeds", "feed-changed"))
}

/// Trusts a feed (its new items approved at once) or stops trusting it (`approve=true|false`).
async fn feed_trust(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let patch = FeedInput {
        approve: Some(form.fields.get("approve") == Some("true")),
        ..FeedInput::default()
    };
    feeds::change(&state.pool, &form.staff.actor(), id_of(&id)?, patch).await?;
    Ok(done("/admin/feeds", "feed-changed"))
}

/// The form's `poll_minutes`: blank is none; what is not a whole number is 0, which
/// `ops::feeds` refuses with the bounds.
fn poll_minutes(fields: &Fields) -> Option<i32> {
    let raw = fields
        .get("poll_minutes")
        .map(str::trim)
        .filter(|m| !m.is_empty())?;
    Some(raw.parse().unwrap_or(0))
}

/// Sets how often a feed is read (`poll_minutes`).
async fn feed_interval(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let patch = FeedInput {
        poll_minutes: Some(poll_minutes(&form.fields).unwrap_or(0)),
        ..FeedInput::default()
    };
    feeds::change(&state.pool, &form.staff.actor(), id_of(&id)?, patch).await?;
    Ok(done("/admin/feeds", "feed-changed"))
}

async fn feed_delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    feeds::remove(&state.pool, &form.staff.actor(), id_of(&id)?).await?;
    Ok(done("/admin/feeds", "feed-removed"))
}

/// A digest schedule from the form on `/admin/digests`.
fn digest_input(fields: &Fields) -> DigestInput {
    let optional = |name: &str| fields.get(name).map(str::to_owned);
    DigestInput {
        name: optional("name"),
        lists: Some(fields.all("lists")),
        topics: Some(fields.all("topics")),
        intro: optional("intro"),
        template: optional("template"),
        recurrence: Some(RecurrenceInput {
            frequency: fields.text("frequency"),
            weekdays: fields.all("weekdays"),
            day: fields.get("day").and_then(|d| d.trim().parse().ok()),
            time: fields.text("time"),
        }),
        time_zone: optional("time_zone"),
        mode: optional("mode"),
        active: None,
    }
}

/// What the digest form (`partials/digest_fields`) shows for `values`.
async fn form_data(
    state: &AppState,
    errors: Option<Value>,
    values: &DigestInput,
) -> Result<serde_json::Map<String, Value>, AdminError> {
    let chosen_lists = values.lists.clone().unwrap_or_default();
    let lists: Vec<Value> = crate::ops::lists::all(&state.pool)
        .await?
        .iter()
        .filter(|l| l.archived_at.is_none() || chosen_lists.contains(&l.slug))
        .map(|l| json!({ "slug": l.slug, "name": l.name, "checked": chosen_lists.contains(&l.slug) }))
        .collect();
    let recurrence = values.recurrence.clone().unwrap_or_default();
    let weekdays: Vec<Value> = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ]
    .iter()
    .map(|d| json!({ "value": d, "checked": recurrence.weekdays.iter().any(|w| w == d) }))
    .collect();
    let data = json!({
        "lists": lists,
        "topics": topics(state, &values.topics.clone().unwrap_or_default()),
        "weekdays": weekdays,
        "errors": errors,
        "values": values,
        "monthly": recurrence.frequency == "monthly",
        "review": values.mode.as_deref() != Some("send"),
        "default_zone": crate::domain::schedule::DEFAULT_TIME_ZONE,
    });
    match data {
        Value::Object(map) => Ok(map),
        _ => unreachable!("json! of an object is an object"),
    }
}

async fn digest_page(
    state: &AppState,
    staff: &CurrentStaff,
    status: StatusCode,
    errors: Option<Value>,
    values: &DigestInput,
) -> Result<Response, AdminError> {
    let mut data = form_data(state, errors, values).await?;
    data.insert("title".into(), "Digests".into());
    data.insert(
        "digests".into(),
        serde_json::to_value(digests::list(&state.pool).await?).map_err(anyhow::Error::from)?,
    );
    Ok(staff_page(
        state,
        staff,
        status,
        "digests",
        Value::Object(data),
    ))
}

async fn edit_page(
    state: &AppState,
    staff: &CurrentStaff,
    id: Uuid,
    status: StatusCode,
    errors: Option<Value>,
    values: &DigestInput,
) -> Result<Response, AdminError> {
    let mut data = form_data(state, errors, values).await?;
    data.insert("title".into(), "Edit a digest".into());
    data.insert("id".into(), id.to_string().into());
    Ok(staff_page(
        state,
        staff,
        status,
        "digest_edit",
        Value::Object(data),
    ))
}

async fn digest_edit(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path(id): Path<String>,
) -> Result<Response, AdminError> {
    let view = digests::view(&state.pool, id_of(&id)?).await?;
    edit_page(&state, &staff, view.id, StatusCode::OK, None, &view.input).await
}

async fn digest_save(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let id = id_of(&id)?;
    let input = digest_input(&form.fields);
    let saved = digests::change(
        &state.pool,
        &state.settings,
        &state.mail_templates.cached(),
        &form.staff.actor(),
        id,
        input.clone(),
    )
    .await;
    match saved {
        Ok(_) => Ok(done(&format!("/admin/digests/{id}"), "digest-saved")),
        Err(DigestError::Invalid(errors)) => {
            edit_page(
                &state,
                &form.staff,
                id,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(json!(errors)),
                &input,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

async fn digest_list(
    State(state): State<AppState>,
    staff: CurrentStaff,
) -> Result<Response, AdminError> {
    let blank = DigestInput {
        intro: Some("The news of the week ({{date}}): {{count}} items.".into()),
        recurrence: Some(RecurrenceInput {
            frequency: "weekly".into(),
            weekdays: vec!["monday".into()],
            day: None,
            time: "09:00".into(),
        }),
        ..DigestInput::default()
    };
    digest_page(&state, &staff, StatusCode::OK, None, &blank).await
}

async fn digest_add(
    State(state): State<AppState>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let input = digest_input(&form.fields);
    let created = digests::create(
        &state.pool,
        &state.settings,
        &state.mail_templates.cached(),
        &form.staff.actor(),
        &input,
    )
    .await;
    match created {
        Ok(view) => Ok(done(&format!("/admin/digests/{}", view.id), "digest-saved")),
        Err(DigestError::Invalid(errors)) => {
            digest_page(
                &state,
                &form.staff,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(json!(errors)),
                &input,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

async fn digest_show(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path(id): Path<String>,
) -> Result<Response, AdminError> {
    let view = digests::view(&state.pool, id_of(&id)?).await?;
    Ok(staff_page(
        &state,
        &staff,
        StatusCode::OK,
        "digest",
        json!({ "title": view.input.name.clone(), "digest": view }),
    ))
}

async fn digest_active(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let id = id_of(&id)?;
    let patch = DigestInput {
        active: Some(form.fields.get("active") == Some("true")),
        ..DigestInput::default()
    };
    digests::change(
        &state.pool,
        &state.settings,
        &state.mail_templates.cached(),
        &form.staff.actor(),
        id,
        patch,
    )
    .await?;
    Ok(done(&format!("/admin/digests/{id}"), "digest-changed"))
}

/// Puts an update in the public archive or leaves it out (`in_archive=true|false`).
async fn archive_state(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let id = id_of(&id)?;
    let listed = match form.fields.get("in_archive") {
        Some("true") => true,
        Some("false") => false,
        _ => {
            return Err(AdminError::Status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "in_archive is true or false.".into(),
            ))
        }
    };
    crate::ops::archive::set_listed(&state.pool, &form.staff.actor(), id, listed).await?;
    Ok(done(&format!("/admin/updates/{id}"), "archive-changed"))
}

async fn digest_delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    digests::remove(&state.pool, &form.staff.actor(), id_of(&id)?).await?;
    Ok(done("/admin/digests", "digest-removed"))
}
