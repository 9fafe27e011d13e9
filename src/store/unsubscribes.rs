//! Unsubscribing: from every list at once, logged in the consent log.

use anyhow::Context;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use super::consent::{self, ConsentEvent, RequestOrigin};

/// The version a subscriber's links are signed with, if the subscriber exists.
pub async fn link_version(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<i32>> {
    sqlx::query_scalar("SELECT link_version FROM subscribers WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await
}

/// Unsubscribes from everything. Idempotent: returns false (and logs nothing) when the person
/// was already unsubscribed. Mail already queued for them is skipped at claim time.
pub async fn unsubscribe_all(
    pool: &PgPool,
    id: Uuid,
    source: &'static str,
    origin: &RequestOrigin,
) -> anyhow::Result<bool> {
    let mut tx = pool.begin().await.context("starting the unsubscribe")?;
    if !unsubscribe_all_in(&mut tx, id, source, origin).await? {
        return Ok(false);
    }
    tx.commit().await.context("committing the unsubscribe")?;
    Ok(true)
}

/// [`unsubscribe_all`] in the caller's transaction.
pub async fn unsubscribe_all_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    id: Uuid,
    source: &'static str,
    origin: &RequestOrigin,
) -> anyhow::Result<bool> {
    let lists: Option<Vec<String>> = sqlx::query_scalar(
        "WITH person AS (
             UPDATE subscribers SET status = 'unsubscribed', unsubscribed_at = now(), updated_at = now()
             WHERE id = $1 AND status IN ('pending', 'confirmed', 'lapsed')
             RETURNING id)
         , left_lists AS (
             UPDATE subscriptions SET status = 'unsubscribed', updated_at = now()
             WHERE subscriber_id = $1 AND status <> 'unsubscribed' AND EXISTS (SELECT 1 FROM person)
             RETURNING list_id)
         SELECT ARRAY(SELECT l.slug FROM left_lists ll JOIN lists l ON l.id = ll.list_id ORDER BY l.slug)
         FROM person",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .context("unsubscribing")?;
    let Some(lists) = lists else {
        return Ok(false);
    };
    log(tx, id, &lists, source, origin).await?;
    Ok(true)
}

/// Leaves the lists named by `slugs`; when no confirmed list is left, the person is
/// unsubscribed altogether. Returns whether anything changed.
pub async fn unsubscribe_lists(
    pool: &PgPool,
    id: Uuid,
    slugs: &[String],
    source: &'static str,
    origin: &RequestOrigin,
) -> anyhow::Result<bool> {
    let mut tx = pool.begin().await.context("starting the unsubscribe")?;
    let left: Vec<String> = sqlx::query_scalar(
        "UPDATE subscriptions s SET status = 'unsubscribed', updated_at = now()
         FROM lists l
         WHERE s.subscriber_id = $1 AND l.id = s.list_id AND l.slug = ANY($2) AND s.status <> 'unsubscribed'
         RETURNING l.slug",
    )
    .bind(id)
    .bind(slugs)
    .fetch_all(&mut *tx)
    .await
    .context("leaving lists")?;
    if left.is_empty() {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE subscribers SET status = 'unsubscribed', unsubscribed_at = now(), updated_at = now()
         WHERE id = $1 AND status IN ('pending', 'confirmed', 'lapsed')
           AND NOT EXISTS (SELECT 1 FROM subscriptions WHERE subscriber_id = $1 AND status = 'confirmed')",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    log_and_commit(tx, id, &left, source, origin).await
}

/// Writes the unsubscribe (from `lists`) to the consent log and commits it; `Ok(true)`.
async fn log_and_commit(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    id: Uuid,
    lists: &[String],
    source: &'static str,
    origin: &RequestOrigin,
) -> anyhow::Result<bool> {
    log(&mut tx, id, lists, source, origin).await?;
    tx.commit().await.context("committing the unsubscribe")?;
    Ok(true)
}

/// Writes the unsubscribe (from `lists`) to the consent log.
async fn log(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    id: Uuid,
    lists: &[String],
    source: &'static str,
    origin: &RequestOrigin,
) -> anyhow::Result<()> {
    consent::record(
        &mut **tx,
        ConsentEvent {
            subscriber_id: id,
            kind: "unsubscribe",
            source,
            origin,
            consent: None,
            lists,
        },
    )
    .await
    .context("logging the unsubscribe")?;
    Ok(())
}

/// The lists (slug, name) an update was sent to.
pub async fn update_lists(
    db: impl PgExecutor<'_>,
    update_id: Uuid,
) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as(
        "SELECT l.slug, l.name FROM update_lists ul JOIN lists l ON l.id = ul.list_id
         WHERE ul.update_id = $1 ORDER BY l.slug",
    )
    .bind(update_id)
    .fetch_all(db)
    .await
}
