//! First run in the browser: while no staff account exists, `/admin` leads to `/admin/setup`,
//! where the one-time code `serve` prints creates the first admin.

use newsletter::domain::SetupCode;

use super::{add_staff, csrf_in, spawn_staff_app, Browser, PASSWORD};
use crate::helpers::{TestApp, TestDatabase};
use newsletter::domain::StaffRole;

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&app.pool).await.unwrap()
}

/// A setup code, as `serve` makes and prints one at its start.
async fn code(app: &TestApp) -> String {
    newsletter::ops::staff::setup_code(&app.pool)
        .await
        .unwrap()
        .expect("no account yet: a code")
        .display()
}

/// The setup form sent as the page would (its CSRF token, the service's Origin).
async fn set_up(
    browser: &mut Browser<'_>,
    code: &str,
    email: &str,
    password: &str,
) -> reqwest::Response {
    let page = browser.get("/admin/setup").await;
    assert_eq!(page.status(), 200, "the setup page");
    let csrf = csrf_in(&page.text().await.unwrap());
    let origin = browser.app.settings.server.base_url.as_str().to_owned();
    let fields = [
        ("csrf_token", csrf.as_str()),
        ("code", code),
        ("email", email),
        ("password", password),
    ];
    browser
        .post_with("/admin/setup", &fields, Some(&origin))
        .await
}

fn location(response: &reqwest::Response) -> &str {
    response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

#[tokio::test]
async fn the_first_admin_is_created_with_the_setup_code_once_and_signed_in() {
    let app = spawn_staff_app(&[]).await;
    let code = code(&app).await;
    let mut browser = Browser::new(&app);

    let dashboard = browser.get("/admin").await;
    assert_eq!(location(&dashboard), "/admin/login");
    let login = browser.get("/admin/login").await;
    assert_eq!(location(&login), "/admin/setup", "no account: setup");

    // A wrong code, a bad address, a short password: 422 naming what is wrong, nobody made.
    let wrong = set_up(&mut browser, "AAAA-BBBB-CCCC", "ana@example.org", PASSWORD).await;
    assert_eq!(wrong.status(), 422);
    let page = wrong.text().await.unwrap();
    assert!(page.contains("setup code is wrong"), "{page}");
    assert!(page.contains("ana@example.org"), "the address is kept");
    let short = set_up(&mut browser, &code, "ana@example.org", "short").await;
    assert_eq!(short.status(), 422);
    assert!(short.text().await.unwrap().contains("at least 12"));
    let bad = set_up(&mut browser, &code, "not an address", PASSWORD).await;
    assert_eq!(bad.status(), 422);
    assert_eq!(count(&app, "SELECT count(*) FROM staff").await, 0);

    // Without the page's CSRF token: refused.
    let origin = app.settings.server.base_url.as_str().to_owned();
    let forged = browser
        .post_with(
            "/admin/setup",
            &[
                ("code", &code),
                ("email", "eve@example.org"),
                ("password", PASSWORD),
            ],
            Some(&origin),
        )
        .await;
    assert_eq!(forged.status(), 403);

    // Typed in lower case with spaces: the code still reads.
    let typed = format!(" {} ", code.to_lowercase().replace('-', " "));
    let made = set_up(&mut browser, &typed, "Ana@Example.org", PASSWORD).await;
    assert_eq!(made.status(), 303, "{}", made.text().await.unwrap());
    assert_eq!(location(&made), "/admin");
    let signed_in = browser.get("/admin").await;
    assert_eq!(signed_in.status(), 200, "signed in as the new admin");
    assert_eq!(
        count(&app, "SELECT count(*) FROM staff WHERE role = 'admin'").await,
        1
    );
    assert_eq!(count(&app, "SELECT count(*) FROM setup_codes").await, 0);
    let audited: Vec<String> = sqlx::query_scalar("SELECT action FROM audit_log ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(audited, ["staff-add", "sign-in"]);

    // The code is spent, and setup is over for everyone.
    let mut other = Browser::new(&app);
    assert_eq!(location(&other.get("/admin/setup").await), "/admin/login");
    let page = other.get("/admin/login").await;
    assert_eq!(page.status(), 200, "the login page, once an account exists");
    let again = other
        .post_with(
            "/admin/setup",
            &[
                ("csrf_token", "whatever"),
                ("code", &code),
                ("email", "eve@example.org"),
                ("password", PASSWORD),
            ],
            Some(&origin),
        )
        .await;
    assert_ne!(again.status(), 303, "no second admin");
    assert_eq!(count(&app, "SELECT count(*) FROM staff").await, 1);
    assert!(newsletter::ops::staff::setup_code(&app.pool)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn a_code_made_before_an_account_was_added_another_way_dies_with_it() {
    let app = spawn_staff_app(&[]).await;
    let code = code(&app).await;
    add_staff(&app, "cli@example.org", StaffRole::Admin).await;
    let mut browser = Browser::new(&app);
    let origin = app.settings.server.base_url.as_str().to_owned();
    // The page is gone, and a post made with its old token changes nothing.
    assert_eq!(location(&browser.get("/admin/setup").await), "/admin/login");
    let page = browser.get("/admin/login").await.text().await.unwrap();
    let login_csrf = csrf_in(&page);
    let late = browser
        .post_with(
            "/admin/setup",
            &[
                ("csrf_token", &login_csrf),
                ("code", &code),
                ("email", "eve@example.org"),
                ("password", PASSWORD),
            ],
            Some(&origin),
        )
        .await;
    assert_ne!(late.status(), 303);
    assert_eq!(count(&app, "SELECT count(*) FROM staff").await, 1);
    assert_eq!(count(&app, "SELECT count(*) FROM setup_codes").await, 0);
}

#[tokio::test]
async fn wrong_codes_are_throttled_per_client_and_two_racing_with_the_code_make_one_admin() {
    let app = spawn_staff_app(&[("admin.login_failures_per_ip", 3.into())]).await;
    let code = code(&app).await;
    let mut browser = Browser::new(&app);
    for n in 1..=3 {
        let r = set_up(&mut browser, "AAAA-BBBB-CCCC", "ana@example.org", PASSWORD).await;
        assert_eq!(r.status(), 422, "wrong code {n}");
    }
    let throttled = set_up(&mut browser, &code, "ana@example.org", PASSWORD).await;
    assert_eq!(throttled.status(), 429, "even the right code waits now");
    assert!(throttled.headers().contains_key("retry-after"));
    assert_eq!(count(&app, "SELECT count(*) FROM staff").await, 0);

    // From a fresh limit: two people send the code at the same moment.
    sqlx::query("DELETE FROM staff_login_failures")
        .execute(&app.pool)
        .await
        .unwrap();
    let (mut a, mut b) = (Browser::new(&app), Browser::new(&app));
    let (ra, rb) = tokio::join!(
        set_up(&mut a, &code, "ana@example.org", PASSWORD),
        set_up(&mut b, &code, "bo@example.org", PASSWORD)
    );
    let signed_in = [&ra, &rb]
        .iter()
        .filter(|r| location(r) == "/admin")
        .count();
    assert_eq!(
        signed_in, 1,
        "one signed in, the other sent to the login page"
    );
    assert_eq!(count(&app, "SELECT count(*) FROM staff").await, 1);
}

/// What `serve` prints before it is stopped: its banner's lines (within 30 s).
fn banner(db_url: &str) -> Vec<String> {
    crate::cli::serve_output(db_url, &[], "mail goes")
}

#[tokio::test]
async fn serve_prints_a_live_setup_code_until_an_account_exists() {
    let db = TestDatabase::create().await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let lines = tokio::task::spawn_blocking({
        let url = db.url.clone();
        move || banner(&url)
    })
    .await
    .unwrap();
    let printed = lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("setup code: "))
        .unwrap_or_else(|| panic!("a setup code in {lines:?}"));
    assert!(
        lines.iter().any(|l| l.contains("/admin/setup")),
        "{lines:?}"
    );
    let hash = SetupCode::parse(printed)
        .expect("a code that reads back")
        .hash();
    let live: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM setup_codes WHERE hash = $1)")
            .bind(hash.as_slice())
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(live, "the printed code is the one kept");

    newsletter::ops::staff::add(
        &pool,
        &newsletter::ops::Actor::CommandLine,
        "ad@example.org",
        "admin",
        newsletter::domain::NewPassword::parse(PASSWORD).unwrap(),
    )
    .await
    .unwrap();
    let lines = tokio::task::spawn_blocking({
        let url = db.url.clone();
        move || banner(&url)
    })
    .await
    .unwrap();
    assert!(!lines.iter().any(|l| l.contains("setup code")), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("staff sign in at") && l.contains("/admin/login")),
        "{lines:?}"
    );
}
