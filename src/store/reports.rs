//! An update's report: its ledger counted, the reports that came back for it, its links'
//! clicks and the unsubscribes through its own links. Aggregates only.

use std::collections::BTreeMap;

use anyhow::Context;
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use super::links::{self, LinkClicks};
use crate::domain::report::{explain, provider_of, reply_group, PROVIDERS};

/// What became of an update's mail. Every recipient is in exactly one of `sent`, `failed`,
/// `skipped` and `queued`, which add up to `recipients`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UpdateReport {
    /// Recipients: one delivery each, made when it started (`audience` counts them then).
    pub recipients: i64,
    /// The audience counted at the start, or, when every row was written before that count
    /// ran, the rows written (null for an update that has not started).
    pub audience: Option<i64>,
    /// Taken by the relay.
    pub sent: i64,
    /// Refused for good, or given up on.
    pub failed: i64,
    /// Not sent, with the reason in the ledger (left since, no news item in their topics).
    pub skipped: i64,
    /// Still to go: queued, deferred or being sent.
    pub queued: i64,
    /// Taken by the relay, then reported undeliverable (a DSN or a provider's webhook).
    pub bounced_later: i64,
    /// Reported as spam by the reader (ARF, a feedback loop or a provider's webhook).
    pub complaints: i64,
    /// People who unsubscribed through this update's own links (its footer or its
    /// List-Unsubscribe header).
    pub unsubscribes: i64,
    /// Each link of the update in order of appearance, with its clicks (`engagement.count_clicks`).
    pub links: Vec<LinkClicks>,
    /// By mailbox provider (the large ones, then `others`).
    pub providers: Vec<ProviderCounts>,
    /// Failed and deferred mail grouped by the relay's reply code, the largest group first.
    pub replies: Vec<ReplyGroup>,
}

/// One mailbox provider's share of an update.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProviderCounts {
    /// `gmail.com`, `yahoo.com`, `outlook.com/hotmail.com`, `icloud.com` or `others`.
    pub provider: String,
    pub delivered: i64,
    /// Refused for good, or bounced after being taken.
    pub bounced: i64,
    pub complained: i64,
    /// `complained / delivered` (0 when nothing was delivered); Gmail's lines are 0.001 and 0.003.
    pub complaint_rate: f64,
}

/// Failed or deferred mail with one reply code.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReplyGroup {
    /// The basic and enhanced status codes, e.g. `550 5.7.26`; `other` without a code.
    pub code: String,
    pub failed: i64,
    pub deferred: i64,
    /// What it means and what to do.
    pub explanation: String,
}

/// The report of update `id`; `None` when there is no such update.
pub async fn update_report(pool: &PgPool, id: Uuid) -> anyhow::Result<Option<UpdateReport>> {
    let head: Option<(Option<i64>, i64)> = sqlx::query_as(
        // Workers may write every row before the count after the start runs (a small
        // audience): then the rows, all written, are the audience.
        "SELECT coalesce(u.recipients_expected,
                         CASE WHEN u.started_at IS NOT NULL AND u.recipients_complete
                              THEN (SELECT count(*) FROM deliveries
                                    WHERE update_id = u.id AND kind = 'update') END),
                (SELECT count(*) FROM deliveries
                 WHERE update_id = u.id AND kind = 'update' AND unsubscribed_through)
         FROM updates u WHERE u.id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
    .context("reading an update for its report")?;
    let Some((audience, unsubscribes)) = head else {
        return Ok(None);
    };
    let (sent, failed, skipped, queued, bounced_later, complaints): (i64, i64, i64, i64, i64, i64) =
        sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status = 'sent'),
                    count(*) FILTER (WHERE status = 'failed'),
                    count(*) FILTER (WHERE status = 'skipped'),
                    count(*) FILTER (WHERE status IN ('queued', 'deferred', 'sending')),
                    count(*) FILTER (WHERE status = 'sent' AND report = 'hard'),
                    count(*) FILTER (WHERE report = 'complaint')
             FROM deliveries WHERE update_id = $1 AND kind = 'update'",
        )
        .bind(id)
        .fetch_one(pool)
        .await
        .context("counting an update's ledger")?;
    let by_domain: Vec<(Option<String>, i64, i64, i64)> = sqlx::query_as(
        "SELECT split_part(s.email_normalized, '@', 2),
                count(*) FILTER (WHERE d.status = 'sent'),
                count(*) FILTER (WHERE d.status = 'failed' OR d.report = 'hard'),
                count(*) FILTER (WHERE d.report = 'complaint')
         FROM deliveries d LEFT JOIN subscribers s ON s.id = d.subscriber_id
         WHERE d.update_id = $1 AND d.kind = 'update'
         GROUP BY 1",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .context("counting an update by provider")?;
    let providers = by_provider(by_domain);
    let replies: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT coalesce(last_reply, ''), status, count(*)
         FROM deliveries
         WHERE update_id = $1 AND kind = 'update'
           AND (status = 'failed' OR (status IN ('deferred', 'queued') AND last_reply IS NOT NULL))
         GROUP BY 1, 2",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .context("grouping an update's refusals")?;
    let mut groups: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for (reply, status, n) in replies {
        let g = groups.entry(reply_group(&reply)).or_default();
        if status == "failed" {
            g.0 += n;
        } else {
            g.1 += n;
        }
    }
    let mut replies: Vec<ReplyGroup> = groups
        .into_iter()
        .map(|(code, (failed, deferred))| ReplyGroup {
            explanation: explain(&code).to_owned(),
            code,
            failed,
            deferred,
        })
        .collect();
    replies.sort_by_key(|g| std::cmp::Reverse(g.failed + g.deferred));
    Ok(Some(UpdateReport {
        recipients: sent + failed + skipped + queued,
        audience,
        sent,
        failed,
        skipped,
        queued,
        bounced_later,
        complaints,
        unsubscribes,
        links: links::clicks(pool, id).await?,
        providers,
        replies,
    }))
}

/// Counts an unsubscribe through update `update`'s own link: once per person and update, and
/// only when that update was sent to them (a link naming another update, or one they were
/// skipped for, counts nothing).
pub async fn count_unsubscribe(
    pool: &PgPool,
    update: Uuid,
    subscriber: Uuid,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE deliveries SET unsubscribed_through = true
         WHERE update_id = $1 AND subscriber_id = $2 AND kind = 'update' AND status = 'sent'
           AND NOT unsubscribed_through",
    )
    .bind(update)
    .bind(subscriber)
    .execute(pool)
    .await
    .context("counting an unsubscribe")?;
    Ok(())
}

/// Rows of (recipient domain, delivered, bounced, complained) summed by mailbox provider, the
/// large ones first then `others` (`domain::report::PROVIDERS`), each with its complaint rate.
fn by_provider(by_domain: Vec<(Option<String>, i64, i64, i64)>) -> Vec<ProviderCounts> {
    let mut providers: BTreeMap<&str, (i64, i64, i64)> = BTreeMap::new();
    for (domain, delivered, bounced, complained) in by_domain {
        let p = providers
            .entry(provider_of(domain.as_deref().unwrap_or("")))
            .or_default();
        p.0 += delivered;
        p.1 += bounced;
        p.2 += complained;
    }
    PROVIDERS
        .iter()
        .map(|name| {
            let (delivered, bounced, complained) = providers.get(name).copied().unwrap_or_default();
            ProviderCounts::new(name, delivered, bounced, complained)
        })
        .collect()
}

impl ProviderCounts {
    /// The counts of `provider`, with their complaint rate (0 when nothing was delivered).
    fn new(provider: &str, delivered: i64, bounced: i64, complained: i64) -> Self {
        Self {
            provider: provider.to_owned(),
            delivered,
            bounced,
            complained,
            complaint_rate: if delivered > 0 {
                complained as f64 / delivered as f64
            } else {
                0.0
            },
        }
    }
}

/// The complaint budget: update mail the relay took in the last `days` days (by when it was
/// sent), and how much of it drew a complaint, in all and by mailbox provider. The first row
/// is everyone (`provider` = `all`).
pub async fn complaint_budget(pool: &PgPool, days: i32) -> anyhow::Result<Vec<ProviderCounts>> {
    let by_domain: Vec<(Option<String>, i64, i64, i64)> = sqlx::query_as(
        "SELECT split_part(s.email_normalized, '@', 2),
                count(*) FILTER (WHERE d.status = 'sent'),
                count(*) FILTER (WHERE d.report = 'hard'),
                count(*) FILTER (WHERE d.report = 'complaint')
         FROM deliveries d LEFT JOIN subscribers s ON s.id = d.subscriber_id
         WHERE d.kind = 'update' AND d.status = 'sent'
           AND d.sent_at > now() - make_interval(days => $1)
         GROUP BY 1",
    )
    .bind(days)
    .fetch_all(pool)
    .await
    .context("counting the last days' mail by provider")?;
    let providers = by_provider(by_domain);
    let sum = |f: fn(&ProviderCounts) -> i64| providers.iter().map(f).sum::<i64>();
    let all = ProviderCounts::new(
        "all",
        sum(|p| p.delivered),
        sum(|p| p.bounced),
        sum(|p| p.complained),
    );
    Ok(std::iter::once(all).chain(providers).collect())
}
