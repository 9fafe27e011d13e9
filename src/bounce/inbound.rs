//! The inbound SMTP listener (`inbound.bind`): receives bounces and complaints, nothing else.
//!
//! A small SMTP server (RFC 5321) of our own over tokio, strict and bounded: it accepts a
//! recipient only when it is a VERP address of ours (`bounces+<valid token>@`
//! `bounce.return_path_domain`), a `mailto:` unsubscribe address of ours
//! (`unsubscribe+<token>@` the same domain, `domain::mailto_unsubscribe`: a mail to it
//! unsubscribes that one person, whatever it says) or `inbound.complaints_address`, so it never
//! relays and never takes mail for anyone else. Limits: command lines of 512 octets and text lines of 8,192
//! (`500 5.5.2 line too long`; a message with such a line is not recorded),
//! `inbound.max_message_bytes` per message (`552 5.3.4` beyond, nothing recorded),
//! `inbound.timeout_seconds` per command and for the whole DATA, `inbound.session_seconds` for
//! the whole session whatever the client sends (`421` and closed), `inbound.max_sessions` open
//! at once in all and `inbound.max_sessions_per_ip` per client, `inbound.per_ip_per_minute`
//! new sessions per client (`421` at the greeting beyond), `inbound.reports_per_ip_per_minute`
//! messages per client (`451 4.7.1` at DATA beyond: its MTA tries again later, so nobody can
//! fill the database with made-up reports and no real one is lost), 100 recipients per message,
//! 10 bad commands per session. So no client can hold the listener: one address holds at most its
//! share of the sessions, each for a bounded time. No STARTTLS and no AUTH: the reports are
//! addressed to us and carry nothing secret of ours.
//!
//! A message is answered `250` only once its report is recorded; when the database fails the
//! answer is `451 4.3.0`, so the sending server keeps it and tries again.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Source;
use crate::config::Settings;
use crate::domain::client_key;
use crate::domain::verp;
use crate::limits::IpRateLimiter;

/// Longest command line, CRLF included (RFC 5321 §4.5.3.1.4).
const MAX_COMMAND_LINE: usize = 512;
/// Longest line inside DATA accepted (RFC 5321 allows 1,000; some MTAs send longer).
const MAX_TEXT_LINE: usize = 8192;
const MAX_RECIPIENTS: usize = 100;
/// The reply to a command or message line over its limit (RFC 5321 §4.5.3.1.4, §4.5.3.1.6).
const LINE_TOO_LONG: &[u8] = b"500 5.5.2 line too long\r\n";
const MAX_BAD_COMMANDS: u32 = 10;
/// How often the per-IP limiter forgets idle clients.
const LIMITER_CLEANUP_EVERY: Duration = Duration::from_secs(60);

/// The bound listener, ready to run.
pub struct InboundServer {
    listener: TcpListener,
    pool: PgPool,
    settings: Arc<Settings>,
}

impl InboundServer {
    /// Binds `inbound.bind`; None when it is empty (the listener is off).
    pub async fn bind(settings: Arc<Settings>, pool: PgPool) -> anyhow::Result<Option<Self>> {
        let Some(address) = settings.inbound.bind else {
            return Ok(None);
        };
        if settings.bounce.return_path_domain.is_empty()
            && settings.inbound.complaints_address.is_none()
        {
            tracing::warn!(
                "inbound.bind is set but bounce.return_path_domain and inbound.complaints_address \
                 are empty: the listener will refuse every recipient"
            );
        }
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("binding inbound.bind {address}"))?;
        Ok(Some(Self {
            listener,
            pool,
            settings,
        }))
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown`; sessions in progress finish their current command.
    pub async fn run(self, shutdown: CancellationToken) {
        let inbound = &self.settings.inbound;
        let sessions = Arc::new(Semaphore::new(inbound.max_sessions));
        let open = OpenSessions::new(
            inbound.max_sessions_per_ip,
            self.settings.server.ipv6_limit_prefix,
        );
        let limiter = IpRateLimiter::per_minute(
            inbound.per_ip_per_minute,
            self.settings.server.ipv6_limit_prefix,
        );
        limiter.spawn_cleanup(LIMITER_CLEANUP_EVERY, shutdown.clone());
        let reports = IpRateLimiter::per_minute(
            inbound.reports_per_ip_per_minute,
            self.settings.server.ipv6_limit_prefix,
        );
        reports.spawn_cleanup(LIMITER_CLEANUP_EVERY, shutdown.clone());
        if let Ok(address) = self.listener.local_addr() {
            tracing::info!(%address, "inbound SMTP listener for bounces and complaints");
        }
        loop {
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "inbound: accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = shutdown.cancelled() => break,
            };
            let place = match (
                open.enter(peer.ip()),
                Arc::clone(&sessions).try_acquire_owned(),
            ) {
                (None, _) => {
                    Err("421 4.7.0 Too many open sessions from your address, try again later")
                }
                (_, Err(_)) => Err("421 4.3.2 Too many sessions, try again later"),
                (Some(own), Ok(place)) => match limiter.check(Some(peer.ip())) {
                    Err(_) => Err("421 4.7.0 Too many sessions from your address, try again later"),
                    Ok(()) => Ok((own, place)),
                },
            };
            match place {
                Ok(place) => {
                    let session = Session {
                        pool: self.pool.clone(),
                        settings: Arc::clone(&self.settings),
                        peer: peer.ip(),
                        reports: reports.clone(),
                    };
                    let shutdown = shutdown.clone();
                    // The session closes itself at `session_seconds`; this bounds a client that
                    // stops reading our replies too.
                    let hard_stop = inbound.session + inbound.timeout;
                    tokio::spawn(async move {
                        tokio::select! {
                            result = tokio::time::timeout(hard_stop, session.serve(stream)) => match result {
                                Ok(Err(e)) => tracing::debug!(error = %e, "inbound session ended with an error"),
                                Err(_) => tracing::warn!("inbound: session stopped at inbound.session_seconds"),
                                Ok(Ok(())) => {}
                            },
                            () = shutdown.cancelled() => {}
                        }
                        drop(place);
                    });
                }
                Err(reply) => {
                    tracing::warn!(peer = %peer.ip(), reply, "inbound: session refused");
                    tokio::spawn(async move {
                        let mut stream = stream;
                        let _ = tokio::time::timeout(
                            Duration::from_secs(5),
                            stream.write_all(format!("{reply}\r\n").as_bytes()),
                        )
                        .await;
                    });
                }
            }
        }
    }
}

/// The sessions open per client (an IPv6 client: its network), at most `max` each.
struct OpenSessions {
    counts: Mutex<HashMap<IpAddr, usize>>,
    max: usize,
    ipv6_prefix: u8,
}

/// One open session of a client; leaving (drop) frees its place.
struct OpenSession {
    open: Arc<OpenSessions>,
    key: IpAddr,
}

impl OpenSessions {
    fn new(max: usize, ipv6_prefix: u8) -> Arc<Self> {
        Arc::new(Self {
            counts: Mutex::new(HashMap::new()),
            max,
            ipv6_prefix,
        })
    }

    /// A place for one more session of `ip`, or None when it holds `max` open already.
    fn enter(self: &Arc<Self>, ip: IpAddr) -> Option<OpenSession> {
        let key = client_key(ip, self.ipv6_prefix);
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(key).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(OpenSession {
            open: Arc::clone(self),
            key,
        })
    }
}

impl Drop for OpenSession {
    fn drop(&mut self) {
        let mut counts = self.open.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

struct Session {
    pool: PgPool,
    settings: Arc<Settings>,
    peer: IpAddr,
    /// Messages per client per minute (`inbound.reports_per_ip_per_minute`), over all its
    /// sessions.
    reports: IpRateLimiter,
}

/// Why a read from the client gave up.
enum Expired {
    /// `inbound.timeout_seconds` without the command (or the whole DATA).
    Command,
    /// `inbound.session_seconds` since the greeting.
    Session,
}

impl Expired {
    fn reply(&self) -> &'static [u8] {
        match self {
            Expired::Command => b"421 4.4.2 Timeout, closing\r\n",
            Expired::Session => b"421 4.4.2 Session time limit reached, closing\r\n",
        }
    }
}

/// Runs `read` until `timeout` from now or the session's `deadline`, whichever comes first.
async fn bounded<T>(
    timeout: Duration,
    deadline: Instant,
    read: impl std::future::Future<Output = T>,
) -> Result<T, Expired> {
    let command = Instant::now() + timeout;
    tokio::time::timeout_at(command.min(deadline), read)
        .await
        .map_err(|_| {
            if deadline <= command {
                Expired::Session
            } else {
                Expired::Command
            }
        })
}

/// A line read from the client.
enum Line {
    Text(Vec<u8>),
    TooLong,
    Closed,
}

/// Reads one line of at most `max` bytes (CRLF included). A longer line is read to its end,
/// dropped as it comes (memory stays bounded; the caller's timeout bounds the time), and
/// reported as [`Line::TooLong`].
async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    max: usize,
) -> std::io::Result<Line> {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            // A connection closed in the middle of a line: the partial line is dropped.
            return Ok(Line::Closed);
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let n = chunk.len();
        if !too_long && line.len() + n <= max {
            line.extend_from_slice(chunk);
        } else {
            too_long = true;
            line.clear();
        }
        reader.consume(n);
        if done {
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Text(line)
            });
        }
    }
}

/// A recipient the listener accepted.
#[derive(Debug, Clone, Copy)]
enum Recipient {
    /// A report: the delivery its VERP token names, or the complaints address (None).
    Report(Option<i64>),
    /// The `mailto:` unsubscribe address of one subscriber (its token not yet verified).
    Unsubscribe(crate::domain::mailto_unsubscribe::Claim),
}

impl Session {
    async fn serve(self, stream: TcpStream) -> std::io::Result<()> {
        let timeout = self.settings.inbound.timeout;
        let deadline = Instant::now() + self.settings.inbound.session;
        let max_bytes = self.settings.inbound.max_message_bytes;
        let host = self.host().to_owned();
        let (read, mut write) = stream.into_split();
        let mut reader = BufReader::new(read);
        write
            .write_all(format!("220 {host} ESMTP bounce and complaint intake\r\n").as_bytes())
            .await?;
        let mut greeted = false;
        let mut mail_from = false;
        let mut recipients: Vec<Recipient> = Vec::new();
        let mut bad = 0u32;
        loop {
            let line =
                match bounded(timeout, deadline, read_line(&mut reader, MAX_COMMAND_LINE)).await {
                    Err(expired) => {
                        write.write_all(expired.reply()).await?;
                        return Ok(());
                    }
                    Ok(line) => line?,
                };
            let line = match line {
                Line::Closed => return Ok(()),
                Line::TooLong => {
                    bad += 1;
                    write.write_all(LINE_TOO_LONG).await?;
                    if bad >= MAX_BAD_COMMANDS {
                        write
                            .write_all(b"421 4.7.0 Too many errors, closing\r\n")
                            .await?;
                        return Ok(());
                    }
                    continue;
                }
                Line::Text(line) => line,
            };
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\r', '\n']);
            let (verb, arg) = text.split_once(' ').unwrap_or((text, ""));
            let answer: String = match verb.to_ascii_uppercase().as_str() {
                "EHLO" => {
                    greeted = true;
                    (mail_from, recipients) = (false, Vec::new());
                    format!("250-{host}\r\n250-SIZE {max_bytes}\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES")
                }
                "HELO" => {
                    greeted = true;
                    (mail_from, recipients) = (false, Vec::new());
                    format!("250 {host}")
                }
                "MAIL" if !greeted => "503 5.5.1 Say EHLO first".into(),
                "MAIL" if mail_from => "503 5.5.1 Nested MAIL command".into(),
                "MAIL" => match mail_size(arg) {
                    Err(()) => "501 5.5.4 Syntax: MAIL FROM:<address>".into(),
                    Ok(Some(size)) if size > max_bytes => {
                        format!("552 5.3.4 Message too big: at most {max_bytes} bytes")
                    }
                    Ok(_) => {
                        mail_from = true;
                        "250 2.1.0 OK".into()
                    }
                },
                "RCPT" if !mail_from => "503 5.5.1 Need MAIL first".into(),
                "RCPT" if recipients.len() >= MAX_RECIPIENTS => {
                    "452 4.5.3 Too many recipients".into()
                }
                "RCPT" => match path(arg, "TO:") {
                    None => "501 5.5.4 Syntax: RCPT TO:<address>".into(),
                    Some(address) => match self.accepts(&address) {
                        Ok(recipient) => {
                            recipients.push(recipient);
                            "250 2.1.5 OK".into()
                        }
                        Err(answer) => answer.into(),
                    },
                },
                "DATA" if recipients.is_empty() => "503 5.5.1 Need RCPT first".into(),
                "DATA" if self.reports.check(Some(self.peer)).is_err() => {
                    tracing::warn!(peer = %self.peer, "inbound: more reports than inbound.reports_per_ip_per_minute; deferred");
                    (mail_from, recipients) = (false, Vec::new());
                    "451 4.7.1 Too many reports from your address, try again later".into()
                }
                "DATA" => {
                    write
                        .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                        .await?;
                    let data = bounded(timeout, deadline, read_data(&mut reader, max_bytes)).await;
                    let answer = match data {
                        Err(expired) => {
                            tracing::warn!(peer = %self.peer, "inbound: DATA not finished within inbound.timeout_seconds or inbound.session_seconds; nothing recorded");
                            write.write_all(expired.reply()).await?;
                            return Ok(());
                        }
                        Ok(Err(e)) => return Err(e),
                        Ok(Ok(Data::Closed)) => return Ok(()),
                        Ok(Ok(Data::LineTooLong)) => {
                            tracing::warn!(peer = %self.peer, "inbound: a message line over {MAX_TEXT_LINE} bytes refused; nothing recorded");
                            String::from_utf8_lossy(LINE_TOO_LONG).trim_end().to_owned()
                        }
                        Ok(Ok(Data::TooBig)) => {
                            tracing::warn!(peer = %self.peer, max_bytes, "inbound: message over inbound.max_message_bytes refused; nothing recorded");
                            format!("552 5.3.4 Message too big: at most {max_bytes} bytes")
                        }
                        Ok(Ok(Data::Message(raw))) => self.deliver(&raw, &recipients).await,
                    };
                    (mail_from, recipients) = (false, Vec::new());
                    answer
                }
                "RSET" => {
                    (mail_from, recipients) = (false, Vec::new());
                    "250 2.0.0 OK".into()
                }
                "NOOP" => "250 2.0.0 OK".into(),
                "VRFY" => "252 2.1.5 Cannot verify".into(),
                "QUIT" => {
                    write.write_all(b"221 2.0.0 Bye\r\n").await?;
                    return Ok(());
                }
                _ => {
                    bad += 1;
                    "502 5.5.1 Command not implemented".into()
                }
            };
            if answer.starts_with('5') {
                bad += 1;
            }
            write.write_all(format!("{answer}\r\n").as_bytes()).await?;
            if bad >= MAX_BAD_COMMANDS {
                write
                    .write_all(b"421 4.7.0 Too many errors, closing\r\n")
                    .await?;
                return Ok(());
            }
        }
    }

    fn host(&self) -> &str {
        let domain = &self.settings.bounce.return_path_domain;
        if domain.is_empty() {
            "localhost"
        } else {
            domain
        }
    }

    /// Whether a recipient is ours: a VERP address with a valid token, or the complaints
    /// address. Anything else is refused, so nothing is ever relayed.
    fn accepts(&self, address: &str) -> Result<Recipient, &'static str> {
        let address = address.to_ascii_lowercase();
        if self.settings.inbound.complaints_address.as_deref() == Some(address.as_str()) {
            return Ok(Recipient::Report(None));
        }
        let domain = &self.settings.bounce.return_path_domain;
        let ours = !domain.is_empty()
            && address
                .rsplit_once('@')
                .is_some_and(|(_, d)| d == domain.as_str());
        if !ours {
            return Err(
                "550 5.7.1 Relaying denied: this server only takes reports addressed to it",
            );
        }
        if let Some(claim) = crate::domain::mailto_unsubscribe::claim_of(&address, domain) {
            return Ok(Recipient::Unsubscribe(claim));
        }
        let secret = self.settings.security.secret_key.expose().as_bytes();
        verp::delivery_of(secret, &address, domain)
            .map(|id| Recipient::Report(Some(id)))
            .ok_or("550 5.1.1 No such mailbox")
    }

    /// Classifies and records a received message for each recipient; the reply to send.
    async fn deliver(&self, raw: &[u8], recipients: &[Recipient]) -> String {
        let report = super::classify(raw);
        for &recipient in recipients {
            let recipient = match recipient {
                Recipient::Report(r) => r,
                Recipient::Unsubscribe(claim) => {
                    // Whatever the subject and body: the address alone says who (RFC 2369).
                    let secret = self.settings.security.secret_key.expose().as_bytes();
                    match crate::ops::preferences::unsubscribe_by_mail(&self.pool, secret, &claim)
                        .await
                    {
                        Ok(done) => tracing::info!(
                            unsubscribed = done,
                            "inbound: a mail to a mailto: unsubscribe address"
                        ),
                        Err(e) => {
                            tracing::error!(error = %format!("{e:#}"), "inbound: an unsubscribe by mail failed; the sender will retry");
                            return "451 4.3.0 Could not record the unsubscribe, try again later"
                                .into();
                        }
                    }
                    continue;
                }
            };
            if let Err(e) = super::record(
                &self.pool,
                &self.settings,
                Source::Smtp,
                raw,
                &report,
                recipient,
            )
            .await
            {
                tracing::error!(error = %format!("{e:#}"), "inbound: recording a report failed; the sender will retry");
                return "451 4.3.0 Could not record the report, try again later".into();
            }
        }
        "250 2.0.0 OK: report recorded".into()
    }
}

/// `FROM:<address> SIZE=n` → the declared size, if any. The path itself may be empty (`<>`,
/// as bounces have).
fn mail_size(arg: &str) -> Result<Option<usize>, ()> {
    path(arg, "FROM:").ok_or(())?;
    let params = arg.rsplit_once('>').map_or("", |(_, p)| p);
    Ok(params.split_whitespace().find_map(|p| {
        let (name, value) = p.split_once('=')?;
        name.eq_ignore_ascii_case("SIZE")
            .then(|| value.parse().unwrap_or(usize::MAX))
    }))
}

/// The address in `TO:<address>` / `FROM:<address>` (`prefix` matched without regard to case,
/// spaces allowed before the `<`).
fn path(arg: &str, prefix: &str) -> Option<String> {
    let arg = arg.trim_start();
    if arg.len() < prefix.len() || !arg[..prefix.len()].eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = arg[prefix.len()..].trim_start();
    let inner = rest.strip_prefix('<')?.split_once('>')?.0;
    // A source route (`@a,@b:user@host`, RFC 5321 §C) is accepted and ignored.
    let address = inner.rsplit_once(':').map_or(inner, |(_, a)| a);
    (address.len() <= 254 && !address.contains(char::is_whitespace)).then(|| address.to_owned())
}

enum Data {
    Message(Vec<u8>),
    /// Over `max` bytes: read to its end and dropped.
    TooBig,
    /// A line over [`MAX_TEXT_LINE`]: read to its end and dropped.
    LineTooLong,
    Closed,
}

/// Reads DATA to the lone `.` line, undoing dot-stuffing; past `max` bytes, or after a line
/// over [`MAX_TEXT_LINE`], the rest is read and dropped so the client gets its answer. Only
/// CRLF `.` CRLF ends it (RFC 5321, 4.1.1.4): a `.` line after a bare LF, or ended by one, is
/// text, so that no client can end a message where an MTA in front of us would not and smuggle
/// a second one in after it.
async fn read_data<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    max: usize,
) -> std::io::Result<Data> {
    let mut message = Vec::new();
    let mut too_big = false;
    let mut line_too_long = false;
    // Whether the line before ended with CRLF (the DATA command's did).
    let mut after_crlf = true;
    loop {
        let line = match read_line(reader, MAX_TEXT_LINE).await? {
            Line::Closed => return Ok(Data::Closed),
            Line::TooLong => {
                line_too_long = true;
                message = Vec::new();
                continue;
            }
            Line::Text(line) => line,
        };
        let ends_crlf = line.ends_with(b"\r\n");
        let end = after_crlf && line == b".\r\n";
        after_crlf = ends_crlf;
        if end {
            return Ok(if line_too_long {
                Data::LineTooLong
            } else if too_big {
                Data::TooBig
            } else {
                Data::Message(message)
            });
        }
        let line = line.strip_prefix(b".").unwrap_or(&line);
        if message.len() + line.len() > max {
            too_big = true;
            message = Vec::new();
        }
        if !too_big && !line_too_long {
            message.extend_from_slice(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_read_strictly() {
        assert_eq!(path("TO:<a@b.c>", "TO:").as_deref(), Some("a@b.c"));
        assert_eq!(
            path("to: <A@B.c> NOTIFY=NEVER", "TO:").as_deref(),
            Some("A@B.c")
        );
        assert_eq!(path("FROM:<>", "FROM:").as_deref(), Some(""));
        assert_eq!(path("TO:<@relay:a@b.c>", "TO:").as_deref(), Some("a@b.c"));
        assert_eq!(path("TO:a@b.c", "TO:"), None);
        assert_eq!(path("FROM:<a@b.c>", "TO:"), None);
        assert_eq!(mail_size("FROM:<> SIZE=1000"), Ok(Some(1000)));
        assert_eq!(mail_size("FROM:<x@y.z> BODY=8BITMIME"), Ok(None));
        assert_eq!(mail_size("FROM:<> SIZE=huge"), Ok(Some(usize::MAX)));
        assert_eq!(mail_size("nonsense"), Err(()));
    }

    #[test]
    fn a_client_holds_at_most_its_share_of_open_sessions() {
        let open = OpenSessions::new(2, 64);
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        let (a, b) = (open.enter(one).unwrap(), open.enter(one).unwrap());
        assert!(open.enter(one).is_none(), "a third at once is refused");
        assert!(
            open.enter("192.0.2.2".parse().unwrap()).is_some(),
            "another client is not"
        );
        let same_net: IpAddr = "2001:db8::1".parse().unwrap();
        let _v6 = (
            open.enter(same_net).unwrap(),
            open.enter("2001:db8::2".parse().unwrap()).unwrap(),
        );
        assert!(
            open.enter("2001:db8::3".parse().unwrap()).is_none(),
            "one /64 is one client"
        );
        drop(a);
        assert!(
            open.enter(one).is_some(),
            "a session that ends frees its place"
        );
        drop(b);
    }

    #[tokio::test]
    async fn lines_are_bounded_and_data_is_unstuffed() {
        let input: &[u8] = b"short\r\n0123456789012345\r\nnext\r\n";
        let mut reader = BufReader::with_capacity(4, input);
        assert!(
            matches!(read_line(&mut reader, 10).await.unwrap(), Line::Text(l) if l == b"short\r\n")
        );
        assert!(matches!(
            read_line(&mut reader, 10).await.unwrap(),
            Line::TooLong
        ));
        assert!(
            matches!(read_line(&mut reader, 10).await.unwrap(), Line::Text(l) if l == b"next\r\n")
        );
        assert!(matches!(
            read_line(&mut reader, 10).await.unwrap(),
            Line::Closed
        ));

        let data: &[u8] = b"a\r\n..b\r\n.\r\nQUIT\r\n";
        let mut reader = BufReader::new(data);
        assert!(
            matches!(read_data(&mut reader, 100).await.unwrap(), Data::Message(m) if m == b"a\r\n.b\r\n")
        );
        // A `.` line after or before a bare LF is text: only CRLF . CRLF ends the message.
        let data: &[u8] = b"a\n.\nb\r\n.\n\r\nc\r\n.\r\nQUIT\r\n";
        let mut reader = BufReader::new(data);
        assert!(
            matches!(read_data(&mut reader, 100).await.unwrap(), Data::Message(m) if m == b"a\n\nb\r\n\n\r\nc\r\n"),
            "one message, its bare-LF dot lines unstuffed as text"
        );
        let data: &[u8] = b"0123456789\r\n0123456789\r\n.\r\n";
        let mut reader = BufReader::new(data);
        assert!(matches!(
            read_data(&mut reader, 15).await.unwrap(),
            Data::TooBig
        ));
        let long = [
            b"a\r\n".to_vec(),
            vec![b'x'; MAX_TEXT_LINE + 1],
            b"\r\n.\r\n".to_vec(),
        ]
        .concat();
        let mut reader = BufReader::new(long.as_slice());
        assert!(
            matches!(
                read_data(&mut reader, usize::MAX).await.unwrap(),
                Data::LineTooLong
            ),
            "a line over the limit is answered as such, not as a size"
        );
    }
}
