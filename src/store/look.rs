//! The look of the mails (`look_versions`) and the logos uploaded for it (`brand_logos`): both
//! appended, never changed. A look version's id is taken from the sequence of
//! `mail_template_versions`, so `mail_design_mark()` (an update's `templates_as_of`) fixes the
//! templates and the look together.

use sqlx::{PgExecutor, Row};

use crate::domain::look::{BrandColour, ImageKind, LookText, SocialLink};
use crate::domain::{Logo, LogoRef, Look, LookVersion};

const COLUMNS: &str = "v.version, v.colour, v.footer, v.social, v.saved_by, v.saved_at,
                       encode(v.logo_sha256, 'hex') AS logo_sha256, l.content_type, l.width, l.height";
const FROM: &str = "look_versions v LEFT JOIN brand_logos l ON l.sha256 = v.logo_sha256";

fn from_row(row: &sqlx::postgres::PgRow) -> sqlx::Result<LookVersion> {
    let social: sqlx::types::Json<Vec<SocialLink>> = row.try_get("social")?;
    let logo = match (
        row.try_get::<Option<String>, _>("logo_sha256")?,
        row.try_get::<Option<String>, _>("content_type")?,
    ) {
        (Some(sha256), Some(content_type)) => {
            ImageKind::from_content_type(&content_type).map(|kind| -> sqlx::Result<LogoRef> {
                Ok(LogoRef {
                    sha256,
                    kind,
                    width: u32::try_from(row.try_get::<i32, _>("width")?).unwrap_or(1),
                    height: u32::try_from(row.try_get::<i32, _>("height")?).unwrap_or(1),
                })
            })
        }
        _ => None,
    }
    .transpose()?;
    Ok(LookVersion {
        version: row.try_get("version")?,
        look: Look {
            colour: BrandColour::from_stored(row.try_get("colour")?),
            footer: row.try_get("footer")?,
            social: social.0,
            logo,
        },
        saved_by: row.try_get("saved_by")?,
        saved_at: row.try_get("saved_at")?,
    })
}

/// The current (highest) version; `None` before one was saved.
pub async fn current(db: impl PgExecutor<'_>) -> sqlx::Result<Option<LookVersion>> {
    as_of(db, Some(i64::MAX)).await
}

/// The version that was current when the newest saved id of the mail design was `as_of`
/// (what an update released then goes out with); none for `None`.
pub async fn as_of(
    db: impl PgExecutor<'_>,
    as_of: Option<i64>,
) -> sqlx::Result<Option<LookVersion>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE v.id <= $1 ORDER BY v.id DESC LIMIT 1"
    ))
    .bind(as_of)
    .fetch_optional(db)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Keeps `logo` (once per content: a second upload of the same file changes nothing).
pub async fn put_logo(db: impl PgExecutor<'_>, logo: &Logo, by: &str) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO brand_logos (sha256, content_type, bytes, width, height, uploaded_by)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (sha256) DO NOTHING",
    )
    .bind(&logo.sha256[..])
    .bind(logo.kind.content_type())
    .bind(&logo.bytes)
    .bind(i32::try_from(logo.width).unwrap_or(i32::MAX))
    .bind(i32::try_from(logo.height).unwrap_or(i32::MAX))
    .bind(by)
    .execute(db)
    .await?;
    Ok(())
}

/// The logo whose SHA-256 is `sha256` (hex): its content type and bytes.
pub async fn logo(
    db: impl PgExecutor<'_>,
    sha256: &str,
) -> sqlx::Result<Option<(String, Vec<u8>)>> {
    sqlx::query_as("SELECT content_type, bytes FROM brand_logos WHERE sha256 = decode($1, 'hex')")
        .bind(sha256)
        .fetch_optional(db)
        .await
}

/// Appends the next version: `text`, with the logo of SHA-256 `logo` (hex; it must have been
/// put), in `tx`, which holds a lock until it ends so two saves never take the same number.
pub async fn append(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    text: &LookText,
    logo: Option<&str>,
    saved_by: &str,
) -> sqlx::Result<LookVersion> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('look_versions', 0))")
        .execute(&mut **tx)
        .await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO look_versions (version, colour, footer, social, logo_sha256, saved_by)
         SELECT coalesce(max(version), 0) + 1, $1, $2, $3, decode($4, 'hex'), $5
         FROM look_versions
         RETURNING id",
    )
    .bind(text.colour.as_str())
    .bind(&text.footer)
    .bind(sqlx::types::Json(&text.social))
    .bind(logo)
    .bind(saved_by)
    .fetch_one(&mut **tx)
    .await?;
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM {FROM} WHERE v.id = $1"))
        .bind(id)
        .fetch_one(&mut **tx)
        .await?;
    from_row(&row)
}
