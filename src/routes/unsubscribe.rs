//! `GET /unsubscribe/{token}` shows a button and changes nothing; `POST /unsubscribe/{token}`
//! unsubscribes, from the page's form or as an RFC 8058 one-click POST from a mail client
//! (body `List-Unsubscribe=One-Click`, no cookies, no CSRF token: answered 200, never a redirect).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;
use uuid::Uuid;

use super::client::Origin;
use super::AppError;
use crate::app::AppState;
use crate::domain::subscriber_link::{self, LinkPurpose};
use crate::domain::Token;
use crate::store::unsubscribes;

pub fn router() -> Router<AppState> {
    Router::new().route("/unsubscribe/{token}", get(show).post(unsubscribe))
}

/// The subscriber a genuine, current unsubscribe link is for.
async fn subscriber(state: &AppState, raw: &str) -> Result<Option<(Uuid, Token)>, AppError> {
    let Ok(token) = Token::parse(raw) else {
        return Ok(None);
    };
    let id = subscriber_link::subscriber_of(&token);
    let Some(version) = unsubscribes::link_version(&state.pool, id).await? else {
        return Ok(None);
    };
    let secret = state.settings.security.secret_key.expose().as_bytes();
    Ok(
        subscriber_link::verify(secret, LinkPurpose::Unsubscribe, &token, version)
            .then_some((id, token)),
    )
}

fn invalid_link(state: &AppState) -> Response {
    state.pages.message(
        StatusCode::NOT_FOUND,
        "This link is not valid",
        "This unsubscribe link is incomplete, altered or no longer valid. Use the link in a recent e-mail, or write to us.",
    )
}

async fn show(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Response, AppError> {
    let Some((_, token)) = subscriber(&state, &raw).await? else {
        return Ok(invalid_link(&state));
    };
    Ok(state.pages.page(
        StatusCode::OK,
        "unsubscribe",
        json!({ "token": token.as_str() }),
    ))
}

async fn unsubscribe(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Origin(origin): Origin,
    body: Bytes,
) -> Result<Response, AppError> {
    let one_click =
        form_urlencoded::parse(&body).any(|(k, v)| k == "List-Unsubscribe" && v == "One-Click");
    let Some((id, _)) = subscriber(&state, &raw).await? else {
        return Ok(invalid_link(&state));
    };
    let source = if one_click { "one_click" } else { "link" };
    if unsubscribes::unsubscribe_all(&state.pool, id, source, &origin).await? {
        tracing::info!(source, "unsubscribed");
    }
    if one_click {
        return Ok((StatusCode::OK, "Unsubscribed.").into_response());
    }
    Ok(state.pages.page(StatusCode::OK, "unsubscribed", json!({})))
}
