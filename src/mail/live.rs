//! The mail templates in use now: the shipped set (`templates.dir` overriding) with the
//! current saved version of each name (`store::mail_templates`) in its place. Every web and
//! worker process holds one; [`LiveTemplates::current`] asks the database only for a
//! generation number (the count of a small append-only table) and recompiles when it moved,
//! so a process picks up a saved version without a restart.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use sqlx::PgPool;

use super::templates::{shipped_sources, MailSource, MailTemplates};
use crate::store::mail_templates as store;
use crate::template_files::TemplateFiles;

pub struct LiveTemplates {
    shipped: BTreeMap<String, MailSource>,
    /// The generation the set was built at (-1: before the first look) and the set.
    current: RwLock<(i64, Arc<MailTemplates>)>,
}

impl LiveTemplates {
    /// The shipped templates (with `files`' overrides), compiled; no saved version read yet.
    ///
    /// # Errors
    /// As [`MailTemplates::load`].
    pub fn load(files: &TemplateFiles) -> anyhow::Result<Self> {
        let shipped = shipped_sources(files)?;
        let compiled = Arc::new(MailTemplates::build(&shipped)?);
        Ok(Self {
            shipped,
            current: RwLock::new((-1, compiled)),
        })
    }

    /// The shipped source of `name` (what a revert to the default restores); `None` for a
    /// name that is not a mail template.
    pub fn shipped(&self, name: &str) -> Option<&MailSource> {
        self.shipped.get(name)
    }

    /// Every template name, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.shipped.keys().map(String::as_str)
    }

    /// The set as last loaded, without asking the database (template names never change
    /// while a process runs; their content may have).
    pub fn cached(&self) -> Arc<MailTemplates> {
        Arc::clone(&self.current.read().expect("templates lock").1)
    }

    /// The set as it was when the newest saved version's id was `as_of` (`None`: the shipped
    /// set): what an update that started then goes out with, whatever was saved since.
    /// Compiled afresh on each call (a few milliseconds; once per update and worker).
    pub async fn as_of(
        &self,
        pool: &PgPool,
        as_of: Option<i64>,
    ) -> anyhow::Result<Arc<MailTemplates>> {
        Ok(Arc::new(
            self.build(store::current_all_as_of(pool, as_of).await?)?,
        ))
    }

    /// The shipped set with `saved` versions in their places (one that no longer compiles is
    /// left out, with an error logged).
    fn build(&self, saved: Vec<store::TemplateVersion>) -> anyhow::Result<MailTemplates> {
        let mut sources = self.shipped.clone();
        for saved in saved {
            let (Some(source), Some(slot)) = (saved.source, sources.get_mut(&saved.name)) else {
                continue;
            };
            match MailTemplates::check(&saved.name, &source) {
                Ok(()) => *slot = source,
                Err(e) => tracing::error!(
                    template = saved.name,
                    version = saved.version,
                    error = %e,
                    "a saved mail template no longer compiles; using the shipped one"
                ),
            }
        }
        MailTemplates::build(&sources)
    }

    /// The set with the current saved versions. A saved version that no longer compiles or
    /// renders (a newer release changed the sample data) is passed over for the shipped one,
    /// with an error in the log.
    ///
    /// # Errors
    /// The database cannot be read.
    pub async fn current(&self, pool: &PgPool) -> anyhow::Result<Arc<MailTemplates>> {
        let generation = store::generation(pool).await?;
        {
            let now = self.current.read().expect("templates lock");
            if now.0 == generation {
                return Ok(Arc::clone(&now.1));
            }
        }
        let compiled = Arc::new(self.build(store::current_all(pool).await?)?);
        *self.current.write().expect("templates lock") = (generation, Arc::clone(&compiled));
        Ok(compiled)
    }
}
