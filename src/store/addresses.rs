//! Bringing stored addresses to their canonical form (`EmailAddress::canonical`), once: releases
//! before it kept `bücher.example` and `xn--bcher-kva.example`, or `"ann.doe"` and `ann.doe`, as
//! different people. Spellings of one mailbox are merged into its oldest subscriber, the
//! strictest status winning (complained, bounced, unsubscribed beat confirmed, which beats
//! pending); a person erased under another spelling is erased, unless they confirmed again
//! after that erasure.

use std::collections::BTreeMap;

use anyhow::Context;
use serde::Serialize;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::preferences::address_hash;
use crate::domain::EmailAddress;

/// The name of this step in `data_migrations`.
const NAME: &str = "canonical_addresses";

/// What the step did; stored in `data_migrations.report` and printed by `newsletter migrate`.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct CanonicalReport {
    /// Subscribers whose stored address was rewritten to its canonical form.
    pub rewritten: usize,
    /// Subscribers merged into another one with the same mailbox (and deleted).
    pub merged: usize,
    /// Subscribers erased because the same mailbox had been erased under another spelling.
    pub erased: usize,
    /// Suppressions dropped because their person confirmed again after the erasure.
    pub suppressions_cleared: usize,
    /// Stored addresses that no longer parse (they cannot be mailed): left as they are, and
    /// every mail to them fails at once.
    pub unparseable: usize,
}

impl std::fmt::Display for CanonicalReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "addresses: {} rewritten to their canonical form, {} duplicates merged, {} erased \
             (erased under another spelling), {} suppressions cleared, {} unparseable left as they are",
            self.rewritten, self.merged, self.erased, self.suppressions_cleared, self.unparseable
        )
    }
}

type Time = chrono::DateTime<chrono::Utc>;

#[derive(sqlx::FromRow)]
struct Stored {
    id: Uuid,
    /// As stored (the spelling the person typed, in older releases).
    email: String,
    email_normalized: String,
    status: String,
    confirmed_at: Option<Time>,
}

/// Runs the step unless it ran before; `None` when it had.
pub async fn canonicalize(pool: &PgPool) -> anyhow::Result<Option<CanonicalReport>> {
    let mut tx = pool
        .begin()
        .await
        .context("starting the address migration")?;
    // One process at a time; the others wait, then find it done.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('data_migrations'))")
        .execute(&mut *tx)
        .await?;
    let done: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM data_migrations WHERE name = $1)")
            .bind(NAME)
            .fetch_one(&mut *tx)
            .await?;
    if done {
        return Ok(None);
    }
    let report = run(&mut tx).await?;
    sqlx::query("INSERT INTO data_migrations (name, report) VALUES ($1, $2)")
        .bind(NAME)
        .bind(sqlx::types::Json(&report))
        .execute(&mut *tx)
        .await?;
    tx.commit()
        .await
        .context("committing the address migration")?;
    Ok(Some(report))
}

async fn run(tx: &mut Transaction<'_, Postgres>) -> anyhow::Result<CanonicalReport> {
    let mut report = CanonicalReport::default();
    // Only these can differ from their canonical form, or match a suppression under a
    // spelling SQL cannot compute (the U-label of a punycode domain).
    let rows: Vec<Stored> = sqlx::query_as(
        "SELECT id, email, email_normalized, status, confirmed_at FROM subscribers
         WHERE email_normalized ~ '[^\\x21-\\x7e]|\"|xn--' OR email ~ '[^\\x21-\\x7e]|\"'",
    )
    .fetch_all(&mut **tx)
    .await
    .context("reading addresses")?;
    let mut groups: BTreeMap<String, (EmailAddress, Vec<Stored>)> = BTreeMap::new();
    for stored in rows {
        let Ok(address) = EmailAddress::parse(&stored.email)
            .or_else(|_| EmailAddress::parse(&stored.email_normalized))
        else {
            report.unparseable += 1;
            continue;
        };
        groups
            .entry(address.canonical().to_owned())
            .or_insert_with(|| (address, Vec::new()))
            .1
            .push(stored);
    }
    // Subscribers already stored in the canonical form of one of these.
    let canonical: Vec<String> = groups.keys().cloned().collect();
    let present: Vec<Stored> = sqlx::query_as(
        "SELECT id, email, email_normalized, status, confirmed_at FROM subscribers
         WHERE email_normalized = ANY($1)",
    )
    .bind(&canonical)
    .fetch_all(&mut **tx)
    .await?;
    for stored in present {
        let group = &mut groups
            .get_mut(&stored.email_normalized)
            .expect("selected by these keys")
            .1;
        if !group.iter().any(|s| s.id == stored.id) {
            group.push(stored);
        }
    }
    for (canonical, (address, people)) in groups {
        let keeper = merge(tx, &people, &mut report).await?;
        // The keeper's own spelling goes on the wire (its local part's case kept).
        let as_sent = people
            .iter()
            .find(|p| p.id == keeper)
            .and_then(|p| EmailAddress::parse(&p.email).ok())
            .filter(|a| a.canonical() == canonical)
            .unwrap_or_else(|| address.clone());
        let changed = sqlx::query(
            "UPDATE subscribers SET email = $2, email_normalized = $3, updated_at = now()
             WHERE id = $1 AND (email, email_normalized) IS DISTINCT FROM ($2, $3)",
        )
        .bind(keeper)
        .bind(as_sent.as_str())
        .bind(&canonical)
        .execute(&mut **tx)
        .await
        .context("rewriting an address")?;
        report.rewritten += changed.rows_affected() as usize;
        let confirmed_at = people
            .iter()
            .filter_map(|p| p.confirmed_at)
            .max()
            .filter(|_| people.iter().any(|p| p.status == "confirmed"));
        settle_suppression(
            tx,
            keeper,
            &address.suppression_keys(),
            confirmed_at,
            &mut report,
        )
        .await?;
    }
    // The quoted spelling of every other address, which SQL can compute.
    let quoted: Vec<(Uuid, String, Time)> = sqlx::query_as(
        "SELECT s.id, s.email_normalized, x.created_at FROM subscribers s
         JOIN suppressions x ON x.email_hash = sha256(convert_to(
             '\"' || substring(s.email_normalized FROM '^(.*)@[^@]*$') || '\"@'
                 || substring(s.email_normalized FROM '@([^@]*)$'), 'UTF8'))",
    )
    .fetch_all(&mut **tx)
    .await
    .context("checking suppressions under quoted spellings")?;
    for (id, email, _) in quoted {
        if let Ok(address) = EmailAddress::parse(&email) {
            let confirmed_at: Option<Time> = sqlx::query_scalar(
                "SELECT confirmed_at FROM subscribers WHERE id = $1 AND status = 'confirmed'",
            )
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?
            .flatten();
            settle_suppression(
                tx,
                id,
                &address.suppression_keys(),
                confirmed_at,
                &mut report,
            )
            .await?;
        }
    }
    Ok(report)
}

/// Strictness of a status: the higher wins a merge.
fn rank(status: &str) -> u8 {
    match status {
        "complained" => 5,
        "bounced" => 4,
        "unsubscribed" => 3,
        "confirmed" => 2,
        _ => 1,
    }
}

/// Merges `people` (one mailbox) into the oldest of them; returns its id.
async fn merge(
    tx: &mut Transaction<'_, Postgres>,
    people: &[Stored],
    report: &mut CanonicalReport,
) -> anyhow::Result<Uuid> {
    let ids: Vec<Uuid> = people.iter().map(|p| p.id).collect();
    let keeper: Uuid = sqlx::query_scalar(
        "SELECT id FROM subscribers WHERE id = ANY($1) ORDER BY created_at, id LIMIT 1",
    )
    .bind(&ids)
    .fetch_one(&mut **tx)
    .await?;
    let others: Vec<Uuid> = ids.into_iter().filter(|id| *id != keeper).collect();
    if others.is_empty() {
        return Ok(keeper);
    }
    let status = people
        .iter()
        .map(|p| p.status.as_str())
        .max_by_key(|s| rank(s))
        .unwrap_or("pending");
    sqlx::query(
        "WITH moved AS (
             DELETE FROM subscriptions WHERE subscriber_id = ANY($2)
             RETURNING list_id, status, created_at)
         INSERT INTO subscriptions (subscriber_id, list_id, status, created_at)
         SELECT DISTINCT ON (list_id) $1, list_id, status, created_at FROM moved
         ORDER BY list_id, CASE status WHEN 'unsubscribed' THEN 0 WHEN 'confirmed' THEN 1 ELSE 2 END
         ON CONFLICT (subscriber_id, list_id) DO UPDATE SET
             status = CASE WHEN 'unsubscribed' IN (subscriptions.status, excluded.status) THEN 'unsubscribed'
                           WHEN 'confirmed' IN (subscriptions.status, excluded.status) THEN 'confirmed'
                           ELSE 'pending' END,
             updated_at = now()",
    )
    .bind(keeper)
    .bind(&others)
    .execute(&mut **tx)
    .await
    .context("merging subscriptions")?;
    // The ledger keeps its history: rows move to the keeper, except a second row for an update
    // the keeper already has, which stays anonymous (and is skipped if not yet sent).
    sqlx::query(
        "UPDATE deliveries d SET
             subscriber_id = CASE WHEN clash THEN NULL ELSE $1 END,
             status = CASE WHEN clash AND d.status IN ('queued', 'deferred', 'sending') THEN 'skipped'
                           ELSE d.status END,
             last_reply = CASE WHEN clash AND d.status IN ('queued', 'deferred', 'sending')
                               THEN 'merged: the same mailbox as another subscriber' ELSE d.last_reply END
         FROM (SELECT x.id, x.update_id IS NOT NULL AND EXISTS (
                   SELECT 1 FROM deliveries k WHERE k.update_id = x.update_id
                   AND (k.subscriber_id = $1 OR (k.subscriber_id = ANY($2) AND k.id < x.id))) AS clash
               FROM deliveries x WHERE x.subscriber_id = ANY($2)) c
         WHERE d.id = c.id",
    )
    .bind(keeper)
    .bind(&others)
    .execute(&mut **tx)
    .await
    .context("merging delivery rows")?;
    sqlx::query("UPDATE consent_events SET subscriber_id = $1 WHERE subscriber_id = ANY($2)")
        .bind(keeper)
        .bind(&others)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM subscribers WHERE id = ANY($1)")
        .bind(&others)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "UPDATE subscribers SET status = $2, updated_at = now(),
             unsubscribed_at = CASE WHEN $2 IN ('unsubscribed', 'bounced', 'complained')
                                    THEN coalesce(unsubscribed_at, now()) ELSE unsubscribed_at END
         WHERE id = $1",
    )
    .bind(keeper)
    .bind(status)
    .execute(&mut **tx)
    .await?;
    report.merged += others.len();
    Ok(keeper)
}

/// If the mailbox was erased under one of `keys`: erase `id` too, unless it confirmed after the
/// erasure (then the old suppression goes, as a confirmation always clears it).
async fn settle_suppression(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
    keys: &[String],
    confirmed_at: Option<Time>,
    report: &mut CanonicalReport,
) -> anyhow::Result<()> {
    let hashes: Vec<Vec<u8>> = keys.iter().map(|k| address_hash(k).to_vec()).collect();
    let erased_at: Option<Time> =
        sqlx::query_scalar("SELECT max(created_at) FROM suppressions WHERE email_hash = ANY($1)")
            .bind(&hashes)
            .fetch_one(&mut **tx)
            .await?;
    let Some(erased_at) = erased_at else {
        return Ok(());
    };
    if confirmed_at.is_some_and(|c| c > erased_at) {
        let cleared = sqlx::query("DELETE FROM suppressions WHERE email_hash = ANY($1)")
            .bind(&hashes)
            .execute(&mut **tx)
            .await?;
        report.suppressions_cleared += cleared.rows_affected() as usize;
    } else {
        super::preferences::erase_in(tx, id).await?;
        report.erased += 1;
    }
    Ok(())
}
