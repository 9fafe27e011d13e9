//! `/admin/staff`: admins list, add and remove staff accounts (as `newsletter staff` does).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use super::{staff_page, AdminError, AdminForm, AdminOnly};
use crate::app::AppState;
use crate::domain::{NewPassword, StaffRole};
use crate::ops::staff::{self, StaffError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/staff", get(list).post(add))
        .route("/admin/staff/remove", post(remove))
}

async fn list_page(
    state: &AppState,
    admin: &AdminOnly,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Result<Response, AdminError> {
    let members = staff::list(&state.pool).await.map_err(staff_error)?;
    Ok(staff_page(
        state,
        &admin.0,
        status,
        "staff",
        json!({ "title": "Staff", "members": members, "notice": notice, "error": error }),
    ))
}

fn staff_error(e: StaffError) -> AdminError {
    match e {
        StaffError::Internal(e) => AdminError::Internal(e),
        other => AdminError::Status(StatusCode::UNPROCESSABLE_ENTITY, other.to_string()),
    }
}

async fn list(State(state): State<AppState>, admin: AdminOnly) -> Result<Response, AdminError> {
    list_page(&state, &admin, StatusCode::OK, None, None).await
}

/// Adds an account with a generated password, shown once on the page.
async fn add(State(state): State<AppState>, form: AdminForm) -> Result<Response, AdminError> {
    let admin = form.admin()?;
    let email = form.fields.text("email");
    let role = match StaffRole::parse(&form.fields.text("role")) {
        Ok(role) => role,
        Err(e) => {
            return list_page(
                &state,
                &admin,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(e),
            )
            .await
        }
    };
    let password = NewPassword::generate();
    let shown = password.expose().to_owned();
    match staff::add(&state.pool, &admin.0.actor(), &email, role, password).await {
        Ok(()) => {
            let notice = format!(
                "{email} can now log in as {} with the password {shown} (shown once: pass it on safely).",
                role.as_str()
            );
            list_page(&state, &admin, StatusCode::OK, Some(notice), None).await
        }
        Err(StaffError::Internal(e)) => Err(AdminError::Internal(e)),
        Err(e) => {
            list_page(
                &state,
                &admin,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(e.to_string()),
            )
            .await
        }
    }
}

async fn remove(State(state): State<AppState>, form: AdminForm) -> Result<Response, AdminError> {
    let admin = form.admin()?;
    let email = form.fields.text("email");
    if email.eq_ignore_ascii_case(&admin.0.member.email) {
        return Err(AdminError::Status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "You cannot remove your own account.".into(),
        ));
    }
    staff::remove(&state.pool, &admin.0.actor(), &email)
        .await
        .map_err(staff_error)?;
    list_page(
        &state,
        &admin,
        StatusCode::OK,
        Some(format!("{email} was removed.")),
        None,
    )
    .await
}
