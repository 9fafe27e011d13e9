//! The public archive: `GET /archive` lists the updates that went out, newest first;
//! `GET /archive/{slug}` shows one as a web page, the same for everyone (no recipient's name,
//! address or links); `GET /updates/{id}` (the web link of mails sent before the archive had
//! slugs) redirects there for good.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::AppError;
use crate::app::AppState;
use crate::mail::markdown;
use crate::store::archive;

/// Updates per page of the archive's list.
const PER_PAGE: i64 = 20;
/// Highest page number served (deeper pages would make the database skip too many rows).
const MAX_PAGE: i64 = 1_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/archive", get(list))
        .route("/archive/{slug}", get(show))
        .route("/updates/{id}", get(redirect))
}

#[derive(Deserialize)]
struct PageParam {
    page: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    query: Result<Query<PageParam>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AppError> {
    let page = query
        .ok()
        .and_then(|q| q.0.page)
        .unwrap_or(1)
        .clamp(1, MAX_PAGE);
    // One more than a page tells whether there is a next one.
    let mut entries = archive::page(&state.pool, (page - 1) * PER_PAGE, PER_PAGE + 1).await?;
    let older = entries.len() as i64 > PER_PAGE;
    entries.truncate(PER_PAGE as usize);
    let updates: Vec<_> = entries
        .iter()
        .map(|e| {
            json!({
                "slug": e.slug, "subject": e.subject, "preheader": e.preheader,
                "date": e.started_at.format("%Y-%m-%d").to_string(),
            })
        })
        .collect();
    Ok(state.pages.page(
        StatusCode::OK,
        "archive",
        json!({
            "updates": updates,
            "newer": (page > 1).then_some(page - 1),
            "older": (older && page < MAX_PAGE).then_some(page + 1),
        }),
    ))
}

async fn show(
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Response, AppError> {
    let Some(update) = archive::by_slug(&state.pool, &slug).await? else {
        return Ok(not_in_archive(&state));
    };
    Ok(state.pages.page(
        StatusCode::OK,
        "archived_update",
        json!({
            "subject": update.subject,
            "preheader": update.preheader,
            "intro_html": markdown::to_safe_html(&update.intro),
            "news_items": update.news_items,
            "date": update.started_at.map(|t| t.format("%Y-%m-%d").to_string()),
        }),
    ))
}

async fn redirect(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Response, AppError> {
    let Ok(id) = raw.parse::<Uuid>() else {
        return Ok(not_in_archive(&state));
    };
    Ok(match archive::slug_of(&state.pool, id).await? {
        Some(slug) => (
            StatusCode::MOVED_PERMANENTLY,
            [(header::LOCATION, format!("/archive/{slug}"))],
        )
            .into_response(),
        None => not_in_archive(&state),
    })
}

fn not_in_archive(state: &AppState) -> Response {
    state.pages.message(
        StatusCode::NOT_FOUND,
        "No such update",
        "There is no update at this address. Every update that went out is in the archive at /archive.",
    )
}
