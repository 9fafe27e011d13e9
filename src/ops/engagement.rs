//! What readers do, in aggregate only: an update's links counted through `/l/{code}`.
//! Nothing here records who clicked (README, "What readers do: counted, not watched").

use std::collections::HashMap;

use sqlx::PgPool;

use crate::config::Settings;
use crate::domain::subscriber_link::LinkPurpose;
use crate::domain::UpdateRecord;
use crate::mail::markdown;
use crate::store::links;

/// Whether `url` is a link whose clicks are counted: http(s), and not one of this service's
/// own pages (unsubscribe, preferences, the archive), which are never rewritten.
fn countable(settings: &Settings, url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return false;
    }
    let Ok(base) = url::Url::parse(settings.server.base_url.as_str()) else {
        return true;
    };
    !(parsed.origin() == base.origin()
        && parsed.path().starts_with(base.path().trim_end_matches('/')))
}

/// `record` (an update about to go out) with each countable link of its body (intro and news
/// items) replaced by its `<base_url>/l/{code}` address, the same for every recipient; with
/// `engagement.count_clicks` off, as it was. Test mails and previews never come here.
///
/// Errors: the database could not store or read the codes.
pub async fn count_links(
    pool: &PgPool,
    settings: &Settings,
    record: &mut UpdateRecord,
) -> anyhow::Result<()> {
    if !settings.engagement.count_clicks {
        return Ok(());
    }
    let mut urls: Vec<String> = Vec::new();
    let found = markdown::link_destinations(&record.intro)
        .into_iter()
        .chain(record.news_items.iter().filter_map(|i| i.url.clone()));
    for url in found {
        // A longer link (an intro may hold one) is not counted: the Markdown renderer turns
        // it into `#` (`domain::safe_url`), and `update_links` could not hold every one.
        if url.len() <= crate::domain::MAX_URL_CHARS
            && countable(settings, &url)
            && !urls.contains(&url)
        {
            urls.push(url);
        }
    }
    let codes = links::codes(pool, record.id, &urls).await?;
    // With last activity remembered, each reader's copy carries their activity token where
    // the mark stands (`mail::render_update`).
    let personal = if settings.engagement.remember_last_activity {
        format!("?a={}", crate::mail::ACTIVITY_MARK)
    } else {
        String::new()
    };
    let redirects: HashMap<String, String> = codes
        .into_iter()
        .map(|(url, code)| {
            let to = settings
                .server
                .base_url
                .join(&format!("/l/{code}{personal}"));
            (url, to)
        })
        .collect();
    record.intro = markdown::rewrite_links(&record.intro, &redirects);
    for item in &mut record.news_items {
        if let Some(to) = item.url.as_ref().and_then(|u| redirects.get(u)) {
            item.url = Some(to.clone());
        }
    }
    Ok(())
}

/// Counts a click on `code` and returns where it leads; `None` (nothing counted) for anything
/// that is not the code of a stored link. `activity`: the `a` parameter of the link, a reader's
/// activity token; only while `engagement.remember_last_activity` is on, and only when it is
/// genuine and current, does it mark that reader active ([`note_activity`]); otherwise it is
/// ignored, and nothing about who clicked is written.
pub async fn follow(
    pool: &PgPool,
    settings: &Settings,
    code: &str,
    activity: Option<&str>,
) -> anyhow::Result<Option<String>> {
    if !links::is_code(code) {
        return Ok(None);
    }
    let Some(url) = links::follow(pool, code).await? else {
        return Ok(None);
    };
    if let Some(raw) = activity.filter(|_| settings.engagement.remember_last_activity) {
        let secret = settings.security.secret_key.expose().as_bytes();
        if let Some((reader, _)) =
            super::preferences::verified(pool, secret, raw, LinkPurpose::Activity).await?
        {
            note_activity(pool, settings, reader).await?;
        }
    }
    Ok(Some(as_location(&url)))
}

/// Sets `last_active_on` of `subscriber` to today (UTC) while
/// `engagement.remember_last_activity` is on (a click, a preferences-page visit, a
/// confirmation), and confirms a lapsed person again (also while it is off); nothing else about
/// them changes.
pub async fn note_activity(
    pool: &PgPool,
    settings: &Settings,
    subscriber: uuid::Uuid,
) -> anyhow::Result<()> {
    if settings.engagement.remember_last_activity {
        crate::store::subscribers::mark_active(pool, subscriber).await?;
    } else {
        // No date kept; a person lapsed while it was on still comes back.
        crate::store::hygiene::unlapse(pool, subscriber).await?;
    }
    Ok(())
}

/// `url` as a `Location` value: serialized by the URL standard (an IDN host as its A-label,
/// spaces and non-ASCII percent-encoded), as the mail's own href would have it.
fn as_location(url: &str) -> String {
    url::Url::parse(url).map_or_else(|_| url.to_owned(), |u| u.to_string())
}

/// Where `code` leads, without counting (a `HEAD`).
pub async fn target(pool: &PgPool, code: &str) -> anyhow::Result<Option<String>> {
    if !links::is_code(code) {
        return Ok(None);
    }
    Ok(links::target(pool, code)
        .await?
        .map(|url| as_location(&url)))
}

pub use crate::store::reports::{ProviderCounts, ReplyGroup, UpdateReport};

/// Days the dashboard's complaint budget looks back.
pub const BUDGET_DAYS: i32 = 7;

/// The complaint budget of the last [`BUDGET_DAYS`] days: update mail taken by the relay and the
/// complaints it drew, in all (first) and by mailbox provider, with Gmail's lines
/// (`domain::report::COMPLAINT_RATE_GOOD`, `COMPLAINT_RATE_LIMIT`) to judge them by.
///
/// Errors: the database.
pub async fn complaint_budget(pool: &PgPool) -> anyhow::Result<Vec<ProviderCounts>> {
    crate::store::reports::complaint_budget(pool, BUDGET_DAYS).await
}

/// The report of update `id` (`None`: no such update): its ledger counted, later bounces and
/// complaints, unsubscribes through its links, clicks per link, by provider, refusals grouped
/// by reply code.
pub async fn report(pool: &PgPool, id: uuid::Uuid) -> anyhow::Result<Option<UpdateReport>> {
    crate::store::reports::update_report(pool, id).await
}

/// Counts an unsubscribe that came through update `update`'s own link (its footer or its
/// List-Unsubscribe header); nothing when the person was never sent that update.
pub async fn unsubscribed_through(
    pool: &PgPool,
    update: uuid::Uuid,
    subscriber: uuid::Uuid,
) -> anyhow::Result<()> {
    crate::store::reports::count_unsubscribe(pool, update, subscriber).await
}

/// The report as CSV (RFC 4180): one `section,name,value` row per figure, link, provider and
/// reply group, for a spreadsheet; every cell formula-safe (`subscribers::formula_safe`).
pub fn report_csv(report: &UpdateReport) -> String {
    let mut rows: Vec<[String; 3]> = vec![["section".into(), "name".into(), "value".into()]];
    for (name, value) in [
        ("recipients", report.recipients),
        ("sent", report.sent),
        ("failed", report.failed),
        ("skipped", report.skipped),
        ("queued", report.queued),
        ("bounced_later", report.bounced_later),
        ("complaints", report.complaints),
        ("unsubscribes", report.unsubscribes),
    ] {
        rows.push(["total".into(), name.into(), value.to_string()]);
    }
    for link in &report.links {
        rows.push(["clicks".into(), link.url.clone(), link.clicks.to_string()]);
    }
    for p in &report.providers {
        for (what, n) in [
            ("delivered", p.delivered),
            ("bounced", p.bounced),
            ("complained", p.complained),
        ] {
            rows.push([
                "provider".into(),
                format!("{} {what}", p.provider),
                n.to_string(),
            ]);
        }
    }
    for g in &report.replies {
        rows.push(["failed".into(), g.code.clone(), g.failed.to_string()]);
        rows.push(["deferred".into(), g.code.clone(), g.deferred.to_string()]);
    }
    let mut out = csv::Writer::from_writer(Vec::new());
    for row in rows {
        out.write_record(
            row.iter()
                .map(|c| super::subscribers::formula_safe(c).into_owned()),
        )
        .expect("writing CSV to memory");
    }
    String::from_utf8(out.into_inner().expect("writing CSV to memory"))
        .expect("CSV of UTF-8 cells is UTF-8")
}
