//! Aggregate link counts (`update_links`, `link_clicks`): the links of updates that went out,
//! each under a code of its own, and their clicks per day. Nothing here names a person.

use std::collections::HashMap;

use anyhow::Context;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// Characters of a link code: 12 random bytes, base64url (96 bits: not guessable).
pub const CODE_CHARS: usize = 16;

fn new_code() -> String {
    let mut bytes = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `raw` has the form of a link code (checked before any query).
pub fn is_code(raw: &str) -> bool {
    raw.len() == CODE_CHARS
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The code of each of `urls` (links of update `update`, in order of appearance), made on
/// first use and the same ever after: every worker, and every restart, gets the same codes.
pub async fn codes(
    pool: &PgPool,
    update: Uuid,
    urls: &[String],
) -> anyhow::Result<HashMap<String, String>> {
    if urls.is_empty() {
        return Ok(HashMap::new());
    }
    let codes: Vec<String> = urls.iter().map(|_| new_code()).collect();
    let positions: Vec<i32> = (0..urls.len() as i32).collect();
    sqlx::query(
        "INSERT INTO update_links (code, update_id, url, position)
         SELECT code, $1, url, position FROM unnest($2::text[], $3::text[], $4::int[])
             AS l (code, url, position)
         ON CONFLICT DO NOTHING",
    )
    .bind(update)
    .bind(&codes)
    .bind(urls)
    .bind(&positions)
    .execute(pool)
    .await
    .context("storing an update's link codes")?;
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT url, code FROM update_links WHERE update_id = $1")
            .bind(update)
            .fetch_all(pool)
            .await
            .context("reading an update's link codes")?;
    Ok(rows.into_iter().collect())
}

/// Counts a click on `code` for today (UTC) and returns where it leads: the link as the update
/// had it. `None` for a code that names no link (nothing is counted).
pub async fn follow(pool: &PgPool, code: &str) -> anyhow::Result<Option<String>> {
    sqlx::query_scalar(
        "WITH link AS (SELECT code, url FROM update_links WHERE code = $1),
              counted AS (
                  INSERT INTO link_clicks (code, day, clicks)
                  SELECT code, (now() AT TIME ZONE 'UTC')::date, 1 FROM link
                  ON CONFLICT (code, day) DO UPDATE SET clicks = link_clicks.clicks + 1)
         SELECT url FROM link",
    )
    .bind(code)
    .fetch_optional(pool)
    .await
    .context("following a link")
}

/// Where `code` leads, counting nothing.
pub async fn target(pool: &PgPool, code: &str) -> anyhow::Result<Option<String>> {
    sqlx::query_scalar("SELECT url FROM update_links WHERE code = $1")
        .bind(code)
        .fetch_optional(pool)
        .await
        .context("reading a link")
}

/// A link of an update and its clicks so far.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct LinkClicks {
    /// The link as the update had it.
    pub url: String,
    /// Clicks on it, all days together.
    pub clicks: i64,
}

/// The update's links in order of appearance, with their clicks.
pub async fn clicks(pool: &PgPool, update: Uuid) -> anyhow::Result<Vec<LinkClicks>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT l.url, coalesce(sum(c.clicks), 0)::bigint
         FROM update_links l LEFT JOIN link_clicks c ON c.code = l.code
         WHERE l.update_id = $1
         GROUP BY l.url, l.position ORDER BY l.position",
    )
    .bind(update)
    .fetch_all(pool)
    .await
    .context("reading an update's clicks")?;
    Ok(rows
        .into_iter()
        .map(|(url, clicks)| LinkClicks { url, clicks })
        .collect())
}
