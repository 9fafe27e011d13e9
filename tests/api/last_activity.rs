//! Last activity (issue 29, item 2): with `engagement.remember_last_activity` on, a reader's
//! counted links carry their signed activity token, and a click, a preferences-page visit or a
//! confirmation sets one date, `last_active_on`, and nothing else; with it off, nothing ties a
//! click or a visit to a person, even a link that carries a genuine token.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use crate::admin::spawn_staff_app;
use crate::helpers::{confirmation_link, snapshot, TestApp, SECRET_KEY};
use newsletter::domain::subscriber_link::{sign, LinkPurpose};

const WAIT: Duration = Duration::from_secs(20);
fn on() -> [(&'static str, toml::Value); 1] {
    [(
        "engagement.remember_last_activity",
        toml::Value::Boolean(true),
    )]
}

fn html_of(raw: &[u8]) -> String {
    let message = mail_parser::MessageParser::default().parse(raw).unwrap();
    // handlebars writes `=` in an attribute as `&#x3D;`; a browser reads it back.
    message
        .body_html(0)
        .unwrap()
        .replace("&#x3D;", "=")
        .replace("&amp;", "&")
}

fn text_of(raw: &[u8]) -> String {
    let message = mail_parser::MessageParser::default().parse(raw).unwrap();
    message.body_text(0).unwrap().into_owned()
}

/// Every `<base>/l/...` address in `text`, with its query.
fn counted_links(app: &TestApp, text: &str) -> BTreeSet<String> {
    let prefix = app.settings.server.base_url.join("/l/");
    text.match_indices(&prefix)
        .map(|(at, _)| {
            let rest: String = text[at + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "-_?=&;".contains(*c))
                .collect();
            format!("{prefix}{rest}")
        })
        .collect()
}

async fn send_with_links(app: &TestApp) {
    let token = app.api_token().await;
    let body = json!({
        "subject": "Links", "lists": ["us-icc-updates"],
        "intro": "Read [the statement](https://example.org/statement).",
        "news_items": [{"title": "Senate hearing", "url": "https://example.org/senate"}]
    });
    let id = app.create_update_from(&token, body).await;
    app.send_now(&token, &id).await;
}

async fn last_active(app: &TestApp, id: Uuid) -> Option<chrono::NaiveDate> {
    sqlx::query_scalar("SELECT last_active_on FROM subscribers WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// The tables (and, for `subscribers`, the columns of the rows) a request changed.
async fn changes_of(
    app: &TestApp,
    request: impl std::future::Future<Output = u16>,
) -> (u16, Vec<String>) {
    let before = snapshot(&app.pool).await;
    let status = request.await;
    let after = snapshot(&app.pool).await;
    let mut changed = Vec::new();
    for (table, (_, rows)) in &after {
        // the worker's heartbeat moves on by itself
        if table == "workers" || before.get(table).map(|(_, b)| b) == Some(rows) {
            continue;
        }
        if table == "subscribers" {
            let old = &before[table].1;
            for new_row in rows {
                // rows by id: an updated row may come back in another place
                let old_row = old.iter().find(|o| o["id"] == new_row["id"]).unwrap();
                for (column, value) in new_row.as_object().unwrap() {
                    if old_row[column] != *value {
                        changed.push(format!("subscribers.{column}"));
                    }
                }
            }
        } else {
            changed.push(table.clone());
        }
    }
    (status, changed)
}

#[tokio::test]
async fn with_it_on_a_click_sets_only_the_clicking_readers_date_and_lands_on_the_original() {
    let app = spawn_staff_app(&on()).await;
    let readers = app.seed_confirmed(2, "example.org").await;
    send_with_links(&app).await;
    let mails = app.smtp.wait_for(2, WAIT).await;
    app.wait_for_queue_to_drain().await;

    let mail_of = |email: &str| {
        mails
            .iter()
            .find(|m| m.rcpt_to.iter().any(|r| r == email))
            .unwrap()
    };
    let first = counted_links(&app, &html_of(&mail_of(&readers[0].1).data));
    let second = counted_links(&app, &html_of(&mail_of(&readers[1].1).data));
    assert_eq!(first.len(), 2, "{first:?}");
    assert!(first.iter().all(|l| l.contains("?a=")), "{first:?}");
    assert!(
        first.is_disjoint(&second),
        "each reader's links are their own"
    );
    assert_eq!(
        counted_links(&app, &text_of(&mail_of(&readers[0].1).data)),
        first,
        "the text part carries the same links"
    );
    assert!(!html_of(&mail_of(&readers[0].1).data).contains(newsletter::mail::ACTIVITY_MARK));

    let link = first.iter().next().unwrap().clone();
    let (status, changed) = changes_of(&app, async {
        let r = app.http.get(&link).send().await.unwrap();
        let to = r.headers()["location"].to_str().unwrap().to_owned();
        assert!(to.starts_with("https://example.org/"), "{to}");
        assert!(!to.contains("a="), "the token stays here: {to}");
        r.status().as_u16()
    })
    .await;
    assert_eq!(status, 302);
    assert_eq!(changed, ["link_clicks", "subscribers.last_active_on"]);
    let today = chrono::Utc::now().date_naive();
    assert_eq!(last_active(&app, readers[0].0).await, Some(today));
    assert_eq!(last_active(&app, readers[1].0).await, None);

    // A second click the same day counts, and changes no date.
    let (_, changed) = changes_of(&app, async {
        app.http.get(&link).send().await.unwrap().status().as_u16()
    })
    .await;
    assert_eq!(changed, ["link_clicks"]);

    // A tampered token, another purpose's token, garbage: counted as a click, no date.
    let code_part = link.split('?').next().unwrap();
    let manage = sign(SECRET_KEY.as_bytes(), LinkPurpose::Manage, readers[1].0, 1);
    let genuine = sign(
        SECRET_KEY.as_bytes(),
        LinkPurpose::Activity,
        readers[1].0,
        1,
    );
    let mut tampered = genuine.as_str().to_owned();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    for query in [
        format!("?a={}", manage.as_str()),
        format!("?a={tampered}"),
        "?a=..%2F..%2Fadmin".to_owned(),
        format!("?a={}", "x".repeat(5000)),
        "?a".to_owned(),
    ] {
        let r = app
            .http
            .get(format!("{code_part}{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302, "{query}");
    }
    assert_eq!(last_active(&app, readers[1].0).await, None);
    // The genuine one, as the first of two: it marks that reader.
    let r = app
        .http
        .get(format!("{code_part}?a={}&a=junk", genuine.as_str()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(last_active(&app, readers[1].0).await, Some(today));
}

#[tokio::test]
async fn with_it_off_a_link_carrying_a_genuine_token_still_names_nobody() {
    let app = spawn_staff_app(&[]).await;
    let readers = app.seed_confirmed(1, "example.org").await;
    send_with_links(&app).await;
    let mails = app.smtp.wait_for(1, WAIT).await;
    app.wait_for_queue_to_drain().await;
    let links = counted_links(&app, &html_of(&mails[0].data));
    assert!(links.iter().all(|l| !l.contains('?')), "{links:?}");

    let genuine = sign(
        SECRET_KEY.as_bytes(),
        LinkPurpose::Activity,
        readers[0].0,
        1,
    );
    let link = format!("{}?a={}", links.iter().next().unwrap(), genuine.as_str());
    let (status, changed) = changes_of(&app, async {
        app.http.get(&link).send().await.unwrap().status().as_u16()
    })
    .await;
    assert_eq!(status, 302);
    assert_eq!(changed, ["link_clicks"]);
    // Nor does a preferences-page visit.
    let manage = sign(SECRET_KEY.as_bytes(), LinkPurpose::Manage, readers[0].0, 1);
    let (status, changed) = changes_of(&app, async {
        app.get(&format!("/manage/{}", manage.as_str()))
            .await
            .status()
            .as_u16()
    })
    .await;
    assert_eq!(status, 200);
    assert!(changed.is_empty(), "{changed:?}");
    let page = app.get("/").await.text().await.unwrap();
    assert!(!page.contains("activity-notice"));
}

#[tokio::test]
async fn with_it_on_a_confirmation_and_a_preferences_visit_set_the_date_which_the_pages_and_the_export_show(
) {
    let app = spawn_staff_app(&on()).await;
    // The sign-up page says what is kept.
    let page = app.get("/").await.text().await.unwrap();
    assert!(page.contains("id=\"activity-notice\""), "{page}");

    app.post_form("/subscriptions", "email=cara%40example.org")
        .await;
    let mail = app.smtp.wait_for(1, WAIT).await.remove(0);
    let link = confirmation_link(&mail.data);
    let token = link.split("token=").nth(1).unwrap().to_owned();
    let id: Uuid =
        sqlx::query_scalar("SELECT id FROM subscribers WHERE email = 'cara@example.org'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        last_active(&app, id).await,
        None,
        "a sign-up alone is no activity"
    );
    let r = app
        .post_form("/subscriptions/confirm", &format!("token={token}"))
        .await;
    assert_eq!(r.status(), 200);
    let today = chrono::Utc::now().date_naive();
    assert_eq!(last_active(&app, id).await, Some(today));

    // A preferences-page visit on a later day moves it.
    sqlx::query("UPDATE subscribers SET last_active_on = DATE '2026-01-02' WHERE id = $1")
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
    let manage = sign(SECRET_KEY.as_bytes(), LinkPurpose::Manage, id, 1);
    // A HEAD (a scanner's probe) is no visit.
    let head = app
        .http
        .head(app.url(&format!("/manage/{}", manage.as_str())))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        last_active(&app, id).await,
        chrono::NaiveDate::from_ymd_opt(2026, 1, 2)
    );
    let page = app.get(&format!("/manage/{}", manage.as_str())).await;
    assert_eq!(page.status(), 200);
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("id=\"activity-notice\""));
    assert_eq!(last_active(&app, id).await, Some(today));

    // The export holds it.
    let export = app
        .post_form(&format!("/manage/{}", manage.as_str()), "action=export")
        .await;
    assert_eq!(export.status(), 200);
    let data: serde_json::Value = export.json().await.unwrap();
    assert_eq!(data["profile"]["last_active_on"], json!(today.to_string()));
}
