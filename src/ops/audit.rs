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
    "sign-in-refused",
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
    "account-time-zone",
    "bulk-add-to-list",
    "hygiene",
    "check-links",
    "bulk-remove-from-list",
    "bulk-unsubscribe",
    "bulk-erase",
    "second-factor",
    "second-factor-failed",
    "second-factor-enrol",
    "second-factor-remove",
    "recovery-codes-new",
    "staff-2fa-reset",
    "session-end",
    "sessions-end-others",
    "password-change",
    "passkey-add",
    "passkey-remove",
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

/// A search of the log as asked for (query string): every field optional, blank is no filter.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct AuditQuery {
    /// One of [`ACTIONS`].
    pub action: Option<String>,
    /// Part of who did it (an address, `API token …`, `command line`), any case; at most 200
    /// characters.
    pub actor: Option<String>,
    /// The record, exactly as the log names it (an id, a list's slug, an address).
    pub subject: Option<String>,
    /// The first day (`YYYY-MM-DD`, in `zone`) and the last day, both included.
    pub from: Option<String>,
    pub to: Option<String>,
    /// The id of the last entry of the previous page.
    pub before: Option<i64>,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// A page of the log, newest first ([`PAGE`] entries), matching `q`; days are read in `zone`
/// (the reader's). An unknown action, a date that is not `YYYY-MM-DD`, an actor longer than
/// 200 characters: `Err` naming the field and why.
pub async fn page(
    pool: &sqlx::PgPool,
    q: &AuditQuery,
    zone: chrono_tz::Tz,
) -> Result<Vec<AuditEntry>, AuditError> {
    use chrono::TimeZone;
    let mut errors = crate::domain::FieldErrors::new();
    let action = given(&q.action).map(str::to_owned);
    if action.as_deref().is_some_and(|a| !ACTIONS.contains(&a)) {
        errors.insert("action", "Choose an action from the list.".to_owned());
    }
    let actor = given(&q.actor).map(str::to_lowercase);
    if actor
        .as_ref()
        .is_some_and(|a| a.chars().count() > 200 || a.contains('\0'))
    {
        errors.insert("actor", "At most 200 characters.".to_owned());
    }
    let mut day = |field: &'static str, raw: Option<&str>, after: i64| {
        let raw = raw?;
        match chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
            Ok(d) => {
                let d = d + chrono::Duration::days(after);
                let midnight = d.and_hms_opt(0, 0, 0)?;
                zone.from_local_datetime(&midnight)
                    .earliest()
                    .map(|t| t.with_timezone(&chrono::Utc))
            }
            Err(_) => {
                let shown: String = raw.chars().take(80).collect();
                errors.insert(
                    field,
                    format!("\"{shown}\" is not a day: write it as 2026-12-07."),
                );
                None
            }
        }
    };
    let from = day("from", given(&q.from), 0);
    let until = day("to", given(&q.to), 1);
    if !errors.is_empty() {
        return Err(AuditError::Invalid(errors));
    }
    let filter = store::AuditFilter {
        action,
        actor,
        subject: given(&q.subject).map(str::to_owned),
        from,
        until,
    };
    store::page(pool, &filter, q.before, PAGE)
        .await
        .map_err(|e| AuditError::Internal(e.into()))
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A field of the search is not acceptable: messages by field.
    #[error("invalid search")]
    Invalid(crate::domain::FieldErrors),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
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
