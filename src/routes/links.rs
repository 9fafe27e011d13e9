//! The subscriber links in every update (`/unsubscribe/{token}`, `/manage/{token}`): checking
//! them, and what both pages offer (coming back through a new double opt-in).

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;
use uuid::Uuid;

use super::AppError;
use crate::app::AppState;
use crate::domain::subscriber_link::{self, LinkPurpose};
use crate::domain::{RequestOrigin, Token};
use crate::ops::{preferences, signups};

/// The subscriber a genuine, current link of this purpose is for.
pub async fn verified(
    state: &AppState,
    raw: &str,
    purpose: LinkPurpose,
) -> Result<Option<(Uuid, Token)>, AppError> {
    let secret = state.settings.security.secret_key.expose().as_bytes();
    Ok(preferences::verified(&state.pool, secret, raw, purpose).await?)
}

/// Whether `raw` is a genuine link of a test mail: signed for the nil subscriber, which no one
/// is (test mails go to staff, not to subscribers).
pub fn of_a_test_mail(state: &AppState, raw: &str, purpose: LinkPurpose) -> bool {
    let Ok(token) = Token::parse(raw) else {
        return false;
    };
    let secret = state.settings.security.secret_key.expose().as_bytes();
    subscriber_link::subscriber_of(&token).is_nil()
        && subscriber_link::verify(secret, purpose, &token, 0)
}

/// The answer to a test mail's unsubscribe link: it works, and there is no one to unsubscribe.
pub fn test_mail_page(state: &AppState) -> Response {
    state.pages.message(
        StatusCode::OK,
        "This was a test mail",
        "This link came in a test mail of an update. In the update itself it unsubscribes the reader; here there is nobody to unsubscribe, so nothing was changed.",
    )
}

/// Whether `raw` is a genuine link of this purpose for a subscriber who no longer exists
/// (erased).
pub async fn for_a_gone_subscriber(
    state: &AppState,
    raw: &str,
    purpose: LinkPurpose,
) -> Result<bool, AppError> {
    let secret = state.settings.security.secret_key.expose().as_bytes();
    Ok(preferences::for_a_gone_subscriber(&state.pool, secret, raw, purpose).await?)
}

/// The refusal of a subscriber-link form posted from another site (`same_origin::allowed`
/// said no): nothing changed.
pub fn cross_site(state: &AppState) -> Response {
    state.pages.message(
        StatusCode::FORBIDDEN,
        "Not sent from this site",
        "This form was sent from another web site, so nothing was changed. Please use the link in one of our mails.",
    )
}

pub fn invalid_link(state: &AppState) -> Response {
    state.pages.message(
        StatusCode::NOT_FOUND,
        "This link is not valid",
        "This link is incomplete, altered or no longer valid. Use the link in a recent e-mail, or sign up again.",
    )
}

/// Queues a confirmation mail for the person to come back to the lists they had (or the
/// default lists): nothing changes until they confirm.
pub async fn resubscribe(
    state: &AppState,
    id: Uuid,
    origin: &RequestOrigin,
) -> Result<Response, AppError> {
    if !signups::resubscribe(&state.pool, &state.signups, &state.settings, id, origin).await? {
        return Ok(invalid_link(state));
    }
    Ok(state.pages.page(StatusCode::OK, "pending", json!({})))
}
