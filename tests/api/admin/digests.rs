//! `/admin/feeds` and `/admin/digests`: the staff door to feeds and digest schedules (the rules
//! are tested through the API; here that the pages are wired and an editor cannot set up a
//! digest that sends without review).

use newsletter::domain::StaffRole;

use super::{signed_in, spawn_staff_app};

#[tokio::test]
async fn staff_follow_a_feed_and_see_it_with_its_state() {
    let app = spawn_staff_app(&[]).await;
    let mut editor = signed_in(&app, "editor@example.org", StaffRole::Editor).await;

    let added = editor
        .post(
            "/admin/feeds",
            &[
                ("url", "https://court.example/press.xml"),
                ("topic", "court"),
            ],
        )
        .await;
    assert_eq!(added.status(), 303);
    let refused = editor
        .post("/admin/feeds", &[("url", "file:///etc/passwd")])
        .await;
    assert_eq!(refused.status(), 422);
    let page = refused.text().await.unwrap();
    assert!(
        page.contains("is not an http:// or https:// address"),
        "{page}"
    );

    let page = editor.get("/admin/feeds").await.text().await.unwrap();
    assert!(page.contains("https://court.example/press.xml"));
    assert!(page.contains("awaiting review"));

    // What the worker recorded of a failed read is shown, escaped.
    let id: uuid::Uuid = sqlx::query_scalar(
        "UPDATE feeds SET last_error = 'the server answered 404 <Not Found>', last_error_at = now() RETURNING id",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let page = editor.get("/admin/feeds").await.text().await.unwrap();
    assert!(
        page.contains("the server answered 404 &lt;Not Found&gt;"),
        "{page}"
    );

    let trust = format!("/admin/feeds/{id}/trust");
    let refused = editor.post(&trust, &[("approve", "true")]).await;
    assert_eq!(refused.status(), 403, "trusting a feed is an admin's");
    let mut admin = signed_in(&app, "admin@example.org", StaffRole::Admin).await;
    let trusted = admin.post(&trust, &[("approve", "true")]).await;
    assert_eq!(trusted.status(), 303);
    let page = editor.get("/admin/feeds").await.text().await.unwrap();
    assert!(page.contains("approved at once"), "{page}");
    assert!(
        !page.contains(&format!("action=\"/admin/feeds/{id}/delete\"")),
        "an editor is offered no change to a trusted feed"
    );
}

#[tokio::test]
async fn an_editor_sets_up_a_review_digest_but_not_one_that_sends_on_its_own() {
    let app = spawn_staff_app(&[]).await;
    let mut editor = signed_in(&app, "editor@example.org", StaffRole::Editor).await;
    let form = |mode: &'static str| {
        vec![
            ("name", "Friday digest"),
            ("lists", "us-icc-updates"),
            ("topics", "court"),
            ("intro", "{{count}} items this week."),
            ("frequency", "weekly"),
            ("weekdays", "friday"),
            ("time", "16:30"),
            ("time_zone", "America/Chicago"),
            ("mode", mode),
        ]
    };

    let refused = editor.post("/admin/digests", &form("send")).await;
    assert_eq!(refused.status(), 403);
    let created = editor.post("/admin/digests", &form("review")).await;
    assert_eq!(created.status(), 303);
    let location = created.headers()["location"].to_str().unwrap();
    let location = location.split('?').next().unwrap().to_owned();

    let page = editor.get(&location).await.text().await.unwrap();
    assert!(
        page.contains("every Friday at 16:30 America/Chicago"),
        "{page}"
    );
    assert_eq!(
        page.matches(" 16:30 C").count(),
        5,
        "five next occurrences: {page}"
    );
    let list = editor.get("/admin/digests").await.text().await.unwrap();
    assert!(list.contains("Friday digest"));

    let edit = editor
        .get(&format!("{location}/edit"))
        .await
        .text()
        .await
        .unwrap();
    assert!(edit.contains(r#"value="Friday digest""#), "{edit}");
    assert!(edit.contains(r#"value="16:30""#), "{edit}");
    let mut changed = form("review");
    changed.retain(|(k, _)| *k != "time");
    changed.push(("time", "08:15"));
    let saved = editor.post(&location, &changed).await;
    assert_eq!(saved.status(), 303);
    let page = editor.get(&location).await.text().await.unwrap();
    assert!(
        page.contains("every Friday at 08:15 America/Chicago"),
        "{page}"
    );
    let sends = editor.post(&location, &form("send")).await;
    assert_eq!(
        sends.status(),
        403,
        "an editor cannot turn it into a sending digest"
    );

    let mut admin = signed_in(&app, "admin@example.org", StaffRole::Admin).await;
    let sends = admin.post("/admin/digests", &form("send")).await;
    assert_eq!(sends.status(), 303);
}

#[tokio::test]
async fn an_item_a_feed_brought_waits_on_the_desk_until_staff_approve_it() {
    let app = spawn_staff_app(&[]).await;
    let id: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO news (id, title, added_by, status) VALUES (gen_random_uuid(), 'From a feed', 'feed x', 'awaiting_review') RETURNING id",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let mut editor = signed_in(&app, "editor@example.org", StaffRole::Editor).await;

    let page = editor
        .get("/admin/news?review=1")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("From a feed") && page.contains(&format!("id=\"approve-{id}\"")));
    let approved = editor.post(&format!("/admin/news/{id}/approve"), &[]).await;
    assert_eq!(approved.status(), 303);

    let status: String = sqlx::query_scalar("SELECT status FROM news WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(status, "approved");
    let page = editor
        .get("/admin/news?review=1")
        .await
        .text()
        .await
        .unwrap();
    assert!(!page.contains("From a feed"), "{page}");
}
