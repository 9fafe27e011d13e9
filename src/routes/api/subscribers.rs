//! `/api/v1/subscribers`: search (keyset pages), one person's record, add as confirmed with a
//! consent source, change, unsubscribe, erase, and the CSV export. The rules are in
//! `ops::subscribers`, shared with the staff area.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Always, ApiClient, ApiError, ApiJson, BadQuery, ErrorBody, JsonBody, NotFound};
use crate::app::AppState;
use crate::ops::subscribers::{
    self, EditInput, NewSubscriberInput, SearchPage, SearchQuery, SubscriberDetail, SubscriberError,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search, create))
        .routes(routes!(export))
        .routes(routes!(show, change, erase))
        .routes(routes!(unsubscribe))
}

/// The path parameter naming a subscriber.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct SubscriberId {
    /// The subscriber's id.
    id: Uuid,
}

fn subscriber_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::Subscriber(SubscriberError::NotFound))
}

fn query(q: Result<Query<SearchQuery>, QueryRejection>) -> Result<SearchQuery, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::Status(StatusCode::BAD_REQUEST, e.body_text()))
}

/// Searches subscribers, newest first, a keyset page at a time.
#[utoipa::path(
    get,
    path = "/subscribers",
    tag = "subscribers",
    params(SearchQuery),
    responses(
        (status = 200, description = "One page.", body = SearchPage),
        (status = 422, description = "An invalid filter (`errors` names it).", body = ErrorBody),
        Always, BadQuery
    )
)]
async fn search(
    State(state): State<AppState>,
    _: ApiClient,
    q: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let page = subscribers::search(&state.pool, &query(q)?).await?;
    Ok(Json(page).into_response())
}

/// The subscribers matching the filters as CSV
/// (`email,name,status,state,created_at,lists,pending_lists`, cells that a spreadsheet would
/// run as a formula, or that start with `'`, prefixed with `'`): a file `POST /imports` takes
/// back as it was. Admin rights; recorded in the audit log. `after` and `limit` are ignored.
#[utoipa::path(
    get,
    path = "/subscribers/export",
    security(("api_token" = ["send"])),
    tag = "subscribers",
    params(SearchQuery),
    responses(
        (status = 200, description = "The CSV file.", content_type = "text/csv",
            body = String),
        (status = 422, description = "An invalid filter (`errors` names it).", body = ErrorBody),
        Always, BadQuery
    )
)]
async fn export(
    State(state): State<AppState>,
    client: ApiClient,
    q: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let actor = client.actor();
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

/// One subscriber: profile, lists, consent log and their newest 200 deliveries.
#[utoipa::path(
    get,
    path = "/subscribers/{id}",
    tag = "subscribers",
    params(SubscriberId),
    responses((status = 200, description = "The subscriber.", body = SubscriberDetail),
        Always, NotFound)
)]
async fn show(
    State(state): State<AppState>,
    _: ApiClient,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let detail = subscribers::get(&state.pool, subscriber_id(&id)?).await?;
    Ok(Json(detail).into_response())
}

/// Adds someone as confirmed with the consent `source` staff state (required, at most 500
/// characters), on the lists named (the default lists when none). An erased, unsubscribed,
/// bounced or complained address is refused.
#[utoipa::path(
    post,
    path = "/subscribers",
    security(("api_token" = ["send"])),
    tag = "subscribers",
    request_body = NewSubscriberInput,
    responses(
        (status = 201, description = "The subscriber.", body = SubscriberDetail),
        Always, JsonBody
    )
)]
async fn create(
    State(state): State<AppState>,
    client: ApiClient,
    ApiJson(input): ApiJson<NewSubscriberInput>,
) -> Result<Response, ApiError> {
    let actor = client.actor();
    let detail = subscribers::create(&state.pool, &actor, &input).await?;
    Ok((StatusCode::CREATED, Json(detail)).into_response())
}

/// Changes a subscriber's name, state or lists (`lists` absent: the lists stay).
#[utoipa::path(
    patch,
    path = "/subscribers/{id}",
    security(("api_token" = ["send"])),
    tag = "subscribers",
    params(SubscriberId),
    request_body = EditInput,
    responses((status = 200, description = "The subscriber.", body = SubscriberDetail),
        Always, JsonBody, NotFound)
)]
async fn change(
    State(state): State<AppState>,
    client: ApiClient,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<EditInput>,
) -> Result<Response, ApiError> {
    let actor = client.actor();
    let detail = subscribers::edit(&state.pool, &actor, subscriber_id(&id)?, &input).await?;
    Ok(Json(detail).into_response())
}

#[derive(Serialize, ToSchema)]
struct Unsubscribed {
    /// Always true: the subscriber is unsubscribed now.
    unsubscribed: bool,
    /// False when they were unsubscribed already.
    changed: bool,
}

/// Unsubscribes someone from every list, as their own unsubscribe would.
#[utoipa::path(
    post,
    path = "/subscribers/{id}/unsubscribe",
    security(("api_token" = ["send"])),
    tag = "subscribers",
    params(SubscriberId),
    responses((status = 200, description = "Unsubscribed.", body = Unsubscribed),
        Always, NotFound)
)]
async fn unsubscribe(
    State(state): State<AppState>,
    client: ApiClient,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let actor = client.actor();
    let changed = subscribers::unsubscribe(&state.pool, &actor, subscriber_id(&id)?).await?;
    Ok(Json(Unsubscribed {
        unsubscribed: true,
        changed,
    })
    .into_response())
}

/// Erases someone (admin rights): the same erasure as their own; only a hash of the address
/// stays, in the suppression list.
#[utoipa::path(
    delete,
    path = "/subscribers/{id}",
    security(("api_token" = ["send"])),
    tag = "subscribers",
    params(SubscriberId),
    responses(
        (status = 204, description = "Erased."),
        Always, NotFound
    )
)]
async fn erase(
    State(state): State<AppState>,
    client: ApiClient,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let actor = client.actor();
    subscribers::erase(&state.pool, &actor, subscriber_id(&id)?, true).await?;
    Ok(StatusCode::NO_CONTENT)
}
