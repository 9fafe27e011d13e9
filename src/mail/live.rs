//! The mail templates in use now: the shipped set (`templates.dir` overriding) with the
//! current saved version of each name in its place, read through [`SavedTemplates`] (the
//! database, through `ops::templates`: nothing in `mail` does SQL). Every web and
//! worker process holds one; [`LiveTemplates::current`] asks the database only for a
//! generation number (the count of a small append-only table) and recompiles when it moved,
//! so a process picks up a saved version without a restart. The look of the mails
//! (`domain::Look`) travels with the set: saved beside the templates, reloaded with them, fixed
//! with them for an update (`as_of`), and given to every rendering as `brand`. [`LiveTemplates::check`] is the
//! one way a source staff wrote is compiled and rendered before it is saved or previewed.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, RwLock};

use tokio::sync::Semaphore;

use super::bounds::{self, RenderLimits};
use super::brand::Brand;
use super::templates::{
    shipped_sources, MailSource, MailTemplates, Part, RenderedMail, TemplateError,
};
use crate::config::{BaseUrl, Settings};
use crate::domain::{Look, TemplateVersion};

/// Where the saved versions come from: `ops::templates` implements it for the database pool.
pub trait SavedTemplates {
    /// A number that grows whenever a version is saved (the set is rebuilt when it moved).
    fn generation(&self) -> impl Future<Output = anyhow::Result<i64>> + Send;
    /// The current (highest) version of every name that has one.
    fn current_all(&self) -> impl Future<Output = anyhow::Result<Vec<TemplateVersion>>> + Send;
    /// The version of every name that was current when the newest saved version's id was
    /// `as_of`; none for `None`.
    fn current_all_as_of(
        &self,
        as_of: Option<i64>,
    ) -> impl Future<Output = anyhow::Result<Vec<TemplateVersion>>> + Send;
    /// The look saved last; none before one was saved.
    fn current_look(&self) -> impl Future<Output = anyhow::Result<Option<Look>>> + Send;
    /// The look that was current when the newest saved id of the design (templates and look)
    /// was `as_of`; none for `None`.
    fn look_as_of(
        &self,
        as_of: Option<i64>,
    ) -> impl Future<Output = anyhow::Result<Option<Look>>> + Send;
}

/// Checks of staff-written templates running at once in one process (each on a thread of
/// its own, for at most `templates.max_render_ms` of CPU per part); more wait their turn.
const CHECKS_AT_ONCE: usize = 2;

pub struct LiveTemplates {
    shipped: BTreeMap<String, MailSource>,
    limits: RenderLimits,
    /// What the look's data needs: the organisation's name and the service's base URL.
    site_name: String,
    base_url: BaseUrl,
    checks: Semaphore,
    /// The generation the set was built at (-1: before the first look) and the set.
    current: RwLock<(i64, Arc<MailTemplates>)>,
}

impl LiveTemplates {
    /// The shipped templates (with `settings`' overrides) and the default look, compiled; no
    /// saved version read yet.
    ///
    /// # Errors
    /// As [`MailTemplates::load`].
    pub fn load(settings: &Settings) -> anyhow::Result<Self> {
        let shipped = shipped_sources(&settings.templates.files())?;
        let limits = RenderLimits::from(&settings.templates);
        let site_name = settings
            .mail
            .from
            .name
            .clone()
            .unwrap_or_else(|| "Newsletter".into());
        let base_url = settings.server.base_url.clone();
        let brand = Brand::new(&Look::default(), &site_name, &base_url);
        let compiled = Arc::new(MailTemplates::build(&shipped, limits, brand)?);
        Ok(Self {
            shipped,
            limits,
            site_name,
            base_url,
            checks: Semaphore::new(CHECKS_AT_ONCE),
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

    /// `MailTemplates::check` of `source` as template `name`, on a thread of its own with the
    /// stack its compiling needs, never on the async runtime; the sample rendering is the
    /// preview.
    ///
    /// # Errors
    /// Outer: the checking thread could not run. Inner: why the source was refused.
    pub async fn check(
        &self,
        name: &str,
        source: &MailSource,
    ) -> anyhow::Result<Result<RenderedMail, TemplateError>> {
        for part in Part::ALL {
            if let Err(message) = bounds::check_openers(part.of(source)) {
                return Ok(Err(TemplateError { part, message }));
            }
        }
        let _turn = self.checks.acquire().await?;
        let stack = bounds::compile_stack_bytes(Part::ALL.map(|p| p.of(source)));
        let (name, source, limits) = (name.to_owned(), source.clone(), self.limits);
        bounds::on_own_thread(stack, move || MailTemplates::check(&name, &source, limits)).await
    }

    /// The set as it was when the newest saved id of the design was `as_of` (`None`: the shipped
    /// set and the default look): what an update released then goes out with, whatever was
    /// saved since. Compiled
    /// afresh on each call (a few milliseconds; once per update and worker).
    ///
    /// # Errors
    /// The database cannot be read.
    pub async fn as_of(
        &self,
        saved: &impl SavedTemplates,
        as_of: Option<i64>,
    ) -> anyhow::Result<Arc<MailTemplates>> {
        let look = saved.look_as_of(as_of).await?;
        let saved = saved.current_all_as_of(as_of).await?;
        Ok(Arc::new(self.build(saved, look).await?))
    }

    /// The set with the current saved versions and look, rebuilt off the async runtime when
    /// one was saved.
    ///
    /// # Errors
    /// The database cannot be read.
    pub async fn current(&self, saved: &impl SavedTemplates) -> anyhow::Result<Arc<MailTemplates>> {
        let generation = saved.generation().await?;
        {
            let now = self.current.read().expect("templates lock");
            if now.0 == generation {
                return Ok(Arc::clone(&now.1));
            }
        }
        let look = saved.current_look().await?;
        let compiled = Arc::new(self.build(saved.current_all().await?, look).await?);
        *self.current.write().expect("templates lock") = (generation, Arc::clone(&compiled));
        Ok(compiled)
    }

    /// The shipped set with `saved` versions in their places, built off the async runtime. A
    /// saved version that no longer passes `MailTemplates::check` (a newer release changed the
    /// sample data or the rules) is passed over for the shipped one, with an error in the log.
    /// `look`: the default one for `None`.
    async fn build(
        &self,
        saved: Vec<TemplateVersion>,
        look: Option<Look>,
    ) -> anyhow::Result<MailTemplates> {
        let (mut sources, limits) = (self.shipped.clone(), self.limits);
        let brand = Brand::new(&look.unwrap_or_default(), &self.site_name, &self.base_url);
        tokio::task::spawn_blocking(move || {
            for saved in saved {
                let (Some(source), Some(slot)) = (saved.source, sources.get_mut(&saved.name))
                else {
                    continue;
                };
                match MailTemplates::check(&saved.name, &source, limits) {
                    Ok(_) => *slot = source,
                    Err(e) => tracing::error!(
                        template = saved.name,
                        version = saved.version,
                        error = %e,
                        "a saved mail template no longer passes the checks; using the shipped one"
                    ),
                }
            }
            MailTemplates::build(&sources, limits, brand)
        })
        .await?
    }
}
