//! "Check links": every link of an update (its intro's and its news items'), fetched when staff
//! ask and only then, through the guarded client of `crate::fetch` (http(s) only, no internal
//! address unless `feeds.allow_private_addresses`, `feeds.timeout_seconds`, `feeds.max_redirects`).
//! A URL is fetched at most once an hour ([`FRESH_FOR`]): a result younger than that is shown
//! again. A link fails when no answer came or the final answer (after redirects) was not 2xx.

use std::time::Duration;

use sqlx::PgPool;
use std::sync::Arc;
use uuid::Uuid;

use super::updates::UpdateError;
use super::Actor;
use crate::config::Settings;
use crate::mail::markdown;
use crate::store::link_checks as store;
pub use crate::store::link_checks::LinkCheck;

/// How long a result stands before the URL may be fetched again.
pub const FRESH_FOR: Duration = Duration::from_secs(3600);
/// Most links one update's check covers (the first, in order of appearance).
pub const MAX_LINKS: usize = 100;
/// Links fetched at once.
const CONCURRENT: usize = 8;
/// The longest one check may take in all; a link not reached by then is listed as not checked.
pub const TOTAL_LIMIT: Duration = Duration::from_secs(60);

/// An update's links and their last results.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct LinkReport {
    /// Every http(s) link of the update, in order of appearance, at most [`MAX_LINKS`].
    pub links: Vec<String>,
    /// The links that failed, with why.
    pub failed: Vec<LinkCheck>,
    /// The links that answered 2xx.
    pub ok: Vec<LinkCheck>,
    /// Links with no result younger than an hour (never checked, not reached in time, or being
    /// checked by another check now).
    pub unchecked: Vec<String>,
}

/// The http(s) links of update `id` (its current version), in order, each once.
async fn links_of(pool: &PgPool, id: Uuid) -> Result<Vec<String>, UpdateError> {
    let record = crate::store::updates::get(pool, id)
        .await?
        .ok_or(UpdateError::NotFound)?;
    let mut links: Vec<String> = Vec::new();
    let found = markdown::link_destinations(&record.intro)
        .into_iter()
        .chain(record.news_items.iter().filter_map(|i| i.url.clone()));
    for url in found {
        let web = url::Url::parse(&url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if web && url.len() <= crate::domain::MAX_URL_CHARS && !links.contains(&url) {
            links.push(url);
        }
        if links.len() == MAX_LINKS {
            break;
        }
    }
    Ok(links)
}

/// The results on record for update `id`'s links, fetching nothing.
///
/// Errors: no such update; the database.
pub async fn results(pool: &PgPool, id: Uuid) -> Result<LinkReport, UpdateError> {
    let links = links_of(pool, id).await?;
    let found = store::recent(pool, &links, FRESH_FOR.as_secs_f64()).await?;
    Ok(report(links, found))
}

/// Fetches each link of update `id` without a result younger than an hour, records what came
/// back, and returns every link's result. Runs at most [`TOTAL_LIMIT`], in a task of its own:
/// a caller that goes away (a browser closed, a proxy's timeout) does not leave it half done.
///
/// Audited (`check-links`, with the counts) as `actor`'s.
///
/// Errors: no such update; the database; the client could not be built.
pub async fn check(
    pool: &PgPool,
    settings: &Settings,
    actor: &Actor,
    id: Uuid,
) -> Result<LinkReport, UpdateError> {
    let (pool, settings, actor) = (pool.clone(), settings.clone(), actor.clone());
    tokio::spawn(async move {
        let report = check_now(&pool, &settings, id).await?;
        // Who had the service fetch what: in the audit log, with the outcome.
        super::audit::record(
            &pool,
            &actor,
            "check-links",
            Some(&id.to_string()),
            serde_json::json!({
                "links": report.links.len(), "failed": report.failed.len(),
                "unchecked": report.unchecked.len(),
            }),
        )
        .await?;
        Ok(report)
    })
    .await
    .map_err(|e| UpdateError::Internal(anyhow::anyhow!("the link check stopped: {e}")))?
}

async fn check_now(
    pool: &PgPool,
    settings: &Settings,
    id: Uuid,
) -> Result<LinkReport, UpdateError> {
    let links = links_of(pool, id).await?;
    // A claim older than two whole checks belongs to a check that died (a killed process).
    let stale = (TOTAL_LIMIT * 2).as_secs_f64();
    let due = store::claim(pool, &links, FRESH_FOR.as_secs_f64(), stale).await?;
    let client =
        crate::fetch::client(&settings.feeds, "link checker").map_err(UpdateError::Internal)?;
    let (limit, allow_private) = (
        settings.feeds.timeout,
        settings.feeds.allow_private_addresses,
    );
    let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENT));
    let mut fetches = tokio::task::JoinSet::new();
    for url in due.clone() {
        let (client, slots) = (client.clone(), Arc::clone(&slots));
        fetches.spawn(async move {
            let _slot = slots.acquire_owned().await;
            let (status, error) = fetch(&client, &url, limit, allow_private).await;
            (url, status, error)
        });
    }
    let mut fetched = Vec::new();
    let deadline = tokio::time::Instant::now() + TOTAL_LIMIT;
    // What is not back by the deadline stays unchecked (the set aborts it when dropped).
    while let Ok(Some(done)) = tokio::time::timeout_at(deadline, fetches.join_next()).await {
        if let Ok(result) = done {
            fetched.push(result);
        }
    }
    for (url, status, error) in &fetched {
        store::record(pool, url, *status, error.as_deref()).await?;
    }
    // Not reached within the check's time: not a result; they stay unchecked.
    let missed: Vec<String> = due
        .iter()
        .filter(|u| !fetched.iter().any(|(f, _, _)| f == *u))
        .cloned()
        .collect();
    store::release(pool, &missed).await?;
    results(pool, id).await
}

/// One GET (the body is not read): the final status, and why it failed.
async fn fetch(
    client: &reqwest::Client,
    url: &str,
    limit: Duration,
    allow_private: bool,
) -> (Option<i32>, Option<String>) {
    let parsed = match reqwest::Url::parse(url) {
        Ok(u) => u,
        Err(e) => return (None, Some(format!("not a URL: {e}"))),
    };
    if let Err(e) = crate::fetch::check_url(&parsed, allow_private) {
        return (None, Some(e));
    }
    match tokio::time::timeout(limit, client.get(parsed).send()).await {
        Err(_) => (None, Some("timed out".to_owned())),
        Ok(Err(e)) => (None, Some(crate::fetch::describe(&e))),
        Ok(Ok(response)) => {
            let status = response.status();
            let code = i32::from(status.as_u16());
            if status.is_success() {
                (Some(code), None)
            } else {
                (Some(code), Some(format!("the server answered {status}")))
            }
        }
    }
}

fn report(links: Vec<String>, found: Vec<LinkCheck>) -> LinkReport {
    let mut out = LinkReport {
        links: Vec::new(),
        failed: Vec::new(),
        ok: Vec::new(),
        unchecked: Vec::new(),
    };
    for link in &links {
        match found.iter().find(|f| &f.url == link) {
            // A check under way (another's): no result yet.
            Some(f) if f.status.is_none() && f.error.as_deref() == Some(store::BEING_CHECKED) => {
                out.unchecked.push(link.clone());
            }
            Some(f) if f.error.is_some() => out.failed.push(f.clone()),
            Some(f) => out.ok.push(f.clone()),
            None => out.unchecked.push(link.clone()),
        }
    }
    out.links = links;
    out
}
