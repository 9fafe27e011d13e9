//! Archived lists (`POST /api/v1/lists/{slug}/archive` and `/unarchive`): no sign-ups, imports
//! or sends, hidden from the public forms, members and counts kept; an update scheduled before
//! its list was archived does not start and says why.

use std::time::{Duration, Instant};

use newsletter::domain::subscriber_link::{sign, LinkPurpose};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp, SECRET_KEY};

const WAIT: Duration = Duration::from_secs(30);

async fn archive(app: &TestApp, token: &str, slug: &str, archived: bool) -> Value {
    let action = if archived { "archive" } else { "unarchive" };
    let r = app
        .api(
            Method::POST,
            &format!("/api/v1/lists/{slug}/{action}"),
            token,
            None,
        )
        .await;
    assert_eq!(r.status(), 200, "{action} {slug}");
    r.json().await.unwrap()
}

async fn signup_json(app: &TestApp, email: &str, list: &str) -> reqwest::Response {
    app.post_json("/subscriptions", &json!({"email": email, "lists": [list]}))
        .await
}

#[tokio::test]
async fn an_archived_list_takes_no_signups_imports_or_updates_and_keeps_its_members() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let created = app
        .api(
            Method::POST,
            "/api/v1/lists",
            &token,
            Some(json!({"slug": "spring-drive", "name": "Spring drive", "public": true})),
        )
        .await;
    assert_eq!(created.status(), 201);
    let member = app
        .api(
            Method::POST,
            "/api/v1/subscribers",
            &token,
            Some(
                json!({"email": "ana@example.org", "source": "town hall sheet",
                        "lists": ["spring-drive", "us-icc-updates"]}),
            ),
        )
        .await;
    assert_eq!(member.status(), 201);
    assert!(app
        .get("/")
        .await
        .text()
        .await
        .unwrap()
        .contains("spring-drive"));

    let list = archive(&app, &token, "spring-drive", true).await;
    assert!(list["archived_at"].is_string(), "{list}");
    assert_eq!(list["confirmed_subscribers"], 1, "members and counts stay");

    // No sign-ups: a 4xx naming the field, and the form no longer offers the list.
    let refused = signup_json(&app, "bo@example.org", "spring-drive").await;
    assert_eq!(refused.status(), 422);
    let body = refused.text().await.unwrap();
    assert!(
        body.contains("lists") && body.contains("archived"),
        "{body}"
    );
    assert!(!app
        .get("/")
        .await
        .text()
        .await
        .unwrap()
        .contains("spring-drive"));

    // No imports: the job is refused before it starts, and a row naming it is refused.
    let import = |query: &'static str, csv: &'static str| {
        app.http
            .post(app.url(&format!("/api/v1/imports?{query}")))
            .bearer_auth(&token)
            .header("content-type", "text/csv")
            .body(csv)
            .send()
    };
    let r = import(
        "list=spring-drive&mode=confirmed&source=sheet",
        "email\ncy@example.org\n",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 422);
    let body = r.text().await.unwrap();
    assert!(body.contains("list") && body.contains("archived"), "{body}");
    let r = import(
        "list=us-icc-updates&mode=confirmed&source=sheet",
        "email,lists\ncy@example.org,spring-drive\n",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let job = wait_for_import(&app, &token, &id).await;
    assert_eq!(
        (job["imported"].as_i64(), job["refused"].as_i64()),
        (Some(0), Some(1)),
        "{job}"
    );
    assert_eq!(job["errors"][0]["field"], "lists", "{job}");

    // No new updates for it.
    let update = app
        .api(
            Method::POST,
            "/api/v1/updates",
            &token,
            Some(json!({"subject": "Spring", "intro": "Hello", "lists": ["spring-drive"]})),
        )
        .await;
    assert_eq!(update.status(), 422);
    assert!(update.text().await.unwrap().contains("archived"));

    // The member's page offers only open lists; saving it leaves the archived membership be.
    let ana: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM subscribers WHERE email_normalized = 'ana@example.org'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let manage = format!(
        "/manage/{}",
        sign(SECRET_KEY.as_bytes(), LinkPurpose::Manage, ana, 1).as_str()
    );
    let page = app.get(&manage).await.text().await.unwrap();
    assert!(
        page.contains("us-icc-updates") && !page.contains("spring-drive"),
        "{page}"
    );
    let saved = app
        .http
        .post(app.url(&manage))
        .header("origin", &app.address)
        .form(&[("action", "save"), ("lists", "us-icc-updates")])
        .send()
        .await
        .unwrap();
    assert!(saved.status().is_success() || saved.status().is_redirection());
    assert_eq!(membership(&app, "spring-drive").await, ["confirmed"]);

    // Reopened, it takes sign-ups again; its creation and both changes are in the audit log.
    let list = archive(&app, &token, "spring-drive", false).await;
    assert!(list["archived_at"].is_null());
    assert!(signup_json(&app, "bo@example.org", "spring-drive")
        .await
        .status()
        .is_success());
    let audited: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_log WHERE subject = 'spring-drive' ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(audited, ["list-create", "list-archive", "list-unarchive"]);
}

/// Statuses of the subscriptions to `slug`.
async fn membership(app: &TestApp, slug: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT s.status FROM subscriptions s JOIN lists l ON l.id = s.list_id
         WHERE l.slug = $1 ORDER BY s.status",
    )
    .bind(slug)
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

async fn wait_for_import(app: &TestApp, token: &str, id: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let job: Value = app
            .api(Method::GET, &format!("/api/v1/imports/{id}"), token, None)
            .await
            .json()
            .await
            .unwrap();
        if job["status"] != "running" {
            return job;
        }
        assert!(Instant::now() < deadline, "import stuck: {job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_update_scheduled_before_its_list_was_archived_does_not_start_and_says_why() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.seed_confirmed(2, "example.org").await;
    let id = app.create_update(&token, "Due soon").await;
    let at = (chrono::Utc::now() + chrono::Duration::seconds(1)).to_rfc3339();
    let r = app
        .api(
            Method::POST,
            &format!("/api/v1/updates/{id}/schedule"),
            &token,
            Some(json!({"at": at})),
        )
        .await;
    assert_eq!(r.status(), 200);
    archive(&app, &token, "us-icc-updates", true).await;

    let deadline = Instant::now() + WAIT;
    let view = loop {
        let view = app.update_view(&token, &id).await;
        if view["status"] == "paused" {
            break view;
        }
        assert!(Instant::now() < deadline, "never paused: {view}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let reason = view["status_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("us-icc-updates is archived"), "{view}");
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE update_id = $1::uuid")
            .bind(&id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(rows, 0, "not started");
    for action in ["resume", "send"] {
        let r = app
            .api(
                Method::POST,
                &format!("/api/v1/updates/{id}/{action}"),
                &token,
                None,
            )
            .await;
        assert_eq!(r.status(), 422, "{action}");
        assert!(r.text().await.unwrap().contains("archived"));
    }
    assert_eq!(app.smtp.count(), 0);

    archive(&app, &token, "us-icc-updates", false).await;
    let r = app
        .api(
            Method::POST,
            &format!("/api/v1/updates/{id}/resume"),
            &token,
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    app.smtp.wait_for(2, WAIT).await;
}
