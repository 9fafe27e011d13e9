//! The character rule (`domain::text`) at every door: a text that reaches XML, HTML or a mail
//! header may hold no C0 control but tab and line ends, no noncharacter (U+FFFE, U+FFFF, …) and
//! no unpaired surrogate; the API answers `422` naming the field, the staff area shows the
//! field's error on its form, the sign-up form names it, an import refuses the row by its line.
//! (What a feed brings is cleaned instead: `feeds.rs`.)

use std::time::{Duration, Instant};

use newsletter::domain::StaffRole;
use reqwest::Method;
use serde_json::{json, Value};

use crate::admin::{signed_in, spawn_staff_app};
use crate::helpers::{spawn_app, TestApp};

async fn errors_of(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    body["errors"].clone()
}

/// A raw JSON body: the only way to send an unpaired surrogate escape.
async fn post_raw_json(app: &TestApp, token: &str, path: &str, body: &str) -> reqwest::Response {
    app.http
        .post(app.url(path))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_api_refuses_controls_noncharacters_and_unpaired_surrogates_naming_the_field() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    for (body, field, named) in [
        (json!({"title": "Ruling \u{FFFF}"}), "title", "U+FFFF"),
        (
            json!({"title": "Ruling", "summary": "bell \u{7}"}),
            "summary",
            "U+0007",
        ),
        (
            json!({"title": "Ruling", "source": "Court \u{FFFE}"}),
            "source",
            "U+FFFE",
        ),
    ] {
        let errors = errors_of(
            app.api(Method::POST, "/api/v1/news", &token, Some(body))
                .await,
        )
        .await;
        let message = errors[field].as_str().unwrap_or_default();
        assert!(message.contains(named), "{field}: {errors}");
    }
    let both = errors_of(
        app.api(
            Method::POST,
            "/api/v1/news",
            &token,
            Some(json!({"title": "\u{FFFF}", "summary": "\u{1}"})),
        )
        .await,
    )
    .await;
    assert!(
        both["title"].is_string() && both["summary"].is_string(),
        "{both}"
    );

    let created: Value = app
        .api(
            Method::POST,
            "/api/v1/news",
            &token,
            Some(json!({"title": "Fine"})),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    let patched = errors_of(
        app.api(
            Method::PATCH,
            &format!("/api/v1/news/{id}"),
            &token,
            Some(json!({"title": "Fine \u{FFFE}"})),
        )
        .await,
    )
    .await;
    assert!(patched["title"].is_string(), "{patched}");

    for (raw, field) in [
        (r#"{"title": "Ruling \ud800 today"}"#, "title"),
        (r#"{"title": "Ruling", "summary": "\udc00"}"#, "summary"),
        (
            r#"{"title": "Ruling", "summary": "x\ud800\u0041"}"#,
            "summary",
        ),
        (
            r#"{"subject": "S", "lists": ["us-icc-updates"],
                "news_items": [{"title": "ok"}, {"title": "\ud83d\ude00 \udfff"}]}"#,
            "news_items[1].title",
        ),
    ] {
        let path = if field.starts_with("news_items") {
            "/api/v1/updates"
        } else {
            "/api/v1/news"
        };
        let errors = errors_of(post_raw_json(&app, &token, path, raw).await).await;
        let message = errors[field].as_str().unwrap_or_default();
        assert!(message.contains("unpaired surrogate"), "{raw}: {errors}");
    }
    // A surrogate pair is one character: welcome.
    let pair = post_raw_json(
        &app,
        &token,
        "/api/v1/news",
        r#"{"title": "Smile \ud83d\ude00"}"#,
    )
    .await;
    assert_eq!(pair.status(), 201);
    assert_eq!(pair.json::<Value>().await.unwrap()["title"], "Smile 😀");

    let person = errors_of(
        app.api(
            Method::POST,
            "/api/v1/subscribers",
            &token,
            Some(json!({"email": "ann@example.org", "name": "Ann \u{FFFF}", "source": "a test"})),
        )
        .await,
    )
    .await;
    assert!(
        person["name"]
            .as_str()
            .unwrap_or_default()
            .contains("U+FFFF"),
        "{person}"
    );
    let list = errors_of(
        app.api(
            Method::POST,
            "/api/v1/lists",
            &token,
            Some(json!({"slug": "watch", "name": "Watch \u{FFFE}", "description": "bell \u{7}"})),
        )
        .await,
    )
    .await;
    assert!(
        list["name"].is_string() && list["description"].is_string(),
        "{list}"
    );

    let stored: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM news) + (SELECT count(*) FROM subscribers)
                + (SELECT count(*) FROM lists WHERE slug = 'watch')",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(stored, 2, "only the two good news items");
}

#[tokio::test]
async fn the_staff_area_and_the_sign_up_form_show_the_refused_field() {
    let app = spawn_staff_app(&[]).await;
    let mut ana = signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    let page = ana
        .post(
            "/admin/news",
            &[("title", "Ruling \u{FFFF}"), ("summary", "bell \u{7}")],
        )
        .await;
    assert_eq!(page.status(), 422);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("title: The title cannot contain the noncharacter U+FFFF."),
        "{html}"
    );
    assert!(
        html.contains("summary: The summary cannot contain the control character U+0007."),
        "{html}"
    );

    let people = app.seed_confirmed(1, "example.org").await;
    let id = people[0].0;
    let page = ana
        .post(
            &format!("/admin/subscribers/{id}"),
            &[("name", "Reader \u{FFFF}"), ("state", "")],
        )
        .await;
    assert_eq!(page.status(), 422);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("The name cannot contain the noncharacter U+FFFF."),
        "{html}"
    );
    let name: String = sqlx::query_scalar("SELECT name FROM subscribers WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(name, "Reader 0");

    let signup = app
        .post_json(
            "/subscriptions",
            &json!({"email": "new@example.org", "name": "New \u{FFFE}"}),
        )
        .await;
    let errors = errors_of(signup).await;
    assert!(
        errors["name"]
            .as_str()
            .unwrap_or_default()
            .contains("U+FFFE"),
        "{errors}"
    );
}

#[tokio::test]
async fn an_import_refuses_a_row_whose_name_holds_a_noncharacter_by_its_line() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let csv = "email,name\nann@example.org,Ann\nbob@example.org,Bob \u{FFFF}\ncy@example.org,Cy\n";
    let started = app
        .http
        .post(app.url("/api/v1/imports?list=us-icc-updates&mode=confirmed&source=Fair%202026"))
        .bearer_auth(&token)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    let id = started.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let begun = Instant::now();
    let job = loop {
        let job: Value = app
            .api(Method::GET, &format!("/api/v1/imports/{id}"), &token, None)
            .await
            .json()
            .await
            .unwrap();
        if job["status"] != "running" {
            break job;
        }
        assert!(begun.elapsed() < Duration::from_secs(60), "import stuck");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(job["imported"], 2);
    assert_eq!(job["refused"], 1);
    assert_eq!(job["errors"][0]["line"], 3);
    assert_eq!(job["errors"][0]["field"], "name");
    assert!(
        job["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("U+FFFF"),
        "{job}"
    );
}

/// One-line texts refuse what reorders or breaks a line without being a control: a right-to-left
/// override makes `abc\u{202E}txt.exe` show as `abcexe.txt` on a staff page (found from
/// outside in a token name), and U+2028 breaks a "one-line" subject.
#[tokio::test]
async fn a_bidirectional_override_or_line_separator_in_a_one_line_text_is_refused() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    for (title, named) in [
        ("abc\u{202E}txt.exe", "bidirectional control U+202E"),
        ("Senate\u{2028}hearing", "line separator U+2028"),
    ] {
        let r = app
            .api(
                Method::POST,
                "/api/v1/news",
                &token,
                Some(serde_json::json!({ "title": title })),
            )
            .await;
        assert_eq!(r.status(), 422, "{title:?}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(
            body["errors"]["title"]
                .as_str()
                .unwrap_or("")
                .contains(named),
            "{body}"
        );
    }
    let kept = app
        .api(
            Method::POST,
            "/api/v1/news",
            &token,
            Some(serde_json::json!({ "title": "A title", "summary": "Two\u{2028}lines" })),
        )
        .await;
    assert_eq!(kept.status(), 201, "a text of several lines keeps them");
}
