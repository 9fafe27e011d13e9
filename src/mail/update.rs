//! An update's mail: the update made ready once (addresses parsed, Markdown rendered, the mail
//! templates of that moment fixed), then rendered for each recipient, through a stencil where
//! the template allows. The worker composes every update mail with it and the staff preview
//! (`ops::updates::preview`) renders with it, so what staff see is what the subscriber gets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use lettre::message::Mailbox;
use serde::Serialize;
use uuid::Uuid;

use super::{list_id, markdown, MailTemplates, RenderedMail, Stencil};
use crate::config::Settings;
use crate::domain::subscriber_link::{self, LinkPurpose};
use crate::domain::{Contact, NewsItem, UpdateRecord};

/// What the subject of every test mail starts with.
pub const TEST_MARK: &str = "[Test]";

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
    /// Whether its counted links carry each reader's activity token ([`ACTIVITY_MARK`] stands
    /// where it goes, `engagement.remember_last_activity`): every mail is then rendered in full.
    pub personal_links: bool,
    /// The update rendered once per variant (with or without a name; which news items),
    /// with holes for the personal fields; `None` where the template needs a full rendering.
    stencils: Mutex<HashMap<StencilKey, Option<Arc<Stencil>>>>,
}

/// What varies between recipients beyond their own fields: whether they have a name, and
/// which of the update's news items (by index) their topics give them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct StencilKey {
    named: bool,
    items: Vec<usize>,
}

/// An update made ready to render (for a send, a test mail or the staff preview).
pub fn prepare_update(
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
    let personal_links = record.intro.contains(ACTIVITY_MARK)
        || record
            .news_items
            .iter()
            .any(|i| i.url.as_deref().is_some_and(|u| u.contains(ACTIVITY_MARK)));
    Ok(PreparedUpdate {
        personal_links,
        intro_html: markdown::to_safe_html(&record.intro),
        from,
        reply_to,
        list_id: list_id(list_name, first_list, host),
        feedback_id: format!("{}:{first_list}:update:{host}", record.id.simple()),
        // Its page in the public archive once it is sending; a test mail of a draft, which
        // has no page yet, links to the archive.
        web_url: settings.server.base_url.join(&match &record.slug {
            Some(slug) => format!("/archive/{slug}"),
            None => "/archive".to_owned(),
        }),
        test: false,
        stencils: Mutex::default(),
        templates,
        record,
    })
}

/// Stands in a counted link (`/l/{code}?a=` + this) of an update about to go out while
/// `engagement.remember_last_activity` is on; each reader's mail has their activity token
/// there. Letters only: Markdown, HTML and URL encoding leave it as it is.
pub const ACTIVITY_MARK: &str = "zqreaderactivityzq";

/// A recipient's signed unsubscribe and manage links, and their activity token while
/// `engagement.remember_last_activity` is on.
pub struct Links {
    pub unsubscribe: String,
    pub manage: String,
    pub activity: Option<String>,
    /// `unsubscribe+<token>@<bounce.return_path_domain>`, when that domain is set.
    pub mailto: Option<String>,
}

impl Links {
    pub fn for_subscriber(settings: &Settings, contact: &Contact) -> Self {
        Self::for_id(settings, contact.id, contact.link_version)
    }

    pub fn for_id(settings: &Settings, id: Uuid, version: i32) -> Self {
        let secret = settings.security.secret_key.expose().as_bytes();
        let base = &settings.server.base_url;
        let unsubscribe = subscriber_link::sign(secret, LinkPurpose::Unsubscribe, id, version);
        let manage = subscriber_link::sign(secret, LinkPurpose::Manage, id, version);
        let activity = settings.engagement.remember_last_activity.then(|| {
            subscriber_link::sign(secret, LinkPurpose::Activity, id, version)
                .as_str()
                .to_owned()
        });
        let domain = &settings.bounce.return_path_domain;
        let mailto = (!domain.is_empty())
            .then(|| crate::domain::mailto_unsubscribe::address(secret, id, version, domain));
        Self {
            unsubscribe: base.join(&format!("/unsubscribe/{}", unsubscribe.as_str())),
            manage: base.join(&format!("/manage/{}", manage.as_str())),
            activity,
            mailto,
        }
    }
}

#[derive(Serialize)]
struct UpdateMail<'a> {
    subject: &'a str,
    preheader: &'a str,
    intro: &'a str,
    intro_html: &'a str,
    news_items: &'a [&'a NewsItem],
    name: Option<&'a str>,
    email: &'a str,
    unsubscribe_url: String,
    manage_url: &'a str,
    web_url: &'a str,
    postal_address: &'a str,
}

/// What an update's template is given for one recipient.
fn update_mail<'a>(
    settings: &'a Settings,
    update: &'a PreparedUpdate,
    items: &'a [&'a NewsItem],
    to: &'a str,
    name: Option<&'a str>,
    links: &'a Links,
) -> UpdateMail<'a> {
    let record = &update.record;
    UpdateMail {
        subject: &record.subject,
        preheader: &record.preheader,
        intro: &record.intro,
        intro_html: &update.intro_html,
        news_items: items,
        name,
        email: to,
        unsubscribe_url: format!("{}?update={}", links.unsubscribe, record.id),
        manage_url: &links.manage,
        web_url: &update.web_url,
        postal_address: &settings.mail.postal_address,
    }
}

/// An update's mail rendered for `contact` by the same code a send uses (the staff preview);
/// `None` when none of its news items is in the person's topics, so they would get no mail.
pub fn render_update_for(
    settings: &Settings,
    update: &PreparedUpdate,
    contact: &Contact,
) -> anyhow::Result<Option<RenderedMail>> {
    let Some(items) = items_for(&update.record.news_items, contact.topics.as_deref()) else {
        return Ok(None);
    };
    let links = Links::for_subscriber(settings, contact);
    render_update(
        settings,
        update,
        &items,
        (&contact.email, contact.name.as_deref()),
        &links,
    )
    .map(Some)
}

/// The update rendered in full for one recipient with `items`; a test mail's subject marked
/// with [`TEST_MARK`].
pub fn render_update(
    settings: &Settings,
    update: &PreparedUpdate,
    items: &[&NewsItem],
    (to, name): (&str, Option<&str>),
    links: &Links,
) -> anyhow::Result<RenderedMail> {
    let mut data = update_mail(settings, update, items, to, name, links);
    // Counted links that carry the reader's activity token: this reader's copy of the body.
    let token = links.activity.as_deref().unwrap_or("");
    let personal = update.personal_links.then(|| {
        let items: Vec<NewsItem> = items
            .iter()
            .map(|item| NewsItem {
                url: item.url.as_ref().map(|u| u.replace(ACTIVITY_MARK, token)),
                ..(*item).clone()
            })
            .collect();
        (
            update.record.intro.replace(ACTIVITY_MARK, token),
            update.intro_html.replace(ACTIVITY_MARK, token),
            items,
        )
    });
    let personal_items: Vec<&NewsItem>;
    if let Some((intro, intro_html, items)) = &personal {
        personal_items = items.iter().collect();
        data.intro = intro;
        data.intro_html = intro_html;
        data.news_items = &personal_items;
    }
    let mut rendered = update.templates.render(&update.record.template, &data)?;
    if update.test {
        rendered.subject = format!("{TEST_MARK} {}", rendered.subject);
    }
    Ok(rendered)
}

/// The update rendered once for every recipient with `items` and a name or none: made on first
/// use, kept with the prepared update. `None`: this template needs a rendering per recipient.
pub fn update_stencil(
    settings: &Settings,
    update: &PreparedUpdate,
    items: &[&NewsItem],
    named: bool,
) -> anyhow::Result<Option<Arc<Stencil>>> {
    let key = StencilKey {
        named,
        items: items
            .iter()
            .filter_map(|item| {
                update
                    .record
                    .news_items
                    .iter()
                    .position(|i| std::ptr::eq(i, *item))
            })
            .collect(),
    };
    if update.personal_links {
        // Each reader's links differ inside the shared body: rendered per recipient.
        return Ok(None);
    }
    if let Some(known) = update.stencils.lock().expect("stencil lock").get(&key) {
        return Ok(known.clone());
    }
    let stencil = Stencil::new(&update.templates, &update.record.template, 4, |holes| {
        let links = Links {
            unsubscribe: String::new(),
            manage: holes[3].clone(),
            activity: None,
            mailto: None,
        };
        let mut data = update_mail(
            settings,
            update,
            items,
            &holes[1],
            named.then_some(holes[0].as_str()),
            &links,
        );
        data.unsubscribe_url.clone_from(&holes[2]);
        serde_json::to_value(data).unwrap_or_default()
    })?
    .map(Arc::new);
    if stencil.is_none() {
        tracing::warn!(
            template = %update.record.template,
            "this template uses personal fields beyond plain substitution: rendered per recipient"
        );
    }
    update
        .stencils
        .lock()
        .expect("stencil lock")
        .insert(key, stencil.clone());
    Ok(stencil)
}

/// The news items for someone who chose `topics` (None: all). Items without a topic go to all.
/// `None` when the update has items but none for them: they get no mail of it.
pub fn items_for<'a>(
    items: &'a [NewsItem],
    topics: Option<&[String]>,
) -> Option<Vec<&'a NewsItem>> {
    let chosen: Vec<&NewsItem> = items
        .iter()
        .filter(|item| match (topics, &item.topic) {
            (Some(chosen), Some(topic)) => chosen.contains(topic),
            _ => true,
        })
        .collect();
    (items.is_empty() || !chosen.is_empty()).then_some(chosen)
}
