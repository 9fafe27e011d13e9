//! Composing and sending in the staff area: roles, double submits, preview, test send,
//! schedules across a daylight-saving change, the approval rule, pause and cancel.

use std::time::Duration;

use newsletter::domain::StaffRole;
use toml::Value;

use super::{signed_in, spawn_staff_app, Browser};
use crate::helpers::TestApp;

/// Adds a news item on the desk through the staff area; returns its id.
pub async fn desk_item(browser: &mut Browser<'_>, title: &str, topic: &str) -> String {
    let r = browser
        .post(
            "/admin/news",
            &[
                ("title", title),
                ("url", "https://example.org/n"),
                ("source", "Reuters"),
                ("topic", topic),
                ("summary", "A summary."),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    sqlx::query_scalar("SELECT id::text FROM news WHERE title = $1")
        .bind(title)
        .fetch_one(&browser.app.pool)
        .await
        .unwrap()
}

/// Composes a draft to the default list with these desk items; returns its id.
pub async fn compose(browser: &mut Browser<'_>, subject: &str, items: &[&str]) -> String {
    let mut fields = vec![
        ("subject", subject),
        ("preheader", "This week"),
        ("intro", "Dear reader, *two* things."),
        ("lists", "us-icc-updates"),
        ("template", "update"),
    ];
    fields.extend(items.iter().map(|id| ("news_item_ids", *id)));
    let r = browser.post("/admin/updates", &fields).await;
    assert_eq!(r.status(), 303, "composing {subject}");
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let (page, notice) = location.split_once('?').expect("a notice");
    assert_eq!(notice, "done=created");
    page.strip_prefix("/admin/updates/")
        .expect("to the update's page")
        .to_owned()
}

/// The value of the hidden field `name` in `page`.
pub fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("a {name} field"))
        + marker.len();
    page[start..start + page[start..].find('"').unwrap()].to_owned()
}

/// The send form of the update's confirmation page: its one-use `idempotency_key` and the
/// `version` it confirms.
pub struct SendForm {
    pub key: String,
    pub version: String,
}

impl SendForm {
    pub fn fields(&self) -> [(&str, &str); 2] {
        [("idempotency_key", &self.key), ("version", &self.version)]
    }
}

/// Opens the update's "Send now" confirmation page and reads its form.
pub async fn send_key(browser: &mut Browser<'_>, id: &str) -> SendForm {
    let page = browser
        .get(&format!("/admin/updates/{id}/confirm?action=send"))
        .await
        .text()
        .await
        .unwrap();
    SendForm {
        key: hidden(&page, "idempotency_key"),
        version: hidden(&page, "version"),
    }
}

async fn status_and_rows(app: &TestApp, id: &str) -> (String, i64) {
    sqlx::query_as(
        "SELECT status, (SELECT count(*) FROM deliveries WHERE update_id = $1::uuid) FROM updates WHERE id = $1::uuid",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_editor_composes_a_draft_but_may_not_send_or_schedule_it_and_nothing_is_queued() {
    let app = spawn_staff_app(&[]).await;
    app.seed_confirmed(2, "example.org").await;
    let mut editor = signed_in(&app, "ed@example.org", StaffRole::Editor).await;
    let item = desk_item(&mut editor, "Senate hearing", "congress").await;
    let id = compose(&mut editor, "Weekly", &[&item]).await;
    assert_eq!(
        editor.get(&format!("/admin/updates/{id}")).await.status(),
        200
    );

    let page = editor
        .get(&format!("/admin/updates/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !page.contains("idempotency_key"),
        "no send form for an editor"
    );
    let key = newsletter::domain::Token::generate().as_str().to_owned();
    let send = editor
        .post(
            &format!("/admin/updates/{id}/send"),
            &[("idempotency_key", &key)],
        )
        .await;
    assert_eq!(send.status(), 403);
    let schedule = editor
        .post(
            &format!("/admin/updates/{id}/schedule"),
            &[
                ("at", "2030-01-01T09:00"),
                ("time_zone", "America/New_York"),
            ],
        )
        .await;
    assert_eq!(schedule.status(), 403);
    for action in ["pause", "cancel", "retry-failed"] {
        let r = editor
            .post(&format!("/admin/updates/{id}/{action}"), &[])
            .await;
        assert_eq!(r.status(), 403, "{action}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status_and_rows(&app, &id).await, ("draft".into(), 0));
    assert_eq!(app.smtp.count(), 0);
}

#[tokio::test]
async fn a_double_submitted_send_form_sends_the_update_once() {
    let app = spawn_staff_app(&[]).await;
    app.seed_confirmed(3, "example.org").await;
    let mut admin = signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    let item = desk_item(&mut admin, "Senate hearing", "congress").await;
    let id = compose(&mut admin, "Weekly", &[&item]).await;
    let page = admin
        .get(&format!("/admin/updates/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Send now to 3 recipients"), "the count first");
    let form = send_key(&mut admin, &id).await;
    let path = format!("/admin/updates/{id}/send");
    let csrf = admin.csrf().await;
    let base = app.settings.server.base_url.as_str().to_owned();
    let fields = [
        ("csrf_token", csrf.as_str()),
        ("idempotency_key", form.key.as_str()),
        ("version", form.version.as_str()),
    ];
    let mut second = Browser::new(&app);
    second.cookies = admin.cookies.clone();
    let (a, b) = tokio::join!(
        admin.post_with(&path, &fields, Some(&base)),
        second.post_with(&path, &fields, Some(&base)),
    );
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (303, 303));
    let again = admin.post_with(&path, &fields, Some(&base)).await;
    assert_eq!(
        again.status(),
        303,
        "a later resubmit is answered, not refused"
    );

    app.wait_for_update_status(&id, "sent").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.smtp.count(), 3, "one mail per recipient");
    assert_eq!(status_and_rows(&app, &id).await, ("sent".into(), 3));
}

#[tokio::test]
async fn the_preview_is_the_mail_the_subscriber_gets_in_a_sandboxed_frame() {
    let app = spawn_staff_app(&[]).await;
    app.seed_confirmed(1, "example.org").await;
    sqlx::query("UPDATE subscribers SET topics = ARRAY['asp']")
        .execute(&app.pool)
        .await
        .unwrap();
    let mut admin = signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    let congress = desk_item(&mut admin, "Senate hearing", "congress").await;
    let asp = desk_item(&mut admin, "Assembly opens", "asp").await;
    let id = compose(&mut admin, "Weekly <news>", &[&congress, &asp]).await;

    let page = admin
        .get(&format!("/admin/updates/{id}?email=reader0@example.org"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<iframe class=\"preview desktop\" id=\"preview-html\" sandbox"),
        "{page}"
    );
    assert!(
        page.contains("<iframe class=\"preview text\" id=\"preview-text\" sandbox"),
        "{page}"
    );
    assert!(page.contains("Weekly &lt;news&gt;"), "escaped");

    let sample = admin
        .get(&format!("/admin/updates/{id}/preview?format=html"))
        .await;
    assert_eq!(sample.status(), 200);
    let csp = sample.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("sandbox") && csp.contains("frame-ancestors 'self'"),
        "{csp}"
    );
    let sample = sample.text().await.unwrap();
    assert!(sample.contains("Senate hearing") && sample.contains("Assembly opens"));

    let preview = admin
        .get(&format!(
            "/admin/updates/{id}/preview?email=reader0%40example.org&format=text"
        ))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        preview.contains("Assembly opens") && !preview.contains("Senate hearing"),
        "{preview}"
    );
    let unknown = admin
        .get(&format!(
            "/admin/updates/{id}/preview?email=nobody%40example.org"
        ))
        .await;
    assert_eq!(unknown.status(), 422);
    app.seed_confirmed_from(5, 1, "example.org").await;
    sqlx::query(
        "UPDATE subscribers SET topics = ARRAY['court'] WHERE email = 'reader5@example.org'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let none = admin
        .get(&format!(
            "/admin/updates/{id}/preview?email=reader5%40example.org"
        ))
        .await
        .text()
        .await
        .unwrap();
    assert!(none.contains("would get no mail"), "{none}");

    let form = send_key(&mut admin, &id).await;
    admin
        .post(&format!("/admin/updates/{id}/send"), &form.fields())
        .await;
    app.wait_for_update_status(&id, "sent").await;
    let mails = app.smtp.messages();
    assert_eq!(mails.len(), 1, "reader5 is skipped, as the preview said");
    let parsed = mail_parser::MessageParser::default()
        .parse(&mails[0].data)
        .unwrap();
    // The sent mail's links go through /l/ (counted); the preview shows where they lead.
    let sent = crate::helpers::unrewritten(
        &app,
        &format!(
            "Subject: {}\n\n{}",
            parsed.subject().unwrap(),
            parsed.body_text(0).unwrap()
        ),
    )
    .await;
    // A draft has no archive page yet: its preview links to the archive, the sent mail to the
    // page the update got when it started. Everything else is the same.
    let normal = |s: &str| {
        let s = s.replace("\r\n", "\n").trim_end().to_owned();
        let slug = format!(
            "/archive/{}",
            s.split("/archive/")
                .nth(1)
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or("")
        );
        s.replace(&slug, "/archive")
    };
    assert!(sent.contains("/archive/"), "{sent}");
    assert_eq!(normal(&preview), normal(&sent), "the preview is the mail");
}

#[tokio::test]
async fn a_test_send_mails_the_address_given_and_leaves_the_draft_alone() {
    let app = spawn_staff_app(&[]).await;
    let mut editor = signed_in(&app, "ed@example.org", StaffRole::Editor).await;
    let item = desk_item(&mut editor, "Senate hearing", "congress").await;
    let id = compose(&mut editor, "Weekly", &[&item]).await;
    let r = editor
        .post(
            &format!("/admin/updates/{id}/test"),
            &[("to", "check@example.org")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let mails = app.smtp.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(mails[0].rcpt_to, ["check@example.org"]);
    assert_eq!(status_and_rows(&app, &id).await, ("draft".into(), 0));
}

#[tokio::test]
async fn a_new_york_schedule_on_both_sides_of_the_spring_change_is_stored_as_the_right_utc_instant()
{
    let app = spawn_staff_app(&[]).await;
    let mut admin = signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    // 10 March 2030: New York's clocks go from 02:00 EST to 03:00 EDT. (A year far ahead:
    // a schedule in the past is refused.)
    for (at, utc, shown) in [
        (
            "2030-03-09T09:00",
            "2030-03-09 14:00:00+00",
            "2030-03-09 09:00 EST",
        ),
        (
            "2030-03-11T09:00",
            "2030-03-11 13:00:00+00",
            "2030-03-11 09:00 EDT",
        ),
    ] {
        let id = compose(&mut admin, at, &[]).await;
        let r = admin
            .post(
                &format!("/admin/updates/{id}/schedule"),
                &[
                    ("at", at),
                    ("time_zone", "America/New_York"),
                    ("version", "1"),
                ],
            )
            .await;
        assert_eq!(r.status(), 303, "{at}");
        let stored: String = sqlx::query_scalar(
            "SELECT scheduled_at AT TIME ZONE 'UTC' || '+00' FROM updates WHERE id = $1::uuid",
        )
        .bind(&id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert_eq!(stored, utc, "{at}");
        let page = admin
            .get(&format!("/admin/updates/{id}"))
            .await
            .text()
            .await
            .unwrap();
        assert!(page.contains(shown), "shown back in New York time: {shown}");
    }
    let id = compose(&mut admin, "In the gap", &[]).await;
    let gap = admin
        .post(
            &format!("/admin/updates/{id}/schedule"),
            &[
                ("at", "2030-03-10T02:30"),
                ("time_zone", "America/New_York"),
                ("version", "1"),
            ],
        )
        .await;
    assert_eq!(gap.status(), 422, "02:30 does not exist that night");
    assert_eq!(status_and_rows(&app, &id).await.0, "draft");
}

#[tokio::test]
async fn with_the_approval_rule_a_large_update_waits_for_a_different_admin() {
    let app = spawn_staff_app(&[
        ("sending.require_approval", Value::Boolean(true)),
        ("sending.approval_threshold", 1.into()),
    ])
    .await;
    app.seed_confirmed(2, "example.org").await;
    let mut ana = signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    let mut bo = signed_in(&app, "bo@example.org", StaffRole::Admin).await;
    let item = desk_item(&mut ana, "Senate hearing", "congress").await;
    let id = compose(&mut ana, "Weekly", &[&item]).await;
    let form = send_key(&mut ana, &id).await;
    let r = ana
        .post(&format!("/admin/updates/{id}/send"), &form.fields())
        .await;
    assert_eq!(r.status(), 303);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        status_and_rows(&app, &id).await,
        ("awaiting_approval".into(), 0)
    );

    let own = ana.approve(&id, "1").await;
    assert_eq!(own.status(), 403, "not by the admin who asked");
    assert_eq!(status_and_rows(&app, &id).await.0, "awaiting_approval");

    let approved = bo.approve(&id, "1").await;
    assert_eq!(approved.status(), 303);
    app.wait_for_update_status(&id, "sent").await;
    // Both readers, and bo's notice that an approval was asked for.
    let mails = app.smtp.wait_for(3, Duration::from_secs(30)).await;
    let readers = mails.iter().filter(|m| m.rcpt_to[0].starts_with("reader"));
    assert_eq!(readers.count(), 2);

    // The API is a door to the same rule: its send waits for a staff admin too.
    let token = app.api_token().await;
    let via_api = app.create_update(&token, "Through the API").await;
    app.send_now(&token, &via_api).await;
    assert_eq!(
        status_and_rows(&app, &via_api).await,
        ("awaiting_approval".into(), 0)
    );
    let approved = bo.approve(&via_api, "1").await;
    assert_eq!(approved.status(), 303);
    // Approved to go now: the worker may already have taken it.
    let after = status_and_rows(&app, &via_api).await.0;
    assert!(
        matches!(after.as_str(), "scheduled" | "sending" | "sent"),
        "{after}"
    );

    // At or under the threshold, no approval is needed.
    sqlx::query(
        "UPDATE subscribers SET status = 'unsubscribed' WHERE email = 'reader1@example.org'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let small = compose(&mut ana, "Small", &[&item]).await;
    let form = send_key(&mut ana, &small).await;
    ana.post(&format!("/admin/updates/{small}/send"), &form.fields())
        .await;
    app.wait_for_update_status(&small, "sent").await;
}

#[tokio::test]
async fn pause_and_cancel_in_the_staff_area_change_a_scheduled_update() {
    let app = spawn_staff_app(&[]).await;
    let mut admin = signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    let id = compose(&mut admin, "Later", &[]).await;
    admin
        .post(
            &format!("/admin/updates/{id}/schedule"),
            &[
                ("at", "2030-06-01T09:00"),
                ("time_zone", "Europe/Amsterdam"),
                ("version", "1"),
            ],
        )
        .await;
    assert_eq!(status_and_rows(&app, &id).await.0, "scheduled");
    let paused = admin.post(&format!("/admin/updates/{id}/pause"), &[]).await;
    assert_eq!(paused.status(), 303);
    assert_eq!(status_and_rows(&app, &id).await.0, "paused");
    let cancelled = admin
        .post(&format!("/admin/updates/{id}/cancel"), &[])
        .await;
    assert_eq!(cancelled.status(), 303);
    assert_eq!(status_and_rows(&app, &id).await.0, "cancelled");
    let again = admin
        .post(&format!("/admin/updates/{id}/resume"), &[])
        .await;
    assert_eq!(again.status(), 409, "a cancelled update stays cancelled");
}

#[tokio::test]
async fn a_draft_is_edited_in_place_and_its_items_reordered() {
    let app = spawn_staff_app(&[]).await;
    let mut editor = signed_in(&app, "ed@example.org", StaffRole::Editor).await;
    let a = desk_item(&mut editor, "Item A", "congress").await;
    let b = desk_item(&mut editor, "Item B", "asp").await;
    let id = compose(&mut editor, "First title", &[&a, &b]).await;
    let form = editor
        .get(&format!("/admin/updates/{id}/edit"))
        .await
        .text()
        .await
        .unwrap();
    assert!(form.contains("value=\"First title\""), "{form}");
    let saved = editor
        .post(
            &format!("/admin/updates/{id}"),
            &[
                ("subject", "Second title"),
                ("lists", "us-icc-updates"),
                ("news_item_ids", &b),
                ("news_item_ids", ""),
                ("news_item_ids", &a),
            ],
        )
        .await;
    let status = saved.status();
    assert_eq!(status, 303, "{}", saved.text().await.unwrap());
    let titles: Vec<String> = sqlx::query_scalar(
        "SELECT title FROM news_items WHERE update_id = $1::uuid ORDER BY position",
    )
    .bind(&id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(titles, ["Item B", "Item A"]);
    let subject: String = sqlx::query_scalar("SELECT subject FROM updates WHERE id = $1::uuid")
        .bind(&id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(subject, "Second title");
    let invalid = editor
        .post(
            &format!("/admin/updates/{id}"),
            &[("subject", ""), ("lists", "us-icc-updates")],
        )
        .await;
    assert_eq!(invalid.status(), 422);
    assert!(invalid.text().await.unwrap().contains("subject"));
}

#[tokio::test]
async fn a_send_without_the_csrf_token_or_from_another_origin_is_refused_and_sends_nothing() {
    let app = spawn_staff_app(&[]).await;
    app.seed_confirmed(2, "example.org").await;
    let mut admin = signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    let id = compose(&mut admin, "Weekly", &[]).await;
    let form = send_key(&mut admin, &id).await;
    let csrf = admin.csrf().await;
    let base = app.settings.server.base_url.as_str().to_owned();
    let path = format!("/admin/updates/{id}/send");
    let without = admin.post_with(&path, &form.fields(), Some(&base)).await;
    assert_eq!(without.status(), 403);
    let [key, version] = form.fields();
    let foreign = admin
        .post_with(
            &path,
            &[("csrf_token", &csrf), key, version],
            Some("https://evil.example"),
        )
        .await;
    assert_eq!(foreign.status(), 403);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status_and_rows(&app, &id).await, ("draft".into(), 0));
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM staff_form_keys")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(keys, 0, "the form key is still unused");
    assert_eq!(app.smtp.count(), 0);
}

#[tokio::test]
async fn the_composer_offers_only_the_templates_made_for_updates() {
    let app = spawn_staff_app(&[]).await;
    let mut editor = signed_in(&app, "ed@example.org", StaffRole::Editor).await;
    let page = editor.get("/admin/updates/new").await.text().await.unwrap();
    let start = page
        .find("<select id=\"template\" name=\"template\">")
        .expect("a choice of templates");
    let select = &page[start..start + page[start..].find("</select>").unwrap()];
    assert!(
        select.contains("<option value=\"update\" selected>"),
        "{select}"
    );
    for not_for_updates in ["confirmation", "welcome"] {
        assert!(!select.contains(not_for_updates), "{select}");
    }
}

/// The composer sets From and Reply-To (before, only the API could): checked where they enter,
/// kept on the draft, carried by its mails.
#[tokio::test]
async fn the_composer_sets_from_and_reply_to_and_the_mail_carries_them() {
    let app = spawn_staff_app(&[]).await;
    let mut editor = signed_in(&app, "ed@example.org", StaffRole::Editor).await;
    let page = editor.get("/admin/updates/new").await.text().await.unwrap();
    assert!(page.contains("id=\"from\"") && page.contains("id=\"reply_to\""));
    let fields = |from: &'static str| {
        vec![
            ("subject", "With a sender"),
            ("lists", "us-icc-updates"),
            ("template", "update"),
            ("from", from),
            ("reply_to", "Press desk <press@example.org>"),
        ]
    };
    for bad in ["not an address", "a@example.org\r\nBcc: eve@example.org"] {
        let r = editor.post("/admin/updates", &fields(bad)).await;
        assert_eq!(r.status(), 422, "{bad:?}");
        let page = r.text().await.unwrap();
        assert!(page.contains("from:"), "the field is named: {page}");
    }
    let r = editor
        .post(
            "/admin/updates",
            &fields("Coalition Desk <desk@example.org>"),
        )
        .await;
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let id = location
        .split('?')
        .next()
        .unwrap()
        .strip_prefix("/admin/updates/")
        .unwrap()
        .to_owned();
    let edit = editor
        .get(&format!("/admin/updates/{id}/edit"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        edit.contains("Coalition Desk &lt;desk@example.org&gt;"),
        "kept on the draft: {edit}"
    );
    let r = editor
        .post(
            &format!("/admin/updates/{id}/test"),
            &[("to", "check@example.org")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let mails = app.smtp.wait_for(1, Duration::from_secs(30)).await;
    let data = String::from_utf8_lossy(&mails[0].data).to_string();
    let header = |name: &str| {
        data.lines()
            .find(|l| l.to_ascii_lowercase().starts_with(&format!("{name}:")))
            .unwrap_or("")
            .to_owned()
    };
    assert!(header("from").contains("desk@example.org"), "{data}");
    assert!(header("from").contains("Coalition Desk"), "{data}");
    assert!(header("reply-to").contains("press@example.org"), "{data}");
}
