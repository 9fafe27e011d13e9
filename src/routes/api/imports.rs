//! `/api/v1/imports`: a CSV file as the body (`Content-Type: text/csv`) becomes a background
//! import job (`202 {"id": …}`); `GET /imports/{id}` shows its progress and every problem by
//! line. The rules are in `ops::imports`, shared with the staff area and `newsletter import`.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Always, ApiClient, ApiError, BadQuery, ErrorBody, NotFound};
use crate::app::AppState;
use crate::ops::imports::{self, ImportError, ImportJob, ImportRequest};

/// Largest import file.
pub const MAX_IMPORT_BYTES: usize = 64 * 1024 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start))
        .route_layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES))
        .routes(routes!(show))
        .routes(routes!(refused))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct StartQuery {
    /// A list slug, or several separated by commas, for every row; none: the default lists,
    /// for the rows that name no list (those also join their state's alliance lists).
    list: Option<String>,
    /// `confirmed` (the default: rows join as their `status` says, confirmed when it says
    /// nothing; `source` required) or `opt-in` (each new or pending person gets a confirmation
    /// mail).
    mode: Option<String>,
    /// Where the consent was given; required with `mode=confirmed`.
    source: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct Started {
    /// The import job, for `GET /api/v1/imports/{id}`.
    id: Uuid,
}

/// The path parameter naming an import.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct ImportId {
    /// The import's id.
    id: Uuid,
}

/// Starts a background import of a CSV file (columns `email`, `name`, `state`, `status`,
/// `lists`, `pending_lists` in any order, others ignored: our own export imports back as it
/// was; UTF-8 with or without BOM; comma or semicolon; lines ending in LF, CRLF or CR; at most
/// 64 MiB). Suppressed, unsubscribed, bounced and complained addresses are never brought
/// back; a row whose `status` says the person left puts the address on the suppression list.
#[utoipa::path(
    post,
    path = "/imports",
    security(("api_token" = ["send"])),
    tag = "imports",
    params(StartQuery),
    request_body(content = String, content_type = "text/csv", description = "The CSV file."),
    responses(
        (status = 202, description = "The import job is queued.", body = Started),
        (status = 413, description = "The file is larger than 64 MiB.", body = ErrorBody),
        (status = 415, description = "The body is not `text/csv`.", body = ErrorBody),
        (status = 422, description = "A bad mode, list or source (`errors` names it), or a \
            file that is not CSV.", body = ErrorBody),
        Always, BadQuery
    )
)]
async fn start(
    State(state): State<AppState>,
    client: ApiClient,
    query: Result<Query<StartQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::Status(StatusCode::BAD_REQUEST, e.body_text()))?;
    let is_csv = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("text/csv"));
    if !is_csv {
        return Err(ApiError::Status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Send the file as text/csv.".into(),
        ));
    }
    let lists: Vec<String> = q
        .list
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let request = ImportRequest {
        file: &body,
        lists: &lists,
        mode: q.mode.as_deref().unwrap_or("confirmed"),
        source: q.source.as_deref().unwrap_or(""),
    };
    let actor = client.actor();
    let id = imports::start(&state.pool, &actor, request).await?;
    tokio::spawn(imports::run_pending(
        state.pool.clone(),
        state.settings.clone(),
    ));
    Ok((StatusCode::ACCEPTED, Json(Started { id })).into_response())
}

/// An import's progress and outcome: `status` is `running`, `done` or `failed`; every row of
/// the file is counted once (`imported`, `added_to_lists`, `already_there`, `duplicates`,
/// `refused` by column in `refused_by`, `suppressed`); `errors` lists every problem of a
/// refused row as `{"line", "field", "message"}`.
#[utoipa::path(
    get,
    path = "/imports/{id}",
    tag = "imports",
    params(ImportId),
    responses((status = 200, description = "The import.", body = ImportJob), Always, NotFound)
)]
async fn show(
    State(state): State<AppState>,
    _: ApiClient,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: Uuid = id
        .parse()
        .map_err(|_| ApiError::Import(ImportError::NotFound))?;
    Ok(Json(imports::status(&state.pool, id).await?).into_response())
}

/// The rows an import refused, as CSV to fix and import again: the file's columns, each row's
/// cells as read, and an `error` column (which an import ignores); cells a spreadsheet would
/// run as a formula are prefixed with `'`, as the export's.
#[utoipa::path(
    get,
    path = "/imports/{id}/refused.csv",
    tag = "imports",
    params(ImportId),
    responses(
        (status = 200, description = "The refused rows.", content_type = "text/csv",
            body = String),
        Always, NotFound
    )
)]
async fn refused(
    State(state): State<AppState>,
    _: ApiClient,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: Uuid = id
        .parse()
        .map_err(|_| ApiError::Import(ImportError::NotFound))?;
    let csv = imports::refused_csv(&state.pool, id).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"import-refused.csv\"",
            ),
        ],
        csv,
    )
        .into_response())
}
