//! Group commit for delivery outcomes: every finished attempt hands its outcome here and waits
//! until it is written; whatever arrived while one statement was running goes into the next,
//! so under load one commit records many mails, and when idle each is written at once.
//!
//! A delivery task keeps its in-flight slot until its outcome is written, so the mails a crash
//! can leave unrecorded (and send again after their lease) are still at most
//! `sending.concurrency` per worker. When the database does not answer (restarted, pool
//! exhausted), a write is tried again for up to `retry_for` (half the lease, so it lands before
//! another worker may take the rows over); the attempt-number fence makes a repeated write
//! harmless. Only after that is the outcome given up, and the mail is sent again after its lease.

use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use crate::store::deliveries::{self, Attempted, Outcome};

/// Most outcomes written by one statement.
const MAX_BATCH: usize = 256;

struct Pending {
    id: i64,
    attempt: i32,
    outcome: Outcome,
    /// Whether the row was still ours to write (false: taken over after the lease ran out).
    written: oneshot::Sender<anyhow::Result<bool>>,
}

#[derive(Clone)]
pub struct Recorder {
    queue: mpsc::Sender<Pending>,
}

impl Recorder {
    /// Starts the writing task; it ends when every `Recorder` clone is dropped, after writing
    /// what it was handed.
    pub fn start(pool: PgPool, retry_for: Duration) -> Self {
        let (queue, pending) = mpsc::channel(MAX_BATCH * 4);
        tokio::spawn(write_loop(pool, pending, retry_for));
        Self { queue }
    }

    /// Records the outcome of attempt `attempt` of row `id`; returns once it is committed, with
    /// false when the row was taken over by another worker (nothing was written then).
    pub async fn record(&self, id: i64, attempt: i32, outcome: Outcome) -> anyhow::Result<bool> {
        let (written, answer) = oneshot::channel();
        self.queue
            .send(Pending {
                id,
                attempt,
                outcome,
                written,
            })
            .await
            .map_err(|_| anyhow::anyhow!("the outcome recorder has stopped"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the outcome recorder dropped an outcome"))?
    }
}

/// First wait before writing again after an error; it doubles up to `MAX_RETRY_WAIT`.
const FIRST_RETRY_WAIT: Duration = Duration::from_millis(100);
const MAX_RETRY_WAIT: Duration = Duration::from_secs(2);

async fn write_loop(pool: PgPool, mut pending: mpsc::Receiver<Pending>, retry_for: Duration) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while pending.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let attempts: Vec<Attempted<'_>> = batch
            .iter()
            .map(|p| Attempted {
                id: p.id,
                attempt: p.attempt,
                outcome: &p.outcome,
            })
            .collect();
        let deadline = tokio::time::Instant::now() + retry_for;
        let mut wait = FIRST_RETRY_WAIT;
        let result = loop {
            match deliveries::record(&pool, &attempts).await {
                Err(e) if tokio::time::Instant::now() + wait < deadline => {
                    tracing::warn!(error = %e, ?wait, "recording outcomes failed; trying again");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(MAX_RETRY_WAIT);
                }
                done => break done,
            }
        };
        drop(attempts);
        match result {
            Ok(written) => {
                for p in batch.drain(..) {
                    let _ = p.written.send(Ok(written.contains(&p.id)));
                }
            }
            Err(e) => {
                let reason = format!("{e:#}");
                for p in batch.drain(..) {
                    let _ = p
                        .written
                        .send(Err(anyhow::anyhow!("recording the outcome: {reason}")));
                }
            }
        }
    }
}
