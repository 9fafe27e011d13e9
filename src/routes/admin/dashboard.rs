//! `GET /admin`: the dashboard.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::json;

use super::{staff_page, CurrentStaff};
use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin", get(dashboard))
}

async fn dashboard(State(state): State<AppState>, staff: CurrentStaff) -> Response {
    staff_page(
        &state,
        &staff,
        StatusCode::OK,
        "dashboard",
        json!({ "title": "Dashboard" }),
    )
}
