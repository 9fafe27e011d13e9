//! The look of the mails (issue 27): a logo, a brand colour, a footer in Markdown and social
//! links, which the shipped templates read as `brand.*` (`mail::Brand`). Only an admin changes
//! it (it changes what every mail carries: `Operation::LookChange`); every change is a new
//! version (`store::look`, append-only) and one audit entry (`look`, what changed), written in
//! one transaction.
//!
//! A version's id comes from the templates' sequence, so an update's `templates_as_of` fixes
//! the look with the templates: an update released before a change goes out with the look it
//! was released with. Every process sees a change at its next look at the templates'
//! generation (`mail::LiveTemplates`).
//!
//! Logos are kept by their SHA-256, once uploaded never removed (mails already sent point at
//! them), and served at `/brand/logo-<sha256>.<ext>` (`logo`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use super::roles::{self, Forbidden, Operation};
use super::Actor;
use crate::domain::look::{ImageKind, SocialLink};
use crate::domain::{FieldErrors, Logo, Look, LookInput, LookText, LookVersion};
use crate::store::look as store;

#[derive(Debug, thiserror::Error)]
pub enum LookError {
    #[error("{0}")]
    Forbidden(String),
    /// A message per field refused (`colour`, `footer`, `social_label_N`, `social_url_N`,
    /// `logo`).
    #[error("the look was not saved")]
    Invalid(FieldErrors),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<Forbidden> for LookError {
    fn from(e: Forbidden) -> Self {
        Self::Forbidden(e.0)
    }
}

impl From<sqlx::Error> for LookError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

/// The look as staff see it: `version` is `None` before one was saved (the default look).
#[derive(Debug, Clone, Serialize)]
pub struct LookView {
    pub version: Option<i32>,
    pub colour: String,
    /// White text on the colour, as `N.NN:1`.
    pub contrast: String,
    pub footer: String,
    pub social: Vec<SocialLink>,
    /// The logo's path on this site (`/brand/logo-<sha256>.<ext>`), its size in pixels.
    pub logo_path: Option<String>,
    pub logo_width: Option<u32>,
    pub logo_height: Option<u32>,
    pub saved_by: Option<String>,
    pub saved_at: Option<DateTime<Utc>>,
}

fn view(saved: Option<LookVersion>) -> LookView {
    let (version, look, saved_by, saved_at) = match saved {
        Some(v) => (Some(v.version), v.look, Some(v.saved_by), Some(v.saved_at)),
        None => (None, Look::default(), None, None),
    };
    LookView {
        version,
        contrast: format!("{:.2}:1", look.colour.contrast_with_white()),
        colour: look.colour.as_str().to_owned(),
        footer: look.footer,
        social: look.social,
        logo_path: look
            .logo
            .as_ref()
            .map(|l| format!("/brand/{}", l.file_name())),
        logo_width: look.logo.as_ref().map(|l| l.width),
        logo_height: look.logo.as_ref().map(|l| l.height),
        saved_by,
        saved_at,
    }
}

/// The look in use now.
pub async fn current(pool: &PgPool) -> Result<LookView, LookError> {
    Ok(view(store::current(pool).await?))
}

/// What an audit entry records of a look: each field, the logo by its hash.
#[derive(Serialize)]
struct Audited<'a> {
    colour: &'a str,
    footer: &'a str,
    social: &'a [SocialLink],
    logo: Option<&'a str>,
}

impl<'a> Audited<'a> {
    fn of(look: &'a Look) -> Self {
        Self {
            colour: look.colour.as_str(),
            footer: &look.footer,
            social: &look.social,
            logo: look.logo.as_ref().map(|l| l.sha256.as_str()),
        }
    }
}

/// Appends the next version (`text` with the logo of hash `logo`), and an audit entry naming
/// what changed since the version before, in one transaction; `new_logo` is kept first.
async fn append(
    pool: &PgPool,
    actor: &Actor,
    text: &LookText,
    logo: Option<&str>,
    new_logo: Option<&Logo>,
) -> Result<LookView, LookError> {
    let mut tx = pool.begin().await?;
    let by = actor.label();
    if let Some(new_logo) = new_logo {
        store::put_logo(&mut *tx, new_logo, &by).await?;
    }
    let before = store::current(&mut *tx)
        .await?
        .map(|v| v.look)
        .unwrap_or_default();
    let saved = store::append(&mut tx, text, logo, &by).await?;
    let mut detail = serde_json::json!({ "version": saved.version });
    detail["changes"] = super::audit::changes(&Audited::of(&before), &Audited::of(&saved.look));
    super::audit::record(&mut *tx, actor, "look", None, detail).await?;
    tx.commit().await?;
    tracing::info!(version = saved.version, "the look of the mails changed");
    Ok(view(Some(saved)))
}

/// The look now as a `LookText` and the hash of its logo.
async fn now(pool: &PgPool) -> Result<(LookText, Option<String>), LookError> {
    let look = store::current(pool)
        .await?
        .map(|v| v.look)
        .unwrap_or_default();
    Ok((
        LookText {
            colour: look.colour,
            footer: look.footer,
            social: look.social,
        },
        look.logo.map(|l| l.sha256),
    ))
}

/// Saves the colour, the footer and the social links (the logo stays as it is).
///
/// # Errors
/// `Forbidden` for anyone but an admin (before anything else), `Invalid` naming each field
/// refused (nothing saved).
pub async fn save(pool: &PgPool, actor: &Actor, input: &LookInput) -> Result<LookView, LookError> {
    roles::authorize(actor, Operation::LookChange)?;
    let text = input.parse().map_err(LookError::Invalid)?;
    let (_, logo) = now(pool).await?;
    append(pool, actor, &text, logo.as_deref(), None).await
}

/// Makes `bytes` the logo (a PNG, JPEG, GIF or WebP image, by its content).
///
/// # Errors
/// `Forbidden` for anyone but an admin (before the file is read), `Invalid` naming `logo` and
/// why the file cannot be one.
pub async fn set_logo(pool: &PgPool, actor: &Actor, bytes: Vec<u8>) -> Result<LookView, LookError> {
    roles::authorize(actor, Operation::LookChange)?;
    let logo =
        Logo::parse(bytes).map_err(|e| LookError::Invalid(FieldErrors::from([("logo", e)])))?;
    let (text, _) = now(pool).await?;
    let hash: String = logo.sha256.iter().map(|b| format!("{b:02x}")).collect();
    append(pool, actor, &text, Some(&hash), Some(&logo)).await
}

/// Mails carry no logo from now on (the file stays served for mails already sent).
///
/// # Errors
/// `Forbidden` for anyone but an admin.
pub async fn remove_logo(pool: &PgPool, actor: &Actor) -> Result<LookView, LookError> {
    roles::authorize(actor, Operation::LookChange)?;
    let (text, _) = now(pool).await?;
    append(pool, actor, &text, None, None).await
}

/// The logo served as `file` (`logo-<sha256>.<ext>`, as `domain::LogoRef::file_name` makes
/// it): its content type and bytes; `None` for any other name, an unknown hash or another
/// extension than its kind's.
pub async fn logo(pool: &PgPool, file: &str) -> anyhow::Result<Option<(&'static str, Vec<u8>)>> {
    let Some((hash, extension)) = file
        .strip_prefix("logo-")
        .and_then(|rest| rest.split_once('.'))
    else {
        return Ok(None);
    };
    if hash.len() != 64 || !hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Ok(None);
    }
    let Some((content_type, bytes)) = store::logo(pool, hash).await? else {
        return Ok(None);
    };
    Ok(ImageKind::from_content_type(&content_type)
        .filter(|kind| kind.extension() == extension)
        .map(|kind| (kind.content_type(), bytes)))
}
