use sqlx::{PgExecutor, Row};
use uuid::Uuid;

/// What the worker needs to address a mail.
#[derive(Debug, Clone)]
pub struct Contact {
    pub id: Uuid,
    pub email: String,
    pub name: Option<String>,
    pub status: String,
    pub link_version: i32,
    /// Chosen topics; None: every topic.
    pub topics: Option<Vec<String>>,
    /// For an update: still confirmed on at least one of its lists.
    pub on_update_lists: bool,
}

/// The subscriber, and whether they are still on one of `update_id`'s lists (false when None).
pub async fn contact(
    db: impl PgExecutor<'_>,
    id: Uuid,
    update_id: Option<Uuid>,
) -> sqlx::Result<Option<Contact>> {
    let row = sqlx::query(
        "SELECT s.id, s.email, s.name, s.status, s.link_version, s.topics,
                EXISTS (SELECT 1 FROM update_lists ul
                        JOIN subscriptions sub ON sub.list_id = ul.list_id
                        WHERE ul.update_id = $2 AND sub.subscriber_id = s.id
                          AND sub.status = 'confirmed') AS on_update_lists
         FROM subscribers s WHERE s.id = $1",
    )
    .bind(id)
    .bind(update_id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| Contact {
        id: r.get("id"),
        email: r.get("email"),
        name: r.get("name"),
        status: r.get("status"),
        link_version: r.get("link_version"),
        topics: r.get("topics"),
        on_update_lists: r.get("on_update_lists"),
    }))
}

/// Counts a hard bounce; at `limit` bounces the subscriber becomes `bounced` and is never
/// mailed again. Returns whether they are now bounced.
pub async fn record_hard_bounce(
    db: impl PgExecutor<'_>,
    id: Uuid,
    limit: u32,
) -> sqlx::Result<bool> {
    let status: Option<String> = sqlx::query_scalar(
        "UPDATE subscribers
         SET hard_bounces = hard_bounces + 1, updated_at = now(),
             status = CASE WHEN hard_bounces + 1 >= $2 AND status IN ('confirmed', 'pending')
                           THEN 'bounced' ELSE status END
         WHERE id = $1 RETURNING status",
    )
    .bind(id)
    .bind(i32::try_from(limit).unwrap_or(i32::MAX))
    .fetch_optional(db)
    .await?;
    Ok(status.as_deref() == Some("bounced"))
}

/// Deletes sign-ups never confirmed and older than `older_than`. Returns how many.
pub async fn purge_unconfirmed(
    db: impl PgExecutor<'_>,
    older_than: std::time::Duration,
) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "DELETE FROM subscribers
         WHERE status = 'pending' AND confirmed_at IS NULL
           AND created_at < now() - make_interval(secs => $1)",
    )
    .bind(super::seconds(older_than))
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
