//! Updates (campaigns) as staff write them, parsed: every text bounded, every link http(s) or
//! mailto, every list a slug.

use chrono::NaiveDate;
use lettre::message::Mailbox;
use serde::{Deserialize, Serialize};

use super::{text, FieldErrors, ListSlug};

pub const MAX_SUBJECT_CHARS: usize = 200;
pub const MAX_PREHEADER_CHARS: usize = 200;
pub const MAX_INTRO_CHARS: usize = 20_000;
pub const MAX_NEWS_ITEMS: usize = 50;
pub const MAX_TITLE_CHARS: usize = 300;
pub const MAX_SUMMARY_CHARS: usize = 2_000;
pub const MAX_SOURCE_CHARS: usize = 100;
pub const MAX_URL_CHARS: usize = 2_048;
pub const MAX_LISTS_PER_UPDATE: usize = 50;

/// An update as received (JSON), before parsing. Also the shape of a PATCH (absent = unchanged).
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateInput {
    pub subject: Option<String>,
    pub preheader: Option<String>,
    pub intro: Option<String>,
    pub lists: Option<Vec<String>>,
    pub news_items: Option<Vec<NewsItemInput>>,
    /// News desk items to include, in order, after `news_items`; resolved into news items
    /// (`ops::news::expand`) before parsing.
    pub news_item_ids: Option<Vec<uuid::Uuid>>,
    pub template: Option<String>,
    pub from: Option<String>,
    pub reply_to: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewsItemInput {
    pub title: String,
    #[serde(default)]
    pub summary: String,
    #[serde(default)]
    pub source: String,
    pub url: Option<String>,
    pub published_on: Option<String>,
    pub topic: Option<String>,
    /// The news desk record this item was taken from (set by the service, never read from input).
    #[serde(skip)]
    pub news_id: Option<uuid::Uuid>,
}

#[derive(Debug, Clone)]
pub struct NewUpdate {
    pub subject: String,
    pub preheader: String,
    pub intro_markdown: String,
    pub lists: Vec<ListSlug>,
    pub news_items: Vec<NewsItem>,
    pub template: String,
    pub from: Option<Mailbox>,
    pub reply_to: Option<Mailbox>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewsItem {
    pub title: String,
    pub summary: String,
    pub source: String,
    pub url: Option<String>,
    pub published_on: Option<NaiveDate>,
    pub topic: Option<String>,
    /// The news desk record this item was taken from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub news_id: Option<uuid::Uuid>,
}

impl UpdateInput {
    /// `self` with every field that `patch` sets replaced.
    pub fn merged(mut self, patch: UpdateInput) -> UpdateInput {
        macro_rules! take {
            ($($f:ident),*) => { $( if patch.$f.is_some() { self.$f = patch.$f; } )* };
        }
        take!(subject, preheader, intro, lists, template, from, reply_to);
        // The items are replaced as a whole, whichever way the patch names them.
        if patch.news_items.is_some() || patch.news_item_ids.is_some() {
            self.news_items = patch.news_items;
            self.news_item_ids = patch.news_item_ids;
        }
        self
    }

    pub fn parse(&self) -> Result<NewUpdate, FieldErrors> {
        let mut errors = FieldErrors::new();
        let subject = line(
            "subject",
            self.subject.as_deref().unwrap_or(""),
            MAX_SUBJECT_CHARS,
            true,
        )
        .map_err(|e| errors.insert("subject", e))
        .unwrap_or_default();
        let preheader = line(
            "preheader",
            self.preheader.as_deref().unwrap_or(""),
            MAX_PREHEADER_CHARS,
            false,
        )
        .map_err(|e| errors.insert("preheader", e))
        .unwrap_or_default();
        // Markdown: kept as written (not trimmed), bounded, the same characters as any text.
        let intro = self.intro.clone().unwrap_or_default();
        if let Err(e) = multiline("intro", &intro, MAX_INTRO_CHARS) {
            errors.insert("intro", e);
        }
        let lists = self
            .parse_lists()
            .map_err(|e| errors.insert("lists", e))
            .unwrap_or_default();
        let news_items = self
            .parse_items()
            .map_err(|e| errors.insert("news_items", e))
            .unwrap_or_default();
        let template = self.template.clone().unwrap_or_else(|| "update".into());
        if ListSlug::parse(&template).is_err() {
            errors.insert(
                "template",
                "A template name uses a-z, 0-9 and - only.".into(),
            );
        }
        let from = mailbox(self.from.as_deref())
            .map_err(|e| errors.insert("from", e))
            .unwrap_or_default();
        let reply_to = mailbox(self.reply_to.as_deref())
            .map_err(|e| errors.insert("reply_to", e))
            .unwrap_or_default();
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(NewUpdate {
            subject,
            preheader,
            intro_markdown: intro,
            lists,
            news_items,
            template,
            from,
            reply_to,
        })
    }

    fn parse_lists(&self) -> Result<Vec<ListSlug>, String> {
        let raw = self.lists.as_deref().unwrap_or_default();
        if raw.is_empty() {
            return Err("Name at least one list to send to.".into());
        }
        if raw.len() > MAX_LISTS_PER_UPDATE {
            return Err(format!("At most {MAX_LISTS_PER_UPDATE} lists."));
        }
        let mut lists = raw
            .iter()
            .map(|l| ListSlug::parse(l))
            .collect::<Result<Vec<_>, _>>()?;
        lists.sort();
        lists.dedup();
        Ok(lists)
    }

    fn parse_items(&self) -> Result<Vec<NewsItem>, String> {
        let raw = self.news_items.as_deref().unwrap_or_default();
        if raw.len() > MAX_NEWS_ITEMS {
            return Err(format!("At most {MAX_NEWS_ITEMS} news items."));
        }
        raw.iter()
            .enumerate()
            .map(|(i, item)| item.parse().map_err(|e| format!("item {}: {e}", i + 1)))
            .collect()
    }
}

/// A news item's topic: blank is none; otherwise a slug (a-z, 0-9 and -).
///
/// # Errors
/// A sentence naming the topic, when it is not a slug.
pub fn parse_topic(raw: Option<&str>) -> Result<Option<String>, String> {
    match raw.map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => ListSlug::parse(t)
            .map(|slug| Some(slug.as_str().to_owned()))
            .map_err(|_| format!("topic {t:?} uses a-z, 0-9 and - only")),
        None => Ok(None),
    }
}

impl NewsItemInput {
    /// The item, or every field's error by the field's name (a news desk item's answer).
    pub fn parse_fields(&self) -> Result<NewsItem, FieldErrors> {
        let mut errors = FieldErrors::new();
        let mut field = |name: &'static str, result: Result<String, String>| {
            result
                .map_err(|e| errors.insert(name, e))
                .unwrap_or_default()
        };
        let title = field("title", line("title", &self.title, MAX_TITLE_CHARS, true));
        let summary = field(
            "summary",
            multiline("summary", &self.summary, MAX_SUMMARY_CHARS),
        );
        let source = field(
            "source",
            line("source", &self.source, MAX_SOURCE_CHARS, false),
        );
        let url = self
            .url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(|u| field("url", safe_url(u)));
        let published_on = match self
            .published_on
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
        {
            Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|_| {
                    errors.insert(
                        "published_on",
                        format!("published_on {d:?} is not a date like 2026-11-20"),
                    )
                })
                .ok(),
            None => None,
        };
        let topic = parse_topic(self.topic.as_deref())
            .map_err(|e| errors.insert("topic", e))
            .unwrap_or_default();
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(NewsItem {
            title,
            summary,
            source,
            url,
            published_on,
            topic,
            news_id: self.news_id,
        })
    }

    /// The item, or its errors in one sentence (an update's inline item).
    pub fn parse(&self) -> Result<NewsItem, String> {
        self.parse_fields()
            .map_err(|errors| errors.into_values().collect::<Vec<_>>().join(" "))
    }
}

/// One line of text: trimmed, bounded, the character rule for a line (no control character, so
/// never a header break; no noncharacter).
fn line(field: &str, raw: &str, max: usize, required: bool) -> Result<String, String> {
    let s = raw.trim();
    if required && s.is_empty() {
        return Err(format!("The {field} is required."));
    }
    if s.chars().count() > max {
        return Err(format!("The {field} has at most {max} characters."));
    }
    text::check_line(field, s)?;
    Ok(s.to_owned())
}

/// Multi-line text: bounded; the character rule for a text (line breaks and tabs allowed).
fn multiline(field: &str, raw: &str, max: usize) -> Result<String, String> {
    let s = raw.trim();
    if s.chars().count() > max {
        return Err(format!("The {field} has at most {max} characters."));
    }
    text::check_text(field, s)?;
    Ok(s.to_owned())
}

/// Only absolute http, https and mailto links.
pub fn safe_url(raw: &str) -> Result<String, String> {
    if raw.len() > MAX_URL_CHARS {
        return Err(format!("a link has at most {MAX_URL_CHARS} characters"));
    }
    let url = url::Url::parse(raw).map_err(|_| format!("{raw:?} is not an absolute link"))?;
    match url.scheme() {
        "http" | "https" if url.host_str().is_some() => Ok(url.to_string()),
        "mailto" => Ok(url.to_string()),
        _ => Err(format!(
            "{raw:?}: only http, https and mailto links are allowed"
        )),
    }
}

fn mailbox(raw: Option<&str>) -> Result<Option<Mailbox>, String> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => {
            text::check_line("address", s)?;
            s.parse()
                .map(Some)
                .map_err(|_| format!("{s:?} is not an address like Name <a@example.org>"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> UpdateInput {
        serde_json::from_value(serde_json::json!({
            "subject": "Senate hearing on the ICC", "preheader": "This week", "intro": "Hello *all*",
            "lists": ["us-icc-updates"],
            "news_items": [{"title": "A", "summary": "B", "source": "Reuters",
                            "url": "https://example.org/a", "published_on": "2026-11-20", "topic": "congress"}]
        }))
        .unwrap()
    }

    #[test]
    fn noncharacters_are_refused_in_every_text_field_by_name() {
        for bad in [
            '\u{FFFE}',
            '\u{FFFF}',
            '\u{FDD0}',
            '\u{1FFFF}',
            '\u{10FFFE}',
        ] {
            let mut subject = valid();
            subject.subject = Some(format!("Nonchar {bad} subject"));
            let errors = subject.parse().unwrap_err();
            assert!(errors["subject"].contains("noncharacter"), "{errors:?}");
            let mut intro = valid();
            intro.intro = Some(format!("Line one\n{bad}"));
            assert!(intro.parse().unwrap_err().contains_key("intro"));
            let mut item = valid();
            item.news_items.as_mut().unwrap()[0].summary = bad.to_string();
            assert!(!item.parse().unwrap_err().is_empty());
        }
        let mut fine = valid();
        fine.subject = Some("Ends with U+FFFD \u{FFFD} and U+FDF0 \u{FDF0}".into());
        assert!(fine.parse().is_ok());
    }

    #[test]
    fn the_documented_body_parses() {
        let u = valid().parse().unwrap();
        assert_eq!(u.subject, "Senate hearing on the ICC");
        assert_eq!(
            u.news_items[0].published_on,
            NaiveDate::from_ymd_opt(2026, 11, 20)
        );
        assert_eq!(u.template, "update");
    }

    #[test]
    fn unsafe_links_and_header_breaks_are_refused() {
        for (field, patch) in [
            (
                "subject",
                serde_json::json!({"subject": "Hi\r\nBcc: x@example.org"}),
            ),
            (
                "news_items",
                serde_json::json!({"news_items": [{"title": "x", "url": "javascript:alert(1)"}]}),
            ),
            (
                "news_items",
                serde_json::json!({"news_items": [{"title": "x", "url": "data:text/html,hi"}]}),
            ),
            (
                "news_items",
                serde_json::json!({"news_items": [{"title": "x", "published_on": "20 Nov"}]}),
            ),
            ("lists", serde_json::json!({"lists": []})),
            (
                "from",
                serde_json::json!({"from": "a@example.org\r\nBcc: b@example.org"}),
            ),
        ] {
            let input = valid().merged(serde_json::from_value(patch).unwrap());
            let errors = input.parse().unwrap_err();
            assert!(errors.contains_key(field), "{field}: {errors:?}");
        }
    }

    #[test]
    fn safe_url_keeps_http_https_and_mailto() {
        assert!(safe_url("https://www.icc-cpi.int/news").is_ok());
        assert!(safe_url("mailto:press@example.org").is_ok());
        assert!(safe_url("ftp://example.org").is_err());
        assert!(safe_url("/relative").is_err());
    }
}
