//! Subscribers' own links: preferences, topics, export, erasure, welcome mail, state alliances.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::helpers::{confirmation_link, spawn_app, TestApp};

const WAIT: Duration = Duration::from_secs(30);

/// The first link in a mail's text part whose path starts with `prefix`, as a path on the app.
pub fn link_path(app: &TestApp, raw: &[u8], prefix: &str) -> String {
    let parsed = mail_parser::MessageParser::default().parse(raw).unwrap();
    let text = parsed.body_text(0).unwrap().into_owned();
    let base = app.settings.server.base_url.as_str();
    text.split_whitespace()
        .filter_map(|w| w.strip_prefix(base))
        .find(|p| p.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} link in {text}"))
        .to_owned()
}

async fn send_update_with_items(app: &TestApp, token: &str, subject: &str) -> String {
    let body = json!({"subject": subject, "lists": ["us-icc-updates"], "news_items": [
        {"title": "Congress item", "topic": "congress"},
        {"title": "Assembly item", "topic": "asp"}]});
    let created = app
        .api(Method::POST, "/api/v1/updates", token, Some(body))
        .await;
    let id = created.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.api(
        Method::POST,
        &format!("/api/v1/updates/{id}/send"),
        token,
        None,
    )
    .await;
    app.wait_for_update_status(&id, "sent").await;
    id
}

/// Signs `email` up by form and confirms through the mailed link; returns the number of mails
/// the relay has afterwards.
async fn sign_up_and_confirm(app: &TestApp, form: &str) -> usize {
    let before = app.smtp.count();
    assert_eq!(app.post_form("/subscriptions", form).await.status(), 303);
    let mails = app.smtp.wait_for(before + 1, WAIT).await;
    let link = confirmation_link(&mails[before].data);
    let token = link.split("token=").nth(1).unwrap();
    let confirmed = app
        .post_form("/subscriptions/confirm", &format!("token={token}"))
        .await;
    assert_eq!(confirmed.status(), 200);
    mails.len()
}

#[tokio::test]
async fn preferences_change_what_the_next_update_contains() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.seed_confirmed(3, "example.org").await;
    send_update_with_items(&app, &token, "First").await;
    let mails = app.smtp.messages();
    let manage_of = |email: &str| {
        let mail = mails.iter().find(|m| m.rcpt_to[0] == email).unwrap();
        link_path(&app, &mail.data, "/manage/")
    };
    let (reader0, reader1, reader2) = (
        manage_of("reader0@example.org"),
        manage_of("reader1@example.org"),
        manage_of("reader2@example.org"),
    );

    let page = app.get(&reader0).await.text().await.unwrap();
    assert!(page.contains("Your preferences") && page.contains("reader0@example.org"));
    // reader0 keeps only Congress; reader1 only local alliances; reader2 leaves the list.
    let saved = app
        .post_form(
            &reader0,
            "action=save&name=Zero&lists=us-icc-updates&topics=congress",
        )
        .await;
    assert_eq!(saved.status(), 200);
    assert!(saved
        .text()
        .await
        .unwrap()
        .contains("Your preferences are saved."));
    app.post_form(
        &reader1,
        "action=save&lists=us-icc-updates&topics=alliances",
    )
    .await;
    app.post_form(&reader2, "action=save&topics=congress&topics=asp")
        .await;

    let before = app.smtp.count();
    let second = send_update_with_items(&app, &token, "Second").await;

    let new: Vec<_> = app.smtp.messages().into_iter().skip(before).collect();
    assert_eq!(new.len(), 1, "only reader0 gets the second update");
    assert_eq!(new[0].rcpt_to, ["reader0@example.org"]);
    let text = mail_parser::MessageParser::default()
        .parse(&new[0].data)
        .unwrap()
        .body_text(0)
        .unwrap()
        .into_owned();
    assert!(
        text.contains("Congress item") && !text.contains("Assembly item"),
        "{text}"
    );
    assert!(text.contains("Hello Zero,"), "the new name is used");
    let (status, reason): (String, String) = sqlx::query_as(
        "SELECT d.status, d.last_reply FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
         WHERE d.update_id = $1::uuid AND s.email = 'reader1@example.org'",
    )
    .bind(&second)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(status, "skipped");
    assert!(reason.contains("topics"), "the ledger says why: {reason}");
    let rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
         WHERE d.update_id = $1::uuid AND s.email = 'reader2@example.org'",
    )
    .bind(&second)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(rows, 0, "reader2 left the list: not a recipient");

    let bad = app.post_form(&reader0, "action=save&topics=nonsense").await;
    assert_eq!(bad.status(), 422);
    let forged = app
        .get(&format!("{}x", &reader0[..reader0.len() - 1]))
        .await;
    assert_eq!(forged.status(), 404);
}

#[tokio::test]
async fn the_export_holds_everything_stored_and_erasure_leaves_only_a_hash() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let user_agent = "ExportTestBrowser/1.0";
    app.http
        .post(app.url("/subscriptions"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("user-agent", user_agent)
        .body("email=erin%40example.org&name=Erin+Quill&state=NY")
        .send()
        .await
        .unwrap();
    let link = confirmation_link(&app.smtp.wait_for(1, WAIT).await[0].data);
    app.post_form(
        "/subscriptions/confirm",
        &format!("token={}", link.split("token=").nth(1).unwrap()),
    )
    .await;
    send_update_with_items(&app, &token, "For Erin").await;
    let update_mail = app
        .smtp
        .messages()
        .into_iter()
        .find(|m| {
            m.rcpt_to[0] == "erin@example.org"
                && String::from_utf8_lossy(&m.data).contains("For Erin")
        })
        .unwrap();
    let manage = link_path(&app, &update_mail.data, "/manage/");

    let export = app.post_form(&manage, "action=export").await;
    assert_eq!(export.status(), 200);
    assert!(export.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("attachment"));
    let data: serde_json::Value = export.json().await.unwrap();
    assert_eq!(data["profile"]["email"], "erin@example.org");
    assert_eq!(data["profile"]["name"], "Erin Quill");
    assert_eq!(data["profile"]["state"], "NY");
    let lists: Vec<&str> = data["lists"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["slug"].as_str().unwrap())
        .collect();
    assert_eq!(
        lists,
        ["new-york-alliance", "us-icc-updates"],
        "the state pick added the alliance list"
    );
    let kinds: Vec<&str> = data["consent_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["signup", "confirm"]);
    assert_eq!(data["consent_log"][0]["user_agent"], user_agent);
    assert_eq!(data["consent_log"][0]["ip"], "127.0.0.1");
    let deliveries: Vec<&str> = data["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(deliveries, ["confirmation", "update"]);
    assert_eq!(data["deliveries"][1]["subject"], "For Erin");

    let confirm_page = app
        .post_form(&manage, "action=erase")
        .await
        .text()
        .await
        .unwrap();
    assert!(confirm_page.contains("Yes, delete my data"));
    assert_eq!(
        app.subscriber_status("erin@example.org").await.as_deref(),
        Some("confirmed"),
        "asking is not erasing"
    );
    let erased = app.post_form(&manage, "action=erase-confirmed").await;
    assert_eq!(erased.status(), 200);

    for (table, needle) in [
        ("subscribers", "erin"),
        ("consent_events", "ExportTestBrowser"),
        ("deliveries", "erin"),
        ("subscriptions", "erin"),
        ("confirmation_tokens", "erin"),
        ("idempotency_keys", "erin"),
    ] {
        let sql = format!("SELECT string_agg(t::text, ' ') FROM {table} t");
        let dump: Option<String> = sqlx::query_scalar(&sql).fetch_one(&app.pool).await.unwrap();
        let dump = dump.unwrap_or_default().to_lowercase();
        assert!(
            !dump.contains(needle) && !dump.contains("quill"),
            "{table} still holds personal data: {dump}"
        );
    }
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM consent_events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
    let suppressed: i64 = sqlx::query_scalar("SELECT count(*) FROM suppressions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(suppressed, 1);
    let anonymous: i64 =
        sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE subscriber_id IS NULL")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        anonymous, 2,
        "the ledger keeps the rows, without the person"
    );
    assert_eq!(app.get(&manage).await.status(), 404, "the link is dead");
}

#[tokio::test]
async fn the_welcome_mail_goes_once() {
    let app = spawn_app().await;
    sqlx::query("UPDATE lists SET welcome = true WHERE slug = 'us-icc-updates'")
        .execute(&app.pool)
        .await
        .unwrap();
    sign_up_and_confirm(&app, "email=wendy%40example.org").await;
    let mails = app.smtp.wait_for(2, WAIT).await;
    let welcome = mail_parser::MessageParser::default()
        .parse(&mails[1].data)
        .unwrap();
    assert_eq!(welcome.subject(), Some("Welcome: you are subscribed"));
    assert!(welcome.body_text(0).unwrap().contains("US & ICC Updates"));
    assert!(welcome.header_raw("List-Unsubscribe").is_some());
    assert_eq!(
        welcome.header_raw("List-Id").unwrap().trim(),
        "\"US & ICC Updates\" <us-icc-updates.127.0.0.1>",
        "the same List-Id as the list's updates"
    );
    assert_eq!(
        welcome.header_raw("Feedback-ID").unwrap().trim(),
        "welcome:us-icc-updates:welcome:127.0.0.1"
    );

    let link = confirmation_link(&mails[0].data);
    app.post_form(
        "/subscriptions/confirm",
        &format!("token={}", link.split("token=").nth(1).unwrap()),
    )
    .await;
    app.wait_for_queue_to_drain().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.smtp.count(),
        2,
        "confirming twice sends no second welcome"
    );
}

#[tokio::test]
async fn a_state_pick_on_the_form_lands_the_person_on_that_states_alliance_list() {
    let app = spawn_app().await;
    sqlx::query("INSERT INTO lists (slug, name, is_public, us_state) VALUES ('california-alliance', 'California Alliance', true, 'CA')")
        .execute(&app.pool)
        .await
        .unwrap();

    sign_up_and_confirm(
        &app,
        "email=cal%40example.org&lists=us-icc-updates&state=ca",
    )
    .await;

    let lists: Vec<(String, String)> = sqlx::query_as(
        "SELECT l.slug, s.status FROM subscriptions s JOIN lists l ON l.id = s.list_id ORDER BY l.slug",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        lists,
        [
            ("california-alliance".to_owned(), "confirmed".to_owned()),
            ("us-icc-updates".to_owned(), "confirmed".to_owned())
        ]
    );
    let bad = app
        .post_json(
            "/subscriptions",
            &json!({"email": "x@example.org", "state": "Narnia"}),
        )
        .await;
    assert_eq!(bad.status(), 422);
}

#[tokio::test]
async fn the_unsubscribe_page_offers_this_updates_lists_or_everything_and_then_to_come_back() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let people = app.seed_confirmed(1, "example.org").await;
    sqlx::query("INSERT INTO subscriptions (subscriber_id, list_id, status) SELECT $1, id, 'confirmed' FROM lists WHERE slug = 'new-york-alliance'")
        .bind(people[0].0)
        .execute(&app.pool)
        .await
        .unwrap();
    send_update_with_items(&app, &token, "Choice").await;
    let page_link = link_path(&app, &app.smtp.messages()[0].data, "/unsubscribe/");
    assert!(page_link.contains("?update="));

    let page = app.get(&page_link).await.text().await.unwrap();
    assert!(
        page.contains("Only this list: US &amp; ICC Updates"),
        "{page}"
    );
    let path = page_link.split('?').next().unwrap().to_owned();
    let done = app
        .post_form(&path, "action=lists&lists=us-icc-updates")
        .await;
    assert_eq!(done.status(), 200);
    let held: Vec<(String, String)> = sqlx::query_as(
        "SELECT l.slug, s.status FROM subscriptions s JOIN lists l ON l.id = s.list_id ORDER BY l.slug",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        held,
        [
            ("new-york-alliance".into(), "confirmed".into()),
            ("us-icc-updates".into(), "unsubscribed".into())
        ]
    );
    assert_eq!(
        app.subscriber_status("reader0@example.org")
            .await
            .as_deref(),
        Some("confirmed")
    );

    let all = app
        .post_form(&path, "action=all")
        .await
        .text()
        .await
        .unwrap();
    assert!(all.contains("Subscribe again"));
    assert_eq!(
        app.subscriber_status("reader0@example.org")
            .await
            .as_deref(),
        Some("unsubscribed")
    );

    let before = app.smtp.count();
    let again = app.post_form(&path, "action=resubscribe").await;
    assert!(again.text().await.unwrap().contains("Check your inbox"));
    let mails = app.smtp.wait_for(before + 1, WAIT).await;
    assert_eq!(
        app.subscriber_status("reader0@example.org")
            .await
            .as_deref(),
        Some("unsubscribed"),
        "not before confirming"
    );
    let link = confirmation_link(&mails[before].data);
    app.post_form(
        "/subscriptions/confirm",
        &format!("token={}", link.split("token=").nth(1).unwrap()),
    )
    .await;
    assert_eq!(
        app.subscriber_status("reader0@example.org")
            .await
            .as_deref(),
        Some("confirmed")
    );
}

#[tokio::test]
async fn sign_ups_never_confirmed_are_purged_after_the_configured_days() {
    let app = crate::helpers::spawn_app_with(&[("worker.housekeeping_seconds", 1.into())]).await;
    sqlx::query(
        "INSERT INTO subscribers (id, email, email_normalized, status, created_at, confirmed_at) VALUES
           (gen_random_uuid(), 'old@example.org', 'old@example.org', 'pending', now() - interval '31 days', NULL),
           (gen_random_uuid(), 'new@example.org', 'new@example.org', 'pending', now() - interval '29 days', NULL),
           (gen_random_uuid(), 'gone@example.org', 'gone@example.org', 'unsubscribed', now() - interval '90 days', now() - interval '80 days')",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    let deadline = tokio::time::Instant::now() + WAIT;
    while app.subscriber_status("old@example.org").await.is_some() {
        assert!(tokio::time::Instant::now() < deadline, "not purged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.subscriber_status("new@example.org").await.as_deref(),
        Some("pending")
    );
    assert_eq!(
        app.subscriber_status("gone@example.org").await.as_deref(),
        Some("unsubscribed"),
        "an unsubscribe record stays"
    );
}

#[tokio::test]
async fn a_refused_preferences_form_shows_what_was_sent_with_each_error_tied_to_its_field() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.seed_confirmed(1, "example.org").await;
    send_update_with_items(&app, &token, "First").await;
    let manage = link_path(&app, &app.smtp.messages()[0].data, "/manage/");
    let long = "Z".repeat(150);

    let refused = app
        .post_form(
            &manage,
            &format!("action=save&name={long}&state=XX&topics=asp"),
        )
        .await;

    assert_eq!(refused.status(), 422);
    let page = refused.text().await.unwrap();
    assert!(page.contains("<title>Error: "), "{page}");
    assert!(
        page.contains(&format!(r#"value="{long}""#)),
        "the name as sent, not the stored 'Reader 0'"
    );
    assert!(!page.contains(r#"value="Reader 0""#));
    for field in ["name", "state"] {
        assert!(
            page.contains(&format!(
                r#"aria-invalid="true" aria-describedby="{field}-error""#
            )),
            "{field} not tied to its error"
        );
        assert!(page.contains(&format!(r#"id="{field}-error""#)));
    }
    assert!(page.contains(r#"autocomplete="name""#));
}

#[tokio::test]
async fn a_test_mails_manage_link_says_it_was_a_test_and_changes_nothing() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let id = app.create_update(&token, "Draft").await;
    let sent = app
        .api(
            Method::POST,
            &format!("/api/v1/updates/{id}/test"),
            &token,
            Some(json!({"to": "editor@example.org"})),
        )
        .await;
    assert!(sent.status().is_success(), "{}", sent.status());
    let manage = link_path(&app, &app.smtp.wait_for(1, WAIT).await[0].data, "/manage/");

    let page = app.get(&manage).await;
    assert_eq!(
        page.status(),
        200,
        "it answered 404, calling the link broken"
    );
    let text = page.text().await.unwrap();
    assert!(text.contains("This was a test mail"), "{text}");
    assert!(!text.contains("not valid"), "{text}");
    let saved = app.post_form(&manage, "action=save&name=Nobody").await;
    assert_eq!(saved.status(), 200);
    assert!(saved.text().await.unwrap().contains("nothing was changed"));
    let subscribers: i64 = sqlx::query_scalar("SELECT count(*) FROM subscribers")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(subscribers, 0);
}
