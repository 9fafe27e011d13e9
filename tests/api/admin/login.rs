//! Staff accounts and sign-in: the CLI, sessions, throttling, equal answers, CSRF and Origin.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use newsletter::domain::StaffRole;
use toml::Value;

use super::{add_staff, set_cookie, signed_in, spawn_staff_app, Browser, PASSWORD};
use crate::helpers::{TestDatabase, SECRET_KEY};

fn staff_command(db: &TestDatabase, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_newsletter"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("DATABASE_URL", &db.url)
        .env("NEWSLETTER__SECURITY__SECRET_KEY", SECRET_KEY)
        .arg("staff")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

async fn password_works(db: &TestDatabase, email: &str, password: &str) -> bool {
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let settings = crate::helpers::test_settings(&db.url, "", &[]);
    let logins = newsletter::ops::staff::Logins::new(&settings);
    let ok = newsletter::ops::staff::log_in(&pool, &logins, email, password, None)
        .await
        .is_ok();
    pool.close().await;
    ok
}

#[tokio::test]
async fn the_staff_commands_add_list_reset_and_remove_accounts() {
    let db = TestDatabase::create().await;
    let (ok, _, err) = staff_command(
        &db,
        &["add", "--email", "Ana@Example.org", "--role", "admin"],
        "first password here\n",
    );
    assert!(ok, "{err}");
    let (ok, _, err) = staff_command(
        &db,
        &["add", "--email", "ana@example.org", "--role", "editor"],
        "another password\n",
    );
    assert!(!ok && err.contains("already has a staff account"), "{err}");
    let (ok, _, err) = staff_command(
        &db,
        &["add", "--email", "bo@example.org", "--role", "boss"],
        "a password long enough\n",
    );
    assert!(!ok && err.contains("--role"), "{err}");
    let (ok, _, err) = staff_command(
        &db,
        &["add", "--email", "bo@example.org", "--role", "editor"],
        "short\n",
    );
    assert!(!ok && err.contains("at least 12"), "{err}");

    let (ok, list, _) = staff_command(&db, &["list"], "");
    assert!(ok);
    // One spelling everywhere: the canonical address. (Before, the list showed the typed
    // `Ana@example.org` while sign-ins were audited as `ana@example.org`.)
    assert!(
        list.contains("ana@example.org\tadmin\tlast login never"),
        "{list}"
    );
    assert!(!list.contains("bo@example.org"), "{list}");
    assert!(password_works(&db, "ana@example.org", "first password here").await);

    let (ok, _, err) = staff_command(
        &db,
        &["reset-password", "--email", "ana@example.org"],
        "second password here\n",
    );
    assert!(ok, "{err}");
    assert!(!password_works(&db, "ana@example.org", "first password here").await);
    assert!(password_works(&db, "ana@example.org", "second password here").await);

    let (ok, _, err) = staff_command(&db, &["remove", "--email", "ana@example.org"], "");
    assert!(!ok && err.contains("last admin"), "{err}");
    let (ok, _, err) = staff_command(
        &db,
        &["add", "--email", "cy@example.org", "--role", "admin"],
        "a third password here\n",
    );
    assert!(ok, "{err}");
    let (ok, _, err) = staff_command(&db, &["remove", "--email", "ana@example.org"], "");
    assert!(ok, "{err}");
    let (_, list, _) = staff_command(&db, &["list"], "");
    assert!(
        list.starts_with("cy@example.org\tadmin") && !list.contains("ana"),
        "{list}"
    );
    let (ok, _, err) = staff_command(&db, &["remove", "--email", "ana@example.org"], "");
    assert!(!ok && err.contains("no staff account"), "{err}");
}

#[tokio::test]
async fn the_stored_password_is_an_argon2id_hash_and_the_session_id_only_a_hash() {
    let app = spawn_staff_app(&[]).await;
    let browser = signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM staff")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    let session = browser
        .cookies
        .iter()
        .find_map(|c| c.strip_prefix("newsletter_staff="))
        .unwrap()
        .to_owned();
    let stored: Vec<u8> = sqlx::query_scalar("SELECT id_hash FROM staff_sessions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 32);
    assert_ne!(stored, session.as_bytes());
}

#[tokio::test]
async fn login_sets_a_strict_cookie_rotates_the_id_and_logout_ends_the_session_server_side() {
    let app = spawn_staff_app(&[]).await;
    add_staff(&app, "ana@example.org", StaffRole::Admin).await;
    let mut browser = Browser::new(&app);

    let login_page = browser.get("/admin/login").await;
    assert_eq!(login_page.status(), 200);
    let html = login_page.text().await.unwrap();
    for field in ["name=\"email\"", "name=\"password\"", "name=\"csrf_token\""] {
        assert!(html.contains(field), "{field} missing");
    }
    assert_eq!(
        browser.get("/admin").await.status(),
        303,
        "not signed in yet"
    );

    let first = browser.try_log_in("ana@example.org", PASSWORD).await;
    assert_eq!(first.status(), 303);
    assert_eq!(first.headers()["location"], "/admin");
    let cookie = set_cookie(&first, "newsletter_staff").unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain http in tests: {cookie}");
    let dashboard = browser.get("/admin").await;
    assert_eq!(dashboard.status(), 200);
    assert!(dashboard.text().await.unwrap().contains("ana@example.org"));

    let signed_in_login = browser.get("/admin/login").await;
    assert_eq!(signed_in_login.status(), 303, "already signed in");
    assert_eq!(signed_in_login.headers()["location"], "/admin");

    let old_cookies = browser.cookies.clone();
    let origin = app.settings.server.base_url.as_str().to_owned();
    let login_csrf = super::csrf_in(&html);
    let again = browser
        .post_with(
            "/admin/login",
            &[
                ("csrf_token", &login_csrf),
                ("email", "ana@example.org"),
                ("password", PASSWORD),
            ],
            Some(&origin),
        )
        .await;
    assert_ne!(set_cookie(&again, "newsletter_staff").unwrap(), cookie);
    let mut stale = Browser::new(&app);
    stale.cookies = old_cookies;
    assert_eq!(
        stale.get("/admin").await.status(),
        303,
        "old id ended at login"
    );

    let out = browser.post("/admin/logout", &[]).await;
    assert_eq!(out.status(), 303);
    assert_eq!(out.headers()["location"], "/admin/login");
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM staff_sessions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(sessions, 0);
}

#[tokio::test]
async fn a_session_idle_longer_than_the_setting_has_ended() {
    let app = spawn_staff_app(&[("admin.session_idle_minutes", 30.into())]).await;
    let mut browser = signed_in(&app, "ana@example.org", StaffRole::Editor).await;
    sqlx::query("UPDATE staff_sessions SET last_seen_at = now() - interval '29 minutes'")
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(browser.get("/admin").await.status(), 200, "29 idle minutes");
    sqlx::query("UPDATE staff_sessions SET last_seen_at = now() - interval '31 minutes'")
        .execute(&app.pool)
        .await
        .unwrap();
    let response = browser.get("/admin").await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/admin/login");
}

#[tokio::test]
async fn an_unknown_account_and_a_wrong_password_get_the_same_answer_in_similar_time() {
    let app = spawn_staff_app(&[
        ("admin.login_failures_per_account", 100.into()),
        ("admin.login_failures_per_ip", 100.into()),
    ])
    .await;
    add_staff(&app, "ana@example.org", StaffRole::Admin).await;
    let mut browser = Browser::new(&app);
    let answer = |body: String| {
        body.replace(&super::csrf_in(&body), "CSRF")
            .replace("nobody@example.org", "EMAIL")
            .replace("ana@example.org", "EMAIL")
    };
    let mut times = [Vec::new(), Vec::new()];
    let mut bodies = Vec::new();
    for round in 0..7 {
        for (i, email) in ["ana@example.org", "nobody@example.org"].iter().enumerate() {
            let started = Instant::now();
            let response = browser.try_log_in(email, "not the password").await;
            let took = started.elapsed();
            assert_eq!(response.status(), 401, "{email}");
            times[i].push(took);
            if round == 0 {
                bodies.push(answer(response.text().await.unwrap()));
            }
        }
    }
    assert_eq!(bodies[0], bodies[1], "the same page for both");
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64()
    };
    let (wrong, unknown) = (median(&mut times[0]), median(&mut times[1]));
    // An unknown account skipping the hash would answer some 50 times faster; a busy machine
    // can shift one median by a little, never by 4×.
    let ratio = unknown / wrong;
    assert!(
        (0.25..4.0).contains(&ratio),
        "wrong password {wrong:.3}s, unknown account {unknown:.3}s"
    );
}

#[tokio::test]
async fn failed_logins_are_throttled_per_account_and_per_ip() {
    let app = spawn_staff_app(&[
        ("admin.login_failures_per_account", 3.into()),
        ("admin.login_failures_per_ip", 100.into()),
    ])
    .await;
    add_staff(&app, "ana@example.org", StaffRole::Admin).await;
    add_staff(&app, "bo@example.org", StaffRole::Editor).await;
    let mut browser = Browser::new(&app);
    for _ in 0..3 {
        let r = browser
            .try_log_in("ana@example.org", "guess guess guess")
            .await;
        assert_eq!(r.status(), 401);
    }
    let throttled = browser.try_log_in("ana@example.org", PASSWORD).await;
    assert_eq!(throttled.status(), 429, "even the right password waits");
    assert!(throttled.headers().contains_key("retry-after"));
    let other = browser.try_log_in("bo@example.org", PASSWORD).await;
    assert_eq!(other.status(), 303, "another account is not held back");

    let app = spawn_staff_app(&[
        ("admin.login_failures_per_account", 100.into()),
        ("admin.login_failures_per_ip", 3.into()),
    ])
    .await;
    add_staff(&app, "ana@example.org", StaffRole::Admin).await;
    let mut browser = Browser::new(&app);
    for who in ["x1@example.org", "x2@example.org", "x3@example.org"] {
        assert_eq!(
            browser.try_log_in(who, "guess guess guess").await.status(),
            401
        );
    }
    let throttled = browser.try_log_in("ana@example.org", PASSWORD).await;
    assert_eq!(throttled.status(), 429, "the IP is held back");
}

#[tokio::test]
async fn a_logout_without_the_csrf_token_or_from_another_origin_is_refused_and_changes_nothing() {
    let app = spawn_staff_app(&[]).await;
    let mut browser = signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    let base = app.settings.server.base_url.as_str().to_owned();
    let csrf = browser.csrf().await;

    let no_token = browser.post_with("/admin/logout", &[], Some(&base)).await;
    assert_eq!(no_token.status(), 403);
    let wrong_token = browser
        .post_with("/admin/logout", &[("csrf_token", "x")], Some(&base))
        .await;
    assert_eq!(wrong_token.status(), 403);
    let foreign = browser
        .post_with(
            "/admin/logout",
            &[("csrf_token", &csrf)],
            Some("https://evil.example"),
        )
        .await;
    assert_eq!(foreign.status(), 403);
    assert_eq!(browser.get("/admin").await.status(), 200, "still signed in");

    let mut stranger = Browser::new(&app);
    let page = stranger.get("/admin/login").await.text().await.unwrap();
    let login = stranger
        .post_with(
            "/admin/login",
            &[
                ("csrf_token", &super::csrf_in(&page)),
                ("email", "ana@example.org"),
                ("password", PASSWORD),
            ],
            Some("https://evil.example"),
        )
        .await;
    assert_eq!(login.status(), 403, "a login from another site");
}

#[tokio::test]
async fn admin_pages_carry_the_security_headers() {
    let app = spawn_staff_app(&[]).await;
    let mut visitor = Browser::new(&app);
    let mut browser = signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    for path in [
        "/admin/login",
        "/admin",
        "/admin/subscribers",
        "/admin/audit",
        "/admin/lists",
        "/admin/imports",
    ] {
        let r = if path == "/admin/login" {
            visitor.get(path).await
        } else {
            browser.get(path).await
        };
        assert_eq!(r.status(), 200, "{path}");
        let csp = r.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        assert_eq!(r.headers()["referrer-policy"], "same-origin");
        let html = r.text().await.unwrap();
        assert!(
            !html.contains("<script>") && !html.contains(" onclick="),
            "{path}"
        );
    }
}

#[tokio::test]
async fn on_https_the_cookies_are_secure_with_the_host_prefix() {
    let app = crate::helpers::spawn_app_with(&[(
        "server.base_url",
        Value::String("https://news.example.org".into()),
    )])
    .await;
    add_staff(&app, "ana@example.org", StaffRole::Admin).await;
    let mut browser = Browser::new(&app);
    let response = browser.try_log_in("ana@example.org", PASSWORD).await;
    assert_eq!(response.status(), 303);
    let session = set_cookie(&response, "__Host-newsletter_staff").expect("prefixed");
    assert!(
        session.contains("; Secure") && session.contains("Path=/") && !session.contains("Domain"),
        "{session}"
    );
}

#[tokio::test]
async fn an_admin_adds_staff_in_the_browser_and_an_editor_may_not() {
    let app = spawn_staff_app(&[]).await;
    let mut admin = signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    let page = admin
        .post(
            "/admin/staff",
            &[("email", "cy@example.org"), ("role", "editor")],
        )
        .await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let password = html
        .split("with the password ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .expect("the generated password is shown once")
        .to_owned();
    let mut cy = Browser::new(&app);
    assert_eq!(
        cy.try_log_in("cy@example.org", &password).await.status(),
        303
    );
    assert_eq!(cy.get("/admin/staff").await.status(), 403, "an editor");
    let refused = cy
        .post(
            "/admin/staff",
            &[("email", "dee@example.org"), ("role", "admin")],
        )
        .await;
    assert_eq!(refused.status(), 403);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM staff")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 2, "nothing added by the editor");
}

#[tokio::test]
async fn removing_a_member_of_staff_and_resetting_a_password_are_in_the_audit_log() {
    use newsletter::domain::NewPassword;
    use newsletter::ops::{staff, Actor};

    let app = spawn_staff_app(&[]).await;
    add_staff(&app, "ed@example.org", StaffRole::Editor).await;
    let mut admin = signed_in(&app, "ad@example.org", StaffRole::Admin).await;
    let r = admin
        .post("/admin/staff/remove", &[("email", "ed@example.org")])
        .await;
    assert_eq!(r.status(), 200);
    staff::reset_password(
        &app.pool,
        &Actor::CommandLine,
        "ad@example.org",
        NewPassword::parse("another long enough password").unwrap(),
    )
    .await
    .unwrap();

    let entries: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT actor, action, subject FROM audit_log
         WHERE action IN ('staff-remove', 'staff-password') ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let entry = |actor: &str, action: &str, subject: &str| {
        (
            actor.to_owned(),
            action.to_owned(),
            Some(subject.to_owned()),
        )
    };
    assert_eq!(
        entries,
        [
            entry("ad@example.org", "staff-remove", "ed@example.org"),
            entry("command line", "staff-password", "ad@example.org"),
        ]
    );
}
