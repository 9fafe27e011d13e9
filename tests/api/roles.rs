//! README's role matrix, cell by cell, at each door: every admin-only action an editor's
//! session tries in the staff area is refused `403` with nothing changed; the API refuses the
//! same to a `write` token and anything but reading to a `read` token; the command line acts
//! with an admin's rights through the same operations.

use newsletter::domain::StaffRole;
use reqwest::Method;
use serde_json::{json, Value};

use crate::admin::imports::upload;
use crate::admin::look::{upload_logo, LOGO};
use crate::admin::{add_staff, signed_in, spawn_staff_app, Browser};
use crate::helpers::{make_api_token, TestApp};

/// Rows of the tables staff actions may change, as text, table by table; the columns that
/// change on their own (polling, sessions, last use) are left out.
pub async fn state_of(app: &TestApp) -> Vec<(&'static str, String)> {
    const TABLES: &[(&str, &str)] = &[
        ("subscribers", "SELECT t::text FROM subscribers t"),
        ("subscriptions", "SELECT t::text FROM subscriptions t"),
        ("consent_events", "SELECT t::text FROM consent_events t"),
        ("suppressions", "SELECT t::text FROM suppressions t"),
        ("lists", "SELECT t::text FROM lists t"),
        ("news", "SELECT t::text FROM news t"),
        (
            "feeds",
            "SELECT (id, url, topic, approve, active, added_by)::text FROM feeds",
        ),
        ("digests", "SELECT t::text FROM digests t"),
        ("updates", "SELECT t::text FROM updates t"),
        ("update_versions", "SELECT t::text FROM update_versions t"),
        ("update_lists", "SELECT t::text FROM update_lists t"),
        ("deliveries", "SELECT t::text FROM deliveries t"),
        (
            "mail_template_versions",
            "SELECT t::text FROM mail_template_versions t",
        ),
        (
            "staff",
            "SELECT (id, email, role, password_hash)::text FROM staff",
        ),
        (
            "api_tokens",
            "SELECT (id, name, scope, expires_at, revoked_at)::text FROM api_tokens",
        ),
        ("import_jobs", "SELECT t::text FROM import_jobs t"),
        ("look_versions", "SELECT t::text FROM look_versions t"),
        (
            "brand_logos",
            "SELECT (sha256, content_type, width, height)::text FROM brand_logos",
        ),
        ("audit_log", "SELECT t::text FROM audit_log t"),
    ];
    let mut state = Vec::new();
    for (table, rows) in TABLES {
        let mut all: Vec<String> = sqlx::query_scalar(rows).fetch_all(&app.pool).await.unwrap();
        all.sort();
        state.push((*table, all.join("\n")));
    }
    state
}

/// What there is to act on: people, a draft, a scheduled and a paused update, a trusted and an
/// untrusted feed, a digest in each mode, a token and a member of staff.
struct World {
    token: String,
    person: String,
    draft: String,
    scheduled: String,
    paused: String,
    trusted_feed: String,
    untrusted_feed: String,
    send_digest: String,
    review_digest: String,
    token_id: String,
}

async fn created(app: &TestApp, token: &str, path: &str, body: Value) -> Value {
    let response = app.api(Method::POST, path, token, Some(body)).await;
    assert!(response.status().is_success(), "POST {path}");
    response.json().await.unwrap()
}

fn digest(name: &str, mode: &str) -> Value {
    json!({
        "name": name, "lists": ["us-icc-updates"], "mode": mode,
        "recurrence": { "frequency": "weekly", "weekdays": ["monday"], "time": "09:00" },
    })
}

async fn world(app: &TestApp) -> World {
    let token = app.api_token().await;
    let person = app.seed_confirmed(2, "example.org").await[0].0.to_string();
    let draft = app.create_update(&token, "A draft").await;
    let scheduled = app.create_update(&token, "Scheduled").await;
    let at = json!({ "at": "2030-01-07T09:00:00Z" });
    created(
        app,
        &token,
        &format!("/api/v1/updates/{scheduled}/schedule"),
        at.clone(),
    )
    .await;
    let paused = app.create_update(&token, "Paused").await;
    created(
        app,
        &token,
        &format!("/api/v1/updates/{paused}/schedule"),
        at,
    )
    .await;
    let pause = format!("/api/v1/updates/{paused}/pause");
    assert!(app
        .api(Method::POST, &pause, &token, None)
        .await
        .status()
        .is_success());
    let feed = |url: &str, approve: bool| json!({ "url": url, "approve": approve });
    let trusted_feed = created(
        app,
        &token,
        "/api/v1/feeds",
        feed("https://trusted.example/feed.xml", true),
    )
    .await;
    let untrusted_feed = created(
        app,
        &token,
        "/api/v1/feeds",
        feed("https://untrusted.example/feed.xml", false),
    )
    .await;
    let send_digest = created(app, &token, "/api/v1/digests", digest("Sent", "send")).await;
    let review_digest = created(app, &token, "/api/v1/digests", digest("Reviewed", "review")).await;
    make_api_token(&app.pool, "to revoke", "write").await;
    let token_id: String =
        sqlx::query_scalar("SELECT id::text FROM api_tokens WHERE name = 'to revoke'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    add_staff(app, "other@example.org", StaffRole::Editor).await;
    let id = |v: Value| v["id"].as_str().unwrap().to_owned();
    World {
        token,
        person,
        draft,
        scheduled,
        paused,
        trusted_feed: id(trusted_feed),
        untrusted_feed: id(untrusted_feed),
        send_digest: id(send_digest),
        review_digest: id(review_digest),
        token_id,
    }
}

/// One try of a staff-area action.
enum Try {
    Get(String),
    Post(String, Vec<(&'static str, &'static str)>),
    /// The import form (multipart) with these fields.
    Upload(Vec<(&'static str, &'static str)>),
    /// The Look page's logo form (multipart) with a PNG.
    Logo,
}

fn post(path: impl Into<String>, fields: &[(&'static str, &'static str)]) -> Try {
    Try::Post(path.into(), fields.to_vec())
}

async fn attempt(browser: &mut Browser<'_>, action: &Try) -> u16 {
    match action {
        Try::Get(path) => browser.get(path).await.status().as_u16(),
        Try::Post(path, fields) => browser.post(path, fields).await.status().as_u16(),
        Try::Upload(fields) => {
            let csrf = browser.csrf().await;
            let mut all = vec![("csrf_token", csrf.as_str())];
            all.extend(fields.iter().copied());
            upload(browser, &all, "email\nnew@example.org\n")
                .await
                .status()
                .as_u16()
        }
        Try::Logo => upload_logo(browser, None, ("logo.png", "image/png"), LOGO)
            .await
            .status()
            .as_u16(),
    }
}

/// Every admin-only cell of README's matrix that the staff area offers, as an editor would try
/// it (a form posted directly, without its page), with what each names.
#[rustfmt::skip]
fn admin_only_in_the_staff_area(w: &World) -> Vec<(&'static str, Try)> {
    let person = &w.person;
    let update = |id: &str, action: &str| format!("/admin/updates/{id}/{action}");
    vec![
        ("edit a subscriber", post(format!("/admin/subscribers/{person}"), &[("name", "Renamed"), ("state", ""), ("lists_shown", "1")])),
        ("unsubscribe someone", post(format!("/admin/subscribers/{person}/unsubscribe"), &[])),
        ("erase, confirmed", post(format!("/admin/subscribers/{person}/erase"), &[("confirm", "yes")])),
        ("erase, not confirmed", post(format!("/admin/subscribers/{person}/erase"), &[])),
        ("export", Try::Get("/admin/subscribers/export".into())),
        ("import as confirmed", Try::Upload(vec![("mode", "confirmed"), ("source", "A sheet")])),
        ("import by opt-in", Try::Upload(vec![("mode", "opt-in"), ("source", "A sheet")])),
        ("import, nothing filled in", Try::Upload(vec![])),
        ("create a list", post("/admin/lists", &[("slug", "sneaky"), ("name", "Sneaky")])),
        ("edit a list", post("/admin/lists/us-icc-updates", &[("name", "Renamed")])),
        ("archive a list", post("/admin/lists/us-icc-updates/archive", &[])),
        ("reopen a list", post("/admin/lists/us-icc-updates/unarchive", &[])),
        ("follow a trusted feed", post("/admin/feeds", &[("url", "https://new.example/feed.xml"), ("approve", "1")])),
        ("trust a feed", post(format!("/admin/feeds/{}/trust", w.untrusted_feed), &[("approve", "true")])),
        ("stop trusting a feed", post(format!("/admin/feeds/{}/trust", w.trusted_feed), &[("approve", "false")])),
        ("pause a trusted feed", post(format!("/admin/feeds/{}/active", w.trusted_feed), &[("active", "false")])),
        ("remove a trusted feed", post(format!("/admin/feeds/{}/delete", w.trusted_feed), &[])),
        ("send", post(update(&w.draft, "send"), &[("version", "1"), ("idempotency_key", "k1")])),
        ("schedule", post(update(&w.draft, "schedule"), &[("at", "2030-01-01T09:00"), ("time_zone", "America/New_York"), ("version", "1")])),
        ("unschedule", post(update(&w.scheduled, "unschedule"), &[])),
        ("approve", post(update(&w.scheduled, "approve"), &[("version", "1")])),
        ("pause", post(update(&w.scheduled, "pause"), &[])),
        ("resume", post(update(&w.paused, "resume"), &[])),
        ("cancel", post(update(&w.scheduled, "cancel"), &[])),
        ("retry failed mails", post(update(&w.draft, "retry-failed"), &[])),
        ("leave out of the archive", post(update(&w.draft, "archive"), &[("in_archive", "false")])),
        ("set up a digest sent without review", post("/admin/digests", &[("name", "Sneaky"), ("lists", "us-icc-updates"), ("frequency", "weekly"), ("weekdays", "monday"), ("time", "09:00"), ("mode", "send")])),
        ("change a digest sent without review", post(format!("/admin/digests/{}", w.send_digest), &[("name", "Renamed"), ("lists", "us-icc-updates"), ("frequency", "weekly"), ("weekdays", "monday"), ("time", "09:00"), ("mode", "send")])),
        ("switch a review digest to send", post(format!("/admin/digests/{}", w.review_digest), &[("name", "Reviewed"), ("lists", "us-icc-updates"), ("frequency", "weekly"), ("weekdays", "monday"), ("time", "09:00"), ("mode", "send")])),
        ("pause a digest sent without review", post(format!("/admin/digests/{}/active", w.send_digest), &[("active", "false")])),
        ("delete a digest sent without review", post(format!("/admin/digests/{}/delete", w.send_digest), &[])),
        ("save a template", post("/admin/templates/update", &[("subject", "{{subject}}"), ("text", "x"), ("html", "x")])),
        ("revert a template", post("/admin/templates/update/revert", &[("default", "yes")])),
        ("change the look", post("/admin/look", &[("colour", "#000000"), ("footer", "Sneaky")])),
        ("change the look, refused input", post("/admin/look", &[("colour", "#ffffff")])),
        ("upload a logo", Try::Logo),
        ("remove the logo", post("/admin/look/logo/remove", &[])),
        ("list staff", Try::Get("/admin/staff".into())),
        ("add staff", post("/admin/staff", &[("email", "new@example.org"), ("role", "admin")])),
        ("remove staff", post("/admin/staff/remove", &[("email", "other@example.org")])),
        ("list API tokens", Try::Get("/admin/tokens".into())),
        ("make an API token", post("/admin/tokens", &[("name", "Mine"), ("scope", "send")])),
        ("revoke an API token", Try::Post(format!("/admin/tokens/{}/revoke", w.token_id), vec![])),
    ]
}

#[tokio::test]
async fn an_editor_is_refused_every_admin_only_action_in_the_staff_area_and_nothing_changes() {
    let app = spawn_staff_app(&[]).await;
    let w = world(&app).await;
    let mut editor = signed_in(&app, "ed@example.org", StaffRole::Editor).await;

    let mut wrong = Vec::new();
    for (what, action) in admin_only_in_the_staff_area(&w) {
        let before = state_of(&app).await;
        let status = attempt(&mut editor, &action).await;
        let after = state_of(&app).await;
        let changed: Vec<&str> = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| b != a)
            .map(|(b, _)| b.0)
            .collect();
        if status != 403 || !changed.is_empty() {
            wrong.push(format!("{what}: {status}, changed {changed:?}"));
        }
    }

    assert!(
        wrong.is_empty(),
        "an editor was not refused (or something changed):\n{}",
        wrong.join("\n")
    );
}

#[tokio::test]
async fn an_editor_does_what_the_matrix_gives_editors() {
    let app = spawn_staff_app(&[]).await;
    let w = world(&app).await;
    let mut editor = signed_in(&app, "ed@example.org", StaffRole::Editor).await;

    let page = editor
        .get(&format!("/admin/subscribers/{}", w.person))
        .await;
    assert_eq!(page.status(), 200, "reads a subscriber's record");
    let page = page.text().await.unwrap();
    assert!(
        !page.contains("id=\"save\"") && !page.contains("id=\"unsubscribe\""),
        "is offered no change to the person"
    );
    assert_eq!(
        editor.get("/admin/audit").await.status(),
        200,
        "reads the audit log"
    );
    let follow = [("url", "https://court.example/press.xml")];
    assert_eq!(editor.post("/admin/feeds", &follow).await.status(), 303);
    let pause = [("active", "false")];
    let untrusted = format!("/admin/feeds/{}/active", w.untrusted_feed);
    assert_eq!(editor.post(&untrusted, &pause).await.status(), 303);
    let review = [
        ("name", "Weekly for review"),
        ("lists", "us-icc-updates"),
        ("frequency", "weekly"),
        ("weekdays", "friday"),
        ("time", "16:00"),
        ("mode", "review"),
    ];
    assert_eq!(editor.post("/admin/digests", &review).await.status(), 303);
    let to = [("to", "ed@example.org")];
    let test = format!("/admin/updates/{}/test", w.draft);
    assert_eq!(editor.post(&test, &to).await.status(), 303);

    let trusted: bool = sqlx::query_scalar(
        "SELECT approve FROM feeds WHERE url = 'https://court.example/press.xml'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(!trusted, "an editor's feed waits for review");
}

/// The API's admin-only operations, as a `write` token would try them.
#[rustfmt::skip]
fn admin_only_in_the_api(w: &World) -> Vec<(Method, String, Option<Value>)> {
    let person = &w.person;
    let update = |id: &str, action: &str| format!("/api/v1/updates/{id}/{action}");
    let recurrence = json!({ "frequency": "weekly", "weekdays": ["monday"], "time": "09:00" });
    vec![
        (Method::POST, "/api/v1/subscribers".into(), Some(json!({ "email": "new@example.org", "source": "A fair" }))),
        (Method::PATCH, format!("/api/v1/subscribers/{person}"), Some(json!({ "name": "Renamed" }))),
        (Method::POST, format!("/api/v1/subscribers/{person}/unsubscribe"), None),
        (Method::DELETE, format!("/api/v1/subscribers/{person}"), None),
        (Method::GET, "/api/v1/subscribers/export".into(), None),
        (Method::POST, "/api/v1/lists".into(), Some(json!({ "slug": "sneaky", "name": "Sneaky" }))),
        (Method::PUT, "/api/v1/lists/us-icc-updates".into(), Some(json!({ "name": "Renamed" }))),
        (Method::POST, "/api/v1/lists/us-icc-updates/archive".into(), None),
        (Method::POST, "/api/v1/feeds".into(), Some(json!({ "url": "https://new.example/feed.xml", "approve": true }))),
        (Method::PATCH, format!("/api/v1/feeds/{}", w.untrusted_feed), Some(json!({ "approve": true }))),
        (Method::PATCH, format!("/api/v1/feeds/{}", w.trusted_feed), Some(json!({ "active": false }))),
        (Method::DELETE, format!("/api/v1/feeds/{}", w.trusted_feed), None),
        (Method::POST, update(&w.draft, "send"), None),
        (Method::POST, update(&w.draft, "schedule"), Some(json!({ "at": "2030-01-01T09:00:00Z" }))),
        (Method::POST, update(&w.scheduled, "unschedule"), None),
        (Method::POST, update(&w.scheduled, "pause"), None),
        (Method::POST, update(&w.paused, "resume"), None),
        (Method::POST, update(&w.scheduled, "cancel"), None),
        (Method::POST, update(&w.draft, "retry-failed"), None),
        (Method::PUT, update(&w.draft, "archive"), Some(json!({ "in_archive": false }))),
        (Method::POST, "/api/v1/digests".into(), Some(json!({ "name": "S", "lists": ["us-icc-updates"], "mode": "send", "recurrence": recurrence }))),
        (Method::PATCH, format!("/api/v1/digests/{}", w.send_digest), Some(json!({ "name": "Renamed" }))),
        (Method::PATCH, format!("/api/v1/digests/{}", w.review_digest), Some(json!({ "mode": "send" }))),
        (Method::DELETE, format!("/api/v1/digests/{}", w.send_digest), None),
        (Method::PUT, "/api/v1/templates/update".into(), Some(json!({ "subject": "x", "text": "x", "html": "x" }))),
        (Method::POST, "/api/v1/templates/update/revert".into(), Some(json!({ "default": true }))),
    ]
}

#[tokio::test]
async fn a_write_token_has_an_editors_rights_and_nothing_more() {
    let app = spawn_staff_app(&[]).await;
    let w = world(&app).await;
    let write = app.api_token_of("write").await;
    let import = app
        .http
        .post(app.url("/api/v1/imports?mode=confirmed&source=A%20sheet"))
        .bearer_auth(&write)
        .header("content-type", "text/csv")
        .body("email\nnew@example.org\n")
        .send()
        .await
        .unwrap();
    assert_eq!(import.status(), 403, "an import");

    let mut wrong = Vec::new();
    for (method, path, body) in admin_only_in_the_api(&w) {
        let before = state_of(&app).await;
        let status = app.api(method.clone(), &path, &write, body).await.status();
        if status != 403 || state_of(&app).await != before {
            wrong.push(format!("{method} {path}: {status}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "a write token was not refused:\n{}",
        wrong.join("\n")
    );

    let news = json!({ "title": "Composed with a write token" });
    let r = app
        .api(Method::POST, "/api/v1/news", &write, Some(news))
        .await;
    assert_eq!(r.status(), 201, "composes news");
    let draft = json!({ "subject": "A write token's draft", "lists": ["us-icc-updates"] });
    let r = app
        .api(Method::POST, "/api/v1/updates", &write, Some(draft))
        .await;
    assert_eq!(r.status(), 201, "composes a draft");
    let feed = json!({ "url": "https://court.example/press.xml" });
    let r = app
        .api(Method::POST, "/api/v1/feeds", &write, Some(feed))
        .await;
    assert_eq!(r.status(), 201, "follows an untrusted feed");
    let send = format!("/api/v1/updates/{}/send", w.draft);
    assert_eq!(
        app.api(Method::POST, &send, &w.token, None).await.status(),
        200,
        "the same send with a send token goes through"
    );
}

/// `method` on the document's `path` (its parameters filled by `concrete`) with `token` and a
/// body that is not JSON at all: the status.
async fn with_a_broken_body(app: &TestApp, method: &str, path: &str, token: &str) -> u16 {
    app.http
        .request(method.to_uppercase().parse().unwrap(), app.url(path))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body("{ not json")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_read_token_reads_and_is_refused_every_write_before_its_body_is_read() {
    let app = spawn_staff_app(&[]).await;
    let w = world(&app).await;
    let read = app.api_token_of("read").await;
    let document = crate::openapi::document(&app).await;
    let before = state_of(&app).await;

    let mut wrong = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys().filter(|m| *m != "get") {
            let concrete = path
                .replace("{id}", &w.draft)
                .replace("{slug}", "us-icc-updates")
                .replace("{name}", "update");
            // Not JSON at all: a token that may not write is refused before the body is read.
            let status = with_a_broken_body(&app, method, &concrete, &read).await;
            if status != 403 {
                wrong.push(format!("{method} {path}: {status}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "a read token was not refused:\n{}",
        wrong.join("\n")
    );
    assert_eq!(state_of(&app).await, before, "nothing changed");

    let r = app
        .api(
            Method::GET,
            &format!("/api/v1/updates/{}", w.draft),
            &read,
            None,
        )
        .await;
    assert_eq!(r.status(), 200, "it reads");
    let r = app
        .api(Method::GET, "/api/v1/subscribers/export", &read, None)
        .await;
    assert_eq!(r.status(), 403, "an export is an admin's, though a GET");
}

/// The operations an admin's (`send`) token alone may call whatever their body says: the
/// document names the role `send` in their `security`.
#[rustfmt::skip]
const ADMIN_ONLY_OPERATIONS: &[(&str, &str)] = &[
    ("delete", "/api/v1/subscribers/{id}"), ("get", "/api/v1/subscribers/export"),
    ("patch", "/api/v1/subscribers/{id}"), ("post", "/api/v1/imports"),
    ("post", "/api/v1/lists"), ("post", "/api/v1/lists/{slug}/archive"),
    ("post", "/api/v1/lists/{slug}/unarchive"), ("post", "/api/v1/subscribers"),
    ("post", "/api/v1/subscribers/{id}/unsubscribe"), ("post", "/api/v1/templates/{name}/revert"),
    ("post", "/api/v1/updates/{id}/cancel"), ("post", "/api/v1/updates/{id}/pause"),
    ("post", "/api/v1/updates/{id}/resume"), ("post", "/api/v1/updates/{id}/retry-failed"),
    ("post", "/api/v1/updates/{id}/schedule"), ("post", "/api/v1/updates/{id}/send"),
    ("post", "/api/v1/updates/{id}/unschedule"), ("put", "/api/v1/lists/{slug}"),
    ("put", "/api/v1/templates/{name}"), ("put", "/api/v1/updates/{id}/archive"),
];

/// Before, a `write` token sending a malformed body to an admin's operation was told what was
/// wrong with the body (`400`/`422`) before being refused: roles come before any other check.
#[tokio::test]
async fn a_write_token_is_refused_every_admin_operation_before_its_path_or_body_is_read() {
    let app = spawn_staff_app(&[]).await;
    let w = world(&app).await;
    let write = app.api_token_of("write").await;
    let document = crate::openapi::document(&app).await;
    let mut marked = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let sends = operation["security"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| {
                    r["api_token"]
                        .as_array()
                        .is_some_and(|roles| roles.contains(&json!("send")))
                });
            if sends {
                marked.push((method.clone(), path.clone()));
            }
        }
    }
    marked.sort();
    let mut expected: Vec<(String, String)> = ADMIN_ONLY_OPERATIONS
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    expected.sort();
    assert_eq!(
        marked, expected,
        "the operations the document gives admins alone"
    );

    let before = state_of(&app).await;
    let mut wrong = Vec::new();
    for (method, path) in &marked {
        // A path that names nothing and a body that is not JSON: the scope is checked first.
        let concrete = path
            .replace("{id}", "not-an-id")
            .replace("{slug}", "no-such-list")
            .replace("{name}", "no-such-template");
        let status = with_a_broken_body(&app, method, &concrete, &write).await;
        if status != 403 {
            wrong.push(format!("{method} {path}: {status}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "a write token was not refused first:\n{}",
        wrong.join("\n")
    );
    assert_eq!(state_of(&app).await, before, "nothing changed");
    let send = format!("/api/v1/updates/{}/send", w.draft);
    assert_eq!(
        app.api(Method::POST, &send, &w.token, None).await.status(),
        200,
        "a send token passes the same door"
    );
}

#[tokio::test]
async fn the_command_line_acts_with_an_admins_rights_through_the_same_operations() {
    let app = spawn_staff_app(&[]).await;
    let w = world(&app).await;
    let run = |args: &[&str]| {
        crate::cli::newsletter()
            .env("DATABASE_URL", app.database_url())
            .args(args)
            .output()
            .unwrap()
    };

    let out = run(&["feed", "remove", &w.trusted_feed]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (actor, action): (String, String) = sqlx::query_as(
        "SELECT actor, action FROM audit_log WHERE subject = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(&w.trusted_feed)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (actor.as_str(), action.as_str()),
        ("command line", "feed-remove")
    );
}
