//! `/api/v1/news`: the news desk. The fields of an update's inline news items plus `id`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{ApiClient, ApiError, ApiJson};
use crate::app::AppState;
use crate::domain::NewsItemInput;
use crate::ops::news::{self, NewsError, NewsFilter};
use crate::ops::Actor;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/news", get(list).post(create))
        .route("/news/{id}", get(show).patch(change).delete(remove))
        .route("/news/{id}/approve", axum::routing::post(approve))
}

fn news_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse().map_err(|_| ApiError::News(NewsError::NotFound))
}

#[derive(Deserialize)]
struct ListQuery {
    topic: Option<String>,
    #[serde(default)]
    unsent: bool,
    /// `awaiting_review` for the items waiting for a member of staff.
    status: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    _: ApiClient,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::Status(StatusCode::BAD_REQUEST, e.body_text()))?;
    let awaiting_review_only = match q.status.as_deref() {
        None | Some("") => false,
        Some("awaiting_review") => true,
        Some(other) => {
            return Err(ApiError::Status(
                StatusCode::BAD_REQUEST,
                format!("status {other:?}: only awaiting_review can be asked for"),
            ))
        }
    };
    let filter = NewsFilter {
        topic: q.topic,
        unsent_only: q.unsent,
        awaiting_review_only,
    };
    let items = news::list(&state.pool, &filter).await?;
    Ok(Json(json!({ "news": items })))
}

async fn create(
    State(state): State<AppState>,
    client: ApiClient,
    ApiJson(input): ApiJson<NewsItemInput>,
) -> Result<Response, ApiError> {
    let record = news::add(&state.pool, &Actor::ApiToken(client.token_id), &input).await?;
    Ok((StatusCode::CREATED, Json(record)).into_response())
}

async fn show(
    State(state): State<AppState>,
    _: ApiClient,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(news::get(&state.pool, news_id(&id)?).await?).into_response())
}

/// Fields present in the body replace the item's; absent ones stay.
async fn change(
    State(state): State<AppState>,
    _: ApiClient,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<serde_json::Map<String, Value>>,
) -> Result<Response, ApiError> {
    let id = news_id(&id)?;
    let current = news::get(&state.pool, id).await?;
    let mut merged =
        serde_json::to_value(current.as_input()).map_err(|e| ApiError::Internal(e.into()))?;
    if let Value::Object(fields) = &mut merged {
        fields.extend(patch);
    }
    let input: NewsItemInput = serde_json::from_value(merged).map_err(|e| {
        ApiError::Status(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("The body does not fit: {e}"),
        )
    })?;
    Ok(Json(news::edit(&state.pool, id, &input).await?).into_response())
}

async fn approve(
    State(state): State<AppState>,
    _: ApiClient,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(news::approve(&state.pool, news_id(&id)?).await?).into_response())
}

async fn remove(
    State(state): State<AppState>,
    _: ApiClient,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    news::delete(&state.pool, news_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
