//! `/api/v1/lists`: national and local-alliance lists; `POST /lists/{slug}/archive` and
//! `/unarchive` close and reopen one (200 with the list). The rules are in `ops::lists`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Always, ApiClient, ApiError, ApiJson, ErrorBody, JsonBody, NotFound};
use crate::app::AppState;
use crate::ops::lists::{self, ListInput, ListRecord};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(index, create))
        .routes(routes!(show, replace))
        .routes(routes!(archive))
        .routes(routes!(unarchive))
}

/// The path parameter naming a list.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct Slug {
    /// The list's slug (lower-case letters, digits and hyphens).
    slug: String,
}

#[derive(Serialize, ToSchema)]
struct Lists {
    lists: Vec<ListRecord>,
}

/// Every list with its confirmed count.
#[utoipa::path(
    get,
    path = "/lists",
    tag = "lists",
    responses((status = 200, description = "The lists.", body = Lists), Always)
)]
async fn index(State(state): State<AppState>, _: ApiClient) -> Result<Json<Lists>, ApiError> {
    Ok(Json(Lists {
        lists: lists::all(&state.pool).await?,
    }))
}

/// One list.
#[utoipa::path(
    get,
    path = "/lists/{slug}",
    tag = "lists",
    params(Slug),
    responses((status = 200, description = "The list.", body = ListRecord), Always, NotFound)
)]
async fn show(
    State(state): State<AppState>,
    _: ApiClient,
    Path(slug): Path<String>,
) -> Result<Json<ListRecord>, ApiError> {
    Ok(Json(lists::get(&state.pool, &slug).await?))
}

/// Creates a list; `slug` defaults to one made from `name`.
#[utoipa::path(
    post,
    path = "/lists",
    security(("api_token" = ["send"])),
    tag = "lists",
    request_body = ListInput,
    responses(
        (status = 201, description = "The list.", body = ListRecord),
        (status = 409, description = "A list with this slug exists.", body = ErrorBody),
        Always, JsonBody
    )
)]
async fn create(
    State(state): State<AppState>,
    client: ApiClient,
    ApiJson(input): ApiJson<ListInput>,
) -> Result<Response, ApiError> {
    let list = lists::create(&state.pool, &client.actor(), &input).await?;
    Ok((StatusCode::CREATED, Json(list)).into_response())
}

/// Replaces a list's name, description, flags and state (its slug stays).
#[utoipa::path(
    put,
    path = "/lists/{slug}",
    security(("api_token" = ["send"])),
    tag = "lists",
    params(Slug),
    request_body = ListInput,
    responses((status = 200, description = "The list.", body = ListRecord),
        Always, JsonBody, NotFound)
)]
async fn replace(
    State(state): State<AppState>,
    client: ApiClient,
    Path(slug): Path<String>,
    ApiJson(input): ApiJson<ListInput>,
) -> Result<Json<ListRecord>, ApiError> {
    Ok(Json(
        lists::update(&state.pool, &client.actor(), &slug, &input).await?,
    ))
}

/// Archives a list: it takes no sign-ups, imports or updates from now on, and an update
/// scheduled for it does not start; its members and history stay. Admins only.
#[utoipa::path(
    post,
    path = "/lists/{slug}/archive",
    security(("api_token" = ["send"])),
    tag = "lists",
    params(Slug),
    responses(
        (status = 200, description = "The list, archived.", body = ListRecord),
        Always, NotFound
    )
)]
async fn archive(
    State(state): State<AppState>,
    client: ApiClient,
    Path(slug): Path<String>,
) -> Result<Json<ListRecord>, ApiError> {
    let actor = client.actor();
    Ok(Json(
        lists::set_archived(&state.pool, &actor, &slug, true).await?,
    ))
}

/// Reopens an archived list. Admins only.
#[utoipa::path(
    post,
    path = "/lists/{slug}/unarchive",
    security(("api_token" = ["send"])),
    tag = "lists",
    params(Slug),
    responses(
        (status = 200, description = "The list, open again.", body = ListRecord),
        Always, NotFound
    )
)]
async fn unarchive(
    State(state): State<AppState>,
    client: ApiClient,
    Path(slug): Path<String>,
) -> Result<Json<ListRecord>, ApiError> {
    let actor = client.actor();
    Ok(Json(
        lists::set_archived(&state.pool, &actor, &slug, false).await?,
    ))
}
