//! `/api/v1/feeds`: feeds the worker polls into the news desk; `/api/v1/digests`: digest
//! schedules; `/api/v1/updates/{id}/archive`: an update in or out of the public archive. Both take the fields of `ops::feeds::FeedInput` / `ops::digests::DigestInput`; a
//! PATCH changes the fields it names.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use uuid::Uuid;

use super::{ApiClient, ApiError, ApiJson};
use crate::app::AppState;
use crate::ops::digests::{self, DigestError, DigestInput};
use crate::ops::feeds::{self, FeedError, FeedInput};
use crate::ops::updates::UpdateError;
use crate::ops::{archive, Actor};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ArchiveState {
    in_archive: bool,
}

fn update_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::Update(UpdateError::NotFound))
}

/// `{"in_archive": bool}`: whether the update is (or will be) in the public archive.
async fn archive_state(
    State(state): State<AppState>,
    _: ApiClient,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = update_id(&id)?;
    let listed = archive::is_listed(&state.pool, id).await?;
    Ok(Json(json!({ "id": id, "in_archive": listed })).into_response())
}

async fn set_archive_state(
    State(state): State<AppState>,
    client: ApiClient,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ArchiveState>,
) -> Result<Response, ApiError> {
    let id = update_id(&id)?;
    archive::set_listed(
        &state.pool,
        &Actor::ApiToken(client.token_id),
        id,
        body.in_archive,
    )
    .await?;
    Ok(Json(json!({ "id": id, "in_archive": body.in_archive })).into_response())
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/feeds", get(list_feeds).post(add_feed))
        .route(
            "/feeds/{id}",
            get(show_feed).patch(change_feed).delete(remove_feed),
        )
        .route(
            "/updates/{id}/archive",
            get(archive_state).put(set_archive_state),
        )
        .route("/digests", get(list_digests).post(add_digest))
        .route(
            "/digests/{id}",
            get(show_digest).patch(change_digest).delete(remove_digest),
        )
}

fn feed_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse().map_err(|_| ApiError::Feed(FeedError::NotFound))
}

fn digest_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::Digest(DigestError::NotFound))
}

async fn list_feeds(State(state): State<AppState>, _: ApiClient) -> Result<Response, ApiError> {
    let feeds = feeds::list(&state.pool).await?;
    Ok(Json(json!({ "feeds": feeds })).into_response())
}

async fn add_feed(
    State(state): State<AppState>,
    client: ApiClient,
    ApiJson(input): ApiJson<FeedInput>,
) -> Result<Response, ApiError> {
    let feed = feeds::add(&state.pool, &Actor::ApiToken(client.token_id), &input).await?;
    Ok((StatusCode::CREATED, Json(feed)).into_response())
}

async fn show_feed(
    State(state): State<AppState>,
    _: ApiClient,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(feeds::get(&state.pool, feed_id(&id)?).await?).into_response())
}

async fn change_feed(
    State(state): State<AppState>,
    _: ApiClient,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<FeedInput>,
) -> Result<Response, ApiError> {
    Ok(Json(feeds::change(&state.pool, feed_id(&id)?, patch).await?).into_response())
}

async fn remove_feed(
    State(state): State<AppState>,
    _: ApiClient,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    feeds::remove(&state.pool, feed_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_digests(State(state): State<AppState>, _: ApiClient) -> Result<Response, ApiError> {
    let digests = digests::list(&state.pool).await?;
    Ok(Json(json!({ "digests": digests })).into_response())
}

async fn add_digest(
    State(state): State<AppState>,
    client: ApiClient,
    ApiJson(input): ApiJson<DigestInput>,
) -> Result<Response, ApiError> {
    let digest = digests::create(
        &state.pool,
        &state.settings,
        &state.mail_templates.cached(),
        &Actor::ApiToken(client.token_id),
        &input,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(digest)).into_response())
}

async fn show_digest(
    State(state): State<AppState>,
    _: ApiClient,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(digests::view(&state.pool, digest_id(&id)?).await?).into_response())
}

async fn change_digest(
    State(state): State<AppState>,
    client: ApiClient,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<DigestInput>,
) -> Result<Response, ApiError> {
    let digest = digests::change(
        &state.pool,
        &state.settings,
        &state.mail_templates.cached(),
        &Actor::ApiToken(client.token_id),
        digest_id(&id)?,
        patch,
    )
    .await?;
    Ok(Json(digest).into_response())
}

async fn remove_digest(
    State(state): State<AppState>,
    client: ApiClient,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    digests::remove(
        &state.pool,
        &Actor::ApiToken(client.token_id),
        digest_id(&id)?,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
