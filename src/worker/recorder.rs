//! Group commit for delivery outcomes: every finished attempt hands its outcome over and waits
//! until it is written; outcomes that arrive together are written by one statement.
//!
//! A delivery task keeps its in-flight slot until its outcome is written, so the mails a crash
//! can leave unrecorded (and send again after their lease) are still at most
//! `sending.concurrency` per worker. When the database does not answer (restarted, pool
//! exhausted), a write is tried again for up to `retry_for` (half the lease, so it lands before
//! another worker may take the rows over); the attempt-number fence makes a repeated write
//! harmless. Only after that is the outcome given up, and the mail is sent again after its lease.

use std::time::Duration;

use sqlx::PgPool;

use crate::batched::Batched;
use crate::store::deliveries::{self, Attempted, Outcome};
use crate::store::KeyedPool;

/// Most outcomes written by one statement.
const MAX_BATCH: usize = 256;
/// First wait before writing again after an error; it doubles up to `MAX_RETRY_WAIT`.
const FIRST_RETRY_WAIT: Duration = Duration::from_millis(100);
const MAX_RETRY_WAIT: Duration = Duration::from_secs(2);

/// Attempt `attempt` of delivery row `id` ended with `outcome`.
pub struct Finished {
    pub id: i64,
    pub attempt: i32,
    pub outcome: Outcome,
}

/// Answers whether each outcome was written (false: the row was taken over by another worker
/// after its lease ran out, and nothing was written).
pub type Recorder = Batched<Finished, bool>;

/// Starts the recorder, with its own connection to the database of `pool` (one statement runs
/// at a time; see `KeyedPool` for why it is a connection of its own).
pub fn start(pool: &PgPool, retry_for: Duration) -> Recorder {
    let pool = KeyedPool::from(pool);
    Batched::start(MAX_BATCH, move |finished: Vec<Finished>| {
        let pool = pool.clone();
        async move {
            let attempts: Vec<Attempted<'_>> = finished
                .iter()
                .map(|f| Attempted {
                    id: f.id,
                    attempt: f.attempt,
                    outcome: &f.outcome,
                })
                .collect();
            let deadline = tokio::time::Instant::now() + retry_for;
            let mut wait = FIRST_RETRY_WAIT;
            let written = loop {
                match deliveries::record(&pool, &attempts).await {
                    Err(e) if tokio::time::Instant::now() + wait < deadline => {
                        tracing::warn!(error = %e, ?wait, "recording outcomes failed; trying again");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(MAX_RETRY_WAIT);
                    }
                    done => break done?,
                }
            };
            Ok(finished.iter().map(|f| written.contains(&f.id)).collect())
        }
    })
}
