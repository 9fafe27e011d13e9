//! The JSON API under `/api/v1`, authenticated with bearer tokens
//! (`newsletter api-token create --name NAME`). Errors are `{"error": "..."}`, with `"errors"`
//! per field for 422.

mod lists;
mod news;
mod updates;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::json;
use uuid::Uuid;

use crate::app::AppState;
use crate::domain::{FieldErrors, Token};
use crate::ops::news::NewsError;
use crate::store;
use crate::updates::UpdateError;

/// Largest API request body (an update with 50 long news items fits).
pub const MAX_API_BODY_BYTES: usize = 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .nest(
            "/api/v1",
            updates::router()
                .merge(lists::router())
                .merge(news::router()),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_API_BODY_BYTES))
}

/// The API token a request was made with.
pub struct ApiClient {
    pub token_id: Uuid,
}

impl FromRequestParts<AppState> for ApiClient {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let raw = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized)?;
        let token = Token::parse(raw.trim()).map_err(|_| ApiError::Unauthorized)?;
        let token_id = store::api_tokens::authenticate(&state.pool, &token.hash())
            .await
            .map_err(|e| ApiError::Internal(e.into()))?
            .ok_or(ApiError::Unauthorized)?;
        Ok(Self { token_id })
    }
}

/// A JSON body: 415 without the JSON content type, 400 when it does not parse, 422 when it
/// parses but has the wrong shape.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case("application/json")
            });
        if !is_json {
            return Err(ApiError::Status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Send application/json.".into(),
            ));
        }
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|r| ApiError::Status(r.status(), r.body_text()))?;
        serde_json::from_slice(&body).map(ApiJson).map_err(|e| {
            use serde_json::error::Category;
            match e.classify() {
                Category::Data => ApiError::Status(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("The body does not fit: {e}"),
                ),
                _ => ApiError::Status(
                    StatusCode::BAD_REQUEST,
                    format!("The body is not valid JSON: {e}"),
                ),
            }
        })
    }
}

#[derive(Debug)]
pub enum ApiError {
    Unauthorized,
    Status(StatusCode, String),
    Update(UpdateError),
    News(NewsError),
    Internal(anyhow::Error),
}

impl From<NewsError> for ApiError {
    fn from(e: NewsError) -> Self {
        Self::News(e)
    }
}

impl From<UpdateError> for ApiError {
    fn from(e: UpdateError) -> Self {
        Self::Update(e)
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn invalid(errors: &FieldErrors) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({ "error": "invalid input", "errors": errors })),
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Unauthorized => {
                let mut r = error(
                    StatusCode::UNAUTHORIZED,
                    "A valid API token is needed: Authorization: Bearer <token>.",
                );
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
                r
            }
            ApiError::Status(status, message) => error(status, &message),
            ApiError::Update(UpdateError::NotFound) => {
                error(StatusCode::NOT_FOUND, "No such update.")
            }
            ApiError::Update(UpdateError::Invalid(errors)) => invalid(&errors),
            ApiError::Update(e @ UpdateError::Conflict(_)) => {
                error(StatusCode::CONFLICT, &e.to_string())
            }
            ApiError::Update(UpdateError::Forbidden(message)) => {
                error(StatusCode::FORBIDDEN, &message)
            }
            ApiError::Update(UpdateError::Refused(message)) => {
                error(StatusCode::UNPROCESSABLE_ENTITY, &message)
            }
            ApiError::News(NewsError::NotFound) => {
                error(StatusCode::NOT_FOUND, "No such news item.")
            }
            ApiError::News(NewsError::Invalid(message)) => {
                error(StatusCode::UNPROCESSABLE_ENTITY, &message)
            }
            ApiError::Update(UpdateError::Internal(e))
            | ApiError::News(NewsError::Internal(e))
            | ApiError::Internal(e) => super::AppError(e).into_response(),
        }
    }
}
