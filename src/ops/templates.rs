//! Mail templates staff edit (issue 11): the current version of each, every saved version with
//! who and when, save (only a source that compiles, whose partials are bounded, that renders
//! with sample data within `templates.max_output_bytes` and `templates.max_render_ms` and shows
//! what its kind of mail must show: issue 26), a preview (the same check), and revert to an
//! earlier version or to the shipped default. Only an admin changes a
//! template; editors read. Every change is a new version (`store::mail_templates`, append-only)
//! and an audit entry, written in one transaction.
//!
//! A revert to version `n` is a new version holding version `n`'s parts (`reverted_from = n`).
//! A revert to the default is a new version with no parts: it stands for the shipped template
//! of the running binary (a later release's default is used once it ships).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use super::Actor;
use crate::domain::{Look, TemplateVersion};
use crate::mail::{LiveTemplates, MailSource, Part, RenderedMail, SavedTemplates, TemplateError};
use crate::store::mail_templates as store;

/// Longest part of a template, in bytes.
pub const MAX_PART_BYTES: usize = 200_000;

#[derive(Debug, thiserror::Error)]
pub enum TemplateOpError {
    #[error("no such mail template")]
    NotFound,
    #[error("no such version of this mail template")]
    NoVersion,
    #[error("only an admin may change mail templates")]
    Forbidden,
    /// The source does not compile or render with sample data: the part and why.
    #[error("{0}")]
    Invalid(TemplateError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for TemplateOpError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

/// A version of a template as staff see it. `version` is `None` for the shipped template of a
/// name never saved; `is_default` is true when the source is the shipped one (never saved, or
/// reverted to the default). Also the API's answer (`/api/v1/templates/{name}`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TemplateView {
    pub name: String,
    pub version: Option<i32>,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub is_default: bool,
    pub reverted_from: Option<i32>,
    pub saved_by: Option<String>,
    pub saved_at: Option<DateTime<Utc>>,
}

/// What a revert goes back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevertTo {
    Version(i32),
    Default,
}

fn shipped<'a>(live: &'a LiveTemplates, name: &str) -> Result<&'a MailSource, TemplateOpError> {
    live.shipped(name).ok_or(TemplateOpError::NotFound)
}

fn view(shipped: &MailSource, name: &str, saved: Option<TemplateVersion>) -> TemplateView {
    let (version, source, reverted_from, saved_by, saved_at) = match saved {
        Some(v) => (
            Some(v.version),
            v.source,
            v.reverted_from,
            Some(v.saved_by),
            Some(v.saved_at),
        ),
        None => (None, None, None, None, None),
    };
    let is_default = source.is_none();
    let source = source.unwrap_or_else(|| shipped.clone());
    TemplateView {
        name: name.to_owned(),
        version,
        subject: source.subject,
        text: source.text,
        html: source.html,
        is_default,
        reverted_from,
        saved_by,
        saved_at,
    }
}

/// The saved versions and look the live templates (`mail::LiveTemplates`) are built with,
/// read from the database: every process passes its pool.
impl SavedTemplates for PgPool {
    async fn generation(&self) -> anyhow::Result<i64> {
        Ok(store::generation(self).await?)
    }

    async fn current_all(&self) -> anyhow::Result<Vec<TemplateVersion>> {
        Ok(store::current_all(self).await?)
    }

    async fn current_all_as_of(&self, as_of: Option<i64>) -> anyhow::Result<Vec<TemplateVersion>> {
        Ok(store::current_all_as_of(self, as_of).await?)
    }

    async fn current_look(&self) -> anyhow::Result<Option<Look>> {
        Ok(crate::store::look::current(self).await?.map(|v| v.look))
    }

    async fn look_as_of(&self, as_of: Option<i64>) -> anyhow::Result<Option<Look>> {
        Ok(crate::store::look::as_of(self, as_of)
            .await?
            .map(|v| v.look))
    }
}

/// The version of `name` in use now (the shipped one when none was saved).
///
/// # Errors
/// `NotFound` for a name that is not a mail template.
pub async fn current(
    pool: &PgPool,
    live: &LiveTemplates,
    name: &str,
) -> Result<TemplateView, TemplateOpError> {
    let shipped = shipped(live, name)?;
    Ok(view(shipped, name, store::get(pool, name, None).await?))
}

/// Every template with its current version, by name.
pub async fn all(
    pool: &PgPool,
    live: &LiveTemplates,
) -> Result<Vec<TemplateView>, TemplateOpError> {
    let mut saved: std::collections::HashMap<String, TemplateVersion> = store::current_all(pool)
        .await?
        .into_iter()
        .map(|v| (v.name.clone(), v))
        .collect();
    live.names()
        .map(|name| Ok(view(shipped(live, name)?, name, saved.remove(name))))
        .collect()
}

/// Every saved version of `name`, newest first (empty when it was never saved).
///
/// # Errors
/// `NotFound` for a name that is not a mail template.
pub async fn versions(
    pool: &PgPool,
    live: &LiveTemplates,
    name: &str,
) -> Result<Vec<TemplateView>, TemplateOpError> {
    let shipped = shipped(live, name)?;
    Ok(store::list(pool, name)
        .await?
        .into_iter()
        .map(|v| view(shipped, name, Some(v)))
        .collect())
}

/// Version `version` of `name`.
///
/// # Errors
/// `NotFound` for a name that is not a mail template, `NoVersion` for a version never saved.
pub async fn version(
    pool: &PgPool,
    live: &LiveTemplates,
    name: &str,
    version: i32,
) -> Result<TemplateView, TemplateOpError> {
    let shipped = shipped(live, name)?;
    let saved = store::get(pool, name, Some(version))
        .await?
        .ok_or(TemplateOpError::NoVersion)?;
    Ok(view(shipped, name, Some(saved)))
}

/// Refuses a part too long or holding a NUL, then checks `source` as template `name`
/// (`LiveTemplates::check`, off the async runtime): its sample rendering.
async fn checked(
    live: &LiveTemplates,
    name: &str,
    source: &MailSource,
) -> Result<RenderedMail, TemplateOpError> {
    for part in Part::ALL {
        let text = match part {
            Part::Subject => &source.subject,
            Part::Text => &source.text,
            Part::Html => &source.html,
        };
        let message = if text.len() > MAX_PART_BYTES {
            format!("at most {MAX_PART_BYTES} bytes")
        } else if text.contains('\0') {
            "contains a NUL character".to_owned()
        } else {
            continue;
        };
        return Err(TemplateOpError::Invalid(TemplateError { part, message }));
    }
    live.check(name, source)
        .await?
        .map_err(TemplateOpError::Invalid)
}

/// `source` rendered as template `name` with sample data, saving nothing (the editor's
/// preview): what saving it would check. Anyone who may read templates may preview.
///
/// # Errors
/// `NotFound` for an unknown name; `Invalid` naming the part that does not pass.
pub async fn preview(
    live: &LiveTemplates,
    name: &str,
    source: &MailSource,
) -> Result<RenderedMail, TemplateOpError> {
    shipped(live, name)?;
    checked(live, name, source).await
}

async fn append(
    pool: &PgPool,
    actor: &Actor,
    name: &str,
    source: Option<&MailSource>,
    reverted_from: Option<RevertTo>,
) -> Result<TemplateVersion, TemplateOpError> {
    let mut tx = pool.begin().await?;
    let from_version = match reverted_from {
        Some(RevertTo::Version(n)) => Some(n),
        _ => None,
    };
    let saved = store::append(&mut tx, name, source, from_version, &actor.label()).await?;
    let detail = serde_json::json!({
        "template": name,
        "version": saved.version,
        "change": match reverted_from {
            None => "save",
            Some(RevertTo::Version(_)) => "revert",
            Some(RevertTo::Default) => "revert to default",
        },
        "reverted_from": from_version,
    });
    super::audit::record(&mut *tx, actor, "template", Some(name), detail).await?;
    tx.commit().await?;
    tracing::info!(
        template = name,
        version = saved.version,
        "mail template changed"
    );
    Ok(saved)
}

/// Saves `source` as the next version of `name`, in use by every process from their next
/// look (a worker's next update or test mail).
///
/// # Errors
/// `Forbidden` for a non-admin, `NotFound` for an unknown name, `Invalid` naming the part
/// that does not pass the checks (nothing is saved; the current version stays in use).
pub async fn save(
    pool: &PgPool,
    live: &LiveTemplates,
    actor: &Actor,
    name: &str,
    source: &MailSource,
) -> Result<TemplateView, TemplateOpError> {
    if !actor.is_admin() {
        return Err(TemplateOpError::Forbidden);
    }
    let shipped = shipped(live, name)?;
    checked(live, name, source).await?;
    let saved = append(pool, actor, name, Some(source), None).await?;
    Ok(view(shipped, name, Some(saved)))
}

/// Reverts `name` to an earlier version or to the shipped default, as a new version.
///
/// # Errors
/// `Forbidden` for a non-admin, `NotFound` for an unknown name, `NoVersion` for a version never
/// saved, `Invalid` when that version no longer compiles (a later release changed the data).
pub async fn revert(
    pool: &PgPool,
    live: &LiveTemplates,
    actor: &Actor,
    name: &str,
    to: RevertTo,
) -> Result<TemplateView, TemplateOpError> {
    if !actor.is_admin() {
        return Err(TemplateOpError::Forbidden);
    }
    let shipped = shipped(live, name)?;
    let source = match to {
        RevertTo::Default => None,
        RevertTo::Version(n) => {
            store::get(pool, name, Some(n))
                .await?
                .ok_or(TemplateOpError::NoVersion)?
                .source
        }
    };
    if let Some(source) = &source {
        checked(live, name, source).await?;
    }
    let saved = append(pool, actor, name, source.as_ref(), Some(to)).await?;
    Ok(view(shipped, name, Some(saved)))
}
