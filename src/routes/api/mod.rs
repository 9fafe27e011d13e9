//! The JSON API under `/api/v1`, authenticated with bearer tokens
//! (`newsletter api-token create --name NAME`). Errors are `{"error": "..."}`, with `"errors"`
//! per field for 422.

mod bounces;
mod feeds;
mod imports;
mod lists;
mod news;
mod subscribers;
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
use crate::ops::digests::DigestError;
use crate::ops::feeds::FeedError;
use crate::ops::imports::ImportError;
use crate::ops::lists::ListError;
use crate::ops::news::NewsError;
use crate::ops::subscribers::SubscriberError;
use crate::ops::updates::UpdateError;
use crate::store;

/// Largest API request body (an update with 50 long news items fits).
pub const MAX_API_BODY_BYTES: usize = 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .nest(
            "/api/v1",
            updates::router()
                .merge(lists::router())
                .merge(news::router())
                .merge(bounces::router())
                .merge(feeds::router())
                .merge(subscribers::router())
                .merge(imports::router())
                .fallback(not_found)
                .layer(axum::middleware::from_fn(json_errors)),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_API_BODY_BYTES))
}

async fn not_found() -> ApiError {
    ApiError::Status(StatusCode::NOT_FOUND, "No such route in /api/v1.".into())
}

/// Most bytes of a non-JSON error body carried over into the JSON one.
const MAX_ERROR_TEXT: usize = 4096;

/// Every error answer of the API is JSON: one that is not (a rejection by an extractor, a 405
/// for a known route with another method) becomes `{"error": "<its text>"}`.
async fn json_errors(request: Request, next: axum::middleware::Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_ERROR_TEXT)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let mut json = error(status, &message);
    for (name, value) in parts.headers {
        if let Some(name) =
            name.filter(|n| *n != header::CONTENT_TYPE && *n != header::CONTENT_LENGTH)
        {
            json.headers_mut().insert(name, value);
        }
    }
    json
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
            .and_then(bearer)
            .ok_or(ApiError::Unauthorized)?;
        let token = Token::parse(raw.trim()).map_err(|_| ApiError::Unauthorized)?;
        let token_id = store::api_tokens::authenticate(&state.pool, &token.hash())
            .await
            .map_err(|e| ApiError::Internal(e.into()))?
            .ok_or(ApiError::Unauthorized)?;
        Ok(Self { token_id })
    }
}

/// The credentials of an `Authorization: Bearer <token>` value; the scheme is matched without
/// regard to case (RFC 9110 §11.1).
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, credentials) = value.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.trim())
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
        let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            ApiError::Status(
                StatusCode::BAD_REQUEST,
                format!("The body is not valid JSON: {e}"),
            )
        })?;
        if let Some(field) = nul_in(&value, "") {
            let message = format!("`{field}` contains a NUL character, which cannot be stored.");
            return Err(ApiError::Fields(std::collections::BTreeMap::from([(
                field, message,
            )])));
        }
        serde_json::from_value(value).map(ApiJson).map_err(|e| {
            ApiError::Status(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("The body does not fit: {e}"),
            )
        })
    }
}

/// The path (`news_items[2].title`) of the first key or string in `value` that holds a NUL.
fn nul_in(value: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(s) if s.contains('\0') => Some(if path.is_empty() {
            "body".to_owned()
        } else {
            path.to_owned()
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_in(v, &format!("{path}[{i}]"))),
        Value::Object(fields) => fields.iter().find_map(|(k, v)| {
            let here = if path.is_empty() {
                k.replace('\0', "\u{FFFD}")
            } else {
                format!("{path}.{}", k.replace('\0', "\u{FFFD}"))
            };
            if k.contains('\0') {
                Some(here)
            } else {
                nul_in(v, &here)
            }
        }),
        _ => None,
    }
}

#[derive(Debug)]
pub enum ApiError {
    Unauthorized,
    Status(StatusCode, String),
    /// 422 with a message per field, named by its path in the body.
    Fields(std::collections::BTreeMap<String, String>),
    Update(UpdateError),
    News(NewsError),
    Feed(FeedError),
    Digest(DigestError),
    Subscriber(SubscriberError),
    Import(ImportError),
    List(ListError),
    Internal(anyhow::Error),
}

impl From<FeedError> for ApiError {
    fn from(e: FeedError) -> Self {
        Self::Feed(e)
    }
}

impl From<DigestError> for ApiError {
    fn from(e: DigestError) -> Self {
        Self::Digest(e)
    }
}

impl From<ListError> for ApiError {
    fn from(e: ListError) -> Self {
        Self::List(e)
    }
}

impl From<ImportError> for ApiError {
    fn from(e: ImportError) -> Self {
        Self::Import(e)
    }
}

impl From<SubscriberError> for ApiError {
    fn from(e: SubscriberError) -> Self {
        Self::Subscriber(e)
    }
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
            ApiError::Fields(errors) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({ "error": "invalid input", "errors": errors })),
            )
                .into_response(),
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
            ApiError::Feed(FeedError::NotFound) => error(StatusCode::NOT_FOUND, "No such feed."),
            ApiError::Feed(FeedError::Invalid(errors)) => invalid(&errors),
            ApiError::Digest(DigestError::NotFound) => {
                error(StatusCode::NOT_FOUND, "No such digest schedule.")
            }
            ApiError::Digest(DigestError::Invalid(errors)) => invalid(&errors),
            ApiError::Digest(DigestError::Forbidden(message)) => {
                error(StatusCode::FORBIDDEN, &message)
            }
            ApiError::Subscriber(SubscriberError::NotFound) => {
                error(StatusCode::NOT_FOUND, "No such subscriber.")
            }
            ApiError::Subscriber(SubscriberError::Invalid(errors)) => invalid(&errors),
            ApiError::Subscriber(SubscriberError::Forbidden(message)) => {
                error(StatusCode::FORBIDDEN, &message)
            }
            ApiError::Subscriber(SubscriberError::Refused(message)) => {
                error(StatusCode::UNPROCESSABLE_ENTITY, &message)
            }
            ApiError::Import(ImportError::NotFound) => {
                error(StatusCode::NOT_FOUND, "No such import.")
            }
            ApiError::Import(ImportError::Invalid(errors)) => invalid(&errors),
            ApiError::List(ListError::NotFound) => error(StatusCode::NOT_FOUND, "No such list."),
            ApiError::List(ListError::Exists(slug)) => error(
                StatusCode::CONFLICT,
                &format!("A list {slug:?} exists already."),
            ),
            ApiError::List(ListError::Invalid(errors)) => invalid(&errors),
            ApiError::List(ListError::Forbidden(message)) => error(StatusCode::FORBIDDEN, &message),
            ApiError::Update(UpdateError::Internal(e))
            | ApiError::Import(ImportError::Internal(e))
            | ApiError::List(ListError::Internal(e))
            | ApiError::News(NewsError::Internal(e))
            | ApiError::Feed(FeedError::Internal(e))
            | ApiError::Digest(DigestError::Internal(e))
            | ApiError::Subscriber(SubscriberError::Internal(e))
            | ApiError::Internal(e) => {
                let page = super::AppError(e).into_response();
                let message = if page.status() == StatusCode::SERVICE_UNAVAILABLE {
                    "The service is briefly unavailable. Please try again in a moment."
                } else {
                    "Something went wrong on our side."
                };
                let mut json = error(page.status(), message);
                if let Some(retry) = page.headers().get(header::RETRY_AFTER) {
                    json.headers_mut()
                        .insert(header::RETRY_AFTER, retry.clone());
                }
                json
            }
        }
    }
}
