//! The mailbox poller (`bounce.imap_url`): for setups where bounces and complaints land in an
//! ordinary mailbox. Every `bounce.imap_poll_seconds` it logs in (IMAP4rev1, RFC 3501; TLS for
//! `imaps://`), selects `bounce.imap_folder`, and for each message not yet done:
//!
//! 1. claims it in PostgreSQL by (mailbox, UIDVALIDITY, UID) for a lease, so any number of
//!    processes may poll one mailbox and each message is processed once;
//! 2. fetches it without marking it read (`BODY.PEEK[]`), classifies and records it;
//! 3. only then moves it to `bounce.imap_processed_folder`, or (that key empty) flags it
//!    `\Seen` and `NewsletterProcessed`; the claim is marked done.
//!
//! When processing fails (the database is away), the claim is released and the message stays
//! where it was, unflagged, for the next poll: nothing is lost. A message of more than
//! `inbound.max_message_bytes` is flagged `NewsletterTooBig` and left for staff.
//!
//! A small client of our own: LOGIN, SELECT, UID SEARCH, UID FETCH, UID STORE, UID MOVE,
//! LOGOUT, with literals; every read bounded (lines of 64 KiB, literals of the message limit)
//! and timed out (`inbound.timeout_seconds`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::Source;
use crate::config::{ImapSettings, Settings};
use crate::store::mailbox as store;

/// The keyword a processed message gets when there is no processed folder.
const DONE_KEYWORD: &str = "NewsletterProcessed";
const TOO_BIG_KEYWORD: &str = "NewsletterTooBig";
/// Longest response line (without literals).
const MAX_LINE: usize = 64 * 1024;
/// Messages handled per poll (the rest wait for the next).
const MAX_PER_POLL: usize = 500;
/// How long a done claim is kept.
const KEEP_DONE_CLAIMS: Duration = Duration::from_secs(30 * 24 * 3600);

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One IMAP session.
struct Session {
    io: BufReader<Box<dyn Stream>>,
    tag: u32,
    timeout: Duration,
    max_literal: usize,
}

/// A response: its untagged lines (literals inline) and the tagged status line.
struct Response {
    untagged: Vec<Vec<u8>>,
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl Session {
    async fn connect(
        imap: &ImapSettings,
        timeout: Duration,
        max_literal: usize,
    ) -> anyhow::Result<Self> {
        let address = format!("{}:{}", imap.host, imap.port);
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(&address))
            .await
            .context("connecting timed out")?
            .with_context(|| format!("connecting to {address}"))?;
        let stream: Box<dyn Stream> = if imap.tls {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .context("TLS settings")?
            .with_root_certificates(roots)
            .with_no_client_auth();
            let name = rustls_pki_types::ServerName::try_from(imap.host.clone())
                .context("the IMAP host name")?;
            let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
                .context("the TLS handshake with the IMAP server")?;
            Box::new(tls)
        } else {
            Box::new(tcp)
        };
        let mut session = Self {
            io: BufReader::new(stream),
            tag: 0,
            timeout,
            max_literal,
        };
        let greeting = session.line().await?;
        if !greeting.starts_with(b"* OK") && !greeting.starts_with(b"* PREAUTH") {
            bail!(
                "unexpected IMAP greeting: {}",
                String::from_utf8_lossy(&greeting).trim()
            );
        }
        Ok(session)
    }

    async fn line(&mut self) -> anyhow::Result<Vec<u8>> {
        let mut line = Vec::new();
        let read = tokio::time::timeout(
            self.timeout,
            (&mut self.io)
                .take(MAX_LINE as u64)
                .read_until(b'\n', &mut line),
        )
        .await
        .context("the IMAP server did not answer in time")??;
        if read == 0 {
            bail!("the IMAP server closed the connection");
        }
        if !line.ends_with(b"\n") {
            bail!("an IMAP response line over {MAX_LINE} bytes");
        }
        Ok(line)
    }

    /// Sends a command and reads its response; an error unless it ends `OK`.
    async fn command(&mut self, command: &str) -> anyhow::Result<Response> {
        self.tag += 1;
        let tag = format!("n{}", self.tag);
        let io = self.io.get_mut();
        io.write_all(format!("{tag} {command}\r\n").as_bytes())
            .await?;
        io.flush().await?;
        let mut untagged = Vec::new();
        loop {
            let mut line = self.line().await?;
            // A line ending in {n} is followed by n bytes, then the rest of the line.
            while let Some(n) = literal_length(&line) {
                if n > self.max_literal {
                    bail!("an IMAP literal of {n} bytes, over the limit");
                }
                let mut literal = vec![0u8; n];
                tokio::time::timeout(self.timeout, self.io.read_exact(&mut literal))
                    .await
                    .context("the IMAP server did not send the literal in time")??;
                line.extend_from_slice(&literal);
                line.extend_from_slice(&self.line().await?);
            }
            if line.starts_with(tag.as_bytes()) {
                let status = String::from_utf8_lossy(&line[tag.len()..])
                    .trim()
                    .to_owned();
                if status.starts_with("OK") {
                    return Ok(Response { untagged });
                }
                let verb = command.split(' ').next().unwrap_or("");
                bail!("IMAP {verb} refused: {status}");
            }
            untagged.push(line);
        }
    }
}

/// `… {123}\r\n` → 123.
fn literal_length(line: &[u8]) -> Option<usize> {
    let line = line
        .strip_suffix(b"\r\n")
        .or_else(|| line.strip_suffix(b"\n"))?;
    let line = line.strip_suffix(b"}")?;
    let open = line.iter().rposition(|&b| b == b'{')?;
    std::str::from_utf8(&line[open + 1..])
        .ok()?
        .trim_end_matches('+')
        .parse()
        .ok()
}

/// The UIDs of `* SEARCH 1 2 3`.
fn search_uids(response: &Response) -> Vec<u32> {
    response
        .untagged
        .iter()
        .filter_map(|l| l.strip_prefix(b"* SEARCH"))
        .flat_map(|rest| {
            String::from_utf8_lossy(rest)
                .split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// The number in `[UIDVALIDITY n]` of a SELECT response.
fn uid_validity(response: &Response) -> Option<i64> {
    response.untagged.iter().find_map(|l| {
        let text = String::from_utf8_lossy(l);
        let rest = &text[text.find("[UIDVALIDITY ")? + 13..];
        rest[..rest.find(']')?].trim().parse().ok()
    })
}

/// The message of a `* n FETCH (UID u BODY[] {len}\r\n<bytes>)` line (or `RFC822.SIZE n`).
fn fetched_body(response: &Response) -> Option<Vec<u8>> {
    response.untagged.iter().find_map(|l| {
        let start = find(l, b"BODY[] {")?;
        let after = &l[start + 8..];
        let close = after.iter().position(|&b| b == b'}')?;
        let n: usize = std::str::from_utf8(&after[..close]).ok()?.parse().ok()?;
        let body_start = start + 8 + close + 3;
        l.get(body_start..body_start + n).map(<[u8]>::to_vec)
    })
}

fn fetched_size(response: &Response) -> Option<usize> {
    response.untagged.iter().find_map(|l| {
        let start = find(l, b"RFC822.SIZE ")? + 12;
        let digits: String = l[start..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .map(|&b| b as char)
            .collect();
        digits.parse().ok()
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Polls the mailbox until `shutdown`, when `bounce.imap_url` is set.
pub async fn run(settings: Arc<Settings>, pool: PgPool, shutdown: CancellationToken) {
    let Some(imap) = settings.bounce.imap.clone() else {
        return;
    };
    tracing::info!(host = %imap.host, folder = %imap.folder, "polling the bounce mailbox");
    loop {
        match poll_once(&settings, &pool).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(messages = n, "bounce mailbox: reports processed"),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "bounce mailbox: poll failed; trying again later")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(imap.poll_interval) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// One poll: processes the messages not yet done; returns how many this poller processed.
pub async fn poll_once(settings: &Settings, pool: &PgPool) -> anyhow::Result<usize> {
    let imap = settings
        .bounce
        .imap
        .as_ref()
        .context("bounce.imap_url is empty")?;
    let max = settings.inbound.max_message_bytes;
    let mut session = Session::connect(imap, settings.inbound.timeout, max + 1024).await?;
    session
        .command(&format!(
            "LOGIN {} {}",
            quoted(&imap.user),
            quoted(imap.password.expose())
        ))
        .await?;
    let selected = session
        .command(&format!("SELECT {}", quoted(&imap.folder)))
        .await?;
    let validity = uid_validity(&selected).context("SELECT gave no UIDVALIDITY")?;
    let mailbox = format!("{}@{}:{}/{}", imap.user, imap.host, imap.port, imap.folder);
    let uids = search_uids(
        &session
            .command(&format!(
                "UID SEARCH UNDELETED UNKEYWORD {DONE_KEYWORD} UNKEYWORD {TOO_BIG_KEYWORD}"
            ))
            .await?,
    );
    let mut processed = 0;
    for uid in uids.into_iter().take(MAX_PER_POLL) {
        if !store::claim(pool, &mailbox, validity, uid, settings.inbound.timeout * 4).await? {
            continue;
        }
        match process(&mut session, settings, pool, imap, uid, max).await {
            Ok(()) => {
                store::done(pool, &mailbox, validity, uid).await?;
                processed += 1;
            }
            Err(e) => {
                tracing::warn!(uid, error = %format!("{e:#}"), "bounce mailbox: processing a message failed; it stays in the mailbox for the next poll");
                store::release(pool, &mailbox, validity, uid).await?;
            }
        }
    }
    let _ = session.command("LOGOUT").await;
    store::purge_done(pool, KEEP_DONE_CLAIMS).await?;
    Ok(processed)
}

async fn process(
    session: &mut Session,
    settings: &Settings,
    pool: &PgPool,
    imap: &ImapSettings,
    uid: u32,
    max: usize,
) -> anyhow::Result<()> {
    let size = fetched_size(
        &session
            .command(&format!("UID FETCH {uid} (RFC822.SIZE)"))
            .await?,
    )
    .context("FETCH gave no size")?;
    if size > max {
        tracing::warn!(uid, size, max, "bounce mailbox: message over inbound.max_message_bytes left for staff, flagged {TOO_BIG_KEYWORD}");
        session
            .command(&format!(
                "UID STORE {uid} +FLAGS.SILENT ({TOO_BIG_KEYWORD})"
            ))
            .await?;
        return Ok(());
    }
    let raw = fetched_body(
        &session
            .command(&format!("UID FETCH {uid} (BODY.PEEK[])"))
            .await?,
    )
    .context("FETCH gave no message")?;
    let to = delivered_to(&raw);
    let mailto = to.as_deref().and_then(|to| {
        crate::domain::mailto_unsubscribe::claim_of(to, &settings.bounce.return_path_domain)
    });
    if let Some(claim) = mailto {
        // A mail to a `mailto:` unsubscribe address (RFC 2369): whatever it says, the address
        // alone says who; a forged token changes nothing. It is no report.
        let secret = settings.security.secret_key.expose().as_bytes();
        let done = crate::ops::preferences::unsubscribe_by_mail(pool, secret, &claim).await?;
        tracing::info!(
            uid,
            unsubscribed = done,
            "bounce mailbox: a mail to a mailto: unsubscribe address"
        );
    } else {
        let report = super::classify(&raw);
        // A report sent to a VERP address names its mail by the token in the address it came to.
        let verp = to.and_then(|to| {
            crate::domain::verp::delivery_of(
                settings.security.secret_key.expose().as_bytes(),
                &to,
                &settings.bounce.return_path_domain,
            )
        });
        super::record(pool, settings, Source::Imap, &raw, &report, verp).await?;
    }
    match &imap.processed_folder {
        Some(folder) => {
            session
                .command(&format!("UID MOVE {uid} {}", quoted(folder)))
                .await?
        }
        None => {
            session
                .command(&format!(
                    "UID STORE {uid} +FLAGS.SILENT (\\Seen {DONE_KEYWORD})"
                ))
                .await?
        }
    };
    Ok(())
}

/// The address a message was delivered to: `Delivered-To`, `X-Original-To`, or `To`.
fn delivered_to(raw: &[u8]) -> Option<String> {
    let message = mail_parser::MessageParser::default().parse_headers(raw)?;
    ["Delivered-To", "X-Original-To"]
        .iter()
        .find_map(|h| {
            message
                .header_raw(*h)
                .map(|v| v.trim().trim_matches(['<', '>']).to_owned())
        })
        .or_else(|| {
            message
                .to()
                .and_then(|t| t.first())
                .and_then(|a| a.address())
                .map(str::to_owned)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_read() {
        assert_eq!(
            literal_length(b"* 1 FETCH (UID 7 BODY[] {42}\r\n"),
            Some(42)
        );
        assert_eq!(literal_length(b"* OK done\r\n"), None);
        let r = Response {
            untagged: vec![
                b"* OK [UIDVALIDITY 1764550000] UIDs valid\r\n".to_vec(),
                b"* SEARCH 3 9 12\r\n".to_vec(),
                b"* 1 FETCH (UID 9 RFC822.SIZE 5 BODY[] {5}\r\nHello)\r\n".to_vec(),
            ],
        };
        assert_eq!(uid_validity(&r), Some(1_764_550_000));
        assert_eq!(search_uids(&r), vec![3, 9, 12]);
        assert_eq!(fetched_body(&r).as_deref(), Some(&b"Hello"[..]));
        assert_eq!(fetched_size(&r), Some(5));
        assert_eq!(quoted(r#"pa"ss\word"#), r#""pa\"ss\\word""#);
    }
}
