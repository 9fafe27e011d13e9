//! Sign-ins through the OpenID Provider on their way (`oidc_logins`): only the SHA-256 of their
//! `state` and of the cookie that ties them to a browser.

use std::time::Duration;

use sqlx::{PgExecutor, Row};

use super::seconds;
use crate::domain::TokenHash;

/// Records a sign-in that leaves for the provider, and forgets those older than `max_age`.
pub async fn insert_pending(
    db: impl PgExecutor<'_>,
    state: &TokenHash,
    browser: &TokenHash,
    max_age: Duration,
) -> sqlx::Result<()> {
    sqlx::query(
        "WITH expired AS (DELETE FROM oidc_logins
                          WHERE created_at < now() - make_interval(secs => $3))
         INSERT INTO oidc_logins (state_hash, browser_hash) VALUES ($1, $2)",
    )
    .bind(state.0.as_slice())
    .bind(browser.0.as_slice())
    .bind(seconds(max_age))
    .execute(db)
    .await?;
    Ok(())
}

/// A sign-in on its way, as the callback found it.
pub struct Pending {
    pub browser: TokenHash,
    /// Younger than the `max_age` it was taken with.
    pub fresh: bool,
}

/// Takes (deletes) the sign-in whose state hashes to `state`: a state serves once.
pub async fn take_pending(
    db: impl PgExecutor<'_>,
    state: &TokenHash,
    max_age: Duration,
) -> sqlx::Result<Option<Pending>> {
    let row = sqlx::query(
        "DELETE FROM oidc_logins WHERE state_hash = $1
         RETURNING browser_hash, created_at >= now() - make_interval(secs => $2) AS fresh",
    )
    .bind(state.0.as_slice())
    .bind(seconds(max_age))
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| {
        let bytes: Vec<u8> = r.get("browser_hash");
        Pending {
            // 32 bytes by the table's check; anything else matches no cookie.
            browser: TokenHash(bytes.as_slice().try_into().unwrap_or_default()),
            fresh: r.get("fresh"),
        }
    }))
}
