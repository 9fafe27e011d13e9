//! Mail templates staff edit (issue 11): stored in PostgreSQL with every version, refused
//! unless they compile and render, used by the next mail of every process, reverted to a
//! version or to the shipped default, written to the audit log; and the shipped templates
//! compiled into the binary, which runs from a folder without any.

use std::process::Stdio;
use std::time::Duration;

use newsletter::domain::StaffRole;
use reqwest::Method;
use serde_json::{json, Value};

use crate::admin::{signed_in, spawn_staff_app};
use crate::helpers::{spawn_app, spawn_app_without_worker, TestApp, TestDatabase};
use crate::smtp_server::{ReceivedMail, TestSmtp};

const WAIT: Duration = Duration::from_secs(30);

/// The shipped update template with `marker` put in front of its subject and text.
pub(crate) async fn marked_update(app: &TestApp, token: &str, marker: &str) -> Value {
    let current: Value = app
        .api(Method::GET, "/api/v1/templates/update", token, None)
        .await
        .json()
        .await
        .unwrap();
    json!({
        "subject": format!("{marker} {}", current["subject"].as_str().unwrap()),
        "text": format!("{marker}\n{}", current["text"].as_str().unwrap()),
        "html": current["html"],
    })
}

/// Subject and text part of a received mail.
fn subject_and_text(mail: &ReceivedMail) -> (String, String) {
    let parsed = mail_parser::MessageParser::default()
        .parse(&mail.data)
        .unwrap();
    (
        parsed.subject().unwrap_or_default().to_owned(),
        parsed
            .body_text(0)
            .unwrap_or_default()
            .replace("\r\n", "\n"),
    )
}

/// Sends a test mail of update `id` and returns it once it arrived (the `n`th mail).
async fn test_send(app: &TestApp, token: &str, id: &str, n: usize) -> (String, String) {
    let response = app
        .api(
            Method::POST,
            &format!("/api/v1/updates/{id}/test"),
            token,
            Some(json!({"to": "editor@example.org"})),
        )
        .await;
    assert_eq!(response.status(), 202);
    let mails = app.smtp.wait_for(n, WAIT).await;
    let (subject, text) = subject_and_text(&mails[n - 1]);
    let subject = subject
        .strip_prefix("[Test] ")
        .unwrap_or_else(|| panic!("a test mail is marked: {subject}"))
        .to_owned();
    (subject, text)
}

#[tokio::test]
async fn a_template_that_does_not_compile_is_refused_and_a_good_one_is_used_by_the_next_test_send()
{
    let app = spawn_app().await;
    let token = app.api_token().await;
    let id = app.create_update(&token, "Weekly").await;

    let mut broken = marked_update(&app, &token, "[v1]").await;
    broken["html"] = json!("<p>\n  {{#if name}}Hello {{name}}\n</p>");
    let refused = app
        .api(
            Method::PUT,
            "/api/v1/templates/update",
            &token,
            Some(broken),
        )
        .await;
    assert_eq!(refused.status(), 422);
    let body: Value = refused.json().await.unwrap();
    let why = body["errors"]["html"].as_str().expect("the part is named");
    assert!(why.contains("line"), "the position is given: {why}");
    let (subject, text) = test_send(&app, &token, &id, 1).await;
    assert_eq!(subject, "Weekly", "the shipped template is still in use");
    assert!(!text.contains("[v1]"));

    let good = marked_update(&app, &token, "[v1]").await;
    let saved = app
        .api(Method::PUT, "/api/v1/templates/update", &token, Some(good))
        .await;
    assert_eq!(saved.status(), 200);
    let saved: Value = saved.json().await.unwrap();
    assert_eq!(saved["version"], 1);
    assert_eq!(saved["is_default"], false);
    assert!(saved["saved_by"].as_str().unwrap().starts_with("API token"));
    let (subject, text) = test_send(&app, &token, &id, 2).await;
    assert_eq!(subject, "[v1] Weekly");
    assert!(text.starts_with("[v1]\n"), "{text}");
}

/// Template errors in plain words at the API's door: what is wrong, the line and column, the
/// offending line quoted; never the parser's jargon.
#[tokio::test]
async fn a_broken_template_is_explained_in_plain_words_with_its_line_quoted() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let cases = [
        (
            "<p>\n  {{#if name}}Hello\n</p>",
            "line 2, column 3: a `{{#if}}` block is opened here and never closed (close it with \
             `{{/if}}`): `  {{#if name}}Hello`",
        ),
        (
            "<p>{{#each news_items}}{{title}}{{/if}}</p>",
            "line 1, column 33: `{{/if}}` closes a `{{#each}}` block: close `{{#each}}` with \
             `{{/each}}` first: `<p>{{#each news_items}}{{title}}{{/if}}</p>`",
        ),
        (
            "<p>\n{{{intro_html}}\n</p>",
            "line 2, column 1: this `{{{` is closed with `}}`: an expression opened with three \
             braces ends with three, `}}}`: `{{{intro_html}}`",
        ),
        (
            "<p>{{shout subject}}</p>",
            "line 1, column 4: there is no helper called `shout`",
        ),
    ];
    for (html, words) in cases {
        let mut broken = marked_update(&app, &token, "[x]").await;
        broken["html"] = json!(html);
        let refused = app
            .api(
                Method::PUT,
                "/api/v1/templates/update",
                &token,
                Some(broken),
            )
            .await;
        assert_eq!(refused.status(), 422, "{html}");
        let body: Value = refused.json().await.unwrap();
        let why = body["errors"]["html"].as_str().expect("the part is named");
        assert!(why.starts_with(words), "{html}: {why}");
        assert!(!why.contains("expected"), "{why}");
    }
}

#[tokio::test]
async fn a_saved_template_reaches_a_separate_worker_and_personal_fields_may_be_used_anywhere() {
    let app = spawn_app_without_worker(&[]).await;
    app.start_worker(&[]);
    let token = app.api_token().await;
    app.seed_confirmed(2, "example.org").await;
    let mut template = marked_update(&app, &token, "[v2]").await;
    // A condition on a personal field: a stencil rendered once for everyone would get it wrong.
    template["text"] = json!(format!(
        "{{{{#if (eq email \"reader0@example.org\")}}}}For reader zero.\n{{{{/if}}}}{}",
        template["text"].as_str().unwrap()
    ));
    let saved = app
        .api(
            Method::PUT,
            "/api/v1/templates/update",
            &token,
            Some(template),
        )
        .await;
    assert_eq!(saved.status(), 200);

    app.create_and_send(&token, "Monthly").await;
    let mails = app.smtp.wait_for(2, WAIT).await;
    for mail in &mails {
        let (subject, text) = subject_and_text(mail);
        assert_eq!(subject, "[v2] Monthly");
        let for_zero = mail.rcpt_to == ["reader0@example.org"];
        assert_eq!(
            text.contains("For reader zero."),
            for_zero,
            "{:?}: {text}",
            mail.rcpt_to
        );
    }
}

#[tokio::test]
async fn versions_are_kept_and_a_revert_to_a_version_or_the_default_is_a_new_version_in_the_audit_log(
) {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let id = app.create_update(&token, "Digest").await;
    for marker in ["[a]", "[b]"] {
        let body = marked_update(&app, &token, marker).await;
        let r = app
            .api(Method::PUT, "/api/v1/templates/update", &token, Some(body))
            .await;
        assert_eq!(r.status(), 200);
    }

    let reverted = app
        .api(
            Method::POST,
            "/api/v1/templates/update/revert",
            &token,
            Some(json!({"version": 1})),
        )
        .await;
    assert_eq!(reverted.status(), 200);
    let reverted: Value = reverted.json().await.unwrap();
    assert_eq!(reverted["version"], 3);
    assert_eq!(reverted["reverted_from"], 1);
    assert!(reverted["subject"].as_str().unwrap().starts_with("[a] "));
    let (subject, _) = test_send(&app, &token, &id, 1).await;
    assert_eq!(subject, "[a] Digest");

    let default = app
        .api(
            Method::POST,
            "/api/v1/templates/update/revert",
            &token,
            Some(json!({"default": true})),
        )
        .await;
    assert_eq!(default.status(), 200);
    let default: Value = default.json().await.unwrap();
    assert_eq!(
        (default["version"].clone(), default["is_default"].clone()),
        (json!(4), json!(true))
    );
    let (subject, _) = test_send(&app, &token, &id, 2).await;
    assert_eq!(subject, "Digest");

    let versions: Value = app
        .api(
            Method::GET,
            "/api/v1/templates/update/versions",
            &token,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let numbers: Vec<i64> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [4, 3, 2, 1]);
    let second: Value = app
        .api(
            Method::GET,
            "/api/v1/templates/update/versions/2",
            &token,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(second["subject"].as_str().unwrap().starts_with("[b] "));

    let changes: Vec<(String, Value)> = sqlx::query_as(
        "SELECT subject, detail FROM audit_log WHERE action = 'template' ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let kinds: Vec<&str> = changes
        .iter()
        .map(|(subject, detail)| {
            assert_eq!(subject, "update");
            detail["change"].as_str().unwrap()
        })
        .collect();
    assert_eq!(kinds, ["save", "save", "revert", "revert to default"]);
    let who: Vec<String> =
        sqlx::query_scalar("SELECT actor FROM audit_log WHERE action = 'template'")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert!(who.iter().all(|w| w.starts_with("API token")));
}

#[tokio::test]
async fn unknown_names_and_versions_are_404_and_a_bad_body_names_its_field() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let good = marked_update(&app, &token, "[x]").await;
    for (method, path, body) in [
        (Method::GET, "/api/v1/templates/nope", None),
        (Method::PUT, "/api/v1/templates/nope", Some(good.clone())),
        (Method::GET, "/api/v1/templates/update/versions/7", None),
        (
            Method::POST,
            "/api/v1/templates/update/revert",
            Some(json!({"version": 7})),
        ),
    ] {
        let r = app.api(method.clone(), path, &token, body).await;
        assert_eq!(r.status(), 404, "{method} {path}");
    }
    let shipped: Value = app
        .api(Method::GET, "/api/v1/templates/update", &token, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shipped["version"], Value::Null);
    assert_eq!(shipped["is_default"], true);

    let empty_subject = json!({"subject": "  ", "text": good["text"], "html": good["html"]});
    let r = app
        .api(
            Method::PUT,
            "/api/v1/templates/update",
            &token,
            Some(empty_subject),
        )
        .await;
    assert_eq!(r.status(), 422);
    assert!(r.json::<Value>().await.unwrap()["errors"]["subject"].is_string());
    let both = app
        .api(
            Method::POST,
            "/api/v1/templates/update/revert",
            &token,
            Some(json!({"version": 1, "default": true})),
        )
        .await;
    assert_eq!(both.status(), 422);
    let missing_part = app
        .api(
            Method::PUT,
            "/api/v1/templates/update",
            &token,
            Some(json!({"subject": "x"})),
        )
        .await;
    assert_eq!(missing_part.status(), 422);
}

#[tokio::test]
async fn a_template_with_a_nul_an_oversized_part_or_a_wrong_type_is_refused_by_name_and_not_saved()
{
    let app = spawn_app().await;
    let token = app.api_token().await;
    let good = marked_update(&app, &token, "[x]").await;
    let with = |part: &str, value: Value| {
        let mut body =
            json!({"subject": good["subject"], "text": good["text"], "html": good["html"]});
        body[part] = value;
        body
    };
    let oversized = format!("<p>{}</p>", "x".repeat(200_000));
    for (part, value) in [
        ("subject", json!("Week \u{0} news")),
        ("html", json!(oversized)),
        ("text", json!(42)),
        ("subject", json!(["a list"])),
    ] {
        let r = app
            .api(
                Method::PUT,
                "/api/v1/templates/update",
                &token,
                Some(with(part, value)),
            )
            .await;
        assert_eq!(r.status(), 422, "{part}");
        let body: Value = r.json().await.unwrap();
        assert!(body["errors"][part].is_string(), "{part}: {body}");
    }
    let revert: Value = app
        .api(
            Method::POST,
            "/api/v1/templates/update/revert",
            &token,
            Some(json!({"version": "one"})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(revert["errors"]["version"].is_string(), "{revert}");
    let versions: i64 = sqlx::query_scalar("SELECT count(*) FROM mail_template_versions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(versions, 0);
}

#[tokio::test]
async fn an_editor_reads_and_previews_templates_but_cannot_save_or_revert() {
    let app = spawn_staff_app(&[]).await;
    let mut editor = signed_in(&app, "ed@example.org", StaffRole::Editor).await;
    let page = editor.get("/admin/templates/update").await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("Mail template update") && !page.contains("id=\"save-template\""));

    let fields = [
        ("subject", "[ed] {{subject}}"),
        (
            "text",
            "{{subject}}\n{{manage_url}}\n{{unsubscribe_url}}\n{{postal_address}}",
        ),
        (
            "html",
            "<p>{{subject}}</p><p>{{manage_url}} {{unsubscribe_url}} {{postal_address}}</p>",
        ),
    ];
    let preview = editor
        .post("/admin/templates/update/preview", &fields)
        .await;
    assert_eq!(preview.status(), 200);
    assert!(preview.text().await.unwrap().contains("[ed] Sample update"));
    let save = editor.post("/admin/templates/update", &fields).await;
    assert_eq!(save.status(), 403);
    let revert = editor
        .post("/admin/templates/update/revert", &[("default", "yes")])
        .await;
    assert_eq!(revert.status(), 403);
    let saved: i64 = sqlx::query_scalar("SELECT count(*) FROM mail_template_versions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(saved, 0);

    let mut admin = signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    let save = admin.post("/admin/templates/update", &fields).await;
    assert_eq!(save.status(), 303);
    let who: String = sqlx::query_scalar("SELECT actor FROM audit_log WHERE action = 'template'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(who, "ana@example.org");
    let list = admin.get("/admin/templates").await.text().await.unwrap();
    assert!(list.contains("ana@example.org"), "the list says who saved");
}

#[tokio::test]
async fn the_binary_serves_pages_and_sends_mail_from_a_folder_without_templates() {
    let db = TestDatabase::create().await;
    let smtp = TestSmtp::start().await;
    let dir = std::env::temp_dir().join(format!("newsletter-bare-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = crate::cli::newsletter()
        .current_dir(&dir)
        .env("DATABASE_URL", &db.url)
        .env("NEWSLETTER__SERVER__BIND", "127.0.0.1:0")
        .env("NEWSLETTER__SMTP__URL", smtp.url())
        .env("NEWSLETTER__MAIL__POSTAL_ADDRESS", "1 Main St")
        .env("NEWSLETTER__WORKER__POLL_INTERVAL_MS", "50")
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!(
        "http://127.0.0.1:{}",
        crate::cli::listening_port(&mut child)
    );
    let http = reqwest::Client::new();

    let signup = http.get(format!("{base}/")).send().await.unwrap();
    let login = http
        .get(format!("{base}/admin/login"))
        .send()
        .await
        .unwrap();
    let (signup_status, login_status) = (signup.status().as_u16(), login.status().as_u16());
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let token = crate::helpers::make_api_token(&pool, "bare", "send").await;
    let created: Value = http
        .post(format!("{base}/api/v1/updates"))
        .bearer_auth(token.as_str())
        .json(&json!({"subject": "From anywhere", "lists": ["us-icc-updates"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let test = http
        .post(format!(
            "{base}/api/v1/updates/{}/test",
            created["id"].as_str().unwrap()
        ))
        .bearer_auth(token.as_str())
        .json(&json!({"to": "editor@example.org"}))
        .send()
        .await
        .unwrap();
    let test_status = test.status().as_u16();
    let mails = smtp.wait_for(1, WAIT).await;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);

    assert_eq!((signup_status, login_status, test_status), (200, 200, 202));
    assert_eq!(subject_and_text(&mails[0]).0, "[Test] From anywhere");
}
