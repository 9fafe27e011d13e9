//! `GET /admin/audit`: the audit log of staff actions, newest first (every member of staff may
//! read it).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::json;

use super::{staff_page, AdminError, CurrentStaff};
use crate::app::AppState;
use crate::ops::audit::{self, AuditError, AuditQuery, ACTIONS, PAGE};

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/audit", get(list))
}

async fn list(
    State(state): State<AppState>,
    staff: CurrentStaff,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AdminError> {
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => {
            return Err(AdminError::Status(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("The filter could not be read: {}", e.body_text()),
            ))
        }
    };
    let zone = staff.time_zone(&state);
    let (entries, status, error) = match audit::page(&state.pool, &q, zone).await {
        Ok(entries) => (entries, StatusCode::OK, None),
        Err(AuditError::Invalid(errors)) => (
            Vec::new(),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(errors.into_values().collect::<Vec<_>>().join(" ")),
        ),
        Err(AuditError::Internal(e)) => return Err(AdminError::Internal(e)),
    };
    let next_url = (entries.len() == usize::try_from(PAGE).unwrap_or(usize::MAX))
        .then(|| entries.last())
        .flatten()
        .map(|last| {
            let next = AuditQuery {
                before: Some(last.id),
                ..q.clone()
            };
            format!(
                "/admin/audit?{}",
                serde_urlencoded::to_string(&next).unwrap_or_default()
            )
        });
    let entries: Vec<_> = entries
        .iter()
        .map(|e| {
            let mut v = json!(e);
            v["detail_text"] = e.detail.to_string().into();
            v
        })
        .collect();
    let chosen = q.action.as_deref().unwrap_or("");
    let actions: Vec<_> = ACTIONS
        .iter()
        .map(|a| json!({ "name": a, "selected": *a == chosen }))
        .collect();
    Ok(staff_page(
        &state,
        &staff,
        status,
        "audit",
        json!({ "title": "Audit log", "entries": entries, "actions": actions, "q": q,
                "next_url": next_url, "error": error }),
    ))
}
