//! `/api/v1/feeds`: feeds the worker polls into the news desk; `/api/v1/digests`: digest
//! schedules; `/api/v1/updates/{id}/archive`: an update in or out of the public archive. Both take the fields of `ops::feeds::FeedInput` / `ops::digests::DigestInput`; a
//! PATCH changes the fields it names.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Always, ApiClient, ApiError, ApiJson, JsonBody, NotFound};
use crate::app::AppState;
use crate::ops::archive;
use crate::ops::digests::{self, DigestError, DigestInput, DigestView};
use crate::ops::feeds::{self, FeedError, FeedInput, FeedRecord};
use crate::ops::updates::UpdateError;

#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ArchiveState {
    /// Whether the update is (or, once sent, will be) listed in the public archive.
    in_archive: bool,
}

#[derive(Serialize, ToSchema)]
struct ArchiveView {
    id: Uuid,
    in_archive: bool,
}

/// The path parameter naming a record.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct Id {
    /// The record's id.
    id: Uuid,
}

fn update_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::Update(UpdateError::NotFound))
}

/// Whether the update is (or will be) in the public archive.
#[utoipa::path(
    get,
    path = "/updates/{id}/archive",
    tag = "updates",
    params(Id),
    responses((status = 200, description = "Its archive state.", body = ArchiveView),
        Always, NotFound)
)]
async fn archive_state(
    State(state): State<AppState>,
    _: ApiClient,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = update_id(&id)?;
    let listed = archive::is_listed(&state.pool, id).await?;
    Ok(Json(ArchiveView {
        id,
        in_archive: listed,
    })
    .into_response())
}

/// Puts the update in the public archive or takes it out (recorded in the audit log).
#[utoipa::path(
    put,
    path = "/updates/{id}/archive",
    security(("api_token" = ["send"])),
    tag = "updates",
    params(Id),
    request_body = ArchiveState,
    responses((status = 200, description = "Its archive state.", body = ArchiveView),
        Always, JsonBody, NotFound)
)]
async fn set_archive_state(
    State(state): State<AppState>,
    client: ApiClient,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ArchiveState>,
) -> Result<Response, ApiError> {
    let id = update_id(&id)?;
    archive::set_listed(&state.pool, &client.actor(), id, body.in_archive).await?;
    Ok(Json(ArchiveView {
        id,
        in_archive: body.in_archive,
    })
    .into_response())
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_feeds, add_feed))
        .routes(routes!(show_feed, change_feed, remove_feed))
        .routes(routes!(archive_state, set_archive_state))
        .routes(routes!(list_digests, add_digest))
        .routes(routes!(show_digest, change_digest, remove_digest))
}

fn feed_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse().map_err(|_| ApiError::Feed(FeedError::NotFound))
}

fn digest_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::Digest(DigestError::NotFound))
}

#[derive(Serialize, ToSchema)]
struct FeedList {
    feeds: Vec<FeedRecord>,
}

/// The feeds followed, each with its polling state.
#[utoipa::path(
    get,
    path = "/feeds",
    tag = "feeds",
    responses((status = 200, description = "The feeds.", body = FeedList), Always)
)]
async fn list_feeds(State(state): State<AppState>, _: ApiClient) -> Result<Response, ApiError> {
    let feeds = feeds::list(&state.pool).await?;
    Ok(Json(FeedList { feeds }).into_response())
}

/// Follows a feed: `url` (http or https, at most 2,048 characters, no user name or password)
/// is required; it is polled from the next minute on.
#[utoipa::path(
    post,
    path = "/feeds",
    tag = "feeds",
    request_body = FeedInput,
    responses((status = 201, description = "The feed.", body = FeedRecord), Always, JsonBody)
)]
async fn add_feed(
    State(state): State<AppState>,
    client: ApiClient,
    ApiJson(input): ApiJson<FeedInput>,
) -> Result<Response, ApiError> {
    let feed = feeds::add(&state.pool, &client.actor(), &input).await?;
    Ok((StatusCode::CREATED, Json(feed)).into_response())
}

/// One feed with its polling state.
#[utoipa::path(
    get,
    path = "/feeds/{id}",
    tag = "feeds",
    params(Id),
    responses((status = 200, description = "The feed.", body = FeedRecord), Always, NotFound)
)]
async fn show_feed(
    State(state): State<AppState>,
    _: ApiClient,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(feeds::get(&state.pool, feed_id(&id)?).await?).into_response())
}

/// Changes a feed: the fields given replace the feed's, absent ones stay.
#[utoipa::path(
    patch,
    path = "/feeds/{id}",
    tag = "feeds",
    params(Id),
    request_body = FeedInput,
    responses((status = 200, description = "The feed.", body = FeedRecord),
        Always, JsonBody, NotFound)
)]
async fn change_feed(
    State(state): State<AppState>,
    client: ApiClient,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<FeedInput>,
) -> Result<Response, ApiError> {
    let feed = feeds::change(&state.pool, &client.actor(), feed_id(&id)?, patch).await?;
    Ok(Json(feed).into_response())
}

/// Stops following a feed; the news items it brought stay on the desk.
#[utoipa::path(
    delete,
    path = "/feeds/{id}",
    tag = "feeds",
    params(Id),
    responses((status = 204, description = "Removed."), Always, NotFound)
)]
async fn remove_feed(
    State(state): State<AppState>,
    client: ApiClient,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    feeds::remove(&state.pool, &client.actor(), feed_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
struct DigestList {
    digests: Vec<DigestView>,
}

/// The digest schedules, each with its next occurrences and past runs.
#[utoipa::path(
    get,
    path = "/digests",
    tag = "digests",
    responses((status = 200, description = "The schedules.", body = DigestList), Always)
)]
async fn list_digests(State(state): State<AppState>, _: ApiClient) -> Result<Response, ApiError> {
    let digests = digests::list(&state.pool).await?;
    Ok(Json(DigestList { digests }).into_response())
}

/// Creates a digest schedule: `name`, `lists` and `recurrence` are required.
#[utoipa::path(
    post,
    path = "/digests",
    tag = "digests",
    request_body = DigestInput,
    responses(
        (status = 201, description = "The schedule.", body = DigestView),
        Always, JsonBody
    )
)]
async fn add_digest(
    State(state): State<AppState>,
    client: ApiClient,
    ApiJson(input): ApiJson<DigestInput>,
) -> Result<Response, ApiError> {
    let digest = digests::create(
        &state.pool,
        &state.settings,
        &state.mail_templates.cached(),
        &client.actor(),
        &input,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(digest)).into_response())
}

/// One digest schedule.
#[utoipa::path(
    get,
    path = "/digests/{id}",
    tag = "digests",
    params(Id),
    responses((status = 200, description = "The schedule.", body = DigestView),
        Always, NotFound)
)]
async fn show_digest(
    State(state): State<AppState>,
    _: ApiClient,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(digests::view(&state.pool, digest_id(&id)?).await?).into_response())
}

/// Changes a schedule: the fields given replace its own, absent ones stay.
#[utoipa::path(
    patch,
    path = "/digests/{id}",
    tag = "digests",
    params(Id),
    request_body = DigestInput,
    responses(
        (status = 200, description = "The schedule.", body = DigestView),
        Always, JsonBody, NotFound
    )
)]
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
        &client.actor(),
        digest_id(&id)?,
        patch,
    )
    .await?;
    Ok(Json(digest).into_response())
}

/// Deletes a schedule; the updates it built stay.
#[utoipa::path(
    delete,
    path = "/digests/{id}",
    tag = "digests",
    params(Id),
    responses(
        (status = 204, description = "Deleted."),
        Always, NotFound
    )
)]
async fn remove_digest(
    State(state): State<AppState>,
    client: ApiClient,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    digests::remove(&state.pool, &client.actor(), digest_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
