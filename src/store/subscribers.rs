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
    /// Slugs of the lists the subscriber is confirmed on.
    pub lists: Vec<String>,
}

impl Contact {
    /// Still on at least one of `lists`.
    pub fn on_any(&self, lists: &[String]) -> bool {
        self.lists.iter().any(|l| lists.contains(l))
    }
}

/// The contact with this normalized address, if any.
pub async fn contact_by_email(
    db: impl PgExecutor<'_> + Copy,
    normalized: &str,
) -> sqlx::Result<Option<Contact>> {
    let id: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM subscribers WHERE email_normalized = $1")
            .bind(normalized)
            .fetch_optional(db)
            .await?;
    match id {
        Some(id) => Ok(contacts(db, &[id]).await?.pop()),
        None => Ok(None),
    }
}

/// The subscribers with these ids (those that still exist), each with their confirmed lists.
/// The lists are read through each subscriber's own rows (primary key), never by scanning a
/// list, so this stays fast however big a list is.
pub async fn contacts(db: impl PgExecutor<'_>, ids: &[Uuid]) -> sqlx::Result<Vec<Contact>> {
    let rows = sqlx::query(
        "SELECT s.id, s.email, s.name, s.status, s.link_version, s.topics,
                ARRAY(SELECT l.slug FROM subscriptions sub JOIN lists l ON l.id = sub.list_id
                      WHERE sub.subscriber_id = s.id AND sub.status = 'confirmed') AS lists
         FROM subscribers s WHERE s.id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Contact {
            id: r.get("id"),
            email: r.get("email"),
            name: r.get("name"),
            status: r.get("status"),
            link_version: r.get("link_version"),
            topics: r.get("topics"),
            lists: r.get("lists"),
        })
        .collect())
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
