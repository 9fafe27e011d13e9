//! `/admin/subscribers`: search (keyset pages), one person's record with their lists, consent
//! log and mail (every member of staff); edit, unsubscribe, erase (after a confirmation) and the
//! CSV export (admins). The rules are in `ops::subscribers`, shared with the API.

use super::done;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;
use uuid::Uuid;

use super::{staff_page, AdminError, AdminForm, CurrentStaff};
use crate::app::AppState;
use crate::ops::bulk::{self, BulkAction, Selection};
use crate::ops::lists;
use crate::ops::subscribers::{self, EditInput, SearchQuery, SubscriberError, STATUSES};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/subscribers", get(list))
        .route("/admin/hygiene", get(hygiene))
        .route("/admin/subscribers/export", get(export))
        .route("/admin/subscribers/bulk", post(bulk_action))
        .route("/admin/subscribers/{id}", get(show).post(save))
        .route("/admin/subscribers/{id}/unsubscribe", post(unsubscribe))
        .route("/admin/subscribers/{id}/erase", post(erase))
}

impl From<SubscriberError> for AdminError {
    fn from(e: SubscriberError) -> Self {
        match e {
            SubscriberError::NotFound => AdminError::NotFound,
            SubscriberError::Invalid(errors) => AdminError::Status(
                StatusCode::UNPROCESSABLE_ENTITY,
                errors.into_values().collect::<Vec<_>>().join(" "),
            ),
            SubscriberError::Forbidden(m) => AdminError::Forbidden(m),
            SubscriberError::Refused(m) => AdminError::Status(StatusCode::UNPROCESSABLE_ENTITY, m),
            SubscriberError::Internal(e) => AdminError::Internal(e),
        }
    }
}

fn subscriber_id(raw: &str) -> Result<Uuid, AdminError> {
    raw.parse().map_err(|_| AdminError::NotFound)
}

/// The query string of `q` without its page position.
fn filter_query(q: &SearchQuery) -> String {
    let without_position = SearchQuery {
        after: None,
        limit: None,
        ..q.clone()
    };
    serde_urlencoded::to_string(&without_position).unwrap_or_default()
}

/// List hygiene: its settings and how many people each would affect (`ops::hygiene::preview`).
async fn hygiene(
    State(state): State<AppState>,
    staff: CurrentStaff,
) -> Result<Response, AdminError> {
    let preview = crate::ops::hygiene::preview(&state.pool, &state.settings).await?;
    let would_ask: Vec<_> = preview
        .would_ask
        .iter()
        .map(|(days, n)| json!({ "days": days, "people": n, "configured": *days == preview.inactive_days }))
        .collect();
    Ok(staff_page(
        &state,
        &staff,
        StatusCode::OK,
        "hygiene",
        json!({ "title": "List hygiene", "hygiene": preview, "would_ask": would_ask }),
    ))
}

async fn list(
    State(state): State<AppState>,
    staff: CurrentStaff,
    query: Result<Query<SearchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AdminError> {
    let q = query.map(|Query(q)| q).unwrap_or_default();
    search_page(&state, &staff, &q, StatusCode::OK, None, None).await
}

/// The search page for `q`, with the outcome of a bulk action (`told`, a notice) or its
/// refusal (`refused`, answered with `status`).
async fn search_page(
    state: &AppState,
    staff: &CurrentStaff,
    q: &SearchQuery,
    status: StatusCode,
    told: Option<String>,
    refused: Option<String>,
) -> Result<Response, AdminError> {
    let q = q.clone();
    let (page, status, error) = match subscribers::search(&state.pool, &q).await {
        Ok(page) => (Some(page), status, refused),
        Err(SubscriberError::Invalid(errors)) => (
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(errors.into_values().collect::<Vec<_>>().join(" ")),
        ),
        Err(e) => return Err(e.into()),
    };
    let next_url = page
        .as_ref()
        .and_then(|p| p.next_after.as_ref())
        .map(|after| {
            let next = SearchQuery {
                after: Some(after.clone()),
                ..q.clone()
            };
            format!(
                "/admin/subscribers?{}",
                serde_urlencoded::to_string(&next).unwrap_or_default()
            )
        });
    let chosen_list = q.list.as_deref().unwrap_or("");
    let all_lists: Vec<_> = lists::names(&state.pool, false)
        .await
        .map_err(anyhow::Error::from)?
        .into_iter()
        .map(|(slug, name)| json!({ "selected": slug == chosen_list, "slug": slug, "name": name }))
        .collect();
    let chosen_status = q.status.as_deref().unwrap_or("");
    let statuses: Vec<_> = STATUSES
        .iter()
        .map(|s| json!({ "name": s, "selected": *s == chosen_status }))
        .collect();
    Ok(staff_page(
        state,
        staff,
        status,
        "subscribers",
        json!({
            "title": "Subscribers",
            "notice": told,
            "max_people": bulk::MAX_PEOPLE,
            "q": q,
            "page": page,
            "next_url": next_url,
            "filter_query": filter_query(&q),
            "lists": all_lists,
            "statuses": statuses,
            "error": error,
        }),
    ))
}

/// A bulk action on the people ticked (`ids`) or on everyone matching the search
/// (`scope=matching` with the search's fields): `action`, `target_list`, and for an erasure
/// `confirm_count`. The rules are `ops::bulk`'s.
async fn bulk_action(
    State(state): State<AppState>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let f = &form.fields;
    let q = SearchQuery {
        query: f.get("query").map(str::to_owned),
        status: f.get("status").map(str::to_owned),
        list: f.get("list").map(str::to_owned),
        state: f.get("state").map(str::to_owned),
        ..SearchQuery::default()
    };
    let again = |status: StatusCode, message: String| {
        search_page(&state, &form.staff, &q, status, None, Some(message))
    };
    let action = match BulkAction::parse(
        &f.text("action"),
        &f.text("target_list"),
        &f.text("confirm_count"),
    ) {
        Ok(action) => action,
        Err(SubscriberError::Invalid(errors)) => {
            let message = errors.into_values().collect::<Vec<_>>().join(" ");
            return again(StatusCode::UNPROCESSABLE_ENTITY, message).await;
        }
        Err(e) => return Err(e.into()),
    };
    let selection = if f.text("scope") == "matching" {
        Selection::Matching(q.clone())
    } else {
        let mut ids = Vec::new();
        for raw in f.all("ids") {
            ids.push(raw.parse().map_err(|_| {
                AdminError::Status(
                    StatusCode::BAD_REQUEST,
                    "The form is damaged; reload the page.".into(),
                )
            })?);
        }
        Selection::Ticked(ids)
    };
    match bulk::act(&state.pool, &form.staff.actor(), &selection, &action).await {
        Ok(outcome) => match outcome.csv {
            Some(csv) => Ok(csv_download(csv)),
            None => {
                let told = told(&action, &outcome);
                search_page(&state, &form.staff, &q, StatusCode::OK, Some(told), None).await
            }
        },
        Err(SubscriberError::Invalid(errors)) => {
            let message = errors.into_values().collect::<Vec<_>>().join(" ");
            again(StatusCode::UNPROCESSABLE_ENTITY, message).await
        }
        Err(SubscriberError::Refused(message)) => {
            again(StatusCode::UNPROCESSABLE_ENTITY, message).await
        }
        Err(e) => Err(e.into()),
    }
}

/// What a bulk action did, in words.
fn told(action: &BulkAction, o: &bulk::Outcome) -> String {
    let people = |n: usize| {
        if n == 1 {
            "1 person".to_owned()
        } else {
            format!("{n} people")
        }
    };
    let done = match action {
        BulkAction::AddToList(list) => format!("{} added to {list}", people(o.changed)),
        BulkAction::RemoveFromList(list) => format!("{} removed from {list}", people(o.changed)),
        BulkAction::Unsubscribe => format!("{} unsubscribed", people(o.changed)),
        BulkAction::Erase { .. } => format!("{} erased", people(o.changed)),
        BulkAction::Export => format!("{} exported", people(o.changed)),
    };
    let mut also = Vec::new();
    if o.unchanged > 0 {
        also.push(format!("{} already so", people(o.unchanged)));
    }
    if o.not_confirmed > 0 {
        also.push(format!(
            "{} not confirmed (they join lists by confirming)",
            people(o.not_confirmed)
        ));
    }
    if o.left_before > 0 {
        also.push(format!(
            "{} left that list themselves (only they may join it again)",
            people(o.left_before)
        ));
    }
    if also.is_empty() {
        format!("Of {}: {done}.", people(o.selected))
    } else {
        format!(
            "Of {}: {done}; left as they were: {}.",
            people(o.selected),
            also.join(", ")
        )
    }
}

fn csv_download(csv: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"subscribers.csv\"",
            ),
        ],
        csv,
    )
        .into_response()
}

async fn export(
    State(state): State<AppState>,
    staff: CurrentStaff,
    query: Result<Query<SearchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AdminError> {
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let csv = subscribers::export(&state.pool, &staff.actor(), &q).await?;
    Ok(csv_download(csv))
}

async fn profile_page(
    state: &AppState,
    staff: &CurrentStaff,
    id: Uuid,
    status: StatusCode,
    error: Option<String>,
) -> Result<Response, AdminError> {
    let s = subscribers::get(&state.pool, id).await?;
    let held: Vec<&str> = s
        .lists
        .iter()
        .filter(|m| m.status != "unsubscribed")
        .map(|m| m.slug.as_str())
        .collect();
    let all_lists: Vec<_> = lists::names(&state.pool, true)
        .await
        .map_err(anyhow::Error::from)?
        .into_iter()
        .map(|(slug, name)| json!({ "checked": held.contains(&slug.as_str()), "slug": slug, "name": name }))
        .collect();
    let can_unsubscribe = matches!(s.status.as_str(), "pending" | "confirmed");
    Ok(staff_page(
        state,
        staff,
        status,
        "subscriber",
        json!({
            "title": s.email,
            "s": s,
            "lists": all_lists,
            "can_unsubscribe": can_unsubscribe,
            "error": error,
        }),
    ))
}

async fn show(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path(id): Path<String>,
) -> Result<Response, AdminError> {
    profile_page(&state, &staff, subscriber_id(&id)?, StatusCode::OK, None).await
}

async fn save(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let id = subscriber_id(&id)?;
    let input = EditInput {
        name: Some(form.fields.text("name")),
        state: Some(form.fields.text("state")),
        lists: form
            .fields
            .get("lists_shown")
            .map(|_| form.fields.all("lists")),
    };
    match subscribers::edit(&state.pool, &form.staff.actor(), id, &input).await {
        Ok(_) => Ok(done(
            &format!("/admin/subscribers/{id}"),
            "subscriber-saved",
        )),
        Err(SubscriberError::Invalid(errors)) => {
            let message = errors.into_values().collect::<Vec<_>>().join(" ");
            profile_page(
                &state,
                &form.staff,
                id,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(message),
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

async fn unsubscribe(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let id = subscriber_id(&id)?;
    subscribers::unsubscribe(&state.pool, &form.staff.actor(), id).await?;
    Ok(done(
        &format!("/admin/subscribers/{id}"),
        "subscriber-unsubscribed",
    ))
}

/// Erases after the confirmation box was ticked (else the page says so and nothing changes).
async fn erase(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let id = subscriber_id(&id)?;
    let confirmed = form.fields.get("confirm") == Some("yes");
    match subscribers::erase(&state.pool, &form.staff.actor(), id, confirmed).await {
        Ok(()) => {}
        Err(SubscriberError::Refused(message)) => {
            return profile_page(
                &state,
                &form.staff,
                id,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(message),
            )
            .await
        }
        Err(e) => return Err(e.into()),
    }
    Ok(done("/admin/subscribers", "subscriber-erased"))
}
