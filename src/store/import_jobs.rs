//! Background import jobs: one row each, claimed with `SKIP LOCKED`, progress written after
//! every chunk so another process can carry on after a restart.

use serde::Serialize;
use sqlx::{PgExecutor, Row};
use uuid::Uuid;

/// A job as its status page and the API show it: `running`, `done` or `failed`. Once done,
/// every data row of the file is counted once: `imported` + `added_to_lists` +
/// `already_there` + `duplicates` + `refused` + `suppressed` = `rows`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ImportJob {
    pub id: Uuid,
    pub status: String,
    pub mode: String,
    /// Where the consent was given, as staff said: in each imported person's consent log.
    pub source: String,
    /// The lists ticked for everyone; when none was ticked, the default lists, which only
    /// rows that name no list join (`lists_ticked` false).
    pub lists: Vec<String>,
    pub lists_ticked: bool,
    /// Data rows in the file.
    pub rows: i32,
    pub processed: i32,
    /// New people.
    pub imported: i32,
    /// People already here who joined a list they were not on (or, pending, were confirmed).
    pub added_to_lists: i32,
    /// People already here on every list their row names: nothing changed.
    pub already_there: i32,
    /// Later rows of an address an earlier row of the file had.
    pub duplicates: i32,
    /// Rows left out for a problem; `errors` says which and why.
    pub refused: i32,
    /// The refused rows by the column of their (first) problem.
    #[schema(value_type = Object)]
    pub refused_by: serde_json::Value,
    /// Rows of people who stay out: on the suppression list, unsubscribed, bounced or
    /// complained here, or so says the file (their address then goes on the suppression list).
    pub suppressed: i32,
    /// `[{"line", "field", "message"}]`, one per problem.
    pub errors: serde_json::Value,
    pub failure: Option<String>,
    pub created_by: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A claimed job with what it needs to run.
pub struct Claimed {
    pub id: Uuid,
    pub mode: String,
    pub source: String,
    pub lists: Vec<String>,
    pub lists_ticked: bool,
    pub file: Vec<u8>,
    pub processed: i32,
}

pub struct NewJob<'a> {
    pub mode: &'a str,
    pub source: &'a str,
    pub lists: &'a [String],
    pub lists_ticked: bool,
    pub file: &'a [u8],
    pub created_by: &'a str,
}

pub async fn create(db: impl PgExecutor<'_>, job: NewJob<'_>) -> sqlx::Result<Uuid> {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO import_jobs (id, mode, source, lists, lists_ticked, file, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(job.mode)
    .bind(job.source)
    .bind(job.lists)
    .bind(job.lists_ticked)
    .bind(job.file)
    .bind(job.created_by)
    .execute(db)
    .await?;
    Ok(id)
}

/// Takes the oldest job that is queued, or running without a heartbeat for `stale_seconds`.
pub async fn claim(db: impl PgExecutor<'_>, stale_seconds: f64) -> sqlx::Result<Option<Claimed>> {
    let row = sqlx::query(
        "UPDATE import_jobs SET status = 'running', heartbeat_at = now()
         WHERE id = (SELECT id FROM import_jobs
                     WHERE status = 'queued'
                        OR (status = 'running' AND heartbeat_at < now() - make_interval(secs => $1))
                     ORDER BY created_at FOR UPDATE SKIP LOCKED LIMIT 1)
         RETURNING id, mode, source, lists, lists_ticked, coalesce(file, '') AS file, processed",
    )
    .bind(stale_seconds)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| Claimed {
        id: r.get("id"),
        mode: r.get("mode"),
        source: r.get("source"),
        lists: r.get("lists"),
        lists_ticked: r.get("lists_ticked"),
        file: r.get("file"),
        processed: r.get("processed"),
    }))
}

/// What a part of a job came to: the counts to add, and the problems and refused rows (with
/// their cells) to append.
#[derive(Debug, Default)]
pub struct Outcome {
    pub imported: i32,
    pub added_to_lists: i32,
    pub already_there: i32,
    pub duplicates: i32,
    pub suppressed: i32,
    pub refused: i32,
    /// `{"column": count}`
    pub refused_by: serde_json::Value,
    /// `[{"line", "field", "message"}]`
    pub errors: serde_json::Value,
    /// `[{"line", "values", "error"}]`
    pub refused_rows: serde_json::Value,
}

/// Records the file once read: its size, its header, its duplicates and what its bad rows
/// came to.
pub async fn read(
    db: impl PgExecutor<'_>,
    id: Uuid,
    rows: i32,
    header: &[String],
    outcome: &Outcome,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE import_jobs SET rows = $2, header = $3, duplicates = $4, refused = $5,
                refused_by = $6, errors = $7, refused_rows = $8, heartbeat_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(rows)
    .bind(header.iter().map(|h| storable_text(h)).collect::<Vec<_>>())
    .bind(outcome.duplicates)
    .bind(outcome.refused)
    .bind(storable(&outcome.refused_by))
    .bind(storable(&outcome.errors))
    .bind(storable(&outcome.refused_rows))
    .execute(db)
    .await?;
    Ok(())
}

/// Adds a chunk's outcome and marks the job alive, if the job is still where this process
/// left it (`from`, the records handled before the chunk): `Ok(false)` when another process
/// has taken the job over and moved on, and the caller must roll its chunk back. Written in the
/// chunk's own transaction, so a chunk counts once whatever stops when.
pub async fn progress(
    db: impl PgExecutor<'_>,
    id: Uuid,
    from: i32,
    processed: i32,
    outcome: &Outcome,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE import_jobs SET processed = $2, imported = imported + $3,
                added_to_lists = added_to_lists + $4, already_there = already_there + $5,
                suppressed = suppressed + $6, refused = refused + $7, duplicates = duplicates + $12,
                refused_by = (SELECT coalesce(jsonb_object_agg(key, n), '{}')
                              FROM (SELECT key, sum(value::int) AS n
                                    FROM (SELECT * FROM jsonb_each_text(refused_by)
                                          UNION ALL SELECT * FROM jsonb_each_text($8::jsonb)) AS each_
                                    GROUP BY key) AS summed),
                errors = errors || $9::jsonb, refused_rows = refused_rows || $10::jsonb,
                heartbeat_at = now()
         WHERE id = $1 AND processed = $11 AND status = 'running'",
    )
    .bind(id)
    .bind(processed)
    .bind(outcome.imported)
    .bind(outcome.added_to_lists)
    .bind(outcome.already_there)
    .bind(outcome.suppressed)
    .bind(outcome.refused)
    .bind(storable(&outcome.refused_by))
    .bind(storable(&outcome.errors))
    .bind(storable(&outcome.refused_rows))
    .bind(from)
    .bind(outcome.duplicates)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends the job (`done` or `failed` with the reason) and drops the file.
pub async fn finish(db: impl PgExecutor<'_>, id: Uuid, failure: Option<&str>) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE import_jobs SET status = CASE WHEN $2::text IS NULL THEN 'done' ELSE 'failed' END,
                failure = $2, file = NULL, finished_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(failure)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<ImportJob>> {
    let row = sqlx::query(
        // A queued job shows as running: to whoever waits for it, it has started.
        "SELECT id, CASE status WHEN 'queued' THEN 'running' ELSE status END AS status, mode,
                source, lists, lists_ticked, rows, processed, imported, added_to_lists,
                already_there, duplicates, refused, refused_by, suppressed, errors, failure,
                created_by, created_at, finished_at
         FROM import_jobs WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| ImportJob {
        id: r.get("id"),
        status: r.get("status"),
        mode: r.get("mode"),
        source: r.get("source"),
        lists: r.get("lists"),
        lists_ticked: r.get("lists_ticked"),
        rows: r.get("rows"),
        processed: r.get("processed"),
        imported: r.get("imported"),
        added_to_lists: r.get("added_to_lists"),
        already_there: r.get("already_there"),
        duplicates: r.get("duplicates"),
        refused: r.get("refused"),
        refused_by: r.get("refused_by"),
        suppressed: r.get("suppressed"),
        errors: r.get("errors"),
        failure: r.get("failure"),
        created_by: r.get("created_by"),
        created_at: r.get("created_at"),
        finished_at: r.get("finished_at"),
    }))
}

/// The file's header and its refused rows (`[{"line", "values", "error"}]`), if the job exists.
pub async fn refused_rows(
    db: impl PgExecutor<'_>,
    id: Uuid,
) -> sqlx::Result<Option<(Vec<String>, serde_json::Value)>> {
    sqlx::query_as("SELECT header, refused_rows FROM import_jobs WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await
}

/// Drops the cells of the refused rows, and the quoted values of their problems, of the jobs
/// that finished more than `older_than` ago: what they said of people is not kept; the counts
/// and the lines stay. Returns how many jobs.
pub async fn forget_refused(
    db: impl PgExecutor<'_>,
    older_than: std::time::Duration,
) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "UPDATE import_jobs
         SET refused_rows = '[]',
             errors = (SELECT coalesce(jsonb_agg(e - 'message'), '[]') FROM jsonb_array_elements(errors) e)
         WHERE finished_at < now() - make_interval(secs => $1) AND refused_rows <> '[]'",
    )
    .bind(super::seconds(older_than))
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// A job as the list of recent imports shows it (no file, no problems).
#[derive(Debug, Clone, Serialize)]
pub struct JobSummary {
    pub id: Uuid,
    pub status: String,
    pub mode: String,
    pub lists: Vec<String>,
    pub rows: i32,
    pub imported: i32,
    pub refused: i32,
    pub created_by: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The `limit` newest jobs, newest first.
pub async fn recent(db: impl PgExecutor<'_>, limit: i64) -> sqlx::Result<Vec<JobSummary>> {
    let rows = sqlx::query(
        "SELECT id, CASE status WHEN 'queued' THEN 'running' ELSE status END AS status, mode, lists,
                rows, imported, refused, created_by, created_at
         FROM import_jobs ORDER BY created_at DESC, id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows
        .iter()
        .map(|r| JobSummary {
            id: r.get("id"),
            status: r.get("status"),
            mode: r.get("mode"),
            lists: r.get("lists"),
            rows: r.get("rows"),
            imported: r.get("imported"),
            refused: r.get("refused"),
            created_by: r.get("created_by"),
            created_at: r.get("created_at"),
        })
        .collect())
}

/// `text` as PostgreSQL can store it: a NUL (which no `text` or `jsonb` value may hold, and which
/// a refused row may well contain) becomes U+FFFD.
fn storable_text(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}

/// `value` with every string (keys included) made [`storable_text`]. Before, one NUL in a
/// refused cell made the whole import fail on writing its outcome.
fn storable(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => Value::String(storable_text(s)),
        Value::Array(items) => Value::Array(items.iter().map(storable).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (storable_text(k), storable(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}
