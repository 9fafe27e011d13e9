//! The archive's Atom feed, its ETags, title and description, updates left out of it, and
//! every link of a sent update answering 200 (news items linking to a local server).

use std::time::Duration;

use reqwest::header::{ETAG, IF_NONE_MATCH};
use reqwest::Method;
use serde_json::json;

use crate::admin::spawn_staff_app;
use crate::feed_server::FeedServer;
use crate::helpers::spawn_app;

const WAIT: Duration = Duration::from_secs(20);

/// Every http(s) link in a mail part: the words that start with http and the `href`s.
fn links_in(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == '>')
        .filter(|w| w.starts_with("http://") || w.starts_with("https://"))
        .map(|s| {
            s.replace("&#x3D;", "=")
                .replace("&#x2F;", "/")
                .replace("&amp;", "&")
        })
        .collect()
}

#[tokio::test]
async fn the_archive_and_its_atom_feed_parse_back_hold_no_subscriber_data_and_answer_304() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.seed_confirmed(2, "example.org").await;
    let id = app.create_and_send(&token, "Court & Congress").await;
    app.wait_for_update_status(&id, "sent").await;
    let mails = app.smtp.wait_for(2, WAIT).await;
    let personal: Vec<String> = mails
        .iter()
        .flat_map(|m| {
            // The decoded parts: a quoted-printable line break may fall inside a link.
            let parsed = mail_parser::MessageParser::default()
                .parse(&m.data)
                .unwrap();
            let mut links = links_in(&parsed.body_text(0).unwrap());
            links.extend(links_in(&parsed.body_html(0).unwrap()));
            links
        })
        .filter(|l| l.contains("/unsubscribe/") || l.contains("/manage/"))
        .map(|l| {
            l.split(['/', '?'])
                .rfind(|s| s.len() > 20)
                .unwrap()
                .to_owned()
        })
        .chain(
            [
                "reader0@example.org",
                "reader1@example.org",
                "Reader 0",
                "Reader 1",
            ]
            .map(String::from),
        )
        .collect();
    assert!(personal.len() > 4, "tokens found: {personal:?}");
    let base = app.settings.server.base_url.as_str().to_owned();

    let feed = app.get("/archive/feed.xml").await;
    assert_eq!(feed.status(), 200);
    assert!(feed.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/atom+xml"));
    let xml = feed.bytes().await.unwrap();
    let parsed = feed_rs::parser::parse(&xml[..]).expect("the archive feed parses");
    assert_eq!(parsed.entries.len(), 1);
    let entry = &parsed.entries[0];
    assert_eq!(entry.title.as_ref().unwrap().content, "Court & Congress");
    let link = &entry.links[0].href;
    let slug_path = link.strip_prefix(&base).unwrap().to_owned();
    assert!(slug_path.starts_with("/archive/"), "{link}");

    for path in ["/archive", slug_path.as_str(), "/archive/feed.xml"] {
        let first = app.get(path).await;
        assert_eq!(first.status(), 200, "{path}");
        let etag = first.headers()[ETAG].clone();
        assert!(first.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age"));
        let body = first.text().await.unwrap();
        for p in &personal {
            assert!(!body.contains(p.as_str()), "{p} in {path}");
        }
        if path != "/archive/feed.xml" {
            assert!(body.contains("<title>"), "{path}");
            assert!(
                body.contains(r#"<meta name="description" content=""#),
                "{path}"
            );
            assert!(body.contains(r#"type="application/atom+xml""#), "{path}");
        }
        let again = app
            .http
            .get(app.url(path))
            .header(IF_NONE_MATCH, etag.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
        assert_eq!(again.headers()[ETAG], etag);
    }
    let page = app.get(&slug_path).await.text().await.unwrap();
    assert!(page.contains("<title>Court &amp; Congress"), "{page}");
    assert!(!page.contains("noindex"));

    // Left out of the archive: in neither the list nor the feed; its page stays, not indexed.
    let out = app
        .api(
            Method::PUT,
            &format!("/api/v1/updates/{id}/archive"),
            &token,
            Some(json!({"in_archive": false})),
        )
        .await;
    assert_eq!(out.status(), 200);
    let xml = app.get("/archive/feed.xml").await.bytes().await.unwrap();
    assert!(feed_rs::parser::parse(&xml[..]).unwrap().entries.is_empty());
    let list = app.get("/archive").await.text().await.unwrap();
    assert!(!list.contains(&slug_path), "{list}");
    let page = app.get(&slug_path).await;
    assert_eq!(page.status(), 200);
    assert!(page
        .text()
        .await
        .unwrap()
        .contains(r#"<meta name="robots" content="noindex">"#));
}

#[tokio::test]
async fn every_link_in_a_sent_update_answers_200() {
    let server = FeedServer::start().await;
    // base_url names the app's real port, so the mail's own links can be followed.
    let app = spawn_staff_app(&[]).await;
    let token = app.api_token().await;
    app.seed_confirmed(1, "example.org").await;
    let created = app
        .api(
            Method::POST,
            "/api/v1/updates",
            &token,
            Some(json!({
                "subject": "Links", "intro": "See [the Court](SERVER/rss.xml).".replace("SERVER", &server.base),
                "lists": ["us-icc-updates"],
                "news_items": [
                    {"title": "Press releases", "url": server.url("/rss.xml"), "topic": "court"},
                    {"title": "Alliance blog", "url": server.url("/atom.xml"), "topic": "alliances"}
                ]
            })),
        )
        .await;
    assert_eq!(created.status(), 201);
    let id = created.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.send_now(&token, &id).await;
    app.wait_for_update_status(&id, "sent").await;
    let raw = app.smtp.wait_for(1, WAIT).await.remove(0).data;
    let mail = mail_parser::MessageParser::default().parse(&raw).unwrap();
    let mut links = links_in(&mail.body_text(0).unwrap());
    links.extend(links_in(&mail.body_html(0).unwrap()));
    links.sort();
    links.dedup();
    assert!(links.len() >= 5, "{links:?}");
    let follow = reqwest::Client::new();
    for link in &links {
        let answer = follow.get(link).send().await.unwrap();
        assert_eq!(answer.status(), 200, "{link}");
    }
}
