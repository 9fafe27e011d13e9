//! `/api/v1/lists`: national and local-alliance lists; `POST /lists/{slug}/archive` and
//! `/unarchive` close and reopen one (200 with the list). The rules are in `ops::lists`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{ApiClient, ApiError, ApiJson};
use crate::app::AppState;
use crate::ops::lists::{self, ListInput};
use crate::ops::Actor;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/lists", get(index).post(create))
        .route("/lists/{slug}", get(show).put(replace))
        .route("/lists/{slug}/archive", post(archive))
        .route("/lists/{slug}/unarchive", post(unarchive))
}

async fn index(State(state): State<AppState>, _: ApiClient) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "lists": lists::all(&state.pool).await? })))
}

async fn show(
    State(state): State<AppState>,
    _: ApiClient,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(lists::get(&state.pool, &slug).await?)))
}

async fn create(
    State(state): State<AppState>,
    _: ApiClient,
    ApiJson(input): ApiJson<ListInput>,
) -> Result<Response, ApiError> {
    let list = lists::create(&state.pool, &input).await?;
    Ok((StatusCode::CREATED, Json(json!(list))).into_response())
}

async fn replace(
    State(state): State<AppState>,
    _: ApiClient,
    Path(slug): Path<String>,
    ApiJson(input): ApiJson<ListInput>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(
        lists::update(&state.pool, &slug, &input).await?
    )))
}

async fn archive(
    State(state): State<AppState>,
    client: ApiClient,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let actor = Actor::ApiToken(client.token_id);
    Ok(Json(json!(
        lists::set_archived(&state.pool, &actor, &slug, true).await?
    )))
}

async fn unarchive(
    State(state): State<AppState>,
    client: ApiClient,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let actor = Actor::ApiToken(client.token_id);
    Ok(Json(json!(
        lists::set_archived(&state.pool, &actor, &slug, false).await?
    )))
}
