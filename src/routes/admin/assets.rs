//! The staff area's stylesheet and its one script (reloading a page that is still changing,
//! which the reader can stop), compiled into the binary.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::app::AppState;

const ADMIN_CSS: &[u8] = include_bytes!("../../../static/admin.css");
const REFRESH_JS: &[u8] = include_bytes!("../../../static/admin-refresh.js");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/static/admin.css", get(css))
        .route("/admin/static/admin-refresh.js", get(refresh_js))
}

async fn refresh_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        REFRESH_JS,
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
