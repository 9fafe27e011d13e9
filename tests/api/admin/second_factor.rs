//! Two-factor sign-in with TOTP: codes made by a generator that is not ours (`pyotp`, from
//! PyPI), recovery codes, throttling, `admin.require_second_factor`, and the reset by an admin
//! and by `newsletter staff reset-2fa`.

use std::collections::BTreeSet;
use std::process::Command;

use newsletter::domain::StaffRole;
use toml::Value;

use super::{add_staff, csrf_in, spawn_staff_app, Browser, PASSWORD};
use crate::helpers::{python, TestApp};

/// The code pyotp makes for `secret` (base32, spaces allowed) at now + `offset_seconds`.
pub fn pyotp_code(secret: &str, offset_seconds: i64) -> String {
    let secret: String = secret.chars().filter(|c| !c.is_whitespace()).collect();
    let out = Command::new(python())
        .args([
            "-c",
            "import pyotp, sys, time; \
             print(pyotp.TOTP(sys.argv[1]).at(int(time.time()) + int(sys.argv[2])))",
            &secret,
            &offset_seconds.to_string(),
        ])
        .output()
        .expect("pyotp runs (scripts/test installs it into target/pyenv)");
    assert!(
        out.status.success(),
        "pyotp: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The text of the element with `id` in `html` (the first one), tags stripped.
fn text_of_id(html: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\"");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no #{id} in {html}"));
    let start = at + html[at..].find('>').unwrap() + 1;
    let end = start + html[start..].find("</").unwrap();
    html[start..end].trim().to_owned()
}

/// Every recovery code listed on a page.
fn recovery_codes(html: &str) -> Vec<String> {
    let list = &html[html
        .find("id=\"recovery-codes\"")
        .expect("the codes are listed")..];
    let list = &list[..list.find("</ul>").unwrap()];
    list.split("<code>")
        .skip(1)
        .map(|c| c[..c.find("</code>").unwrap()].to_owned())
        .collect()
}

/// Signs a browser in with the password only; returns it and where the login sent it.
async fn password_only<'a>(app: &'a TestApp, email: &str) -> (Browser<'a>, String) {
    let mut browser = Browser::new(app);
    let response = browser.try_log_in(email, PASSWORD).await;
    assert_eq!(response.status(), 303, "logging in as {email}");
    let to = response.headers()["location"].to_str().unwrap().to_owned();
    (browser, to)
}

/// The CSRF token of a session at any stage (from the page it was sent to).
async fn pending_csrf(browser: &mut Browser<'_>, page: &str) -> String {
    let html = browser.get(page).await.text().await.unwrap();
    csrf_in(&html)
}

/// Posts `fields` from a session at any stage, with its CSRF token and the service's origin.
async fn post_pending(
    browser: &mut Browser<'_>,
    page: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let csrf = pending_csrf(browser, page).await;
    let mut all = vec![("csrf_token", csrf.as_str())];
    all.extend_from_slice(fields);
    let origin = browser.app.settings.server.base_url.as_str().to_owned();
    browser.post_with(path, &all, Some(&origin)).await
}

/// Enrols TOTP for a signed-in browser through the pages; the secret (base32) and the ten
/// recovery codes shown once.
async fn enrol(browser: &mut Browser<'_>) -> (String, Vec<String>) {
    let page = browser.get("/admin/account/two-factor").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let secret = text_of_id(&html, "totp-secret");
    assert!(html.contains("data:image/svg+xml;base64,"), "a QR code");
    let code = pyotp_code(&secret, 0);
    let response = post_pending(
        browser,
        "/admin/account/two-factor",
        "/admin/account/two-factor",
        &[("code", &code)],
    )
    .await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    let codes = recovery_codes(&html);
    assert_eq!(codes.len(), 10, "{html}");
    (secret, codes)
}

async fn second_factor(browser: &mut Browser<'_>, code: &str) -> reqwest::Response {
    post_pending(
        browser,
        "/admin/login/second-factor",
        "/admin/login/second-factor",
        &[("code", code)],
    )
    .await
}

async fn audit_actions(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar("SELECT action FROM audit_log ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn pyotp_codes_sign_in_and_a_replayed_an_old_and_a_wrong_code_do_not() {
    let app = spawn_staff_app(&[]).await;
    add_staff(&app, "ed@example.org", StaffRole::Editor).await;
    let (mut first, to) = password_only(&app, "ed@example.org").await;
    assert_eq!(
        to, "/admin",
        "no second factor yet, none required of editors"
    );
    let (secret, _) = enrol(&mut first).await;
    // A wrong code at enrolment would not have taken it; the page now says it is on.
    let account = first.get("/admin/account").await.text().await.unwrap();
    assert!(account.contains("Authenticator app: on since"), "{account}");

    let (mut second, to) = password_only(&app, "ed@example.org").await;
    assert_eq!(to, "/admin/login/second-factor");
    // The password alone opens nothing.
    let r = second.get("/admin/subscribers").await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/admin/login/second-factor");

    // An old code (three steps back), a wrong one: refused.
    let old = pyotp_code(&secret, -90);
    let r = second_factor(&mut second, &old).await;
    assert_eq!(r.status(), 401, "an old code");
    let right_next = pyotp_code(&secret, 30);
    let wrong: String = right_next
        .chars()
        .map(|c| char::from(b'0' + (c as u8 - b'0' + 1) % 10))
        .collect();
    let r = second_factor(&mut second, &wrong).await;
    assert_eq!(r.status(), 401, "a wrong code");
    assert_eq!(second.get("/admin/subscribers").await.status(), 303);

    // The next step's code (the enrolment used this one) signs in.
    let r = second_factor(&mut second, &right_next).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/admin");
    assert_eq!(second.get("/admin/subscribers").await.status(), 200);

    // The same code again, in another browser: a replay.
    let (mut third, _) = password_only(&app, "ed@example.org").await;
    let r = second_factor(&mut third, &right_next).await;
    assert_eq!(r.status(), 401, "a replayed code");
    // And the enrolment's own code, used already, too.
    let r = second_factor(&mut third, &pyotp_code(&secret, 0)).await;
    assert_eq!(
        r.status(),
        401,
        "the enrolment's code, older than the last used"
    );

    let actions = audit_actions(&app).await;
    let count = |a: &str| actions.iter().filter(|x| *x == a).count();
    assert_eq!(count("second-factor-enrol"), 1);
    assert_eq!(count("second-factor"), 1);
    assert_eq!(count("second-factor-failed"), 4, "{actions:?}");
}

#[tokio::test]
async fn a_recovery_code_works_once_and_new_codes_void_the_old() {
    let app = spawn_staff_app(&[]).await;
    add_staff(&app, "ed@example.org", StaffRole::Editor).await;
    let (mut first, _) = password_only(&app, "ed@example.org").await;
    let (_, codes) = enrol(&mut first).await;

    let (mut second, _) = password_only(&app, "ed@example.org").await;
    // As typed by a person: lower case, spaces for dashes.
    let typed = codes[0].to_lowercase().replace('-', " ");
    let r = second_factor(&mut second, &typed).await;
    assert_eq!(r.status(), 303, "a recovery code signs in");
    let page = second
        .get("/admin/account/two-factor")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(text_of_id(&page, "recovery-left"), "9");

    let (mut third, _) = password_only(&app, "ed@example.org").await;
    let r = second_factor(&mut third, &codes[0]).await;
    assert_eq!(r.status(), 401, "a recovery code works once");

    // New codes: the old ones stop working.
    let r = second.post("/admin/account/recovery-codes", &[]).await;
    assert_eq!(r.status(), 200);
    let fresh = recovery_codes(&r.text().await.unwrap());
    assert_eq!(fresh.len(), 10);
    let r = second_factor(&mut third, &codes[1]).await;
    assert_eq!(r.status(), 401, "an old code after new ones were made");
    let r = second_factor(&mut third, &fresh[3]).await;
    assert_eq!(r.status(), 303, "a new code");
}

#[tokio::test]
async fn second_factor_codes_are_throttled_like_passwords() {
    let app = spawn_staff_app(&[("admin.login_failures_per_account", 3.into())]).await;
    add_staff(&app, "ed@example.org", StaffRole::Editor).await;
    let (mut first, _) = password_only(&app, "ed@example.org").await;
    let (secret, _) = enrol(&mut first).await;
    let (mut second, _) = password_only(&app, "ed@example.org").await;
    for _ in 0..3 {
        let r = second_factor(&mut second, "000000").await;
        // (a one-in-a-million chance that 000000 is right is not worth a flaky test: the
        // code is checked against three steps; skip the assertion when it is one of them)
        if ![-30, 0, 30]
            .iter()
            .any(|o| pyotp_code(&secret, *o) == "000000")
        {
            assert_eq!(r.status(), 401);
        }
    }
    let r = second_factor(&mut second, &pyotp_code(&secret, 30)).await;
    assert_eq!(r.status(), 429, "throttled: even the right code waits");
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(second.get("/admin/subscribers").await.status(), 303);
    // The wrong codes are counted where admins look.
    let mut admin = super::signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    let staff = admin.get("/admin/staff").await.text().await.unwrap();
    assert!(staff.contains("3 wrong code(s) in 7 days"), "{staff}");
}

#[tokio::test]
async fn the_pending_enrolment_takes_effect_only_with_a_right_code() {
    let app = spawn_staff_app(&[]).await;
    add_staff(&app, "ed@example.org", StaffRole::Editor).await;
    let (mut browser, _) = password_only(&app, "ed@example.org").await;
    let html = browser
        .get("/admin/account/two-factor")
        .await
        .text()
        .await
        .unwrap();
    let secret = text_of_id(&html, "totp-secret");
    // Reloading shows the same secret (an app that scanned it stays right).
    let again = browser
        .get("/admin/account/two-factor")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(text_of_id(&again, "totp-secret"), secret);
    let r = post_pending(
        &mut browser,
        "/admin/account/two-factor",
        "/admin/account/two-factor",
        &[("code", "12345x")],
    )
    .await;
    assert_eq!(r.status(), 422);
    // Not on: a new sign-in needs no second factor.
    let (_, to) = password_only(&app, "ed@example.org").await;
    assert_eq!(to, "/admin");
    let stored: Option<String> =
        sqlx::query_scalar("SELECT totp_secret FROM staff WHERE email = 'ed@example.org'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(stored.is_none());
    // The secret is not stored as the page shows it.
    let pending: String =
        sqlx::query_scalar("SELECT totp_pending_secret FROM staff WHERE email = 'ed@example.org'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(!pending.contains(&secret.replace(' ', "")));
}

/// Every route of the staff area, from the router's source: `(method, path template)`.
fn admin_routes() -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/routes/admin");
    for entry in std::fs::read_dir(dir).unwrap() {
        let source = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let flat: String = source.split_whitespace().collect::<Vec<_>>().join(" ");
        for piece in flat.split(".route(").skip(1) {
            let piece = piece.trim_start();
            let Some(path) = piece.strip_prefix('"') else {
                // a constant: the pages this test allows by name
                let name = piece.split(',').next().unwrap();
                let path = match name {
                    "super::SECOND_FACTOR_PAGE" => "/admin/login/second-factor",
                    "super::ENROL_PAGE" => "/admin/account/two-factor",
                    other => panic!("a route named by {other}: teach this test its path"),
                };
                add_methods(&mut routes, path, piece);
                continue;
            };
            let path = &path[..path.find('"').unwrap()];
            add_methods(&mut routes, path, piece);
        }
    }
    routes
}

/// Adds the methods of one `.route(` call (`piece` starts just after it) for `path`.
fn add_methods(routes: &mut BTreeSet<(String, String)>, path: &str, piece: &str) {
    // the call's own text: up to the parenthesis that closes `.route(`
    let mut depth = 1;
    let end = piece
        .char_indices()
        .find(|(_, c)| {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            depth == 0
        })
        .map(|(at, _)| at)
        .expect("a closed .route( call");
    let call = &piece[..end];
    for (needle, method) in [("get(", "GET"), ("post(", "POST")] {
        if call.contains(needle) {
            routes.insert((method.to_owned(), path.to_owned()));
        }
    }
}

#[tokio::test]
async fn with_admins_required_no_admin_route_opens_to_a_password_alone() {
    let app = spawn_staff_app(&[("admin.require_second_factor", Value::from("admin"))]).await;
    add_staff(&app, "ana@example.org", StaffRole::Admin).await;
    let token = app.api_token().await;
    let update = app.create_update(&token, "Held").await;
    let person = app.seed_confirmed(1, "example.org").await[0].0;
    let (mut browser, to) = password_only(&app, "ana@example.org").await;
    assert_eq!(to, "/admin/account/two-factor", "sent to enrolment");
    let csrf = pending_csrf(&mut browser, "/admin/account/two-factor").await;
    let before = audit_actions(&app).await;

    // Open to a session that owes its enrolment: signing in (by each method), enrolling (an
    // app or a passkey), logging out, assets.
    let open = [
        "/admin/login",
        "/admin/logout",
        "/admin/setup",
        "/admin/login/second-factor",
        "/admin/account/two-factor",
        "/admin/login/oidc",
        "/admin/login/oidc/callback",
        "/admin/login/passkey/begin",
        "/admin/login/passkey/finish",
        "/admin/login/passkey/second-factor/begin",
        "/admin/login/passkey/second-factor/finish",
        "/admin/account/passkeys/begin",
        "/admin/account/passkeys/finish",
    ];
    let routes = admin_routes();
    assert!(routes.len() > 60, "found {} routes", routes.len());
    let origin = app.settings.server.base_url.as_str().to_owned();
    let mut tried = 0;
    for (method, template) in &routes {
        if open.contains(&template.as_str()) || template.starts_with("/admin/static") {
            continue;
        }
        let path = template
            .replace("{id}", &update)
            .replace("{slug}", "us-icc-updates")
            .replace("{name}", "update")
            .replace("{subscriber}", &person.to_string())
            .replace("{file}", "admin.css");
        assert!(!path.contains('{'), "teach this test {template}");
        tried += 1;
        if method == "GET" {
            let r = browser.get(&path).await;
            assert_eq!(r.status(), 303, "GET {path} with a password alone");
            assert_eq!(
                r.headers()["location"],
                "/admin/account/two-factor",
                "GET {path}"
            );
        } else {
            let fields = [
                ("csrf_token", csrf.as_str()),
                ("version", "1"),
                ("email", "cy@example.org"),
                ("role", "admin"),
                ("confirm", "yes"),
            ];
            let r = browser.post_with(&path, &fields, Some(&origin)).await;
            assert_eq!(r.status(), 403, "POST {path} with a password alone");
        }
    }
    assert!(tried > 50, "{tried}");
    let after = audit_actions(&app).await;
    assert_eq!(before, after, "nothing was done");
    // The API is not a way around it either: its tokens are separate (and admin-made).

    // Enrolled, the same session opens.
    let html = browser
        .get("/admin/account/two-factor")
        .await
        .text()
        .await
        .unwrap();
    let code = pyotp_code(&text_of_id(&html, "totp-secret"), 0);
    let r = post_pending(
        &mut browser,
        "/admin/account/two-factor",
        "/admin/account/two-factor",
        &[("code", &code)],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(browser.get("/admin/staff").await.status(), 200);
    // The next sign-in asks for the code.
    let (_, to) = password_only(&app, "ana@example.org").await;
    assert_eq!(to, "/admin/login/second-factor");
}

#[tokio::test]
async fn an_editor_may_sign_in_with_a_password_alone_when_only_admins_must() {
    let app = spawn_staff_app(&[("admin.require_second_factor", Value::from("admin"))]).await;
    add_staff(&app, "ed@example.org", StaffRole::Editor).await;
    let (mut browser, to) = password_only(&app, "ed@example.org").await;
    assert_eq!(to, "/admin");
    assert_eq!(browser.get("/admin/news").await.status(), 200);
    let app = spawn_staff_app(&[("admin.require_second_factor", Value::from("all"))]).await;
    add_staff(&app, "ed@example.org", StaffRole::Editor).await;
    let (_, to) = password_only(&app, "ed@example.org").await;
    assert_eq!(to, "/admin/account/two-factor", "all must");
}

/// `newsletter staff reset-2fa --email EMAIL` against the app's database.
fn reset_2fa(app: &TestApp, email: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_newsletter"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("DATABASE_URL", app.database_url())
        .env(
            "NEWSLETTER__SECURITY__SECRET_KEY",
            crate::helpers::SECRET_KEY,
        )
        .args(["staff", "reset-2fa", "--email", email])
        .output()
        .unwrap()
}

#[tokio::test]
async fn an_admin_resets_a_lost_second_factor_and_the_last_admin_uses_the_command() {
    let app = spawn_staff_app(&[]).await;
    add_staff(&app, "ana@example.org", StaffRole::Admin).await;
    add_staff(&app, "ed@example.org", StaffRole::Editor).await;
    let (mut ed, _) = password_only(&app, "ed@example.org").await;
    enrol(&mut ed).await;
    let (mut ana, _) = password_only(&app, "ana@example.org").await;
    enrol(&mut ana).await;

    // An editor may not reset anyone.
    let r = ed
        .post("/admin/staff/reset-2fa", &[("email", "ana@example.org")])
        .await;
    assert_eq!(r.status(), 403);
    // An admin may not reset their own here.
    let r = ana
        .post("/admin/staff/reset-2fa", &[("email", "Ana@Example.org")])
        .await;
    assert_eq!(r.status(), 422);
    let r = ana
        .post("/admin/staff/reset-2fa", &[("email", " ed@example.org ")])
        .await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("Removed from ed@example.org: the authenticator app and its recovery codes; their 1 session ended."),
        "{page}"
    );
    // Ed's session ended; his next sign-in needs no code.
    assert_eq!(ed.get("/admin/news").await.status(), 303);
    let (_, to) = password_only(&app, "ed@example.org").await;
    assert_eq!(to, "/admin");
    let entry: (String, String) =
        sqlx::query_as("SELECT actor, subject FROM audit_log WHERE action = 'staff-2fa-reset'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(entry, ("ana@example.org".into(), "ed@example.org".into()));

    // The last admin lost their phone: the command on the server.
    let out = reset_2fa(&app, "ANA@example.org");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("Removed from ANA@example.org: the authenticator app"),
        "{err}"
    );
    assert_eq!(ana.get("/admin").await.status(), 303, "her sessions ended");
    let (_, to) = password_only(&app, "ana@example.org").await;
    assert_eq!(to, "/admin");
    // Nothing left to remove: said so (the sessions still end).
    let out = reset_2fa(&app, "  ana@example.org ");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("ana@example.org had no second factor to remove; their 1 session ended."),
        "{err}"
    );
    // Each member whose factors were removed was told by mail.
    app.wait_for_queue_to_drain().await;
    let told: Vec<String> = crate::versions::mails(&app)
        .into_iter()
        .filter(|(_, subject, text)| {
            subject == "Your staff account's sign-in changed" && text.contains("An admin removed")
        })
        .map(|(to, _, _)| to)
        .collect();
    assert_eq!(told, ["ed@example.org", "ana@example.org"]);
    let out = reset_2fa(&app, "nobody@example.org");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no staff account"));
}

#[tokio::test]
async fn the_session_id_changes_when_the_second_factor_is_given() {
    let app = spawn_staff_app(&[]).await;
    add_staff(&app, "ed@example.org", StaffRole::Editor).await;
    let (mut first, _) = password_only(&app, "ed@example.org").await;
    let (secret, _) = enrol(&mut first).await;
    let (mut second, _) = password_only(&app, "ed@example.org").await;
    let before = second.cookies.clone();
    let r = second_factor(&mut second, &pyotp_code(&secret, 30)).await;
    assert_eq!(r.status(), 303);
    assert_ne!(second.cookies, before, "a new session id");
    assert_eq!(second.get("/admin/news").await.status(), 200);
    // The cookie seen before the code opens nothing now.
    let mut thief = Browser::new(&app);
    thief.cookies = before;
    let r = thief.get("/admin/news").await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/admin/login");
}

#[tokio::test]
async fn a_session_signed_in_long_ago_cannot_add_a_way_in_or_make_new_recovery_codes() {
    let app = spawn_staff_app(&[]).await;
    add_staff(&app, "ed@example.org", StaffRole::Editor).await;
    add_staff(&app, "cy@example.org", StaffRole::Editor).await;
    let (mut ed, _) = password_only(&app, "ed@example.org").await;
    enrol(&mut ed).await;
    let (mut cy, _) = password_only(&app, "cy@example.org").await;
    let page = cy
        .get("/admin/account/two-factor")
        .await
        .text()
        .await
        .unwrap();
    let cy_secret = text_of_id(&page, "totp-secret");
    // Both sessions were signed in 16 minutes ago (a session taken over later, say).
    sqlx::query(
        "UPDATE staff_sessions SET created_at = now() - interval '16 minutes',
                                   second_factor_at = second_factor_at - interval '16 minutes'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let r = ed.post("/admin/account/recovery-codes", &[]).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("recent sign-in"));
    let r = post_pending(
        &mut cy,
        "/admin/account/two-factor",
        "/admin/account/two-factor",
        &[("code", &pyotp_code(&cy_secret, 0))],
    )
    .await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("recent sign-in"));
    let enrolled: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT totp_enrolled_at FROM staff WHERE email = 'cy@example.org'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(enrolled.is_none());
    // Signed in again, it may.
    let (mut fresh, _) = password_only(&app, "cy@example.org").await;
    enrol(&mut fresh).await;
    app.wait_for_queue_to_drain().await;
    let told: Vec<_> = crate::versions::mails(&app)
        .into_iter()
        .filter(|(to, subject, _)| {
            to == "cy@example.org" && subject == "Your staff account's sign-in changed"
        })
        .collect();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(
        told[0].2.contains("An authenticator app was set up"),
        "{told:?}"
    );
}

#[tokio::test]
async fn a_nul_in_a_staff_address_is_answered_by_a_staff_page() {
    let app = spawn_staff_app(&[]).await;
    let r = app
        .http
        .get(app.url("/admin/login/oidc/callback?state=%00"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let page = r.text().await.unwrap();
    assert!(page.contains("NUL character"), "{page}");
    assert!(
        page.contains("/admin/static/admin.css"),
        "the staff area's page: {page}"
    );
    assert!(!page.contains("sign-up"), "{page}");
}

#[tokio::test]
async fn bad_input_at_the_new_staff_forms_gets_a_4xx_naming_the_field_and_changes_nothing() {
    let app = spawn_staff_app(&[]).await;
    add_staff(&app, "ed@example.org", StaffRole::Editor).await;
    let (mut ed, _) = password_only(&app, "ed@example.org").await;
    enrol(&mut ed).await;
    let (mut second, _) = password_only(&app, "ed@example.org").await;
    // A NUL in the code: refused by name; a huge one: just a wrong code.
    let r = second_factor(&mut second, "12\u{0}456").await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("code"));
    let r = second_factor(&mut second, &"9".repeat(100_000)).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        second.get("/admin/news").await.status(),
        303,
        "still not signed in"
    );

    let mut ana = super::signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    let before = audit_actions(&app).await;
    for (path, fields, names) in [
        (
            "/admin/account/password",
            vec![
                ("current_password", PASSWORD),
                ("new_password", "a new\u{0}password"),
                ("new_password_again", "a new\u{0}password"),
            ],
            "new_password",
        ),
        (
            "/admin/staff/reset-2fa",
            vec![("email", "not an address")],
            "address",
        ),
        (
            "/admin/account/sessions/end",
            vec![("session", "42")],
            "session",
        ),
        (
            "/admin/account/passkeys/remove",
            vec![("passkey", "x\u{0}")],
            "passkey",
        ),
    ] {
        let r = ana.post(path, &fields).await;
        assert_eq!(r.status(), 422, "{path}");
        let page = r.text().await.unwrap();
        assert!(page.contains(names), "{path}: {page}");
    }
    assert_eq!(audit_actions(&app).await, before, "nothing was done");
}
