//! Wiring: settings → pool, templates, mailer → web server and worker, one shutdown signal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::mail::{MailTemplates, Mailer};
use crate::routes::{self, AdminPages, IpRateLimiter, Pages};
use crate::store;
use crate::worker::Worker;

/// How often the per-IP limiter forgets idle addresses.
const LIMITER_CLEANUP_EVERY: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub settings: Arc<Settings>,
    pub pages: Arc<Pages>,
    pub admin_pages: Arc<AdminPages>,
    pub mail_templates: Arc<MailTemplates>,
    pub signup_limiter: IpRateLimiter,
    pub link_limiter: IpRateLimiter,
    pub http_metrics: Arc<crate::metrics::HttpMetrics>,
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
    worker: Option<Worker>,
}

impl Application {
    /// Loads templates (a broken one fails here, not at the ten-thousandth send), binds the
    /// listener and prepares the worker when `with_worker`.
    pub async fn build(settings: Settings, with_worker: bool) -> anyhow::Result<Self> {
        let settings = Arc::new(settings);
        let pool = store::pool(&settings.database)?;
        let site_name = settings
            .mail
            .from
            .name
            .clone()
            .unwrap_or_else(|| "Newsletter".into());
        let pages = Arc::new(Pages::load(&settings.templates.dir, &site_name)?);
        let admin_pages = Arc::new(AdminPages::load(&settings.templates.dir, &site_name)?);
        let mail_templates = Arc::new(MailTemplates::load(&settings.templates.dir)?);
        let worker = if with_worker {
            Some(new_worker(
                Arc::clone(&settings),
                pool.clone(),
                Arc::clone(&mail_templates),
            )?)
        } else {
            None
        };
        let listener = TcpListener::bind(settings.server.bind)
            .await
            .with_context(|| format!("binding server.bind {}", settings.server.bind))?;
        let state = AppState {
            signup_limiter: IpRateLimiter::per_minute(settings.signup.per_ip_per_minute),
            link_limiter: IpRateLimiter::per_minute(settings.links.per_ip_per_minute),
            http_metrics: Arc::default(),
            pool,
            settings,
            pages,
            admin_pages,
            mail_templates,
        };
        Ok(Self {
            listener,
            state,
            worker,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn pool(&self) -> &PgPool {
        &self.state.pool
    }

    /// Serves until `shutdown` fires, then lets in-flight requests and the worker's current
    /// batch finish.
    pub async fn run_until(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        for limiter in [&self.state.signup_limiter, &self.state.link_limiter] {
            limiter.spawn_cleanup(LIMITER_CLEANUP_EVERY, shutdown.clone());
        }
        let worker = self.worker.map(|w| tokio::spawn(w.run(shutdown.clone())));
        let app = routes::router(self.state).into_make_service_with_connect_info::<SocketAddr>();
        tracing::info!(address = %self.listener.local_addr()?, "web server listening");
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .await
            .context("running the web server")?;
        if let Some(worker) = worker {
            worker.await.context("worker task panicked")?;
        }
        Ok(())
    }
}

/// A worker with its own templates (for `newsletter worker`).
pub fn build_worker(settings: Arc<Settings>, pool: PgPool) -> anyhow::Result<Worker> {
    let templates = Arc::new(MailTemplates::load(&settings.templates.dir)?);
    new_worker(settings, pool, templates)
}

fn new_worker(
    settings: Arc<Settings>,
    pool: PgPool,
    templates: Arc<MailTemplates>,
) -> anyhow::Result<Worker> {
    let mailer = Arc::new(Mailer::from_settings(
        &settings.smtp,
        settings.mail.dkim.as_ref(),
    )?);
    Ok(Worker::new(pool, settings, mailer, templates))
}

/// A token cancelled on SIGINT or SIGTERM.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {}
            _ = term => {}
        }
        tracing::info!("shutdown signal received");
        cancel.cancel();
    });
    token
}
