//! `/brand/logo-<sha256>.<ext>`: the logo of the mails (`ops::look`), public (mail clients
//! fetch it) and named by its content, so it is cached for a year and never changes; an
//! unknown name is `404`.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::AppError;
use crate::app::AppState;
use crate::ops::look;

pub fn router() -> Router<AppState> {
    Router::new().route("/brand/{file}", get(logo))
}

async fn logo(
    State(state): State<AppState>,
    Path(file): Path<String>,
) -> Result<Response, AppError> {
    Ok(match look::logo(&state.pool, &file).await? {
        Some((content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            bytes,
        )
            .into_response(),
        None => super::pages::not_found(State(state)).await,
    })
}
