//! Who is asking: the client IP (for rate limits and the consent log) and user agent.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

use crate::app::AppState;
use crate::domain::RequestOrigin;

/// Longest user agent kept in the consent log.
const MAX_USER_AGENT_CHARS: usize = 512;

pub struct Origin(pub RequestOrigin);

impl FromRequestParts<AppState> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let ip = if state.settings.server.trust_forwarded_for {
            forwarded_for(&parts.headers).or(peer)
        } else {
            warn_once_if_proxied(peer, &parts.headers);
            peer
        };
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| {
                ua.chars()
                    .filter(|c| !c.is_control())
                    .take(MAX_USER_AGENT_CHARS)
                    .collect()
            });
        Ok(Origin(RequestOrigin { ip, user_agent }))
    }
}

/// Whether the proxy warning was logged (once a process).
static PROXY_WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Logs one warning per process when a request comes from a loopback or private address with an
/// `X-Forwarded-For` header while `server.trust_forwarded_for` is off: the service sits behind a
/// proxy it does not believe, so every visitor counts as the proxy for the per-IP limits (one
/// busy minute would lock everyone out of sign-up and sign-in) and the consent log records the
/// proxy's address.
fn warn_once_if_proxied(peer: Option<IpAddr>, headers: &HeaderMap) {
    let behind_proxy = peer.is_some_and(|ip| match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unique_local()
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| v4.is_loopback() || v4.is_private())
        }
    });
    if behind_proxy
        && headers.contains_key("x-forwarded-for")
        && !PROXY_WARNED.swap(true, std::sync::atomic::Ordering::Relaxed)
    {
        tracing::warn!(
            proxy = ?peer,
            "a request came through a proxy (X-Forwarded-For from a local address) but \
             server.trust_forwarded_for is off: every visitor counts as the proxy for the \
             per-IP limits and the consent log; set it to true when the proxy is yours"
        );
    }
}

/// The last hop of X-Forwarded-For: the one our own proxy added.
fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .next_back()
        .and_then(|ip| ip.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_forwarded_hop_wins() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "1.2.3.4, 10.0.0.9".parse().unwrap());
        assert_eq!(forwarded_for(&h), Some("10.0.0.9".parse().unwrap()));
        h.insert("x-forwarded-for", "garbage".parse().unwrap());
        assert_eq!(forwarded_for(&h), None);
    }
}
