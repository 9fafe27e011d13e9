//! Our own pool of SMTP connections. lettre's stock transport never sets `TCP_NODELAY`, so every
//! message waits ~40 ms for a delayed ACK (see shared/PERFORMANCE.md); here each socket is opened
//! by us with `set_nodelay(true)` and handed to lettre's `AsyncSmtpConnection`. Connections stay
//! open and are reused with no extra round trip while they are busy; one idle for longer than
//! `IDLE_CHECK` is checked with NOOP first, and a reused one that turns out dead before its
//! `MAIL FROM` is answered (the relay restarted) is replaced once by a new connection, so
//! neither costs the mail an attempt. Each step of a send has its own timeout, and an error
//! after the body was written is reported as ambiguous (the relay may have the mail).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Noop, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use tokio::net::TcpStream;
use tokio::sync::{Mutex, Semaphore};

use super::transport::{SendError, SendErrorKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsMode {
    None,
    Opportunistic,
    Required,
    /// smtps://: TLS from the first byte (through lettre's own connect, so without TCP_NODELAY).
    Implicit,
}

#[derive(Debug, Clone)]
pub struct RelayConfig {
    host: String,
    port: u16,
    tls: TlsMode,
    credentials: Option<Credentials>,
    timeout: Duration,
}

impl RelayConfig {
    /// Parses a lettre-style URL: `smtp[s]://[user:pass@]host[:port][?tls=none|opportunistic|required]`.
    pub fn parse(raw: &str, timeout: Duration) -> anyhow::Result<Self> {
        let url = url::Url::parse(raw).context("not a URL")?;
        let implicit = match url.scheme() {
            "smtp" => false,
            "smtps" => true,
            other => bail!("scheme {other:?}: use smtp:// or smtps://"),
        };
        let host = url
            .host_str()
            .context("no host")?
            .trim_matches(['[', ']'])
            .to_owned();
        let tls = match (
            implicit,
            url.query_pairs()
                .find(|(k, _)| k == "tls")
                .as_ref()
                .map(|(_, v)| v.as_ref()),
        ) {
            (true, _) => TlsMode::Implicit,
            (false, None | Some("none")) => TlsMode::None,
            (false, Some("opportunistic")) => TlsMode::Opportunistic,
            (false, Some("required")) => TlsMode::Required,
            (false, Some(other)) => bail!("tls={other:?}: use none, opportunistic or required"),
        };
        let port = url.port().unwrap_or(if implicit { 465 } else { 25 });
        let credentials = if url.username().is_empty() {
            None
        } else {
            let decode = |s: &str| percent_decode(s);
            Some(Credentials::new(
                decode(url.username()),
                decode(url.password().unwrap_or("")),
            ))
        };
        Ok(Self {
            host,
            port,
            tls,
            credentials,
            timeout,
        })
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// A pooled connection idle for longer than this is checked (NOOP) before it is used again:
/// relays drop idle clients, sometimes with a last `421` that would otherwise be read as the
/// reply to our `MAIL FROM`.
const IDLE_CHECK: Duration = Duration::from_secs(2);
/// Longest wait for the reply to that NOOP.
const NOOP_TIMEOUT: Duration = Duration::from_secs(2);

pub struct SmtpPool {
    config: RelayConfig,
    hello: ClientId,
    /// Open connections and when each was last used.
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
    /// One permit per connection that may be open at once.
    slots: Semaphore,
}

/// Where in a send an error happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connect,
    Envelope,
    Body,
}

impl SmtpPool {
    /// `helo_name`: a domain name or an IP address (sent as an address literal).
    pub fn new(config: RelayConfig, size: u32, helo_name: &str) -> Self {
        let hello = match helo_name.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(ip)) => ClientId::Ipv4(ip),
            Ok(std::net::IpAddr::V6(ip)) => ClientId::Ipv6(ip),
            Err(_) => ClientId::Domain(helo_name.to_owned()),
        };
        Self {
            config,
            hello,
            idle: Mutex::new(Vec::new()),
            slots: Semaphore::new(size as usize),
        }
    }

    /// A connection ready for MAIL FROM: greeted, upgraded to TLS as configured, authenticated.
    /// With `tls=opportunistic`, a relay that advertises STARTTLS but fails it gets a second,
    /// plain connection (as Postfix does at its `may` level); with `tls=required` it is an error
    /// and nothing is sent in the clear.
    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let c = &self.config;
        let mut conn = self.open().await?;
        let wants_tls = match c.tls {
            TlsMode::Required => true,
            TlsMode::Opportunistic => conn.can_starttls(),
            TlsMode::None | TlsMode::Implicit => false,
        };
        if wants_tls {
            let upgraded = match self.tls_parameters() {
                Ok(params) => {
                    self.step(Phase::Connect, conn.starttls(params, &self.hello))
                        .await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = upgraded {
                if c.tls == TlsMode::Required {
                    return Err(e);
                }
                tracing::warn!(error = %e.reply, "STARTTLS failed; sending without TLS (smtp.url has tls=opportunistic)");
                conn = self.open().await?;
            }
        }
        if let Some(credentials) = &c.credentials {
            self.step(
                Phase::Connect,
                conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials),
            )
            .await?;
        }
        Ok(conn)
    }

    fn tls_parameters(&self) -> Result<TlsParameters, SendError> {
        TlsParameters::new(self.config.host.clone()).map_err(|e| classify(&e, Phase::Connect))
    }

    /// A new connection, greeted (EHLO): a plain TCP_NODELAY socket, or implicit TLS.
    async fn open(&self) -> Result<AsyncSmtpConnection, SendError> {
        let c = &self.config;
        if c.tls == TlsMode::Implicit {
            let params = self.tls_parameters()?;
            return self
                .step(
                    Phase::Connect,
                    AsyncSmtpConnection::connect_tokio1(
                        (c.host.as_str(), c.port),
                        Some(c.timeout),
                        &self.hello,
                        Some(params),
                        None,
                    ),
                )
                .await;
        }
        let stream = tokio::time::timeout(c.timeout, TcpStream::connect((c.host.as_str(), c.port)))
            .await
            .map_err(|_| SendError::transient("connecting to the relay timed out".into(), false))?
            .map_err(|e| SendError::transient(format!("connecting to the relay: {e}"), false))?;
        stream
            .set_nodelay(true)
            .map_err(|e| SendError::transient(format!("setting TCP_NODELAY: {e}"), false))?;
        self.step(
            Phase::Connect,
            AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello),
        )
        .await
    }

    /// Sends one message; on any error the connection is dropped, never reused.
    pub async fn send(&self, envelope: &Envelope, body: &[u8]) -> Result<Response, SendError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .expect("the pool's semaphore is never closed");
        let idle = self.idle.lock().await.pop();
        let reused = match idle {
            Some((conn, last_used)) => self.still_open(conn, last_used).await,
            None => None,
        };
        let was_reused = reused.is_some();
        let mut conn = match reused {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        let mut result = self.transaction(&mut conn, envelope, body).await;
        if was_reused && matches!(result, Err(Failure::Unanswered(_))) {
            // The relay closed this pooled connection (it restarted, or dropped us) and has
            // taken nothing from us: the mail goes on a new connection, as if this one had
            // never been in the pool.
            tracing::info!("a pooled SMTP connection was closed by the relay; reconnecting");
            abort(conn).await;
            conn = self.connect().await?;
            result = self.transaction(&mut conn, envelope, body).await;
        }
        match result {
            Ok(response) => {
                self.idle.lock().await.push((conn, Instant::now()));
                Ok(response)
            }
            Err(failure) => {
                abort(conn).await;
                Err(failure.into_error())
            }
        }
    }

    /// A pooled connection, checked with NOOP when it sat idle for a while; None when the check
    /// failed (the connection is dropped).
    async fn still_open(
        &self,
        mut conn: AsyncSmtpConnection,
        last_used: Instant,
    ) -> Option<AsyncSmtpConnection> {
        if last_used.elapsed() < IDLE_CHECK {
            return Some(conn);
        }
        match tokio::time::timeout(NOOP_TIMEOUT, conn.command(Noop)).await {
            Ok(Ok(_)) => Some(conn),
            _ => {
                tracing::info!("an idle SMTP connection no longer answers; reconnecting");
                abort(conn).await;
                None
            }
        }
    }

    async fn transaction(
        &self,
        conn: &mut AsyncSmtpConnection,
        envelope: &Envelope,
        body: &[u8],
    ) -> Result<Response, Failure> {
        let mut params = Vec::new();
        if !body.is_ascii() && conn.server_info().supports_feature(Extension::EightBitMime) {
            params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        let non_ascii = envelope
            .from()
            .into_iter()
            .chain(envelope.to())
            .any(|a: &lettre::Address| !AsRef::<str>::as_ref(a).is_ascii());
        if non_ascii && conn.server_info().supports_feature(Extension::SmtpUtfEight) {
            params.push(MailParameter::SmtpUtfEight);
        }
        let mail_from = tokio::time::timeout(
            self.config.timeout,
            conn.command(Mail::new(envelope.from().cloned(), params)),
        )
        .await;
        match mail_from {
            // No reply at all, and not for want of time: the connection is closed.
            Ok(Err(e)) if e.status().is_none() && !e.is_timeout() => {
                return Err(Failure::Unanswered(classify(&e, Phase::Envelope)));
            }
            other => self.settle(Phase::Envelope, other)?,
        };
        for to in envelope.to() {
            self.step(Phase::Envelope, conn.command(Rcpt::new(to.clone(), vec![])))
                .await?;
        }
        self.step(Phase::Envelope, conn.command(Data)).await?;
        Ok(self.step(Phase::Body, conn.message(body)).await?)
    }

    async fn step<T>(
        &self,
        phase: Phase,
        fut: impl std::future::Future<Output = Result<T, lettre::transport::smtp::Error>>,
    ) -> Result<T, SendError> {
        self.settle(phase, tokio::time::timeout(self.config.timeout, fut).await)
    }

    /// The result of a step run under the timeout.
    fn settle<T>(
        &self,
        phase: Phase,
        result: Result<Result<T, lettre::transport::smtp::Error>, tokio::time::error::Elapsed>,
    ) -> Result<T, SendError> {
        match result {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(classify(&e, phase)),
            Err(_) => Err(SendError::transient(
                format!("timed out after {:?} ({phase:?})", self.config.timeout),
                phase == Phase::Body,
            )),
        }
    }
}

/// How a transaction failed.
enum Failure {
    /// The connection was closed before `MAIL FROM` was answered: the relay took nothing.
    Unanswered(SendError),
    Other(SendError),
}

impl Failure {
    fn into_error(self) -> SendError {
        match self {
            Failure::Unanswered(e) | Failure::Other(e) => e,
        }
    }
}

impl From<SendError> for Failure {
    fn from(e: SendError) -> Self {
        Failure::Other(e)
    }
}

/// Closes a connection that will not be used again, without waiting long for the relay.
async fn abort(mut conn: AsyncSmtpConnection) {
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.abort()).await;
}

fn classify(e: &lettre::transport::smtp::Error, phase: Phase) -> SendError {
    let reply = super::transport::error_chain(e);
    let code = e.status().map(u16::from);
    // Before MAIL FROM, a refusal (a 554 greeting, a failed STARTTLS, 535 on AUTH) is about the
    // relay or our configuration, never about the recipient: it must not fail or bounce them.
    let kind = if e.is_permanent() && phase != Phase::Connect {
        SendErrorKind::Permanent
    } else {
        SendErrorKind::Transient
    };
    // A reply (positive or not) means the relay told us what it did; anything else while the
    // body was in flight leaves us not knowing.
    let ambiguous = phase == Phase::Body && code.is_none();
    SendError::new(kind, reply, code, ambiguous)
}
