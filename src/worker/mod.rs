//! The background worker: claims due mail from the delivery ledger, sends it, records the outcome.
//! No database transaction is open while an SMTP conversation runs.

mod backoff;
mod delivery;
mod prepared;
mod scheduler;

use std::sync::Arc;

use anyhow::Context;
use sqlx::PgPool;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::mail::{MailTemplates, Mailer};
use crate::store;

#[derive(Clone)]
pub struct Worker {
    pool: PgPool,
    settings: Arc<Settings>,
    mailer: Arc<Mailer>,
    templates: Arc<MailTemplates>,
    prepared: Arc<prepared::PreparedCache>,
}

impl Worker {
    pub fn new(
        pool: PgPool,
        settings: Arc<Settings>,
        mailer: Arc<Mailer>,
        templates: Arc<MailTemplates>,
    ) -> Self {
        Self {
            pool,
            settings,
            mailer,
            templates,
            prepared: Arc::default(),
        }
    }

    async fn prepared(
        &self,
        update_id: uuid::Uuid,
    ) -> anyhow::Result<Arc<prepared::PreparedUpdate>> {
        self.prepared
            .get(&self.pool, &self.settings, update_id)
            .await
    }

    /// Runs until `shutdown` fires; the batch in hand is finished first, so no mail is cut off
    /// in the middle.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!("worker started");
        let mut last_tick: Option<tokio::time::Instant> = None;
        while !shutdown.is_cancelled() {
            if last_tick.is_none_or(|t| t.elapsed() >= self.settings.worker.poll_interval) {
                if let Err(e) = scheduler::tick(&self.pool, &self.settings).await {
                    tracing::error!(error = ?e, "scheduler tick failed");
                }
                last_tick = Some(tokio::time::Instant::now());
            }
            let idle = match self.run_once().await {
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
        tracing::info!("worker stopped");
    }

    /// Claims one batch, sends each mail in it concurrently, records every outcome.
    /// Returns how many mails were claimed.
    pub async fn run_once(&self) -> anyhow::Result<usize> {
        let claimed = store::deliveries::claim(
            &self.pool,
            self.settings.worker.batch_size,
            self.settings.worker.lease,
        )
        .await
        .context("claiming deliveries")?;
        let count = claimed.len();
        let mut tasks = JoinSet::new();
        for job in claimed {
            let worker = self.clone();
            tasks.spawn(async move { worker.deliver(job).await });
        }
        while let Some(done) = tasks.join_next().await {
            if let Err(e) = done.context("delivery task panicked").and_then(|r| r) {
                tracing::error!(error = ?e, "recording a delivery failed; its lease will expire and it is retried");
            }
        }
        Ok(count)
    }

    #[tracing::instrument(skip_all, fields(delivery_id = job.id, kind = %job.kind, attempt = job.attempt))]
    async fn deliver(&self, job: store::deliveries::Claimed) -> anyhow::Result<()> {
        let outcome = delivery::attempt(self, &job).await;
        tracing::info!(outcome = ?delivery::summary(&outcome), "delivery attempt done");
        let recorded = store::deliveries::record(&self.pool, job.id, job.attempt, &outcome)
            .await
            .context("recording the delivery outcome")?;
        if !recorded {
            tracing::warn!("delivery was taken over by another worker after its lease ran out");
        }
        Ok(())
    }
}
