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
