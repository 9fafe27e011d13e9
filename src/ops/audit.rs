//! The audit log: every operation that changes something (and every sign-in) appends one
//! entry here, whichever door it came through: who, what, which record and what changed. An
//! operation writes its entry in the transaction of its change where it has one.

use serde::Serialize;
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
    "look",
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
    "subscriber-add",
    "list-create",
    "list-edit",
    "feed-add",
    "feed-change",
    "feed-remove",
    "news-add",
    "news-edit",
    "news-approve",
    "news-delete",
    "digest-create",
    "digest-change",
    "digest-remove",
    "token-create",
    "token-revoke",
];

/// What changed between two states of a record, field by field: `{"name": {"from": .., "to":
/// ..}}`, fields that stayed the same left out. Both must serialize as JSON objects.
pub fn changes(before: &impl Serialize, after: &impl Serialize) -> serde_json::Value {
    let object = |v: serde_json::Result<serde_json::Value>| match v {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let before = object(serde_json::to_value(before));
    let after = object(serde_json::to_value(after));
    let mut out = serde_json::Map::new();
    for key in before.keys().chain(after.keys()) {
        let (from, to) = (before.get(key), after.get(key));
        if from != to && !out.contains_key(key) {
            out.insert(key.clone(), serde_json::json!({ "from": from, "to": to }));
        }
    }
    out.into()
}

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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn changes_name_each_field_that_differs_and_only_those() {
        let before = json!({ "name": "Ohio", "public": true, "state": null });
        let after = json!({ "name": "Ohio alliance", "public": true, "state": "OH", "new": 1 });
        assert_eq!(
            changes(&before, &after),
            json!({
                "name": { "from": "Ohio", "to": "Ohio alliance" },
                "state": { "from": null, "to": "OH" },
                "new": { "from": null, "to": 1 },
            })
        );
        assert_eq!(changes(&before, &before), json!({}));
    }
}
