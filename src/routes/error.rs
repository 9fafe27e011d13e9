use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// An unexpected failure. Its body is opaque; its cause chain is logged once, here.
/// A database that cannot be reached answers 503 (retry later) rather than 500.
#[derive(Debug)]
pub struct AppError(pub anyhow::Error);

impl<E: Into<anyhow::Error>> From<E> for AppError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl AppError {
    fn database_unavailable(&self) -> bool {
        self.0.chain().any(|cause| {
            matches!(
                cause.downcast_ref::<sqlx::Error>(),
                Some(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed)
            )
        })
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if self.database_unavailable() {
            tracing::warn!(error = ?self.0, "database unavailable");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "5")],
                "The service is briefly unavailable. Please try again in a moment.",
            )
                .into_response();
        }
        tracing::error!(error = ?self.0, "request failed");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong on our side.",
        )
            .into_response()
    }
}
