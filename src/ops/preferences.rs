//! What subscribers do through the links in their mails: which links are genuine (signed for
//! the subscriber's current link version), the preferences page (profile, save, export,
//! erase) and unsubscribing (from everything, or from some lists).

use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::subscriber_link::{self, LinkPurpose};
use crate::domain::Token;
use crate::store::unsubscribes::link_version;

pub use crate::store::preferences::{erase, export, profile, save, Changes, Profile};
pub use crate::store::unsubscribes::{unsubscribe_all, unsubscribe_lists, update_lists};

/// Link versions tried for a link whose subscriber is gone (their version went with them).
const GONE_VERSIONS_TRIED: i32 = 16;

/// The subscriber a genuine, current link `raw` of this purpose is for, with its token.
pub async fn verified(
    pool: &PgPool,
    secret: &[u8],
    raw: &str,
    purpose: LinkPurpose,
) -> sqlx::Result<Option<(Uuid, Token)>> {
    let Ok(token) = Token::parse(raw) else {
        return Ok(None);
    };
    let id = subscriber_link::subscriber_of(&token);
    let Some(version) = link_version(pool, id).await? else {
        return Ok(None);
    };
    Ok(subscriber_link::verify(secret, purpose, &token, version).then_some((id, token)))
}

/// Whether `raw` is a genuine link of this purpose for a subscriber who no longer exists
/// (erased): its signature verifies under one of the first link versions.
pub async fn for_a_gone_subscriber(
    pool: &PgPool,
    secret: &[u8],
    raw: &str,
    purpose: LinkPurpose,
) -> sqlx::Result<bool> {
    let Ok(token) = Token::parse(raw) else {
        return Ok(false);
    };
    let id = subscriber_link::subscriber_of(&token);
    if link_version(pool, id).await?.is_some() {
        return Ok(false);
    }
    Ok((1..=GONE_VERSIONS_TRIED).any(|v| subscriber_link::verify(secret, purpose, &token, v)))
}

/// A mail came to the RFC 2369 `mailto:` unsubscribe address of `claim`'s subscriber: when the
/// token is genuine for their current link version, they are unsubscribed from everything
/// (consent source `mailto`). Returns whether anyone was unsubscribed: a forged token, another
/// installation's, one voided by a new link version, or a person already out changes nothing.
///
/// Errors: the database.
pub async fn unsubscribe_by_mail(
    pool: &PgPool,
    secret: &[u8],
    claim: &crate::domain::mailto_unsubscribe::Claim,
) -> anyhow::Result<bool> {
    let Some(version) = link_version(pool, claim.subscriber).await? else {
        return Ok(false);
    };
    if !claim.verify(secret, version) {
        return Ok(false);
    }
    unsubscribe_all(
        pool,
        claim.subscriber,
        "mailto",
        &crate::domain::RequestOrigin::default(),
    )
    .await
}
