//! The delivery ledger as a queue. A worker claims due rows in one short statement and records
//! each outcome with the attempt number it claimed, so a worker whose lease ran out cannot
//! overwrite the record of the worker that took the row over.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgExecutor, Row};
use uuid::Uuid;

use super::{seconds, KeyedPool};

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
    /// A random key fixed at the row's first claim (None for update rows), for its Message-ID.
    pub message_key: Option<Uuid>,
    /// No later than the row's lease ends, on this process's monotonic clock: the claim's
    /// lease counted from before its statement was sent (the database counts it from a moment
    /// after that). Past it another worker may take the row over, so a worker checks it before
    /// sending.
    pub lease_ends: Instant,
}

impl Claimed {
    /// From a row with the claim's columns (`RETURNING id, kind, subscriber_id, update_id,
    /// payload, attempts, created_at, message_key`), of a claim whose statement was sent after
    /// `lease_ends` minus the lease.
    fn from_row(r: &PgRow, lease_ends: Instant) -> Self {
        Self {
            id: r.get("id"),
            kind: r.get("kind"),
            subscriber_id: r.get("subscriber_id"),
            update_id: r.get("update_id"),
            payload: r.get("payload"),
            attempt: r.get("attempts"),
            created_at: r.get("created_at"),
            message_key: r.get("message_key"),
            lease_ends,
        }
    }
}

/// Claims up to `limit` due rows (queued, deferred and due, or sending with an expired lease),
/// leaving alone the rows of updates that are not `sending`.
pub async fn claim(
    db: impl PgExecutor<'_>,
    limit: u32,
    lease: Duration,
) -> sqlx::Result<Vec<Claimed>> {
    claimed_by(
        db,
        "UPDATE deliveries d
         SET status = 'sending', attempts = d.attempts + 1,
             next_attempt_at = now() + make_interval(secs => $2), updated_at = now(),
             message_key = coalesce(d.message_key,
                                    CASE WHEN d.kind <> 'update' THEN gen_random_uuid() END)
         WHERE d.id IN (
             SELECT q.id FROM deliveries q
             WHERE q.status IN ('queued', 'deferred', 'sending') AND q.next_attempt_at <= now()
               -- mail of a paused or cancelled update waits
               AND (q.update_id IS NULL
                    OR EXISTS (SELECT 1 FROM updates u WHERE u.id = q.update_id AND u.status = 'sending'))
             ORDER BY q.next_attempt_at
             LIMIT $1
             FOR UPDATE SKIP LOCKED)
         RETURNING d.id, d.kind, d.subscriber_id, d.update_id, d.payload, d.attempts, d.created_at,
                   d.message_key",
        limit,
        lease,
    )
    .await
}

/// Runs the claim statement `sql` (`$1` the most rows, `$2` the lease in seconds; returning the
/// columns `Claimed::from_row` reads) and gives each row its `lease_ends`, taken before the
/// statement is sent.
pub(super) async fn claimed_by(
    db: impl PgExecutor<'_>,
    sql: &'static str,
    limit: u32,
    lease: Duration,
) -> sqlx::Result<Vec<Claimed>> {
    let lease_ends = Instant::now() + lease;
    let rows = sqlx::query(sql)
        .bind(i64::from(limit))
        .bind(seconds(lease))
        .fetch_all(db)
        .await?;
    Ok(rows
        .iter()
        .map(|r| Claimed::from_row(r, lease_ends))
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
    /// Not attempted because this worker must not make the mail (its configuration lacks
    /// something the mail needs): back to the queue, the attempt not counted, and unlike a
    /// postponement the reason is recorded, for staff to see.
    Held {
        retry_in: Duration,
        reason: String,
    },
}

/// The columns an outcome writes: status, reply (None: the last one stays), Message-ID, retry
/// delay, ambiguous.
fn columns(outcome: &Outcome) -> (&'static str, Option<&str>, Option<&str>, Option<f64>, bool) {
    match outcome {
        Outcome::Sent { message_id, reply } => ("sent", Some(reply), Some(message_id), None, false),
        Outcome::Deferred {
            retry_in,
            reply,
            ambiguous,
        } => (
            "deferred",
            Some(reply),
            None,
            Some(seconds(*retry_in)),
            *ambiguous,
        ),
        Outcome::Failed { reply, ambiguous } => ("failed", Some(reply), None, None, *ambiguous),
        Outcome::Skipped { reason } => ("skipped", Some(reason), None, None, false),
        Outcome::Postponed { retry_in, .. } => {
            ("queued", None, None, Some(seconds(*retry_in)), false)
        }
        Outcome::Held { retry_in, reason } => (
            "queued",
            Some(reason),
            None,
            Some(seconds(*retry_in)),
            false,
        ),
    }
}

/// One claimed attempt and how it ended.
pub struct Attempted<'a> {
    pub id: i64,
    pub attempt: i32,
    pub outcome: &'a Outcome,
}

/// The outcome write of [`record`]: `$1` ids, `$2` attempt numbers, `$3` statuses, `$4` replies,
/// `$5` Message-IDs, `$6` seconds until the next attempt, `$7` ambiguous flags (arrays of one
/// length); returns the ids written. Public for the test of its plan.
///
/// It runs for every group of finished mails, prepared once per connection, so its cached
/// generic plan must stay right as the table grows from a new installation's first rows to
/// millions. `d.id = ANY ($1)` is the primary key's index condition whatever the join (joined
/// on `d.id = o.id` alone, a plan made while the table was small walked the whole index), and
/// on a [`KeyedPool`] connection a sequential scan is never the cheap plan. Before, a generic
/// plan cached while the table was small scanned it whole and kept doing so as the send grew
/// it (measured: the statement 25 to 70 µs a mail in a 30,000-mail send); planning at each
/// call instead cost 12 µs a mail of planning and about as much of parsing.
pub const RECORD_OUTCOMES: &str = "UPDATE deliveries d
     SET status = o.status,
         last_reply = coalesce(left(o.reply, 1000), d.last_reply),
         message_id = coalesce(o.message_id, d.message_id),
         sent_at = CASE WHEN o.status = 'sent' THEN now() ELSE d.sent_at END,
         next_attempt_at = CASE WHEN o.retry_in IS NULL THEN d.next_attempt_at
                                ELSE now() + make_interval(secs => o.retry_in) END,
         ambiguous = d.ambiguous OR o.ambiguous,
         attempts = CASE WHEN o.status = 'queued' THEN d.attempts - 1 ELSE d.attempts END,
         -- a one-off mail's nonce is no longer needed once it is final
         payload = CASE WHEN o.status IN ('deferred', 'queued') THEN d.payload ELSE d.payload - 'nonce' END,
         updated_at = now()
     FROM unnest($1::int8[], $2::int4[], $3::text[], $4::text[], $5::text[], $6::float8[], $7::bool[])
          AS o(id, attempt, status, reply, message_id, retry_in, ambiguous)
     -- `IS TRUE`: the status test must not let the planner scan the partial due index
     -- (all it proves is status = 'sending'); rows found by id, through the primary key.
     -- Rows written already claimed put their entries in that index ahead of now, where
     -- no claim's ordered scan passes and marks them dead, so a scan of it grows with the
     -- send (measured: the outcome statement 25 to 70 µs a mail).
     WHERE d.id = ANY ($1) AND d.id = o.id AND d.attempts = o.attempt
       AND (d.status = 'sending') IS TRUE
     RETURNING d.id";

/// Records the outcomes of many attempts in one statement (one commit). An outcome is written
/// only while its row is still `sending` under the attempt that was claimed; returns the ids
/// written (the others were taken over by another worker after their lease ran out).
///
/// Runs on a [`KeyedPool`]: the statement is prepared once per connection and its cached plan
/// reaches the rows only through the primary key, with the ids as its index condition, at any
/// size of the table (see [`RECORD_OUTCOMES`]).
pub async fn record(db: &KeyedPool, attempts: &[Attempted<'_>]) -> sqlx::Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(attempts.len());
    let mut numbers = Vec::with_capacity(attempts.len());
    let mut statuses = Vec::with_capacity(attempts.len());
    let mut replies = Vec::with_capacity(attempts.len());
    let mut message_ids = Vec::with_capacity(attempts.len());
    let mut retries = Vec::with_capacity(attempts.len());
    let mut ambiguous = Vec::with_capacity(attempts.len());
    for a in attempts {
        let (status, reply, message_id, retry_in, amb) = columns(a.outcome);
        ids.push(a.id);
        numbers.push(a.attempt);
        statuses.push(status);
        replies.push(reply);
        message_ids.push(message_id);
        retries.push(retry_in);
        ambiguous.push(amb);
    }
    sqlx::query_scalar(RECORD_OUTCOMES)
        .bind(ids)
        .bind(numbers)
        .bind(statuses)
        .bind(replies)
        .bind(message_ids)
        .bind(retries)
        .bind(ambiguous)
        .fetch_all(db.pool())
        .await
}
