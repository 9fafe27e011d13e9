//! What a subscriber sees and changes through their manage link: profile, lists, topics; the
//! export of everything stored about them; and erasure.

use anyhow::Context;
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::{PgExecutor, PgPool, Postgres, Row, Transaction};
use uuid::Uuid;

use super::consent::{self, ConsentEvent, RequestOrigin};
use crate::domain::EmailAddress;

#[derive(Debug, Clone, Serialize)]
pub struct ListChoice {
    pub slug: String,
    pub name: String,
    pub description: String,
    pub us_state: Option<String>,
    pub subscribed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    pub id: Uuid,
    pub email: String,
    pub name: Option<String>,
    pub status: String,
    pub us_state: Option<String>,
    /// None: every topic.
    pub topics: Option<Vec<String>>,
    /// Public lists, plus any other list the person is on.
    pub lists: Vec<ListChoice>,
}

pub async fn profile(db: &PgPool, id: Uuid) -> sqlx::Result<Option<Profile>> {
    let Some(r) = sqlx::query(
        "SELECT id, email, name, status, us_state, topics FROM subscribers WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await?
    else {
        return Ok(None);
    };
    let lists = sqlx::query(
        "SELECT l.slug, l.name, l.description, l.us_state, coalesce(s.status = 'confirmed', false) AS subscribed
         FROM lists l LEFT JOIN subscriptions s ON s.list_id = l.id AND s.subscriber_id = $1
         WHERE l.archived_at IS NULL AND (l.is_public OR s.status = 'confirmed')
         ORDER BY l.position, l.name",
    )
    .bind(id)
    .fetch_all(db)
    .await?;
    Ok(Some(Profile {
        id: r.get("id"),
        email: r.get("email"),
        name: r.get("name"),
        status: r.get("status"),
        us_state: r.get("us_state"),
        topics: r.get("topics"),
        lists: lists
            .iter()
            .map(|l| ListChoice {
                slug: l.get("slug"),
                name: l.get("name"),
                description: l.get("description"),
                us_state: l.get("us_state"),
                subscribed: l.get("subscribed"),
            })
            .collect(),
    }))
}

pub struct Changes<'a> {
    pub name: Option<&'a str>,
    pub us_state: Option<&'a str>,
    /// None: every topic.
    pub topics: Option<Vec<String>>,
    /// Public list slugs to be on; other public lists are left. None: lists unchanged (for
    /// people who are not confirmed: joining again takes a new double opt-in).
    pub lists: Option<Vec<String>>,
}

/// Lists to be on: every other list is left; with `public_only` only public lists are joined or
/// left (a subscriber's own page), and nothing is joined unless `join` (someone not confirmed).
/// Archived lists are neither joined nor left: memberships of them stay as they were.
pub(crate) struct ListChange<'a> {
    pub wanted: &'a [String],
    pub public_only: bool,
    pub join: bool,
}

/// Applies `lists` (None: lists unchanged), logs a consent event (`preferences`, from
/// `source`) with the lists now held, and, when a change left the person on no list,
/// unsubscribes them with its own consent event: nobody stays "confirmed" on nothing.
pub(crate) async fn set_lists_in(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
    lists: Option<ListChange<'_>>,
    source: &'static str,
    origin: &RequestOrigin,
) -> anyhow::Result<()> {
    if let Some(change) = &lists {
        if change.join {
            sqlx::query(
                "INSERT INTO subscriptions (subscriber_id, list_id, status)
                 SELECT $1, l.id, 'confirmed' FROM lists l
                 WHERE (l.is_public OR NOT $3) AND l.slug = ANY($2) AND l.archived_at IS NULL
                 ON CONFLICT (subscriber_id, list_id) DO UPDATE SET status = 'confirmed', updated_at = now()
                     WHERE subscriptions.status <> 'confirmed'",
            )
            .bind(id)
            .bind(change.wanted)
            .bind(change.public_only)
            .execute(&mut **tx)
            .await
            .context("joining lists")?;
        }
        sqlx::query(
            "UPDATE subscriptions s SET status = 'unsubscribed', updated_at = now()
             FROM lists l
             WHERE s.subscriber_id = $1 AND l.id = s.list_id AND (l.is_public OR NOT $3)
               AND NOT (l.slug = ANY($2)) AND s.status <> 'unsubscribed' AND l.archived_at IS NULL",
        )
        .bind(id)
        .bind(change.wanted)
        .bind(change.public_only)
        .execute(&mut **tx)
        .await
        .context("leaving lists")?;
    }
    let held: Vec<String> = sqlx::query_scalar(
        "SELECT l.slug FROM subscriptions s JOIN lists l ON l.id = s.list_id
         WHERE s.subscriber_id = $1 AND s.status = 'confirmed' ORDER BY l.slug",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await?;
    consent::record(
        &mut **tx,
        ConsentEvent {
            subscriber_id: id,
            kind: "preferences",
            source,
            origin,
            consent: None,
            lists: &held,
        },
    )
    .await
    .context("logging the change")?;
    if lists.is_some() && held.is_empty() {
        let left: Vec<String> = sqlx::query_scalar(
            "WITH person AS (
                 UPDATE subscribers SET status = 'unsubscribed', unsubscribed_at = now(), updated_at = now()
                 WHERE id = $1 AND status = 'confirmed' RETURNING id)
             SELECT 'all' FROM person",
        )
        .bind(id)
        .fetch_all(&mut **tx)
        .await
        .context("unsubscribing someone left on no list")?;
        if !left.is_empty() {
            consent::record(
                &mut **tx,
                ConsentEvent {
                    subscriber_id: id,
                    kind: "unsubscribe",
                    source,
                    origin,
                    consent: None,
                    lists: &[],
                },
            )
            .await
            .context("logging the unsubscribe")?;
        }
    }
    Ok(())
}

/// Saves preferences and logs a consent event with the lists now held.
pub async fn save(
    pool: &PgPool,
    id: Uuid,
    c: Changes<'_>,
    origin: &RequestOrigin,
) -> anyhow::Result<()> {
    let mut tx = pool.begin().await.context("starting to save preferences")?;
    sqlx::query("UPDATE subscribers SET name = $2, us_state = $3, topics = $4, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(c.name)
        .bind(c.us_state)
        .bind(&c.topics)
        .execute(&mut *tx)
        .await
        .context("saving the profile")?;
    let lists = c.lists.as_deref().map(|wanted| ListChange {
        wanted,
        public_only: true,
        join: true,
    });
    set_lists_in(&mut tx, id, lists, "link", origin).await?;
    tx.commit().await.context("committing preferences")?;
    Ok(())
}

/// Everything stored about the person, as JSON.
pub async fn export(db: &PgPool, id: Uuid) -> sqlx::Result<Option<Value>> {
    let Some(profile) = sqlx::query(
        "SELECT email, email_normalized, name, status, us_state, topics, created_at, updated_at,
                confirmed_at, unsubscribed_at, last_confirmation_at, hard_bounces, last_active_on
         FROM subscribers WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await?
    else {
        return Ok(None);
    };
    let lists = rows_json(
        db,
        "SELECT to_jsonb(x) FROM (SELECT l.slug, l.name, s.status, s.created_at, s.updated_at
         FROM subscriptions s JOIN lists l ON l.id = s.list_id WHERE s.subscriber_id = $1 ORDER BY l.slug) x",
        id,
    )
    .await?;
    let consent = rows_json(
        db,
        "SELECT to_jsonb(x) FROM (SELECT kind, occurred_at, host(ip) AS ip, user_agent, source, consent_text, consent_version, lists
         FROM consent_events WHERE subscriber_id = $1 ORDER BY id) x",
        id,
    )
    .await?;
    let deliveries = rows_json(
        db,
        "SELECT to_jsonb(x) FROM (SELECT d.kind, u.subject, d.status, d.attempts, d.created_at, d.sent_at, d.message_id, d.last_reply
         FROM deliveries d LEFT JOIN updates u ON u.id = d.update_id WHERE d.subscriber_id = $1 ORDER BY d.id) x",
        id,
    )
    .await?;
    let confirmations = rows_json(
        db,
        "SELECT to_jsonb(x) FROM (SELECT created_at, expires_at, used_at FROM confirmation_tokens WHERE subscriber_id = $1 ORDER BY created_at) x",
        id,
    )
    .await?;
    Ok(Some(json!({
        "profile": {
            "id": id,
            "email": profile.get::<String, _>("email"),
            "email_normalized": profile.get::<String, _>("email_normalized"),
            "name": profile.get::<Option<String>, _>("name"),
            "status": profile.get::<String, _>("status"),
            "state": profile.get::<Option<String>, _>("us_state"),
            "topics": profile.get::<Option<Vec<String>>, _>("topics"),
            "created_at": profile.get::<chrono::DateTime<chrono::Utc>, _>("created_at"),
            "updated_at": profile.get::<chrono::DateTime<chrono::Utc>, _>("updated_at"),
            "confirmed_at": profile.get::<Option<chrono::DateTime<chrono::Utc>>, _>("confirmed_at"),
            "unsubscribed_at": profile.get::<Option<chrono::DateTime<chrono::Utc>>, _>("unsubscribed_at"),
            "last_confirmation_at": profile.get::<Option<chrono::DateTime<chrono::Utc>>, _>("last_confirmation_at"),
            "hard_bounces": profile.get::<i32, _>("hard_bounces"),
            // `engagement.remember_last_activity`: the one date kept of what they did.
            "last_active_on": profile.get::<Option<chrono::NaiveDate>, _>("last_active_on"),
        },
        "lists": lists,
        "consent_log": consent,
        "deliveries": deliveries,
        "confirmation_links": confirmations,
        "tokens": "links are signed, and confirmation tokens stored only as hashes: none can be exported",
    })))
}

/// Runs `sql` (which selects `to_jsonb(x)` rows for subscriber `$1`).
async fn rows_json(
    db: impl PgExecutor<'_>,
    sql: &'static str,
    id: Uuid,
) -> sqlx::Result<Vec<Value>> {
    sqlx::query_scalar::<_, Value>(sql)
        .bind(id)
        .fetch_all(db)
        .await
}

/// SHA-256 of an address's canonical form (or of a legacy spelling, `EmailAddress::suppression_keys`):
/// what the suppression list keeps.
pub fn address_hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Erases the person: their address's hash goes on the suppression list; their subscriber row
/// and everything that cascades from it (subscriptions, tokens, consent log) is deleted; their
/// delivery rows stay, anonymous, without the relay's replies (which may name the address).
pub async fn erase(pool: &PgPool, id: Uuid) -> anyhow::Result<bool> {
    let mut tx = pool.begin().await.context("starting the erasure")?;
    let erased = erase_in(&mut tx, id).await?;
    tx.commit().await.context("committing the erasure")?;
    Ok(erased)
}

/// `erase` inside the caller's transaction; `false` when there is no such subscriber.
pub async fn erase_in(tx: &mut Transaction<'_, Postgres>, id: Uuid) -> anyhow::Result<bool> {
    let normalized: Option<String> =
        sqlx::query_scalar("SELECT email_normalized FROM subscribers WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
    let Some(normalized) = normalized else {
        return Ok(false);
    };
    sqlx::query("INSERT INTO suppressions (email_hash, reason) VALUES ($1, 'erased') ON CONFLICT DO NOTHING")
        .bind(address_hash(&normalized).as_slice())
        .execute(&mut **tx)
        .await?;
    // Bounce and complaint reports quote the address (and the Message-ID, the person's id):
    // only their kind stays.
    sqlx::query(
        "UPDATE bounce_reports
         SET raw = '', detail = 'erased', message_id = NULL, subscriber_id = NULL
         WHERE subscriber_id = $1",
    )
    .bind(id)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE deliveries SET last_reply = NULL, payload = '{}', message_id = NULL, subscriber_id = NULL
         WHERE subscriber_id = $1",
    )
    .bind(id)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM subscribers WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(true)
}

/// The suppression hashes under which `address` may have been erased.
pub fn suppression_hashes(address: &EmailAddress) -> Vec<Vec<u8>> {
    address
        .suppression_keys()
        .iter()
        .map(|k| address_hash(k).to_vec())
        .collect()
}
