//! The audit log of staff actions: appended to, read newest first, never changed (the table
//! refuses UPDATE and DELETE).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, Row};
use uuid::Uuid;

#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub subject: Option<String>,
    pub detail: serde_json::Value,
}

pub struct NewEntry<'a> {
    pub actor: &'a str,
    pub staff_id: Option<Uuid>,
    pub action: &'a str,
    pub subject: Option<&'a str>,
    pub detail: serde_json::Value,
}

pub async fn append(db: impl PgExecutor<'_>, e: NewEntry<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (actor, staff_id, action, subject, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(e.actor)
    .bind(e.staff_id)
    .bind(e.action)
    .bind(e.subject)
    .bind(e.detail)
    .execute(db)
    .await?;
    Ok(())
}

/// How many entries of `action` by `actor` the last `window` holds, and the oldest one's time,
/// for limits counted on the log. Takes a lock on (`actor`, `action`) for the rest of the
/// transaction first, so that concurrent callers count one after the other: each sees the
/// entry the one before it appended.
pub async fn recent_by(
    tx: &mut sqlx::PgConnection,
    actor: &str,
    action: &str,
    window: chrono::Duration,
) -> sqlx::Result<(i64, Option<chrono::DateTime<chrono::Utc>>)> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('audit:' || $1 || ':' || $2, 0))")
        .bind(actor)
        .bind(action)
        .execute(&mut *tx)
        .await?;
    sqlx::query_as(
        "SELECT count(*), min(at) FROM audit_log
         WHERE actor = $1 AND action = $2 AND at > now() - make_interval(secs => $3)",
    )
    .bind(actor)
    .bind(action)
    .bind(window.num_seconds() as f64)
    .fetch_one(&mut *tx)
    .await
}

/// Entries older than entry `before` (all when None), newest first, at most `limit`, only of
/// `action` when given.
/// Which entries a page of the log shows: an action, an actor (part of it, lower case), a
/// record (its id or name, exactly), a time range (`from` inclusive, `until` exclusive).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

pub async fn page(
    db: impl PgExecutor<'_>,
    f: &AuditFilter,
    before: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<AuditEntry>> {
    let actor = f.actor.as_deref().map(|a| {
        let escaped = a
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    });
    let rows = sqlx::query(
        "SELECT id, at, actor, action, subject, detail FROM audit_log
         WHERE ($1::text IS NULL OR action = $1) AND ($2::bigint IS NULL OR id < $2)
           AND ($4::text IS NULL OR lower(actor) LIKE $4)
           AND ($5::text IS NULL OR subject = $5)
           AND ($6::timestamptz IS NULL OR at >= $6) AND ($7::timestamptz IS NULL OR at < $7)
         ORDER BY id DESC LIMIT $3",
    )
    .bind(f.action.as_deref())
    .bind(before)
    .bind(limit)
    .bind(actor)
    .bind(f.subject.as_deref())
    .bind(f.from)
    .bind(f.until)
    .fetch_all(db)
    .await?;
    Ok(rows
        .iter()
        .map(|r| AuditEntry {
            id: r.get("id"),
            at: r.get("at"),
            actor: r.get("actor"),
            action: r.get("action"),
            subject: r.get("subject"),
            detail: r.get("detail"),
        })
        .collect())
}
