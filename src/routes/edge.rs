//! Checks every request's path and query once, before routing: text that PostgreSQL and mail
//! cannot hold (a NUL character, percent-encoded or not) never reaches a handler. A path that
//! holds one answers `404` (no such resource can exist); a query parameter, `422` naming it.
//! Under `/api/v1` the answers are JSON, as every answer there is; under `/admin`, the staff
//! area's own pages.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::app::AppState;

/// Whether `path` is under the JSON API.
pub fn is_api(path: &str) -> bool {
    path == "/api/v1" || path.starts_with("/api/v1/")
}

/// Whether `path` is in the staff area.
fn is_admin(path: &str) -> bool {
    path == "/admin" || path.starts_with("/admin/")
}

/// The query parameter that holds a NUL character, if any.
fn nul_in_query(query: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, v)| k.contains('\0') || v.contains('\0'))
        .map(|(k, _)| k.replace('\0', "\u{FFFD}"))
}

pub async fn refuse_unstorable(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let (api, admin) = (is_api(path), is_admin(path));
    if percent_encoding::percent_decode_str(path).any(|b| b == 0) {
        return if api {
            (
                StatusCode::NOT_FOUND,
                Json(json!({ "error": "No such resource." })),
            )
                .into_response()
        } else if admin {
            state.admin_pages.message(
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing at this address.",
            )
        } else {
            super::pages::not_found(State(state)).await
        };
    }
    if let Some(param) = request.uri().query().and_then(nul_in_query) {
        let message = format!("`{param}` contains a NUL character, which cannot be stored.");
        return if api {
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({ "error": "invalid input", "errors": { param: message } })),
            )
                .into_response()
        } else if admin {
            state
                .admin_pages
                .message(StatusCode::UNPROCESSABLE_ENTITY, "Not done", &message)
        } else {
            state.pages.message(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid address",
                &message,
            )
        };
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_in_a_query_parameter_is_named() {
        assert_eq!(
            nul_in_query("status=failed&after=1%002"),
            Some("after".into())
        );
        assert_eq!(nul_in_query("status=failed"), None);
    }
}
