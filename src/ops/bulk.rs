//! Subscribers in bulk, from the staff area's search: the people ticked on a page, or every
//! person matching the search (at most [`MAX_PEOPLE`]), added to a list, removed from one,
//! unsubscribed, erased or exported. Each action needs the right of its one-person form
//! (`ops::roles`), runs in one transaction with one audit entry naming the count, and keeps
//! every rule of the one-person form: nobody not confirmed joins a list, nobody who left a
//! list themselves is put back on it, nobody stays confirmed on no list, an erasure leaves only
//! the hash of the address (on the suppression list) and must be confirmed by typing the
//! number of people.

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::roles::{self, Operation};
use super::subscribers::{export_csv, filter, SearchQuery, SubscriberError};
use super::{audit, Actor};
use crate::domain::{FieldErrors, ListSlug, RequestOrigin};
use crate::store::{bulk as store, lists, preferences, unsubscribes};

/// The most people one bulk action takes.
pub const MAX_PEOPLE: usize = 10_000;

/// Who an action is for.
#[derive(Debug, Clone)]
pub enum Selection {
    /// The people ticked (subscriber ids).
    Ticked(Vec<Uuid>),
    /// Everyone matching the search.
    Matching(SearchQuery),
}

/// What to do to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkAction {
    AddToList(String),
    RemoveFromList(String),
    Unsubscribe,
    /// With the number of people as the member typed it.
    Erase {
        typed_count: String,
    },
    Export,
}

impl BulkAction {
    /// An action as a form names it (`add_to_list`, `remove_from_list`, `unsubscribe`,
    /// `erase`, `export`), with its list and typed count.
    pub fn parse(action: &str, list: &str, typed_count: &str) -> Result<Self, SubscriberError> {
        let list = || -> Result<String, SubscriberError> {
            ListSlug::parse(list.trim())
                .map(|s| s.as_str().to_owned())
                .map_err(|_| invalid("list", "Choose the list."))
        };
        Ok(match action.trim() {
            "add_to_list" => Self::AddToList(list()?),
            "remove_from_list" => Self::RemoveFromList(list()?),
            "unsubscribe" => Self::Unsubscribe,
            "erase" => Self::Erase {
                typed_count: typed_count.trim().to_owned(),
            },
            "export" => Self::Export,
            _ => {
                return Err(invalid(
                    "action",
                    "Choose what to do: add to a list, remove from a list, unsubscribe, erase or export.",
                ))
            }
        })
    }

    fn operation(&self) -> Operation {
        match self {
            Self::AddToList(_) | Self::RemoveFromList(_) => Operation::SubscriberEdit,
            Self::Unsubscribe => Operation::SubscriberUnsubscribe,
            Self::Erase { .. } => Operation::SubscriberErase,
            Self::Export => Operation::SubscriberExport,
        }
    }
}

fn invalid(field: &'static str, message: &str) -> SubscriberError {
    SubscriberError::Invalid(FieldErrors::from([(field, message.to_owned())]))
}

/// What a bulk action did: how many people it was for, how many it changed, and why the
/// others were left as they were.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub selected: usize,
    pub changed: usize,
    /// Not confirmed: a list is joined only by someone confirmed.
    pub not_confirmed: usize,
    /// They left that list themselves: only they may join it again.
    pub left_before: usize,
    /// Already as asked (on the list, off it, unsubscribed).
    pub unchanged: usize,
    /// For an export: the CSV.
    pub csv: Option<String>,
}

/// The people of a selection, newest first.
async fn resolve(pool: &PgPool, selection: &Selection) -> Result<Vec<Uuid>, SubscriberError> {
    let ids = match selection {
        Selection::Ticked(ids) => {
            if ids.is_empty() {
                return Err(invalid(
                    "ids",
                    "Tick the people to act on, or choose everyone matching the search.",
                ));
            }
            if ids.len() > MAX_PEOPLE {
                return Err(invalid("ids", "Too many people ticked."));
            }
            store::existing(pool, ids).await?
        }
        Selection::Matching(q) => {
            let f = filter(q)?;
            let cap = i64::try_from(MAX_PEOPLE).unwrap_or(i64::MAX) + 1;
            store::matching_ids(pool, &f, cap).await?
        }
    };
    if ids.len() > MAX_PEOPLE {
        return Err(SubscriberError::Refused(format!(
            "More than {MAX_PEOPLE} people match: narrow the search (one bulk action takes at most {MAX_PEOPLE})."
        )));
    }
    Ok(ids)
}

/// Does `action` to the people of `selection`: the right of the one-person action first, then
/// one transaction and one audit entry (`bulk-…`, or `export`) with the counts. An erasure
/// goes ahead only when `typed_count` is the number of people it is for, counted now.
pub async fn act(
    pool: &PgPool,
    actor: &Actor,
    selection: &Selection,
    action: &BulkAction,
) -> Result<Outcome, SubscriberError> {
    roles::authorize(actor, action.operation())?;
    let ids = resolve(pool, selection).await?;
    let mut outcome = Outcome {
        selected: ids.len(),
        ..Outcome::default()
    };
    if let BulkAction::Export = action {
        let rows = store::export_rows(pool, &ids).await?;
        outcome.csv = Some(export_csv(&rows)?);
        outcome.changed = rows.len();
        let detail = json!({ "rows": rows.len(), "selected": true });
        audit::record(pool, actor, "export", None, detail).await?;
        return Ok(outcome);
    }
    if let BulkAction::Erase { typed_count } = action {
        if typed_count.parse::<usize>().ok() != Some(ids.len()) {
            return Err(SubscriberError::Refused(format!(
                "To erase, type the number of people it is for: {}. Nothing was erased.",
                ids.len()
            )));
        }
    }
    let target = match action {
        BulkAction::AddToList(slug) | BulkAction::RemoveFromList(slug) => {
            let slug = ListSlug::parse(slug).map_err(|e| invalid("list", &e))?;
            let found = lists::resolve_any(pool, std::slice::from_ref(&slug))
                .await?
                .map_err(|problem| {
                    SubscriberError::Invalid(FieldErrors::from([(
                        "list",
                        problem.message("No such list:"),
                    )]))
                })?;
            found.into_iter().next().map(|(_, slug)| slug)
        }
        _ => None,
    };
    let source = match actor {
        Actor::ApiToken { .. } => "api",
        _ => "admin",
    };
    let origin = RequestOrigin::default();
    let mut tx = pool.begin().await?;
    for person in store::people(&mut *tx, &ids, target.as_deref()).await? {
        let changed = match action {
            BulkAction::AddToList(_) => {
                let slug = target.clone().unwrap_or_default();
                if person.lists.contains(&slug) {
                    outcome.unchanged += 1;
                    continue;
                }
                if person.status != "confirmed" {
                    outcome.not_confirmed += 1;
                    continue;
                }
                if person.left_target {
                    outcome.left_before += 1;
                    continue;
                }
                let mut wanted = person.lists.clone();
                wanted.push(slug);
                set_lists(&mut tx, person.id, &wanted, true, source, &origin).await?;
                true
            }
            BulkAction::RemoveFromList(_) => {
                let slug = target.clone().unwrap_or_default();
                if !person.lists.contains(&slug) {
                    outcome.unchanged += 1;
                    continue;
                }
                let wanted: Vec<String> = person
                    .lists
                    .iter()
                    .filter(|l| **l != slug)
                    .cloned()
                    .collect();
                let join = person.status == "confirmed";
                set_lists(&mut tx, person.id, &wanted, join, source, &origin).await?;
                true
            }
            BulkAction::Unsubscribe => {
                unsubscribes::unsubscribe_all_in(&mut tx, person.id, source, &origin).await?
            }
            BulkAction::Erase { .. } => preferences::erase_in(&mut tx, person.id).await?,
            BulkAction::Export => false,
        };
        if changed {
            outcome.changed += 1;
        } else {
            outcome.unchanged += 1;
        }
    }
    let (what, list) = match action {
        BulkAction::AddToList(_) => ("bulk-add-to-list", target.as_deref()),
        BulkAction::RemoveFromList(_) => ("bulk-remove-from-list", target.as_deref()),
        BulkAction::Unsubscribe => ("bulk-unsubscribe", None),
        _ => ("bulk-erase", None),
    };
    let detail = json!({
        "selected": outcome.selected, "changed": outcome.changed, "list": list,
        "not_confirmed": outcome.not_confirmed, "left_before": outcome.left_before,
        "unchanged": outcome.unchanged,
        "matching": match selection { Selection::Matching(q) => serde_json::to_value(q).ok(), Selection::Ticked(_) => None },
    });
    audit::record(&mut *tx, actor, what, None, detail).await?;
    tx.commit().await?;
    Ok(outcome)
}

async fn set_lists(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    id: Uuid,
    wanted: &[String],
    join: bool,
    source: &'static str,
    origin: &RequestOrigin,
) -> Result<(), SubscriberError> {
    let change = preferences::ListChange {
        wanted,
        public_only: false,
        join,
    };
    preferences::set_lists_in(tx, id, Some(change), source, origin).await?;
    Ok(())
}
