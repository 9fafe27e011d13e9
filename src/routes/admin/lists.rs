//! `/admin/lists`: every list with its confirmed count; admins add and edit lists (name,
//! description, public or private, US state, welcome mail) and archive or reopen them. The
//! rules are in `ops::lists`.

use super::done;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use super::{staff_page, AdminError, AdminForm, CurrentStaff, Fields};
use crate::app::AppState;
use crate::domain::US_STATES;
use crate::ops::lists::{self, ListError, ListInput};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/lists", get(list).post(add))
        .route("/admin/lists/{slug}", get(edit_form).post(save))
        .route("/admin/lists/{slug}/archive", post(archive))
        .route("/admin/lists/{slug}/unarchive", post(unarchive))
}

impl From<ListError> for AdminError {
    fn from(e: ListError) -> Self {
        match e {
            ListError::NotFound => AdminError::NotFound,
            ListError::Internal(e) => AdminError::Internal(e),
            ListError::Forbidden(m) => AdminError::Forbidden(m),
            other => AdminError::Status(StatusCode::UNPROCESSABLE_ENTITY, message(other)),
        }
    }
}

fn message(e: ListError) -> String {
    match e {
        ListError::Invalid(errors) => errors.into_values().collect::<Vec<_>>().join(" "),
        ListError::Exists(slug) => format!("A list {slug:?} exists already."),
        other => other.to_string(),
    }
}

fn input_from(fields: &Fields, slug: Option<String>) -> ListInput {
    ListInput {
        slug,
        name: fields.text("name"),
        description: fields.text("description"),
        public: fields.get("public").is_some(),
        state: fields.get("state").map(str::to_owned),
        welcome: fields.get("welcome").is_some(),
    }
}

/// The states as choices, `chosen` selected.
fn states(chosen: Option<&str>) -> Vec<serde_json::Value> {
    US_STATES
        .iter()
        .map(
            |(code, name)| json!({ "code": code, "name": name, "selected": chosen == Some(*code) }),
        )
        .collect()
}

async fn list_page(
    state: &AppState,
    staff: &CurrentStaff,
    status: StatusCode,
    error: Option<String>,
) -> Result<Response, AdminError> {
    let all = lists::all(&state.pool).await?;
    Ok(staff_page(
        state,
        staff,
        status,
        "lists",
        json!({ "title": "Lists", "lists": all, "states": states(None), "error": error }),
    ))
}

async fn list(State(state): State<AppState>, staff: CurrentStaff) -> Result<Response, AdminError> {
    list_page(&state, &staff, StatusCode::OK, None).await
}

async fn add(State(state): State<AppState>, form: AdminForm) -> Result<Response, AdminError> {
    let input = input_from(&form.fields, Some(form.fields.text("slug")));
    match lists::create(&state.pool, &form.staff.actor(), &input).await {
        Ok(_) => Ok(done("/admin/lists", "list-added")),
        Err(e @ (ListError::Invalid(_) | ListError::Exists(_))) => {
            list_page(
                &state,
                &form.staff,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(message(e)),
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

async fn edit_page(
    state: &AppState,
    staff: &CurrentStaff,
    slug: &str,
    status: StatusCode,
    error: Option<String>,
) -> Result<Response, AdminError> {
    let list = lists::get(&state.pool, slug).await?;
    let chosen = list.us_state.clone();
    Ok(staff_page(
        state,
        staff,
        status,
        "list_edit",
        json!({ "title": format!("List {}", list.name), "list": list,
                "states": states(chosen.as_deref()), "error": error }),
    ))
}

async fn edit_form(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path(slug): Path<String>,
) -> Result<Response, AdminError> {
    edit_page(&state, &staff, &slug, StatusCode::OK, None).await
}

async fn save(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let input = input_from(&form.fields, None);
    match lists::update(&state.pool, &form.staff.actor(), &slug, &input).await {
        Ok(_) => Ok(done("/admin/lists", "list-saved")),
        Err(e @ ListError::Invalid(_)) => {
            edit_page(
                &state,
                &form.staff,
                &slug,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(message(e)),
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

async fn archive(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    lists::set_archived(&state.pool, &form.staff.actor(), &slug, true).await?;
    Ok(done(&format!("/admin/lists/{slug}"), "list-archived"))
}

async fn unarchive(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    lists::set_archived(&state.pool, &form.staff.actor(), &slug, false).await?;
    Ok(done(&format!("/admin/lists/{slug}"), "list-reopened"))
}
