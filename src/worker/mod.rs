//! The background worker: claims due mail from the delivery ledger, sends it, records the outcome.
//! No database transaction is open while an SMTP conversation runs.

mod backoff;
mod contacts;
mod delivery;
mod prepared;
mod recorder;
mod scheduler;
mod throttle;

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::Settings;
use crate::mail::{LiveTemplates, Mailer};
use crate::store;

/// Logs a delivery task that failed to record its outcome (its lease expires and it is retried).
fn log_task(done: Result<anyhow::Result<()>, tokio::task::JoinError>) {
    if let Err(e) = done.context("delivery task panicked").and_then(|r| r) {
        tracing::error!(error = ?e, "recording a delivery failed; its lease will expire and it is retried");
    }
}

/// Claims up to `size` mails: due rows first (retries, the service's own mails, rows written
/// earlier), then, to fill the claim, new rows of a sending update written as they are claimed
/// (at most `chunk` a statement).
async fn claim(
    pool: &PgPool,
    size: u32,
    lease: Duration,
    chunk: u32,
) -> sqlx::Result<Vec<store::deliveries::Claimed>> {
    let mut rows = store::deliveries::claim(pool, size, lease).await?;
    let short = size.saturating_sub(u32::try_from(rows.len()).unwrap_or(u32::MAX));
    if short > 0 {
        rows.extend(store::updates::claim_new_recipients(pool, short.min(chunk), lease).await?);
    }
    Ok(rows)
}

/// What the delivery tasks of one running worker share: their reads and writes, batched.
#[derive(Clone)]
struct Batches {
    contacts: contacts::Contacts,
    recorder: recorder::Recorder,
}

#[derive(Clone)]
pub struct Worker {
    pool: PgPool,
    settings: Arc<Settings>,
    mailer: Arc<Mailer>,
    templates: Arc<LiveTemplates>,
    prepared: Arc<prepared::PreparedCache>,
    /// This process in the `workers` registry.
    id: Uuid,
    /// Rate limits for this worker's share; replaced when the number of live workers changes.
    throttle: Arc<RwLock<(i64, Arc<throttle::Throttle>)>>,
    in_flight: Arc<Semaphore>,
}

impl Worker {
    pub fn new(
        pool: PgPool,
        settings: Arc<Settings>,
        mailer: Arc<Mailer>,
        templates: Arc<LiveTemplates>,
    ) -> Self {
        let throttle = Arc::new(throttle::Throttle::new(&settings.sending, 1));
        Self {
            in_flight: Arc::new(Semaphore::new(settings.sending.concurrency as usize)),
            pool,
            settings,
            mailer,
            templates,
            prepared: Arc::default(),
            id: Uuid::new_v4(),
            throttle: Arc::new(RwLock::new((1, throttle))),
        }
    }

    fn throttle(&self) -> Arc<throttle::Throttle> {
        Arc::clone(&self.throttle.read().expect("throttle lock").1)
    }

    /// Registers a heartbeat; when the number of live workers changed, takes a new share of
    /// the configured rates.
    async fn beat(&self) -> anyhow::Result<()> {
        let live_within = (self.settings.worker.poll_interval * 4).max(Duration::from_secs(10));
        let live = store::workers::beat(&self.pool, self.id, live_within).await?;
        let mut current = self.throttle.write().expect("throttle lock");
        if current.0 != live {
            tracing::info!(
                live_workers = live,
                "sharing the send rate among live workers"
            );
            let workers = u32::try_from(live.max(1)).unwrap_or(u32::MAX);
            *current = (
                live,
                Arc::new(throttle::Throttle::new(&self.settings.sending, workers)),
            );
        }
        Ok(())
    }

    /// How many mails to claim at once: the batch size, or fewer when the rate is so low that
    /// a full batch could not go out well within the lease (which would let another worker
    /// take the rest and send it twice).
    fn claim_size(&self) -> u32 {
        let batch = self.settings.worker.batch_size;
        match self.throttle().share_per_second {
            Some(rate) => {
                let within_lease = rate * self.settings.worker.lease.as_secs_f64() / 4.0;
                (within_lease.floor() as u32).clamp(1, batch)
            }
            None => batch,
        }
    }

    async fn prepared(
        &self,
        update_id: uuid::Uuid,
    ) -> Result<Arc<crate::mail::PreparedUpdate>, delivery::ComposeError> {
        self.prepared
            .for_send(&self.pool, &self.settings, &self.templates, update_id)
            .await
    }

    /// Runs until `shutdown` fires, then lets every mail in flight finish (none is cut off in
    /// the middle) and hands back claimed mails that had not started. The scheduler runs
    /// beside it, as its own task.
    ///
    /// A streaming pipeline: mails are claimed ahead into a small local queue (the next claim
    /// starts while the queue still holds half the in-flight limit), and each mail takes a
    /// slot of `sending.concurrency` as soon as one is free. No batch waits for its slowest
    /// mail: a recipient whose relay stalls holds only its own slot. Each slot is held until
    /// its mail's outcome is committed, so a crash duplicates at most the mails in flight.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!("worker started");
        let scheduler = tokio::spawn(scheduler::run(
            self.pool.clone(),
            Arc::clone(&self.settings),
            shutdown.clone(),
        ));
        let batches = Batches {
            contacts: contacts::start(&self.pool),
            recorder: recorder::start(&self.pool, self.settings.worker.lease / 2),
        };
        let poll = self.settings.worker.poll_interval;
        let low_water = (self.settings.sending.concurrency as usize / 2).max(1);
        let mut queue: VecDeque<store::deliveries::Claimed> = VecDeque::new();
        let mut claiming: Option<JoinHandle<sqlx::Result<Vec<store::deliveries::Claimed>>>> = None;
        let mut next_claim_at = tokio::time::Instant::now();
        let mut last_beat: Option<tokio::time::Instant> = None;
        let mut tasks = JoinSet::new();
        while !shutdown.is_cancelled() {
            if last_beat.is_none_or(|t| t.elapsed() >= poll) {
                if let Err(e) = self.beat().await {
                    tracing::error!(error = ?e, "worker heartbeat failed");
                }
                // The service's own mails (confirmation, welcome, notice) use the set as of
                // the last heartbeat; updates take the current set when they are prepared.
                if let Err(e) = self.templates.current(&self.pool).await {
                    tracing::error!(error = ?e, "reading the saved mail templates failed");
                }
                last_beat = Some(tokio::time::Instant::now());
            }
            while let Some(done) = tasks.try_join_next() {
                log_task(done);
            }
            let now = tokio::time::Instant::now();
            if queue.len() <= low_water && claiming.is_none() && now >= next_claim_at {
                let (pool, size, lease, chunk) = (
                    self.pool.clone(),
                    self.claim_size(),
                    self.settings.worker.lease,
                    self.settings.worker.recipient_chunk,
                );
                claiming = Some(tokio::spawn(async move {
                    claim(&pool, size, lease, chunk).await
                }));
            }
            if queue.is_empty() {
                let Some(claim) = claiming.take() else {
                    // Nothing due at the last look: wait for the next one, or a shutdown.
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        () = tokio::time::sleep_until(next_claim_at) => {}
                    }
                    continue;
                };
                match claim.await {
                    Ok(Ok(rows)) if !rows.is_empty() => queue.extend(rows),
                    Ok(Ok(_)) => next_claim_at = tokio::time::Instant::now() + poll,
                    Ok(Err(e)) => {
                        tracing::error!(error = ?e, "claiming deliveries failed");
                        next_claim_at = tokio::time::Instant::now() + poll;
                    }
                    Err(e) => {
                        tracing::error!(error = ?e, "the claim task panicked");
                        next_claim_at = tokio::time::Instant::now() + poll;
                    }
                }
                continue;
            }
            if let Some(claim) = claiming.take_if(|c| c.is_finished()) {
                match claim.await {
                    Ok(Ok(rows)) if !rows.is_empty() => queue.extend(rows),
                    Ok(Ok(_)) => next_claim_at = tokio::time::Instant::now() + poll,
                    Ok(Err(e)) => tracing::error!(error = ?e, "claiming deliveries failed"),
                    Err(e) => tracing::error!(error = ?e, "the claim task panicked"),
                }
            }
            let slot = tokio::select! {
                slot = Arc::clone(&self.in_flight).acquire_owned() => {
                    slot.expect("the in-flight semaphore is never closed")
                }
                () = shutdown.cancelled() => break,
            };
            let job = queue.pop_front().expect("the queue is not empty here");
            let (worker, batches) = (self.clone(), batches.clone());
            tasks.spawn(async move {
                let done = worker.deliver(job, &batches).await;
                drop(slot);
                done
            });
        }
        // Claimed mails that never started go back to the queue, their attempt not counted.
        if let Some(claim) = claiming.take() {
            if let Ok(Ok(rows)) = claim.await {
                queue.extend(rows);
            }
        }
        for job in queue {
            let back = store::deliveries::Outcome::Postponed {
                retry_in: Duration::ZERO,
                reason: "the worker stopped before sending it".into(),
            };
            let finished = recorder::Finished {
                id: job.id,
                attempt: job.attempt,
                outcome: back,
            };
            if let Err(e) = batches.recorder.ask(finished).await {
                tracing::warn!(error = ?e, "could not hand a claimed mail back; its lease will expire");
            }
        }
        while let Some(done) = tasks.join_next().await {
            log_task(done);
        }
        if scheduler.await.is_err() {
            tracing::error!("the scheduler task panicked");
        }
        if let Err(e) = store::workers::leave(&self.pool, self.id).await {
            tracing::warn!(error = ?e, "could not leave the worker registry");
        }
        tracing::info!("worker stopped");
    }

    #[tracing::instrument(skip_all, fields(delivery_id = job.id, kind = %job.kind, attempt = job.attempt))]
    async fn deliver(
        &self,
        job: store::deliveries::Claimed,
        batches: &Batches,
    ) -> anyhow::Result<()> {
        let outcome = delivery::attempt(self, &job, &batches.contacts).await;
        tracing::info!(outcome = ?delivery::summary(&outcome), "delivery attempt done");
        let failed_reply = match &outcome {
            store::deliveries::Outcome::Failed { reply, .. } => Some(reply.clone()),
            _ => None,
        };
        let recorded = batches
            .recorder
            .ask(recorder::Finished {
                id: job.id,
                attempt: job.attempt,
                outcome,
            })
            .await?;
        if !recorded {
            tracing::warn!("delivery was taken over by another worker after its lease ran out");
        }
        if let (Some(update_id), Some(reply)) = (job.update_id, failed_reply) {
            if crate::mail::enhanced_code(&reply).is_some_and(|c| c.starts_with("5.7.")) {
                let b = &self.settings.sending.breaker;
                if store::updates::trip_breaker_if_needed(
                    &self.pool,
                    update_id,
                    b.window,
                    b.percent,
                    b.min_sends,
                )
                .await?
                {
                    tracing::warn!(%update_id, "circuit breaker paused the update");
                }
            }
        }
        Ok(())
    }
}
