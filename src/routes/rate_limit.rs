//! The per-IP limit of the pages behind subscriber links (`crate::limits::IpRateLimiter`).

/// Middleware for the pages behind subscriber links: the per-IP link limit, as a 429 page with
/// Retry-After. One-click unsubscribe POSTs pass: mail providers send many from one IP.
pub async fn limit_links(
    axum::extract::State(state): axum::extract::State<crate::app::AppState>,
    super::client::Origin(origin): super::client::Origin,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let one_click_path = request.method() == axum::http::Method::POST
        && request.uri().path().starts_with("/unsubscribe/");
    if !one_click_path {
        if let Err(wait) = state.link_limiter.check(origin.ip) {
            let seconds = wait.as_secs() + 1;
            let mut response = state.pages.message(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "Too many requests",
                &format!(
                    "Too many requests from your network. Please try again in {seconds} seconds."
                ),
            );
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds),
            );
            return response;
        }
    }
    next.run(request).await
}
