//! The background worker: claims due mail from the delivery ledger, sends it, records the outcome.
//! No database transaction is open while an SMTP conversation runs.

mod backoff;
mod batched;
mod contacts;
mod delivery;
mod prepared;
mod recorder;
mod scheduler;
mod throttle;

pub use delivery::render_update_for;
pub use prepared::{prepare, PreparedUpdate};

use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::Settings;
use crate::mail::{MailTemplates, Mailer};
use crate::store;

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
    templates: Arc<MailTemplates>,
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
        templates: Arc<MailTemplates>,
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
    ) -> Result<Arc<prepared::PreparedUpdate>, delivery::ComposeError> {
        self.prepared
            .get(&self.pool, &self.settings, update_id, false)
            .await
    }

    /// The update as it is now (for test mails of drafts, which may have changed).
    async fn prepared_fresh(
        &self,
        update_id: uuid::Uuid,
    ) -> Result<Arc<prepared::PreparedUpdate>, delivery::ComposeError> {
        self.prepared
            .get(&self.pool, &self.settings, update_id, true)
            .await
    }

    /// Runs until `shutdown` fires; the batch in hand is finished first, so no mail is cut off
    /// in the middle. The scheduler runs beside it, as its own task.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!("worker started");
        let scheduler = tokio::spawn(scheduler::run(
            self.pool.clone(),
            Arc::clone(&self.settings),
            shutdown.clone(),
        ));
        let batches = Batches {
            contacts: contacts::start(self.pool.clone()),
            recorder: recorder::start(self.pool.clone(), self.settings.worker.lease / 2),
        };
        let mut last_beat: Option<tokio::time::Instant> = None;
        while !shutdown.is_cancelled() {
            if last_beat.is_none_or(|t| t.elapsed() >= self.settings.worker.poll_interval) {
                if let Err(e) = self.beat().await {
                    tracing::error!(error = ?e, "worker heartbeat failed");
                }
                last_beat = Some(tokio::time::Instant::now());
            }
            let idle = match self.run_once(&batches).await {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) => {
                    tracing::error!(error = ?e, "worker batch failed");
                    true
                }
            };
            if idle {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(self.settings.worker.poll_interval) => {}
                }
            }
        }
        if scheduler.await.is_err() {
            tracing::error!("the scheduler task panicked");
        }
        if let Err(e) = store::workers::leave(&self.pool, self.id).await {
            tracing::warn!(error = ?e, "could not leave the worker registry");
        }
        tracing::info!("worker stopped");
    }

    /// Claims one batch, sends each mail in it concurrently, records every outcome.
    /// Returns how many mails were claimed.
    async fn run_once(&self, batches: &Batches) -> anyhow::Result<usize> {
        let claimed =
            store::deliveries::claim(&self.pool, self.claim_size(), self.settings.worker.lease)
                .await
                .context("claiming deliveries")?;
        let count = claimed.len();
        let mut tasks = JoinSet::new();
        for job in claimed {
            let (worker, batches) = (self.clone(), batches.clone());
            let permit = Arc::clone(&self.in_flight)
                .acquire_owned()
                .await
                .expect("the in-flight semaphore is never closed");
            tasks.spawn(async move {
                let done = worker.deliver(job, &batches).await;
                drop(permit);
                done
            });
        }
        while let Some(done) = tasks.join_next().await {
            if let Err(e) = done.context("delivery task panicked").and_then(|r| r) {
                tracing::error!(error = ?e, "recording a delivery failed; its lease will expire and it is retried");
            }
        }
        Ok(count)
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
