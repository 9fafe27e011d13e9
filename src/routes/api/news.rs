//! `/api/v1/news`: the news desk. The fields of an update's inline news items plus `id`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Always, ApiClient, ApiError, ApiJson, BadQuery, ErrorBody, JsonBody, NotFound};
use crate::app::AppState;
use crate::domain::NewsItemInput;
use crate::ops::news::{self, NewsError, NewsFilter, NewsRecord};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, change, remove))
        .routes(routes!(approve))
}

/// The path parameter naming a news item.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct NewsId {
    /// The news item's id.
    id: Uuid,
}

fn news_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse().map_err(|_| ApiError::News(NewsError::NotFound))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only the items of this topic.
    topic: Option<String>,
    /// Only the items no update that has started sending carries.
    #[serde(default)]
    unsent: bool,
    /// `awaiting_review` for the items waiting for a member of staff.
    status: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct NewsList {
    news: Vec<NewsRecord>,
}

/// The news desk's items, newest first.
#[utoipa::path(
    get,
    path = "/news",
    tag = "news",
    params(ListQuery),
    responses(
        (status = 200, description = "The items.", body = NewsList),
        (status = 422, description = "An invalid topic.", body = ErrorBody),
        Always, BadQuery
    )
)]
async fn list(
    State(state): State<AppState>,
    _: ApiClient,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<NewsList>, ApiError> {
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
    Ok(Json(NewsList { news: items }))
}

/// Adds an item to the desk, approved. Title up to 300 characters, summary 2,000, source 100,
/// URL 2,048 (http or https), `published_on` as `YYYY-MM-DD`.
#[utoipa::path(
    post,
    path = "/news",
    tag = "news",
    request_body = NewsItemInput,
    responses(
        (status = 201, description = "The new item.", body = NewsRecord),
        Always, JsonBody
    )
)]
async fn create(
    State(state): State<AppState>,
    client: ApiClient,
    ApiJson(input): ApiJson<NewsItemInput>,
) -> Result<Response, ApiError> {
    let record = news::add(&state.pool, &client.actor(), &input).await?;
    Ok((StatusCode::CREATED, Json(record)).into_response())
}

/// One news item.
#[utoipa::path(
    get,
    path = "/news/{id}",
    tag = "news",
    params(NewsId),
    responses((status = 200, description = "The item.", body = NewsRecord), Always, NotFound)
)]
async fn show(
    State(state): State<AppState>,
    _: ApiClient,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(news::get(&state.pool, news_id(&id)?).await?).into_response())
}

/// Changes an item: the fields of `NewsItemInput` present in the body replace the item's,
/// absent ones stay.
#[utoipa::path(
    patch,
    path = "/news/{id}",
    tag = "news",
    params(NewsId),
    request_body(content = serde_json::Value,
        description = "Any of the fields of `NewsItemInput`, with their limits."),
    responses(
        (status = 200, description = "The changed item.", body = NewsRecord),
        Always, JsonBody, NotFound
    )
)]
async fn change(
    State(state): State<AppState>,
    client: ApiClient,
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
    Ok(Json(news::edit(&state.pool, &client.actor(), id, &input).await?).into_response())
}

/// Approves an item awaiting review, so updates and digests may carry it.
#[utoipa::path(
    post,
    path = "/news/{id}/approve",
    tag = "news",
    params(NewsId),
    responses((status = 200, description = "The approved item.", body = NewsRecord),
        Always, NotFound)
)]
async fn approve(
    State(state): State<AppState>,
    client: ApiClient,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let approved = news::approve(&state.pool, &client.actor(), news_id(&id)?).await?;
    Ok(Json(approved).into_response())
}

/// Deletes an item from the desk (updates that carry a copy keep it).
#[utoipa::path(
    delete,
    path = "/news/{id}",
    tag = "news",
    params(NewsId),
    responses((status = 204, description = "Deleted."), Always, NotFound)
)]
async fn remove(
    State(state): State<AppState>,
    client: ApiClient,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    news::delete(&state.pool, &client.actor(), news_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
