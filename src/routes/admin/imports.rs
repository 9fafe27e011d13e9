//! `/admin/imports`: upload a CSV file (multipart form), choose the lists and give the consent
//! source; the import runs in the background (`ops::imports`, as the API's) and its page shows
//! a progress bar until it is done, then what became of every row (imported, added to lists,
//! already there, duplicates, refused by column, suppressed) and each problem by its line,
//! downloadable as CSV, with the refused rows themselves as a CSV to fix and upload again.
//! Below the form, the recent jobs (who, when, lists, status, counts) link to their pages.

use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;
use uuid::Uuid;

use super::{check_origin, same, staff_page, AdminError, CurrentStaff};
use crate::app::AppState;
use crate::ops::imports::{self, ImportError, ImportRequest};
use crate::ops::lists;
use crate::ops::subscribers::formula_safe;

/// Largest file the form takes (as the API).
const MAX_UPLOAD_BYTES: usize = 64 * 1024 * 1024;
/// Problems the page lists (all are in the CSV download).
const ERRORS_SHOWN: usize = 200;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/admin/imports",
            get(form)
                .post(upload)
                .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
        )
        .route("/admin/imports/{id}", get(show))
        .route("/admin/imports/{id}/errors.csv", get(errors_csv))
        .route("/admin/imports/{id}/refused.csv", get(refused_csv))
}

impl From<ImportError> for AdminError {
    fn from(e: ImportError) -> Self {
        match e {
            ImportError::NotFound => AdminError::NotFound,
            ImportError::Forbidden(e) => AdminError::Forbidden(e.0),
            ImportError::Invalid(errors) => AdminError::Status(
                StatusCode::UNPROCESSABLE_ENTITY,
                errors.into_values().collect::<Vec<_>>().join(" "),
            ),
            ImportError::Internal(e) => AdminError::Internal(e),
        }
    }
}

async fn form_page(
    state: &AppState,
    staff: &CurrentStaff,
    status: StatusCode,
    error: Option<String>,
) -> Result<Response, AdminError> {
    let all: Vec<_> = lists::names(&state.pool, true)
        .await
        .map_err(anyhow::Error::from)?
        .into_iter()
        .map(|(slug, name)| json!({ "slug": slug, "name": name }))
        .collect();
    let jobs = imports::recent(&state.pool).await?;
    Ok(staff_page(
        state,
        staff,
        status,
        "import",
        json!({ "title": "Import subscribers", "lists": all, "jobs": jobs, "error": error }),
    ))
}

async fn form(State(state): State<AppState>, staff: CurrentStaff) -> Result<Response, AdminError> {
    form_page(&state, &staff, StatusCode::OK, None).await
}

/// The upload: the session's CSRF token must be among the form's fields, as for every form.
async fn upload(
    State(state): State<AppState>,
    staff: CurrentStaff,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Result<Response, AdminError> {
    check_origin(&state, &headers)?;
    let bad =
        |e: axum::extract::multipart::MultipartError| AdminError::Status(e.status(), e.body_text());
    let (mut csrf, mut file, mut lists, mut mode, mut source) = (
        String::new(),
        Vec::new(),
        Vec::new(),
        String::new(),
        String::new(),
    );
    while let Some(field) = multipart.next_field().await.map_err(bad)? {
        match field.name().unwrap_or("") {
            "file" => file = field.bytes().await.map_err(bad)?.to_vec(),
            "csrf_token" => csrf = field.text().await.map_err(bad)?,
            "lists" => lists.push(field.text().await.map_err(bad)?),
            "mode" => mode = field.text().await.map_err(bad)?,
            "source" => source = field.text().await.map_err(bad)?,
            _ => {}
        }
    }
    if !same(&csrf, &staff.csrf_token(&state)) {
        return Err(AdminError::Forbidden(
            "The form has expired or did not come from this site. Go back, reload the page and try again.".into(),
        ));
    }
    let request = ImportRequest {
        file: &file,
        lists: &lists,
        mode: &mode,
        source: &source,
    };
    match imports::start(&state.pool, &staff.actor(), request).await {
        Ok(id) => {
            tokio::spawn(imports::run_pending(
                state.pool.clone(),
                state.settings.clone(),
            ));
            Ok(Redirect::to(&format!("/admin/imports/{id}")).into_response())
        }
        Err(ImportError::Invalid(errors)) => {
            let message = errors.into_values().collect::<Vec<_>>().join(" ");
            form_page(
                &state,
                &staff,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(message),
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

fn import_id(raw: &str) -> Result<Uuid, AdminError> {
    raw.parse().map_err(|_| AdminError::NotFound)
}

async fn show(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path(id): Path<String>,
) -> Result<Response, AdminError> {
    let job = imports::status(&state.pool, import_id(&id)?).await?;
    let running = job.status == "running";
    let errors: Vec<_> = job
        .errors
        .as_array()
        .map(|e| e.iter().take(ERRORS_SHOWN).cloned().collect())
        .unwrap_or_default();
    let refused_by: Vec<_> = job
        .refused_by
        .as_object()
        .into_iter()
        .flatten()
        .map(|(column, n)| json!({ "column": column, "count": n }))
        .collect();
    Ok(staff_page(
        &state,
        &staff,
        StatusCode::OK,
        "import_job",
        json!({
            "title": "Import",
            "job": job,
            "running": running,
            "refresh_seconds": running.then_some(2),
            "errors": errors,
            "refused_by": refused_by,
        }),
    ))
}

/// The refused rows as CSV, to fix and upload again (`ops::imports::refused_csv`).
async fn refused_csv(
    State(state): State<AppState>,
    _staff: CurrentStaff,
    Path(id): Path<String>,
) -> Result<Response, AdminError> {
    let csv = imports::refused_csv(&state.pool, import_id(&id)?).await?;
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

/// The refused rows as CSV: line, field, message.
async fn errors_csv(
    State(state): State<AppState>,
    _staff: CurrentStaff,
    Path(id): Path<String>,
) -> Result<Response, AdminError> {
    let job = imports::status(&state.pool, import_id(&id)?).await?;
    let mut out = csv::Writer::from_writer(Vec::new());
    let io = |e: csv::Error| AdminError::Internal(e.into());
    out.write_record(["line", "field", "message"]).map_err(io)?;
    for e in job.errors.as_array().into_iter().flatten() {
        let text = |k: &str| {
            e[k].as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| e[k].to_string())
        };
        let (line, field, message) = (text("line"), text("field"), text("message"));
        out.write_record([
            line.as_str(),
            &formula_safe(&field),
            &formula_safe(&message),
        ])
        .map_err(io)?;
    }
    let body = out
        .into_inner()
        .map_err(|e| AdminError::Internal(anyhow::anyhow!("writing the CSV: {e}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"import-problems.csv\"",
            ),
        ],
        body,
    )
        .into_response())
}
