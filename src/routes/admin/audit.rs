//! `GET /admin/audit`: the audit log of staff actions, newest first (every member of staff may
//! read it).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::json;

use super::{staff_page, AdminError, CurrentStaff};
use crate::app::AppState;
use crate::ops::audit::{self, ACTIONS, PAGE};

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/audit", get(list))
}

#[derive(Deserialize, Default)]
struct AuditQuery {
    action: Option<String>,
    before: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    staff: CurrentStaff,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AdminError> {
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let action = q.action.as_deref().filter(|a| !a.is_empty());
    let entries = audit::page(&state.pool, action, q.before).await?;
    let next_url = (entries.len() == usize::try_from(PAGE).unwrap_or(usize::MAX))
        .then(|| entries.last())
        .flatten()
        .map(|last| {
            let filter = action.map(|a| format!("&action={a}")).unwrap_or_default();
            format!("/admin/audit?before={}{filter}", last.id)
        });
    let entries: Vec<_> = entries
        .iter()
        .map(|e| {
            let mut v = json!(e);
            v["detail_text"] = e.detail.to_string().into();
            v
        })
        .collect();
    let actions: Vec<_> = ACTIONS
        .iter()
        .map(|a| json!({ "name": a, "selected": Some(*a) == action }))
        .collect();
    Ok(staff_page(
        &state,
        &staff,
        StatusCode::OK,
        "audit",
        json!({ "title": "Audit log", "entries": entries, "actions": actions, "next_url": next_url }),
    ))
}
