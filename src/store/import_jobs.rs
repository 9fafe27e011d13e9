//! Background import jobs: one row each, claimed with `SKIP LOCKED`, progress written after
//! every chunk so another process can carry on after a restart.

use serde::Serialize;
use sqlx::{PgExecutor, Row};
use uuid::Uuid;

/// A job as its status page and the API show it: `running`, `done` or `failed`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ImportJob {
    pub id: Uuid,
    pub status: String,
    pub mode: String,
    pub lists: Vec<String>,
    pub rows: i32,
    pub processed: i32,
    pub imported: i32,
    pub refused: i32,
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
    pub file: Vec<u8>,
    pub processed: i32,
}

pub struct NewJob<'a> {
    pub mode: &'a str,
    pub source: &'a str,
    pub lists: &'a [String],
    pub file: &'a [u8],
    pub created_by: &'a str,
}

pub async fn create(db: impl PgExecutor<'_>, job: NewJob<'_>) -> sqlx::Result<Uuid> {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO import_jobs (id, mode, source, lists, file, created_by)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(job.mode)
    .bind(job.source)
    .bind(job.lists)
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
         RETURNING id, mode, source, lists, coalesce(file, '') AS file, processed",
    )
    .bind(stale_seconds)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| Claimed {
        id: r.get("id"),
        mode: r.get("mode"),
        source: r.get("source"),
        lists: r.get("lists"),
        file: r.get("file"),
        processed: r.get("processed"),
    }))
}

/// Records the file's size and the problems found in it, once read.
pub async fn read(
    db: impl PgExecutor<'_>,
    id: Uuid,
    rows: i32,
    refused: i32,
    errors: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE import_jobs SET rows = $2, refused = $3, errors = $4, heartbeat_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(rows)
    .bind(refused)
    .bind(errors)
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
    imported: i32,
    refused: i32,
    errors: &serde_json::Value,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE import_jobs SET processed = $2, imported = imported + $3, refused = refused + $4,
                errors = errors || $5, heartbeat_at = now()
         WHERE id = $1 AND processed = $6 AND status = 'running'",
    )
    .bind(id)
    .bind(processed)
    .bind(imported)
    .bind(refused)
    .bind(errors)
    .bind(from)
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
        "SELECT id, CASE status WHEN 'queued' THEN 'running' ELSE status END AS status, mode, lists, rows, processed, imported, refused, errors, failure,
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
        lists: r.get("lists"),
        rows: r.get("rows"),
        processed: r.get("processed"),
        imported: r.get("imported"),
        refused: r.get("refused"),
        errors: r.get("errors"),
        failure: r.get("failure"),
        created_by: r.get("created_by"),
        created_at: r.get("created_at"),
        finished_at: r.get("finished_at"),
    }))
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
