//! Bounces and complaints that arrive after the relay took a mail: finding the delivery a
//! report is about, recording the report with its effects in one transaction, the complaint
//! breaker, and what staff read (`GET /api/v1/bounces`).

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgExecutor, Row};
use uuid::Uuid;

use super::consent::{self, ConsentEvent, RequestOrigin};
use super::preferences::address_hash;
use super::seconds;

/// The mail a report is about, as far as it is known.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Target {
    pub delivery_id: Option<i64>,
    pub update_id: Option<Uuid>,
    pub subscriber_id: Option<Uuid>,
    /// The subscriber's canonical address (to check the report's recipient against).
    pub address: Option<String>,
}

fn target(r: &sqlx::postgres::PgRow) -> Target {
    Target {
        delivery_id: r.get("id"),
        update_id: r.get("update_id"),
        subscriber_id: r.get("subscriber_id"),
        address: r.get("email_normalized"),
    }
}

/// The delivery row `id` (a VERP token names it).
pub async fn by_delivery(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<Target>> {
    let row = sqlx::query(
        "SELECT d.id, d.update_id, d.subscriber_id, s.email_normalized FROM deliveries d
         LEFT JOIN subscribers s ON s.id = d.subscriber_id WHERE d.id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await?;
    Ok(row.as_ref().map(target))
}

/// The delivery of update `update_id` to `subscriber_id` (an update mail's Message-ID names
/// both), when the ledger says it was handed to the relay (or is being: its outcome may not
/// be written yet).
pub async fn by_update_and_subscriber(
    db: impl PgExecutor<'_>,
    update_id: Uuid,
    subscriber_id: Uuid,
) -> sqlx::Result<Option<Target>> {
    let row = sqlx::query(
        "SELECT d.id, d.update_id, d.subscriber_id, s.email_normalized FROM deliveries d
         LEFT JOIN subscribers s ON s.id = d.subscriber_id
         WHERE d.update_id = $1 AND d.subscriber_id = $2
           AND (d.status IN ('sending', 'sent') OR d.ambiguous)",
    )
    .bind(update_id)
    .bind(subscriber_id)
    .fetch_optional(db)
    .await?;
    Ok(row.as_ref().map(target))
}

/// The delivery whose random Message-ID key is `key` (mails that are not updates), when the
/// ledger says it was handed to the relay (or is being).
pub async fn by_message_key(db: impl PgExecutor<'_>, key: Uuid) -> sqlx::Result<Option<Target>> {
    let row = sqlx::query(
        "SELECT d.id, d.update_id, d.subscriber_id, s.email_normalized FROM deliveries d
         LEFT JOIN subscribers s ON s.id = d.subscriber_id
         WHERE d.message_key = $1 AND (d.status IN ('sending', 'sent') OR d.ambiguous)",
    )
    .bind(key)
    .fetch_optional(db)
    .await?;
    Ok(row.as_ref().map(target))
}

/// The subscriber with this canonical address and their latest mail handed to the relay (a
/// provider event that names only the recipient; never a report that came by mail).
pub async fn by_address(db: impl PgExecutor<'_>, address: &str) -> sqlx::Result<Option<Target>> {
    let row = sqlx::query(
        "SELECT d.id, d.update_id, s.id AS subscriber_id, s.email_normalized
         FROM subscribers s
         LEFT JOIN LATERAL (SELECT id, update_id FROM deliveries
                            WHERE subscriber_id = s.id AND status = 'sent'
                            ORDER BY sent_at DESC LIMIT 1) d ON true
         WHERE s.email_normalized = $1",
    )
    .bind(address)
    .fetch_optional(db)
    .await?;
    Ok(row.as_ref().map(target))
}

/// A report to record.
pub struct NewReport<'a> {
    /// `smtp`, `imap`, `ses`, `postmark`, `sendgrid` or `mailgun`.
    pub source: &'static str,
    /// `hard`, `soft`, `complaint`, `auto_reply` or `unknown`.
    pub kind: &'static str,
    pub status_code: Option<&'a str>,
    pub detail: &'a str,
    /// The original mail's Message-ID as the report states it.
    pub message_id: Option<&'a str>,
    /// None: unmatched, kept for staff.
    pub target: Option<&'a Target>,
    /// The report as received; at most `max_raw_bytes` of it are kept.
    pub raw: &'a [u8],
    pub max_raw_bytes: usize,
}

/// When a subscriber stops being mailed because of reports.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub hard_limit: u32,
    pub soft_limit: u32,
    pub soft_window: Duration,
}

/// What recording a report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The same report (byte for byte) was recorded before: nothing done.
    Duplicate,
    /// Kept (and counted); the subscriber's status did not change.
    Recorded,
    /// The subscriber is now `bounced`.
    Bounced,
    /// The subscriber is now `complained`: unsubscribed from everything and suppressed.
    Complained,
}

/// Records a report and its effects, in the caller's transaction: the report (raw text cut to
/// `max_raw_bytes`), the delivery row's `report` (the strongest of complaint, hard, soft), and
/// for a matched subscriber: a hard bounce counts toward `hard_limit`; soft ones make them
/// `bounced` at `soft_limit` mails within `soft_window` (see [`bounce`]); a complaint
/// unsubscribes them from every list, marks them `complained` and puts the SHA-256 of their
/// address on the suppression list. A status change goes into the consent log (source
/// `report`). A report received before byte for byte is not recorded again
/// ([`Effect::Duplicate`]).
pub async fn record(
    tx: &mut PgConnection,
    report: &NewReport<'_>,
    limits: Limits,
) -> anyhow::Result<Effect> {
    let fingerprint: [u8; 32] = Sha256::digest(report.raw).into();
    let kept = &report.raw[..report.raw.len().min(report.max_raw_bytes)];
    // Cut on a character boundary; NUL cannot be stored in text.
    let raw = String::from_utf8_lossy(kept).replace('\0', "\u{FFFD}");
    let target = report.target.cloned().unwrap_or_default();
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO bounce_reports (source, kind, status_code, detail, delivery_id, update_id,
                                     subscriber_id, matched, raw, raw_truncated, fingerprint,
                                     message_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (fingerprint) DO NOTHING RETURNING id",
    )
    .bind(report.source)
    .bind(report.kind)
    .bind(report.status_code)
    .bind(report.detail.replace('\0', ""))
    .bind(target.delivery_id)
    .bind(target.update_id)
    .bind(target.subscriber_id)
    .bind(report.target.is_some())
    .bind(&raw)
    .bind(kept.len() < report.raw.len())
    .bind(fingerprint.as_slice())
    .bind(report.message_id.map(|m| m.replace('\0', "")))
    .fetch_optional(&mut *tx)
    .await
    .context("recording the report")?;
    if inserted.is_none() {
        return Ok(Effect::Duplicate);
    }
    let counts = matches!(report.kind, "hard" | "soft" | "complaint");
    if let (Some(delivery), true) = (target.delivery_id, counts) {
        sqlx::query(
            "UPDATE deliveries SET report = CASE
                 WHEN report = 'complaint' OR $2 = 'complaint' THEN 'complaint'
                 WHEN report = 'hard' OR $2 = 'hard' THEN 'hard'
                 ELSE 'soft' END
             WHERE id = $1",
        )
        .bind(delivery)
        .bind(report.kind)
        .execute(&mut *tx)
        .await
        .context("marking the delivery")?;
    }
    let effect = match (target.subscriber_id, report.kind) {
        (Some(id), "hard") => bounce(tx, id, true, limits).await?,
        (Some(id), "soft") => bounce(tx, id, false, limits).await?,
        (Some(id), "complaint") => complain(tx, id).await?,
        _ => Effect::Recorded,
    };
    Ok(effect)
}

/// A mail reached `subscriber_id` (a provider's `delivered` event): their soft bounces
/// reported until now no longer count.
pub async fn clear_soft_bounces(tx: &mut PgConnection, subscriber_id: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE subscribers SET soft_bounces_cleared_at = now() WHERE id = $1")
        .bind(subscriber_id)
        .execute(tx)
        .await?;
    Ok(())
}

/// Marks the ids of a provider's call as seen (`ids`: SHA-256 of each) and returns those that
/// were not seen before. Inserted in one statement in a fixed order, so two calls sharing ids
/// wait for each other instead of deadlocking.
pub async fn first_seen(
    tx: &mut PgConnection,
    source: &str,
    ids: &[[u8; 32]],
) -> sqlx::Result<Vec<[u8; 32]>> {
    let ids: Vec<Vec<u8>> = ids.iter().map(|i| i.to_vec()).collect();
    let fresh: Vec<Vec<u8>> = sqlx::query_scalar(
        "INSERT INTO webhook_ids_seen (source, id_hash)
         SELECT $1, id FROM unnest($2::bytea[]) AS id ORDER BY id
         ON CONFLICT (source, id_hash) DO NOTHING RETURNING id_hash",
    )
    .bind(source)
    .bind(&ids)
    .fetch_all(tx)
    .await?;
    Ok(fresh
        .into_iter()
        .filter_map(|i| i.try_into().ok())
        .collect())
}

/// Forgets webhook ids seen more than `older_than` ago. Returns how many.
pub async fn prune_seen(db: impl PgExecutor<'_>, older_than: Duration) -> sqlx::Result<u64> {
    let pruned = sqlx::query(
        "DELETE FROM webhook_ids_seen WHERE seen_at < now() - make_interval(secs => $1)",
    )
    .bind(seconds(older_than))
    .execute(db)
    .await?;
    Ok(pruned.rows_affected())
}

/// Counts the bounce and marks the subscriber `bounced` (from confirmed or pending) when a
/// hard one reaches `limits.hard_limit` hard bounces, or a soft one makes `limits.soft_limit`
/// mails with soft reports. Soft reports count per mail (all the reports of one delivery row,
/// else of one stated Message-ID, count once), only within `limits.soft_window`, and only
/// those received after the person's latest delivery: a provider's `delivered` event
/// (`soft_bounces_cleared_at`), or our relay's 250 for a mail to them (`deliveries.sent_at`)
/// about which no bounce or complaint was reported. A relay's 250 alone is no proof of
/// delivery (the receiving server may defer it later): a mail that drew a report of its own
/// clears nothing, so someone whose every weekly mail is deferred reaches `soft_limit`.
async fn bounce(
    tx: &mut PgConnection,
    id: Uuid,
    hard: bool,
    limits: Limits,
) -> anyhow::Result<Effect> {
    // Lock the subscriber first, in a statement of its own: the count below then runs with a
    // snapshot taken after any concurrent report for them committed, so two soft bounces
    // arriving together both count.
    let before: Option<String> =
        sqlx::query_scalar("SELECT status FROM subscribers WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .context("locking the subscriber")?;
    let Some(before) = before else {
        return Ok(Effect::Recorded);
    };
    let became: Option<bool> = sqlx::query_scalar(
        "UPDATE subscribers s
         SET hard_bounces = hard_bounces + CASE WHEN $2 THEN 1 ELSE 0 END, updated_at = now(),
             status = CASE
                 WHEN s.status IN ('confirmed', 'pending', 'lapsed')
                      AND (($2 AND s.hard_bounces + 1 >= $3)
                           OR (NOT $2 AND (
                               SELECT count(DISTINCT coalesce('d' || r.delivery_id, 'm' || r.message_id,
                                                              'r' || r.id))
                               FROM bounce_reports r
                               WHERE r.subscriber_id = $1 AND r.kind = 'soft'
                                 AND r.received_at > greatest(
                                         now() - make_interval(secs => $5),
                                         s.soft_bounces_cleared_at,
                                         (SELECT max(d.sent_at) FROM deliveries d
                                          WHERE d.subscriber_id = $1 AND d.status = 'sent'
                                            AND d.report IS NULL))) >= $4))
                 THEN 'bounced' ELSE s.status END
         WHERE s.id = $1
         RETURNING s.status = 'bounced' AND $6 <> 'bounced'",
    )
    .bind(id)
    .bind(hard)
    .bind(i64::from(limits.hard_limit))
    .bind(i64::from(limits.soft_limit))
    .bind(seconds(limits.soft_window))
    .bind(before)
    .fetch_optional(&mut *tx)
    .await
    .context("counting the bounce")?;
    if became != Some(true) {
        return Ok(Effect::Recorded);
    }
    log_event(tx, id, "bounce", &[]).await?;
    Ok(Effect::Bounced)
}

async fn complain(tx: &mut PgConnection, id: Uuid) -> anyhow::Result<Effect> {
    let changed: Option<(String, Vec<String>)> = sqlx::query_as(
        "WITH person AS (
             UPDATE subscribers
             SET status = 'complained', updated_at = now(),
                 -- a confirmation link made before this confirms nothing (as after an unsubscribe)
                 unsubscribed_at = now()
             WHERE id = $1 AND status <> 'complained'
             RETURNING id, email_normalized)
         , left_lists AS (
             UPDATE subscriptions SET status = 'unsubscribed', updated_at = now()
             WHERE subscriber_id = $1 AND status <> 'unsubscribed' AND EXISTS (SELECT 1 FROM person)
             RETURNING list_id)
         SELECT p.email_normalized,
                ARRAY(SELECT l.slug FROM left_lists ll JOIN lists l ON l.id = ll.list_id ORDER BY l.slug)
         FROM person p",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await
    .context("recording the complaint")?;
    let Some((address, lists)) = changed else {
        return Ok(Effect::Recorded);
    };
    sqlx::query(
        "INSERT INTO suppressions (email_hash, reason) VALUES ($1, 'complained')
         ON CONFLICT (email_hash) DO UPDATE SET reason = 'complained'",
    )
    .bind(address_hash(&address).as_slice())
    .execute(&mut *tx)
    .await
    .context("suppressing the address")?;
    log_event(tx, id, "complaint", &lists).await?;
    Ok(Effect::Complained)
}

async fn log_event(
    tx: &mut PgConnection,
    id: Uuid,
    kind: &'static str,
    lists: &[String],
) -> anyhow::Result<()> {
    consent::record(
        tx,
        ConsentEvent {
            subscriber_id: id,
            kind,
            source: "report",
            origin: &RequestOrigin::default(),
            consent: None,
            lists,
        },
    )
    .await
    .context("logging the report in the consent log")
}

/// Pauses update `id` while it is sending when its complaints exceed `percent` of its
/// delivered mails, once `min_sends` were delivered; the reason names the figures. Returns
/// whether it paused the update.
pub async fn trip_complaint_breaker(
    db: impl PgExecutor<'_>,
    id: Uuid,
    percent: f64,
    min_sends: u32,
) -> sqlx::Result<bool> {
    let paused = sqlx::query(
        "WITH tally AS (
             SELECT count(*) FILTER (WHERE status = 'sent') AS delivered,
                    count(*) FILTER (WHERE report = 'complaint') AS complaints
             FROM deliveries WHERE update_id = $1)
         UPDATE updates u
         SET status = 'paused', updated_at = now(),
             status_reason = format('paused by the complaint breaker: %s complaints for %s delivered mails (%s %%, over sending.complaint_percent %s %%)',
                                    t.complaints, t.delivered,
                                    round(t.complaints * 100.0 / t.delivered, 2), $2)
         FROM tally t
         WHERE u.id = $1 AND u.status = 'sending' AND t.delivered >= $3
           AND t.complaints * 100.0 > $2 * t.delivered",
    )
    .bind(id)
    .bind(percent)
    .bind(i64::from(min_sends))
    .execute(db)
    .await?;
    Ok(paused.rows_affected() == 1)
}

/// One report as staff see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReportView {
    pub id: i64,
    pub received_at: DateTime<Utc>,
    pub source: String,
    pub kind: String,
    pub status_code: Option<String>,
    pub detail: String,
    pub matched: bool,
    pub delivery_id: Option<i64>,
    pub update_id: Option<Uuid>,
    pub subscriber_id: Option<Uuid>,
    pub raw: String,
    pub raw_truncated: bool,
}

/// Which reports to list.
pub enum Filter {
    Update(Uuid),
    Unmatched,
    All,
}

/// Reports with an id above `after`, oldest first, at most `limit`.
pub async fn list(
    db: impl PgExecutor<'_>,
    filter: &Filter,
    after: i64,
    limit: i64,
) -> sqlx::Result<Vec<ReportView>> {
    let (update, unmatched) = match filter {
        Filter::Update(id) => (Some(*id), false),
        Filter::Unmatched => (None, true),
        Filter::All => (None, false),
    };
    let rows = sqlx::query(
        "SELECT id, received_at, source, kind, status_code, detail, matched, delivery_id,
                update_id, subscriber_id, raw, raw_truncated
         FROM bounce_reports
         WHERE id > $1 AND ($2::uuid IS NULL OR update_id = $2) AND (NOT $3 OR NOT matched)
         ORDER BY id LIMIT $4",
    )
    .bind(after)
    .bind(update)
    .bind(unmatched)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| ReportView {
            id: r.get("id"),
            received_at: r.get("received_at"),
            source: r.get("source"),
            kind: r.get("kind"),
            status_code: r.get("status_code"),
            detail: r.get("detail"),
            matched: r.get("matched"),
            delivery_id: r.get("delivery_id"),
            update_id: r.get("update_id"),
            subscriber_id: r.get("subscriber_id"),
            raw: r.get("raw"),
            raw_truncated: r.get("raw_truncated"),
        })
        .collect())
}

/// An update's mails reported bounced (hard or soft) and complained about.
pub async fn update_counts(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE report IN ('hard', 'soft')),
                count(*) FILTER (WHERE report = 'complaint')
         FROM deliveries WHERE update_id = $1",
    )
    .bind(id)
    .fetch_one(db)
    .await
}
