//! The one-row `secret_key_fingerprint` table (see `ops::secret_key`).

use sqlx::PgExecutor;

/// Records `fingerprint` if none is recorded yet. Returns whether it did.
pub async fn record_first(db: impl PgExecutor<'_>, fingerprint: &str) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO secret_key_fingerprint (fingerprint) VALUES ($1) ON CONFLICT DO NOTHING",
    )
    .bind(fingerprint)
    .execute(db)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// The recorded fingerprint, if any.
pub async fn recorded(db: impl PgExecutor<'_>) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT fingerprint FROM secret_key_fingerprint")
        .fetch_optional(db)
        .await
}

/// Records `fingerprint` in place of whatever was recorded. Returns whether it changed.
pub async fn replace(db: impl PgExecutor<'_>, fingerprint: &str) -> sqlx::Result<bool> {
    let changed = sqlx::query(
        "INSERT INTO secret_key_fingerprint (fingerprint) VALUES ($1)
         ON CONFLICT (only_row) DO UPDATE SET fingerprint = $1, recorded_at = now()
         WHERE secret_key_fingerprint.fingerprint <> $1",
    )
    .bind(fingerprint)
    .execute(db)
    .await?
    .rows_affected();
    Ok(changed == 1)
}
