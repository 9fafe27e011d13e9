//! `GET /metrics` in Prometheus text format, and the middleware that counts every request.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::client::Origin;
use super::AppError;
use crate::app::AppState;
use crate::metrics::Ledger;
use crate::ops::health;

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// Counts the request under its route pattern (never the raw path, which may hold a token).
pub async fn count(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    state.metrics.record(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

fn allowed(state: &AppState, origin_ip: Option<std::net::IpAddr>, headers: &HeaderMap) -> bool {
    match &state.settings.metrics_token {
        Some(token) => headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(super::api::bearer)
            .is_some_and(|given| {
                crate::domain::constant_time_eq(given.trim().as_bytes(), token.expose().as_bytes())
            }),
        None => origin_ip.is_some_and(|ip| ip.is_loopback()),
    }
}

async fn metrics(
    State(state): State<AppState>,
    Origin(origin): Origin,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    if !allowed(&state, origin.ip, &headers) {
        return Ok((
            StatusCode::FORBIDDEN,
            "metrics need the metrics.token, or a loopback client",
        )
            .into_response());
    }
    let s = health::snapshot(&state.pool).await?;
    let out = state
        .metrics
        .encode(&Ledger {
            deliveries: &s.deliveries,
            failures: &s.failures,
            queue_depth: s.queue_depth,
            send_rate: s.sent_last_10s as f64 / 10.0,
            consent_events: &s.consent_events,
            subscribers: &s.subscribers,
            reports: &s.reports,
        })
        .await;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response())
}
