//! `/api/v1/subscribers`: search (keyset pages), one person's record, add as confirmed with a
//! consent source, change, unsubscribe, erase, and the CSV export. The rules are in
//! `ops::subscribers`, shared with the staff area.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use uuid::Uuid;

use super::{ApiClient, ApiError, ApiJson};
use crate::app::AppState;
use crate::ops::subscribers::{self, EditInput, NewSubscriberInput, SearchQuery, SubscriberError};
use crate::ops::Actor;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/subscribers", get(search).post(create))
        .route("/subscribers/export", get(export))
        .route("/subscribers/{id}", get(show).patch(change).delete(erase))
        .route("/subscribers/{id}/unsubscribe", post(unsubscribe))
}

fn subscriber_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::Subscriber(SubscriberError::NotFound))
}

fn query(q: Result<Query<SearchQuery>, QueryRejection>) -> Result<SearchQuery, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::Status(StatusCode::BAD_REQUEST, e.body_text()))
}

async fn search(
    State(state): State<AppState>,
    _: ApiClient,
    q: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let page = subscribers::search(&state.pool, &query(q)?).await?;
    Ok(Json(page).into_response())
}

async fn export(
    State(state): State<AppState>,
    client: ApiClient,
    q: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let actor = Actor::ApiToken(client.token_id);
    let csv = subscribers::export(&state.pool, &actor, &query(q)?).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"subscribers.csv\"",
            ),
        ],
        csv,
    )
        .into_response())
}

async fn show(
    State(state): State<AppState>,
    _: ApiClient,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let detail = subscribers::get(&state.pool, subscriber_id(&id)?).await?;
    Ok(Json(detail).into_response())
}

async fn create(
    State(state): State<AppState>,
    client: ApiClient,
    ApiJson(input): ApiJson<NewSubscriberInput>,
) -> Result<Response, ApiError> {
    let actor = Actor::ApiToken(client.token_id);
    let detail = subscribers::create(&state.pool, &actor, &input).await?;
    Ok((StatusCode::CREATED, Json(detail)).into_response())
}

async fn change(
    State(state): State<AppState>,
    client: ApiClient,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<EditInput>,
) -> Result<Response, ApiError> {
    let actor = Actor::ApiToken(client.token_id);
    let detail = subscribers::edit(&state.pool, &actor, subscriber_id(&id)?, &input).await?;
    Ok(Json(detail).into_response())
}

async fn unsubscribe(
    State(state): State<AppState>,
    client: ApiClient,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let actor = Actor::ApiToken(client.token_id);
    let changed = subscribers::unsubscribe(&state.pool, &actor, subscriber_id(&id)?).await?;
    Ok(Json(json!({ "unsubscribed": true, "changed": changed })).into_response())
}

async fn erase(
    State(state): State<AppState>,
    client: ApiClient,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let actor = Actor::ApiToken(client.token_id);
    subscribers::erase(&state.pool, &actor, subscriber_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
