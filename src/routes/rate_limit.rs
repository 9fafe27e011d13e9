//! Per-IP rate limits on public endpoints (governor, keyed by IP). Old keys are dropped by a
//! periodic `retain_recent`, so memory stays bounded by the IPs seen in the last window.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct IpRateLimiter {
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
}

impl IpRateLimiter {
    pub fn per_minute(n: u32) -> Self {
        let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(n))),
        }
    }

    /// `Err(wait)` when `ip` is over its limit.
    pub fn check(&self, ip: Option<IpAddr>) -> Result<(), Duration> {
        let ip = ip.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        self.limiter
            .check_key(&ip)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Drops keys whose limit has fully replenished, every `every`, until `shutdown`.
    pub fn spawn_cleanup(&self, every: Duration, shutdown: CancellationToken) {
        let limiter = Arc::clone(&self.limiter);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(every) => {
                        limiter.retain_recent();
                        limiter.shrink_to_fit();
                    }
                }
            }
        });
    }

    #[cfg(test)]
    fn tracked_keys(&self) -> usize {
        self.limiter.len()
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_applies_per_ip() {
        let l = IpRateLimiter::per_minute(2);
        let a = Some("192.0.2.1".parse().unwrap());
        let b = Some("192.0.2.2".parse().unwrap());
        assert!(l.check(a).is_ok());
        assert!(l.check(a).is_ok());
        let wait = l.check(a).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(30));
        assert!(l.check(b).is_ok());
        assert_eq!(l.tracked_keys(), 2);
    }
}
