//! HTTP routes. Handlers are thin: extract, parse into domain types, call `ops::`, answer.

mod admin;
mod api;
mod archive;
mod brand;
mod clicks;
mod client;
mod confirm;
mod edge;
mod error;
mod form;
mod health;
mod links;
mod manage;
mod metrics;
mod pages;
mod rate_limit;
mod same_origin;
mod security_headers;
mod signup;
mod still_reading;
mod unsubscribe;
pub mod webhooks;

use axum::extract::DefaultBodyLimit;
use axum::Router;

use crate::app::AppState;

pub use admin::AdminPages;
pub use error::AppError;
pub use pages::Pages;

pub fn router(state: AppState) -> Router {
    let max_body = state.settings.server.max_body_bytes;
    let links = Router::new()
        .merge(confirm::router())
        .merge(clicks::router())
        .merge(unsubscribe::router())
        .merge(manage::router())
        .merge(still_reading::router())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            rate_limit::limit_links,
        ));
    Router::new()
        .merge(signup::router())
        .merge(archive::router())
        .merge(brand::router())
        .merge(links)
        .merge(health::router())
        .merge(api::router())
        .merge(admin::router(&state))
        .merge(metrics::router())
        .merge(webhooks::router())
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::count,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            edge::refuse_unstorable,
        ))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(security_headers::add))
        .with_state(state)
}
