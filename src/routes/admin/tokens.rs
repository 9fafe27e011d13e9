//! `/admin/tokens`: admins list the API tokens (name, scope, who made it and when, last use,
//! expiry, state), make one (its secret shown once, on the answer) and revoke one, as
//! `newsletter api-token` does. The rules are in `ops::api_tokens`.

use super::done;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use chrono::Utc;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{staff_page, AdminError, AdminForm, CurrentStaff};
use crate::app::AppState;
use crate::domain::TokenScope;
use crate::ops::api_tokens::{self, Created, TokenError, TokenInput};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/tokens", get(list).post(create))
        .route("/admin/tokens/{id}/revoke", post(revoke))
}

impl From<TokenError> for AdminError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::NotFound => AdminError::NotFound,
            TokenError::Forbidden(e) => AdminError::Forbidden(e.0),
            TokenError::Invalid(errors) => AdminError::Status(
                StatusCode::UNPROCESSABLE_ENTITY,
                errors.into_values().collect::<Vec<_>>().join(" "),
            ),
            TokenError::Internal(e) => AdminError::Internal(e),
        }
    }
}

/// The page: every token (times in the reader's zone, by `{{when}}`), the new one's secret when one was just
/// made, or the form's error.
async fn page(
    state: &AppState,
    staff: &CurrentStaff,
    status: StatusCode,
    created: Option<Created>,
    error: Option<(String, &TokenInput)>,
) -> Result<Response, AdminError> {
    let now = Utc::now();
    let tokens: Vec<Value> = api_tokens::list(&state.pool, &staff.actor())
        .await?
        .iter()
        .map(|t| {
            let state = if t.revoked_at.is_some() {
                "revoked"
            } else if t.expires_at.is_some_and(|e| e <= now) {
                "expired"
            } else {
                "live"
            };
            json!({
                "id": t.id, "name": t.name, "scope": t.scope.as_str(), "created_by": t.created_by,
                "created_at": t.created_at,
                "last_used_at": t.last_used_at, "expires_at": t.expires_at,
                "state": state, "live": state == "live",
            })
        })
        .collect();
    let (error, values, chosen) = match error {
        Some((message, input)) => (
            Some(message),
            json!({ "name": input.name, "expires_days": input.expires_days }),
            input.scope.trim(),
        ),
        None => (None, json!({}), "read"),
    };
    let scopes: Vec<Value> = TokenScope::ALL
        .iter()
        .map(|s| {
            let label = match s {
                TokenScope::Read => "reads only",
                TokenScope::Write => "an editor's rights",
                TokenScope::Send => "an admin's rights",
            };
            json!({ "value": s.as_str(), "label": label, "selected": s.as_str() == chosen })
        })
        .collect();
    let created_json = created
        .as_ref()
        .map(|c| json!({ "name": c.record.name, "scope": c.record.scope.as_str() }));
    Ok(staff_page(
        state,
        staff,
        status,
        "tokens",
        json!({
            "title": "API tokens",
            "tokens": tokens,
            "created": created_json,
            "secret": created.as_ref().map(|c| c.secret.as_str().to_owned()),
            "error": error,
            "values": values,
            "scopes": scopes,
        }),
    ))
}

async fn list(State(state): State<AppState>, staff: CurrentStaff) -> Result<Response, AdminError> {
    page(&state, &staff, StatusCode::OK, None, None).await
}

/// Makes a token and answers with the page showing its secret (once: it is not stored).
async fn create(State(state): State<AppState>, form: AdminForm) -> Result<Response, AdminError> {
    let input = TokenInput {
        name: form.fields.text("name"),
        scope: form.fields.text("scope"),
        expires_days: form.fields.text("expires_days"),
    };
    match api_tokens::create(&state.pool, &form.staff.actor(), &input).await {
        Ok(created) => page(&state, &form.staff, StatusCode::OK, Some(created), None).await,
        Err(TokenError::Invalid(errors)) => {
            let message = errors.into_values().collect::<Vec<_>>().join(" ");
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            page(&state, &form.staff, status, None, Some((message, &input))).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let id: Uuid = id.parse().map_err(|_| AdminError::NotFound)?;
    api_tokens::revoke(&state.pool, &form.staff.actor(), id).await?;
    Ok(done("/admin/tokens", "token-revoked"))
}
