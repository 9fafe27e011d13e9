//! `GET /subscriptions/confirm?token=` shows a button and changes nothing (mail scanners
//! prefetch links); `POST /subscriptions/confirm` confirms.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::json;

use super::client::Origin;
use super::form::{Arity, FormFields};
use super::AppError;
use crate::app::AppState;
use crate::domain::Token;
use crate::ops::signups::{self, TokenState};

pub fn router() -> Router<AppState> {
    Router::new().route("/subscriptions/confirm", get(show).post(confirm))
}

#[derive(Deserialize)]
struct TokenParam {
    #[serde(default)]
    token: String,
}

async fn show(
    State(state): State<AppState>,
    query: Result<Query<TokenParam>, QueryRejection>,
) -> Result<Response, AppError> {
    let raw = query.map(|q| q.0.token).unwrap_or_default();
    let Ok(token) = Token::parse(&raw) else {
        return Ok(token_problem(&state, TokenState::Unknown));
    };
    Ok(
        match signups::token_state(&state.pool, &token.hash()).await? {
            TokenState::Valid => state.pages.page(
                StatusCode::OK,
                "confirm",
                json!({ "token": token.as_str() }),
            ),
            TokenState::AlreadyUsed => confirmed_page(&state),
            other => token_problem(&state, other),
        },
    )
}

/// Confirms; a link the person has since unsubscribed after changes nothing and says so.
async fn confirm(
    State(state): State<AppState>,
    Origin(origin): Origin,
    body: Bytes,
) -> Result<Response, AppError> {
    let raw = match FormFields::parse(&body, &[("token", Arity::One)]) {
        Ok(form) => form.one("token"),
        Err(errors) => {
            let text = errors.values().cloned().collect::<Vec<_>>().join(" ");
            return Ok(state.pages.message(
                StatusCode::UNPROCESSABLE_ENTITY,
                "This link is not valid",
                &text,
            ));
        }
    };
    let Ok(token) = Token::parse(&raw) else {
        return Ok(token_problem(&state, TokenState::Unknown));
    };
    Ok(
        match signups::confirm(&state.pool, &state.settings, &token.hash(), &origin).await? {
            TokenState::Valid => {
                tracing::info!("subscription confirmed");
                confirmed_page(&state)
            }
            TokenState::AlreadyUsed => confirmed_page(&state),
            other => token_problem(&state, other),
        },
    )
}

fn confirmed_page(state: &AppState) -> Response {
    state.pages.page(StatusCode::OK, "confirmed", json!({}))
}

fn token_problem(state: &AppState, token_state: TokenState) -> Response {
    let (status, title, text) = match token_state {
        TokenState::Unsubscribed => (
            StatusCode::OK,
            "You have unsubscribed",
            "You unsubscribed after this confirmation link was sent, so it no longer subscribes you, and you will not receive our e-mail updates. To subscribe again, sign up again: we will send you a new link to confirm.",
        ),
        TokenState::Expired => (
            StatusCode::GONE,
            "This link has expired",
            "Confirmation links are valid for a limited time. Please sign up again to get a new one.",
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "This link is not valid",
            "The confirmation link is incomplete or unknown. Please copy the whole link from the e-mail, or sign up again.",
        ),
    };
    state.pages.message(status, title, text)
}
