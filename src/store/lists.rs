use sqlx::{PgExecutor, PgPool, Row};
use uuid::Uuid;

use crate::domain::{ListSlug, UsState};

#[derive(Debug, Clone, serde::Serialize)]
pub struct PublicList {
    #[serde(skip)]
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub description: String,
    pub is_default: bool,
}

pub async fn public_lists(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<PublicList>> {
    let rows = sqlx::query(
        "SELECT id, slug, name, description, is_default FROM lists
         WHERE is_public AND archived_at IS NULL ORDER BY position, name",
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| PublicList {
            id: r.get("id"),
            slug: r.get("slug"),
            name: r.get("name"),
            description: r.get("description"),
            is_default: r.get("is_default"),
        })
        .collect())
}

/// Slugs that could not be resolved: `unknown` (no such list, or not one the caller may
/// name) and `archived` (the list exists but takes no sign-ups, imports or sends).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unresolved {
    pub unknown: Vec<String>,
    pub archived: Vec<String>,
}

impl Unresolved {
    /// One sentence per kind of problem; `unknown` starts the first, e.g. "No such list:" gives
    /// "No such list: a, b. The list c is archived."
    pub fn message(&self, unknown: &str) -> String {
        let mut parts = Vec::new();
        if !self.unknown.is_empty() {
            parts.push(format!("{unknown} {}.", self.unknown.join(", ")));
        }
        match self.archived.as_slice() {
            [] => {}
            [one] => parts.push(format!(
                "The list {one} is archived: it takes no sign-ups, imports or sends."
            )),
            many => parts.push(format!(
                "The lists {} are archived: they take no sign-ups, imports or sends.",
                many.join(", ")
            )),
        }
        parts.join(" ")
    }
}

/// Splits the slugs of `wanted` missing from `found` into archived lists (public ones only
/// when `public_only`) and unknown ones.
async fn unresolved(
    db: impl PgExecutor<'_>,
    wanted: &[&str],
    found: &[(Uuid, String)],
    public_only: bool,
) -> sqlx::Result<Option<Unresolved>> {
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|w| !found.iter().any(|(_, s)| s == *w))
        .copied()
        .collect();
    if missing.is_empty() {
        return Ok(None);
    }
    let archived: Vec<String> = sqlx::query_scalar(
        "SELECT slug FROM lists WHERE slug = ANY($1) AND archived_at IS NOT NULL
           AND (is_public OR NOT $2) ORDER BY slug",
    )
    .bind(&missing)
    .bind(public_only)
    .fetch_all(db)
    .await?;
    let unknown = missing
        .iter()
        .filter(|m| !archived.iter().any(|a| a == *m))
        .map(|m| m.to_string())
        .collect();
    Ok(Some(Unresolved { unknown, archived }))
}

/// The open public lists named by `slugs` (the open default lists when `slugs` is empty),
/// plus the alliance lists of `state` (the view `alliance_lists`: its open public lists).
/// `Err` names the slugs that are not open public lists.
pub async fn resolve_public(
    db: &PgPool,
    slugs: &[ListSlug],
    state: Option<UsState>,
) -> sqlx::Result<Result<Vec<(Uuid, String)>, Unresolved>> {
    let wanted: Vec<&str> = slugs.iter().map(ListSlug::as_str).collect();
    let rows = sqlx::query(
        "SELECT id, slug FROM lists
         WHERE (is_public AND archived_at IS NULL
                AND (slug = ANY($1) OR (cardinality($1) = 0 AND is_default)))
            OR id IN (SELECT id FROM alliance_lists WHERE us_state = $2)
         ORDER BY slug",
    )
    .bind(&wanted)
    .bind(state.map(UsState::code))
    .fetch_all(db)
    .await?;
    let found: Vec<(Uuid, String)> = rows.iter().map(|r| (r.get("id"), r.get("slug"))).collect();
    Ok(match unresolved(db, &wanted, &found, true).await? {
        None => Ok(found),
        Some(problem) => Err(problem),
    })
}

/// Every state's alliance lists (`alliance_lists`), as (state code, list id, slug): what a
/// sign-up naming the state joins.
pub async fn alliances(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(String, Uuid, String)>> {
    sqlx::query_as("SELECT us_state, id, slug FROM alliance_lists ORDER BY us_state, slug")
        .fetch_all(db)
        .await
}

/// Open lists (public or private) by slug, for staff. `Err` names the unknown and the
/// archived slugs.
pub async fn resolve_any(
    db: &PgPool,
    slugs: &[ListSlug],
) -> sqlx::Result<Result<Vec<(Uuid, String)>, Unresolved>> {
    let wanted: Vec<&str> = slugs.iter().map(ListSlug::as_str).collect();
    let found: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT id, slug FROM lists WHERE slug = ANY($1) AND archived_at IS NULL")
            .bind(&wanted)
            .fetch_all(db)
            .await?;
    Ok(match unresolved(db, &wanted, &found, false).await? {
        None => Ok(found),
        Some(problem) => Err(problem),
    })
}

/// Open public lists the subscriber is or was on (any status).
pub async fn held_public(
    db: impl PgExecutor<'_>,
    subscriber_id: Uuid,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT l.slug FROM subscriptions s JOIN lists l ON l.id = s.list_id
         WHERE s.subscriber_id = $1 AND l.is_public AND l.archived_at IS NULL ORDER BY l.slug",
    )
    .bind(subscriber_id)
    .fetch_all(db)
    .await
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ListRecord {
    pub slug: String,
    pub name: String,
    pub description: String,
    pub public: bool,
    pub default: bool,
    pub us_state: Option<String>,
    pub welcome: bool,
    pub confirmed_subscribers: i64,
    /// When the list was archived; `None` while it is open.
    pub archived_at: Option<chrono::DateTime<chrono::Utc>>,
}

macro_rules! list_columns {
    () => {
        "SELECT l.slug, l.name, l.description, l.is_public, l.is_default, l.us_state, l.welcome, l.archived_at,
            (SELECT count(*) FROM subscriptions s JOIN subscribers p ON p.id = s.subscriber_id
             WHERE s.list_id = l.id AND s.status = 'confirmed' AND p.status = 'confirmed') AS confirmed
         FROM lists l"
    };
}

fn list_record(r: &sqlx::postgres::PgRow) -> ListRecord {
    ListRecord {
        slug: r.get("slug"),
        name: r.get("name"),
        description: r.get("description"),
        public: r.get("is_public"),
        default: r.get("is_default"),
        us_state: r.get("us_state"),
        welcome: r.get("welcome"),
        confirmed_subscribers: r.get("confirmed"),
        archived_at: r.get("archived_at"),
    }
}

pub async fn all(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<ListRecord>> {
    let rows = sqlx::query(concat!(list_columns!(), " ORDER BY l.slug"))
        .fetch_all(db)
        .await?;
    Ok(rows.iter().map(list_record).collect())
}

pub async fn by_slug(db: impl PgExecutor<'_>, slug: &str) -> sqlx::Result<Option<ListRecord>> {
    let row = sqlx::query(concat!(list_columns!(), " WHERE l.slug = $1"))
        .bind(slug)
        .fetch_optional(db)
        .await?;
    Ok(row.as_ref().map(list_record))
}

/// A list's fields as staff set them.
#[derive(Debug, serde::Serialize)]
pub struct ListFields<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub public: bool,
    pub us_state: Option<&'a str>,
    pub welcome: bool,
}

/// Inserts a list; `Ok(false)` when the slug is taken.
pub async fn create(db: impl PgExecutor<'_>, slug: &str, f: &ListFields<'_>) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO lists (slug, name, description, is_public, us_state, welcome) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (slug) DO NOTHING",
    )
    .bind(slug)
    .bind(f.name)
    .bind(f.description)
    .bind(f.public)
    .bind(f.us_state)
    .bind(f.welcome)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Replaces a list's fields; `Ok(false)` when there is no such list.
pub async fn update(db: impl PgExecutor<'_>, slug: &str, f: &ListFields<'_>) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE lists SET name = $2, description = $3, is_public = $4, us_state = $5, welcome = $6 WHERE slug = $1",
    )
    .bind(slug)
    .bind(f.name)
    .bind(f.description)
    .bind(f.public)
    .bind(f.us_state)
    .bind(f.welcome)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Archives (`archived`) or reopens a list; `Ok(false)` when there is no such list. Archiving
/// an archived list keeps its first time.
pub async fn set_archived(
    db: impl PgExecutor<'_>,
    slug: &str,
    archived: bool,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE lists SET archived_at = CASE WHEN $2 THEN coalesce(archived_at, now()) END
         WHERE slug = $1",
    )
    .bind(slug)
    .bind(archived)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The slugs of the open (not archived) lists.
pub async fn open_slugs(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT slug FROM lists WHERE archived_at IS NULL ORDER BY position, name")
        .fetch_all(db)
        .await
}

/// Every list's (slug, name), or only the open ones' (`open_only`: what staff may put people
/// on), in the order pages show them; no counts, so it stays cheap.
pub async fn names(
    db: impl PgExecutor<'_>,
    open_only: bool,
) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as(
        "SELECT slug, name FROM lists WHERE archived_at IS NULL OR NOT $1 ORDER BY position, name",
    )
    .bind(open_only)
    .fetch_all(db)
    .await
}
