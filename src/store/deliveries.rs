//! The delivery ledger as a queue. A worker claims due rows in one short statement and records
//! each outcome with the attempt number it claimed, so a worker whose lease ran out cannot
//! overwrite the record of the worker that took the row over.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, Row};
use uuid::Uuid;

use super::seconds;

#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub kind: String,
    pub subscriber_id: Option<Uuid>,
    pub update_id: Option<Uuid>,
    pub payload: serde_json::Value,
    /// The attempt this claim is; the fence for recording its outcome.
    pub attempt: i32,
    pub created_at: DateTime<Utc>,
}

/// Claims up to `limit` due rows (queued, deferred and due, or sending with an expired lease),
/// leaving alone the rows of updates that are not `sending`.
pub async fn claim(
    db: impl PgExecutor<'_>,
    limit: u32,
    lease: Duration,
) -> sqlx::Result<Vec<Claimed>> {
    let rows = sqlx::query(
        "UPDATE deliveries d
         SET status = 'sending', attempts = d.attempts + 1,
             next_attempt_at = now() + make_interval(secs => $2), updated_at = now()
         WHERE d.id IN (
             SELECT q.id FROM deliveries q
             WHERE q.status IN ('queued', 'deferred', 'sending') AND q.next_attempt_at <= now()
               -- mail of a paused or cancelled update waits
               AND (q.update_id IS NULL
                    OR EXISTS (SELECT 1 FROM updates u WHERE u.id = q.update_id AND u.status = 'sending'))
             ORDER BY q.next_attempt_at
             LIMIT $1
             FOR UPDATE SKIP LOCKED)
         RETURNING d.id, d.kind, d.subscriber_id, d.update_id, d.payload, d.attempts, d.created_at",
    )
    .bind(i64::from(limit))
    .bind(seconds(lease))
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Claimed {
            id: r.get("id"),
            kind: r.get("kind"),
            subscriber_id: r.get("subscriber_id"),
            update_id: r.get("update_id"),
            payload: r.get("payload"),
            attempt: r.get("attempts"),
            created_at: r.get("created_at"),
        })
        .collect())
}

/// The final or interim state a send ends in.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Sent {
        message_id: String,
        reply: String,
    },
    Deferred {
        retry_in: Duration,
        reply: String,
        ambiguous: bool,
    },
    Failed {
        reply: String,
        ambiguous: bool,
    },
    Skipped {
        reason: String,
    },
    /// Not attempted (rate limit or slow-down): back to the queue, the attempt not counted.
    Postponed {
        retry_in: Duration,
        reason: String,
    },
}

/// Records the outcome of attempt `attempt` of row `id`. Returns false when the row was taken
/// over by another worker in the meantime (nothing is written then).
pub async fn record(
    db: impl PgExecutor<'_>,
    id: i64,
    attempt: i32,
    outcome: &Outcome,
) -> sqlx::Result<bool> {
    let (status, reply, message_id, retry_in, ambiguous) = match outcome {
        Outcome::Sent { message_id, reply } => (
            "sent",
            reply.as_str(),
            Some(message_id.as_str()),
            None,
            false,
        ),
        Outcome::Deferred {
            retry_in,
            reply,
            ambiguous,
        } => (
            "deferred",
            reply.as_str(),
            None,
            Some(*retry_in),
            *ambiguous,
        ),
        Outcome::Failed { reply, ambiguous } => ("failed", reply.as_str(), None, None, *ambiguous),
        Outcome::Skipped { reason } => ("skipped", reason.as_str(), None, None, false),
        Outcome::Postponed { retry_in, reason } => {
            ("queued", reason.as_str(), None, Some(*retry_in), false)
        }
    };
    let done = sqlx::query(
        "UPDATE deliveries
         SET status = $3,
             last_reply = CASE WHEN $3 = 'queued' THEN last_reply ELSE left($4, 1000) END,
             message_id = coalesce($5, message_id),
             sent_at = CASE WHEN $3 = 'sent' THEN now() ELSE sent_at END,
             next_attempt_at = CASE WHEN $6::float8 IS NULL THEN next_attempt_at
                                    ELSE now() + make_interval(secs => $6) END,
             ambiguous = ambiguous OR $7,
             attempts = CASE WHEN $3 = 'queued' THEN attempts - 1 ELSE attempts END,
             -- a one-off mail's nonce is no longer needed once it is final
             payload = CASE WHEN $3 IN ('deferred', 'queued') THEN payload ELSE payload - 'nonce' END,
             updated_at = now()
         WHERE id = $1 AND attempts = $2 AND status = 'sending'",
    )
    .bind(id)
    .bind(attempt)
    .bind(status)
    .bind(reply)
    .bind(message_id)
    .bind(retry_in.map(seconds))
    .bind(ambiguous)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}
