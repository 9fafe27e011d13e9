//! An update made ready to render (`mail::PreparedUpdate`): loaded once, Markdown rendered
//! once, shared by every mail.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Mutex;
use uuid::Uuid;

use super::delivery::ComposeError;
use crate::config::Settings;
use crate::mail::{prepare_update, LiveTemplates, PreparedUpdate};
use crate::store::updates::{self, UpdateRecord};

/// Most prepared updates kept at once.
const CACHE_LIMIT: usize = 64;

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
        let mut record = load(pool, id, Some(version)).await?;
        crate::ops::engagement::count_links(pool, settings, &mut record)
            .await
            .map_err(ComposeError::Database)?;
        let templates = templates
            .as_of(pool, record.templates_as_of)
            .await
            .map_err(ComposeError::Database)?;
        let prepared =
            Arc::new(prepare_update(settings, templates, record).map_err(ComposeError::Broken)?);
        let mut cache = self.0.lock().await;
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(id, Arc::clone(&prepared));
        Ok(prepared)
    }
}

/// A test mail of version `version` of update `id` (the one staff saw when they asked), with
/// the mail templates current now; each mail of it has its subject marked `mail::TEST_MARK`.
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
    let mut prepared = prepare_update(settings, templates, record).map_err(ComposeError::Broken)?;
    prepared.test = true;
    Ok(prepared)
}

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
