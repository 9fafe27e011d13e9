//! The public archive: `GET /archive` lists the updates that went out, newest first;
//! `GET /archive/{slug}` shows one as a web page, the same for everyone (no recipient's name,
//! address or links); `GET /updates/{id}` (the web link of mails sent before the archive had
//! slugs) redirects there for good; `GET /archive/feed.xml` is an Atom feed of the archive.
//! Every answer carries a strong ETag of its body and is cacheable for a few minutes; a
//! matching `If-None-Match` gets `304`. An update staff left out of the archive is in neither
//! the list nor the feed, and its page (which its recipients hold a link to) asks search engines
//! not to index it.

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use sha2::Digest;
use uuid::Uuid;

use super::AppError;
use crate::app::AppState;
use crate::domain::text;
use crate::mail::markdown;
use crate::ops::archive;

/// Updates per page of the archive's list.
const PER_PAGE: i64 = 20;
/// Highest page number served (deeper pages would make the database skip too many rows).
const MAX_PAGE: i64 = 1_000;
/// Entries in the Atom feed.
const FEED_ENTRIES: i64 = 50;
/// Largest archive page buffered to compute its ETag.
const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;
/// Seconds browsers and proxies may reuse an archive page without asking again.
const CACHE_SECONDS: u32 = 300;
/// Longest description meta tag, in characters.
const MAX_DESCRIPTION: usize = 160;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/archive", get(list))
        .route("/archive/feed.xml", get(atom))
        .route("/archive/{slug}", get(show))
        .layer(axum::middleware::from_fn(etag))
        .route("/updates/{id}", get(redirect))
}

/// Adds a strong ETag (a hash of the body) and a cache lifetime to a successful answer, and
/// answers `304` when the client already holds that body.
async fn etag(request: Request, next: axum::middleware::Next) -> Response {
    let held = request.headers().get(header::IF_NONE_MATCH).cloned();
    let response = next.run(request).await;
    if response.status() != StatusCode::OK {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_PAGE_BYTES).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let digest = sha2::Sha256::digest(&bytes);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    let tag = HeaderValue::try_from(format!("\"{hex}\"")).expect("hex is a valid header value");
    parts.headers.insert(header::ETAG, tag.clone());
    parts.headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::try_from(format!("public, max-age={CACHE_SECONDS}"))
            .expect("a valid header value"),
    );
    let matches = held
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == "*" || t.as_bytes() == tag.as_bytes())
        });
    if matches {
        parts.status = StatusCode::NOT_MODIFIED;
        return Response::from_parts(parts, axum::body::Body::empty());
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// The first sentence-worth of `text` for a description meta tag.
fn description(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= MAX_DESCRIPTION {
        return flat;
    }
    let head: String = flat.chars().take(MAX_DESCRIPTION - 1).collect();
    format!(
        "{}…",
        head.rsplit_once(' ').map_or(head.as_str(), |(h, _)| h)
    )
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
    let zone = state.settings.server.time_zone;
    let updates: Vec<_> = entries
        .iter()
        .map(|e| {
            json!({
                "slug": e.slug, "subject": e.subject, "preheader": e.preheader,
                "date": e.started_at.with_timezone(&zone).format("%Y-%m-%d").to_string(),
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
            "description": "Every update that went out, newest first.",
            "canonical": state.settings.server.base_url.join(&if page > 1 {
                format!("/archive?page={page}")
            } else {
                "/archive".to_owned()
            }),
            "atom_feed": state.settings.server.base_url.join("/archive/feed.xml"),
        }),
    ))
}

async fn show(
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Response, AppError> {
    let Some((update, listed)) = archive::published(&state.pool, &slug).await? else {
        return Ok(not_in_archive(&state));
    };
    let summary = if update.preheader.trim().is_empty() {
        markdown::to_plain_text(&update.intro)
    } else {
        update.preheader.clone()
    };
    Ok(state.pages.page(
        StatusCode::OK,
        "archived_update",
        json!({
            "description": description(&summary),
            "canonical": state.settings.server.base_url.join(&format!("/archive/{slug}")),
            "atom_feed": state.settings.server.base_url.join("/archive/feed.xml"),
            "noindex": !listed,
            "subject": update.subject,
            "preheader": update.preheader,
            "intro_html": markdown::to_safe_html(&update.intro),
            "news_items": update.news_items,
            "date": update
                .started_at
                .map(|t| t.with_timezone(&state.settings.server.time_zone).format("%Y-%m-%d").to_string()),
        }),
    ))
}

/// The archive as an Atom feed (RFC 4287): the latest updates, newest first.
async fn atom(State(state): State<AppState>) -> Result<Response, AppError> {
    let entries = archive::page(&state.pool, 0, FEED_ENTRIES).await?;
    let base = &state.settings.server.base_url;
    let zone = state.settings.server.time_zone;
    let site = state
        .settings
        .mail
        .from
        .name
        .clone()
        .unwrap_or_else(|| "Newsletter".into());
    let updated = entries.first().map_or_else(
        || "1970-01-01T00:00:00Z".to_owned(),
        |e| e.started_at.with_timezone(&zone).to_rfc3339(),
    );
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\n\
         <title>{}</title>\n<id>{}</id>\n<link rel=\"self\" href=\"{}\"/>\n\
         <link rel=\"alternate\" type=\"text/html\" href=\"{}\"/>\n<updated>{updated}</updated>\n\
         <author><name>{}</name></author>\n",
        xml_escape(&format!("{site}: past updates")),
        xml_escape(&base.join("/archive")),
        xml_escape(&base.join("/archive/feed.xml")),
        xml_escape(&base.join("/archive")),
        xml_escape(&site),
    );
    for e in &entries {
        let url = xml_escape(&base.join(&format!("/archive/{}", e.slug)));
        xml.push_str(&format!(
            "<entry>\n<title>{}</title>\n<id>{url}</id>\n<link rel=\"alternate\" type=\"text/html\" href=\"{url}\"/>\n\
             <updated>{}</updated>\n<published>{}</published>\n<summary>{}</summary>\n</entry>\n",
            xml_escape(&e.subject),
            e.started_at.with_timezone(&zone).to_rfc3339(),
            e.started_at.with_timezone(&zone).to_rfc3339(),
            xml_escape(&e.preheader),
        ));
    }
    xml.push_str("</feed>\n");
    Ok((
        [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
        xml,
    )
        .into_response())
}

/// Text for XML content and attribute values.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters the rule refuses (stored before input refused them).
            c if !text::allowed(c) => {}
            c => out.push(c),
        }
    }
    out
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
