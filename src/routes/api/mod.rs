//! The JSON API under `/api/v1`, authenticated with bearer tokens
//! (`newsletter api-token create --name NAME`). Errors are `{"error": "..."}`, with `"errors"`
//! per field for 422.
//!
//! Every route is registered with `utoipa_axum::routes!` from a handler carrying
//! `#[utoipa::path]`, so the router and the OpenAPI 3.1 document served at
//! `GET /api/v1/openapi.json` (public: no token needed) come from one list. A route added any
//! other way is not served: `only_documented` answers 404 (405 for an undocumented method) for
//! whatever the document does not describe.

mod bounces;
mod feeds;
mod imports;
mod lists;
mod news;
mod subscribers;
mod templates;
mod updates;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router};
use serde::de::DeserializeOwned;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::app::AppState;
use crate::domain::Token;
use crate::ops::digests::DigestError;
use crate::ops::feeds::FeedError;
use crate::ops::imports::ImportError;
use crate::ops::lists::ListError;
use crate::ops::news::NewsError;
use crate::ops::roles::{Forbidden, Rights};
use crate::ops::subscribers::SubscriberError;
use crate::ops::templates::TemplateOpError;
use crate::ops::updates::UpdateError;
use crate::ops::{api_tokens, Actor};

/// Largest API request body (an update with 50 long news items fits).
pub const MAX_API_BODY_BYTES: usize = 1024 * 1024;

/// Where the API lives; the document's paths start with it.
const PREFIX: &str = "/api/v1";

/// The name of the bearer-token security scheme in the document (also written out in
/// `ApiDoc`'s `security`, which takes only a literal).
const BEARER: &str = "api_token";

/// The role an operation's `security` names when only a `send` token (an admin's rights) may
/// call it.
const SEND_ROLE: &str = "send";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "newsletter API",
        description = "Staff operations over JSON: updates (campaigns), the news desk, feeds and \
            digests, lists, subscribers (search, export, erase), CSV imports and bounce reports. \
            Every call but this document's needs `Authorization: Bearer <token>` (made with \
            `newsletter api-token create --name NAME [--scope read|write|send]` or on \
            `/admin/tokens`); a token's scope decides what it may do (`read`: GET only, \
            `write`: an editor's rights, `send`: an admin's; an operation whose `security` \
            names the role `send` refuses any other token `403` before reading its body). \
            Every error answer is JSON (`ErrorBody`)."
    ),
    modifiers(&BearerToken),
    security(("api_token" = [])),
    components(schemas(ErrorBody)),
    tags(
        (name = "updates", description = "Updates (campaigns): write, schedule, send, follow."),
        (name = "news", description = "The news desk."),
        (name = "feeds", description = "Feeds polled into the news desk."),
        (name = "digests", description = "Digest schedules."),
        (name = "lists", description = "Mailing lists."),
        (name = "subscribers", description = "Subscribers and their export."),
        (name = "imports", description = "CSV imports run in the background."),
        (name = "bounces", description = "Bounce and complaint reports."),
        (name = "templates", description = "Mail templates: versions, saving, reverting."),
        (name = "meta", description = "This description."),
    )
)]
struct ApiDoc;

/// Adds the bearer-token security scheme.
struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                BEARER,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(
                            "An API token from `newsletter api-token create --name NAME`.",
                        ))
                        .build(),
                ),
            );
    }
}

/// Every route of the API, each with its description.
fn documented() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(updates::router())
        .merge(lists::router())
        .merge(news::router())
        .merge(bounces::router())
        .merge(feeds::router())
        .merge(subscribers::router())
        .merge(imports::router())
        .merge(templates::router())
}

pub fn router() -> Router<AppState> {
    served(documented())
}

/// `api` nested at `/api/v1` with its document at `/api/v1/openapi.json`, the error handling,
/// and the guard that serves only what the document describes.
fn served<S: Clone + Send + Sync + 'static>(api: OpenApiRouter<S>) -> Router<S> {
    let (routes, paths) = api.routes(routes!(openapi_json)).split_for_parts();
    let document = ApiDoc::openapi().nest(PREFIX, paths);
    let operations = Arc::new(Operations::of(&document));
    Router::new()
        .nest(
            PREFIX,
            routes
                .fallback(not_found)
                .layer(axum::middleware::from_fn_with_state(
                    operations.clone(),
                    only_documented,
                ))
                .layer(Extension(operations))
                .layer(Extension(Arc::new(document)))
                .layer(axum::middleware::from_fn(json_errors)),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_API_BODY_BYTES))
}

/// This API's OpenAPI 3.1 document. Public: it tells what exists, never any data.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    security(()),
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of `/api/v1`.",
            body = serde_json::Value),
        (status = 422, description = "A NUL character in the query.", body = ErrorBody)
    )
)]
async fn openapi_json(Extension(document): Extension<Arc<utoipa::openapi::OpenApi>>) -> Response {
    Json(document.as_ref()).into_response()
}

/// The (method, path) pairs the document describes, paths as axum writes them, each with the
/// least a token's scope must give to be let in: an operation whose `security` names the role
/// `send` is an admin's whatever its body says (the operation checks the role matrix again,
/// with its input: this is only the door, shut before the body is read); any other write needs
/// `write`; a read, `read`.
struct Operations(BTreeMap<(Method, String), Rights>);

impl Operations {
    fn of(document: &utoipa::openapi::OpenApi) -> Self {
        let mut pairs = BTreeMap::new();
        for (path, item) in &document.paths.paths {
            let methods = [
                (Method::GET, item.get.as_ref()),
                (Method::PUT, item.put.as_ref()),
                (Method::POST, item.post.as_ref()),
                (Method::DELETE, item.delete.as_ref()),
                (Method::PATCH, item.patch.as_ref()),
                (Method::HEAD, item.head.as_ref().or(item.get.as_ref())),
                (Method::OPTIONS, item.options.as_ref()),
            ];
            for (method, operation) in methods {
                let Some(operation) = operation else { continue };
                let reads = method == Method::GET || method == Method::HEAD;
                let admins = serde_json::to_value(&operation.security)
                    .ok()
                    .and_then(|v| v.as_array().cloned())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|requirement| requirement[BEARER].as_array())
                    .flatten()
                    .any(|role| role == SEND_ROLE);
                let needs = match (admins, reads) {
                    (true, _) => Rights::Admin,
                    (false, true) => Rights::Read,
                    (false, false) => Rights::Editor,
                };
                pairs.insert((method, path.clone()), needs);
            }
        }
        Self(pairs)
    }

    /// What a token must give for `method` on the matched `path`; `None` when undescribed.
    fn needs(&self, method: &Method, path: &str) -> Option<Rights> {
        self.0.get(&(method.clone(), path.to_owned())).copied()
    }

    /// The methods described for `path`, for an `Allow` header; empty when `path` is not.
    fn allowed(&self, path: &str) -> Vec<&str> {
        self.0
            .keys()
            .filter(|(_, p)| p == path)
            .map(|(m, _)| m.as_str())
            .collect()
    }
}

/// Answers 404 for a route the document does not describe and 405 for a method it does not
/// describe on a described path, before the handler runs: nothing undocumented is served.
async fn only_documented(
    axum::extract::State(operations): axum::extract::State<Arc<Operations>>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(path) = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
    else {
        return next.run(request).await;
    };
    if operations.needs(request.method(), &path).is_some() {
        return next.run(request).await;
    }
    let allowed = operations.allowed(&path);
    if allowed.is_empty() {
        return not_found().await.into_response();
    }
    let mut response = ApiError::Status(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{path} takes {}.", allowed.join(", ")),
    )
    .into_response();
    if let Ok(value) = header::HeaderValue::from_str(&allowed.join(",")) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

async fn not_found() -> ApiError {
    ApiError::Status(StatusCode::NOT_FOUND, "No such route in /api/v1.".into())
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, in words.
    error: String,
    /// With 422 for invalid fields: a message per field, named by its path in the body
    /// (`news_items[2].title`).
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<BTreeMap<String, String>>,
}

/// An error answer's description in the document: `ErrorBody` as JSON.
fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}

macro_rules! error_responses {
    ($(#[$doc:meta])* $name:ident { $($status:literal => $description:literal),+ $(,)? }) => {
        $(#[$doc])*
        pub struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
                BTreeMap::from([$(($status.to_owned(), error_response($description))),+])
            }
        }
    };
}

error_responses!(
    /// What any call with a token may answer.
    Always {
        "401" => "No valid API token (none, unknown, revoked or expired): send \
            `Authorization: Bearer <token>`.",
        "403" => "Not allowed: the operation needs more than the token's scope gives (`read`: \
            GET only; `write`: an editor's rights; `send`: an admin's).",
        "500" => "Something went wrong on our side (the cause is logged).",
        "422" => "Refused: a field is invalid (`errors` names it, by its path in the body or \
            its query parameter; a NUL character anywhere in the query is one), or the \
            operation's rule refuses it (`error` says why).",
        "503" => "The database is briefly away; `Retry-After` says when to try again.",
    }
);

error_responses!(
    /// What a call with a JSON body may answer (besides `Always`'s 422 for a body that does
    /// not fit its schema).
    JsonBody {
        "400" => "The body is not valid JSON.",
        "413" => "The body is larger than 1 MiB.",
        "415" => "The body is not `application/json`.",
    }
);

error_responses!(
    /// What a call with query parameters may answer.
    BadQuery {
        "400" => "A query parameter does not parse.",
    }
);

error_responses!(
    /// What a call about one record may answer.
    NotFound {
        "404" => "No such record (an id that is not a UUID names none).",
    }
);

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

/// The API token a request was made with: a live one (else `401`) whose scope gives what the
/// operation's door asks (`Operations`: `read` for a read, `write` for a write, `send` where the
/// document names that role; else `403`, before the path or body is read).
pub struct ApiClient {
    pub token_id: Uuid,
    actor: Actor,
}

impl ApiClient {
    /// Who asks, with the token's scope.
    pub fn actor(&self) -> Actor {
        self.actor.clone()
    }
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
        let actor = api_tokens::authenticate(&state.pool, &token.hash())
            .await
            .map_err(ApiError::Internal)?
            .ok_or(ApiError::Unauthorized)?;
        let Actor::ApiToken { id, .. } = actor else {
            return Err(ApiError::Unauthorized);
        };
        // The door of the operation, before its path and body are read (`Operations`).
        let needs = parts
            .extensions
            .get::<Arc<Operations>>()
            .zip(parts.extensions.get::<MatchedPath>())
            .and_then(|(operations, path)| operations.needs(&parts.method, path.as_str()))
            .unwrap_or(Rights::Admin);
        if actor.rights() < needs {
            let message = match actor.rights() {
                Rights::Read => "This API token's scope is read: it may only read (GET).",
                _ => {
                    "This API token's scope is write: this operation needs a send token \
                      (an admin's rights)."
                }
            };
            return Err(ApiError::Status(StatusCode::FORBIDDEN, message.into()));
        }
        Ok(Self {
            token_id: id,
            actor,
        })
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
            if let Some(field) = surrogate_field(&body, &e) {
                let message = format!(
                    "`{field}` holds an unpaired surrogate (a \\uD800 to \\uDFFF escape without \
                     its other half), which is no character."
                );
                return ApiError::Fields(std::collections::BTreeMap::from([(field, message)]));
            }
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
        // The error names the field by its path (`news_items[2].title`) where there is one; a
        // missing or unknown field is named in the text, at the body's root.
        serde_path_to_error::deserialize(value)
            .map(ApiJson)
            .map_err(|e| {
                let message = format!("The body does not fit: {}", e.inner());
                match e.path().to_string() {
                    path if path == "." => {
                        ApiError::Status(StatusCode::UNPROCESSABLE_ENTITY, message)
                    }
                    path => ApiError::Fields(std::collections::BTreeMap::from([(path, message)])),
                }
            })
    }
}

/// A JSON body that may be left out: `None` for an empty body, else read as [`ApiJson`].
pub struct MaybeJson<T>(pub Option<T>);

impl<T: DeserializeOwned> FromRequest<AppState> for MaybeJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|r| ApiError::Status(r.status(), r.body_text()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(MaybeJson(None));
        }
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        ApiJson::from_request(req, state)
            .await
            .map(|ApiJson(v)| MaybeJson(Some(v)))
    }
}

/// The path of the field whose string holds an unpaired UTF-16 surrogate escape (`"\ud800"`),
/// which JSON's grammar allows but which is no character, so serde_json refuses the body. Each
/// such escape it stops at is read again as `\u0000`, and [`nul_in`] names the field (at most
/// 16 escapes; `None` when the error is another one).
fn surrogate_field(body: &[u8], error: &serde_json::Error) -> Option<String> {
    let surrogate = |e: &serde_json::Error| {
        let m = e.to_string();
        m.contains("surrogate") || m.contains("end of hex escape")
    };
    let mut at = surrogate(error).then(|| (error.line(), error.column()))?;
    let mut body = body.to_vec();
    for _ in 0..16 {
        // The column counts from 1 and the error may stand just past the escape.
        let line_start = match at.0 {
            0 | 1 => 0,
            n => {
                body.iter()
                    .enumerate()
                    .filter(|(_, b)| **b == b'\n')
                    .nth(n - 2)?
                    .0
                    + 1
            }
        };
        let end = (line_start + at.1 + 1).min(body.len());
        let start = (0..=end.checked_sub(6)?).rev().find(|&i| {
            body[i..i + 2] == *b"\\u"
                && std::str::from_utf8(&body[i + 2..i + 6])
                    .ok()
                    .and_then(|h| u16::from_str_radix(h, 16).ok())
                    .is_some_and(|u| (0xD800..=0xDFFF).contains(&u))
        })?;
        body[start + 2..start + 6].copy_from_slice(b"0000");
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(value) => return nul_in(&value, ""),
            Err(e) if surrogate(&e) => at = (e.line(), e.column()),
            Err(_) => return None,
        }
    }
    None
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

impl From<Forbidden> for ApiError {
    fn from(e: Forbidden) -> Self {
        Self::Status(StatusCode::FORBIDDEN, e.0)
    }
}

impl From<TemplateOpError> for ApiError {
    fn from(e: TemplateOpError) -> Self {
        match e {
            TemplateOpError::NotFound => {
                Self::Status(StatusCode::NOT_FOUND, "No such mail template.".into())
            }
            TemplateOpError::NoVersion => Self::Status(
                StatusCode::NOT_FOUND,
                "No such version of this mail template.".into(),
            ),
            TemplateOpError::Forbidden => Self::Status(StatusCode::FORBIDDEN, e.to_string()),
            TemplateOpError::Invalid(e) => Self::Fields(std::collections::BTreeMap::from([(
                e.part.as_str().to_owned(),
                e.message,
            )])),
            TemplateOpError::Internal(e) => Self::Internal(e),
        }
    }
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
    let body = ErrorBody {
        error: message.to_owned(),
        errors: None,
    };
    (status, Json(body)).into_response()
}

fn invalid<'a>(errors: impl IntoIterator<Item = (&'a str, &'a String)>) -> Response {
    let body = ErrorBody {
        error: "invalid input".to_owned(),
        errors: Some(
            errors
                .into_iter()
                .map(|(field, message)| (field.to_owned(), message.clone()))
                .collect(),
        ),
    };
    (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
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
            ApiError::Fields(errors) => invalid(errors.iter().map(|(f, m)| (f.as_str(), m))),
            ApiError::Update(UpdateError::NotFound) => {
                error(StatusCode::NOT_FOUND, "No such update.")
            }
            ApiError::Update(UpdateError::Invalid(errors)) => {
                invalid(errors.iter().map(|(f, m)| (*f, m)))
            }
            ApiError::Update(
                e @ (UpdateError::Conflict(_)
                | UpdateError::Frozen(_)
                | UpdateError::Stale { .. }
                | UpdateError::StaleRequest),
            ) => error(StatusCode::CONFLICT, &e.to_string()),
            ApiError::Update(UpdateError::TooMany {
                message,
                retry_after_seconds,
            }) => {
                let mut r = error(StatusCode::TOO_MANY_REQUESTS, &message);
                r.headers_mut().insert(
                    header::RETRY_AFTER,
                    header::HeaderValue::from(retry_after_seconds),
                );
                r
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
            ApiError::News(NewsError::Invalid(errors)) => {
                invalid(errors.iter().map(|(f, m)| (*f, m)))
            }
            ApiError::News(NewsError::Forbidden(Forbidden(message)))
            | ApiError::Feed(FeedError::Forbidden(Forbidden(message)))
            | ApiError::Import(ImportError::Forbidden(Forbidden(message))) => {
                error(StatusCode::FORBIDDEN, &message)
            }
            ApiError::Feed(FeedError::NotFound) => error(StatusCode::NOT_FOUND, "No such feed."),
            ApiError::Feed(FeedError::Invalid(errors)) => {
                invalid(errors.iter().map(|(f, m)| (*f, m)))
            }
            ApiError::Digest(DigestError::NotFound) => {
                error(StatusCode::NOT_FOUND, "No such digest schedule.")
            }
            ApiError::Digest(DigestError::Invalid(errors)) => {
                invalid(errors.iter().map(|(f, m)| (*f, m)))
            }
            ApiError::Digest(DigestError::Forbidden(message)) => {
                error(StatusCode::FORBIDDEN, &message)
            }
            ApiError::Subscriber(SubscriberError::NotFound) => {
                error(StatusCode::NOT_FOUND, "No such subscriber.")
            }
            ApiError::Subscriber(SubscriberError::Invalid(errors)) => {
                invalid(errors.iter().map(|(f, m)| (*f, m)))
            }
            ApiError::Subscriber(SubscriberError::Forbidden(message)) => {
                error(StatusCode::FORBIDDEN, &message)
            }
            ApiError::Subscriber(SubscriberError::Refused(message)) => {
                error(StatusCode::UNPROCESSABLE_ENTITY, &message)
            }
            ApiError::Import(ImportError::NotFound) => {
                error(StatusCode::NOT_FOUND, "No such import.")
            }
            ApiError::Import(ImportError::Invalid(errors)) => {
                invalid(errors.iter().map(|(f, m)| (*f, m)))
            }
            ApiError::List(ListError::NotFound) => error(StatusCode::NOT_FOUND, "No such list."),
            ApiError::List(ListError::Exists(slug)) => error(
                StatusCode::CONFLICT,
                &format!("A list {slug:?} exists already."),
            ),
            ApiError::List(ListError::Invalid(errors)) => {
                invalid(errors.iter().map(|(f, m)| (*f, m)))
            }
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

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::HeaderMap;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;

    #[utoipa::path(get, path = "/described", responses((status = 200, description = "Served.")))]
    async fn described() -> &'static str {
        "described"
    }

    async fn answer(router: &Router, method: Method, uri: &str) -> (StatusCode, HeaderMap, Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (parts.status, parts.headers, json)
    }

    #[tokio::test]
    async fn a_route_missing_from_the_document_is_not_served() {
        let api = OpenApiRouter::new()
            .routes(routes!(described))
            .route(
                "/described",
                axum::routing::delete(|| async { "undocumented" }),
            )
            .route(
                "/sneaked-in",
                axum::routing::get(|| async { "undocumented" }),
            );
        let router = served(api);

        let (status, _, _) = answer(&router, Method::GET, "/api/v1/described").await;
        assert_eq!(status, StatusCode::OK);

        let (status, _, body) = answer(&router, Method::GET, "/api/v1/sneaked-in").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"], "No such route in /api/v1.");

        let (status, headers, body) = answer(&router, Method::DELETE, "/api/v1/described").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(headers[header::ALLOW], "GET,HEAD");
        assert!(body["error"].is_string(), "{body}");

        let (status, _, document) = answer(&router, Method::GET, "/api/v1/openapi.json").await;
        assert_eq!(status, StatusCode::OK);
        let paths = document["paths"].as_object().unwrap();
        assert!(paths.contains_key("/api/v1/described"), "{document}");
        assert!(paths.contains_key("/api/v1/openapi.json"), "{document}");
        assert!(!paths.contains_key("/api/v1/sneaked-in"), "{document}");
        assert!(paths["/api/v1/described"].get("delete").is_none());
    }
}
