//! Importing subscribers from a CSV file, for every door (`newsletter import`, the staff
//! area and the API): the file is read here, once. Columns `email` (required), `name`,
//! `state` (a code or a name), `status`, `lists` and `pending_lists` (slugs separated by
//! spaces or `|`), in any order and any case; any other column (our export's `created_at`,
//! the refused rows' `error`) is ignored. UTF-8 with or without a byte-order mark; comma or
//! semicolon (whichever the header uses); lines ending in LF, CRLF or CR alone. A cell that
//! our export guarded against spreadsheet formulas (`'=…`) reads as it was. Each problem names
//! the physical line in the file where its row starts, the column, the value (quoted, cut to
//! 80 characters) and what would be accepted. The set-based import itself is
//! `store::imports`.

use std::collections::{BTreeMap, HashSet};

use anyhow::Context;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::roles::{self, Forbidden, Operation};
use super::subscribers::{formula_safe, formula_unguarded};
use super::{audit, Actor};
use std::sync::Arc;

use crate::config::Settings;
use crate::domain::{
    text, EmailAddress, FieldErrors, ImportStatus, ListSlug, SignupRequest, SignupSource,
    SubscriberName, UsState, IMPORT_STATUSES,
};
use crate::store::consent::RequestOrigin;
use crate::store::import_jobs as jobs;
use crate::store::imports::{self as store, ImportLists, ImportRow};
use crate::store::lists;
use crate::store::signups::{self, SignupOutcome, SignupRecord};
use crate::store::{preferences, subscribers};

pub use crate::store::import_jobs::ImportJob;
pub use crate::store::imports::ImportReport;

/// A problem with one row of the file: the physical line where the row starts, the column and
/// what is wrong, with the value quoted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    pub line: usize,
    pub field: String,
    pub message: String,
}

/// A row left out, as the refused rows' CSV gives it back: its cells (the formula guard
/// undone) and its problems in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusedRow {
    pub line: usize,
    pub values: Vec<String>,
    pub error: String,
    /// The column of its first problem (what `refused_by` counts).
    #[serde(skip)]
    pub column: String,
}

/// A file read: the rows that parse, and for the others a problem per bad field and the row.
#[derive(Debug, Default)]
pub struct ReadCsv {
    /// Data records in the file (good and bad).
    pub records: usize,
    /// The header row as the file has it.
    pub header: Vec<String>,
    pub rows: Vec<ImportRow>,
    pub errors: Vec<RowError>,
    pub refused: Vec<RefusedRow>,
}

/// The file cannot be read at all (no header, no `email` column, a column named twice).
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct FileError {
    pub line: usize,
    pub message: String,
}

/// Most characters of a value a message quotes.
const QUOTED_CHARS: usize = 80;

/// `value` in double quotes, escaped (a control character shows as `\u{1}`), cut to
/// [`QUOTED_CHARS`] characters with `…` when longer.
fn quote(value: &str) -> String {
    let cut: String = value.chars().take(QUOTED_CHARS).collect();
    let quoted = format!("{cut:?}");
    if cut.len() < value.len() {
        format!("{}…\"", &quoted[..quoted.len() - 1])
    } else {
        quoted
    }
}

/// The line in the file where each record starts, counted from its byte offset, since the csv
/// reader's own line count drifts with CRLF and CR line ends and blank lines. A line ends with
/// LF, CRLF or CR alone. Records come in order, so only the bytes since the previous record
/// are counted.
struct Lines<'a> {
    bytes: &'a [u8],
    counted: (usize, usize),
}

impl<'a> Lines<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            counted: (0, 1),
        }
    }

    fn at(&mut self, byte: u64) -> usize {
        let bytes = self.bytes;
        let mut start = usize::try_from(byte).unwrap_or(usize::MAX).min(bytes.len());
        // A record's offset may point at blank lines the reader skipped before it.
        while bytes.get(start).is_some_and(|b| matches!(b, b'\r' | b'\n')) {
            start += 1;
        }
        let (from, line) = self.counted;
        let from = from.min(start);
        let ends = (from..start)
            .filter(|&i| match bytes[i] {
                b'\n' => true,
                b'\r' => bytes.get(i + 1) != Some(&b'\n'),
                _ => false,
            })
            .count();
        self.counted = (start, line + ends);
        line + ends
    }
}

/// A CSV file being read: its header (as the file has it), then each record with the line
/// where it starts, its cells trimmed and with the formula guard undone.
struct CsvFile<'a> {
    reader: csv::Reader<&'a [u8]>,
    lines: Lines<'a>,
    header: Vec<String>,
    record: csv::StringRecord,
}

impl<'a> CsvFile<'a> {
    fn open(bytes: &'a [u8]) -> Result<Self, FileError> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let header_line = bytes
            .split(|&b| matches!(b, b'\n' | b'\r'))
            .next()
            .unwrap_or_default();
        let delimiter = if header_line.contains(&b';') && !header_line.contains(&b',') {
            b';'
        } else {
            b','
        };
        // The default terminator takes LF, CRLF and CR alone as the end of a record.
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .delimiter(delimiter)
            .flexible(true)
            .from_reader(bytes);
        let header = reader
            .headers()
            .map_err(|e| FileError {
                line: 1,
                message: format!("reading the header: {e}"),
            })?
            .iter()
            .map(str::to_owned)
            .collect();
        Ok(Self {
            reader,
            lines: Lines::new(bytes),
            header,
            record: csv::StringRecord::new(),
        })
    }

    /// The next record: the line it starts on, and its cells or why it cannot be read.
    fn next_record(&mut self) -> Option<(usize, Result<Vec<String>, String>)> {
        match self.reader.read_record(&mut self.record) {
            Ok(false) => None,
            Ok(true) => {
                let line = self
                    .record
                    .position()
                    .map_or(0, |p| self.lines.at(p.byte()));
                let cells = self
                    .record
                    .iter()
                    .map(|c| formula_unguarded(c).to_owned())
                    .collect();
                Some((line, Ok(cells)))
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| self.lines.at(p.byte()));
                Some((line, Err(e.to_string())))
            }
        }
    }
}

/// The columns an import reads, by their position in the file.
struct Columns {
    email: usize,
    name: Option<usize>,
    state: Option<usize>,
    status: Option<usize>,
    lists: Option<usize>,
    pending_lists: Option<usize>,
}

impl Columns {
    fn find(header: &[String]) -> Result<Self, FileError> {
        // A column named twice would read one and drop the other's values unseen.
        for name in ["email", "name", "state", "status", "lists", "pending_lists"] {
            let named = header
                .iter()
                .filter(|h| h.trim().eq_ignore_ascii_case(name))
                .count();
            if named > 1 {
                return Err(FileError {
                    line: 1,
                    message: format!(
                        "the column `{name}` is named {named} times; keep one and upload again"
                    ),
                });
            }
        }
        let column = |name: &str| {
            header
                .iter()
                .position(|h| h.trim().eq_ignore_ascii_case(name))
        };
        Ok(Self {
            email: column("email").ok_or_else(|| FileError {
                line: 1,
                message: "no `email` column".into(),
            })?,
            name: column("name"),
            state: column("state"),
            status: column("status"),
            lists: column("lists"),
            pending_lists: column("pending_lists"),
        })
    }
}

/// Reads `bytes` as an import file. `known_lists`: the slugs a `lists` cell may name (the open
/// lists: an archived list takes no imports).
pub fn read_csv(bytes: &[u8], known_lists: &[String]) -> Result<ReadCsv, FileError> {
    let mut file = CsvFile::open(bytes)?;
    let columns = Columns::find(&file.header)?;
    let mut read = ReadCsv::default();
    while let Some((line, record)) = file.next_record() {
        read.records += 1;
        let cells = match record {
            Ok(cells) => cells,
            Err(e) => {
                read.refuse(line, Vec::new(), vec![("row", e)]);
                continue;
            }
        };
        match columns.parse(line, &cells, known_lists) {
            Ok(row) => read.rows.push(row),
            Err(problems) => read.refuse(line, cells, problems),
        }
    }
    read.header = file.header;
    Ok(read)
}

/// The records of `bytes` that start on `lines`, by line: the cells of rows refused after
/// they were read (`store::imports` refuses a few).
fn records_at(bytes: &[u8], lines: &HashSet<usize>) -> BTreeMap<usize, Vec<String>> {
    let mut found = BTreeMap::new();
    let Ok(mut file) = CsvFile::open(bytes) else {
        return found;
    };
    while let Some((line, record)) = file.next_record() {
        if let (true, Ok(cells)) = (lines.contains(&line), record) {
            found.insert(line, cells);
        }
    }
    found
}

impl ReadCsv {
    /// Records a refused row: a problem per bad column, and the row once.
    fn refuse(&mut self, line: usize, values: Vec<String>, problems: Vec<(&str, String)>) {
        let error = problems
            .iter()
            .map(|(field, message)| format!("column `{field}`: {message}"))
            .collect::<Vec<_>>()
            .join("; ");
        let column = problems.first().map_or("row", |(f, _)| f).to_owned();
        self.errors
            .extend(problems.into_iter().map(|(field, message)| RowError {
                line,
                field: field.into(),
                message,
            }));
        self.refused.push(RefusedRow {
            line,
            values,
            error,
            column,
        });
    }
}

impl Columns {
    /// One record as a row, or a problem per bad column, each quoting the value and saying
    /// what would be accepted.
    fn parse(
        &self,
        line: usize,
        cells: &[String],
        known_lists: &[String],
    ) -> Result<ImportRow, Vec<(&'static str, String)>> {
        let cell = |col: Option<usize>| col.and_then(|c| cells.get(c)).map_or("", String::as_str);
        let mut problems = Vec::new();
        let raw = cell(Some(self.email));
        let email = match EmailAddress::parse(raw) {
            Ok(email) => Some(email),
            Err(_) if raw.is_empty() => {
                problems.push(("email", "empty: every row needs an e-mail address".into()));
                None
            }
            Err(e) => {
                problems.push(("email", format!("{}: {e}", quote(raw))));
                None
            }
        };
        let raw = cell(self.name);
        let name = SubscriberName::parse(raw)
            .map_err(|e| problems.push(("name", format!("{}: {e}", quote(raw)))))
            .ok();
        let raw = cell(self.state);
        let state = UsState::parse(raw)
            .ok()
            .or_else(|| UsState::from_name(raw).map(Some));
        if state.is_none() {
            problems.push((
                "state",
                format!(
                    "{} is not a US state, DC or territory: give its two-letter code (NY) or \
                     its name (New York), or leave it empty",
                    quote(raw)
                ),
            ));
        }
        let raw = cell(self.status);
        let status = ImportStatus::parse(raw);
        if status.is_none() {
            problems.push((
                "status",
                format!(
                    "{} is not a status: use {IMPORT_STATUSES}, or leave it empty (confirmed)",
                    quote(raw)
                ),
            ));
        }
        let lists = row_lists(cell(self.lists), known_lists)
            .map_err(|e| problems.push(("lists", e)))
            .ok();
        let pending_lists = row_lists(cell(self.pending_lists), known_lists)
            .map_err(|e| problems.push(("pending_lists", e)))
            .ok();
        match (email, name, state, status, lists, pending_lists) {
            (
                Some(email),
                Some(name),
                Some(state),
                Some(status),
                Some(lists),
                Some(pending_lists),
            ) => Ok(ImportRow {
                line,
                email,
                name,
                state,
                status,
                lists,
                pending_lists,
            }),
            _ => Err(problems),
        }
    }
}

/// The slugs of a `lists` cell, each a known list.
fn row_lists(cell: &str, known: &[String]) -> Result<Vec<String>, String> {
    let accepted = || {
        let shown: Vec<&str> = known.iter().take(10).map(String::as_str).collect();
        let more = if known.len() > shown.len() {
            ", …"
        } else {
            ""
        };
        format!(
            "name open lists by their slugs ({}{more}), separated by spaces or |",
            shown.join(", ")
        )
    };
    let mut slugs = Vec::new();
    for raw in cell.split([' ', '|']).filter(|s| !s.is_empty()) {
        let slug = ListSlug::parse(raw)
            .map_err(|_| format!("{} is not a list: {}", quote(raw), accepted()))?
            .as_str()
            .to_owned();
        if !known.contains(&slug) {
            return Err(format!(
                "{} is no open list (no such list, or it is archived): {}",
                quote(raw),
                accepted()
            ));
        }
        if !slugs.contains(&slug) {
            slugs.push(slug);
        }
    }
    Ok(slugs)
}

/// The rows of a file, each address once: its first row, and how many later rows repeated one.
fn first_of_each(rows: Vec<ImportRow>) -> (Vec<ImportRow>, usize) {
    let mut seen = HashSet::new();
    let (first, later): (Vec<_>, Vec<_>) = rows
        .into_iter()
        .partition(|r| seen.insert(r.email.canonical().to_owned()));
    (first, later.len())
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

/// An import as asked for: the file, the lists (slugs; none: the default lists, for the rows
/// that name none), the mode and the consent source.
pub struct ImportRequest<'a> {
    pub file: &'a [u8],
    pub lists: &'a [String],
    pub mode: &'a str,
    pub source: &'a str,
}

/// The lists staff chose, resolved: `Ok((lists, ticked))`, where an empty choice gives the
/// default lists (for the rows that name none) and `ticked` false. `Err` says what is wrong.
async fn chosen_lists(
    pool: &PgPool,
    slugs: &[ListSlug],
) -> sqlx::Result<Result<(Vec<(Uuid, String)>, bool), String>> {
    Ok(if slugs.is_empty() {
        lists::resolve_public(pool, &[], None)
            .await?
            .map(|l| (l, false))
    } else {
        lists::resolve_any(pool, slugs).await?.map(|l| (l, true))
    }
    .map_err(|problem| problem.message("No such list:")))
}

/// `chosen` as the lists of an import: for everyone when ticked, else for the rows that name
/// no list.
fn import_lists(chosen: &[(Uuid, String)], ticked: bool) -> ImportLists<'_> {
    if ticked {
        ImportLists {
            every: chosen,
            unlisted: &[],
        }
    } else {
        ImportLists {
            every: &[],
            unlisted: chosen,
        }
    }
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
    let (lists, ticked) = chosen_lists(pool, &slugs)
        .await?
        .map_err(|problem| errors.insert("list", problem))
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
            lists_ticked: ticked,
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

/// Imports `file` at once, in this process, its people as the `status` column says (confirmed
/// when it says nothing, on staff's word: `source` says where they consented), onto `lists`
/// (slugs; none: the default lists, for the rows that name no list): what `newsletter import`
/// does. Nothing is imported when a row has a problem. Later lines of an address are counted as
/// duplicates; the first ones go in chunks, each its own transaction, and `progress(done,
/// total)` is told after each. Admins only; recorded in the audit log.
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
    let (chosen, ticked) = chosen_lists(pool, &slugs)
        .await?
        .map_err(FileImportError::List)?;
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let known = lists::open_slugs(pool).await?;
    let read = read_csv(&bytes, &known)?;
    if !read.errors.is_empty() {
        return Err(FileImportError::Rows(read.errors));
    }
    let (rows, duplicates) = first_of_each(read.rows);
    let mut report = ImportReport {
        duplicates,
        ..Default::default()
    };
    let mut done = 0;
    for chunk in rows.chunks(CHUNK) {
        let part = store::import(pool, chunk, import_lists(&chosen, ticked), source).await?;
        add(&mut report, part);
        done += chunk.len();
        progress(done, rows.len());
    }
    let detail = serde_json::json!({
        "file": file.display().to_string(), "rows": read.records, "imported": report.imported,
        "refused": report.refused.len(), "suppressed": report.suppressed.len(), "source": source,
    });
    audit::record(pool, actor, "import", None, detail).await?;
    Ok(report)
}

/// Adds `part` to `report`.
fn add(report: &mut ImportReport, part: ImportReport) {
    report.imported += part.imported;
    report.added_to_lists += part.added_to_lists;
    report.already_there += part.already_there;
    report.duplicates += part.duplicates;
    report.suppressed.extend(part.suppressed);
    report.refused.extend(part.refused);
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

/// The rows an import refused, as a CSV file to fix and import again: the file's own columns,
/// each row's cells as they were read, and an `error` column saying what to fix (which an
/// import ignores). Every cell formula-safe, as the export's.
pub async fn refused_csv(pool: &PgPool, id: Uuid) -> Result<String, ImportError> {
    let (header, rows) = jobs::refused_rows(pool, id)
        .await?
        .ok_or(ImportError::NotFound)?;
    let mut out = csv::Writer::from_writer(Vec::new());
    let io =
        |e: csv::Error| ImportError::Internal(anyhow::Error::from(e).context("writing the CSV"));
    let columns = header.len();
    let safe = |cell: &str| formula_safe(cell).into_owned();
    out.write_record(header.iter().map(|h| safe(h)).chain(["error".to_owned()]))
        .map_err(io)?;
    for row in rows.as_array().into_iter().flatten() {
        let mut cells: Vec<String> = row["values"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| safe(v.as_str().unwrap_or_default()))
            .collect();
        cells.resize(columns.max(cells.len()), String::new());
        cells.push(safe(row["error"].as_str().unwrap_or_default()));
        out.write_record(&cells).map_err(io)?;
    }
    let bytes = out
        .into_inner()
        .map_err(|e| ImportError::Internal(anyhow::anyhow!("writing the CSV: {e}")))?;
    String::from_utf8(bytes).map_err(|e| ImportError::Internal(e.into()))
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

fn to_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The refused rows as a job keeps them: at most [`MAX_ERRORS`] of each, and the count by
/// column.
fn kept(
    errors: &[RowError],
    refused: &[RefusedRow],
) -> (serde_json::Value, serde_json::Value, serde_json::Value) {
    let mut by_column = BTreeMap::<&str, usize>::new();
    for row in refused {
        *by_column.entry(&row.column).or_default() += 1;
    }
    let json = |v: serde_json::Result<serde_json::Value>| v.unwrap_or_default();
    (
        json(serde_json::to_value(
            &errors[..errors.len().min(MAX_ERRORS)],
        )),
        json(serde_json::to_value(
            &refused[..refused.len().min(MAX_ERRORS)],
        )),
        json(serde_json::to_value(by_column)),
    )
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
    let lists = import_lists(&chosen, job.lists_ticked);
    let done = usize::try_from(job.processed).unwrap_or(0);
    let (rows, duplicates) = first_of_each(read.rows);
    if done == 0 {
        let (errors, refused_rows, refused_by) = kept(&read.errors, &read.refused);
        let outcome = jobs::Outcome {
            duplicates: to_i32(duplicates),
            refused: to_i32(read.refused.len()),
            refused_by,
            errors,
            refused_rows,
            ..Default::default()
        };
        jobs::read(pool, job.id, to_i32(read.records), &read.header, &outcome).await?;
    }
    let note = format!("import: {}", job.source);
    let mut processed = done;
    for chunk in rows[done.min(rows.len())..].chunks(CHUNK) {
        let mut tx = pool.begin().await?;
        let report = if job.mode == ImportMode::OptIn.as_str() {
            let (out, active): (Vec<ImportRow>, Vec<ImportRow>) =
                // A lapsed row is kept lapsed, as in the other mode: nobody is asked.
                chunk.iter().cloned().partition(|r| {
                    r.status.is_out() || r.status == crate::domain::ImportStatus::Lapsed
                });
            let mut report = store::import_in(&mut tx, &out, ImportLists::default(), &note).await?;
            add(&mut report, opt_in(pool, settings, &active, lists).await?);
            report
        } else {
            store::import_in(&mut tx, chunk, lists, &note).await?
        };
        let from = to_i32(processed);
        processed += chunk.len();
        let outcome = chunk_outcome(&job.file, &report);
        let counted = jobs::progress(&mut *tx, job.id, from, to_i32(processed), &outcome).await?;
        if !counted {
            tracing::warn!(id = %job.id, "another process took this import over; leaving it");
            return Ok(());
        }
        tx.commit().await?;
    }
    Ok(jobs::finish(pool, job.id, None).await?)
}

/// What a chunk's report adds to its job; the rows it refused get their cells from `file`.
fn chunk_outcome(file: &[u8], report: &ImportReport) -> jobs::Outcome {
    let mut refused = ReadCsv::default();
    let lines: HashSet<usize> = report.refused.iter().map(|(line, _)| *line).collect();
    let mut cells = if lines.is_empty() {
        BTreeMap::new()
    } else {
        records_at(file, &lines)
    };
    for (line, why) in &report.refused {
        let values = cells.remove(line).unwrap_or_default();
        refused.refuse(*line, values, vec![("status", why.clone())]);
    }
    let (errors, refused_rows, refused_by) = kept(&refused.errors, &refused.refused);
    jobs::Outcome {
        imported: to_i32(report.imported),
        added_to_lists: to_i32(report.added_to_lists),
        already_there: to_i32(report.already_there),
        duplicates: to_i32(report.duplicates),
        suppressed: to_i32(report.suppressed.len()),
        refused: to_i32(report.refused.len()),
        refused_by,
        errors,
        refused_rows,
    }
}

/// The double opt-in mode, for the rows that would join: each is a sign-up (pending, a
/// confirmation mail queued, the consent logged with source `import`), as if the person had
/// filled in the form; someone erased, unsubscribed, bounced or complained is suppressed, as
/// in the confirmed mode, and no mail goes to them. A row that names no list asks for the
/// unlisted lists and its state's alliance lists. One round trip or three per row: opt-in
/// imports are meant for the size of an event's sheet.
async fn opt_in(
    pool: &PgPool,
    settings: &Settings,
    rows: &[ImportRow],
    chosen: ImportLists<'_>,
) -> anyhow::Result<ImportReport> {
    let mut report = ImportReport::default();
    if rows.is_empty() {
        return Ok(report);
    }
    let every: Vec<ListSlug> = lists::open_slugs(pool)
        .await?
        .iter()
        .filter_map(|slug| ListSlug::parse(slug).ok())
        .collect();
    let known = lists::resolve_any(pool, &every).await?.unwrap_or_default();
    let alliances = lists::alliances(pool).await?;
    for row in rows {
        let hashes = preferences::suppression_hashes(&row.email);
        if subscribers::is_suppressed(pool, &hashes).await? {
            let why = "suppressed: this address is on the suppression list".to_owned();
            report.suppressed.push((row.line, why));
            continue;
        }
        let existing = subscribers::contact_by_email(pool, row.email.canonical()).await?;
        if let Some(status) = existing
            .as_ref()
            .map(|c| c.status.as_str())
            .filter(|s| matches!(*s, "unsubscribed" | "bounced" | "complained"))
        {
            report
                .suppressed
                .push((row.line, format!("suppressed: the address is {status}")));
            continue;
        }
        let mut row_lists = chosen.every.to_vec();
        row_lists.extend(
            known
                .iter()
                .filter(|(_, s)| row.lists.contains(s) || row.pending_lists.contains(s))
                .cloned(),
        );
        if row.lists.is_empty() && row.pending_lists.is_empty() {
            row_lists.extend(chosen.unlisted.iter().cloned());
            let state = row.state.map(UsState::code);
            row_lists.extend(
                alliances
                    .iter()
                    .filter(|(s, _, _)| Some(s.as_str()) == state)
                    .map(|(_, id, slug)| (*id, slug.clone())),
            );
        }
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
            (Some(_), SignupOutcome::ConfirmationQueued) => report.added_to_lists += 1,
            (Some(_), _) => report.already_there += 1,
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
        assert_eq!(ana.status, ImportStatus::Confirmed);
        assert_eq!(read.rows[1].line, 3);
        assert!(read.rows[1].lists.is_empty() && read.rows[1].name.is_none());
        assert_eq!(read.header, ["Lists", "State", "EMAIL", "Name"]);
    }

    #[test]
    fn a_column_named_twice_refuses_the_file_naming_it() {
        let e = read_csv(b"email,Email,name\na@example.org,b@example.org,A\n", &[])
            .expect_err("refused");
        assert_eq!(e.line, 1);
        assert!(e.message.contains("`email` is named 2 times"), "{e}");
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
        let refused: Vec<(usize, &str)> = read
            .refused
            .iter()
            .map(|r| (r.line, r.column.as_str()))
            .collect();
        assert_eq!(refused, [(3, "name"), (5, "email")], "each row once");
        assert_eq!(read.refused[1].values, ["bad@", "B", "no-such-list"]);
        assert!(
            read.refused[1]
                .error
                .starts_with("column `email`: \"bad@\"")
                && read.refused[1]
                    .error
                    .contains("; column `lists`: \"no-such-list\""),
            "{}",
            read.refused[1].error
        );
    }

    #[test]
    fn lines_are_physical_whatever_ends_them() {
        // 1 header, 2 a, 3 blank, 4-5 a quoted name over two lines, 6 the bad row
        for end in ["\n", "\r\n", "\r"] {
            let file = [
                "email,name",
                "a@example.org,A",
                "",
                "b@example.org,\"B",
                "C\"",
                "bad@,D",
                "",
            ]
            .join(end);
            let read = read_csv(file.as_bytes(), &known()).unwrap();
            let lines: Vec<(usize, &str)> = read
                .errors
                .iter()
                .map(|e| (e.line, e.field.as_str()))
                .collect();
            assert_eq!(lines, [(4, "name"), (6, "email")], "{end:?}");
            assert_eq!(read.rows[0].line, 2, "{end:?}");
        }
    }

    #[test]
    fn a_value_is_quoted_cut_to_80_characters_and_what_would_do_is_said() {
        let long = "é".repeat(200);
        let file = format!("email,state,status\na@example.org,{long},\nb@example.org,Calif.,gone\nc@example.org,\u{1}x,\n");
        let read = read_csv(file.as_bytes(), &known()).unwrap();
        let messages: Vec<&str> = read.errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            messages[0],
            format!(
                "\"{}…\" is not a US state, DC or territory: give its two-letter code (NY) or its \
                 name (New York), or leave it empty",
                "é".repeat(80)
            )
        );
        assert!(
            messages[1].starts_with("\"Calif.\" is not a US state"),
            "{}",
            messages[1]
        );
        assert_eq!(
            messages[2],
            "\"gone\" is not a status: use confirmed, pending, lapsed, unsubscribed, bounced, complained \
             or erased, or leave it empty (confirmed)"
        );
        assert!(
            messages[3].starts_with("\"\\u{1}x\" is not a US state"),
            "{}",
            messages[3]
        );
    }

    #[test]
    fn full_state_names_statuses_and_guarded_cells_are_read() {
        let file = "email,name,state,status,pending_lists\n\
                    a@example.org,'=Ana,New York,Pending,us-icc-updates\n\
                    b@example.org,'@CoalitionNY, district of columbia ,UNSUBSCRIBED,\n\
                    c@example.org,''Quoted,,erased,\n";
        let read = read_csv(file.as_bytes(), &known()).unwrap();
        assert!(read.errors.is_empty(), "{:?}", read.errors);
        let got: Vec<(Option<&str>, Option<&str>, ImportStatus)> = read
            .rows
            .iter()
            .map(|r| {
                (
                    r.name.as_ref().map(SubscriberName::as_str),
                    r.state.map(UsState::code),
                    r.status,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (Some("=Ana"), Some("NY"), ImportStatus::Pending),
                (Some("@CoalitionNY"), Some("DC"), ImportStatus::Unsubscribed),
                (Some("'Quoted"), None, ImportStatus::Erased),
            ]
        );
        assert_eq!(read.rows[0].pending_lists, ["us-icc-updates"]);
    }

    #[test]
    fn later_rows_of_an_address_are_duplicates() {
        let file = "email\na@example.org\nb@example.org\nA@EXAMPLE.org\n";
        let read = read_csv(file.as_bytes(), &known()).unwrap();
        let (rows, duplicates) = first_of_each(read.rows);
        assert_eq!(rows.iter().map(|r| r.line).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(duplicates, 1);
    }

    #[test]
    fn a_file_without_an_email_column_is_refused_as_a_whole() {
        let e = read_csv(b"name\nAna\n", &known()).unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.contains("email"));
    }
}
