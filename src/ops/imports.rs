//! Importing subscribers from a CSV file, for every door (`newsletter import`, and the staff
//! area and API to come): the file is read here, once. Columns `email` (required), `name`,
//! `state` and `lists` (slugs separated by spaces or `|`), in any order and any case; UTF-8
//! with or without a byte-order mark; comma or semicolon (whichever the header uses); CRLF
//! or LF. Each problem names the line in the file where it is (not the record number), the
//! field and the reason. The set-based import itself is `store::imports`.

use anyhow::Context;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::roles::{self, Forbidden, Operation};
use super::{audit, Actor};
use std::sync::Arc;

use crate::config::Settings;
use crate::domain::{
    text, EmailAddress, FieldErrors, ListSlug, SignupRequest, SignupSource, SubscriberName, UsState,
};
use crate::store::consent::RequestOrigin;
use crate::store::import_jobs as jobs;
use crate::store::imports::{self as store, ImportRow};
use crate::store::lists;
use crate::store::signups::{self, SignupOutcome, SignupRecord};
use crate::store::{preferences, subscribers};

pub use crate::store::import_jobs::ImportJob;
pub use crate::store::imports::ImportReport;

/// A problem with one row of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    pub line: usize,
    pub field: String,
    pub message: String,
}

/// A file read: the rows that parse, and a problem per bad field.
#[derive(Debug, Default)]
pub struct ReadCsv {
    /// Data records in the file (good and bad).
    pub records: usize,
    pub rows: Vec<ImportRow>,
    pub errors: Vec<RowError>,
}

/// The file cannot be read at all (no header, no `email` column).
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct FileError {
    pub line: usize,
    pub message: String,
}

/// Reads `bytes` as an import file. `known_lists`: the slugs a `lists` cell may name (the open
/// lists: an archived list takes no imports).
pub fn read_csv(bytes: &[u8], known_lists: &[String]) -> Result<ReadCsv, FileError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let header_line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let delimiter = if header_line.contains(&b';') && !header_line.contains(&b',') {
        b';'
    } else {
        b','
    };
    // The line in the file where a record starts: counted from its byte offset, since the csv
    // reader's own line count drifts with CRLF line ends and blank lines. Records come in
    // order, so only the bytes since the previous record are counted.
    let mut counted = (0usize, 1usize);
    let mut line_at = |byte: u64| {
        let mut start = usize::try_from(byte).unwrap_or(usize::MAX).min(bytes.len());
        // A record's offset may point at blank lines the reader skipped before it.
        while bytes.get(start).is_some_and(|b| matches!(b, b'\r' | b'\n')) {
            start += 1;
        }
        let (from, line) = counted;
        let from = from.min(start);
        let line = line + bytes[from..start].iter().filter(|&&b| b == b'\n').count();
        counted = (start, line);
        line
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(bytes);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| FileError {
            line: 1,
            message: format!("reading the header: {e}"),
        })?
        .iter()
        .map(str::to_ascii_lowercase)
        .collect();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let email_col = column("email").ok_or_else(|| FileError {
        line: 1,
        message: "no `email` column".into(),
    })?;
    let (name_col, state_col, lists_col) = (column("name"), column("state"), column("lists"));
    let mut read = ReadCsv::default();
    for record in reader.records() {
        read.records += 1;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| line_at(p.byte()));
                read.errors.push(RowError {
                    line,
                    field: "row".into(),
                    message: e.to_string(),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| line_at(p.byte()));
        let field = |col: Option<usize>| col.and_then(|c| record.get(c)).unwrap_or("");
        let mut problem = |field: &str, message: String| {
            read.errors.push(RowError {
                line,
                field: field.into(),
                message,
            });
        };
        let email = EmailAddress::parse(field(Some(email_col))).map_err(|e| problem("email", e));
        let name = SubscriberName::parse(field(name_col)).map_err(|e| problem("name", e));
        let state = UsState::parse(field(state_col)).map_err(|e| problem("state", e));
        let lists = row_lists(field(lists_col), known_lists).map_err(|e| problem("lists", e));
        if let (Ok(email), Ok(name), Ok(state), Ok(lists)) = (email, name, state, lists) {
            read.rows.push(ImportRow {
                line,
                email,
                name,
                state,
                lists,
            });
        }
    }
    Ok(read)
}

/// The slugs of a `lists` cell, each a known list.
fn row_lists(cell: &str, known: &[String]) -> Result<Vec<String>, String> {
    let mut slugs = Vec::new();
    for raw in cell.split([' ', '|']).filter(|s| !s.is_empty()) {
        let slug = ListSlug::parse(raw)?.as_str().to_owned();
        if !known.contains(&slug) {
            return Err(format!("No such list: {slug} (or it is archived)."));
        }
        if !slugs.contains(&slug) {
            slugs.push(slug);
        }
    }
    Ok(slugs)
}

/// Rows imported per transaction; the job's progress is written after each.
const CHUNK: usize = 10_000;
/// Longest consent source.
const MAX_SOURCE: usize = 500;
/// Most problems a job keeps (the counts stay exact).
const MAX_ERRORS: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("invalid import")]
    Invalid(FieldErrors),
    #[error("no such import")]
    NotFound,
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ImportError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

/// How the people of an import join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportMode {
    /// As confirmed, on staff's word that they consented (the source says where).
    Confirmed,
    /// Each new person gets a double opt-in mail.
    OptIn,
}

impl ImportMode {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim() {
            "" | "confirmed" => Ok(Self::Confirmed),
            "opt-in" => Ok(Self::OptIn),
            other => Err(format!("{other:?} is not a mode: confirmed or opt-in.")),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirmed => "confirmed",
            Self::OptIn => "opt-in",
        }
    }
}

/// An import as asked for: the file, the lists (slugs; none: the default lists), the mode
/// and the consent source.
pub struct ImportRequest<'a> {
    pub file: &'a [u8],
    pub lists: &'a [String],
    pub mode: &'a str,
    pub source: &'a str,
}

/// Checks the request and queues the job; the caller starts [`run_pending`] (the web
/// process does, in the background). Admins only (whatever the mode: an import changes who
/// gets mail); recorded in the audit log.
pub async fn start(
    pool: &PgPool,
    actor: &Actor,
    request: ImportRequest<'_>,
) -> Result<Uuid, ImportError> {
    roles::authorize(actor, Operation::SubscriberImport)?;
    let mut errors = FieldErrors::new();
    let mode = ImportMode::parse(request.mode)
        .map_err(|e| errors.insert("mode", e))
        .ok();
    let source = request.source.trim();
    if source.is_empty()
        || source.chars().count() > MAX_SOURCE
        || text::check_line("source", source).is_err()
    {
        errors.insert(
            "source",
            format!("Say where the consent was given: 1 to {MAX_SOURCE} characters, one line."),
        );
    }
    let slugs: Vec<ListSlug> = request
        .lists
        .iter()
        .filter_map(|l| {
            ListSlug::parse(l)
                .map_err(|e| errors.insert("list", e))
                .ok()
        })
        .collect();
    let lists = if slugs.is_empty() {
        lists::resolve_public(pool, &[], None).await?
    } else {
        lists::resolve_any(pool, &slugs).await?
    };
    let lists = lists
        .map_err(|problem| errors.insert("list", problem.message("No such list:")))
        .unwrap_or_default();
    if let Err(e) = read_csv(request.file, &[]).map(|_| ()) {
        errors.insert("file", e.to_string());
    }
    let Some(mode) = mode.filter(|_| errors.is_empty()) else {
        return Err(ImportError::Invalid(errors));
    };
    let slugs: Vec<String> = lists.into_iter().map(|(_, slug)| slug).collect();
    let id = jobs::create(
        pool,
        jobs::NewJob {
            mode: mode.as_str(),
            source,
            lists: &slugs,
            file: request.file,
            created_by: &actor.label(),
        },
    )
    .await?;
    let detail = serde_json::json!({ "lists": slugs, "mode": mode.as_str(), "source": source,
                                     "bytes": request.file.len() });
    audit::record(pool, actor, "import", Some(&id.to_string()), detail).await?;
    Ok(id)
}

/// Why [`import_file`] stopped: before anything was imported (a list, the file, its rows, the
/// role), or on a failure (`Internal`; the chunks committed before it stay).
#[derive(Debug, thiserror::Error)]
pub enum FileImportError {
    /// A list named is not a slug, not known or archived (the message says which).
    #[error("{0}")]
    List(String),
    /// The file cannot be read as an import file.
    #[error(transparent)]
    File(#[from] FileError),
    /// Rows with problems, one per bad field: nothing was imported.
    #[error("{} problems in the file", .0.len())]
    Rows(Vec<RowError>),
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for FileImportError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

/// Imports `file` at once, in this process, its people as confirmed on staff's word (`source`
/// says where they consented), onto `lists` (slugs; none: the default lists): what
/// `newsletter import` does. Nothing is imported when a row has a problem. Later lines of an
/// address are counted as duplicates; the first ones go in chunks, each its own transaction,
/// and `progress(done, total)` is told after each. Admins only; recorded in the audit log.
pub async fn import_file(
    pool: &PgPool,
    actor: &Actor,
    file: &std::path::Path,
    lists: &[String],
    source: &str,
    mut progress: impl FnMut(usize, usize),
) -> Result<ImportReport, FileImportError> {
    roles::authorize(actor, Operation::SubscriberImport)?;
    let slugs = lists
        .iter()
        .map(|l| ListSlug::parse(l).map_err(FileImportError::List))
        .collect::<Result<Vec<_>, _>>()?;
    let resolved = if slugs.is_empty() {
        lists::resolve_public(pool, &[], None).await?
    } else {
        lists::resolve_any(pool, &slugs).await?
    }
    .map_err(|problem| FileImportError::List(problem.message("no such list:")))?;
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let known = lists::open_slugs(pool).await?;
    let read = read_csv(&bytes, &known)?;
    if !read.errors.is_empty() {
        return Err(FileImportError::Rows(read.errors));
    }
    let mut seen = std::collections::HashSet::new();
    let (rows, later): (Vec<_>, Vec<_>) = read
        .rows
        .into_iter()
        .partition(|r| seen.insert(r.email.canonical().to_owned()));
    let mut report = ImportReport {
        duplicates: later.len(),
        ..Default::default()
    };
    let mut done = 0;
    for chunk in rows.chunks(CHUNK) {
        let part = store::import(pool, chunk, &resolved, source).await?;
        report.imported += part.imported;
        report.already_subscribed += part.already_subscribed;
        report.refused.extend(part.refused);
        done += chunk.len();
        progress(done, rows.len());
    }
    let detail = serde_json::json!({
        "file": file.display().to_string(), "rows": rows.len() + report.duplicates, "imported": report.imported,
        "refused": report.refused.len(), "source": source,
    });
    audit::record(pool, actor, "import", None, detail).await?;
    Ok(report)
}

/// Jobs the list of recent imports shows.
pub const RECENT: i64 = 50;

/// The [`RECENT`] newest jobs, newest first, whatever their status.
pub async fn recent(pool: &PgPool) -> Result<Vec<jobs::JobSummary>, ImportError> {
    Ok(jobs::recent(pool, RECENT).await?)
}

pub async fn status(pool: &PgPool, id: Uuid) -> Result<ImportJob, ImportError> {
    jobs::get(pool, id).await?.ok_or(ImportError::NotFound)
}

/// Runs every pending job (queued, or left running by a process that stopped: no progress for
/// `worker.import_lease_seconds`), one at a time, until none is left. Each chunk of rows
/// commits with the job's progress, so a job taken over after a crash carries on after the
/// last chunk that counted, and no row is imported twice.
pub async fn run_pending(pool: PgPool, settings: Arc<Settings>) {
    let lease = settings.worker.import_lease.as_secs_f64();
    loop {
        match jobs::claim(&pool, lease).await {
            Ok(Some(job)) => {
                let id = job.id;
                if let Err(e) = run_one(&pool, &settings, job).await {
                    tracing::error!(error = ?e, %id, "import failed");
                    let _ = jobs::finish(
                        &pool,
                        id,
                        Some("the import stopped on an error; see the log"),
                    )
                    .await;
                }
            }
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = ?e, "claiming an import");
                return;
            }
        }
    }
}

fn errors_json(errors: &[RowError]) -> serde_json::Value {
    serde_json::to_value(errors).unwrap_or_default()
}

/// Distinct lines among `errors`.
fn lines(errors: &[RowError]) -> i32 {
    let mut lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
    lines.dedup();
    i32::try_from(lines.len()).unwrap_or(i32::MAX)
}

async fn run_one(pool: &PgPool, settings: &Settings, job: jobs::Claimed) -> anyhow::Result<()> {
    let known = lists::open_slugs(pool).await?;
    let read = match read_csv(&job.file, &known) {
        Ok(read) => read,
        Err(e) => return Ok(jobs::finish(pool, job.id, Some(&e.to_string())).await?),
    };
    let slugs: Vec<ListSlug> = job
        .lists
        .iter()
        .filter_map(|l| ListSlug::parse(l).ok())
        .collect();
    let chosen = match lists::resolve_any(pool, &slugs).await? {
        Ok(chosen) => chosen,
        Err(problem) => {
            let why = problem.message("A list of this import was deleted:");
            return Ok(jobs::finish(pool, job.id, Some(&why)).await?);
        }
    };
    let done = usize::try_from(job.processed).unwrap_or(0);
    if done == 0 {
        let kept = &read.errors[..read.errors.len().min(MAX_ERRORS)];
        let rows = i32::try_from(read.records).unwrap_or(i32::MAX);
        jobs::read(pool, job.id, rows, lines(&read.errors), &errors_json(kept)).await?;
    }
    let note = format!("import: {}", job.source);
    let mut processed = done;
    for chunk in read.rows[done.min(read.rows.len())..].chunks(CHUNK) {
        let mut tx = pool.begin().await?;
        let report = if job.mode == ImportMode::OptIn.as_str() {
            opt_in(pool, settings, chunk, &chosen).await?
        } else {
            store::import_in(&mut tx, chunk, &chosen, &note).await?
        };
        let from = i32::try_from(processed).unwrap_or(i32::MAX);
        processed += chunk.len();
        let refused: Vec<RowError> = report
            .refused
            .iter()
            .map(|(line, why)| RowError {
                line: *line,
                field: "email".into(),
                message: why.clone(),
            })
            .collect();
        let counted = jobs::progress(
            &mut *tx,
            job.id,
            from,
            i32::try_from(processed).unwrap_or(i32::MAX),
            i32::try_from(report.imported).unwrap_or(i32::MAX),
            lines(&refused),
            &errors_json(&refused),
        )
        .await?;
        if !counted {
            tracing::warn!(id = %job.id, "another process took this import over; leaving it");
            return Ok(());
        }
        tx.commit().await?;
    }
    Ok(jobs::finish(pool, job.id, None).await?)
}

/// The double opt-in mode: each row is a sign-up (pending, a confirmation mail queued, the
/// consent logged with source `import`), as if the person had filled in the form; someone
/// erased, unsubscribed, bounced or complained is refused, as in the confirmed mode, and no
/// mail goes to them. One round trip or three per row: opt-in imports are meant for the size
/// of an event's sheet.
async fn opt_in(
    pool: &PgPool,
    settings: &Settings,
    rows: &[ImportRow],
    chosen: &[(Uuid, String)],
) -> anyhow::Result<ImportReport> {
    let mut report = ImportReport::default();
    let every: Vec<ListSlug> = lists::open_slugs(pool)
        .await?
        .iter()
        .filter_map(|slug| ListSlug::parse(slug).ok())
        .collect();
    let known = lists::resolve_any(pool, &every).await?.unwrap_or_default();
    for row in rows {
        let hashes = preferences::suppression_hashes(&row.email);
        if subscribers::is_suppressed(pool, &hashes).await? {
            let why = "suppressed: this address was erased on request".to_owned();
            report.refused.push((row.line, why));
            continue;
        }
        let existing = subscribers::contact_by_email(pool, row.email.canonical()).await?;
        if let Some(status) = existing
            .as_ref()
            .map(|c| c.status.as_str())
            .filter(|s| matches!(*s, "unsubscribed" | "bounced" | "complained"))
        {
            report
                .refused
                .push((row.line, format!("suppressed: the address is {status}")));
            continue;
        }
        let mut row_lists = chosen.to_vec();
        row_lists.extend(known.iter().filter(|(_, s)| row.lists.contains(s)).cloned());
        row_lists.sort();
        row_lists.dedup();
        let request = SignupRequest {
            email: row.email.clone(),
            name: row.name.clone(),
            lists: Vec::new(),
            state: row.state,
        };
        let signup = &settings.signup;
        let outcome = signups::record(
            pool,
            SignupRecord {
                request: &request,
                lists: &row_lists,
                source: SignupSource::Import,
                origin: &RequestOrigin::default(),
                consent_text: &signup.consent_text,
                consent_version: &signup.consent_version,
                resend_after: signup.resend_after,
                confirm_ttl: signup.confirm_ttl,
                secret_key: settings.security.secret_key.expose().as_bytes(),
            },
        )
        .await?;
        match (existing, outcome) {
            (None, _) => report.imported += 1,
            (Some(_), SignupOutcome::NothingToConfirm) => report.already_subscribed += 1,
            (Some(_), _) => {}
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Vec<String> {
        vec!["us-icc-updates".into(), "new-york-alliance".into()]
    }

    #[test]
    fn columns_in_any_order_with_a_bom_semicolons_and_crlf() {
        let file = "\u{FEFF}Lists;State;EMAIL;Name\r\nnew-york-alliance|us-icc-updates;ny;ana@example.org;Ana\r\n;;bo@example.org;\r\n";
        let read = read_csv(file.as_bytes(), &known()).unwrap();
        assert!(read.errors.is_empty(), "{:?}", read.errors);
        assert_eq!(read.records, 2);
        let ana = &read.rows[0];
        assert_eq!((ana.line, ana.email.as_str()), (2, "ana@example.org"));
        assert_eq!(ana.state.map(UsState::code), Some("NY"));
        assert_eq!(ana.lists, ["new-york-alliance", "us-icc-updates"]);
        assert_eq!(read.rows[1].line, 3);
        assert!(read.rows[1].lists.is_empty() && read.rows[1].name.is_none());
    }

    #[test]
    fn each_bad_field_is_named_with_the_line_it_is_on() {
        let file = "email,name,lists\n\nok@example.org,\"Two\nlines\",\nbad@,B,no-such-list\n";
        let read = read_csv(file.as_bytes(), &known()).unwrap();
        let found: Vec<(usize, &str)> = read
            .errors
            .iter()
            .map(|e| (e.line, e.field.as_str()))
            .collect();
        assert_eq!(found, [(3, "name"), (5, "email"), (5, "lists")]);
        assert!(read.rows.is_empty());
        assert_eq!(read.records, 2);
    }

    #[test]
    fn a_file_without_an_email_column_is_refused_as_a_whole() {
        let e = read_csv(b"name\nAna\n", &known()).unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.contains("email"));
    }
}
