//! The audit log: every staff action worth answering for (sign-in, send, schedule, cancel,
//! export, erase, import, template and staff changes, archiving a list) is appended here by the operation that
//! performs it, whichever door it came through.

use sqlx::PgExecutor;

use super::Actor;
use crate::store::audit::{self as store, AuditEntry, NewEntry};

/// Most entries one page of the log shows.
pub const PAGE: i64 = 100;

/// The actions the log records, as stored.
pub const ACTIONS: &[&str] = &[
    "sign-in",
    "send",
    "schedule",
    "pause",
    "resume",
    "cancel",
    "approve",
    "export",
    "erase",
    "unsubscribe",
    "edit-subscriber",
    "import",
    "template",
    "staff-add",
    "staff-remove",
    "staff-password",
    "list-archive",
    "list-unarchive",
    "update-create",
    "update-edit",
    "update-test",
    "request-approval",
    "unschedule",
    "retry-failed",
    "archive-in",
    "archive-out",
];

/// Appends an entry: `actor` did `action` to `subject`.
pub async fn record(
    db: impl PgExecutor<'_>,
    actor: &Actor,
    action: &str,
    subject: Option<&str>,
    detail: serde_json::Value,
) -> anyhow::Result<()> {
    debug_assert!(ACTIONS.contains(&action), "unknown audit action {action}");
    store::append(
        db,
        NewEntry {
            actor: &actor.label(),
            staff_id: actor.staff_id(),
            action,
            subject,
            detail,
        },
    )
    .await?;
    Ok(())
}

/// A page of the log, newest first: entries before entry `before`, of `action` when given (an
/// unknown action shows nothing).
pub async fn page(
    pool: &sqlx::PgPool,
    action: Option<&str>,
    before: Option<i64>,
) -> anyhow::Result<Vec<AuditEntry>> {
    Ok(store::page(pool, action, before, PAGE).await?)
}
