//! Subscribers as staff see them: search (keyset pages), one person's record (lists, consent
//! log, deliveries), add, edit, unsubscribe, erase and export. Editors may search and read;
//! everything that changes who gets mail, and the export, is an admin's (roles checked
//! first). Each change and each export goes in the audit log.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::roles::{self, Forbidden, Operation};
use super::{audit, Actor};
use crate::domain::{
    text, EmailAddress, FieldErrors, ImportStatus, ListSlug, SubscriberName, UsState,
};
use crate::store::consent::RequestOrigin;
use crate::store::subscribers::{self as store, SearchFilter, SubscriberRow};

pub use crate::store::dashboard::{daily_signups_and_unsubscribes, subscribers_by_status};
pub use crate::store::subscribers::SubscriberDetail;
use crate::store::{imports, lists, preferences, unsubscribes};

/// Rows a page shows unless asked for fewer or more, and the most it shows.
pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;
/// Longest search text.
const MAX_QUERY: usize = 200;
/// Longest consent source of a subscriber added by staff.
const MAX_SOURCE: usize = 500;

pub const STATUSES: &[&str] = &[
    "pending",
    "confirmed",
    "unsubscribed",
    "bounced",
    "complained",
    "lapsed",
];

#[derive(Debug, thiserror::Error)]
pub enum SubscriberError {
    #[error("no such subscriber")]
    NotFound,
    #[error("invalid input")]
    Invalid(FieldErrors),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<Forbidden> for SubscriberError {
    fn from(e: Forbidden) -> Self {
        Self::Forbidden(e.0)
    }
}

impl From<sqlx::Error> for SubscriberError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> SubscriberError {
    SubscriberError::Invalid(FieldErrors::from([(field, message.into())]))
}

/// A search as asked for (query string or form), before parsing. Blank values are no filter.
#[derive(Debug, Default, Clone, Deserialize, Serialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Part of the address or name, case-insensitive; at most 200 characters.
    pub query: Option<String>,
    /// `pending`, `confirmed`, `unsubscribed`, `bounced` or `complained`.
    pub status: Option<String>,
    /// A list's slug: only the people on it.
    pub list: Option<String>,
    /// A US state's two-letter code.
    pub state: Option<String>,
    /// The `next_after` of the previous page.
    pub after: Option<String>,
    /// Rows per page, 1 to 500 (default 50).
    pub limit: Option<i64>,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// The filter part of a search, parsed (shared by the search and the export).
pub fn filter(q: &SearchQuery) -> Result<SearchFilter, SubscriberError> {
    let mut errors = FieldErrors::new();
    let contains = given(&q.query).map(str::to_lowercase);
    if contains
        .as_ref()
        .is_some_and(|c| c.chars().count() > MAX_QUERY || c.contains('\0'))
    {
        errors.insert("query", format!("At most {MAX_QUERY} characters."));
    }
    let status = given(&q.status).map(str::to_ascii_lowercase);
    if let Some(s) = &status {
        if !STATUSES.contains(&s.as_str()) {
            errors.insert("status", format!("One of {}.", STATUSES.join(", ")));
        }
    }
    let list = match given(&q.list).map(ListSlug::parse) {
        Some(Ok(slug)) => Some(slug.as_str().to_owned()),
        Some(Err(e)) => {
            errors.insert("list", e);
            None
        }
        None => None,
    };
    let us_state = match UsState::parse(given(&q.state).unwrap_or("")) {
        Ok(s) => s.map(|s| s.code().to_owned()),
        Err(e) => {
            errors.insert("state", e);
            None
        }
    };
    if !errors.is_empty() {
        return Err(SubscriberError::Invalid(errors));
    }
    Ok(SearchFilter {
        contains,
        status,
        list,
        us_state,
    })
}

/// A keyset position: the last row of a page, as `next_after` gives it.
fn cursor_of(row: &SubscriberRow) -> String {
    format!("{}_{}", row.created_at.timestamp_micros(), row.id.simple())
}

fn parse_cursor(raw: &str) -> Result<(DateTime<Utc>, Uuid), SubscriberError> {
    let bad = || invalid("after", "Use the next_after of the previous page.");
    let (micros, id) = raw.split_once('_').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let at = Utc.timestamp_micros(micros).single().ok_or_else(bad)?;
    Ok((at, id.parse().map_err(|_| bad())?))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SearchPage {
    pub subscribers: Vec<SubscriberRow>,
    /// Give this as `after` for the next page; null on the last page.
    pub next_after: Option<String>,
}

/// One page of subscribers matching the search, newest first.
pub async fn search(pool: &PgPool, q: &SearchQuery) -> Result<SearchPage, SubscriberError> {
    let f = filter(q)?;
    let after = given(&q.after).map(parse_cursor).transpose()?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(invalid("limit", format!("From 1 to {MAX_LIMIT}.")));
    }
    let mut rows = store::search(pool, &f, after, limit + 1).await?;
    let next_after = if rows.len() > usize::try_from(limit).unwrap_or(usize::MAX) {
        rows.pop();
        rows.last().map(cursor_of)
    } else {
        None
    };
    Ok(SearchPage {
        subscribers: rows,
        next_after,
    })
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<SubscriberDetail, SubscriberError> {
    store::detail(pool, id)
        .await?
        .ok_or(SubscriberError::NotFound)
}

/// Staff's changes to a subscriber, as received. `lists`: None leaves the lists alone.
#[derive(Debug, Default, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditInput {
    pub name: Option<String>,
    pub state: Option<String>,
    pub lists: Option<Vec<String>>,
}

async fn known_lists(
    pool: &PgPool,
    field: &'static str,
    raw: &[String],
) -> Result<Vec<(Uuid, String)>, SubscriberError> {
    let slugs = raw
        .iter()
        .map(|l| ListSlug::parse(l).map_err(|e| invalid(field, e)))
        .collect::<Result<Vec<_>, _>>()?;
    lists::resolve_any(pool, &slugs)
        .await?
        .map_err(|problem| invalid(field, problem.message("No such list:")))
}

/// What an edit may change, as the audit log compares it.
fn editable(s: &SubscriberDetail) -> serde_json::Value {
    let lists: Vec<&str> = s
        .lists
        .iter()
        .filter(|m| m.status != "unsubscribed")
        .map(|m| m.slug.as_str())
        .collect();
    json!({ "name": s.name, "state": s.state, "lists": lists })
}

/// Changes name, state and lists: admins only, audited with what changed. For someone not
/// confirmed, lists can only be left: joining takes their own confirmation.
pub async fn edit(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    input: &EditInput,
) -> Result<SubscriberDetail, SubscriberError> {
    roles::authorize(actor, Operation::SubscriberEdit)?;
    let current = get(pool, id).await?;
    let name = match &input.name {
        Some(raw) => SubscriberName::parse(raw).map_err(|e| invalid("name", e))?,
        None => current
            .name
            .as_deref()
            .and_then(|n| SubscriberName::parse(n).ok().flatten()),
    };
    let state = match &input.state {
        Some(raw) => UsState::parse(raw).map_err(|e| invalid("state", e))?,
        None => current
            .state
            .as_deref()
            .and_then(|s| UsState::parse(s).ok().flatten()),
    };
    let lists = match &input.lists {
        Some(raw) => Some(
            known_lists(pool, "lists", raw)
                .await?
                .into_iter()
                .map(|(_, slug)| slug)
                .collect::<Vec<_>>(),
        ),
        None => None,
    };
    let changes = store::StaffChanges {
        name: name.as_ref().map(SubscriberName::as_str),
        us_state: state.map(UsState::code),
        lists: lists.as_deref(),
    };
    if !store::staff_edit(pool, id, changes, source_of(actor)).await? {
        return Err(SubscriberError::NotFound);
    }
    let after = get(pool, id).await?;
    let detail = json!({ "changed": audit::changes(&editable(&current), &editable(&after)) });
    audit::record(
        pool,
        actor,
        "edit-subscriber",
        Some(&id.to_string()),
        detail,
    )
    .await?;
    Ok(after)
}

/// The consent log's source for an action by `actor`.
fn source_of(actor: &Actor) -> &'static str {
    match actor {
        Actor::ApiToken { .. } => "api",
        Actor::Staff { .. } | Actor::CommandLine | Actor::DigestSchedule(_) | Actor::Scheduler => {
            "admin"
        }
    }
}

/// Unsubscribes from every list: admins only. False when they already were (nothing is
/// audited then).
pub async fn unsubscribe(pool: &PgPool, actor: &Actor, id: Uuid) -> Result<bool, SubscriberError> {
    roles::authorize(actor, Operation::SubscriberUnsubscribe)?;
    get(pool, id).await?;
    let done = unsubscribes::unsubscribe_all(pool, id, source_of(actor), &RequestOrigin::default())
        .await?;
    if done {
        audit::record(pool, actor, "unsubscribe", Some(&id.to_string()), json!({})).await?;
    }
    Ok(done)
}

/// Erases the person as their own erasure does: only a hash of the address stays, on the
/// suppression list. Admins only, and only `confirmed` (the staff area's tick box; the API's
/// `DELETE` is its own confirmation).
pub async fn erase(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    confirmed: bool,
) -> Result<(), SubscriberError> {
    roles::authorize(actor, Operation::SubscriberErase)?;
    if !confirmed {
        return Err(SubscriberError::Refused(
            "Tick the box to confirm the erasure; nothing was erased.".into(),
        ));
    }
    if !preferences::erase(pool, id).await? {
        return Err(SubscriberError::NotFound);
    }
    audit::record(pool, actor, "erase", Some(&id.to_string()), json!({})).await?;
    Ok(())
}

/// What a spreadsheet would read as the start of a formula, and the guard's own quote.
const GUARDED: [char; 7] = ['=', '+', '-', '@', '\t', '\r', '\''];

/// A cell as a spreadsheet cannot take for a formula: one starting with `=`, `+`, `-`, `@`, a
/// tab or a CR gets a `'` in front; so does one starting with `'`, so that
/// [`formula_unguarded`] gives back every cell exactly.
pub fn formula_safe(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(GUARDED) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// The cell [`formula_safe`] was given: a `'` before one of the characters it guards is taken
/// off (what an import does with every cell, so our own export imports back as it was).
pub fn formula_unguarded(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(GUARDED) => rest,
        _ => cell,
    }
}

/// The subscribers matching the filter as CSV (email, name, status, state, created_at,
/// lists, pending_lists: the lists they are on, and those awaiting their confirmation), every
/// cell formula-safe: a file `ops::imports` reads back as it was. Admins only; recorded in the
/// audit log with the filter and the number of rows.
pub async fn export(
    pool: &PgPool,
    actor: &Actor,
    q: &SearchQuery,
) -> Result<String, SubscriberError> {
    roles::authorize(actor, Operation::SubscriberExport)?;
    let f = filter(q)?;
    let rows = store::export_rows(pool, &f).await?;
    let csv = export_csv(&rows)?;
    let detail = json!({
        "rows": rows.len(),
        "query": f.contains, "status": f.status, "list": f.list, "state": f.us_state,
    });
    audit::record(pool, actor, "export", None, detail).await?;
    Ok(csv)
}

/// The export's CSV of `rows`: a header, then every cell formula-safe.
pub(crate) fn export_csv(rows: &[store::ExportRow]) -> Result<String, SubscriberError> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let io = |e: csv::Error| {
        SubscriberError::Internal(anyhow::Error::from(e).context("writing the CSV"))
    };
    out.write_record([
        "email",
        "name",
        "status",
        "state",
        "created_at",
        "lists",
        "pending_lists",
    ])
    .map_err(io)?;
    for (email, name, status, state, created_at, lists, pending) in rows {
        let (lists, pending) = (lists.join(" "), pending.join(" "));
        let cells = [
            email.as_str(),
            name.as_deref().unwrap_or(""),
            status,
            state.as_deref().unwrap_or(""),
            created_at,
            &lists,
            &pending,
        ];
        out.write_record(cells.iter().map(|c| formula_safe(c).into_owned()))
            .map_err(io)?;
    }
    let bytes = out
        .into_inner()
        .map_err(|e| SubscriberError::Internal(anyhow::anyhow!("writing the CSV: {e}")))?;
    String::from_utf8(bytes).map_err(|e| SubscriberError::Internal(e.into()))
}

/// A subscriber staff add, as received.
#[derive(Debug, Default, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSubscriberInput {
    pub email: String,
    pub name: Option<String>,
    pub state: Option<String>,
    #[serde(default)]
    pub lists: Vec<String>,
    /// Where the consent was given (an event, a paper form): required.
    pub source: String,
}

/// Adds someone as confirmed, on the lists named (the default lists when none), with the
/// consent source staff state: admins only, audited. The import's rules apply: an erased,
/// unsubscribed, bounced or complained address is refused; only their own double opt-in brings
/// them back.
pub async fn create(
    pool: &PgPool,
    actor: &Actor,
    input: &NewSubscriberInput,
) -> Result<SubscriberDetail, SubscriberError> {
    roles::authorize(actor, Operation::SubscriberAdd)?;
    let mut errors = FieldErrors::new();
    let email = EmailAddress::parse(&input.email)
        .map_err(|e| errors.insert("email", e))
        .ok();
    let name = SubscriberName::parse(input.name.as_deref().unwrap_or(""))
        .map_err(|e| errors.insert("name", e))
        .ok()
        .flatten();
    let state = UsState::parse(input.state.as_deref().unwrap_or(""))
        .map_err(|e| errors.insert("state", e))
        .ok()
        .flatten();
    let source = input.source.trim();
    if source.is_empty()
        || source.chars().count() > MAX_SOURCE
        || text::check_line("source", source).is_err()
    {
        errors.insert(
            "source",
            format!("Say where the consent was given: 1 to {MAX_SOURCE} characters, one line."),
        );
    }
    let (Some(email), true) = (email, errors.is_empty()) else {
        return Err(SubscriberError::Invalid(errors));
    };
    let lists = if input.lists.is_empty() {
        lists::resolve_public(pool, &[], None)
            .await?
            .map_err(|problem| invalid("lists", problem.message("No such list:")))?
    } else {
        known_lists(pool, "lists", &input.lists).await?
    };
    // The lists go as the row's own, so that a state adds no alliance list here.
    let row = imports::ImportRow {
        line: 1,
        email: email.clone(),
        name,
        state,
        status: ImportStatus::Confirmed,
        lists: lists.iter().map(|(_, slug)| slug.clone()).collect(),
        pending_lists: Vec::new(),
    };
    let note = format!("added by {}: {source}", actor.label());
    let report = imports::import(pool, &[row], imports::ImportLists::default(), &note).await?;
    if let Some((_, why)) = report.suppressed.first() {
        return Err(SubscriberError::Refused(format!("Not added: {why}.")));
    }
    let contact = store::contact_by_email(pool, email.canonical())
        .await?
        .ok_or(SubscriberError::NotFound)?;
    let slugs: Vec<&str> = lists.iter().map(|(_, slug)| slug.as_str()).collect();
    let detail = json!({ "lists": slugs, "source": source, "imported": report.imported });
    audit::record(
        pool,
        actor,
        "subscriber-add",
        Some(&contact.id.to_string()),
        detail,
    )
    .await?;
    get(pool, contact.id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_a_spreadsheet_would_run_as_formulas_are_quoted() {
        for cell in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(formula_safe(cell), format!("'{cell}"));
        }
        for cell in ["ana@example.org", "Ana", "", "1-2"] {
            assert_eq!(formula_safe(cell), cell);
        }
    }

    #[test]
    fn a_guarded_cell_reads_back_as_it_was() {
        for cell in [
            "=1+1",
            "+1",
            "-1",
            "@CoalitionNY",
            "\tx",
            "\rx",
            "'",
            "'Quoted",
            "''=x",
            "'=x",
            "Ana",
            "",
        ] {
            assert_eq!(formula_unguarded(&formula_safe(cell)), cell, "{cell:?}");
        }
        assert_eq!(
            formula_unguarded("'Ana"),
            "'Ana",
            "a quote before anything else stays"
        );
    }

    #[test]
    fn a_cursor_reads_back_as_the_row_it_was_made_from() {
        let row = SubscriberRow {
            id: Uuid::new_v4(),
            email: "a@example.org".into(),
            name: None,
            status: "confirmed".into(),
            state: None,
            created_at: Utc.timestamp_micros(1_764_000_000_123_456).unwrap(),
        };
        let (at, id) = parse_cursor(&cursor_of(&row)).unwrap();
        assert_eq!((at, id), (row.created_at, row.id));
        for bad in ["", "x", "1_", "_1", "1_not-a-uuid"] {
            assert!(parse_cursor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_filter_refuses_unknown_statuses_states_and_lists_by_field() {
        let q = SearchQuery {
            status: Some("gone".into()),
            state: Some("ZZ".into()),
            list: Some("Not A Slug".into()),
            ..SearchQuery::default()
        };
        let Err(SubscriberError::Invalid(errors)) = filter(&q) else {
            panic!("accepted");
        };
        assert_eq!(
            errors.keys().copied().collect::<Vec<_>>(),
            ["list", "state", "status"]
        );
        let ok = filter(&SearchQuery {
            query: Some("  Ana ".into()),
            state: Some("ny".into()),
            ..SearchQuery::default()
        })
        .unwrap();
        assert_eq!(ok.contains.as_deref(), Some("ana"));
        assert_eq!(ok.us_state.as_deref(), Some("NY"));
    }
}
