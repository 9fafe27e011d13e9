//! The public archive: staff may leave an update out of it (out of `/archive` and its feed;
//! its page stays for the people who hold its link, marked not to be indexed), or put in one
//! whose lists are all non-public (left out by default); and what its pages read.

use sqlx::PgPool;
use uuid::Uuid;

use super::roles::{self, Operation};
use super::Actor;
use crate::ops::updates::UpdateError;
use crate::store::archive;
use crate::store::updates::UpdateRecord;

pub use crate::store::archive::{page, slug_of, ArchiveEntry};

/// The update with archive slug `slug`, if it went out, with whether it is listed (its page
/// stays for the people who hold its link when it is not).
pub async fn published(pool: &PgPool, slug: &str) -> anyhow::Result<Option<(UpdateRecord, bool)>> {
    let Some(update) = archive::by_slug(pool, slug).await? else {
        return Ok(None);
    };
    let listed = archive::is_listed(pool, update.id).await?.unwrap_or(false);
    Ok(Some((update, listed)))
}

/// Puts the update in the archive (`listed`) or leaves it out. Only an admin may: what the
/// public sees is a publishing decision, as sending is.
pub async fn set_listed(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    listed: bool,
) -> Result<(), UpdateError> {
    roles::authorize(actor, Operation::UpdateArchive)?;
    let before = archive::is_listed(pool, id)
        .await?
        .ok_or(UpdateError::NotFound)?;
    if !archive::set_listed(pool, id, listed).await? {
        return Err(UpdateError::NotFound);
    }
    if before == listed {
        // Nothing changed that the public sees: no entry for a repeated choice.
        return Ok(());
    }
    let what = if listed { "archive-in" } else { "archive-out" };
    super::audit::record(
        pool,
        actor,
        what,
        Some(&id.to_string()),
        serde_json::json!({}),
    )
    .await?;
    Ok(())
}

/// Whether the update is in the archive (once it goes out).
pub async fn is_listed(pool: &PgPool, id: Uuid) -> Result<bool, UpdateError> {
    archive::is_listed(pool, id)
        .await?
        .ok_or(UpdateError::NotFound)
}
