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

/// Prepared updates by id. An update's content cannot change once it is sending, so an entry
/// is reused for every mail of it; a test mail of a draft asks for a fresh one. Each
/// preparation takes the mail templates current at that moment (`LiveTemplates::current`).
#[derive(Default)]
pub struct PreparedCache(Mutex<HashMap<Uuid, Arc<PreparedUpdate>>>);

impl PreparedCache {
    pub async fn get(
        &self,
        pool: &sqlx::PgPool,
        settings: &Settings,
        templates: &LiveTemplates,
        id: Uuid,
        fresh: bool,
    ) -> Result<Arc<PreparedUpdate>, ComposeError> {
        if !fresh {
            if let Some(hit) = self.0.lock().await.get(&id) {
                return Ok(Arc::clone(hit));
            }
        }
        let record = updates::get(pool, id)
            .await
            .map_err(ComposeError::Database)?
            .ok_or_else(|| ComposeError::Broken(anyhow::anyhow!("update {id} is gone")))?;
        let templates = templates
            .current(pool)
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
        stencils: std::sync::Mutex::default(),
        templates,
        record,
    })
}
