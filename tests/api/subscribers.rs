//! `/api/v1/subscribers`: search with keyset pages, the record, add, change, unsubscribe, erase,
//! export; and what the audit log keeps of them.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

/// The audit log's actions, but the making of the test's API token.
async fn audit_actions(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar("SELECT action FROM audit_log WHERE action <> 'token-create' ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_search_by_part_of_the_address_pages_by_keyset_to_the_end() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.seed_confirmed(25, "example.org").await;
    app.seed_confirmed(3, "other.test").await;

    let mut seen = Vec::new();
    let mut path = "/api/v1/subscribers?query=ER1&limit=4".to_owned();
    loop {
        let r = app.api(Method::GET, &path, &token, None).await;
        assert_eq!(r.status(), 200);
        let page: Value = r.json().await.unwrap();
        for s in page["subscribers"].as_array().unwrap() {
            seen.push(s["email"].as_str().unwrap().to_owned());
        }
        match page["next_after"].as_str() {
            Some(after) => path = format!("/api/v1/subscribers?query=ER1&limit=4&after={after}"),
            None => break,
        }
    }
    seen.sort();
    let mut expected: Vec<String> = (0..25)
        .map(|i| format!("reader{i}@example.org"))
        .chain((0..3).map(|i| format!("reader{i}@other.test")))
        .filter(|e| e.contains("er1"))
        .collect();
    expected.sort();
    assert_eq!(seen, expected, "every match once, over several pages");

    let short: Value = app
        .api(
            Method::GET,
            "/api/v1/subscribers?query=re&state=&status=confirmed",
            &token,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        short["subscribers"].as_array().unwrap().len(),
        28,
        "a prefix"
    );
    let none: Value = app
        .api(Method::GET, "/api/v1/subscribers?query=%25", &token, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        none["subscribers"],
        json!([]),
        "% is a character, not a wildcard"
    );

    let bad = app
        .api(
            Method::GET,
            "/api/v1/subscribers?status=gone&after=nonsense",
            &token,
            None,
        )
        .await;
    assert_eq!(bad.status(), 422);
    let body: Value = bad.json().await.unwrap();
    assert!(body["errors"]["status"].is_string(), "{body}");
}

#[tokio::test]
async fn a_subscriber_added_with_a_consent_source_shows_it_in_the_consent_log() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let missing = app
        .api(
            Method::POST,
            "/api/v1/subscribers",
            &token,
            Some(json!({"email": "ana@example.org", "source": " "})),
        )
        .await;
    assert_eq!(missing.status(), 422);
    let created = app
        .api(
            Method::POST,
            "/api/v1/subscribers",
            &token,
            Some(
                json!({"email": "Ana@Example.ORG", "name": "Ana", "state": "ny",
                        "source": "Sign-up sheet, town hall, 12 Nov"}),
            ),
        )
        .await;
    assert_eq!(created.status(), 201);
    let s: Value = created.json().await.unwrap();
    assert_eq!(s["status"], "confirmed");
    assert_eq!(s["state"], "NY");
    assert_eq!(s["lists"][0]["slug"], "us-icc-updates");
    assert_eq!(s["lists"][0]["status"], "confirmed");
    let consent = &s["consent_log"][0];
    assert!(
        consent["consent_text"]
            .as_str()
            .unwrap()
            .contains("Sign-up sheet, town hall"),
        "{consent}"
    );

    let id = s["id"].as_str().unwrap();
    let changed: Value = app
        .api(
            Method::PATCH,
            &format!("/api/v1/subscribers/{id}"),
            &token,
            Some(json!({"name": "Ana María", "lists": []})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(changed["name"], "Ana María");
    assert_eq!(changed["state"], "NY", "absent fields stay");
    assert_eq!(changed["lists"][0]["status"], "unsubscribed");
    // Left on no list, the person is unsubscribed, as on their own preferences page.
    assert_eq!(changed["status"], "unsubscribed", "{changed}");
}

#[tokio::test]
async fn unsubscribe_and_erase_through_the_api_and_neither_comes_back_by_the_api() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let people = app.seed_confirmed(2, "example.org").await;
    let (kept, erased) = (&people[0], &people[1]);

    let r = app
        .api(
            Method::POST,
            &format!("/api/v1/subscribers/{}/unsubscribe", kept.0),
            &token,
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        app.subscriber_status(&kept.1).await.as_deref(),
        Some("unsubscribed")
    );
    let r = app
        .api(
            Method::DELETE,
            &format!("/api/v1/subscribers/{}", erased.0),
            &token,
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    let gone = app
        .api(
            Method::GET,
            &format!("/api/v1/subscribers/{}", erased.0),
            &token,
            None,
        )
        .await;
    assert_eq!(gone.status(), 404);

    for email in [&kept.1, &erased.1] {
        let again = app
            .api(
                Method::POST,
                "/api/v1/subscribers",
                &token,
                Some(json!({"email": email.to_uppercase(), "source": "a list from 2019"})),
            )
            .await;
        assert_eq!(again.status(), 422, "{email} must not come back");
    }
    assert_eq!(
        app.subscriber_status(&kept.1).await.as_deref(),
        Some("unsubscribed")
    );
    assert_eq!(app.subscriber_status(&erased.1).await, None);
    assert_eq!(audit_actions(&app).await, ["unsubscribe", "erase"]);
}

#[tokio::test]
async fn the_export_is_csv_with_formula_cells_defused_and_is_audited() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    for (email, name) in [
        ("ana@example.org", "=HYPERLINK(\"http://evil.example\")"),
        ("bo@example.org", "+1 555"),
        ("cy@example.org", "Cy, \"the\" reader"),
    ] {
        let r = app
            .api(
                Method::POST,
                "/api/v1/subscribers",
                &token,
                Some(json!({"email": email, "name": name, "source": "event"})),
            )
            .await;
        assert_eq!(r.status(), 201);
    }
    let r = app
        .api(
            Method::GET,
            "/api/v1/subscribers/export?query=example",
            &token,
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let body = r.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let mut names: Vec<String> = reader.records().map(|r| r.unwrap()[1].to_owned()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "'+1 555",
            "'=HYPERLINK(\"http://evil.example\")",
            "Cy, \"the\" reader"
        ]
    );
    let detail: Value = sqlx::query_scalar("SELECT detail FROM audit_log WHERE action = 'export'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(detail["rows"], 3);
    assert_eq!(detail["query"], "example");
}

#[tokio::test]
async fn schedule_cancel_and_send_through_the_api_are_in_the_audit_log_with_the_token() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.seed_confirmed(1, "example.org").await;
    let later = app.create_update(&token, "Later").await;
    let at = (chrono::Utc::now() + chrono::Duration::days(2)).to_rfc3339();
    let r = app
        .api(
            Method::POST,
            &format!("/api/v1/updates/{later}/schedule"),
            &token,
            Some(json!({ "at": at })),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .api(
            Method::POST,
            &format!("/api/v1/updates/{later}/cancel"),
            &token,
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let now = app.create_and_send(&token, "Now").await;
    let entries: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT actor, action, subject FROM audit_log
         WHERE action <> 'token-create' ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let actions: Vec<(&str, &str)> = entries
        .iter()
        .map(|(_, a, s)| (a.as_str(), s.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        actions,
        [
            ("update-create", later.as_str()),
            ("schedule", later.as_str()),
            ("cancel", later.as_str()),
            ("update-create", now.as_str()),
            ("send", now.as_str())
        ]
    );
    assert!(entries
        .iter()
        .all(|(who, _, _)| who.starts_with("API token ")));
}
