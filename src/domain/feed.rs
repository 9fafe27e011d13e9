//! A fetched RSS 2.0 or Atom document turned into news desk items (feed-rs parses it). Each
//! entry keeps a key for deduplication: its GUID (RSS `guid`, Atom `id`), else its link.

use feed_rs::model::Text;

use super::update::{NewsItem, NewsItemInput};

/// Longest feed title kept (the item's `source`).
const MAX_SOURCE: usize = 100;
const MAX_TITLE: usize = 300;
const MAX_SUMMARY: usize = 2000;
/// Most entries taken from one fetch.
pub const MAX_ENTRIES: usize = 200;

/// A parsed feed: its title and its usable entries, in document order.
#[derive(Debug)]
pub struct ParsedFeed {
    pub title: String,
    pub entries: Vec<FeedEntry>,
}

#[derive(Debug)]
pub struct FeedEntry {
    /// `guid:<GUID>` or `link:<URL>`: one news item per key and feed.
    pub key: String,
    pub item: NewsItem,
}

/// Parses `body`; `topic` is given to every item. Entries without a title or without both a
/// GUID and a link are left out; an entry's link that is not http(s) is dropped.
pub fn parse_feed(body: &[u8], topic: Option<&str>) -> Result<ParsedFeed, String> {
    let parser = feed_rs::parser::Builder::new()
        // Called only when an entry has no id: fall back to its link (empty: no key).
        .id_generator(|links, _, _| {
            links
                .first()
                .map(|l| format!("\u{0}link:{}", l.href.trim()))
                .unwrap_or_default()
        })
        .build();
    let feed = parser
        .parse(body)
        .map_err(|e| format!("not a valid RSS or Atom feed: {e}"))?;
    let source = feed
        .title
        .as_ref()
        .map(plain)
        .map(|t| cut(&t, MAX_SOURCE))
        .unwrap_or_default();
    let mut entries = Vec::new();
    for entry in feed.entries.into_iter().take(MAX_ENTRIES) {
        let key = match entry.id.strip_prefix('\u{0}') {
            Some("") => continue,
            Some(link) => link.to_owned(),
            None if entry.id.trim().is_empty() => continue,
            None => format!("guid:{}", entry.id.trim()),
        };
        let Some(title) = entry.title.as_ref().map(plain).filter(|t| !t.is_empty()) else {
            continue;
        };
        let url = entry
            .links
            .iter()
            .map(|l| l.href.trim())
            .find(|h| h.starts_with("https://") || h.starts_with("http://"))
            .map(str::to_owned);
        let summary = entry
            .summary
            .as_ref()
            .map(plain)
            .or_else(|| {
                entry
                    .content
                    .as_ref()
                    .and_then(|c| c.body.as_deref())
                    .map(strip_tags)
            })
            .unwrap_or_default();
        let input = NewsItemInput {
            title: cut(&title, MAX_TITLE),
            summary: cut(&summary, MAX_SUMMARY),
            source: source.clone(),
            url,
            published_on: entry
                .published
                .or(entry.updated)
                .map(|t| t.date_naive().to_string()),
            topic: topic.map(str::to_owned),
            news_id: None,
        };
        // An entry our own rules refuse (e.g. an over-long link) is left out, not the feed.
        if let Ok(item) = input.parse() {
            entries.push(FeedEntry { key, item });
        }
    }
    Ok(ParsedFeed {
        title: source,
        entries,
    })
}

/// A text construct as plain text: HTML loses its tags and entities.
fn plain(text: &Text) -> String {
    if text.content_type.essence().to_string().contains("html") {
        strip_tags(&text.content)
    } else {
        collapse(&text.content)
    }
}

/// Text of an HTML fragment: tags removed (block-level ones leave a space), common entities
/// decoded, white space collapsed.
fn strip_tags(html: &str) -> String {
    const BLOCKS: &[&str] = &[
        "p",
        "br",
        "div",
        "li",
        "ul",
        "ol",
        "tr",
        "td",
        "th",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "hr",
        "table",
        "section",
        "article",
    ];
    let mut out = String::with_capacity(html.len());
    let mut tag: Option<String> = None;
    for c in html.chars() {
        match (&mut tag, c) {
            (None, '<') => tag = Some(String::new()),
            (Some(name), '>') => {
                let name = name
                    .trim_start_matches('/')
                    .split(|c: char| c.is_whitespace() || c == '/')
                    .next()
                    .unwrap_or("")
                    .to_ascii_lowercase();
                if BLOCKS.contains(&name.as_str()) {
                    out.push(' ');
                }
                tag = None;
            }
            (Some(name), c) => name.push(c),
            (None, c) => out.push(c),
        }
    }
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#039;", "'")
        .replace("&apos;", "'")
        .replace("&amp;", "&");
    collapse(&decoded)
}

fn collapse(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

/// At most `max` characters, cut at a word with an ellipsis when longer.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let head: String = s.chars().take(max - 1).collect();
    let head = head.rsplit_once(' ').map_or(head.as_str(), |(h, _)| h);
    format!("{}…", head.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_items_become_news_items_keyed_by_guid_else_link() {
        let rss = br#"<?xml version="1.0"?><rss version="2.0"><channel><title>The Court &amp; you</title>
            <item><title>Ruling today</title><link>https://icc.example/r1</link>
              <guid>r-1</guid><description>&lt;p&gt;A &lt;em&gt;ruling&lt;/em&gt; came.&lt;/p&gt;</description>
              <pubDate>Mon, 30 Nov 2026 10:00:00 GMT</pubDate></item>
            <item><title>No guid</title><link>https://icc.example/r2</link></item>
            <item><title>Neither</title></item>
            <item><description>no title</description><guid>x</guid></item>
            <item><title>Bad link</title><link>javascript:alert(1)</link><guid>r-3</guid></item>
            </channel></rss>"#;
        let feed = parse_feed(rss, Some("court")).unwrap();
        assert_eq!(feed.title, "The Court & you");
        let keys: Vec<_> = feed.entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            ["guid:r-1", "link:https://icc.example/r2", "guid:r-3"]
        );
        let first = &feed.entries[0].item;
        assert_eq!(first.title, "Ruling today");
        assert_eq!(first.summary, "A ruling came.");
        assert_eq!(first.source, "The Court & you");
        assert_eq!(first.topic.as_deref(), Some("court"));
        assert_eq!(first.published_on.unwrap().to_string(), "2026-11-30");
        assert_eq!(feed.entries[2].item.url, None);
    }

    #[test]
    fn broken_xml_is_an_error_and_long_texts_are_cut() {
        assert!(parse_feed(b"<rss><channel><item>", None).is_err());
        assert!(parse_feed(b"hello", None).is_err());
        let long = format!(
            r#"<feed xmlns="http://www.w3.org/2005/Atom"><title>A</title><id>f</id>
               <entry><id>e1</id><title>{}</title><summary>{}</summary></entry></feed>"#,
            "word ".repeat(100),
            "more ".repeat(1000)
        );
        let feed = parse_feed(long.as_bytes(), None).unwrap();
        let item = &feed.entries[0].item;
        assert!(item.title.chars().count() <= MAX_TITLE && item.title.ends_with('…'));
        assert!(item.summary.chars().count() <= MAX_SUMMARY);
        assert_eq!(feed.entries[0].key, "guid:e1");
    }
}
