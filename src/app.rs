//! Wiring: settings → pool, templates, mailer → web server and worker, one shutdown signal.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::bounce::inbound::InboundServer;
use crate::config::Settings;
use crate::limits::IpRateLimiter;
use crate::mail::{LiveTemplates, Mailer};
use crate::routes::{self, AdminPages, Pages};
use crate::store;
use crate::worker::Worker;

/// The pool and the migrations, for the command line's wiring (`serve`, `migrate`, and each
/// command's pool): the doors name `app` and `ops`, never `store`.
pub use crate::store::{migrate, pool, wait_for_schema};

/// How often the per-IP limiter forgets idle addresses.
const LIMITER_CLEANUP_EVERY: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub settings: Arc<Settings>,
    pub pages: Arc<Pages>,
    pub admin_pages: Arc<AdminPages>,
    /// The mail templates with staff's saved versions; `cached()` for names,
    /// `current(pool)` for content.
    pub mail_templates: Arc<LiveTemplates>,
    pub signup_limiter: IpRateLimiter,
    /// Group commit for sign-ups (`store::signups::SignupWriter`).
    pub signups: crate::store::signups::SignupWriter,
    pub link_limiter: IpRateLimiter,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Sending providers' webhook keys, parsed at start-up.
    pub webhooks: Arc<routes::webhooks::WebhookKeys>,
    /// Staff logins: their rules and the places for password checks.
    pub logins: Arc<crate::ops::staff::Logins>,
    /// Single sign-on through the OpenID Provider, when `[oidc]` is enabled.
    pub oidc: Option<Arc<crate::ops::oidc::SingleSignOn>>,
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
    worker: Option<Worker>,
    /// The inbound SMTP listener for bounces and complaints, when `inbound.bind` is set.
    inbound: Option<InboundServer>,
}

impl Application {
    /// Loads templates (a broken one fails here, not at the ten-thousandth send), binds the
    /// listener and prepares the worker when `with_worker`.
    pub async fn build(settings: Settings, with_worker: bool) -> anyhow::Result<Self> {
        return_large_allocations();
        let settings = Arc::new(settings);
        let pool = store::pool(&settings.database)?;
        let site_name = settings
            .mail
            .from
            .name
            .clone()
            .unwrap_or_else(|| "Newsletter".into());
        let files = settings.templates.files();
        let pages = Arc::new(Pages::load(&files, &site_name)?);
        let admin_pages = Arc::new(AdminPages::load(&files, &site_name)?);
        let mail_templates = Arc::new(LiveTemplates::load(&settings)?);
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
        let inbound = InboundServer::bind(Arc::clone(&settings), pool.clone()).await?;
        let state = AppState {
            signup_limiter: IpRateLimiter::per_minute(
                settings.signup.per_ip_per_minute,
                settings.server.ipv6_limit_prefix,
            ),
            link_limiter: IpRateLimiter::per_minute(
                settings.links.per_ip_per_minute,
                settings.server.ipv6_limit_prefix,
            ),
            signups: crate::store::signups::SignupWriter::start(pool.clone()),
            metrics: Arc::default(),
            webhooks: routes::webhooks::keys(&settings.webhooks)?,
            logins: Arc::new(crate::ops::staff::Logins::new(&settings)),
            oidc: crate::ops::oidc::SingleSignOn::new(&settings)?.map(Arc::new),
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
            inbound,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The port of the inbound SMTP listener, when it is on.
    pub fn inbound_port(&self) -> Option<u16> {
        self.inbound
            .as_ref()
            .and_then(|i| i.local_addr().ok())
            .map(|a| a.port())
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
        if self.worker.is_some() {
            tokio::spawn(crate::bounce::mailbox::run(
                Arc::clone(&self.state.settings),
                self.state.pool.clone(),
                shutdown.clone(),
            ));
        }
        if let Some(oidc) = self.state.oidc.clone() {
            tokio::spawn(async move { oidc.read_at_start().await });
        }
        let worker = self.worker.map(|w| tokio::spawn(w.run(shutdown.clone())));
        let inbound = self.inbound.map(|i| tokio::spawn(i.run(shutdown.clone())));
        tokio::spawn(resume_imports(
            self.state.pool.clone(),
            Arc::clone(&self.state.settings),
            shutdown.clone(),
        ));
        let server = self.state.settings.server.clone();
        let app = routes::router(self.state).layer(
            tower_http::timeout::RequestBodyTimeoutLayer::new(server.body_read_timeout),
        );
        tracing::info!(address = %self.listener.local_addr()?, "web server listening");
        serve(self.listener, app, &server, shutdown.clone()).await;
        if let Some(worker) = worker {
            worker.await.context("worker task panicked")?;
        }
        if let Some(inbound) = inbound {
            inbound.await.context("inbound listener task panicked")?;
        }
        Ok(())
    }
}

/// Runs import jobs left queued or unfinished (by a process that stopped), now and every half
/// `worker.import_lease_seconds`, until `shutdown`.
async fn resume_imports(pool: sqlx::PgPool, settings: Arc<Settings>, shutdown: CancellationToken) {
    let every = settings.worker.import_lease / 2;
    loop {
        crate::ops::imports::run_pending(pool.clone(), Arc::clone(&settings)).await;
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Serves HTTP/1.1 on `listener` until `shutdown`, then lets open requests finish. At most
/// `server.max_connections` connections at once (more wait in the kernel's backlog); a
/// connection that takes longer than `server.header_read_timeout` to send a request's header
/// (the first, or the next one on a kept-alive connection) is closed, so clients that send
/// nothing, or a byte at a time, cannot hold a place for long.
async fn serve(
    listener: TcpListener,
    app: axum::Router,
    server: &crate::config::ServerSettings,
    shutdown: CancellationToken,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt;

    let places = Arc::new(tokio::sync::Semaphore::new(server.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(server.header_read_timeout);
    loop {
        let place = tokio::select! {
            place = Arc::clone(&places).acquire_owned() => place.expect("never closed"),
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait a little instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            app.clone().oneshot(request.map(axum::body::Body::new))
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(place);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Makes large allocations (4 MiB and more) go back to the system when they are freed. glibc
/// serves them with `mmap` at first, but raises that threshold to the size of the first one
/// freed, so every later 19 MiB of argon2 memory (a login) came from its arenas and stayed
/// there: 40 logins at once left a process at 1 GB. A fixed threshold keeps them in `mmap`.
pub fn return_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes two integers and changes a setting of the allocator.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}

/// How long to wait after a failed accept before the next.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// A worker with its own templates (for `newsletter worker`).
pub fn build_worker(settings: Arc<Settings>, pool: PgPool) -> anyhow::Result<Worker> {
    let templates = Arc::new(LiveTemplates::load(&settings)?);
    new_worker(settings, pool, templates)
}

fn new_worker(
    settings: Arc<Settings>,
    pool: PgPool,
    templates: Arc<LiveTemplates>,
) -> anyhow::Result<Worker> {
    let base_url = &settings.server.base_url;
    if !base_url.is_https() && !base_url.is_loopback() {
        tracing::warn!(
            base_url = base_url.as_str(),
            "server.base_url is not https: the links in every mail travel in the clear, and \
             mails carry no List-Unsubscribe-Post header, so mail clients offer no one-click \
             unsubscribe (RFC 8058 needs https); set an https server.base_url"
        );
    }
    if let Some(dkim) = &settings.mail.dkim {
        let from = settings.mail.from.email.domain();
        if !crate::mail::aligned(from, &dkim.domain) {
            tracing::warn!(
                from_domain = from,
                dkim_domain = dkim.domain.as_str(),
                "mail.dkim.domain is not aligned with the domain of mail.from: receivers fail \
                 DMARC for every mail; sign with the From domain (or a parent or subdomain of it)"
            );
        }
    }
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
