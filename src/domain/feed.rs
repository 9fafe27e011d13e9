//! A fetched RSS 2.0 or Atom document turned into news desk items (feed-rs parses it). Each
//! entry keeps a key for deduplication: its GUID (RSS `guid`, Atom `id`), else its link.
//!
//! Links are made absolute the way RFC 4287 §2 and XML Base say: a relative link is resolved
//! against the `xml:base` in scope (the entry's, else the channel's or feed's, each itself
//! resolved against the one above), else against the URL the feed was read from (after
//! redirects). feed-rs does the resolving, given that URL. Texts are cleaned to the character
//! rule (`domain::text`): a fetched feed's bad characters are dropped, never the feed.

use std::time::Duration;

use feed_rs::model::{Link, Text};

use super::text;
use super::update::{NewsItem, NewsItemInput};

/// Longest feed title kept (the item's `source`).
const MAX_SOURCE: usize = 100;
const MAX_TITLE: usize = 300;
const MAX_SUMMARY: usize = 2000;
/// Most entries taken from one fetch.
pub const MAX_ENTRIES: usize = 200;
/// A feed's own poll interval, in minutes: 5 minutes to 7 days.
pub const POLL_MINUTES: std::ops::RangeInclusive<i32> = 5..=10_080;
/// The longest a failing feed waits between polls (unless its own interval is longer).
pub const MAX_BACKOFF: Duration = Duration::from_secs(24 * 60 * 60);

/// The wait before the next poll of a feed read every `interval` whose last `failures` polls
/// failed in a row: the interval doubled for each failure (2×, 4×, 8×, …), at most
/// [`MAX_BACKOFF`], never less than the interval itself.
pub fn next_wait(interval: Duration, failures: u32) -> Duration {
    let doubled = interval.saturating_mul(1 << failures.min(24));
    doubled.min(MAX_BACKOFF).max(interval)
}

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

/// Parses `body`, read from `location` (the feed's URL after redirects: relative links are
/// resolved against it); `topic` is given to every item. Entries without a title or without
/// both a GUID and a link are left out; an entry whose link is not http(s) once resolved
/// (`javascript:`, `data:`, …) keeps no link.
pub fn parse_feed(
    body: &[u8],
    location: Option<&str>,
    topic: Option<&str>,
) -> Result<ParsedFeed, String> {
    let parser = feed_rs::parser::Builder::new()
        .base_uri(location.filter(|l| url::Url::parse(l).is_ok()))
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
        let url = entry_link(&entry.links);
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

/// The entry's web page: its first http(s) link that is an alternate (Atom `rel="alternate"`,
/// or no `rel`, as RSS's `<link>`), else its first http(s) link of any kind.
fn entry_link(links: &[Link]) -> Option<String> {
    let web = |l: &&Link| {
        url::Url::parse(l.href.trim())
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
    };
    let alternate = |l: &&Link| l.rel.as_deref().is_none_or(|r| r == "alternate");
    links
        .iter()
        .filter(web)
        .find(alternate)
        .or_else(|| links.iter().find(web))
        .map(|l| l.href.trim().to_owned())
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

/// White space collapsed to single spaces, and what the character rule refuses dropped.
fn collapse(s: &str) -> String {
    text::clean(&s.split_whitespace().collect::<Vec<_>>().join(" "))
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
        let feed = parse_feed(rss, None, Some("court")).unwrap();
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
        assert!(parse_feed(b"<rss><channel><item>", None, None).is_err());
        assert!(parse_feed(b"hello", None, None).is_err());
        let long = format!(
            r#"<feed xmlns="http://www.w3.org/2005/Atom"><title>A</title><id>f</id>
               <entry><id>e1</id><title>{}</title><summary>{}</summary></entry></feed>"#,
            "word ".repeat(100),
            "more ".repeat(1000)
        );
        let feed = parse_feed(long.as_bytes(), None, None).unwrap();
        let item = &feed.entries[0].item;
        assert!(item.title.chars().count() <= MAX_TITLE && item.title.ends_with('…'));
        assert!(item.summary.chars().count() <= MAX_SUMMARY);
        assert_eq!(feed.entries[0].key, "guid:e1");
    }

    fn links(feed: &ParsedFeed) -> Vec<Option<&str>> {
        feed.entries.iter().map(|e| e.item.url.as_deref()).collect()
    }

    #[test]
    fn relative_rss_links_resolve_against_item_then_channel_base_then_the_feed_url() {
        let rss = br#"<rss version="2.0"><channel xml:base="https://court.example/press/">
            <title>Court</title><link>/</link>
            <item><title>Channel base</title><guid>1</guid><link>releases/1.html</link></item>
            <item xml:base="/archive/2026/"><title>Item base</title><guid>2</guid><link>2.html</link></item>
            <item><title>Absolute</title><guid>3</guid><link>https://other.example/3</link></item>
            <item><title>Script</title><guid>4</guid><link>javascript:alert(1)</link></item>
            <item><title>Data</title><guid>5</guid><link>data:text/html,hi</link></item>
            </channel></rss>"#;
        let feed = parse_feed(rss, Some("https://feeds.example/rss.xml"), None).unwrap();
        assert_eq!(
            links(&feed),
            [
                Some("https://court.example/press/releases/1.html"),
                Some("https://court.example/archive/2026/2.html"),
                Some("https://other.example/3"),
                None,
                None,
            ]
        );
        assert_eq!(
            feed.entries.len(),
            5,
            "an unsafe link drops the link, not the item"
        );

        // No xml:base at all: the feed's own URL (after redirects), as feed readers do.
        let bare = br#"<rss version="2.0"><channel><title>T</title>
            <item><title>Rooted</title><link>/news/7</link></item>
            <item><title>Beside</title><link>8.html</link></item></channel></rss>"#;
        let feed = parse_feed(bare, Some("https://site.example/blog/feed.xml"), None).unwrap();
        assert_eq!(
            links(&feed),
            [
                Some("https://site.example/news/7"),
                Some("https://site.example/blog/8.html")
            ]
        );
        assert_eq!(feed.entries[0].key, "link:https://site.example/news/7");
        // Without a URL to resolve against, a relative link is no link.
        let feed = parse_feed(bare, None, None).unwrap();
        assert_eq!(links(&feed), [None, None]);
    }

    #[test]
    fn atom_entries_with_relative_xml_base_and_several_links_pick_the_alternate() {
        // As Tim Bray's feed has it: a relative xml:base per entry, a `replies` link beside.
        let atom = br#"<feed xmlns="http://www.w3.org/2005/Atom" xmlns:thr="http://purl.org/syndication/thread/1.0">
            <title>ongoing</title><id>f</id>
            <entry xml:base="When/201x/2013/08/14/"><title>Single point</title><id>e1</id>
              <link rel="replies" thr:count="14" href="FC2#comments"/>
              <link href="FC2-Single-Point-of-Failure"/></entry>
            </feed>"#;
        let feed = parse_feed(
            atom,
            Some("https://www.tbray.org/ongoing/ongoing.atom"),
            None,
        )
        .unwrap();
        assert_eq!(
            links(&feed),
            [Some(
                "https://www.tbray.org/ongoing/When/201x/2013/08/14/FC2-Single-Point-of-Failure"
            )]
        );
        // As the USGS feed has it: an absolute xml:base on the feed, root-relative links.
        let atom =
            br#"<feed xml:base="http://earthquake.usgs.gov/" xmlns="http://www.w3.org/2005/Atom">
            <title>Quakes</title><id>q</id><link rel="self" href="/earthquakes/7day-M5.xml"/>
            <entry><id>urn:q:1</id><title>M 5.3, Tonga</title>
              <link rel="alternate" type="text/html" href="/earthquakes/us2010rkb8.php"/></entry>
            </feed>"#;
        let feed = parse_feed(atom, Some("https://mirror.example/q.xml"), None).unwrap();
        assert_eq!(
            links(&feed),
            [Some(
                "http://earthquake.usgs.gov/earthquakes/us2010rkb8.php"
            )]
        );
    }

    #[test]
    fn bad_characters_in_a_fetched_feed_are_dropped_not_the_feed() {
        let rss = "<rss version=\"2.0\"><channel><title>Court\u{FFFF} news</title>\
            <item><title>Ruling\u{FFFE} today</title><guid>1</guid>\
            <description>One&#x1;two\u{FDD0}</description></item></channel></rss>";
        let feed = parse_feed(rss.as_bytes(), None, None).unwrap();
        assert_eq!(feed.title, "Court news");
        let item = &feed.entries[0].item;
        assert_eq!(item.title, "Ruling today");
        assert_eq!(item.source, "Court news");
        assert!(
            item.summary == "Onetwo" || item.summary == "One two",
            "{:?}",
            item.summary
        );
    }

    #[test]
    fn a_failing_feed_waits_twice_as_long_after_each_failure_up_to_a_day() {
        let minutes = |m: u64| Duration::from_secs(60 * m);
        let waits: Vec<u64> = (0..8)
            .map(|f| next_wait(minutes(30), f).as_secs() / 60)
            .collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1440, 1440]);
        assert_eq!(next_wait(minutes(30), u32::MAX), MAX_BACKOFF);
        // A feed read weekly is never read sooner because it failed.
        assert_eq!(next_wait(minutes(10_080), 3), minutes(10_080));
    }
}
