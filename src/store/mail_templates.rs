//! Saved versions of the mail templates (`mail_template_versions`): appended, never changed.

use sqlx::{PgExecutor, Row};

use crate::domain::MailSource;

pub use crate::domain::TemplateVersion;

const COLUMNS: &str =
    "name, version, subject, body_text, body_html, reverted_from, saved_by, saved_at";

fn from_row(row: &sqlx::postgres::PgRow) -> sqlx::Result<TemplateVersion> {
    let subject: Option<String> = row.try_get("subject")?;
    let text: Option<String> = row.try_get("body_text")?;
    let html: Option<String> = row.try_get("body_html")?;
    Ok(TemplateVersion {
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        source: match (subject, text, html) {
            (Some(subject), Some(text), Some(html)) => Some(MailSource {
                subject,
                text,
                html,
            }),
            _ => None,
        },
        reverted_from: row.try_get("reverted_from")?,
        saved_by: row.try_get("saved_by")?,
        saved_at: row.try_get("saved_at")?,
    })
}

/// A number that grows whenever a version of a template or of the look is committed: the
/// number of rows (the tables are append-only, so it never shrinks). Not the newest id: ids are
/// taken at insert, so a save committed after a later-numbered one would not move it. The
/// tables hold a few rows per template, so processes can ask this often and reload only when
/// it moved.
pub async fn generation(db: impl PgExecutor<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM mail_template_versions) + (SELECT count(*) FROM look_versions)",
    )
        .fetch_one(db)
        .await
}

/// The current (highest) version of every name that has one.
pub async fn current_all(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<TemplateVersion>> {
    let rows = sqlx::query(&format!(
        "SELECT DISTINCT ON (name) {COLUMNS} FROM mail_template_versions
         ORDER BY name, version DESC"
    ))
    .fetch_all(db)
    .await?;
    rows.iter().map(from_row).collect()
}

/// The version of every name that was current when the newest saved version's id was
/// `as_of` (what an update that started then goes out with); none for `None`.
pub async fn current_all_as_of(
    db: impl PgExecutor<'_>,
    as_of: Option<i64>,
) -> sqlx::Result<Vec<TemplateVersion>> {
    let rows = sqlx::query(&format!(
        "SELECT DISTINCT ON (name) {COLUMNS} FROM mail_template_versions
         WHERE id <= $1 ORDER BY name, version DESC"
    ))
    .bind(as_of)
    .fetch_all(db)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Version `version` of `name`, or the current one when `version` is `None`.
pub async fn get(
    db: impl PgExecutor<'_>,
    name: &str,
    version: Option<i32>,
) -> sqlx::Result<Option<TemplateVersion>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM mail_template_versions
         WHERE name = $1 AND ($2::integer IS NULL OR version = $2)
         ORDER BY version DESC LIMIT 1"
    ))
    .bind(name)
    .bind(version)
    .fetch_optional(db)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Every version of `name`, newest first.
pub async fn list(db: impl PgExecutor<'_>, name: &str) -> sqlx::Result<Vec<TemplateVersion>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM mail_template_versions WHERE name = $1 ORDER BY version DESC"
    ))
    .bind(name)
    .fetch_all(db)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Appends the next version of `name` (`source` `None`: the shipped template) in `tx`, which
/// holds a lock on the name until it ends, so two saves never take the same number.
pub async fn append(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    name: &str,
    source: Option<&MailSource>,
    reverted_from: Option<i32>,
    saved_by: &str,
) -> sqlx::Result<TemplateVersion> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('mail_template:' || $1, 0))")
        .bind(name)
        .execute(&mut **tx)
        .await?;
    let row = sqlx::query(&format!(
        "INSERT INTO mail_template_versions
             (name, version, subject, body_text, body_html, reverted_from, saved_by)
         SELECT $1, coalesce(max(version), 0) + 1, $2, $3, $4, $5, $6
         FROM mail_template_versions WHERE name = $1
         RETURNING {COLUMNS}"
    ))
    .bind(name)
    .bind(source.map(|s| s.subject.as_str()))
    .bind(source.map(|s| s.text.as_str()))
    .bind(source.map(|s| s.html.as_str()))
    .bind(reverted_from)
    .bind(saved_by)
    .fetch_one(&mut **tx)
    .await?;
    from_row(&row)
}
