//! Subscribers in bulk: who a selection holds, and what each of them is on (`ops::bulk` acts
//! on them, one person at a time, in one transaction).

use sqlx::{PgExecutor, Row};
use uuid::Uuid;

use super::subscribers::{filter_list, push_filter, ExportRow, SearchFilter, EXPORT_SELECT};

/// The ids of the subscribers matching `f`, newest first, at most `cap`.
pub async fn matching_ids(
    db: &sqlx::PgPool,
    f: &SearchFilter,
    cap: i64,
) -> sqlx::Result<Vec<Uuid>> {
    let Ok(list_id) = filter_list(db, f).await? else {
        return Ok(Vec::new());
    };
    let mut q = sqlx::QueryBuilder::new("SELECT s.id FROM subscribers s WHERE true");
    push_filter(&mut q, f, list_id);
    q.push(" ORDER BY s.created_at DESC, s.id DESC LIMIT ")
        .push_bind(cap);
    q.build_query_scalar().fetch_all(db).await
}

/// Of `ids`, those that exist.
pub async fn existing(db: impl PgExecutor<'_>, ids: &[Uuid]) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar("SELECT id FROM subscribers WHERE id = ANY($1) ORDER BY created_at DESC, id")
        .bind(ids)
        .fetch_all(db)
        .await
}

/// One person of a selection: their status, the lists they are on (every subscription not
/// `unsubscribed`), and whether they left the list `target` themselves.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: Uuid,
    pub status: String,
    pub lists: Vec<String>,
    pub left_target: bool,
}

/// The people `ids` (locked for the caller's transaction), with their lists.
pub async fn people(
    db: impl PgExecutor<'_>,
    ids: &[Uuid],
    target: Option<&str>,
) -> sqlx::Result<Vec<Person>> {
    let rows = sqlx::query(
        "SELECT s.id, s.status,
                ARRAY(SELECT l.slug FROM subscriptions x JOIN lists l ON l.id = x.list_id
                      WHERE x.subscriber_id = s.id AND x.status <> 'unsubscribed' ORDER BY l.slug)
                    AS lists,
                EXISTS (SELECT 1 FROM subscriptions x JOIN lists l ON l.id = x.list_id
                        WHERE x.subscriber_id = s.id AND l.slug = $2 AND x.status = 'unsubscribed')
                    AS left_target
         FROM subscribers s WHERE s.id = ANY($1) ORDER BY s.id FOR UPDATE OF s",
    )
    .bind(ids)
    .bind(target)
    .fetch_all(db)
    .await?;
    Ok(rows
        .iter()
        .map(|r| Person {
            id: r.get("id"),
            status: r.get("status"),
            lists: r.get("lists"),
            left_target: r.get("left_target"),
        })
        .collect())
}

/// The export's rows for `ids`, newest first.
pub async fn export_rows(db: impl PgExecutor<'_>, ids: &[Uuid]) -> sqlx::Result<Vec<ExportRow>> {
    sqlx::query_as(&format!(
        "{EXPORT_SELECT} WHERE s.id = ANY($1) ORDER BY s.created_at DESC, s.id DESC"
    ))
    .bind(ids)
    .fetch_all(db)
    .await
}
