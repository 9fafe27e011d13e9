//! The subscriber links in every update (`/unsubscribe/{token}`, `/manage/{token}`): checking
//! them, and what both pages offer (coming back through a new double opt-in).

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;
use uuid::Uuid;

use super::AppError;
use crate::app::AppState;
use crate::domain::subscriber_link::{self, LinkPurpose};
use crate::domain::{EmailAddress, ListSlug, SignupRequest, SignupSource, SubscriberName, Token};
use crate::store;
use crate::store::consent::RequestOrigin;

/// The subscriber a genuine, current link of this purpose is for.
pub async fn verified(
    state: &AppState,
    raw: &str,
    purpose: LinkPurpose,
) -> Result<Option<(Uuid, Token)>, AppError> {
    let Ok(token) = Token::parse(raw) else {
        return Ok(None);
    };
    let id = subscriber_link::subscriber_of(&token);
    let Some(version) = store::unsubscribes::link_version(&state.pool, id).await? else {
        return Ok(None);
    };
    let secret = state.settings.security.secret_key.expose().as_bytes();
    Ok(subscriber_link::verify(secret, purpose, &token, version).then_some((id, token)))
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

/// Link versions tried for a link whose subscriber is gone (their version went with them).
const GONE_VERSIONS_TRIED: i32 = 16;

/// Whether `raw` is a genuine link of this purpose for a subscriber who no longer exists
/// (erased): its signature verifies under one of the first link versions.
pub async fn for_a_gone_subscriber(
    state: &AppState,
    raw: &str,
    purpose: LinkPurpose,
) -> Result<bool, AppError> {
    let Ok(token) = Token::parse(raw) else {
        return Ok(false);
    };
    let id = subscriber_link::subscriber_of(&token);
    if store::unsubscribes::link_version(&state.pool, id)
        .await?
        .is_some()
    {
        return Ok(false);
    }
    let secret = state.settings.security.secret_key.expose().as_bytes();
    Ok((1..=GONE_VERSIONS_TRIED).any(|v| subscriber_link::verify(secret, purpose, &token, v)))
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
    let Some(profile) = store::preferences::profile(&state.pool, id).await? else {
        return Ok(invalid_link(state));
    };
    let email = EmailAddress::parse(&profile.email)
        .map_err(|e| anyhow::anyhow!("stored address does not parse: {e}"))?;
    let lists: Vec<ListSlug> = store::lists::held_public(&state.pool, id)
        .await?
        .iter()
        .filter_map(|slug| ListSlug::parse(slug).ok())
        .collect();
    let request = SignupRequest {
        email,
        name: profile
            .name
            .as_deref()
            .and_then(|n| SubscriberName::parse(n).ok().flatten()),
        lists,
        state: None,
    };
    let resolved = store::lists::resolve_public(&state.pool, &request.lists, None)
        .await?
        .unwrap_or_default();
    super::signup::record(state, &request, &resolved, SignupSource::Link, origin).await?;
    Ok(state.pages.page(StatusCode::OK, "pending", json!({})))
}
