//! Lists: create and edit (name, description, public or private, the US state, the welcome
//! mail), archive and reopen, for the staff area and the API alike: admins only, each change
//! audited (an edit with what changed). An archived list takes no
//! sign-ups, imports or sends and is hidden from the public forms (`store::lists` resolves
//! only open lists); its subscriptions and history stay, and staff still see its counts.

use serde::Deserialize;
use sqlx::PgPool;

use super::roles::{self, Forbidden, Operation};
use super::{audit, Actor};
use crate::domain::{text, FieldErrors, ListSlug, UsState};
use crate::store::lists::{self as store, ListFields};

pub use crate::store::lists::{
    held_public, names, public_lists, resolve_public, ListRecord, PublicList,
};

/// Longest list name and description.
const MAX_NAME: usize = 200;
const MAX_DESCRIPTION: usize = 2_000;

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("no such list")]
    NotFound,
    #[error("a list {0:?} exists already")]
    Exists(String),
    #[error("invalid list")]
    Invalid(FieldErrors),
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<Forbidden> for ListError {
    fn from(e: Forbidden) -> Self {
        Self::Forbidden(e.0)
    }
}

impl From<sqlx::Error> for ListError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

/// A list as received (the API's body, the staff area's form).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListInput {
    pub slug: Option<String>,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "yes")]
    pub public: bool,
    pub state: Option<String>,
    #[serde(default)]
    pub welcome: bool,
}

fn yes() -> bool {
    true
}

struct Parsed {
    name: String,
    description: String,
    state: Option<UsState>,
}

fn parse(input: &ListInput) -> Result<Parsed, ListError> {
    let mut errors = FieldErrors::new();
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        errors.insert(
            "name",
            format!("A name has 1 to {MAX_NAME} characters, no line breaks."),
        );
    } else if let Err(e) = text::check_line("name", name) {
        errors.insert("name", e);
    }
    if input.description.chars().count() > MAX_DESCRIPTION {
        errors.insert(
            "description",
            format!("At most {MAX_DESCRIPTION} characters."),
        );
    } else if let Err(e) = text::check_text("description", &input.description) {
        errors.insert("description", e);
    }
    let state = UsState::parse(input.state.as_deref().unwrap_or(""))
        .map_err(|e| errors.insert("state", e))
        .ok()
        .flatten();
    if !errors.is_empty() {
        return Err(ListError::Invalid(errors));
    }
    Ok(Parsed {
        name: name.to_owned(),
        description: input.description.trim().to_owned(),
        state,
    })
}

fn fields<'a>(p: &'a Parsed, input: &ListInput) -> ListFields<'a> {
    ListFields {
        name: &p.name,
        description: &p.description,
        public: input.public,
        us_state: p.state.map(UsState::code),
        welcome: input.welcome,
    }
}

/// Every list with its confirmed subscriber count.
pub async fn all(pool: &PgPool) -> Result<Vec<ListRecord>, ListError> {
    Ok(store::all(pool).await?)
}

pub async fn get(pool: &PgPool, slug: &str) -> Result<ListRecord, ListError> {
    store::by_slug(pool, slug).await?.ok_or(ListError::NotFound)
}

/// The fields of a list as stored, for the audit's "what changed".
fn fields_of(r: &ListRecord) -> ListFields<'_> {
    ListFields {
        name: &r.name,
        description: &r.description,
        public: r.public,
        us_state: r.us_state.as_deref(),
        welcome: r.welcome,
    }
}

/// Creates a list: admins only, audited with its fields.
pub async fn create(
    pool: &PgPool,
    actor: &Actor,
    input: &ListInput,
) -> Result<ListRecord, ListError> {
    roles::authorize(actor, Operation::ListChange)?;
    let slug = ListSlug::parse(input.slug.as_deref().unwrap_or(""))
        .map_err(|e| ListError::Invalid(FieldErrors::from([("slug", e)])))?;
    let parsed = parse(input)?;
    let fields = fields(&parsed, input);
    let mut tx = pool.begin().await?;
    if !store::create(&mut *tx, slug.as_str(), &fields).await? {
        return Err(ListError::Exists(slug.as_str().to_owned()));
    }
    let detail = serde_json::to_value(&fields).map_err(anyhow::Error::from)?;
    audit::record(&mut *tx, actor, "list-create", Some(slug.as_str()), detail).await?;
    tx.commit().await?;
    get(pool, slug.as_str()).await
}

/// Replaces the list's fields (its slug stays): admins only, audited with what changed.
pub async fn update(
    pool: &PgPool,
    actor: &Actor,
    slug: &str,
    input: &ListInput,
) -> Result<ListRecord, ListError> {
    roles::authorize(actor, Operation::ListChange)?;
    let parsed = parse(input)?;
    let fields = fields(&parsed, input);
    let mut tx = pool.begin().await?;
    let before = store::by_slug(&mut *tx, slug)
        .await?
        .ok_or(ListError::NotFound)?;
    if !store::update(&mut *tx, slug, &fields).await? {
        return Err(ListError::NotFound);
    }
    let detail = serde_json::json!({ "changed": audit::changes(&fields_of(&before), &fields) });
    audit::record(&mut *tx, actor, "list-edit", Some(slug), detail).await?;
    tx.commit().await?;
    get(pool, slug).await
}

/// Archives the list (`archived`) or reopens it: admins only (`Forbidden` for an editor),
/// recorded in the audit log. Archiving an archived list (or reopening an open one) is not an
/// error. Updates already scheduled for the list do not start while it
/// is archived: the scheduler pauses them with the reason.
pub async fn set_archived(
    pool: &PgPool,
    actor: &Actor,
    slug: &str,
    archived: bool,
) -> Result<ListRecord, ListError> {
    roles::authorize(actor, Operation::ListChange)?;
    let mut tx = pool.begin().await?;
    if !store::set_archived(&mut *tx, slug, archived).await? {
        return Err(ListError::NotFound);
    }
    let action = if archived {
        "list-archive"
    } else {
        "list-unarchive"
    };
    audit::record(&mut *tx, actor, action, Some(slug), serde_json::json!({})).await?;
    tx.commit().await?;
    get(pool, slug).await
}
