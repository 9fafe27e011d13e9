//! A local HTTP server for the feed tests: RSS 2.0 (with an ETag, answering 304 to a matching
//! If-None-Match), Atom (no validators), broken XML, a feed that stalls, an oversized feed, an
//! HTML page and a 404; a feed of relative links reached through a redirect; a feed that fails
//! while a test says so; a feed with characters XML forbids. It counts what it was asked.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

pub const RSS_ETAG: &str = "\"rss-v1\"";

#[derive(Default)]
pub struct Counts {
    pub rss_full: AtomicUsize,
    pub rss_not_modified: AtomicUsize,
    pub atom: AtomicUsize,
    /// Requests of /slow.xml in progress, and the most at once.
    pub slow_in_flight: AtomicUsize,
    pub slow_most_at_once: AtomicUsize,
    pub slow: AtomicUsize,
    pub relative: AtomicUsize,
}

#[derive(Clone)]
struct Served {
    counts: Arc<Counts>,
    /// Extra RSS items (title, guid), added by a test between polls.
    extra: Arc<Mutex<Vec<(String, String)>>>,
    /// While true, /flaky.xml answers 503.
    failing: Arc<AtomicBool>,
}

pub struct FeedServer {
    pub base: String,
    pub counts: Arc<Counts>,
    extra: Arc<Mutex<Vec<(String, String)>>>,
    pub failing: Arc<AtomicBool>,
}

impl FeedServer {
    pub async fn start() -> Self {
        let served = Served {
            counts: Arc::default(),
            extra: Arc::default(),
            failing: Arc::new(AtomicBool::new(true)),
        };
        let app = Router::new()
            .route("/rss.xml", get(rss))
            .route("/atom.xml", get(atom))
            .route("/broken.xml", get(broken))
            .route("/stall.xml", get(stall))
            .route("/big.xml", get(big))
            .route("/page.html", get(page))
            .route("/moved.xml", get(moved))
            .route("/moved-twice.xml", get(moved_twice))
            .route("/slow.xml", get(slow))
            .route("/old/feed", get(moved_relative))
            .route("/blog/feed.xml", get(relative))
            .route("/flaky.xml", get(flaky))
            .route("/bad-characters.xml", get(bad_characters))
            .with_state(served.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            base,
            counts: served.counts,
            extra: served.extra,
            failing: served.failing,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Adds an item to the RSS feed; its ETag stays the same only when nothing was added.
    pub fn add_rss_item(&self, title: &str, guid: &str) {
        self.extra
            .lock()
            .unwrap()
            .push((title.to_owned(), guid.to_owned()));
    }
}

async fn rss(State(s): State<Served>, headers: HeaderMap) -> Response {
    let extra = s.extra.lock().unwrap().clone();
    let etag = if extra.is_empty() {
        RSS_ETAG.to_owned()
    } else {
        format!("\"rss-v{}\"", extra.len() + 1)
    };
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        s.counts.rss_not_modified.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    s.counts.rss_full.fetch_add(1, Ordering::SeqCst);
    let extra_items: String = extra
        .iter()
        .map(|(t, g)| format!("<item><title>{t}</title><guid>{g}</guid></item>"))
        .collect();
    let body = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Court press releases</title><link>https://court.example/</link>
<description>x</description>
<item><title>Judges elected</title><link>https://court.example/pr/1</link><guid>pr-1</guid>
  <description>&lt;p&gt;Six judges were &lt;b&gt;elected&lt;/b&gt;.&lt;/p&gt;</description>
  <pubDate>Mon, 23 Nov 2026 10:00:00 GMT</pubDate></item>
<item><title>Hearing scheduled</title><link>https://court.example/pr/2</link>
  <pubDate>Tue, 24 Nov 2026 10:00:00 GMT</pubDate></item>
<item><title>Judges elected (again in the feed)</title><link>https://court.example/pr/1b</link><guid>pr-1</guid></item>
{extra_items}
</channel></rss>"#
    );
    (
        [
            (
                header::CONTENT_TYPE,
                "application/rss+xml; charset=utf-8".to_owned(),
            ),
            (header::ETAG, etag),
        ],
        body,
    )
        .into_response()
}

async fn atom(State(s): State<Served>) -> Response {
    s.counts.atom.fetch_add(1, Ordering::SeqCst);
    (
        [(header::CONTENT_TYPE, "application/atom+xml")],
        r#"<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Alliance blog</title><id>urn:alliance</id>
<updated>2026-11-25T10:00:00Z</updated>
<entry><title>Town hall in Ohio</title><id>urn:alliance:1</id><link href="https://alliance.example/1"/>
  <updated>2026-11-25T10:00:00Z</updated><summary>A town hall on the Court.</summary></entry>
<entry><title type="html">Letter to &lt;i&gt;Congress&lt;/i&gt;</title><id>urn:alliance:2</id>
  <link href="https://alliance.example/2"/><updated>2026-11-26T10:00:00Z</updated></entry>
</feed>"#,
    )
        .into_response()
}

async fn broken() -> Response {
    (
        [(header::CONTENT_TYPE, "application/rss+xml")],
        "<rss version=\"2.0\"><channel><title>Broken</title><item><title>oops</item>",
    )
        .into_response()
}

async fn stall() -> Response {
    tokio::time::sleep(Duration::from_secs(60)).await;
    "never".into_response()
}

async fn big() -> Response {
    let items: String = (0..2000)
        .map(|i| format!("<item><title>Item {i}</title><guid>big-{i}</guid></item>"))
        .collect();
    (
        [(header::CONTENT_TYPE, "application/rss+xml")],
        format!("<rss version=\"2.0\"><channel><title>Big</title>{items}</channel></rss>"),
    )
        .into_response()
}

async fn page() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "<!doctype html><title>Not a feed</title>",
    )
        .into_response()
}

/// One redirect to the RSS feed.
async fn moved() -> Response {
    (StatusCode::FOUND, [(header::LOCATION, "/rss.xml")]).into_response()
}

/// Two redirects to the RSS feed.
async fn moved_twice() -> Response {
    (
        StatusCode::MOVED_PERMANENTLY,
        [(header::LOCATION, "/moved.xml")],
    )
        .into_response()
}

/// A feed that takes a moment, counting how many fetch it at once.
async fn slow(State(s): State<Served>) -> Response {
    let now = s.counts.slow_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    s.counts.slow_most_at_once.fetch_max(now, Ordering::SeqCst);
    s.counts.slow.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.counts.slow_in_flight.fetch_sub(1, Ordering::SeqCst);
    (
        [(header::CONTENT_TYPE, "text/xml")],
        r#"<rss version="2.0"><channel><title>Slow</title>
<item><title>One</title><guid>s1</guid></item><item><title>Two</title><guid>s2</guid></item>
</channel></rss>"#,
    )
        .into_response()
}

/// The relative feed's old address: a permanent redirect to `/blog/feed.xml`.
async fn moved_relative() -> Response {
    (
        StatusCode::MOVED_PERMANENTLY,
        [(header::LOCATION, "/blog/feed.xml")],
    )
        .into_response()
}

/// Relative links of every kind, as miniflux's and NetNewsWire's reports show them: beside the
/// feed's own URL (`posts/…`), from its root (`/…`), under an item's `xml:base`, and one
/// `javascript:` link. Its own URL is reached through `/old/feed`, so only the URL after the
/// redirect resolves them right.
async fn relative(State(s): State<Served>) -> Response {
    s.counts.relative.fetch_add(1, Ordering::SeqCst);
    (
        [(header::CONTENT_TYPE, "application/rss+xml")],
        r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Coalition blog</title><link>/blog/</link><description>x</description>
<item><title>Hearing notes</title><guid>hearing</guid><link>posts/hearing.html</link></item>
<item><title>Rooted link without a guid</title><link>/press/rooted.html</link></item>
<item xml:base="https://court.example/pr/"><title>Court release</title><guid>release</guid><link>2026/7</link></item>
<item><title>Scripted</title><guid>scripted</guid><link>javascript:alert(1)</link></item>
</channel></rss>"#,
    )
        .into_response()
}

/// 503 while `failing` is set, else a one-item feed.
async fn flaky(State(s): State<Served>) -> Response {
    if s.failing.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
    }
    (
        [(header::CONTENT_TYPE, "application/rss+xml")],
        r#"<rss version="2.0"><channel><title>Flaky</title>
<item><title>Back again</title><guid>back</guid><link>https://flaky.example/back</link></item>
</channel></rss>"#,
    )
        .into_response()
}

/// A feed carrying characters XML 1.0 forbids (U+FFFF, U+FFFE, a C0 control), raw and as
/// character references, as broken feeds in the wild do.
async fn bad_characters() -> Response {
    (
        [(header::CONTENT_TYPE, "application/rss+xml; charset=utf-8")],
        "<rss version=\"2.0\"><channel><title>Court\u{FFFF} watch</title>\
<item><title>Ruling\u{FFFE} today &#x1;</title><guid>ruling</guid><link>https://court.example/r</link>\
<description>Judges\u{FFFF} ruled\u{1b}.</description></item>\
</channel></rss>",
    )
        .into_response()
}
