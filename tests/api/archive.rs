//! The public archive, and every link in an update mail leading to a working page.

use std::time::Duration;

use crate::helpers::spawn_app;

const WAIT: Duration = Duration::from_secs(20);

/// Every http(s) link in a text: the words that start with http, and the HTML `href`s.
fn links_in(text: &str) -> Vec<String> {
    let mut links: Vec<String> = text
        .split(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == '>')
        .filter(|w| w.starts_with("http://") || w.starts_with("https://"))
        .map(unescape_html)
        .collect();
    links.sort();
    links.dedup();
    links
}

fn unescape_html(s: &str) -> String {
    s.replace("&#x3D;", "=")
        .replace("&#x2F;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

#[tokio::test]
async fn every_link_in_an_update_mail_leads_to_a_page_and_the_archive_page_is_the_same_for_all() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.seed_confirmed(1, "example.org").await;
    let id = app
        .create_and_send(&token, "Senate hearing & the ICC")
        .await;
    app.wait_for_update_status(&id, "sent").await;
    let raw = app.smtp.wait_for(1, WAIT).await.remove(0).data;
    let mail = mail_parser::MessageParser::default().parse(&raw).unwrap();
    let text = mail.body_text(0).unwrap().into_owned();
    let html = mail.body_html(0).unwrap().into_owned();
    let base = app.settings.server.base_url.as_str().to_owned();
    let follow = reqwest::Client::new();

    let mut ours = Vec::new();
    for link in links_in(&text).into_iter().chain(links_in(&html)) {
        match link.strip_prefix(&base) {
            Some(path) => ours.push(path.to_owned()),
            // the news items' own links, to other sites
            None => assert!(link.starts_with("https://example.org/"), "{link}"),
        }
    }
    ours.sort();
    ours.dedup();
    assert!(ours.iter().any(|p| p.starts_with("/archive/")), "{ours:?}");
    assert!(
        ours.iter().any(|p| p.starts_with("/unsubscribe/")),
        "{ours:?}"
    );
    assert!(ours.iter().any(|p| p.starts_with("/manage/")), "{ours:?}");
    for path in &ours {
        if path.starts_with("/l/") {
            // a counted link: it leads to the news item's own site
            let answer = app.http.get(app.url(path)).send().await.unwrap();
            assert_eq!(answer.status(), 302, "{path}");
            let to = answer.headers()["location"].to_str().unwrap();
            assert!(to.starts_with("https://example.org/"), "{path}: {to}");
            continue;
        }
        let answer = follow.get(app.url(path)).send().await.unwrap();
        assert_eq!(answer.status(), 200, "{path}");
    }

    let web_path = ours.iter().find(|p| p.starts_with("/archive/")).unwrap();
    let page = app.get(web_path).await.text().await.unwrap();
    assert!(page.contains("Senate hearing &amp; the ICC"), "{page}");
    assert!(page.contains("Assembly of States Parties opens"), "{page}");
    assert!(page.contains(r#"href="/""#), "a sign-up link");
    for personal in [
        "reader0@example.org",
        "Reader 0",
        "/unsubscribe/",
        "/manage/",
    ] {
        assert!(!page.contains(personal), "{personal} in {page}");
    }
    for path in ours.iter().filter(|p| !p.starts_with("/archive/")) {
        let token = path.rsplit('/').next().unwrap().split('?').next().unwrap();
        assert!(
            !page.contains(token),
            "a subscriber's token in the archive page"
        );
    }

    let old_link = app.get(&format!("/updates/{id}")).await;
    assert_eq!(
        old_link.status(),
        301,
        "links in mails sent before the archive"
    );
    assert_eq!(old_link.headers()["location"], web_path.as_str());
    let list = app.get("/archive").await;
    assert_eq!(list.status(), 200);
    assert!(list
        .text()
        .await
        .unwrap()
        .contains(&format!(r#"href="{web_path}""#)));
}

#[tokio::test]
async fn the_archive_lists_what_went_out_newest_first_and_not_drafts() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.seed_confirmed(1, "example.org").await;
    let first = app.create_and_send(&token, "Older news").await;
    app.wait_for_update_status(&first, "sent").await;
    let second = app.create_and_send(&token, "Newer news").await;
    app.wait_for_update_status(&second, "sent").await;
    app.create_update(&token, "Draft news").await;

    let page = app.get("/archive").await.text().await.unwrap();

    let newer = page.find("Newer news").expect("the newer update is listed");
    let older = page.find("Older news").expect("the older update is listed");
    assert!(newer < older, "newest first");
    assert!(!page.contains("Draft news"), "drafts are not published");
    assert_eq!(app.get("/archive/no-such-update").await.status(), 404);
}
