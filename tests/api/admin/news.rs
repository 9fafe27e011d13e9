//! The news desk: in the staff area and through the API, and picked into updates by id.

use newsletter::domain::StaffRole;
use reqwest::Method;
use serde_json::{json, Value};

use super::{signed_in, spawn_staff_app};
use crate::helpers::spawn_app;

async fn desk_titles(app: &crate::helpers::TestApp) -> Vec<String> {
    sqlx::query_scalar("SELECT title FROM news ORDER BY title")
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_editor_adds_filters_edits_and_deletes_news_items_on_the_desk() {
    let app = spawn_staff_app(&[]).await;
    let mut editor = signed_in(&app, "ed@example.org", StaffRole::Editor).await;
    for (title, topic) in [("Senate hearing", "congress"), ("Assembly opens", "asp")] {
        let r = editor
            .post(
                "/admin/news",
                &[
                    ("title", title),
                    ("url", "https://example.org/a"),
                    ("source", "Reuters"),
                    ("published_on", "2026-11-20"),
                    ("topic", topic),
                    ("summary", "What happened <b>today</b>."),
                ],
            )
            .await;
        assert_eq!(r.status(), 303, "{title}");
    }
    let bad = editor
        .post(
            "/admin/news",
            &[("title", "Bad link"), ("url", "javascript:alert(1)")],
        )
        .await;
    assert_eq!(bad.status(), 422);
    assert!(bad
        .text()
        .await
        .unwrap()
        .contains("only http, https and mailto"));
    assert_eq!(
        desk_titles(&app).await,
        ["Assembly opens", "Senate hearing"]
    );

    let page = editor.get("/admin/news").await.text().await.unwrap();
    assert!(page.contains("What happened") || page.contains("Senate hearing"));
    assert!(page.contains("ed@example.org"), "added by");
    assert!(!page.contains("<b>today</b>"));
    let congress = editor
        .get("/admin/news?topic=congress")
        .await
        .text()
        .await
        .unwrap();
    assert!(congress.contains("Senate hearing") && !congress.contains("Assembly opens"));

    let id: String = sqlx::query_scalar("SELECT id::text FROM news WHERE title = 'Senate hearing'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let edit = editor.get(&format!("/admin/news/{id}")).await;
    assert_eq!(edit.status(), 200);
    let saved = editor
        .post(
            &format!("/admin/news/{id}"),
            &[("title", "Senate hearing, day two"), ("topic", "congress")],
        )
        .await;
    assert_eq!(saved.status(), 303);
    assert_eq!(
        desk_titles(&app).await,
        ["Assembly opens", "Senate hearing, day two"]
    );

    let no_csrf = editor
        .post_with(&format!("/admin/news/{id}/delete"), &[], None)
        .await;
    assert_eq!(no_csrf.status(), 403);
    assert_eq!(desk_titles(&app).await.len(), 2, "nothing deleted");
    let deleted = editor.post(&format!("/admin/news/{id}/delete"), &[]).await;
    assert_eq!(deleted.status(), 303);
    assert_eq!(desk_titles(&app).await, ["Assembly opens"]);
}

#[tokio::test]
async fn a_news_post_without_the_csrf_token_or_from_another_origin_adds_nothing() {
    let app = spawn_staff_app(&[]).await;
    let mut editor = signed_in(&app, "ed@example.org", StaffRole::Editor).await;
    let base = app.settings.server.base_url.as_str().to_owned();
    let csrf = editor.csrf().await;
    let missing = editor
        .post_with("/admin/news", &[("title", "Forged")], Some(&base))
        .await;
    assert_eq!(missing.status(), 403);
    let foreign = editor
        .post_with(
            "/admin/news",
            &[("csrf_token", &csrf), ("title", "Forged")],
            Some("http://127.0.0.1:1"),
        )
        .await;
    assert_eq!(foreign.status(), 403);
    assert!(desk_titles(&app).await.is_empty());
}

#[tokio::test]
async fn the_api_news_desk_feeds_updates_by_id_beside_inline_items() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let mut ids = Vec::new();
    for (title, topic) in [("Desk A", "congress"), ("Desk B", "asp")] {
        let r = app
            .api(
                Method::POST,
                "/api/v1/news",
                &token,
                Some(json!({"title": title, "summary": "S", "source": "ICC",
                            "url": "https://example.org/x", "published_on": "2026-11-21", "topic": topic})),
            )
            .await;
        assert_eq!(r.status(), 201);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["title"], title);
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    let bad = app
        .api(
            Method::POST,
            "/api/v1/news",
            &token,
            Some(json!({"title": ""})),
        )
        .await;
    assert_eq!(bad.status(), 422);

    let patched: Value = app
        .api(
            Method::PATCH,
            &format!("/api/v1/news/{}", ids[0]),
            &token,
            Some(json!({"title": "Desk A, revised"})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(patched["title"], "Desk A, revised");
    assert_eq!(patched["topic"], "congress", "untouched fields stay");

    let update = app
        .api(
            Method::POST,
            "/api/v1/updates",
            &token,
            Some(json!({"subject": "Mixed", "lists": ["us-icc-updates"],
                        "news_items": [{"title": "Inline item"}],
                        "news_item_ids": [ids[1], ids[0]]})),
        )
        .await;
    assert_eq!(update.status(), 201);
    let view: Value = update.json().await.unwrap();
    let titles: Vec<&str> = view["news_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Inline item", "Desk B", "Desk A, revised"]);

    let unknown = app
        .api(
            Method::POST,
            "/api/v1/updates",
            &token,
            Some(json!({"subject": "X", "lists": ["us-icc-updates"],
                        "news_item_ids": ["00000000-0000-4000-8000-000000000000"]})),
        )
        .await;
    assert_eq!(unknown.status(), 422);
    let errors: Value = unknown.json().await.unwrap();
    assert!(errors["errors"]["news_item_ids"].is_string(), "{errors}");

    let update_id = view["id"].as_str().unwrap().to_owned();
    app.seed_confirmed(1, "example.org").await;
    let renamed = app
        .api(
            Method::PATCH,
            &format!("/api/v1/updates/{update_id}"),
            &token,
            Some(json!({"subject": "Mixed, renamed"})),
        )
        .await;
    assert_eq!(renamed.status(), 200, "a patch keeps the desk links");
    app.send_now(&token, &update_id).await;
    app.wait_for_update_status(&update_id, "sent").await;
    let unsent: Value = app
        .api(Method::GET, "/api/v1/news?unsent=true", &token, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(unsent["news"], json!([]), "both went out");
    let all: Value = app
        .api(Method::GET, "/api/v1/news?topic=asp", &token, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["news"].as_array().unwrap().len(), 1);
    assert_eq!(all["news"][0]["sent"], true);
    let text = String::from_utf8_lossy(&app.smtp.messages()[0].data).to_string();
    assert!(
        text.contains("Desk B") && text.contains("Desk A, revised"),
        "{text}"
    );

    let gone = app
        .api(
            Method::DELETE,
            &format!("/api/v1/news/{}", ids[1]),
            &token,
            None,
        )
        .await;
    assert_eq!(gone.status(), 204);
    let missing = app
        .api(
            Method::GET,
            &format!("/api/v1/news/{}", ids[1]),
            &token,
            None,
        )
        .await;
    assert_eq!(missing.status(), 404);
    let kept = app.update_view(&token, &update_id).await;
    assert_eq!(
        kept["news_items"][1]["title"], "Desk B",
        "the sent update keeps its copy"
    );
}

#[tokio::test]
async fn a_staff_form_with_a_nul_or_a_repeated_field_is_refused_by_name() {
    let app = spawn_staff_app(&[]).await;
    let mut editor = signed_in(&app, "ed@example.org", StaffRole::Editor).await;
    let nul = editor
        .post(
            "/admin/news",
            &[("title", "a\u{0}b"), ("topic", "congress")],
        )
        .await;
    assert_eq!(nul.status(), 422);
    assert!(nul.text().await.unwrap().contains("title"));
    let twice = editor
        .post("/admin/news", &[("title", "One"), ("title", "Two")])
        .await;
    assert_eq!(twice.status(), 422);
    let items: i64 = sqlx::query_scalar("SELECT count(*) FROM news")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(items, 0);
}
