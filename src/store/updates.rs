//! Updates, their lists and news items, their status machine, their start, and the delivery
//! rows of their recipients, written chunk by chunk as workers claim them.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor, PgPool, Row};
use uuid::Uuid;

use super::deliveries::Claimed;
use super::seconds;
use crate::domain::{archive_slug, NewUpdate, NewsItem};

pub use crate::domain::{UpdateContent, UpdateRecord};

/// The content of update `u` (in the statement around it) as JSON: the shape of
/// [`UpdateContent`].
const CONTENT_OF_U: &str = "jsonb_build_object(
           'subject', u.subject, 'preheader', u.preheader, 'intro', u.intro_markdown,
           'template', u.template, 'from', u.from_override, 'reply_to', u.reply_to_override,
           'lists', ARRAY(SELECT l.slug FROM update_lists ul JOIN lists l ON l.id = ul.list_id
                          WHERE ul.update_id = u.id ORDER BY l.slug),
           'news_items', coalesce((SELECT jsonb_agg(jsonb_build_object(
                   'title', n.title, 'summary', n.summary, 'source', n.source, 'url', n.url,
                   'published_on', n.published_on, 'topic', n.topic, 'news_id', n.news_id)
                   ORDER BY n.position)
               FROM news_items n WHERE n.update_id = u.id), '[]'::jsonb))";

/// Who made a version: a label as the audit log keeps it, and the member of staff if one.
#[derive(Debug, Clone, Copy)]
pub struct Author<'a> {
    pub label: &'a str,
    pub staff_id: Option<Uuid>,
}

/// A new version of an update, made by a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVersion {
    pub version: i32,
    /// The fields of [`UpdateContent`] that differ from the version before.
    pub changed: Vec<String>,
}

/// Statuses whose content may still change: a scheduled, approved or waiting update is
/// frozen (it goes back to draft to be edited).
const EDITABLE: &[&str] = &["draft"];

async fn write_content(
    tx: &mut sqlx::PgConnection,
    id: Uuid,
    u: &NewUpdate,
    list_ids: &[Uuid],
) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM update_lists WHERE update_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM news_items WHERE update_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO update_lists (update_id, list_id) SELECT $1, unnest($2::uuid[])")
        .bind(id)
        .bind(list_ids)
        .execute(&mut *tx)
        .await
        .context("storing the update's lists")?;
    let n = u.news_items.len();
    let mut titles = Vec::with_capacity(n);
    let mut summaries = Vec::with_capacity(n);
    let mut sources = Vec::with_capacity(n);
    let mut urls = Vec::with_capacity(n);
    let mut dates = Vec::with_capacity(n);
    let mut topics = Vec::with_capacity(n);
    let mut news_ids = Vec::with_capacity(n);
    for item in &u.news_items {
        titles.push(item.title.clone());
        summaries.push(item.summary.clone());
        sources.push(item.source.clone());
        urls.push(item.url.clone());
        dates.push(item.published_on);
        topics.push(item.topic.clone());
        news_ids.push(item.news_id);
    }
    sqlx::query(
        "INSERT INTO news_items (update_id, position, title, summary, source, url, published_on, topic, news_id)
         SELECT $1, ord::int, t, s, src, u, d, tp, nid
         FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::date[], $7::text[], $8::uuid[])
              WITH ORDINALITY AS x(t, s, src, u, d, tp, nid, ord)",
    )
    .bind(id)
    .bind(&titles)
    .bind(&summaries)
    .bind(&sources)
    .bind(&urls)
    .bind(&dates)
    .bind(&topics)
    .bind(&news_ids)
    .execute(&mut *tx)
    .await
    .context("storing the news items")?;
    Ok(())
}

/// Creates a draft, its version 1 made by `author`.
pub async fn create(
    pool: &PgPool,
    u: &NewUpdate,
    list_ids: &[Uuid],
    author: Author<'_>,
) -> anyhow::Result<Uuid> {
    let id = Uuid::new_v4();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO updates (id, subject, preheader, intro_markdown, template, from_override, reply_to_override, changed_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(&u.subject)
    .bind(&u.preheader)
    .bind(&u.intro_markdown)
    .bind(&u.template)
    .bind(u.from.as_ref().map(ToString::to_string))
    .bind(u.reply_to.as_ref().map(ToString::to_string))
    .bind(author.staff_id)
    .execute(&mut *tx)
    .await
    .context("inserting the update")?;
    write_content(&mut tx, id, u, list_ids).await?;
    sqlx::query(&format!(
        "INSERT INTO update_versions (update_id, version, content, actor, staff_id)
         SELECT u.id, 1, {CONTENT_OF_U}, $2, $3 FROM updates u WHERE u.id = $1"
    ))
    .bind(id)
    .bind(author.label)
    .bind(author.staff_id)
    .execute(&mut *tx)
    .await
    .context("keeping the update's first version")?;
    tx.commit().await?;
    Ok(id)
}

/// Keeps the update's content, as it is now in this transaction, as its next version when it
/// differs from the current one; `None` when nothing changed.
async fn new_version(
    tx: &mut PgConnection,
    id: Uuid,
    author: Author<'_>,
) -> anyhow::Result<Option<NewVersion>> {
    let made: Option<(i32, Vec<String>)> = sqlx::query_as(&format!(
        "WITH c AS (SELECT u.id, u.version, {CONTENT_OF_U} AS content FROM updates u WHERE u.id = $1),
              prev AS (SELECT v.content FROM update_versions v JOIN c ON v.update_id = c.id AND v.version = c.version)
         INSERT INTO update_versions (update_id, version, content, changed, actor, staff_id)
         SELECT c.id, c.version + 1, c.content,
                ARRAY(SELECT k FROM jsonb_object_keys(c.content) k
                      WHERE c.content -> k IS DISTINCT FROM (SELECT content -> k FROM prev) ORDER BY k),
                $2, $3
         FROM c WHERE c.content IS DISTINCT FROM (SELECT content FROM prev)
         RETURNING version, changed"
    ))
    .bind(id)
    .bind(author.label)
    .bind(author.staff_id)
    .fetch_optional(&mut *tx)
    .await
    .context("keeping the update's new version")?;
    let Some((version, changed)) = made else {
        return Ok(None);
    };
    sqlx::query("UPDATE updates SET version = $2, changed_by = $3 WHERE id = $1")
        .bind(id)
        .bind(version)
        .bind(author.staff_id)
        .execute(&mut *tx)
        .await?;
    Ok(Some(NewVersion { version, changed }))
}

/// What [`replace`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replaced {
    NotFound,
    /// It is past editing: its status.
    NotEditable(String),
    /// Saved; the new version, or `None` when the content was the same.
    Saved(Option<NewVersion>),
}

/// Replaces the content of a draft, keeping it as a new version by `author` when it changed.
pub async fn replace(
    pool: &PgPool,
    id: Uuid,
    u: &NewUpdate,
    list_ids: &[Uuid],
    author: Author<'_>,
) -> anyhow::Result<Replaced> {
    let mut tx = pool.begin().await?;
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM updates WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(status) = status else {
        return Ok(Replaced::NotFound);
    };
    if !EDITABLE.contains(&status.as_str()) {
        return Ok(Replaced::NotEditable(status));
    }
    sqlx::query(
        "UPDATE updates SET subject = $2, preheader = $3, intro_markdown = $4, template = $5,
                from_override = $6, reply_to_override = $7, updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(&u.subject)
    .bind(&u.preheader)
    .bind(&u.intro_markdown)
    .bind(&u.template)
    .bind(u.from.as_ref().map(ToString::to_string))
    .bind(u.reply_to.as_ref().map(ToString::to_string))
    .execute(&mut *tx)
    .await?;
    write_content(&mut tx, id, u, list_ids).await?;
    let made = new_version(&mut tx, id, author).await?;
    tx.commit().await?;
    Ok(Replaced::Saved(made))
}

pub async fn get(pool: &PgPool, id: Uuid) -> anyhow::Result<Option<UpdateRecord>> {
    let Some(r) = sqlx::query(
        "SELECT u.*, ARRAY(SELECT l.slug FROM update_lists ul JOIN lists l ON l.id = ul.list_id
                           WHERE ul.update_id = u.id ORDER BY l.slug) AS list_slugs,
                ARRAY(SELECT l.name FROM update_lists ul JOIN lists l ON l.id = ul.list_id
                      WHERE ul.update_id = u.id ORDER BY l.slug) AS list_names
         FROM updates u WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
    .context("loading the update")?
    else {
        return Ok(None);
    };
    let items = sqlx::query(
        "SELECT title, summary, source, url, published_on, topic, news_id FROM news_items
         WHERE update_id = $1 ORDER BY position",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .context("loading the news items")?;
    Ok(Some(UpdateRecord {
        id: r.get("id"),
        subject: r.get("subject"),
        preheader: r.get("preheader"),
        intro: r.get("intro_markdown"),
        template: r.get("template"),
        from: r.get("from_override"),
        reply_to: r.get("reply_to_override"),
        status: r.get("status"),
        status_reason: r.get("status_reason"),
        slug: r.get("slug"),
        scheduled_at: r.get("scheduled_at"),
        started_at: r.get("started_at"),
        finished_at: r.get("finished_at"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
        lists: r.get("list_slugs"),
        list_names: r.get("list_names"),
        approval_requested_by: r.get("approval_requested_by"),
        approved_by: r.get("approved_by"),
        time_zone: r.get("time_zone"),
        version: r.get("version"),
        changed_by: r.get("changed_by"),
        approved_version: r.get("approved_version"),
        approved_lists: r.get("approved_lists"),
        approved_recipients: r.get("approved_recipients"),
        sent_version: r.get("sent_version"),
        templates_as_of: r.get("templates_as_of"),
        approval_requested_at: r.get("approval_requested_at"),
        news_items: items
            .iter()
            .map(|i| NewsItem {
                title: i.get("title"),
                summary: i.get("summary"),
                source: i.get("source"),
                url: i.get("url"),
                published_on: i.get::<Option<NaiveDate>, _>("published_on"),
                topic: i.get("topic"),
                news_id: i.get("news_id"),
            })
            .collect(),
    }))
}

/// The update as it was at `version`: its content and audience from that version, the rest
/// (status, slug, approval) as it is now. `None`: no such update or version.
pub async fn get_version(
    pool: &PgPool,
    id: Uuid,
    version: i32,
) -> anyhow::Result<Option<UpdateRecord>> {
    let Some(mut record) = get(pool, id).await? else {
        return Ok(None);
    };
    if record.version == version {
        return Ok(Some(record));
    }
    let content: Option<sqlx::types::Json<UpdateContent>> = sqlx::query_scalar(
        "SELECT content FROM update_versions WHERE update_id = $1 AND version = $2",
    )
    .bind(id)
    .bind(version)
    .fetch_optional(pool)
    .await
    .context("loading the update's version")?;
    let Some(sqlx::types::Json(c)) = content else {
        return Ok(None);
    };
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT l.name FROM unnest($1::text[]) WITH ORDINALITY AS x(slug, ord)
         JOIN lists l ON l.slug = x.slug ORDER BY x.ord",
    )
    .bind(&c.lists)
    .fetch_all(pool)
    .await?;
    record.subject = c.subject;
    record.preheader = c.preheader;
    record.intro = c.intro;
    record.template = c.template;
    record.from = c.from;
    record.reply_to = c.reply_to;
    record.lists = c.lists;
    record.list_names = names;
    record.news_items = c.news_items;
    record.version = version;
    Ok(Some(record))
}

/// One version of an update, as its history lists it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct VersionEntry {
    pub version: i32,
    pub changed: Vec<String>,
    pub actor: String,
    pub created_at: DateTime<Utc>,
}

/// The update's versions, newest first.
pub async fn versions(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Vec<VersionEntry>> {
    sqlx::query_as(
        "SELECT version, changed, actor, created_at FROM update_versions
         WHERE update_id = $1 ORDER BY version DESC",
    )
    .bind(id)
    .fetch_all(db)
    .await
}

/// Deliveries of an update by status (every status present, zero when none).
pub async fn counts(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<BTreeMap<String, i64>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM deliveries WHERE update_id = $1 GROUP BY status",
    )
    .bind(id)
    .fetch_all(db)
    .await?;
    let mut counts: BTreeMap<String, i64> =
        ["queued", "sending", "sent", "deferred", "failed", "skipped"]
            .iter()
            .map(|s| (s.to_string(), 0))
            .collect();
    counts.extend(rows);
    Ok(counts)
}

/// Mails of this update sent in the last `window`, per second.
pub async fn recent_rate(db: impl PgExecutor<'_>, id: Uuid, window: Duration) -> sqlx::Result<f64> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM deliveries WHERE update_id = $1 AND sent_at > now() - make_interval(secs => $2)",
    )
    .bind(id)
    .bind(seconds(window))
    .fetch_one(db)
    .await?;
    Ok(n as f64 / window.as_secs_f64())
}

/// A staff action on an update's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Schedule(DateTime<Utc>),
    SendNow,
    Pause,
    Resume,
    Cancel,
    /// Send (at the time given) once a second admin approves; by the member of staff who asks.
    RequestApproval(DateTime<Utc>, Option<Uuid>),
    /// A second admin approves the current version: the update is scheduled for its time, or
    /// now if that passed.
    Approve(Uuid),
    /// Back to draft, to be edited: from scheduled, awaiting approval, or paused before it
    /// started. Any approval is void.
    Unschedule,
}

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Done: the new status.
    Done(String),
    /// Not allowed from this status.
    NotFrom(String),
    /// The update is at another version than the one the action was confirmed for: the
    /// current one.
    Stale(i32),
    /// The approval answers a request for approval that was withdrawn or made again since.
    StaleRequest,
}

/// What an action was confirmed against: the version the actor saw and, for an approval, the
/// request it answers (`approval_requested_at` as the approver saw it, `None` when there was
/// none: an approval of a pending request must name it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Confirmed {
    pub version: Option<i32>,
    pub request: Option<DateTime<Utc>>,
}

/// Applies `action` by the member of staff `by` (none for a token, the command line or a
/// schedule) if the update's status allows it and it is still as `confirmed` says. `None` when
/// there is no such update.
///
/// An approval records the version, the lists and the recipient count it was given for; a
/// request for approval or a return to draft clears any earlier approval. A schedule, a send
/// or an approval fixes the mail templates it will go out with (those current now: what was
/// previewed and confirmed) and remembers who released it (`scheduled_by`).
pub async fn apply(
    pool: &PgPool,
    id: Uuid,
    action: Action,
    by: Option<Uuid>,
    confirmed: Confirmed,
) -> anyhow::Result<Option<Applied>> {
    let mut tx = pool.begin().await?;
    type Locked = (
        String,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        i32,
        Option<DateTime<Utc>>,
    );
    let row: Option<Locked> = sqlx::query_as(
        "SELECT status, started_at, scheduled_at, version, approval_requested_at
         FROM updates WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((status, started_at, scheduled_at, version, requested_at)) = row else {
        return Ok(None);
    };
    if confirmed.version.is_some_and(|v| v != version) {
        return Ok(Some(Applied::Stale(version)));
    }
    if matches!(action, Action::Approve(_))
        && status == "awaiting_approval"
        && confirmed.request != requested_at
    {
        return Ok(Some(Applied::StaleRequest));
    }
    let started = started_at.is_some();
    const WAITING: &str = "waiting for a second admin to approve";
    let (new_status, at, reason): (&str, Option<DateTime<Utc>>, Option<&str>) =
        match (action, status.as_str()) {
            (Action::Schedule(at), "draft" | "scheduled") => ("scheduled", Some(at), None),
            (Action::Schedule(at), "paused") if !started => ("scheduled", Some(at), None),
            (Action::SendNow, "draft" | "scheduled") => ("scheduled", Some(Utc::now()), None),
            (Action::SendNow, "paused") if !started => ("scheduled", Some(Utc::now()), None),
            (Action::Pause, "scheduled" | "sending") => ("paused", None, Some("paused by staff")),
            (Action::Resume, "paused") if started => ("sending", None, None),
            (Action::Resume, "paused") => ("scheduled", Some(Utc::now()), None),
            (Action::RequestApproval(at, _), "draft" | "scheduled") => {
                ("awaiting_approval", Some(at), Some(WAITING))
            }
            (Action::RequestApproval(at, _), "paused") if !started => {
                ("awaiting_approval", Some(at), Some(WAITING))
            }
            (Action::Approve(_), "awaiting_approval") => {
                let now = Utc::now();
                (
                    "scheduled",
                    Some(scheduled_at.map_or(now, |t| t.max(now))),
                    None,
                )
            }
            (Action::Unschedule, "scheduled" | "awaiting_approval") => {
                ("draft", None, Some("unscheduled to be edited"))
            }
            (Action::Unschedule, "paused") if !started => {
                ("draft", None, Some("unscheduled to be edited"))
            }
            (
                Action::Cancel,
                "draft" | "awaiting_approval" | "scheduled" | "sending" | "paused",
            ) => ("cancelled", None, Some("cancelled by staff")),
            _ => return Ok(Some(Applied::NotFrom(status))),
        };
    // Whether this action ends any approval given before (a new request, a return to draft).
    let voids = matches!(action, Action::RequestApproval(..) | Action::Unschedule);
    // Whether it releases the update to go out (at once or at its time) as it is now.
    let releases = matches!(
        (action, new_status),
        (
            Action::Schedule(_) | Action::SendNow | Action::Approve(_) | Action::Resume,
            "scheduled"
        )
    );
    sqlx::query(
        "UPDATE updates SET status = $2, scheduled_at = CASE WHEN $2 = 'draft' THEN NULL ELSE coalesce($3, scheduled_at) END,
                status_reason = $4,
                finished_at = CASE WHEN $2 = 'cancelled' THEN now() ELSE finished_at END, updated_at = now(),
                approval_requested_by = CASE WHEN $2 = 'awaiting_approval' THEN $5
                                             WHEN $7 THEN NULL ELSE approval_requested_by END,
                approved_by = CASE WHEN $7 THEN NULL ELSE coalesce($6, approved_by) END,
                approved_version = CASE WHEN $7 THEN NULL WHEN $6 IS NOT NULL THEN version ELSE approved_version END,
                approved_lists = CASE WHEN $7 THEN NULL WHEN $6 IS NOT NULL
                                      THEN ARRAY(SELECT l.slug FROM update_lists ul JOIN lists l ON l.id = ul.list_id
                                                 WHERE ul.update_id = $1 ORDER BY l.slug)
                                      ELSE approved_lists END,
                approved_recipients = CASE WHEN $7 THEN NULL WHEN $6 IS NOT NULL THEN $8 ELSE approved_recipients END,
                approved_at = CASE WHEN $7 THEN NULL WHEN $6 IS NOT NULL THEN now() ELSE approved_at END,
                approval_requested_at = CASE WHEN $2 = 'awaiting_approval' THEN clock_timestamp()
                                             WHEN $7 THEN NULL ELSE approval_requested_at END,
                scheduled_by = CASE WHEN $9 THEN $10 ELSE scheduled_by END,
                templates_as_of = CASE WHEN $9 AND NOT ($11 AND templates_as_of IS NOT NULL)
                                       THEN mail_design_mark()
                                       WHEN $2 = 'draft' THEN NULL ELSE templates_as_of END
         WHERE id = $1",
    )
    .bind(id)
    .bind(new_status)
    .bind(at)
    .bind(reason)
    .bind(match action {
        Action::RequestApproval(_, by) => by,
        _ => None,
    })
    .bind(match action {
        Action::Approve(by) => Some(by),
        _ => None,
    })
    .bind(voids)
    .bind(match action {
        Action::Approve(_) => Some(recipient_count(&mut *tx, id).await?),
        _ => None,
    })
    .bind(releases)
    .bind(by)
    // A resume keeps the templates fixed when it was released before it was paused.
    .bind(matches!(action, Action::Resume))
    .execute(&mut *tx)
    .await?;
    if new_status == "cancelled" {
        sqlx::query(
            "UPDATE deliveries SET status = 'skipped', last_reply = 'update cancelled', updated_at = now()
             WHERE update_id = $1 AND status IN ('queued', 'deferred')",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(Some(Applied::Done(new_status.to_owned())))
}

/// The people an update would go to if it started now: confirmed subscribers confirmed on any
/// of its lists (the same rule as the rows written at start).
pub async fn recipient_count(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM subscribers s
         WHERE s.status = 'confirmed'
           AND EXISTS (SELECT 1 FROM subscriptions sub
                       WHERE sub.subscriber_id = s.id AND sub.status = 'confirmed'
                         AND sub.list_id IN (SELECT list_id FROM update_lists WHERE update_id = $1))",
    )
    .bind(id)
    .fetch_one(db)
    .await
}

/// The recipients of update `u` (in the statement around it) whose delivery rows are not
/// written yet: those after its cursor, by the rule of `claim_new_recipients` (confirmed on one
/// of its lists, and before it started). A count over every subscriber after the cursor (about
/// 1 s at 1,000,000 subscribers, measured; 6 s as the join it was written as before), so it runs
/// once an update (`count_expected_recipients`), and at a view only until then.
const UNWRITTEN_OF_U: &str = "SELECT count(*) FROM subscribers s
     WHERE s.id > coalesce(u.recipients_after, '00000000-0000-0000-0000-000000000000')
       AND s.status = 'confirmed'
       AND (s.confirmed_at IS NULL OR s.confirmed_at <= u.started_at)
       AND EXISTS (SELECT 1 FROM subscriptions sub
                   JOIN update_lists ul ON ul.list_id = sub.list_id AND ul.update_id = u.id
                   WHERE sub.subscriber_id = s.id AND sub.status = 'confirmed')";

/// Recipients of a sending or paused update whose delivery rows are not written yet, given the
/// `rows` it has: its recipients as counted once after the start (`recipients_expected`) less
/// its rows, or before that count, an exact count. 0 once its rows are complete, and for an
/// update not under way. Someone who leaves after the count, before their row is written, stays
/// counted until the update's rows are complete.
pub async fn unwritten_recipients(
    db: impl PgExecutor<'_>,
    id: Uuid,
    rows: i64,
) -> sqlx::Result<i64> {
    let unwritten: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT CASE WHEN u.status NOT IN ('sending', 'paused') OR u.recipients_complete THEN 0
                     WHEN u.recipients_expected IS NOT NULL
                         THEN greatest(0, u.recipients_expected - $2)
                     ELSE ({UNWRITTEN_OF_U}) END
         FROM updates u WHERE u.id = $1"
    ))
    .bind(id)
    .bind(rows)
    .fetch_optional(db)
    .await?;
    Ok(unwritten.unwrap_or(0))
}

/// Takes, for the rest of the transaction, the right to count update `$1`'s recipients; false
/// when another transaction holds it (another worker is counting that update).
pub const RECIPIENT_COUNT_LOCK: &str =
    "SELECT pg_try_advisory_xact_lock(hashtextextended('recipient_count:' || $1::text, 0))";

/// Counts the recipients of the longest-running sending or paused update not counted yet (the
/// rows written so far plus those still to write, in one snapshot) and keeps the figure in
/// `recipients_expected`; returns the update counted. One update a call; at 1,000,000
/// subscribers a call takes seconds (it runs in the scheduler, beside the send, once an update).
///
/// Every worker's scheduler calls it, so the count is made under [`RECIPIENT_COUNT_LOCK`]:
/// while one worker counts an update, the others pass (None) instead of each making the same
/// count (measured with four worker processes on one update: four counts before).
pub async fn count_expected_recipients(pool: &PgPool) -> sqlx::Result<Option<Uuid>> {
    const UNCOUNTED: &str = "u.status IN ('sending', 'paused') AND NOT u.recipients_complete
                             AND u.recipients_expected IS NULL";
    let found: Option<Uuid> = sqlx::query_scalar(&format!(
        "SELECT u.id FROM updates u WHERE {UNCOUNTED} ORDER BY u.started_at LIMIT 1"
    ))
    .fetch_optional(pool)
    .await?;
    let Some(id) = found else {
        return Ok(None);
    };
    let mut tx = pool.begin().await?;
    let ours: bool = sqlx::query_scalar(RECIPIENT_COUNT_LOCK)
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    if !ours {
        return Ok(None);
    }
    // Still uncounted now that the lock is ours: a worker that counted it may just have let go.
    let expected: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT (SELECT count(*) FROM deliveries d WHERE d.update_id = u.id) + ({UNWRITTEN_OF_U})
         FROM updates u WHERE u.id = $1 AND {UNCOUNTED}"
    ))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(expected) = expected else {
        return Ok(None);
    };
    // Stored apart from the count: an UPDATE that counted while a claim moved the cursor would
    // recount the cursor's new value against the rows of its old snapshot.
    sqlx::query(
        "UPDATE updates SET recipients_expected = $2 WHERE id = $1 AND recipients_expected IS NULL",
    )
    .bind(id)
    .bind(expected)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(id))
}

/// Notes the IANA zone a schedule was given in.
pub async fn set_time_zone(db: impl PgExecutor<'_>, id: Uuid, zone: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE updates SET time_zone = $2 WHERE id = $1")
        .bind(id)
        .bind(zone)
        .execute(db)
        .await?;
    Ok(())
}

/// An update in a listing, with its delivery counts.
#[derive(Debug, Clone, Serialize)]
pub struct UpdateSummary {
    pub id: Uuid,
    pub subject: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub sent: i64,
    pub failed: i64,
    pub total: i64,
}

/// Recent updates, newest first, with their delivery counts.
pub async fn recent(db: impl PgExecutor<'_>, limit: i64) -> sqlx::Result<Vec<UpdateSummary>> {
    let rows = sqlx::query(
        "SELECT u.id, u.subject, u.status, u.created_at, c.sent, c.failed, c.total
         FROM (SELECT id, subject, status, created_at FROM updates
               ORDER BY created_at DESC LIMIT $1) u
         CROSS JOIN LATERAL (
             SELECT count(*) FILTER (WHERE d.status = 'sent') AS sent,
                    count(*) FILTER (WHERE d.status = 'failed') AS failed,
                    count(*) AS total
             FROM deliveries d WHERE d.update_id = u.id) c
         ORDER BY u.created_at DESC",
    )
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows
        .iter()
        .map(|r| UpdateSummary {
            id: r.get("id"),
            subject: r.get("subject"),
            status: r.get("status"),
            created_at: r.get("created_at"),
            sent: r.get("sent"),
            failed: r.get("failed"),
            total: r.get("total"),
        })
        .collect())
}

/// What the scheduler says when it holds a stale schedule.
pub const STALE_REASON: &str =
    "its schedule passed while the service was down; resume to send it now";

/// Pauses scheduled updates whose time passed more than `stale_after` ago: after downtime,
/// staff confirm (resume) before such an update goes out. Returns the updates paused.
pub async fn hold_stale(db: impl PgExecutor<'_>, stale_after: Duration) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "UPDATE updates SET status = 'paused', updated_at = now(), status_reason = $2
         WHERE status = 'scheduled' AND scheduled_at < now() - make_interval(secs => $1)
         RETURNING id",
    )
    .bind(seconds(stale_after))
    .bind(STALE_REASON)
    .fetch_all(db)
    .await
}

/// The archived lists among an update's lists, by slug.
pub async fn archived_lists(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT l.slug FROM update_lists ul JOIN lists l ON l.id = ul.list_id
         WHERE ul.update_id = $1 AND l.archived_at IS NOT NULL ORDER BY l.slug",
    )
    .bind(id)
    .fetch_all(db)
    .await
}

/// Pauses scheduled updates (due or not) addressed to an archived list, with the reason: they
/// do not start until staff reopen the list or change the update's lists and resume it.
pub async fn hold_archived(db: impl PgExecutor<'_>) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "UPDATE updates u SET status = 'paused', updated_at = now(),
                status_reason = 'not started: its list ' || a.slugs || ' is archived; reopen the list or change the lists, then resume'
         FROM (SELECT ul.update_id, string_agg(l.slug, ', ' ORDER BY l.slug) AS slugs
               FROM update_lists ul JOIN lists l ON l.id = ul.list_id
               WHERE l.archived_at IS NOT NULL GROUP BY ul.update_id) a
         WHERE u.id = a.update_id AND u.status = 'scheduled'",
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// What [`start_one_due`] did with the due update it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// It is sending now.
    Sending(Uuid),
    /// It was not approved and its audience is now past the approval threshold: it waits for
    /// approval instead (`recipients`: its audience now).
    HeldForApproval { id: Uuid, recipients: i64 },
}

/// Starts one due update: it becomes `sending`, with the version that goes out, the mail
/// templates it goes out with (`templates_as_of`), its place in the public archive (where
/// staff did not choose: listed when one of its lists is public) and its archive slug (dated
/// the day it starts in `zone`), in one transaction. Its delivery rows are written by the
/// workers as they claim them (`claim_new_recipients`). One addressed to an archived list is
/// not started (`hold_archived` pauses it).
///
/// With an `approval_threshold`, whether it needs approval is decided again now: one not
/// approved at its current version whose audience grew past the threshold since it was
/// scheduled waits in `awaiting_approval` instead, asked for by whoever scheduled it (so that
/// they cannot approve it themselves).
pub async fn start_one_due(
    pool: &PgPool,
    (approval_threshold, stale_after): (Option<u64>, Duration),
    zone: chrono_tz::Tz,
) -> anyhow::Result<Option<Started>> {
    let mut tx = pool.begin().await?;
    // One further past its time than `stale_after` waits for `hold_stale` and staff, whichever
    // of the two statements sees it first.
    let due: Option<(Uuid, i32, Option<i32>)> = sqlx::query_as(
        "SELECT id, version, approved_version FROM updates u
         WHERE status = 'scheduled' AND scheduled_at <= now()
           AND scheduled_at >= now() - make_interval(secs => $1)
           AND NOT EXISTS (SELECT 1 FROM update_lists ul JOIN lists l ON l.id = ul.list_id
                           WHERE ul.update_id = u.id AND l.archived_at IS NOT NULL)
         ORDER BY scheduled_at LIMIT 1 FOR UPDATE SKIP LOCKED",
    )
    .bind(seconds(stale_after))
    .fetch_optional(&mut *tx)
    .await?;
    let Some((id, version, approved_version)) = due else {
        return Ok(None);
    };
    if let Some(threshold) = approval_threshold.filter(|_| approved_version != Some(version)) {
        let recipients = recipient_count(&mut *tx, id).await?;
        if u64::try_from(recipients).unwrap_or(0) > threshold {
            sqlx::query(
                "UPDATE updates SET status = 'awaiting_approval', updated_at = now(),
                        status_reason = $2, approval_requested_by = scheduled_by,
                        approval_requested_at = clock_timestamp(), templates_as_of = NULL
                 WHERE id = $1",
            )
            .bind(id)
            .bind(format!(
                "its audience grew to {recipients} recipients, past the approval threshold of \
                 {threshold}: waiting for an admin to approve"
            ))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(Some(Started::HeldForApproval { id, recipients }));
        }
    }
    let (subject, started_at): (String, DateTime<Utc>) = sqlx::query_as(
        "UPDATE updates u SET status = 'sending', started_at = now(), updated_at = now(),
                recipients_after = NULL, recipients_complete = false, recipients_expected = NULL,
                sent_version = version,
                templates_as_of = coalesce(templates_as_of, mail_design_mark()),
                in_archive = CASE WHEN archive_chosen THEN in_archive
                                  ELSE EXISTS (SELECT 1 FROM update_lists ul JOIN lists l ON l.id = ul.list_id
                                               WHERE ul.update_id = u.id AND l.is_public) END
         WHERE id = $1
         RETURNING subject, started_at",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    set_slug(
        &mut tx,
        id,
        &archive_slug(&subject, started_at.with_timezone(&zone).date_naive()),
    )
    .await?;
    tx.commit().await?;
    Ok(Some(Started::Sending(id)))
}

/// Gives a starting update its archive slug, once: `slug`, or when another update has it
/// already (one subject twice on one day), `slug` and the start of the update's id.
async fn set_slug(tx: &mut PgConnection, id: Uuid, slug: &str) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE updates SET slug = CASE
                WHEN EXISTS (SELECT 1 FROM updates WHERE slug = $2) THEN $2 || '-' || left(replace(id::text, '-', ''), 8)
                ELSE $2 END
         WHERE id = $1 AND slug IS NULL",
    )
    .bind(id)
    .bind(slug)
    .execute(&mut *tx)
    .await
    .context("giving the update its archive slug")?;
    Ok(())
}

/// The statement of `claim_new_recipients` ($1: rows at most, $2: lease in seconds); public so
/// that a test can hold its plan to what the docstring there promises.
pub const CLAIM_NEW_RECIPIENTS: &str = "WITH RECURSIVE u AS (
             SELECT id, started_at, coalesce(recipients_after, '00000000-0000-0000-0000-000000000000') AS after,
                    ARRAY(SELECT list_id FROM update_lists ul WHERE ul.update_id = updates.id) AS lists
             FROM updates
             WHERE status = 'sending' AND NOT recipients_complete
             ORDER BY started_at LIMIT 1
             FOR UPDATE),
         -- from the cursor, each step the next confirmed member of any of the update's lists
         -- in id order (the first row is the cursor itself, which `member` leaves out)
         walk(id) AS (
             SELECT after FROM u
             UNION ALL
             SELECT (SELECT n.subscriber_id FROM unnest((SELECT lists FROM u)::uuid[]) AS l(id)
                     CROSS JOIN LATERAL (
                         SELECT sub.subscriber_id FROM subscriptions sub
                         WHERE sub.list_id = l.id AND sub.status = 'confirmed'
                           AND sub.subscriber_id > walk.id
                         ORDER BY sub.subscriber_id LIMIT 1) n
                     ORDER BY n.subscriber_id LIMIT 1)
             FROM walk WHERE walk.id IS NOT NULL),
         -- each member's own row, by primary key (`>=` with the order and limit: the primary
         -- key's ordered scan whatever the estimates; the row found must be the member's;
         -- materialized, so that the row is read once, not once for each field tested)
         member(id, s) AS MATERIALIZED (
             SELECT walk.id,
                    (SELECT s FROM subscribers s WHERE s.id >= walk.id ORDER BY s.id LIMIT 1)
             FROM walk WHERE walk.id > (SELECT after FROM u)),
         batch AS (
             SELECT member.id FROM member
             WHERE (s).id = member.id AND (s).status = 'confirmed'
               AND ((s).confirmed_at IS NULL OR (s).confirmed_at <= (SELECT started_at FROM u))
             LIMIT $1),
         moved AS (
             UPDATE updates
             SET recipients_after = coalesce((SELECT id FROM batch ORDER BY id DESC LIMIT 1), recipients_after),
                 recipients_complete = (SELECT count(*) FROM batch) < $1
             WHERE id = (SELECT id FROM u))
         INSERT INTO deliveries (kind, update_id, subscriber_id, status, attempts, next_attempt_at)
         SELECT 'update', (SELECT id FROM u), id, 'sending', 1, now() + make_interval(secs => $2)
         FROM batch
         ON CONFLICT (subscriber_id, update_id) DO NOTHING
         RETURNING id, kind, subscriber_id, update_id, payload, attempts, created_at, message_key";

/// Writes and claims, in one statement, the next `limit` delivery rows (at most) of the oldest
/// sending update whose rows are not all written: each row is born claimed (`sending`, attempt
/// 1, leased for `lease`), as `deliveries::claim` would leave it, so a mail costs one row write
/// fewer than a row written `queued` and claimed later. Empty when no sending update has rows
/// left to write (or all `limit` came out already written, which the unique index allows but
/// the cursor prevents).
///
/// Who gets a row: each confirmed subscriber of the update's lists, in subscriber-id order
/// after the update's cursor (`recipients_after`), each once (the unique index on (subscriber,
/// update) holds even if two chunks overlapped). Who confirmed after the update started is
/// not a recipient; who leaves before their chunk gets no row. The cursor moves past the
/// chunk; a chunk that comes out short marks the rows complete (`recipients_complete`), after
/// which `finish_done` may finish the update.
///
/// Any number of workers: the update's row is locked for the statement, and a second worker
/// waits for the first (taking the next chunk after it) rather than finding nothing to do.
/// The plan matters, and must not depend on the tables' statistics (a list imported a minute
/// ago has none), nor on how many subscribers are on other lists: the walk goes from the cursor
/// through the confirmed members of the update's lists in subscriber-id order, one at a time (a
/// recursive step: for each list, the next member after the previous one by
/// `subscriptions_by_list_in_subscriber_order`, the smallest of those), and reads each member's
/// own row by primary key; it stops as soon as the chunk is full. So a chunk costs the same at
/// the start and at the end of a million-row list, and an update to a list of 500 reads about 500
/// subscribers however many others there are. Two earlier forms, measured: a plain filtered scan
/// with no statistics took `subscribers_by_status` or a bitmap scan plus a sort of every
/// subscriber after the cursor (a 10,000-recipient send in chunks of 20 took minutes); a walk
/// of every subscriber probing each one's subscriptions passed over everyone not on the lists
/// (30,000 recipients among 1,100,000 subscribers: about 1,100 mails a second). The nil uuid,
/// which no subscriber has, stands before the first.
pub async fn claim_new_recipients(
    db: impl PgExecutor<'_>,
    limit: u32,
    lease: Duration,
) -> sqlx::Result<Vec<Claimed>> {
    super::deliveries::claimed_by(db, CLAIM_NEW_RECIPIENTS, limit, lease).await
}

/// Skips the rows of cancelled updates that were in flight at the cancel and came back
/// deferred (the cancel itself skips every row that was waiting).
pub async fn skip_cancelled_leftovers(db: impl PgExecutor<'_>) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "UPDATE deliveries d SET status = 'skipped', last_reply = 'update cancelled', updated_at = now()
         FROM updates u
         WHERE u.id = d.update_id AND u.status = 'cancelled' AND d.status IN ('queued', 'deferred')",
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Marks `sent` every sending update whose rows are all final.
pub async fn finish_done(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "UPDATE updates u SET status = 'sent', finished_at = now(), updated_at = now()
         WHERE status = 'sending' AND recipients_complete AND NOT EXISTS (
             SELECT 1 FROM deliveries d
             WHERE d.update_id = u.id AND d.status IN ('queued', 'sending', 'deferred'))
         RETURNING id",
    )
    .fetch_all(db)
    .await
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeliveryRow {
    pub id: i64,
    pub subscriber_id: Option<Uuid>,
    pub email: Option<String>,
    pub status: String,
    pub attempts: i32,
    pub last_reply: Option<String>,
    pub ambiguous: bool,
    pub message_id: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub next_attempt_at: DateTime<Utc>,
}

/// One page of an update's deliveries, optionally of one status, after row `after`.
pub async fn deliveries(
    db: impl PgExecutor<'_>,
    id: Uuid,
    status: Option<&str>,
    after: i64,
    limit: i64,
) -> sqlx::Result<Vec<DeliveryRow>> {
    let rows = sqlx::query(
        "SELECT d.id, d.subscriber_id, s.email, d.status, d.attempts, d.last_reply, d.ambiguous,
                d.message_id, d.sent_at, d.next_attempt_at
         FROM deliveries d LEFT JOIN subscribers s ON s.id = d.subscriber_id
         WHERE d.update_id = $1 AND ($2::text IS NULL OR d.status = $2) AND d.id > $3
         ORDER BY d.id LIMIT $4",
    )
    .bind(id)
    .bind(status)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows
        .iter()
        .map(|r| DeliveryRow {
            id: r.get("id"),
            subscriber_id: r.get("subscriber_id"),
            email: r.get("email"),
            status: r.get("status"),
            attempts: r.get("attempts"),
            last_reply: r.get("last_reply"),
            ambiguous: r.get("ambiguous"),
            message_id: r.get("message_id"),
            sent_at: r.get("sent_at"),
            next_attempt_at: r.get("next_attempt_at"),
        })
        .collect())
}

/// Queues the failed deliveries of an update again (for subscribers still confirmed), and puts
/// a finished update back to `sending`. Returns how many were re-queued.
pub async fn retry_failed(pool: &PgPool, id: Uuid) -> anyhow::Result<u64> {
    let mut tx = pool.begin().await?;
    let n = sqlx::query(
        "UPDATE deliveries d SET status = 'queued', next_attempt_at = now(), updated_at = now(),
                last_reply = 'retry requested: ' || coalesce(d.last_reply, '')
         FROM subscribers s
         WHERE d.update_id = $1 AND d.status = 'failed' AND s.id = d.subscriber_id AND s.status = 'confirmed'",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n > 0 {
        sqlx::query("UPDATE updates SET status = 'sending', finished_at = NULL, updated_at = now() WHERE id = $1 AND status = 'sent'")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(n)
}

/// Queues one test mail of version `version` of an update to `to`, outside the update's
/// ledger.
pub async fn queue_test(
    db: impl PgExecutor<'_>,
    id: Uuid,
    version: i32,
    to: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO deliveries (kind, payload)
         VALUES ('test', jsonb_build_object('update_id', $1::text, 'to', $2::text, 'version', $3::int))",
    )
    .bind(id.to_string())
    .bind(to)
    .bind(version)
    .execute(db)
    .await?;
    Ok(())
}

/// Queues a notice to a member of staff at `to` (see `worker::delivery::compose_notice`).
pub async fn queue_notice(
    db: impl PgExecutor<'_>,
    to: &str,
    subject: &str,
    text: &str,
    action: &str,
    url: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO deliveries (kind, payload)
         VALUES ('notice', jsonb_build_object('to', $1::text, 'subject', $2::text,
                                              'text', $3::text, 'action', $4::text, 'url', $5::text))",
    )
    .bind(to)
    .bind(subject)
    .bind(text)
    .bind(action)
    .bind(url)
    .execute(db)
    .await?;
    Ok(())
}

/// Notices to `to` with this subject queued within `within`.
pub async fn recent_notices(
    db: impl PgExecutor<'_>,
    to: &str,
    subject: &str,
    within: std::time::Duration,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM deliveries
         WHERE kind = 'notice' AND payload->>'to' = $1 AND payload->>'subject' = $2
           AND created_at > now() - make_interval(secs => $3)",
    )
    .bind(to)
    .bind(subject)
    .bind(super::seconds(within))
    .fetch_one(db)
    .await
}

/// The circuit breaker: if at least `percent` % of the update's last `window` finished sends
/// (and at least `min_sends` of them) were policy refusals (5.7.x), pauses it with the reason.
/// Returns whether it paused the update.
pub async fn trip_breaker_if_needed(
    db: impl PgExecutor<'_>,
    id: Uuid,
    window: u32,
    percent: u32,
    min_sends: u32,
) -> sqlx::Result<bool> {
    let paused = sqlx::query(
        "WITH recent AS (
             SELECT status, last_reply FROM deliveries
             WHERE update_id = $1 AND status IN ('sent', 'failed')
             ORDER BY updated_at DESC LIMIT $2)
         , tally AS (
             SELECT count(*) AS total,
                    count(*) FILTER (WHERE status = 'failed' AND last_reply ~ '(^|[^0-9.])5\\.7\\.[0-9]{1,3}') AS policy,
                    max(last_reply) FILTER (WHERE status = 'failed' AND last_reply ~ '(^|[^0-9.])5\\.7\\.[0-9]{1,3}') AS example
             FROM recent)
         UPDATE updates u
         SET status = 'paused', updated_at = now(),
             status_reason = format('paused by the circuit breaker: %s of the last %s sends were refused for policy reasons (5.7.x), e.g. %s',
                                    t.policy, t.total, left(t.example, 200))
         FROM tally t
         WHERE u.id = $1 AND u.status = 'sending' AND t.total >= $4 AND t.policy * 100 >= $3 * t.total",
    )
    .bind(id)
    .bind(i64::from(window))
    .bind(i64::from(percent))
    .bind(i64::from(min_sends))
    .execute(db)
    .await?;
    Ok(paused.rows_affected() == 1)
}
