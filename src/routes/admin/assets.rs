//! The staff area's stylesheet, compiled into the binary.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::app::AppState;

const ADMIN_CSS: &[u8] = include_bytes!("../../../static/admin.css");

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/static/admin.css", get(css))
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
