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
use crate::fetch::{check_url, describe};
use crate::store::feeds::{self as store, Claimed, PollResult};

/// Feeds fetched at once by one worker.
const CONCURRENT_FETCHES: usize = 4;
/// How often the task looks for due feeds (or `worker.poll_interval_ms`, when longer).
const TICK: Duration = Duration::from_secs(1);

pub async fn run(pool: PgPool, settings: Arc<Settings>, shutdown: CancellationToken) {
    let client = match crate::fetch::client(&settings.feeds, "feed reader") {
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
