//! Feed polling, its own task: claims a due feed (`FOR UPDATE SKIP LOCKED` and a lease, so no
//! two workers fetch one feed at once), fetches it with a conditional GET, parses it and stores
//! its new entries as news items, or records the error on the feed. One broken feed never
//! stops the others. A feed is read every `poll_minutes` of its own (else `feeds.poll_minutes`);
//! one that keeps failing waits twice as long after each failure, up to a day
//! (`domain::feed::next_wait`), until a good poll.
//!
//! Fetching is guarded: http(s) only, a whole-fetch timeout, a body-size limit, a redirect
//! limit, and (unless `feeds.allow_private_addresses`) no loopback, private, link-local or other
//! internal address, checked for IP literals and for every address a name resolves to,
//! redirects included, so a feed URL cannot reach into the service's own network.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::StatusCode;
use sqlx::PgPool;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{FeedSettings, Settings};
use crate::domain::{next_wait, parse_feed};
use crate::store::feeds::{self as store, Claimed, PollResult};

/// Feeds fetched at once by one worker.
const CONCURRENT_FETCHES: usize = 4;
/// How often the task looks for due feeds (or `worker.poll_interval_ms`, when longer).
const TICK: Duration = Duration::from_secs(1);

pub async fn run(pool: PgPool, settings: Arc<Settings>, shutdown: CancellationToken) {
    let client = match client(&settings.feeds) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = ?e, "cannot build the feed client; feeds are not polled");
            return;
        }
    };
    let tick = TICK.max(settings.worker.poll_interval);
    while !shutdown.is_cancelled() {
        if let Err(e) = poll_due(&pool, &settings, &client, &shutdown).await {
            tracing::error!(error = ?e, "polling feeds failed");
        }
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(tick) => {}
        }
    }
}

/// Polls every due feed, a few at a time.
async fn poll_due(
    pool: &PgPool,
    settings: &Arc<Settings>,
    client: &reqwest::Client,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let lease = settings.feeds.timeout * 2 + Duration::from_secs(30);
    let mut fetches = JoinSet::new();
    loop {
        while fetches.len() < CONCURRENT_FETCHES && !shutdown.is_cancelled() {
            let Some(feed) = store::claim_due(pool, lease)
                .await
                .context("claiming a due feed")?
            else {
                break;
            };
            let (pool, settings, client) = (pool.clone(), Arc::clone(settings), client.clone());
            fetches.spawn(async move { poll_one(&pool, &settings, &client, feed).await });
        }
        match fetches.join_next().await {
            None => return Ok(()),
            Some(Ok(Ok(()))) => {}
            Some(Ok(Err(e))) => tracing::error!(error = ?e, "recording a feed poll failed"),
            Some(Err(e)) => tracing::error!(error = ?e, "a feed poll panicked"),
        }
    }
}

#[tracing::instrument(skip_all, fields(feed_id = %feed.id))]
async fn poll_one(
    pool: &PgPool,
    settings: &Settings,
    client: &reqwest::Client,
    feed: Claimed,
) -> anyhow::Result<()> {
    let limits = &settings.feeds;
    let interval = feed
        .poll_minutes
        .and_then(|m| u64::try_from(m).ok())
        .map_or(limits.poll_every, |m| Duration::from_secs(60 * m));
    let fetched = tokio::time::timeout(limits.timeout, fetch(client, limits, &feed))
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "no complete answer within {} s",
                limits.timeout.as_secs()
            ))
        });
    let parsed;
    let result = match &fetched {
        Err(error) => PollResult::Failed(error),
        Ok(Fetch::NotModified) => PollResult::NotModified,
        Ok(Fetch::Body {
            body,
            location,
            etag,
            last_modified,
        }) => match parse_feed(body, Some(location), feed.topic.as_deref()) {
            Err(error) => {
                parsed = error;
                PollResult::Failed(&parsed)
            }
            Ok(feed_doc) => {
                let recorded = store::record_poll(
                    pool,
                    &feed,
                    interval,
                    PollResult::Fetched {
                        title: &feed_doc.title,
                        entries: &feed_doc.entries,
                        etag: etag.as_deref(),
                        last_modified: last_modified.as_deref(),
                    },
                )
                .await
                .context("storing a feed's entries")?;
                log_recorded(recorded, "fetched");
                return Ok(());
            }
        },
    };
    let (outcome, wait) = match &result {
        PollResult::Failed(e) => {
            let failures = u32::try_from(feed.failures).unwrap_or(0).saturating_add(1);
            let wait = next_wait(interval, failures);
            tracing::warn!(error = %e, failures, wait_s = wait.as_secs(), "feed poll failed");
            ("failed", wait)
        }
        _ => ("not modified", interval),
    };
    let recorded = store::record_poll(pool, &feed, wait, result)
        .await
        .context("recording a feed poll")?;
    log_recorded(recorded, outcome);
    Ok(())
}

fn log_recorded(recorded: Option<u64>, outcome: &str) {
    match recorded {
        Some(added) => tracing::info!(added, outcome, "feed polled"),
        None => tracing::warn!("the feed's poll was taken over after its lease ran out"),
    }
}

enum Fetch {
    NotModified,
    Body {
        body: Vec<u8>,
        /// The URL the body came from, after redirects: relative links resolve against it.
        location: String,
        etag: Option<String>,
        last_modified: Option<String>,
    },
}

/// One conditional GET within the limits; the error is a sentence for staff.
async fn fetch(
    client: &reqwest::Client,
    limits: &FeedSettings,
    feed: &Claimed,
) -> Result<Fetch, String> {
    let url = reqwest::Url::parse(&feed.url).map_err(|e| format!("bad URL: {e}"))?;
    check_url(&url, limits.allow_private_addresses)?;
    let mut headers = HeaderMap::new();
    if let Some(v) = feed
        .etag
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        headers.insert(header::IF_NONE_MATCH, v);
    }
    if let Some(v) = feed
        .last_modified
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        headers.insert(header::IF_MODIFIED_SINCE, v);
    }
    let mut response = client
        .get(url)
        .headers(headers)
        .send()
        .await
        .map_err(|e| describe(&e))?;
    let status = response.status();
    if status == StatusCode::NOT_MODIFIED {
        return Ok(Fetch::NotModified);
    }
    if !status.is_success() {
        return Err(format!("the server answered {status}"));
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !(essence.is_empty()
        || essence.contains("xml")
        || essence == "text/plain"
        || essence == "application/octet-stream")
    {
        return Err(format!(
            "the content type is {essence}, not an RSS or Atom feed (XML)"
        ));
    }
    let too_big = || format!("the feed is larger than {} bytes", limits.max_bytes);
    if response
        .content_length()
        .is_some_and(|n| n > limits.max_bytes)
    {
        return Err(too_big());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
        if body.len() as u64 + chunk.len() as u64 > limits.max_bytes {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    let header_text = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    Ok(Fetch::Body {
        location: response.url().to_string(),
        etag: header_text(header::ETAG),
        last_modified: header_text(header::LAST_MODIFIED),
        body,
    })
}

/// A reqwest error with its causes, as one line.
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_redirect() {
        "redirect refused".to_owned()
    } else {
        "fetch failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// http(s) only, and no internal address written as an IP literal (names are checked when
/// they are resolved).
fn check_url(url: &reqwest::Url, allow_private: bool) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{} is not http or https", url.scheme()));
    }
    let ip = match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        Some(url::Host::Domain(_)) => return Ok(()),
        None => return Err("the URL has no host".into()),
    };
    if allow_private || is_public(ip) {
        Ok(())
    } else {
        Err(format!(
            "{ip} is an internal address; feeds are fetched from public addresses only \
             (feeds.allow_private_addresses)"
        ))
    }
}

fn client(limits: &FeedSettings) -> anyhow::Result<reqwest::Client> {
    let max_redirects = limits.max_redirects;
    let allow_private = limits.allow_private_addresses;
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > max_redirects {
            return attempt.error(format!("more than {max_redirects} redirects"));
        }
        match check_url(attempt.url(), allow_private) {
            Ok(()) => attempt.follow(),
            Err(e) => attempt.error(e),
        }
    });
    reqwest::Client::builder()
        .user_agent(concat!(
            "newsletter/",
            env!("CARGO_PKG_VERSION"),
            " (feed reader)"
        ))
        .timeout(limits.timeout)
        .connect_timeout(limits.timeout)
        .redirect(policy)
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver { allow_private }))
        .build()
        .context("building the feed HTTP client")
}

/// Resolves names with the system resolver and keeps only public addresses (unless allowed).
struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if kept.is_empty() {
                let message = if found.is_empty() {
                    format!("{host} has no address")
                } else {
                    format!(
                        "{host} resolves only to internal addresses; feeds are fetched from \
                         public addresses only (feeds.allow_private_addresses)"
                    )
                };
                return Err(message.into());
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether `ip` is an ordinary public unicast address (not loopback, private, link-local,
/// shared, documentation, benchmarking, multicast, reserved or unspecified).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || (first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
                || (first == 0x0064 && v6.segments()[1] == 0xff9b) // NAT64
                || v6 == Ipv6Addr::from(1u128))
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_unspecified()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn only_http_and_https_urls_to_public_literals_pass() {
        let check = |u: &str| check_url(&reqwest::Url::parse(u).unwrap(), false);
        assert!(check("https://example.org/feed").is_ok());
        assert!(check("http://93.184.216.34/feed").is_ok());
        assert!(check("http://127.0.0.1:8080/feed").is_err());
        assert!(check("http://[::1]/feed").is_err());
        assert!(check("http://169.254.169.254/latest/meta-data").is_err());
        assert!(check("file:///etc/passwd").is_err());
        assert!(check_url(&reqwest::Url::parse("http://127.0.0.1/").unwrap(), true).is_ok());
    }
}
