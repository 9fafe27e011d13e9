//! Sign-ups, their confirmation, and coming back through a subscriber link: what visitors and
//! subscribers do on the public pages. A sign-up is written with the configured consent
//! wording, resend throttle and link lifetime, through the server's group commit
//! (`store::signups::SignupWriter`); nothing changes for a returning person until they
//! confirm again.

use sqlx::PgPool;
use uuid::Uuid;

use crate::config::Settings;
use crate::domain::{
    EmailAddress, ListSlug, RequestOrigin, SignupRequest, SignupSource, SubscriberName,
};
use crate::store::signups::SignupRecord;
use crate::store::{lists, preferences};

pub use crate::store::confirmations::{state as token_state, TokenState};

/// Confirms the subscriber a confirmation token's `hash` names, and their pending lists; with
/// `engagement.remember_last_activity` on, the day is their last activity too. Returns the
/// token's state before the call (`store::confirmations::confirm`).
pub async fn confirm(
    pool: &sqlx::PgPool,
    settings: &Settings,
    hash: &crate::domain::TokenHash,
    origin: &RequestOrigin,
) -> anyhow::Result<TokenState> {
    let remember = settings.engagement.remember_last_activity;
    crate::store::confirmations::confirm(pool, hash, origin, remember).await
}
pub use crate::store::signups::{SignupOutcome, SignupWriter};

/// Records a sign-up onto `lists` (resolved: `ops::lists::resolve_public`); answers once it
/// is committed.
pub async fn record(
    writer: &SignupWriter,
    settings: &Settings,
    request: &SignupRequest,
    lists: &[(Uuid, String)],
    source: SignupSource,
    origin: &RequestOrigin,
) -> anyhow::Result<SignupOutcome> {
    let signup = &settings.signup;
    writer
        .record(SignupRecord {
            request,
            lists,
            source,
            origin,
            consent_text: &signup.consent_text,
            consent_version: &signup.consent_version,
            resend_after: signup.resend_after,
            confirm_ttl: signup.confirm_ttl,
            secret_key: settings.security.secret_key.expose().as_bytes(),
        })
        .await
}

/// Queues a confirmation mail for subscriber `id` to come back to the public lists they had
/// (or the default lists): nothing changes until they confirm. `false`: no such subscriber.
pub async fn resubscribe(
    pool: &PgPool,
    writer: &SignupWriter,
    settings: &Settings,
    id: Uuid,
    origin: &RequestOrigin,
) -> anyhow::Result<bool> {
    let Some(profile) = preferences::profile(pool, id).await? else {
        return Ok(false);
    };
    let email = EmailAddress::parse(&profile.email)
        .map_err(|e| anyhow::anyhow!("stored address does not parse: {e}"))?;
    let lists: Vec<ListSlug> = lists::held_public(pool, id)
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
    let resolved = lists::resolve_public(pool, &request.lists, None)
        .await?
        .unwrap_or_default();
    record(
        writer,
        settings,
        &request,
        &resolved,
        SignupSource::Link,
        origin,
    )
    .await?;
    Ok(true)
}
