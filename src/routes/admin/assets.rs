//! The staff area's stylesheet and its three scripts (reloading a page that is still changing,
//! which the reader can stop; moving the composer's news items on the page; the WebAuthn calls
//! of passkeys), compiled into the binary.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::app::AppState;

const ADMIN_CSS: &[u8] = include_bytes!("../../../static/admin.css");
const REFRESH_JS: &[u8] = include_bytes!("../../../static/admin-refresh.js");
const COMPOSER_JS: &[u8] = include_bytes!("../../../static/admin-composer.js");
const PASSKEYS_JS: &[u8] = include_bytes!("../../../static/admin-passkeys.js");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/static/admin.css", get(css))
        .route(
            "/admin/static/admin-refresh.js",
            get(|| async { script(REFRESH_JS) }),
        )
        .route(
            "/admin/static/admin-composer.js",
            get(|| async { script(COMPOSER_JS) }),
        )
        .route(
            "/admin/static/admin-passkeys.js",
            get(|| async { script(PASSKEYS_JS) }),
        )
}

/// A script, cached an hour.
fn script(body: &'static [u8]) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
}

async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        ADMIN_CSS,
    )
}
