//! `/still-reading/{token}`: list hygiene's question (`ops::hygiene`). The mail's button opens
//! a page with one button (a GET changes nothing, so a mail scanner that follows the link answers
//! nothing); its POST keeps the person subscribed.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::json;

use super::links::{self, invalid_link};
use super::same_origin;
use super::AppError;
use crate::app::AppState;
use crate::domain::subscriber_link::LinkPurpose;

pub fn router() -> Router<AppState> {
    Router::new().route("/still-reading/{token}", get(show).post(answer))
}

async fn show(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Response, AppError> {
    let Some((_, token)) = links::verified(&state, &raw, LinkPurpose::Activity).await? else {
        return Ok(invalid_link(&state));
    };
    Ok(state.pages.page(
        StatusCode::OK,
        "still_reading",
        json!({ "token": token.as_str() }),
    ))
}

async fn answer(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    if !same_origin::allowed(&headers, state.settings.server.base_url.origin()) {
        return Ok(links::cross_site(&state));
    }
    let Some((id, _)) = links::verified(&state, &raw, LinkPurpose::Activity).await? else {
        return Ok(invalid_link(&state));
    };
    let (title, text) = if crate::ops::hygiene::answer(&state.pool, &state.settings, id).await? {
        (
            "Thank you",
            "You will keep receiving our updates. You can change what you receive, or unsubscribe, with the links at the bottom of each mail.",
        )
    } else {
        (
            "You are not subscribed",
            "You unsubscribed earlier, so we send you nothing. To receive our updates again, sign up on our home page.",
        )
    };
    Ok(state.pages.message(StatusCode::OK, title, text))
}
