//! `/l/{code}`: a link of an update that went out. Counts the click (per link and day, nothing
//! about who) and redirects to the link as the update had it; any other code is 404 and
//! redirects nowhere.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::AppError;
use crate::app::AppState;
use crate::ops::engagement;

pub fn router() -> Router<AppState> {
    Router::new().route("/l/{code}", get(follow))
}

async fn follow(
    State(state): State<AppState>,
    method: Method,
    Path(code): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    // A HEAD (a link checker's) is answered without counting.
    let target = if method == Method::HEAD {
        engagement::target(&state.pool, &code).await?
    } else {
        // `a`: the reader's activity token (the first one; anything else in the query is
        // ignored, and a malformed query is no token).
        let activity = query.as_deref().and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "a")
                .map(|(_, v)| v.into_owned())
        });
        engagement::follow(&state.pool, &state.settings, &code, activity.as_deref()).await?
    };
    let Some(url) = target else {
        return Ok(super::pages::not_found(State(state)).await);
    };
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, url),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (header::REFERRER_POLICY, "no-referrer".to_owned()),
        ],
    )
        .into_response())
}
