//! Group commit for delivery outcomes: every finished attempt hands its outcome here and waits
//! until it is written; whatever arrived while one statement was running goes into the next,
//! so under load one commit records many mails, and when idle each is written at once.
//!
//! A delivery task keeps its in-flight slot until its outcome is written, so the mails a crash
//! can leave unrecorded (and send again after their lease) are still at most
//! `sending.concurrency` per worker.

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
    pub fn start(pool: PgPool) -> Self {
        let (queue, pending) = mpsc::channel(MAX_BATCH * 4);
        tokio::spawn(write_loop(pool, pending));
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

async fn write_loop(pool: PgPool, mut pending: mpsc::Receiver<Pending>) {
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
        let result = deliveries::record(&pool, &attempts).await;
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
