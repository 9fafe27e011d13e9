use sqlx::{PgExecutor, Row};
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
         WHERE is_public ORDER BY position, name",
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

/// The public lists named by `slugs` (the default lists when `slugs` is empty), plus the public
/// alliance lists of `state`. `Err` carries the slugs that are not public lists.
pub async fn resolve_public(
    db: impl PgExecutor<'_>,
    slugs: &[ListSlug],
    state: Option<UsState>,
) -> sqlx::Result<Result<Vec<(Uuid, String)>, Vec<String>>> {
    let wanted: Vec<&str> = slugs.iter().map(ListSlug::as_str).collect();
    let rows = sqlx::query(
        "SELECT id, slug FROM lists
         WHERE is_public AND (slug = ANY($1) OR (cardinality($1) = 0 AND is_default) OR us_state = $2)
         ORDER BY slug",
    )
    .bind(&wanted)
    .bind(state.map(UsState::code))
    .fetch_all(db)
    .await?;
    let found: Vec<(Uuid, String)> = rows.iter().map(|r| (r.get("id"), r.get("slug"))).collect();
    let unknown: Vec<String> = wanted
        .iter()
        .filter(|w| !found.iter().any(|(_, s)| s == *w))
        .map(|w| w.to_string())
        .collect();
    Ok(if unknown.is_empty() {
        Ok(found)
    } else {
        Err(unknown)
    })
}

/// Any lists (public or private) by slug, for staff. `Err` carries the unknown slugs.
pub async fn resolve_any(
    db: impl PgExecutor<'_>,
    slugs: &[ListSlug],
) -> sqlx::Result<Result<Vec<(Uuid, String)>, Vec<String>>> {
    let wanted: Vec<&str> = slugs.iter().map(ListSlug::as_str).collect();
    let found: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT id, slug FROM lists WHERE slug = ANY($1)")
            .bind(&wanted)
            .fetch_all(db)
            .await?;
    let unknown: Vec<String> = wanted
        .iter()
        .filter(|w| !found.iter().any(|(_, s)| s == *w))
        .map(|w| w.to_string())
        .collect();
    Ok(if unknown.is_empty() {
        Ok(found)
    } else {
        Err(unknown)
    })
}

/// Public lists the subscriber is or was on (any status).
pub async fn held_public(
    db: impl PgExecutor<'_>,
    subscriber_id: Uuid,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT l.slug FROM subscriptions s JOIN lists l ON l.id = s.list_id
         WHERE s.subscriber_id = $1 AND l.is_public ORDER BY l.slug",
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
}

macro_rules! list_columns {
    () => {
        "SELECT l.slug, l.name, l.description, l.is_public, l.is_default, l.us_state, l.welcome,
            (SELECT count(*) FROM subscriptions s WHERE s.list_id = l.id AND s.status = 'confirmed') AS confirmed
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

/// Every list's (slug, name), in the order pages show them; no counts, so it stays cheap.
pub async fn names(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as("SELECT slug, name FROM lists ORDER BY position, name")
        .fetch_all(db)
        .await
}
