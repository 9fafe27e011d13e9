//! `/api/v1/imports`: a CSV file as the body (`Content-Type: text/csv`) becomes a background
//! import job (`202 {"id": …}`); `GET /imports/{id}` shows its progress and every problem by
//! line. The rules are in `ops::imports`, shared with the staff area and `newsletter import`.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{ApiClient, ApiError};
use crate::app::AppState;
use crate::ops::imports::{self, ImportError, ImportRequest};
use crate::ops::Actor;

/// Largest import file.
pub const MAX_IMPORT_BYTES: usize = 64 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/imports",
            post(start).layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES)),
        )
        .route("/imports/{id}", get(show))
}

#[derive(Deserialize)]
struct StartQuery {
    /// A list slug, or several separated by commas; none: the default lists.
    list: Option<String>,
    mode: Option<String>,
    source: Option<String>,
}

async fn start(
    State(state): State<AppState>,
    client: ApiClient,
    query: Result<Query<StartQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::Status(StatusCode::BAD_REQUEST, e.body_text()))?;
    let is_csv = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("text/csv"));
    if !is_csv {
        return Err(ApiError::Status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Send the file as text/csv.".into(),
        ));
    }
    let lists: Vec<String> = q
        .list
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let request = ImportRequest {
        file: &body,
        lists: &lists,
        mode: q.mode.as_deref().unwrap_or("confirmed"),
        source: q.source.as_deref().unwrap_or(""),
    };
    let actor = Actor::ApiToken(client.token_id);
    let id = imports::start(&state.pool, &actor, request).await?;
    tokio::spawn(imports::run_pending(
        state.pool.clone(),
        state.settings.clone(),
    ));
    Ok((StatusCode::ACCEPTED, Json(json!({ "id": id }))).into_response())
}

async fn show(
    State(state): State<AppState>,
    _: ApiClient,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: Uuid = id
        .parse()
        .map_err(|_| ApiError::Import(ImportError::NotFound))?;
    Ok(Json(imports::status(&state.pool, id).await?).into_response())
}
