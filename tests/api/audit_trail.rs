//! Everything staff do leaves a trace: every write operation the OpenAPI document describes,
//! and every form of the staff area, done once with success, adds exactly one entry to the
//! audit log. The walks cover what the document and the pages offer: an operation or a form
//! missing from them fails the test until it is walked too.

use std::collections::BTreeSet;

use newsletter::domain::StaffRole;
use reqwest::Method;
use serde_json::{json, Value};

use crate::admin::imports::upload;
use crate::admin::look::{upload_logo, LOGO};
use crate::admin::{signed_in, spawn_staff_app, Browser, PASSWORD};
use crate::helpers::{spawn_app, TestApp};

async fn entries(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

async fn newest(app: &TestApp, n: i64) -> Vec<String> {
    sqlx::query_scalar("SELECT action FROM audit_log ORDER BY id DESC LIMIT $1")
        .bind(n.max(0))
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

async fn id_of(app: &TestApp, sql: &str) -> String {
    sqlx::query_scalar(sql).fetch_one(&app.pool).await.unwrap()
}

/// One write of the API: the document's (method, path), the request's path and its body.
struct Write {
    method: Method,
    documented: &'static str,
    path: String,
    body: Option<Value>,
}

fn write(
    method: Method,
    documented: &'static str,
    path: impl Into<String>,
    body: Option<Value>,
) -> Write {
    Write {
        method,
        documented,
        path: path.into(),
        body,
    }
}

/// Every (method, path) of the document but its GETs.
async fn documented_writes(app: &TestApp) -> BTreeSet<(String, String)> {
    let document = crate::openapi::document(app).await;
    let mut all = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if matches!(method.as_str(), "post" | "put" | "patch" | "delete") {
                let path = path.strip_prefix("/api/v1").unwrap().to_owned();
                all.insert((method.to_uppercase(), path));
            }
        }
    }
    all
}

#[tokio::test]
async fn every_write_of_the_api_leaves_exactly_one_audit_entry() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let people = app.seed_confirmed(2, "example.org").await;
    let leaving = people[1].0;
    let post = |path: &'static str, body: Value| {
        let app = &app;
        let token = &token;
        async move {
            let r = app.api(Method::POST, path, token, Some(body)).await;
            assert!(r.status().is_success(), "setting up {path}");
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let news = post("/api/v1/news", json!({ "title": "On the desk" })).await;
    let feed = post(
        "/api/v1/feeds",
        json!({ "url": "https://court.example/press.xml" }),
    )
    .await;
    let recurrence = json!({ "frequency": "weekly", "weekdays": ["monday"], "time": "09:00" });
    let digest = post(
        "/api/v1/digests",
        json!({ "name": "Weekly", "lists": ["us-icc-updates"], "recurrence": recurrence }),
    )
    .await;
    let update = post(
        "/api/v1/updates",
        json!({ "subject": "Walked", "lists": ["us-icc-updates"] }),
    )
    .await;
    let later = post(
        "/api/v1/updates",
        json!({ "subject": "Cancelled", "lists": ["us-icc-updates"] }),
    )
    .await;
    let at = json!({ "at": "2030-01-07T09:00:00Z" });
    let u = |id: &str, action: &str| format!("/api/v1/updates/{id}/{action}");
    let (delete, patch, put) = (Method::DELETE, Method::PATCH, Method::PUT);

    // In an order where each finds its record in the state it needs.
    #[rustfmt::skip]
    let walk = vec![
        write(Method::POST, "/news", "/api/v1/news", Some(json!({ "title": "Added" }))),
        write(patch.clone(), "/news/{id}", format!("/api/v1/news/{news}"), Some(json!({ "title": "Edited" }))),
        write(Method::POST, "/news/{id}/approve", format!("/api/v1/news/{news}/approve"), None),
        write(delete.clone(), "/news/{id}", format!("/api/v1/news/{news}"), None),
        write(Method::POST, "/feeds", "/api/v1/feeds", Some(json!({ "url": "https://other.example/feed.xml" }))),
        write(patch.clone(), "/feeds/{id}", format!("/api/v1/feeds/{feed}"), Some(json!({ "active": false }))),
        write(delete.clone(), "/feeds/{id}", format!("/api/v1/feeds/{feed}"), None),
        write(Method::POST, "/digests", "/api/v1/digests", Some(json!({ "name": "Another", "lists": ["us-icc-updates"], "recurrence": recurrence }))),
        write(patch.clone(), "/digests/{id}", format!("/api/v1/digests/{digest}"), Some(json!({ "name": "Renamed" }))),
        write(delete.clone(), "/digests/{id}", format!("/api/v1/digests/{digest}"), None),
        write(Method::POST, "/lists", "/api/v1/lists", Some(json!({ "slug": "walked", "name": "Walked" }))),
        write(put.clone(), "/lists/{slug}", "/api/v1/lists/walked", Some(json!({ "name": "Walked far" }))),
        write(Method::POST, "/lists/{slug}/archive", "/api/v1/lists/walked/archive", None),
        write(Method::POST, "/lists/{slug}/unarchive", "/api/v1/lists/walked/unarchive", None),
        write(Method::POST, "/subscribers", "/api/v1/subscribers", Some(json!({ "email": "added@example.org", "source": "A fair" }))),
        write(patch.clone(), "/subscribers/{id}", format!("/api/v1/subscribers/{}", people[0].0), Some(json!({ "name": "Renamed" }))),
        write(Method::POST, "/subscribers/{id}/unsubscribe", format!("/api/v1/subscribers/{}/unsubscribe", people[0].0), None),
        write(delete.clone(), "/subscribers/{id}", format!("/api/v1/subscribers/{leaving}"), None),
        write(put.clone(), "/templates/{name}", "/api/v1/templates/update", None),
        write(Method::POST, "/templates/{name}/revert", "/api/v1/templates/update/revert", Some(json!({ "default": true }))),
        write(Method::POST, "/updates", "/api/v1/updates", Some(json!({ "subject": "Created", "lists": ["us-icc-updates"] }))),
        write(patch.clone(), "/updates/{id}", format!("/api/v1/updates/{update}"), Some(json!({ "subject": "Walked on" }))),
        write(Method::POST, "/updates/{id}/test", u(&update, "test"), Some(json!({ "to": "tester@example.org" }))),
        write(put.clone(), "/updates/{id}/archive", u(&update, "archive"), Some(json!({ "in_archive": false }))),
        write(Method::POST, "/updates/{id}/schedule", u(&update, "schedule"), Some(at.clone())),
        write(Method::POST, "/updates/{id}/pause", u(&update, "pause"), None),
        write(Method::POST, "/updates/{id}/unschedule", u(&update, "unschedule"), None),
        write(Method::POST, "/updates/{id}/send", u(&update, "send"), None),
        write(Method::POST, "/updates/{id}/retry-failed", u(&update, "retry-failed"), None),
        write(Method::POST, "/updates/{id}/check-links", u(&update, "check-links"), None),
        write(Method::POST, "/updates/{id}/schedule", u(&later, "schedule"), Some(at)),
        write(Method::POST, "/updates/{id}/pause", u(&later, "pause"), None),
        write(Method::POST, "/updates/{id}/resume", u(&later, "resume"), None),
        write(Method::POST, "/updates/{id}/cancel", u(&later, "cancel"), None),
        write(Method::POST, "/imports", "/api/v1/imports?mode=confirmed&source=A%20sheet", None),
    ];

    let walked: BTreeSet<(String, String)> = walk
        .iter()
        .map(|w| (w.method.to_string(), w.documented.to_owned()))
        .collect();
    let missing: Vec<_> = documented_writes(&app)
        .await
        .difference(&walked)
        .cloned()
        .collect();
    assert!(
        missing.is_empty(),
        "writes of the document not walked: {missing:?}"
    );

    let current: Value = app
        .api(Method::GET, "/api/v1/templates/update", &token, None)
        .await
        .json()
        .await
        .unwrap();
    let saved =
        json!({ "subject": current["subject"], "text": current["text"], "html": current["html"] });
    let mut wrong = Vec::new();
    for w in walk {
        let before = entries(&app).await;
        let response = if w.documented == "/imports" {
            app.http
                .post(app.url(&w.path))
                .bearer_auth(&token)
                .header("content-type", "text/csv")
                .body("email\nimported@example.org\n")
                .send()
                .await
                .unwrap()
        } else {
            let body = if w.documented == "/templates/{name}" {
                Some(saved.clone())
            } else {
                w.body
            };
            app.api(w.method.clone(), &w.path, &token, body).await
        };
        let status = response.status();
        let added = entries(&app).await - before;
        if !status.is_success() || added != 1 {
            let body = response.text().await.unwrap_or_default();
            wrong.push(format!(
                "{} {}: {status}, {added} entries {:?} {body}",
                w.method,
                w.path,
                newest(&app, added).await
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "writes without exactly one audit entry:\n{}",
        wrong.join("\n")
    );
}

/// A form's action as the router writes it: ids, list slugs and template names as parameters.
fn route_of(action: &str) -> String {
    let mut out = Vec::new();
    let mut after = "";
    for segment in action.split('?').next().unwrap_or("").split('/') {
        let generic = if uuid::Uuid::parse_str(segment).is_ok() {
            "{id}"
        } else if matches!(after, "lists" | "templates") {
            if after == "lists" {
                "{slug}"
            } else {
                "{name}"
            }
        } else {
            segment
        };
        out.push(generic.to_owned());
        after = segment;
    }
    out.join("/")
}

/// The actions of the forms that post (and the buttons that post elsewhere) on a page.
fn posted_forms(page: &str) -> Vec<String> {
    let mut found = Vec::new();
    for marker in ["method=\"post\" action=\"", "formaction=\""] {
        let mut rest = page;
        while let Some(at) = rest.find(marker) {
            rest = &rest[at + marker.len()..];
            found.push(route_of(&rest[..rest.find('"').unwrap()]));
        }
    }
    found
}

/// Forms that post but change no record of the service: leaving, and rendering a preview.
const NOT_WRITES: &[&str] = &[
    "/admin/logout",
    "/admin/templates/{name}/preview",
    "/admin/templates/{name}/preview-frame",
];

/// Posts `fields` to `path` without the session's CSRF token, then with it from another
/// origin: `None` when both are refused `403`, else the statuses.
async fn refuses_forgeries(
    browser: &mut Browser<'_>,
    path: &str,
    fields: &[(&str, &str)],
) -> Option<(u16, u16)> {
    let own = browser.app.settings.server.base_url.as_str().to_owned();
    let without = browser.post_with(path, fields, Some(&own)).await.status();
    let csrf = browser.csrf().await;
    let mut with_token = vec![("csrf_token", csrf.as_str())];
    with_token.extend_from_slice(fields);
    let foreign = browser
        .post_with(path, &with_token, Some("http://127.0.0.1:1"))
        .await
        .status();
    (without != 403 || foreign != 403).then(|| (without.as_u16(), foreign.as_u16()))
}

/// One form of the staff area, sent with success: its route, the path and the fields.
struct Form {
    route: &'static str,
    path: String,
    fields: Vec<(&'static str, String)>,
    /// Sent by the second admin (an approval).
    by_second_admin: bool,
}

fn form(route: &'static str, path: impl Into<String>, fields: &[(&'static str, &str)]) -> Form {
    Form {
        route,
        path: path.into(),
        fields: fields.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        by_second_admin: false,
    }
}

#[tokio::test]
async fn every_form_of_the_staff_area_leaves_exactly_one_audit_entry() {
    let rule = [
        ("sending.require_approval", toml::Value::Boolean(true)),
        ("sending.approval_threshold", 1.into()),
    ];
    let app = spawn_staff_app(&rule).await;
    let token = app.api_token().await;
    // Five: two leave in the walk, and the rest are more than the approval threshold.
    let people = app.seed_confirmed(5, "example.org").await;
    let mut ana = signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    let mut bo = signed_in(&app, "bo@example.org", StaffRole::Admin).await;
    let u1 = app.create_update(&token, "First").await;
    let u2 = app.create_update(&token, "Second").await;
    let u3 = app.create_update(&token, "Third").await;
    let r = app
        .api(
            Method::POST,
            "/api/v1/news",
            &token,
            Some(json!({ "title": "On the desk" })),
        )
        .await;
    let news = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .api(
            Method::POST,
            "/api/v1/feeds",
            &token,
            Some(json!({ "url": "https://court.example/press.xml" })),
        )
        .await;
    let feed = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let recurrence = json!({ "frequency": "weekly", "weekdays": ["monday"], "time": "09:00" });
    let r = app
        .api(
            Method::POST,
            "/api/v1/digests",
            &token,
            Some(
                json!({ "name": "Weekly", "lists": ["us-icc-updates"], "recurrence": recurrence }),
            ),
        )
        .await;
    let digest = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (person, erased) = (people[0].0, people[1].0);
    // A logo, so that the Look page offers its removal too.
    newsletter::ops::look::set_logo(
        &app.pool,
        &newsletter::ops::Actor::CommandLine,
        LOGO.to_vec(),
    )
    .await
    .unwrap();

    // A second session of Ana's, for the sessions list to offer its forms.
    let mut elsewhere = Browser::new(&app);
    assert_eq!(
        elsewhere
            .try_log_in("ana@example.org", PASSWORD)
            .await
            .status(),
        303
    );
    let other_session = id_of(
        &app,
        "SELECT s.id::text FROM staff_sessions s JOIN staff m ON m.id = s.staff_id
         WHERE m.email = 'ana@example.org' ORDER BY s.created_at DESC LIMIT 1",
    )
    .await;
    let enrolment = ana
        .get("/admin/account/two-factor")
        .await
        .text()
        .await
        .unwrap();
    let totp_secret = {
        let at = enrolment.find("id=\"totp-secret\">").unwrap() + "id=\"totp-secret\">".len();
        enrolment[at..at + enrolment[at..].find('<').unwrap()].to_owned()
    };

    // The forms every page of the staff area offers, with the records set up above.
    let mut offered = BTreeSet::new();
    for page in [
        "/admin".to_owned(), "/admin/news".into(), format!("/admin/news/{news}"), "/admin/feeds".into(),
        "/admin/digests".into(), format!("/admin/digests/{digest}"), format!("/admin/digests/{digest}/edit"),
        "/admin/updates".into(), "/admin/updates/new".into(), format!("/admin/updates/{u1}"),
        format!("/admin/updates/{u1}/edit"), format!("/admin/updates/{u1}/confirm?action=send"),
        format!("/admin/updates/{u1}/confirm?action=schedule&at=2030-01-01T09%3A00&time_zone=America%2FNew_York"),
        format!("/admin/updates/{u1}/confirm?action=request"), "/admin/lists".into(),
        "/admin/lists/us-icc-updates".into(), "/admin/staff".into(), format!("/admin/subscribers/{person}"),
        "/admin/templates".into(), "/admin/templates/update".into(), "/admin/tokens".into(),
        "/admin/imports".into(), "/admin/audit".into(), "/admin/account".into(), "/admin/account/two-factor".into(), "/admin/subscribers?query=reader".into(), "/admin/look".into(),
    ] {
        let html = ana.get(&page).await.text().await.unwrap();
        offered.extend(posted_forms(&html));
    }

    let key = || newsletter::domain::Token::generate().as_str().to_owned();
    let k1 = key();
    let sched = [
        ("at", "2030-01-01T09:00"),
        ("time_zone", "America/New_York"),
        ("version", "1"),
    ];
    let up = |id: &str, action: &str| format!("/admin/updates/{id}/{action}");
    let digest_fields = [
        ("name", "Friday"),
        ("lists", "us-icc-updates"),
        ("frequency", "weekly"),
        ("weekdays", "friday"),
        ("time", "16:30"),
        ("mode", "review"),
    ];
    let totp_code = crate::admin::second_factor::pyotp_code(&totp_secret, 0);
    // In an order where each finds its record in the state it needs.
    #[rustfmt::skip]
    let mut walk = vec![
        form("/admin/account/two-factor", "/admin/account/two-factor", &[("code", &totp_code)]),
        form("/admin/account/recovery-codes", "/admin/account/recovery-codes", &[]),
        form("/admin/account/two-factor/remove", "/admin/account/two-factor/remove", &[("password", PASSWORD)]),
        form("/admin/account/sessions/end", "/admin/account/sessions/end", &[("session", &other_session)]),
        form("/admin/account/sessions/end-others", "/admin/account/sessions/end-others", &[]),
        form("/admin/account/password", "/admin/account/password", &[("current_password", PASSWORD), ("new_password", "another long password"), ("new_password_again", "another long password")]),
        form("/admin/news", "/admin/news", &[("title", "Added")]),
        form("/admin/news/{id}", format!("/admin/news/{news}"), &[("title", "Edited")]),
        form("/admin/news/{id}/approve", format!("/admin/news/{news}/approve"), &[]),
        form("/admin/news/{id}/delete", format!("/admin/news/{news}/delete"), &[]),
        form("/admin/feeds", "/admin/feeds", &[("url", "https://other.example/feed.xml")]),
        form("/admin/feeds/{id}/active", format!("/admin/feeds/{feed}/active"), &[("active", "false")]),
        form("/admin/feeds/{id}/trust", format!("/admin/feeds/{feed}/trust"), &[("approve", "true")]),
        form("/admin/feeds/{id}/interval", format!("/admin/feeds/{feed}/interval"), &[("poll_minutes", "90")]),
        form("/admin/feeds/{id}/delete", format!("/admin/feeds/{feed}/delete"), &[]),
        form("/admin/digests", "/admin/digests", &digest_fields),
        form("/admin/digests/{id}", format!("/admin/digests/{digest}"), &digest_fields),
        form("/admin/digests/{id}/active", format!("/admin/digests/{digest}/active"), &[("active", "false")]),
        form("/admin/digests/{id}/delete", format!("/admin/digests/{digest}/delete"), &[]),
        form("/admin/lists", "/admin/lists", &[("slug", "walked"), ("name", "Walked")]),
        form("/admin/lists/{slug}", "/admin/lists/walked", &[("name", "Walked far")]),
        form("/admin/lists/{slug}/archive", "/admin/lists/walked/archive", &[]),
        form("/admin/lists/{slug}/unarchive", "/admin/lists/walked/unarchive", &[]),
        form("/admin/staff", "/admin/staff", &[("email", "cy@example.org"), ("role", "editor")]),
        form("/admin/staff/reset-2fa", "/admin/staff/reset-2fa", &[("email", "cy@example.org")]),
        form("/admin/staff/remove", "/admin/staff/remove", &[("email", "cy@example.org")]),
        form("/admin/subscribers/{id}", format!("/admin/subscribers/{person}"), &[("name", "Renamed"), ("state", "NY")]),
        form("/admin/subscribers/{id}/unsubscribe", format!("/admin/subscribers/{person}/unsubscribe"), &[]),
        form("/admin/subscribers/{id}/erase", format!("/admin/subscribers/{erased}/erase"), &[("confirm", "yes")]),
        form("/admin/templates/{name}/revert", "/admin/templates/update/revert", &[("default", "yes")]),
        form("/admin/look", "/admin/look", &[("colour", "#0b5d1e"), ("footer", "Walked **far**."), ("social_label_1", "Web"), ("social_url_1", "https://walk.example")]),
        form("/admin/look/logo/remove", "/admin/look/logo/remove", &[]),
        form("/admin/tokens", "/admin/tokens", &[("name", "Walked"), ("scope", "read")]),
        form("/admin/account/time-zone", "/admin/account/time-zone", &[("time_zone", "Europe/Paris")]),
        form("/admin/subscribers/bulk", "/admin/subscribers/bulk", &[("action", "add_to_list"), ("target_list", "walked"), ("scope", "matching"), ("query", "reader")]),
        form("/admin/updates", "/admin/updates", &[("subject", "Composed"), ("lists", "us-icc-updates")]),
        form("/admin/updates/{id}", format!("/admin/updates/{u1}"), &[("subject", "First, edited"), ("lists", "us-icc-updates")]),
        form("/admin/updates/{id}/test", up(&u1, "test"), &[("to", "tester@example.org")]),
        form("/admin/updates/{id}/archive", up(&u1, "archive"), &[("in_archive", "false")]),
        form("/admin/updates/{id}/schedule", up(&u1, "schedule"), &[("at", "2030-01-01T09:00"), ("time_zone", "America/New_York"), ("version", "2")]),
        Form { by_second_admin: true, ..form("/admin/updates/{id}/approve", up(&u1, "approve"), &[("version", "2")]) },
        form("/admin/updates/{id}/pause", up(&u1, "pause"), &[]),
        form("/admin/updates/{id}/resume", up(&u1, "resume"), &[]),
        form("/admin/updates/{id}/cancel", up(&u1, "cancel"), &[]),
        form("/admin/updates/{id}/retry-failed", up(&u1, "retry-failed"), &[]),
        form("/admin/updates/{id}/check-links", up(&u1, "check-links"), &[("back", "")]),
        form("/admin/updates/{id}/request-approval", up(&u2, "request-approval"), &[("version", "1")]),
        form("/admin/updates/{id}/unschedule", up(&u2, "unschedule"), &[]),
        form("/admin/updates/{id}/send", up(&u3, "send"), &[("version", "1"), ("idempotency_key", &k1)]),
        form("/admin/updates/{id}/schedule", up(&u2, "schedule"), &sched),
    ];
    let template: Value = app
        .api(Method::GET, "/api/v1/templates/update", &token, None)
        .await
        .json()
        .await
        .unwrap();
    walk.push(form(
        "/admin/templates/{name}",
        "/admin/templates/update",
        &[
            ("subject", template["subject"].as_str().unwrap()),
            ("text", template["text"].as_str().unwrap()),
            ("html", template["html"].as_str().unwrap()),
        ],
    ));

    for route in [
        "/admin/lists/{slug}",
        "/admin/news/{id}/delete",
        "/admin/subscribers/{id}/erase",
        "/admin/templates/{name}/preview",
        "/admin/tokens/{id}/revoke",
        "/admin/updates/{id}/send",
    ] {
        assert!(
            offered.contains(route),
            "{route} among the forms found: {offered:?}"
        );
    }
    let mut walked: BTreeSet<String> = walk.iter().map(|f| f.route.to_owned()).collect();
    walked.insert("/admin/tokens/{id}/revoke".into());
    walked.insert("/admin/imports".into());
    walked.insert("/admin/look/logo".into());
    let missing: Vec<_> = offered
        .iter()
        .filter(|route| !walked.contains(*route) && !NOT_WRITES.contains(&route.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "forms of the staff area not walked: {missing:?}"
    );

    let mut wrong = Vec::new();
    let mut check = |what: String, status: u16, added: i64, newest: Vec<String>| {
        if !(200..400).contains(&status) || added != 1 {
            wrong.push(format!("{what}: {status}, {added} entries {newest:?}"));
        }
    };
    // Each form is first posted forged: without its CSRF token, then with it but from another
    // origin. Both are refused 403 and leave no entry (every write leaves one: nothing changed).
    let mut forged = Vec::new();
    let mut unnoticed = Vec::new();
    for f in &walk {
        let mut fields: Vec<(&str, &str)> =
            f.fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let browser: &mut Browser = if f.by_second_admin { &mut bo } else { &mut ana };
        // An approval names the request it answers, as its page shows it.
        let requested;
        if f.route == "/admin/updates/{id}/approve" {
            let page = browser.get(&f.path.replace("/approve", "")).await;
            requested = crate::admin::updates::hidden(&page.text().await.unwrap(), "requested_at");
            fields.push(("requested_at", &requested));
        }
        let before = entries(&app).await;
        let refused = refuses_forgeries(browser, &f.path, &fields).await;
        let added = entries(&app).await - before;
        if refused.is_some() || added != 0 {
            forged.push(format!("{}: {refused:?}, {added} entries", f.path));
        }
        let response = browser.post(&f.path, &fields).await;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap_or_default();
        let added = entries(&app).await - before;
        // Every change is told: the page it leads to (or answers with) shows a notice.
        let shown = match &location {
            Some(to) => browser.get(to).await.text().await.unwrap_or_default(),
            None => text.clone(),
        };
        if !shown.contains("role=\"status\"") {
            unnoticed.push(format!("{} → {location:?}", f.path));
        }
        let what = format!(
            "{} {}",
            f.path,
            &text[text.find("<main").unwrap_or(0)..]
                .chars()
                .take(400)
                .collect::<String>()
        );
        check(what, status, added, newest(&app, added).await);
    }
    let revoked = id_of(
        &app,
        "SELECT id::text FROM api_tokens WHERE name = 'Walked'",
    )
    .await;
    let path = format!("/admin/tokens/{revoked}/revoke");
    let before = entries(&app).await;
    let refused = refuses_forgeries(&mut ana, &path, &[]).await;
    let added = entries(&app).await - before;
    if refused.is_some() || added != 0 {
        forged.push(format!("{path}: {refused:?}, {added} entries"));
    }
    let before = entries(&app).await;
    let status = ana.post(&path, &[]).await.status().as_u16();
    let added = entries(&app).await - before;
    check(
        "/admin/tokens/{id}/revoke".into(),
        status,
        added,
        newest(&app, added).await,
    );
    let before = entries(&app).await;
    let csrf = ana.csrf().await;
    let fields = [
        ("csrf_token", csrf.as_str()),
        ("mode", "confirmed"),
        ("source", "A sheet"),
    ];
    let status = upload(&mut ana, &fields, "email\nimported@example.org\n")
        .await
        .status()
        .as_u16();
    let added = entries(&app).await - before;
    check(
        "/admin/imports".into(),
        status,
        added,
        newest(&app, added).await,
    );

    // The logo form (multipart): forged, then sent.
    let before = entries(&app).await;
    let refused = upload_logo(&mut ana, Some("nope"), ("logo.png", "image/png"), LOGO)
        .await
        .status()
        .as_u16();
    let added = entries(&app).await - before;
    if refused != 403 || added != 0 {
        forged.push(format!("/admin/look/logo: {refused}, {added} entries"));
    }
    let status = upload_logo(&mut ana, None, ("logo.png", "image/png"), LOGO)
        .await
        .status()
        .as_u16();
    let added = entries(&app).await - before;
    check(
        "/admin/look/logo".into(),
        status,
        added,
        newest(&app, added).await,
    );

    assert!(
        wrong.is_empty(),
        "forms without exactly one audit entry:\n{}",
        wrong.join("\n")
    );
    assert!(
        unnoticed.is_empty(),
        "changes with no notice on the page they lead to:\n{}",
        unnoticed.join("\n")
    );
    assert!(
        forged.is_empty(),
        "forged forms not refused, or leaving a trace:\n{}",
        forged.join("\n")
    );
}
