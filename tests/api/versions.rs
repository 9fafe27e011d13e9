//! What goes out is exactly what was approved: content versions, approval that holds, the
//! confirmation step, test mails that cannot become a relay, and archive dates in the
//! organisation's time zone.

use std::time::Duration;

use newsletter::domain::{EmailAddress, StaffRole};
use reqwest::Method;
use serde_json::json;
use toml::Value;

use crate::admin::updates::{compose, desk_item, hidden, send_key};
use crate::admin::{signed_in, spawn_staff_app};
use crate::helpers::{spawn_app, spawn_app_with, spawn_app_without_worker, TestApp};

/// (recipient, subject, plain text) of every mail the relay took.
/// Every mail received: (first recipient, subject, plain text).
pub(crate) fn mails(app: &TestApp) -> Vec<(String, String, String)> {
    let parser = mail_parser::MessageParser::default();
    app.smtp
        .messages()
        .iter()
        .map(|m| {
            let parsed = parser.parse(&m.data).unwrap();
            (
                m.rcpt_to[0].clone(),
                parsed.subject().unwrap_or_default().to_owned(),
                parsed.body_text(0).unwrap_or_default().into_owned(),
            )
        })
        .collect()
}

pub(crate) async fn status(app: &TestApp, id: &str) -> String {
    sqlx::query_scalar("SELECT status FROM updates WHERE id = $1::uuid")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// The audit log's actions about update `id`, oldest first.
async fn audited(app: &TestApp, id: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT action FROM audit_log WHERE subject = $1 ORDER BY id")
        .bind(id)
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

async fn patch(app: &TestApp, token: &str, id: &str, body: serde_json::Value) -> reqwest::Response {
    app.api(
        Method::PATCH,
        &format!("/api/v1/updates/{id}"),
        token,
        Some(body),
    )
    .await
}

#[tokio::test]
async fn a_send_after_a_test_mail_and_an_edit_delivers_the_edited_version_to_every_recipient() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.seed_confirmed(5, "example.org").await;
    let id = app.create_update(&token, "The old subject").await;
    let test = app
        .api(
            Method::POST,
            &format!("/api/v1/updates/{id}/test"),
            &token,
            Some(json!({ "to": "staff@example.org" })),
        )
        .await;
    assert_eq!(test.status(), 202);
    app.smtp.wait_for(1, Duration::from_secs(30)).await;

    let changed = patch(
        &app,
        &token,
        &id,
        json!({ "subject": "The new subject", "intro": "The new intro." }),
    )
    .await;
    assert_eq!(changed.status(), 200);
    assert_eq!(
        changed.json::<serde_json::Value>().await.unwrap()["version"],
        2
    );
    app.send_now(&token, &id).await;
    app.wait_for_update_status(&id, "sent").await;

    let slug: String = sqlx::query_scalar("SELECT slug FROM updates WHERE id = $1::uuid")
        .bind(&id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let all = mails(&app);
    assert_eq!(all.len(), 6, "the test mail and five sends");
    for (to, subject, text) in &all {
        if to == "staff@example.org" {
            assert_eq!(subject, "[Test] The old subject", "a test is marked as one");
            continue;
        }
        assert_eq!(subject, "The new subject", "{to} got the edited version");
        assert!(text.contains("The new intro."), "{text}");
        assert!(
            text.contains(&format!("/archive/{slug}")),
            "the web link is the update's page, not the archive: {text}"
        );
    }
    let sent_version: Option<i32> =
        sqlx::query_scalar("SELECT sent_version FROM updates WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(sent_version, Some(2));
}

#[tokio::test]
async fn a_preview_after_an_edit_shows_the_new_version_and_is_never_cached() {
    let app = spawn_staff_app(&[]).await;
    let mut admin = signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    let id = compose(&mut admin, "Before the edit", &[]).await;
    let path = format!("/admin/updates/{id}/preview?format=text");
    let before = admin.get(&path).await;
    assert_eq!(before.headers()["cache-control"], "no-store");
    assert!(before.text().await.unwrap().contains("Before the edit"));
    let saved = admin
        .post(
            &format!("/admin/updates/{id}"),
            &[("subject", "After the edit"), ("lists", "us-icc-updates")],
        )
        .await;
    assert_eq!(saved.status(), 303);
    let after = admin.get(&path).await.text().await.unwrap();
    assert!(
        after.contains("After the edit") && !after.contains("Before"),
        "{after}"
    );
    let page = admin
        .get(&format!("/admin/updates/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Version 2"), "the page names the version");
    assert!(
        page.contains("v&#x3D;2"),
        "the preview frame's address names it too: {page}"
    );
}

/// An app with the two-person rule for more than one recipient, two readers, and three admins.
async fn approval_app() -> TestApp {
    let app = spawn_staff_app(&[
        ("sending.require_approval", Value::Boolean(true)),
        ("sending.approval_threshold", 1.into()),
    ])
    .await;
    app.seed_confirmed(2, "example.org").await;
    app
}

#[tokio::test]
async fn an_approved_update_edited_goes_back_to_draft_and_nothing_leaves_until_approved_again() {
    let app = approval_app().await;
    let mut ana = signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    let mut bo = signed_in(&app, "bo@example.org", StaffRole::Admin).await;
    let mut cy = signed_in(&app, "cy@example.org", StaffRole::Admin).await;
    let item = desk_item(&mut ana, "Senate hearing", "congress").await;
    let id = compose(&mut ana, "Approved text", &[&item]).await;
    let later = [
        ("at", "2030-01-01T09:00"),
        ("time_zone", "America/New_York"),
        ("version", "1"),
    ];
    let r = ana
        .post(&format!("/admin/updates/{id}/schedule"), &later)
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(status(&app, &id).await, "awaiting_approval");
    let r = bo.approve(&id, "1").await;
    assert_eq!(r.status(), 303);
    assert_eq!(status(&app, &id).await, "scheduled");

    // Frozen: neither the requester nor anyone else changes it in place.
    let edit = [
        ("subject", "Changed after approval"),
        ("lists", "us-icc-updates"),
    ];
    let r = ana.post(&format!("/admin/updates/{id}"), &edit).await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("Unschedule it first"));
    // Unscheduled, it is a draft and the approval is gone.
    let r = bo
        .post(&format!("/admin/updates/{id}/unschedule"), &[])
        .await;
    assert_eq!(r.status(), 303);
    let (st, approved): (String, Option<i32>) =
        sqlx::query_as("SELECT status, approved_version FROM updates WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((st.as_str(), approved), ("draft", None));
    let r = bo.post(&format!("/admin/updates/{id}"), &edit).await;
    assert_eq!(r.status(), 303, "bo makes version 2");

    let form = send_key(&mut ana, &id).await;
    assert_eq!(form.version, "2");
    let r = ana
        .post(&format!("/admin/updates/{id}/send"), &form.fields())
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        status(&app, &id).await,
        "awaiting_approval",
        "approval is asked again"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        mails(&app)
            .iter()
            .all(|(to, _, _)| !to.starts_with("reader")),
        "nothing of it went out"
    );
    // Neither the one who asked nor the one who made version 2 may approve it.
    assert_eq!(ana.approve(&id, "2").await.status(), 403);
    assert_eq!(bo.approve(&id, "2").await.status(), 403);
    // An approval of an older version than the current one is refused.
    let stale = cy.approve(&id, "1").await;
    assert_eq!(stale.status(), 409);
    let r = cy.approve(&id, "2").await;
    assert_eq!(r.status(), 303);
    app.wait_for_update_status(&id, "sent").await;
    let readers: Vec<_> = mails(&app)
        .into_iter()
        .filter(|(to, _, _)| to.starts_with("reader"))
        .collect();
    assert_eq!(readers.len(), 2);
    assert!(readers
        .iter()
        .all(|(_, s, _)| s == "Changed after approval"));
    let (version, lists, recipients): (Option<i32>, Option<Vec<String>>, Option<i64>) =
        sqlx::query_as(
            "SELECT approved_version, approved_lists, approved_recipients FROM updates WHERE id = $1::uuid",
        )
        .bind(&id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(version, Some(2));
    assert_eq!(lists, Some(vec!["us-icc-updates".to_owned()]));
    assert_eq!(recipients, Some(2));
    let actions = audited(&app, &id).await;
    for wanted in ["unschedule", "update-edit", "request-approval", "approve"] {
        assert!(
            actions.contains(&wanted.to_owned()),
            "{wanted} in {actions:?}"
        );
    }
    // The admins who may approve were told, with the link.
    let notices: Vec<_> = mails(&app)
        .into_iter()
        .filter(|(_, s, _)| s.starts_with("Waiting for your approval"))
        .collect();
    assert!(
        notices.iter().any(|(to, _, _)| to == "cy@example.org"),
        "{notices:?}"
    );
    assert!(
        notices.iter().all(|(to, _, _)| to != "ana@example.org"),
        "not the admin who asked: {notices:?}"
    );
}

#[tokio::test]
async fn widening_an_approved_update_through_the_api_is_refused_until_it_is_unscheduled_and_asks_again(
) {
    let app = approval_app().await;
    let token = app.api_token().await;
    let mut bo = signed_in(&app, "bo@example.org", StaffRole::Admin).await;
    let id = app.create_update(&token, "To the national list").await;
    let at = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let r = app
        .api(
            Method::POST,
            &format!("/api/v1/updates/{id}/schedule"),
            &token,
            Some(json!({ "at": at })),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(status(&app, &id).await, "awaiting_approval");
    let r = bo.approve(&id, "1").await;
    assert_eq!(r.status(), 303);

    let wider = json!({ "lists": ["us-icc-updates", "new-york-alliance"] });
    let r = patch(&app, &token, &id, wider.clone()).await;
    assert_eq!(r.status(), 409, "an approved update is frozen");
    assert_eq!(status(&app, &id).await, "scheduled");
    let r = app
        .api(
            Method::POST,
            &format!("/api/v1/updates/{id}/unschedule"),
            &token,
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = patch(&app, &token, &id, wider).await;
    assert_eq!(r.status(), 200);
    let view = r.json::<serde_json::Value>().await.unwrap();
    assert_eq!(view["version"], 2);
    assert_eq!(view["approved_version"], serde_json::Value::Null);
    app.send_now(&token, &id).await;
    assert_eq!(status(&app, &id).await, "awaiting_approval", "asked again");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(mails(&app)
        .iter()
        .all(|(to, _, _)| !to.starts_with("reader")));
}

#[tokio::test]
async fn an_update_whose_audience_grew_past_the_threshold_after_it_was_scheduled_waits_for_approval(
) {
    let rule = [
        ("sending.require_approval", Value::Boolean(true)),
        ("sending.approval_threshold", 2.into()),
    ];
    let app = spawn_app_without_worker(&rule).await;
    newsletter::ops::staff::add(
        &app.pool,
        &newsletter::ops::Actor::CommandLine,
        "ana@example.org",
        StaffRole::Admin.as_str(),
        newsletter::domain::NewPassword::parse("a long enough password").unwrap(),
    )
    .await
    .unwrap();
    app.seed_confirmed(2, "example.org").await;
    let token = app.api_token().await;
    let id = app.create_update(&token, "Small at first").await;
    app.send_now(&token, &id).await;
    assert_eq!(status(&app, &id).await, "scheduled", "two is not past two");
    // A state's members join the list before the worker starts it.
    app.seed_confirmed_from(2, 3, "example.org").await;
    app.start_worker(&rule);
    app.wait_for_update_status(&id, "awaiting_approval").await;
    let notice = app.smtp.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(notice[0].rcpt_to, ["ana@example.org"]);
    assert_eq!(
        app.delivery_statuses(&id).await.len(),
        0,
        "nobody was mailed"
    );
    let held: (String, serde_json::Value) = sqlx::query_as(
        "SELECT actor, detail FROM audit_log WHERE subject = $1 AND action = 'request-approval'",
    )
    .bind(&id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(held.0, "scheduler");
    assert_eq!(held.1["recipients"], 5);
}

#[tokio::test]
async fn an_editor_cannot_change_or_unschedule_what_an_admin_scheduled() {
    let app = spawn_staff_app(&[]).await;
    let mut ed = signed_in(&app, "ed@example.org", StaffRole::Editor).await;
    let mut ana = signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    let id = compose(&mut ed, "The editor's draft", &[]).await;
    let later = [
        ("at", "2030-01-01T09:00"),
        ("time_zone", "America/New_York"),
        ("version", "1"),
    ];
    assert_eq!(
        ana.post(&format!("/admin/updates/{id}/schedule"), &later)
            .await
            .status(),
        303
    );
    let edit = [
        ("subject", "Changed by the editor"),
        ("lists", "us-icc-updates"),
    ];
    assert_eq!(
        ed.post(&format!("/admin/updates/{id}"), &edit)
            .await
            .status(),
        409
    );
    assert_eq!(
        ed.post(&format!("/admin/updates/{id}/unschedule"), &[])
            .await
            .status(),
        403
    );
    let (st, subject, version): (String, String, i32) =
        sqlx::query_as("SELECT status, subject, version FROM updates WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        (st.as_str(), subject.as_str(), version),
        ("scheduled", "The editor's draft", 1)
    );
}

#[tokio::test]
async fn an_editor_asks_for_approval_and_an_admin_sends_it_by_approving() {
    let app = spawn_staff_app(&[]).await;
    app.seed_confirmed(1, "example.org").await;
    let mut ed = signed_in(&app, "ed@example.org", StaffRole::Editor).await;
    let mut ana = signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    let id = compose(&mut ed, "From the editor", &[]).await;
    let page = ed
        .get(&format!("/admin/updates/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Request approval"), "an editor's way to send");
    let confirm = ed
        .get(&format!("/admin/updates/{id}/confirm?action=request"))
        .await
        .text()
        .await
        .unwrap();
    let version = hidden(&confirm, "version");
    let r = ed
        .post(
            &format!("/admin/updates/{id}/request-approval"),
            &[("version", &version)],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(status(&app, &id).await, "awaiting_approval");
    let notice = app.smtp.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(notice[0].rcpt_to, ["ana@example.org"]);
    let page = ana
        .get(&format!("/admin/updates/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Who may approve: ana@example.org"), "{page}");
    let r = ana.approve(&id, &version).await;
    assert_eq!(r.status(), 303);
    app.wait_for_update_status(&id, "sent").await;
}

#[tokio::test]
async fn a_send_confirmed_on_an_older_version_is_refused_and_nothing_leaves() {
    let app = spawn_staff_app(&[]).await;
    app.seed_confirmed(2, "example.org").await;
    let mut ana = signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    let mut bo = signed_in(&app, "bo@example.org", StaffRole::Admin).await;
    let id = compose(&mut ana, "As confirmed", &[]).await;
    let form = send_key(&mut ana, &id).await;
    assert_eq!(form.version, "1");
    let edit = [
        ("subject", "Changed meanwhile"),
        ("lists", "us-icc-updates"),
    ];
    assert_eq!(
        bo.post(&format!("/admin/updates/{id}"), &edit)
            .await
            .status(),
        303
    );
    let r = ana
        .post(&format!("/admin/updates/{id}/send"), &form.fields())
        .await;
    assert_eq!(r.status(), 409);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("version 1") && text.contains("version 2"),
        "{text}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status(&app, &id).await, "draft");
    assert_eq!(app.smtp.count(), 0);
    // The form's key was handed back: a fresh confirmation of version 2 sends.
    let form = send_key(&mut ana, &id).await;
    assert_eq!(
        ana.post(&format!("/admin/updates/{id}/send"), &form.fields())
            .await
            .status(),
        303
    );
    app.wait_for_update_status(&id, "sent").await;
}

#[tokio::test]
async fn an_api_send_or_schedule_with_a_stale_version_gets_409() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.seed_confirmed(1, "example.org").await;
    let id = app.create_update(&token, "Version one").await;
    assert_eq!(app.update_view(&token, &id).await["version"], 1);
    assert_eq!(
        patch(&app, &token, &id, json!({ "subject": "Version two" }))
            .await
            .status(),
        200
    );
    assert_eq!(
        patch(&app, &token, &id, json!({ "subject": "Version two" }))
            .await
            .status(),
        200,
        "the same content again"
    );
    assert_eq!(
        app.update_view(&token, &id).await["version"],
        2,
        "no change, no version"
    );
    let path = format!("/api/v1/updates/{id}/send");
    let send = |version: i32| {
        app.api(
            Method::POST,
            &path,
            &token,
            Some(json!({ "version": version })),
        )
    };
    let stale = send(1).await;
    assert_eq!(stale.status(), 409);
    let at = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let schedule = app
        .api(
            Method::POST,
            &format!("/api/v1/updates/{id}/schedule"),
            &token,
            Some(json!({ "at": at, "version": 1 })),
        )
        .await;
    assert_eq!(schedule.status(), 409);
    assert_eq!(status(&app, &id).await, "draft");
    assert_eq!(send(2).await.status(), 200);
    app.wait_for_update_status(&id, "sent").await;
    assert_eq!(mails(&app)[0].1, "Version two");
}

#[tokio::test]
async fn a_test_mail_is_refused_for_an_address_that_must_get_no_mail() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let people = app.seed_confirmed(2, "example.org").await;
    sqlx::query("UPDATE subscribers SET status = 'complained' WHERE id = $1")
        .bind(people[0].0)
        .execute(&app.pool)
        .await
        .unwrap();
    let erased = EmailAddress::parse("Erased@Example.org").unwrap();
    for hash in newsletter::store::preferences::suppression_hashes(&erased) {
        sqlx::query("INSERT INTO suppressions (email_hash, reason) VALUES ($1, 'erased') ON CONFLICT DO NOTHING")
            .bind(hash)
            .execute(&app.pool)
            .await
            .unwrap();
    }
    let id = app.create_update(&token, "Weekly").await;
    for to in [people[0].1.as_str(), "  erased@EXAMPLE.org "] {
        let r = app
            .api(
                Method::POST,
                &format!("/api/v1/updates/{id}/test"),
                &token,
                Some(json!({ "to": to })),
            )
            .await;
        assert_eq!(r.status(), 422, "{to}");
        let body = r.json::<serde_json::Value>().await.unwrap();
        assert!(
            body["errors"]["to"]
                .as_str()
                .unwrap()
                .contains("No mail goes to"),
            "{body}"
        );
    }
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE kind = 'test'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(queued, 0);
}

#[tokio::test]
async fn test_mails_are_limited_per_token_even_when_asked_for_all_at_once() {
    let app = spawn_app_with(&[("sending.test_mails_per_hour", 3.into())]).await;
    let token = app.api_token().await;
    let other = app.api_token().await;
    let id = app.create_update(&token, "Weekly").await;
    let path = format!("/api/v1/updates/{id}/test");
    let mut asks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let request = app
            .http
            .post(app.url(&path))
            .bearer_auth(&token)
            .json(&json!({ "to": format!("anyone{i}@example.org") }));
        asks.spawn(async move { request.send().await.unwrap() });
    }
    let answers = asks.join_all().await;
    let accepted = answers.iter().filter(|r| r.status() == 202).count();
    let limited: Vec<_> = answers.iter().filter(|r| r.status() == 429).collect();
    assert_eq!(
        (accepted, limited.len()),
        (3, 5),
        "three pass, the rest are limited"
    );
    assert!(limited[0].headers().contains_key("retry-after"));
    let r = app
        .api(
            Method::POST,
            &path,
            &other,
            Some(json!({ "to": "x@example.org" })),
        )
        .await;
    assert_eq!(r.status(), 202, "another token has its own limit");
    let entries: Vec<serde_json::Value> =
        sqlx::query_scalar("SELECT detail FROM audit_log WHERE action = 'update-test' ORDER BY id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(entries.len(), 4, "each test mail audited");
    assert_eq!(entries[0]["version"], 1);
    app.smtp.wait_for(4, Duration::from_secs(30)).await;
}

#[tokio::test]
async fn every_update_action_in_the_staff_area_leaves_one_audit_entry() {
    let app = spawn_staff_app(&[]).await;
    app.seed_confirmed(1, "example.org").await;
    let mut ana = signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    let id = compose(&mut ana, "Audited", &[]).await;
    let edit = [("subject", "Audited, edited"), ("lists", "us-icc-updates")];
    ana.post(&format!("/admin/updates/{id}"), &edit).await;
    ana.post(
        &format!("/admin/updates/{id}/test"),
        &[("to", "check@example.org")],
    )
    .await;
    let later = [
        ("at", "2030-01-01T09:00"),
        ("time_zone", "America/New_York"),
        ("version", "2"),
    ];
    ana.post(&format!("/admin/updates/{id}/schedule"), &later)
        .await;
    ana.post(&format!("/admin/updates/{id}/pause"), &[]).await;
    ana.post(&format!("/admin/updates/{id}/unschedule"), &[])
        .await;
    ana.post(
        &format!("/admin/updates/{id}/archive"),
        &[("in_archive", "false")],
    )
    .await;
    ana.post(
        &format!("/admin/updates/{id}/archive"),
        &[("in_archive", "true")],
    )
    .await;
    let form = send_key(&mut ana, &id).await;
    ana.post(&format!("/admin/updates/{id}/send"), &form.fields())
        .await;
    app.wait_for_update_status(&id, "sent").await;
    ana.post(&format!("/admin/updates/{id}/retry-failed"), &[])
        .await;
    let cancelled = compose(&mut ana, "Cancelled", &[]).await;
    ana.post(&format!("/admin/updates/{cancelled}/cancel"), &[])
        .await;
    assert_eq!(
        audited(&app, &id).await,
        [
            "update-create",
            "update-edit",
            "update-test",
            "schedule",
            "pause",
            "unschedule",
            "archive-out",
            "archive-in",
            "send",
            "retry-failed"
        ]
    );
    assert_eq!(audited(&app, &cancelled).await, ["update-create", "cancel"]);
    let edit: serde_json::Value = sqlx::query_scalar(
        "SELECT detail FROM audit_log WHERE subject = $1 AND action = 'update-edit'",
    )
    .bind(&id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        edit["changed"]["subject"],
        json!({ "from": "Audited", "to": "Audited, edited" }),
        "field by field"
    );
}

#[tokio::test]
async fn an_editors_send_is_refused_by_role_before_its_form_is_read() {
    let app = spawn_staff_app(&[]).await;
    let mut ed = signed_in(&app, "ed@example.org", StaffRole::Editor).await;
    let id = compose(&mut ed, "Weekly", &[]).await;
    for (path, fields) in [
        ("send", vec![("idempotency_key", "not a key")]),
        (
            "schedule",
            vec![("at", "garbage"), ("time_zone", "Mars/Base")],
        ),
        ("approve", vec![]),
        ("pause", vec![]),
    ] {
        let r = ed
            .post(&format!("/admin/updates/{id}/{path}"), &fields)
            .await;
        assert_eq!(r.status(), 403, "{path}");
    }
    let confirm = ed
        .get(&format!("/admin/updates/{id}/confirm?action=send"))
        .await;
    assert_eq!(confirm.status(), 403);
}

#[tokio::test]
async fn the_archive_dates_and_slugs_updates_in_the_organisations_time_zone() {
    // A zone whose date differs from UTC's at this moment: far ahead after noon UTC, far
    // behind before it.
    let zone = if chrono::Timelike::hour(&chrono::Utc::now()) >= 12 {
        "Pacific/Kiritimati"
    } else {
        "Etc/GMT+12"
    };
    let app = spawn_app_with(&[("server.time_zone", zone.into())]).await;
    let token = app.api_token().await;
    app.seed_confirmed(1, "example.org").await;
    let id = app.create_and_send(&token, "Local day").await;
    app.wait_for_update_status(&id, "sent").await;
    let (slug, local, utc): (String, String, String) = sqlx::query_as(
        "SELECT slug, to_char(started_at AT TIME ZONE $2, 'YYYY-MM-DD'),
                to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')
         FROM updates WHERE id = $1::uuid",
    )
    .bind(&id)
    .bind(zone)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_ne!(local, utc, "the zone was chosen to differ");
    assert_eq!(slug, format!("{local}-local-day"));
    let archive = app.get("/archive").await.text().await.unwrap();
    assert!(
        archive.contains(&local) && !archive.contains(&utc),
        "{archive}"
    );
}

#[tokio::test]
async fn a_digest_fired_at_half_past_seven_in_new_york_is_listed_that_local_day() {
    let app = spawn_app().await;
    app.seed_confirmed(1, "example.org").await;
    let token = app.api_token().await;
    let id = app.create_and_send(&token, "Friday digest").await;
    app.wait_for_update_status(&id, "sent").await;
    // As if it had fired at 19:30 New York time on January 15, 2021 (00:30 UTC on January 16),
    // a day far from any day the test runs on (its slug was made at its real start).
    sqlx::query("UPDATE updates SET started_at = '2021-01-16T00:30:00Z' WHERE id = $1::uuid")
        .bind(&id)
        .execute(&app.pool)
        .await
        .unwrap();
    let archive = app.get("/archive").await.text().await.unwrap();
    assert!(
        archive.contains("2021-01-15") && !archive.contains("2021-01-16"),
        "{archive}"
    );
    let feed = app.get("/archive/feed.xml").await.text().await.unwrap();
    assert!(feed.contains("2021-01-15T19:30:00-05:00"), "{feed}");
    assert_eq!(
        newsletter::domain::archive_slug(
            "Friday digest",
            chrono::DateTime::parse_from_rfc3339("2021-01-16T00:30:00Z")
                .unwrap()
                .with_timezone(&chrono_tz::America::New_York)
                .date_naive()
        ),
        "2021-01-15-friday-digest"
    );
}

#[tokio::test]
async fn an_update_to_lists_that_are_not_public_stays_out_of_the_archive_unless_staff_put_it_in() {
    let app = spawn_staff_app(&[]).await;
    let token = app.api_token().await;
    sqlx::query(
        "INSERT INTO lists (slug, name, description, is_public) VALUES ('board', 'Board', 'Private', false)",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let people = app.seed_confirmed(1, "example.org").await;
    sqlx::query(
        "INSERT INTO subscriptions (subscriber_id, list_id, status)
         SELECT $1, id, 'confirmed' FROM lists WHERE slug = 'board'",
    )
    .bind(people[0].0)
    .execute(&app.pool)
    .await
    .unwrap();
    let id = app.create_update(&token, "Board only").await;
    assert_eq!(
        patch(&app, &token, &id, json!({ "lists": ["board"] }))
            .await
            .status(),
        200
    );
    app.send_now(&token, &id).await;
    app.wait_for_update_status(&id, "sent").await;
    assert!(!app
        .get("/archive")
        .await
        .text()
        .await
        .unwrap()
        .contains("Board only"));
    assert!(!app
        .get("/archive/feed.xml")
        .await
        .text()
        .await
        .unwrap()
        .contains("Board only"));

    let mut ana = signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    let r = ana
        .post(
            &format!("/admin/updates/{id}/archive"),
            &[("in_archive", "true")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert!(app
        .get("/archive")
        .await
        .text()
        .await
        .unwrap()
        .contains("Board only"));
}

/// A member of staff as the operations layer knows them (the staff area's actor), added with
/// an account.
async fn staff_actor(app: &TestApp, email: &str, role: StaffRole) -> newsletter::ops::Actor {
    crate::admin::add_staff(app, email, role).await;
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM staff WHERE email_normalized = $1")
        .bind(email)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    newsletter::ops::Actor::Staff {
        id,
        role,
        email: email.to_owned(),
    }
}

fn approval_rule(threshold: i64) -> [(&'static str, Value); 2] {
    [
        ("sending.require_approval", Value::Boolean(true)),
        ("sending.approval_threshold", threshold.into()),
    ]
}

#[tokio::test]
async fn an_editor_cannot_take_an_admins_schedule_back_by_asking_for_approval() {
    let app = spawn_staff_app(&approval_rule(5)).await;
    app.seed_confirmed(1, "example.org").await;
    let mut ed = signed_in(&app, "ed@example.org", StaffRole::Editor).await;
    let mut ana = signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    let id = compose(&mut ed, "Scheduled by ana", &[]).await;
    let later = [
        ("at", "2031-01-01T09:00"),
        ("time_zone", "America/New_York"),
        ("version", "1"),
    ];
    assert_eq!(
        ana.post(&format!("/admin/updates/{id}/schedule"), &later)
            .await
            .status(),
        303
    );
    assert_eq!(
        status(&app, &id).await,
        "scheduled",
        "one recipient needs no approval"
    );
    let r = ed
        .post(
            &format!("/admin/updates/{id}/request-approval"),
            &[("version", "1")],
        )
        .await;
    assert_eq!(r.status(), 409);
    let (st, at): (String, String) = sqlx::query_as(
        "SELECT status, to_char(scheduled_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') FROM updates WHERE id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (st.as_str(), at.as_str()),
        ("scheduled", "2031-01-01 14:00")
    );
}

/// An app without a worker under the two-person rule for more than one recipient, with
/// `readers` readers and admins ana and bo, and an update ana has sent (as version 1): asked for
/// approval when it needs it.
struct SentByAna {
    app: TestApp,
    settings: newsletter::config::Settings,
    ana: newsletter::ops::Actor,
    bo: newsletter::ops::Actor,
    token: String,
    id: String,
    uuid: uuid::Uuid,
}

async fn sent_by_ana(readers: i64, subject: &str) -> SentByAna {
    let app = spawn_app_without_worker(&approval_rule(1)).await;
    let settings = app.settings.clone();
    let ana = staff_actor(&app, "ana@example.org", StaffRole::Admin).await;
    let bo = staff_actor(&app, "bo@example.org", StaffRole::Admin).await;
    let token = app.api_token().await;
    app.seed_confirmed(readers, "example.org").await;
    let id = app.create_update(&token, subject).await;
    let uuid: uuid::Uuid = id.parse().unwrap();
    let send = newsletter::store::updates::Action::SendNow;
    newsletter::ops::updates::act(&app.pool, &settings, &ana, uuid, send, Some(1))
        .await
        .unwrap();
    SentByAna {
        app,
        settings,
        ana,
        bo,
        token,
        id,
        uuid,
    }
}

#[tokio::test]
async fn who_released_an_update_the_scheduler_holds_for_approval_cannot_approve_it() {
    use newsletter::ops::updates;
    let SentByAna {
        app,
        settings,
        ana,
        bo,
        id,
        uuid,
        ..
    } = sent_by_ana(1, "Grows").await;
    assert_eq!(
        status(&app, &id).await,
        "scheduled",
        "one reader needs no approval"
    );
    app.seed_confirmed_from(1, 2, "example.org").await;
    app.start_worker(&approval_rule(1));
    app.wait_for_update_status(&id, "awaiting_approval").await;
    let view = updates::view(&app.pool, uuid).await.unwrap();
    let request = view.update.approval_requested_at;
    let own = updates::approve(&app.pool, &settings, &ana, uuid, 1, request).await;
    assert!(
        matches!(own, Err(updates::UpdateError::Forbidden(_))),
        "the admin who sent it asked for it: {own:?}"
    );
    updates::approve(&app.pool, &settings, &bo, uuid, 1, request)
        .await
        .unwrap();
    app.wait_for_update_status(&id, "sent").await;
}

#[tokio::test]
async fn a_template_saved_after_the_approval_does_not_change_what_goes_out() {
    use newsletter::ops::updates;
    let SentByAna {
        app,
        settings,
        bo,
        token,
        id,
        uuid,
        ..
    } = sent_by_ana(2, "As approved").await;
    let request = updates::view(&app.pool, uuid)
        .await
        .unwrap()
        .update
        .approval_requested_at;
    updates::approve(&app.pool, &settings, &bo, uuid, 1, request)
        .await
        .unwrap();
    // Between the approval and the start, someone changes the update template.
    let changed = crate::templates::marked_update(&app, &token, "UNAPPROVED").await;
    let r = app
        .api(
            Method::PUT,
            "/api/v1/templates/update",
            &token,
            Some(changed),
        )
        .await;
    assert_eq!(r.status(), 200);
    app.start_worker(&approval_rule(1));
    app.wait_for_update_status(&id, "sent").await;
    let all: Vec<_> = mails(&app)
        .into_iter()
        .filter(|(to, _, _)| to.starts_with("reader"))
        .collect();
    assert_eq!(all.len(), 2);
    for (_, subject, text) in all {
        assert_eq!(subject, "As approved");
        assert!(!text.contains("UNAPPROVED"), "{text}");
    }
}

#[tokio::test]
async fn an_approval_answers_the_request_it_saw_and_no_later_one() {
    let app = approval_app().await;
    let mut ana = signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    let mut bo = signed_in(&app, "bo@example.org", StaffRole::Admin).await;
    let id = compose(&mut ana, "Asked twice", &[]).await;
    let later = [
        ("at", "2031-06-01T09:00"),
        ("time_zone", "America/New_York"),
        ("version", "1"),
    ];
    ana.post(&format!("/admin/updates/{id}/schedule"), &later)
        .await;
    let page = bo
        .get(&format!("/admin/updates/{id}"))
        .await
        .text()
        .await
        .unwrap();
    let seen = hidden(&page, "requested_at");
    // ana withdraws and asks again, now for "send now", on the same version.
    ana.post(&format!("/admin/updates/{id}/unschedule"), &[])
        .await;
    let form = send_key(&mut ana, &id).await;
    ana.post(&format!("/admin/updates/{id}/send"), &form.fields())
        .await;
    assert_eq!(status(&app, &id).await, "awaiting_approval");
    let r = bo
        .post(
            &format!("/admin/updates/{id}/approve"),
            &[("version", "1"), ("requested_at", &seen)],
        )
        .await;
    assert_eq!(r.status(), 409, "that request was withdrawn");
    assert_eq!(status(&app, &id).await, "awaiting_approval");
    // A form posted without the request it answers approves nothing either. (Before, leaving
    // the field out approved whatever was asked.)
    let r = bo
        .post(&format!("/admin/updates/{id}/approve"), &[("version", "1")])
        .await;
    assert_eq!(r.status(), 409, "an approval names the request it answers");
    assert_eq!(status(&app, &id).await, "awaiting_approval");
}

#[tokio::test]
async fn noncharacters_are_refused_where_they_enter_and_never_reach_the_feed() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.seed_confirmed(1, "example.org").await;
    let r = app
        .api(
            Method::POST,
            "/api/v1/updates",
            &token,
            Some(json!({ "subject": "Nonchar \u{fffe} subject \u{ffff}", "lists": ["us-icc-updates"] })),
        )
        .await;
    assert_eq!(r.status(), 422);
    let body = r.json::<serde_json::Value>().await.unwrap();
    assert!(
        body["errors"]["subject"]
            .as_str()
            .unwrap()
            .contains("U+FFFE"),
        "{body}"
    );
    // One stored before the rule: the feed leaves the character out and stays well-formed.
    let id = app.create_and_send(&token, "Stored before").await;
    app.wait_for_update_status(&id, "sent").await;
    sqlx::query("UPDATE updates SET subject = 'Stored \u{ffff} before' WHERE id = $1::uuid")
        .bind(&id)
        .execute(&app.pool)
        .await
        .unwrap();
    let feed = app.get("/archive/feed.xml").await.text().await.unwrap();
    assert!(
        feed.contains("Stored  before") && !feed.contains('\u{ffff}'),
        "{feed}"
    );
}

#[tokio::test]
async fn the_staff_area_answers_the_test_mail_limit_with_retry_after_and_archive_takes_only_true_or_false(
) {
    let app = spawn_staff_app(&[("sending.test_mails_per_hour", 1.into())]).await;
    let mut ana = signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    let id = compose(&mut ana, "Limited", &[]).await;
    let test = |to: &'static str| [("to", to)];
    assert_eq!(
        ana.post(&format!("/admin/updates/{id}/test"), &test("a@example.org"))
            .await
            .status(),
        303
    );
    let over = ana
        .post(&format!("/admin/updates/{id}/test"), &test("b@example.org"))
        .await;
    assert_eq!(over.status(), 429);
    assert!(over.headers().contains_key("retry-after"));
    for bad in ["maybe", "", "TRUE", "1"] {
        let r = ana
            .post(
                &format!("/admin/updates/{id}/archive"),
                &[("in_archive", bad)],
            )
            .await;
        assert_eq!(r.status(), 422, "{bad:?}");
    }
    let archive_entries: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action LIKE 'archive-%'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(archive_entries, 0);
}
