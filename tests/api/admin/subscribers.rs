//! Subscribers in the staff area: search, the record with its consent log, edit, unsubscribe,
//! erase (admins, confirmed), export (admins); the audit log of staff actions.

use newsletter::domain::StaffRole;

use super::{signed_in, spawn_staff_app};
use crate::helpers::TestApp;

async fn audit(app: &TestApp) -> Vec<(String, String)> {
    sqlx::query_as("SELECT actor, action FROM audit_log ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_editor_finds_a_subscriber_and_sees_the_consent_log_and_an_admin_unsubscribes_them() {
    let app = spawn_staff_app(&[]).await;
    assert_eq!(app.signup("Wrote.In@Example.org").await.status(), 303);
    app.seed_confirmed(30, "example.org").await;
    let mut editor = signed_in(&app, "ed@example.org", StaffRole::Editor).await;

    let page = editor.get("/admin/subscribers?query=OTE.IN").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let marker = "href=\"/admin/subscribers/";
    let start = html.find(marker).expect("one match") + marker.len();
    let id = &html[start..start + 36];
    assert_eq!(html.matches(marker).count(), 1, "only the one who wrote in");
    assert!(html.to_lowercase().contains("wrote.in@example.org"));

    let record = editor.get(&format!("/admin/subscribers/{id}")).await;
    let html = record.text().await.unwrap();
    let log = &html[html.find("id=\"consent-log\"").unwrap()..];
    assert!(log.contains("<td>signup</td><td>form</td>"), "{log}");
    assert!(
        html.contains("confirmation"),
        "the confirmation mail is listed"
    );
    assert!(
        !html.contains("id=\"erase\"") && !html.contains("id=\"unsubscribe\""),
        "an editor is offered neither erasure nor unsubscribing"
    );

    let mut admin = signed_in(&app, "ad@example.org", StaffRole::Admin).await;
    let r = admin
        .post(&format!("/admin/subscribers/{id}/unsubscribe"), &[])
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        app.subscriber_status("wrote.in@example.org")
            .await
            .as_deref(),
        Some("unsubscribed")
    );
    let html = editor
        .get(&format!("/admin/subscribers/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("<td>unsubscribe</td><td>admin</td>"),
        "logged"
    );
    assert_eq!(
        audit(&app).await.last().unwrap(),
        &("ad@example.org".to_owned(), "unsubscribe".to_owned())
    );

    let pages = editor.get("/admin/subscribers?status=confirmed").await;
    let html = pages.text().await.unwrap();
    assert_eq!(html.matches(marker).count(), 30);
    assert!(!html.contains("id=\"next-page\""), "30 fit on one page");
}

#[tokio::test]
async fn an_editor_cannot_export_or_erase() {
    let app = spawn_staff_app(&[]).await;
    let people = app.seed_confirmed(1, "example.org").await;
    let mut editor = signed_in(&app, "ed@example.org", StaffRole::Editor).await;
    assert_eq!(editor.get("/admin/subscribers/export").await.status(), 403);
    let r = editor
        .post(
            &format!("/admin/subscribers/{}/erase", people[0].0),
            &[("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        editor.get("/admin/audit").await.status(),
        200,
        "reads the audit log"
    );
    assert_eq!(
        app.subscriber_status(&people[0].1).await.as_deref(),
        Some("confirmed")
    );
    assert!(
        !audit(&app)
            .await
            .iter()
            .any(|(_, a)| a == "export" || a == "erase"),
        "nothing was done"
    );
}

#[tokio::test]
async fn an_admin_erases_only_after_confirming_and_the_audit_log_shows_each_action() {
    let app = spawn_staff_app(&[]).await;
    let people = app.seed_confirmed(2, "example.org").await;
    let mut admin = signed_in(&app, "ad@example.org", StaffRole::Admin).await;
    let erase = format!("/admin/subscribers/{}/erase", people[0].0);

    let unconfirmed = admin.post(&erase, &[]).await;
    assert_eq!(unconfirmed.status(), 422);
    assert_eq!(
        app.subscriber_status(&people[0].1).await.as_deref(),
        Some("confirmed")
    );
    let erased = admin.post(&erase, &[("confirm", "yes")]).await;
    assert_eq!(erased.status(), 303);
    let told = admin
        .get(erased.headers()["location"].to_str().unwrap())
        .await
        .text()
        .await
        .unwrap();
    assert!(told.contains("The subscriber was erased"), "{told}");
    assert_eq!(app.subscriber_status(&people[0].1).await, None);
    let suppressed: i64 = sqlx::query_scalar("SELECT count(*) FROM suppressions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(suppressed, 1, "the same erasure as the subscriber's own");

    let csv = admin.get("/admin/subscribers/export?query=reader").await;
    assert_eq!(csv.status(), 200);
    let body = csv.text().await.unwrap();
    assert!(body.starts_with("email,name,status,state,created_at,lists,pending_lists\n"));
    assert!(body.contains(&people[1].1) && !body.contains(&people[0].1));

    let r = admin
        .post(
            "/admin/staff",
            &[("email", "new@example.org"), ("role", "editor")],
        )
        .await;
    assert_eq!(r.status(), 200);
    let entries = audit(&app).await;
    let who = |actor: &str, action: &str| (actor.to_owned(), action.to_owned());
    assert_eq!(
        entries,
        [
            who("command line", "staff-add"),
            who("ad@example.org", "sign-in"),
            who("ad@example.org", "erase"),
            who("ad@example.org", "export"),
            who("ad@example.org", "staff-add"),
        ]
    );

    let log = admin.get("/admin/audit").await;
    assert_eq!(log.status(), 200);
    let html = log.text().await.unwrap();
    for action in ["sign-in", "erase", "export", "staff-add"] {
        assert!(html.contains(&format!("<td>{action}</td>")), "{action}");
    }
    let only_exports = admin
        .get("/admin/audit?action=export")
        .await
        .text()
        .await
        .unwrap();
    assert!(!only_exports.contains("<td>staff-add</td>"));

    let changed = sqlx::query("UPDATE audit_log SET actor = 'someone else'")
        .execute(&app.pool)
        .await;
    assert!(changed.is_err(), "the audit log is append-only");
    let removed = sqlx::query("DELETE FROM audit_log")
        .execute(&app.pool)
        .await;
    assert!(removed.is_err(), "the audit log is append-only");
}
