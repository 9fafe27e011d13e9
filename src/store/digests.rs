//! Digest schedules and their occurrences (`digest_runs`, one row per occurrence that fired).

use chrono::{DateTime, NaiveTime, Utc, Weekday};
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::{PgExecutor, PgPool, Row};
use uuid::Uuid;

use crate::domain::recurrence::Frequency;
use crate::domain::{Recurrence, MAX_NEWS_ITEMS};

/// A schedule as stored (parsed by `ops::digests`).
#[derive(Debug, Clone)]
pub struct DigestFields {
    pub name: String,
    pub lists: Vec<String>,
    pub topics: Vec<String>,
    pub intro: String,
    pub template: String,
    pub recurrence: Recurrence,
    pub mode: String,
    pub active: bool,
}

#[derive(Debug, Clone)]
pub struct DigestRecord {
    pub id: Uuid,
    pub fields: DigestFields,
    pub next_at: DateTime<Utc>,
    pub covered_until: Option<DateTime<Utc>>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct DigestRun {
    pub digest_id: Uuid,
    pub due_at: DateTime<Utc>,
    pub fired_at: DateTime<Utc>,
    /// `building`, `sent`, `review`, `held`, `skipped` or `failed`.
    pub outcome: String,
    pub reason: Option<String>,
    pub news_ids: Vec<Uuid>,
    pub update_id: Option<Uuid>,
}

fn iso_weekday(d: Weekday) -> i16 {
    i16::try_from(d.number_from_monday()).unwrap_or(1)
}

fn weekday_from_iso(n: i16) -> Option<Weekday> {
    match n {
        1 => Some(Weekday::Mon),
        2 => Some(Weekday::Tue),
        3 => Some(Weekday::Wed),
        4 => Some(Weekday::Thu),
        5 => Some(Weekday::Fri),
        6 => Some(Weekday::Sat),
        7 => Some(Weekday::Sun),
        _ => None,
    }
}

fn record(r: &PgRow) -> anyhow::Result<DigestRecord> {
    let zone: String = r.get("time_zone");
    let frequency = match r.get::<String, _>("frequency").as_str() {
        "monthly" => Frequency::Monthly(
            u32::try_from(r.get::<Option<i16>, _>("day_of_month").unwrap_or(1)).unwrap_or(1),
        ),
        _ => Frequency::Weekly(
            r.get::<Vec<i16>, _>("weekdays")
                .into_iter()
                .filter_map(weekday_from_iso)
                .collect(),
        ),
    };
    Ok(DigestRecord {
        id: r.get("id"),
        fields: DigestFields {
            name: r.get("name"),
            lists: r.get("lists"),
            topics: r.get("topics"),
            intro: r.get("intro"),
            template: r.get("template"),
            recurrence: Recurrence {
                frequency,
                at: r.get::<NaiveTime, _>("at_time"),
                zone: zone
                    .parse()
                    .map_err(|_| anyhow::anyhow!("stored time zone {zone:?} is unknown"))?,
            },
            mode: r.get("mode"),
            active: r.get("active"),
        },
        next_at: r.get("next_at"),
        covered_until: r.get("covered_until"),
        created_by: r.get("created_by"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    })
}

/// The recurrence's columns: frequency, weekdays, day of the month.
fn recurrence_columns(r: &Recurrence) -> (&'static str, Vec<i16>, Option<i16>) {
    match &r.frequency {
        Frequency::Weekly(days) => (
            "weekly",
            days.iter().map(|d| iso_weekday(*d)).collect(),
            None,
        ),
        Frequency::Monthly(day) => ("monthly", Vec::new(), i16::try_from(*day).ok()),
    }
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds a schedule's fields and its next occurrence as parameters `$2` to `$14`, in the
/// column order `insert` and `replace` both name.
fn bind_fields<'q>(query: PgQuery<'q>, f: &'q DigestFields, next_at: DateTime<Utc>) -> PgQuery<'q> {
    let (frequency, weekdays, day) = recurrence_columns(&f.recurrence);
    query
        .bind(&f.name)
        .bind(&f.lists)
        .bind(&f.topics)
        .bind(&f.intro)
        .bind(&f.template)
        .bind(frequency)
        .bind(weekdays)
        .bind(day)
        .bind(f.recurrence.at)
        .bind(f.recurrence.zone.name())
        .bind(&f.mode)
        .bind(f.active)
        .bind(next_at)
}

pub async fn insert(
    db: impl PgExecutor<'_>,
    f: &DigestFields,
    next_at: DateTime<Utc>,
    created_by: &str,
) -> sqlx::Result<Uuid> {
    let id = Uuid::new_v4();
    let query = sqlx::query(
        "INSERT INTO digests (id, name, lists, topics, intro, template, frequency, weekdays,
                              day_of_month, at_time, time_zone, mode, active, next_at, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(id);
    bind_fields(query, f, next_at)
        .bind(created_by)
        .execute(db)
        .await?;
    Ok(id)
}

/// Replaces a schedule's fields and its next occurrence; `false` when there is none.
pub async fn replace(
    db: impl PgExecutor<'_>,
    id: Uuid,
    f: &DigestFields,
    next_at: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let query = sqlx::query(
        "UPDATE digests SET name = $2, lists = $3, topics = $4, intro = $5, template = $6,
                frequency = $7, weekdays = $8, day_of_month = $9, at_time = $10, time_zone = $11,
                mode = $12, active = $13, next_at = $14, updated_at = now()
         WHERE id = $1",
    )
    .bind(id);
    let done = bind_fields(query, f, next_at).execute(db).await?;
    Ok(done.rows_affected() == 1)
}

pub async fn delete(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM digests WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> anyhow::Result<Option<DigestRecord>> {
    sqlx::query("SELECT * FROM digests WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?
        .as_ref()
        .map(record)
        .transpose()
}

pub async fn list(db: impl PgExecutor<'_>) -> anyhow::Result<Vec<DigestRecord>> {
    sqlx::query("SELECT * FROM digests ORDER BY name, id")
        .fetch_all(db)
        .await?
        .iter()
        .map(record)
        .collect()
}

/// The schedule's last occurrences, newest first.
pub async fn runs(db: impl PgExecutor<'_>, id: Uuid, limit: i64) -> sqlx::Result<Vec<DigestRun>> {
    sqlx::query_as(
        "SELECT digest_id, due_at, fired_at, outcome, reason, news_ids, update_id FROM digest_runs
         WHERE digest_id = $1 ORDER BY due_at DESC LIMIT $2",
    )
    .bind(id)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// An occurrence that has just fired: its row is written, the schedule moved on.
#[derive(Debug, Clone)]
pub struct Fired {
    pub digest: DigestRecord,
    pub due_at: DateTime<Utc>,
    pub run_id: i64,
    /// The approved items it carries, oldest approval first; empty: it was skipped.
    pub news_ids: Vec<Uuid>,
}

/// Fires the earliest due occurrence of any active schedule, once: in one transaction, with the
/// schedule row locked (`SKIP LOCKED`: another worker takes another schedule), it writes the
/// occurrence's row (unique per schedule and time), picks the approved items added since the
/// previous digest (or, when there are none, records the skip and its reason) and moves the
/// schedule to its next occurrence, computed by `next` in the schedule's zone.
pub async fn fire_due(
    pool: &PgPool,
    next: impl Fn(&Recurrence, DateTime<Utc>) -> DateTime<Utc>,
) -> anyhow::Result<Option<Fired>> {
    let mut tx = pool.begin().await?;
    let Some(row) = sqlx::query(
        "SELECT * FROM digests WHERE active AND next_at <= now()
         ORDER BY next_at LIMIT 1 FOR UPDATE SKIP LOCKED",
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(None);
    };
    let digest = record(&row)?;
    let due_at = digest.next_at;
    let picked: Vec<(Uuid, DateTime<Utc>)> = sqlx::query_as(
        "SELECT n.id, n.approved_at FROM news n
         WHERE n.status = 'approved' AND n.approved_at <= now()
           AND ($1::timestamptz IS NULL OR n.approved_at > $1)
           AND (cardinality($2::text[]) = 0 OR n.topic = ANY($2))
           AND NOT EXISTS (SELECT 1 FROM news_items ni JOIN updates u ON u.id = ni.update_id
                           WHERE ni.news_id = n.id AND u.started_at IS NOT NULL)
         ORDER BY n.approved_at, n.id LIMIT $3",
    )
    .bind(digest.covered_until)
    .bind(&digest.fields.topics)
    .bind(i64::try_from(MAX_NEWS_ITEMS).unwrap_or(50))
    .fetch_all(&mut *tx)
    .await?;
    let news_ids: Vec<Uuid> = picked.iter().map(|(id, _)| *id).collect();
    // A full digest covers up to its last item; the rest wait for the next one.
    let covered = if picked.len() >= MAX_NEWS_ITEMS {
        picked.last().map(|(_, at)| *at)
    } else {
        None
    };
    let (outcome, reason) = if news_ids.is_empty() {
        (
            "skipped",
            Some("no approved news items were added since the previous digest"),
        )
    } else {
        ("building", None)
    };
    let run_id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO digest_runs (digest_id, due_at, outcome, reason, news_ids)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (digest_id, due_at) DO NOTHING RETURNING id",
    )
    .bind(digest.id)
    .bind(due_at)
    .bind(outcome)
    .bind(reason)
    .bind(&news_ids)
    .fetch_optional(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE digests SET next_at = $2,
                covered_until = CASE WHEN $3 THEN coalesce($4, now()) ELSE covered_until END
         WHERE id = $1",
    )
    .bind(digest.id)
    .bind(next(&digest.fields.recurrence, due_at))
    .bind(run_id.is_some() && !news_ids.is_empty())
    .bind(covered)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(run_id.map(|run_id| Fired {
        digest,
        due_at,
        run_id,
        news_ids,
    }))
}

/// Marks failed the occurrences still `building` after `after` (their worker died between
/// firing and building; the occurrence is not fired again). Returns how many.
pub async fn fail_interrupted(
    db: impl PgExecutor<'_>,
    after: std::time::Duration,
) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "UPDATE digest_runs SET outcome = 'failed',
                reason = 'interrupted while its update was being built; see /admin/updates for a draft'
         WHERE outcome = 'building' AND fired_at < now() - make_interval(secs => $1)",
    )
    .bind(super::seconds(after))
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Records what became of a fired occurrence.
pub async fn finish_run(
    db: impl PgExecutor<'_>,
    run_id: i64,
    outcome: &str,
    reason: Option<&str>,
    update_id: Option<Uuid>,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE digest_runs SET outcome = $2, reason = $3, update_id = $4 WHERE id = $1")
        .bind(run_id)
        .bind(outcome)
        .bind(reason)
        .bind(update_id)
        .execute(db)
        .await?;
    Ok(())
}
