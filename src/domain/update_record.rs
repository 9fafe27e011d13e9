//! An update as it is kept (the `updates` table with its lists and news items): content,
//! audience, status and versions.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{NewsItem, NewsItemInput, UpdateInput};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UpdateRecord {
    pub id: Uuid,
    pub subject: String,
    pub preheader: String,
    pub intro: String,
    pub template: String,
    pub from: Option<String>,
    pub reply_to: Option<String>,
    pub status: String,
    pub status_reason: Option<String>,
    /// Its address in the public archive (`/archive/{slug}`), set when it starts sending.
    pub slug: Option<String>,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub lists: Vec<String>,
    /// The lists' names, in the order of `lists` (for the List-Id header).
    #[serde(skip)]
    pub list_names: Vec<String>,
    pub news_items: Vec<NewsItem>,
    /// The admin who asked to send it, while it awaits a second admin's approval.
    pub approval_requested_by: Option<Uuid>,
    pub approved_by: Option<Uuid>,
    /// The IANA zone its schedule was given in (the staff area shows the time back in it).
    pub time_zone: Option<String>,
    /// Its content's version: 1 when created, one more with every change of its content or
    /// audience (`update_versions` keeps each).
    pub version: i32,
    /// The member of staff who made the current version (none for an API token, the command
    /// line or a digest schedule): an approver must be someone else.
    pub changed_by: Option<Uuid>,
    /// The version an admin approved, with the lists and the recipient count it was approved
    /// for; cleared when it goes back to draft.
    pub approved_version: Option<i32>,
    pub approved_lists: Option<Vec<String>>,
    pub approved_recipients: Option<i64>,
    /// The version that went out, fixed when it started.
    pub sent_version: Option<i32>,
    /// The mail templates it goes out with: the newest saved template version's id when it was
    /// confirmed or approved (else when it started), 0 when only the shipped templates existed
    /// then; `None` while not fixed yet.
    #[serde(skip)]
    pub templates_as_of: Option<i64>,
    /// When approval was last asked for: an approval answers that request and no other.
    pub approval_requested_at: Option<DateTime<Utc>>,
}

/// What one version of an update holds: the content every recipient gets and its audience, as
/// `update_versions.content` keeps it (`store::updates` writes it as JSON of this shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct UpdateContent {
    pub subject: String,
    pub preheader: String,
    pub intro: String,
    pub template: String,
    pub from: Option<String>,
    pub reply_to: Option<String>,
    /// List slugs, sorted.
    pub lists: Vec<String>,
    pub news_items: Vec<NewsItem>,
}

impl UpdateRecord {
    /// Its content and audience, as a version keeps them.
    pub fn content(&self) -> UpdateContent {
        UpdateContent {
            subject: self.subject.clone(),
            preheader: self.preheader.clone(),
            intro: self.intro.clone(),
            template: self.template.clone(),
            from: self.from.clone(),
            reply_to: self.reply_to.clone(),
            lists: self.lists.clone(),
            news_items: self.news_items.clone(),
        }
    }

    /// The record as input again, to merge a PATCH into.
    pub fn as_input(&self) -> UpdateInput {
        UpdateInput {
            subject: Some(self.subject.clone()),
            preheader: Some(self.preheader.clone()),
            intro: Some(self.intro.clone()),
            lists: Some(self.lists.clone()),
            news_items: Some(
                self.news_items
                    .iter()
                    .map(|n| NewsItemInput {
                        title: n.title.clone(),
                        summary: n.summary.clone(),
                        source: n.source.clone(),
                        url: n.url.clone(),
                        published_on: n.published_on.map(|d| d.to_string()),
                        topic: n.topic.clone(),
                        news_id: n.news_id,
                    })
                    .collect(),
            ),
            news_item_ids: None,
            template: Some(self.template.clone()),
            from: self.from.clone(),
            reply_to: self.reply_to.clone(),
        }
    }
}
