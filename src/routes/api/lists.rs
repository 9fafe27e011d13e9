//! `/api/v1/lists`: national and local-alliance lists.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiClient, ApiError, ApiJson};
use crate::app::AppState;
use crate::domain::{FieldErrors, ListSlug, UsState};
use crate::ops::updates::UpdateError;
use crate::store::lists::{self, ListFields};

/// Longest list name and description.
const MAX_NAME: usize = 200;
const MAX_DESCRIPTION: usize = 2_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/lists", get(index).post(create))
        .route("/lists/{slug}", get(show).put(replace))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListBody {
    slug: Option<String>,
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default = "yes")]
    public: bool,
    state: Option<String>,
    #[serde(default)]
    welcome: bool,
}

fn yes() -> bool {
    true
}

struct Parsed {
    name: String,
    description: String,
    state: Option<UsState>,
}

fn parse(body: &ListBody) -> Result<Parsed, ApiError> {
    let mut errors = FieldErrors::new();
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        errors.insert(
            "name",
            format!("A name has 1 to {MAX_NAME} characters, no line breaks."),
        );
    }
    if body.description.chars().count() > MAX_DESCRIPTION {
        errors.insert(
            "description",
            format!("At most {MAX_DESCRIPTION} characters."),
        );
    }
    let state = UsState::parse(body.state.as_deref().unwrap_or(""))
        .map_err(|e| errors.insert("state", e))
        .ok()
        .flatten();
    if !errors.is_empty() {
        return Err(UpdateError::Invalid(errors).into());
    }
    Ok(Parsed {
        name: name.to_owned(),
        description: body.description.trim().to_owned(),
        state,
    })
}

fn fields<'a>(p: &'a Parsed, body: &ListBody) -> ListFields<'a> {
    ListFields {
        name: &p.name,
        description: &p.description,
        public: body.public,
        us_state: p.state.map(UsState::code),
        welcome: body.welcome,
    }
}

fn internal(e: sqlx::Error) -> ApiError {
    ApiError::Internal(e.into())
}

async fn index(State(state): State<AppState>, _: ApiClient) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({ "lists": lists::all(&state.pool).await.map_err(internal)? }),
    ))
}

async fn show(
    State(state): State<AppState>,
    _: ApiClient,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let list = lists::by_slug(&state.pool, &slug).await.map_err(internal)?;
    let list =
        list.ok_or_else(|| ApiError::Status(StatusCode::NOT_FOUND, "No such list.".into()))?;
    Ok(Json(json!(list)))
}

async fn create(
    State(state): State<AppState>,
    _: ApiClient,
    ApiJson(body): ApiJson<ListBody>,
) -> Result<Response, ApiError> {
    let slug = ListSlug::parse(body.slug.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::from(UpdateError::Invalid(FieldErrors::from([("slug", e)]))))?;
    let parsed = parse(&body)?;
    if !lists::create(&state.pool, slug.as_str(), &fields(&parsed, &body))
        .await
        .map_err(internal)?
    {
        return Err(ApiError::Status(
            StatusCode::CONFLICT,
            format!("A list {:?} exists already.", slug.as_str()),
        ));
    }
    let list = lists::by_slug(&state.pool, slug.as_str())
        .await
        .map_err(internal)?;
    Ok((StatusCode::CREATED, Json(json!(list))).into_response())
}

async fn replace(
    State(state): State<AppState>,
    _: ApiClient,
    Path(slug): Path<String>,
    ApiJson(body): ApiJson<ListBody>,
) -> Result<Json<Value>, ApiError> {
    let parsed = parse(&body)?;
    if !lists::update(&state.pool, &slug, &fields(&parsed, &body))
        .await
        .map_err(internal)?
    {
        return Err(ApiError::Status(
            StatusCode::NOT_FOUND,
            "No such list.".into(),
        ));
    }
    Ok(Json(json!(lists::by_slug(&state.pool, &slug)
        .await
        .map_err(internal)?)))
}
