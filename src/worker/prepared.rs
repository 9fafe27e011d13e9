//! An update made ready to render: loaded once, Markdown rendered once, shared by every mail.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use lettre::message::Mailbox;
use tokio::sync::Mutex;
use uuid::Uuid;

use super::delivery::ComposeError;
use crate::config::Settings;
use crate::mail::{markdown, LiveTemplates, MailTemplates, Stencil};
use crate::store::updates::{self, UpdateRecord};

/// Most prepared updates kept at once.
const CACHE_LIMIT: usize = 64;

pub struct PreparedUpdate {
    pub record: UpdateRecord,
    pub intro_html: String,
    pub from: Mailbox,
    pub reply_to: Option<Mailbox>,
    /// The List-Id value.
    pub list_id: String,
    pub feedback_id: String,
    pub web_url: String,
    /// The mail templates as they were when it was prepared: every mail of one update is
    /// rendered with the same version.
    pub templates: Arc<MailTemplates>,
    /// A test mail's: each rendered in full, its subject marked with [`TEST_MARK`].
    pub test: bool,
    /// The update rendered once per variant (with or without a name; which news items),
    /// with holes for the personal fields; `None` where the template needs a full rendering.
    pub stencils: std::sync::Mutex<HashMap<StencilKey, Option<Arc<Stencil>>>>,
}

/// What varies between recipients beyond their own fields: whether they have a name, and
/// which of the update's news items (by index) their topics give them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StencilKey {
    pub named: bool,
    pub items: Vec<usize>,
}

/// Prepared sends by update id. Only an update that started enters it: its version
/// (`sent_version`) and its mail templates (`templates_as_of`) were fixed at its start and never
/// change after, so its id names exactly one (update, version, templates) and an entry serves
/// every mail of it. Test mails and previews never read or fill it ([`for_test`],
/// `ops::updates::preview`): what staff tried before an edit cannot become what is sent.
#[derive(Default)]
pub struct PreparedCache(Mutex<HashMap<Uuid, Arc<PreparedUpdate>>>);

impl PreparedCache {
    /// The update as it goes out: the version fixed at its start, with the mail templates of
    /// that moment.
    pub async fn for_send(
        &self,
        pool: &sqlx::PgPool,
        settings: &Settings,
        templates: &LiveTemplates,
        id: Uuid,
    ) -> Result<Arc<PreparedUpdate>, ComposeError> {
        if let Some(hit) = self.0.lock().await.get(&id) {
            return Ok(Arc::clone(hit));
        }
        let current = load(pool, id, None).await?;
        let Some(version) = current
            .sent_version
            .filter(|_| current.started_at.is_some())
        else {
            return Err(ComposeError::Broken(anyhow::anyhow!(
                "update {id} has not started: nothing of it is sent"
            )));
        };
        let record = load(pool, id, Some(version)).await?;
        let templates = templates
            .as_of(pool, record.templates_as_of)
            .await
            .map_err(ComposeError::Database)?;
        let prepared =
            Arc::new(prepare(settings, templates, record).map_err(ComposeError::Broken)?);
        let mut cache = self.0.lock().await;
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(id, Arc::clone(&prepared));
        Ok(prepared)
    }
}

/// A test mail of version `version` of update `id` (the one staff saw when they asked), with
/// the mail templates current now; each mail of it has its subject marked [`TEST_MARK`].
/// Never cached.
pub async fn for_test(
    pool: &sqlx::PgPool,
    settings: &Settings,
    templates: &LiveTemplates,
    id: Uuid,
    version: Option<i32>,
) -> Result<PreparedUpdate, ComposeError> {
    let record = load(pool, id, version).await?;
    let templates = templates
        .current(pool)
        .await
        .map_err(ComposeError::Database)?;
    let mut prepared = prepare(settings, templates, record).map_err(ComposeError::Broken)?;
    prepared.test = true;
    Ok(prepared)
}

/// What the subject of every test mail starts with.
pub const TEST_MARK: &str = "[Test]";

/// Update `id` at `version` (its current one for `None`).
async fn load(
    pool: &sqlx::PgPool,
    id: Uuid,
    version: Option<i32>,
) -> Result<UpdateRecord, ComposeError> {
    let found = match version {
        None => updates::get(pool, id).await,
        Some(v) => updates::get_version(pool, id, v).await,
    };
    found.map_err(ComposeError::Database)?.ok_or_else(|| {
        ComposeError::Broken(anyhow::anyhow!("update {id} (version {version:?}) is gone"))
    })
}

/// An update made ready to render (also for the staff preview).
pub fn prepare(
    settings: &Settings,
    templates: Arc<MailTemplates>,
    record: UpdateRecord,
) -> anyhow::Result<PreparedUpdate> {
    let from = match &record.from {
        Some(f) => f.parse().context("the update's from address")?,
        None => settings.mail.from.clone(),
    };
    let reply_to = match &record.reply_to {
        Some(r) => Some(r.parse().context("the update's reply-to address")?),
        None => settings.mail.reply_to.clone(),
    };
    let host = settings.server.base_url.host();
    let first_list = record.lists.first().map_or("updates", String::as_str);
    let list_name = record.list_names.first().map(String::as_str);
    Ok(PreparedUpdate {
        intro_html: markdown::to_safe_html(&record.intro),
        from,
        reply_to,
        list_id: crate::mail::list_id(list_name, first_list, host),
        feedback_id: format!("{}:{first_list}:update:{host}", record.id.simple()),
        // Its page in the public archive once it is sending; a test mail of a draft, which
        // has no page yet, links to the archive.
        web_url: settings.server.base_url.join(&match &record.slug {
            Some(slug) => format!("/archive/{slug}"),
            None => "/archive".to_owned(),
        }),
        test: false,
        stencils: std::sync::Mutex::default(),
        templates,
        record,
    })
}
