//! The public archive: updates that went out (sending or sent), read by their slug. Only what
//! every recipient got alike is read here: subject, intro and news items, never a recipient.

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use super::updates::{self, UpdateRecord};

/// One line of the archive's list.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ArchiveEntry {
    pub slug: String,
    pub subject: String,
    pub preheader: String,
    pub started_at: DateTime<Utc>,
}

/// Published updates, newest first: `limit` of them after skipping `offset`.
pub async fn page(
    db: impl PgExecutor<'_>,
    offset: i64,
    limit: i64,
) -> sqlx::Result<Vec<ArchiveEntry>> {
    sqlx::query_as(
        "SELECT slug, subject, preheader, started_at FROM updates
         WHERE slug IS NOT NULL AND in_archive AND status IN ('sending', 'sent')
         ORDER BY started_at DESC, id DESC OFFSET $1 LIMIT $2",
    )
    .bind(offset)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// The update with this archive slug, if it went out (an update that started and was then
/// paused or cancelled keeps its page: some people have it in their inbox; so does one staff
/// left out of the archive's list and feed).
pub async fn by_slug(pool: &PgPool, slug: &str) -> anyhow::Result<Option<UpdateRecord>> {
    let id: Option<Uuid> = sqlx::query_scalar("SELECT id FROM updates WHERE slug = $1")
        .bind(slug)
        .fetch_optional(pool)
        .await?;
    let Some(id) = id else {
        return Ok(None);
    };
    // The version that went out (frozen since it started; read by its number all the same).
    match updates::get(pool, id).await? {
        Some(u) => match u.sent_version {
            Some(v) if v != u.version => updates::get_version(pool, id, v).await,
            _ => Ok(Some(u)),
        },
        None => Ok(None),
    }
}

/// The archive slug of an update, if it has one (it started sending).
pub async fn slug_of(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<String>> {
    Ok(
        sqlx::query_scalar::<_, Option<String>>("SELECT slug FROM updates WHERE id = $1")
            .bind(id)
            .fetch_optional(db)
            .await?
            .flatten(),
    )
}

/// Puts an update in the public archive or leaves it out, as staff chose (the default, decided
/// when it starts, no longer applies); `false` when there is no such update.
pub async fn set_listed(db: impl PgExecutor<'_>, id: Uuid, listed: bool) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE updates SET in_archive = $2, archive_chosen = true, updated_at = now() WHERE id = $1",
    )
        .bind(id)
        .bind(listed)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether the update is (or, once sent, will be) in the public archive: as staff chose, or
/// until it starts where they did not, whether one of its lists is public.
pub async fn is_listed(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<bool>> {
    sqlx::query_scalar(
        "SELECT CASE WHEN archive_chosen OR started_at IS NOT NULL THEN in_archive
                     ELSE EXISTS (SELECT 1 FROM update_lists ul JOIN lists l ON l.id = ul.list_id
                                  WHERE ul.update_id = u.id AND l.is_public) END
         FROM updates u WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await
}
