//! `/admin/staff`: admins list, add and remove staff accounts (as `newsletter staff` does). The
//! rules (admins only, never oneself, never the last admin) are in `ops::staff`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use super::{staff_page, AdminError, AdminForm, CurrentStaff};
use crate::app::AppState;
use crate::domain::NewPassword;
use crate::ops::staff::{self, StaffError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/staff", get(list).post(add))
        .route("/admin/staff/remove", post(remove))
        .route("/admin/account", get(account))
        .route("/admin/account/time-zone", post(account_time_zone))
}

/// Your account: who you are and the time zone staff pages show times in.
fn account_page(
    state: &AppState,
    staff: &CurrentStaff,
    status: StatusCode,
    zone: Option<&str>,
    error: Option<String>,
) -> Response {
    let zones: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|z| z.name()).collect();
    staff_page(
        state,
        staff,
        status,
        "account",
        json!({
            "title": "Your account",
            "zone": zone.or(staff.member.time_zone.as_deref()).unwrap_or(""),
            "default_zone": state.settings.server.time_zone.name(),
            "zones": zones,
            "error": error,
        }),
    )
}

async fn account(State(state): State<AppState>, staff: CurrentStaff) -> Response {
    account_page(&state, &staff, StatusCode::OK, None, None)
}

async fn account_time_zone(
    State(state): State<AppState>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let zone = form.fields.text("time_zone");
    match staff::set_time_zone(&state.pool, &form.staff.actor(), &zone).await {
        Ok(()) => Ok(super::done("/admin/account", "account-saved")),
        Err(StaffError::Invalid(why)) => Ok(account_page(
            &state,
            &form.staff,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(&zone),
            Some(why),
        )),
        Err(e) => Err(staff_error(e)),
    }
}

async fn list_page(
    state: &AppState,
    staff: &CurrentStaff,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Result<Response, AdminError> {
    let members = staff::list(&state.pool, &staff.actor())
        .await
        .map_err(staff_error)?;
    Ok(staff_page(
        state,
        staff,
        status,
        "staff",
        json!({ "title": "Staff", "members": members, "notice": notice, "error": error }),
    ))
}

fn staff_error(e: StaffError) -> AdminError {
    match e {
        StaffError::Forbidden(e) => AdminError::Forbidden(e.0),
        StaffError::Internal(e) => AdminError::Internal(e),
        other => AdminError::Status(StatusCode::UNPROCESSABLE_ENTITY, other.to_string()),
    }
}

async fn list(State(state): State<AppState>, staff: CurrentStaff) -> Result<Response, AdminError> {
    list_page(&state, &staff, StatusCode::OK, None, None).await
}

/// Adds an account with a generated password, shown once on the page.
async fn add(State(state): State<AppState>, form: AdminForm) -> Result<Response, AdminError> {
    let email = form.fields.text("email");
    let password = NewPassword::generate();
    let shown = password.expose().to_owned();
    let role = form.fields.text("role");
    match staff::add(&state.pool, &form.staff.actor(), &email, &role, password).await {
        Ok(role) => {
            let notice = format!(
                "{email} can now log in as {} with the password {shown} (shown once: pass it on safely).",
                role.as_str()
            );
            list_page(&state, &form.staff, StatusCode::OK, Some(notice), None).await
        }
        Err(e @ (StaffError::Forbidden(_) | StaffError::Internal(_))) => Err(staff_error(e)),
        Err(e) => {
            list_page(
                &state,
                &form.staff,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(e.to_string()),
            )
            .await
        }
    }
}

async fn remove(State(state): State<AppState>, form: AdminForm) -> Result<Response, AdminError> {
    let email = form.fields.text("email");
    staff::remove(&state.pool, &form.staff.actor(), &email)
        .await
        .map_err(staff_error)?;
    list_page(
        &state,
        &form.staff,
        StatusCode::OK,
        Some(format!("{} was removed.", email.trim())),
        None,
    )
    .await
}
