//! axe-core on every staff page state, in headless Chromium, signed in as an admin: no WCAG 2.1
//! A or AA violation, every control shows a focus ring with 3:1 contrast against what surrounds
//! it, and each state shows its main content (so this is also the browser test of
//! the pages nothing else opens in a browser: dashboard, lists, feeds, digests, audit log).
//!
//! A new page state is one more line in `states` (a `page(..)` to open, or a `form(..)` to fill
//! and send).

use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use newsletter::domain::StaffRole;

use super::{signed_in, spawn_staff_app, PASSWORD};
use crate::accessibility::focus_styles;
use crate::axe::{axe_source, violations};
use crate::browser::contrast;
use crate::browser::Driver;

/// What the browser does on a page before the state is checked.
enum Step {
    /// Types into the field (cleared first where it can be).
    Type(&'static str, String),
    /// Clicks the element.
    Click(&'static str),
}

/// A page state: open `path`, take the `steps` (the browser's own form checks switched off, so
/// refused input reaches the server), then an element matching `css` must read `text` (a part
/// of its text) before axe runs.
struct PageState {
    name: &'static str,
    path: String,
    steps: Vec<Step>,
    css: &'static str,
    text: String,
}

fn page(name: &'static str, path: impl Into<String>, css: &'static str, text: &str) -> PageState {
    PageState {
        name,
        path: path.into(),
        steps: Vec::new(),
        css,
        text: text.into(),
    }
}

fn form(
    name: &'static str,
    path: impl Into<String>,
    steps: Vec<Step>,
    css: &'static str,
    text: &str,
) -> PageState {
    PageState {
        steps,
        ..page(name, path, css, text)
    }
}

fn typed(css: &'static str, text: &str) -> Step {
    Step::Type(css, text.into())
}

/// Waits (generously) until an element matching `css` contains `text`; the page may still be
/// replacing the previous one.
async fn wait_for(browser: &Client, state: &str, css: &str, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        if let Ok(found) = browser.find_all(Locator::Css(css)).await {
            seen.clear();
            for el in found {
                if let Ok(t) = el.text().await {
                    seen.push(t);
                }
            }
            if seen.iter().any(|t| t.contains(text)) {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{state}: no {css} reading {text:?} (seen {seen:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn take(browser: &Client, step: &Step) {
    match step {
        Step::Type(css, text) => {
            let field = browser.find(Locator::Css(css)).await.unwrap();
            let _ = field.clear().await;
            field.send_keys(text).await.unwrap();
        }
        Step::Click(css) => {
            browser
                .execute(
                    "document.querySelectorAll('form').forEach(f => f.noValidate = true);",
                    vec![],
                )
                .await
                .unwrap();
            browser
                .find(Locator::Css(css))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn axe_finds_no_wcag_21_aa_violation_on_any_staff_page_state() {
    let axe = axe_source();
    let app = spawn_staff_app(&[]).await;
    let token = app.api_token().await;
    let people = app.seed_confirmed(3, "example.org").await;
    let sent = app.create_update(&token, "Sent to everyone").await;
    app.send_now(&token, &sent).await;
    app.wait_for_update_status(&sent, "sent").await;
    let draft = app.create_update(&token, "A draft for next week").await;
    // The relay defers every mail from now on, so this update stays `sending`.
    app.smtp.set_faults(crate::smtp_server::Faults {
        rcpt: vec![("@".into(), 451, "4.3.0 Try again later".into())],
        ..Default::default()
    });
    let going = app.create_update(&token, "Going out slowly").await;
    app.send_now(&token, &going).await;
    app.wait_for_update_status(&going, "sending").await;

    let mut staff = signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    let news = staff
        .post(
            "/admin/news",
            &[
                ("title", "Senate hearing on the ICC"),
                ("url", "https://example.org/news"),
                ("source", "Reuters"),
                ("topic", "congress"),
                ("summary", "What happened."),
            ],
        )
        .await;
    assert_eq!(news.status(), 303);
    let news: String = sqlx::query_scalar("SELECT id::text FROM news")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let feed = staff
        .post(
            "/admin/feeds",
            &[
                ("url", "https://court.example/press.xml"),
                ("topic", "court"),
            ],
        )
        .await;
    assert_eq!(feed.status(), 303);
    let digest = staff
        .post(
            "/admin/digests",
            &[
                ("name", "Friday digest"),
                ("lists", "us-icc-updates"),
                ("intro", "{{count}} items this week."),
                ("frequency", "weekly"),
                ("weekdays", "friday"),
                ("time", "16:30"),
                ("time_zone", "America/Chicago"),
                ("mode", "review"),
            ],
        )
        .await;
    assert_eq!(digest.status(), 303);
    let digest = digest.headers()["location"].to_str().unwrap();
    let digest = digest.split('?').next().unwrap().to_owned();
    let reader = people[0].0;
    let leaving = people[2].0;
    let dir = std::env::temp_dir().join(format!("newsletter-axe-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.csv");
    std::fs::write(
        &good,
        "email,name\nnew@example.org,New\nnot-an-address,Bad\n",
    )
    .unwrap();
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "name\nNo address column\n").unwrap();
    let (good, bad) = (good.display().to_string(), bad.display().to_string());
    let logo = dir.join("logo.png");
    std::fs::write(&logo, super::look::LOGO).unwrap();
    let svg = dir.join("logo.svg");
    std::fs::write(&svg, r#"<svg xmlns="http://www.w3.org/2000/svg"/>"#).unwrap();
    let (logo, svg) = (logo.display().to_string(), svg.display().to_string());

    let log_in = |password: &str| {
        vec![
            typed("#email", "ana@example.org"),
            typed("#password", password),
            Step::Click("#log-in"),
        ]
    };
    // One line per state, so the table stays a table.
    #[rustfmt::skip]
    let states = vec![
        page("login", "/admin/login", "h1", "Staff login"),
        form("login error", "/admin/login", log_in("not the password"), "#login-error", ""),
        form("dashboard", "/admin/login", log_in(PASSWORD), ".counts", "confirmed"),
        page("updates", "/admin/updates", "main tbody a", "Sent to everyone"),
        page("composer", "/admin/updates/new", "h1", "New update"),
        form("composer with errors", "/admin/updates/new", vec![Step::Click("#save-draft")], ".errors", "subject"),
        page("draft", format!("/admin/updates/{draft}"), "#send-now", "Send now to 3 recipients…"),
        page("confirm send", format!("/admin/updates/{draft}/confirm?action=send"), "#confirm-subject", "A draft for next week"),
        page("confirm schedule", format!("/admin/updates/{draft}/confirm?action=schedule&at=2030-01-01T09%3A00&time_zone=America%2FNew_York"), "#confirm-schedule", "Schedule version 1"),
        page("draft editor", format!("/admin/updates/{draft}/edit"), "h1", "Edit the draft"),
        page("progress, sent", format!("/admin/updates/{sent}"), "#count-sent", "3"),
        page("report", format!("/admin/updates/{sent}/report"), "#report-sent", "3"),
        page("progress, going out", format!("/admin/updates/{going}"), "#auto-refresh label", "Reload this page every 2 seconds"),
        page("preview page", format!("/admin/updates/{draft}?email=reader0%40example.org"), "h2", "Preview"),
        page("preview page, phone", format!("/admin/updates/{draft}?width=phone"), "#preview-width", "Phone"),
        page("news desk", "/admin/news", "main tbody a", "Senate hearing on the ICC"),
        page("news edit", format!("/admin/news/{news}"), "h1", "Edit a news item"),
        page("feeds", "/admin/feeds", "main tbody", "https://court.example/press.xml"),
        page("digests", "/admin/digests", "main tbody a", "Friday digest"),
        page("digest", digest.clone(), "main", "every Friday at 16:30 America/Chicago"),
        page("digest edit", format!("{digest}/edit"), "h1", "Edit Friday digest"),
        page("lists", "/admin/lists", "#lists", "US & ICC Updates"),
        page("list hygiene", "/admin/hygiene", "h1", "List hygiene"),
        page("list edit", "/admin/lists/us-icc-updates", "h1", "US & ICC Updates"),
        page("subscribers found", "/admin/subscribers?query=reader", "main tbody a", "reader1@example.org"),
        page("subscriber", format!("/admin/subscribers/{reader}"), "#status", "confirmed"),
        form("erase not confirmed", format!("/admin/subscribers/{leaving}"), vec![Step::Click("#erase")], ".errors", "Tick the box"),
        form("erased", format!("/admin/subscribers/{leaving}"), vec![Step::Click("input[name=confirm]"), Step::Click("#erase")], "#notice", "was erased"),
        form("import with a file error", "/admin/imports", vec![Step::Type("#file", bad), typed("#source", "A sheet"), Step::Click("#start-import")], ".errors", "email"),
        form("import job", "/admin/imports", vec![Step::Type("#file", good), typed("#source", "A sheet"), Step::Click("#start-import")], "h1", "Import (done)"),
        page("templates", "/admin/templates", "#templates", "update"),
        page("template editor", "/admin/templates/update", "h1", "Mail template update"),
        form("template refused", "/admin/templates/update", vec![typed("#subject", "{{#if}}"), Step::Click("#save-template")], "#template-error", "line 1, column 1: a `{{#if}}` block is opened here and never closed"),
        form("template preview", "/admin/templates/update", vec![Step::Click("#preview-template")], "#preview-subject", "Sample"),
        page("look", "/admin/look", "h1", "Look of the mails"),
        form("look refused", "/admin/look", vec![typed("#colour", "#ffcc00"), typed("#social_url_1", "https://x.example"), Step::Click("#save-look")], "#colour-error", "1.51:1"),
        form("look logo refused", "/admin/look", vec![Step::Type("#logo", svg), Step::Click("#upload-logo")], "#look-error", "SVG"),
        form("look with a logo", "/admin/look", vec![Step::Type("#logo", logo), Step::Click("#upload-logo")], "#look-version", "version 1"),
        form("look saved", "/admin/look", vec![typed("#colour", "#0b5d1e"), typed("#footer", "Made by **us**."), typed("#social_label_1", "Mastodon"), typed("#social_url_1", "https://social.example/@us"), Step::Click("#save-look")], "#look-version", "version 2"),
        page("audit log", "/admin/audit", "#audit", "ana@example.org"),
        page("staff", "/admin/staff", "main tbody", "ana@example.org"),
        page("api tokens", "/admin/tokens", "#tokens", "tests"),
        page("your account", "/admin/account", "#account-email", "ana@example.org"),
        form("your account, zone refused", "/admin/account", vec![typed("#time_zone", "Mars/Base"), Step::Click("#save-zone")], "#zone-error", "is not a time zone"),
        form("your account, zone saved", "/admin/account", vec![typed("#time_zone", "Europe/Paris"), Step::Click("#save-zone")], "#notice", "settings are saved"),
        form("api token made", "/admin/tokens", vec![typed("#name", "Newsroom"), Step::Click("#make-token")], "#new-token", "shown this once"),
        form("api token refused", "/admin/tokens", vec![Step::Click("#make-token")], ".errors", "1 to 100 characters"),
        page("message", "/admin/updates/00000000-0000-0000-0000-000000000000", "h1", "Not found"),
    ];

    let found = violations_in(&app, &axe, &states).await;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        found.is_empty(),
        "WCAG 2.1 AA violations and weak focus rings:\n{}",
        found.join("\n")
    );
}

/// The first run: the setup page, refused, then done (the dashboard of the new admin).
#[tokio::test]
async fn axe_finds_no_wcag_21_aa_violation_on_the_first_run_setup_pages() {
    let axe = axe_source();
    let app = spawn_staff_app(&[]).await;
    let code = newsletter::ops::staff::setup_code(&app.pool)
        .await
        .unwrap()
        .unwrap()
        .display();
    let fill = |code: &str| {
        vec![
            typed("#code", code),
            typed("#email", "ana@example.org"),
            typed("#password", PASSWORD),
            Step::Click("#set-up"),
        ]
    };
    let states = vec![
        page("setup", "/admin", "h1", "Create the first admin"),
        form(
            "setup refused",
            "/admin/setup",
            fill("AAAA-BBBB-CCCC"),
            "#setup-error",
            "setup code is wrong",
        ),
        form(
            "setup done",
            "/admin/setup",
            fill(&code),
            ".counts",
            "No subscribers yet",
        ),
    ];
    let found = violations_in(&app, &axe, &states).await;
    assert!(
        found.is_empty(),
        "WCAG 2.1 AA violations and weak focus rings:\n{}",
        found.join("\n")
    );
}

/// Opens each state in a fresh headless Chromium and returns what axe-core and the focus-ring
/// check found, one line each.
async fn violations_in(
    app: &crate::helpers::TestApp,
    axe: &str,
    states: &[PageState],
) -> Vec<String> {
    let driver = Driver::start();
    let browser = driver.connect().await;
    let mut found = Vec::new();
    for state in states {
        browser.goto(&app.url(&state.path)).await.unwrap();
        for step in &state.steps {
            take(&browser, step).await;
        }
        wait_for(&browser, state.name, state.css, &state.text).await;
        let v = violations(&browser, axe).await;
        if !v.is_empty() {
            found.push(format!("{}: {v:?}", state.name));
        }
        for control in focus_styles(&browser, state.name).await {
            let ring = contrast(
                control["color"].as_str().unwrap(),
                control["around"].as_str().unwrap(),
            );
            let visible = control["width"].as_f64().unwrap() >= 2.0
                && !control["style"].as_str().unwrap().starts_with("none");
            if control["focused"] != true || !visible || ring < 3.0 {
                found.push(format!("focus ring {ring:.2}:1: {control}"));
            }
        }
    }
    browser.close().await.unwrap();
    found
}

/// Two-factor sign-in: sent to enrolment (admins must), a wrong code, enrolled (the recovery
/// codes), the account page, the app's page, a refused password change, then the second step
/// of the next sign-in, refused once.
#[tokio::test]
async fn axe_finds_no_wcag_21_aa_violation_on_the_second_factor_pages() {
    use newsletter::domain::second_factor::{SealingKey, TotpSecret};
    let axe = axe_source();
    let app = spawn_staff_app(&[("admin.require_second_factor", "admin".into())]).await;
    super::add_staff(&app, "ana@example.org", StaffRole::Admin).await;
    // The secret the enrolment page will show, made beforehand so the steps can type its code.
    let (id,): (uuid::Uuid,) =
        sqlx::query_as("SELECT id FROM staff WHERE email = 'ana@example.org'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let secret = TotpSecret::generate();
    let key = SealingKey::derive(crate::helpers::SECRET_KEY.as_bytes());
    sqlx::query("UPDATE staff SET totp_pending_secret = $2, totp_pending_at = now() WHERE id = $1")
        .bind(id)
        .bind(secret.seal(&key, id))
        .execute(&app.pool)
        .await
        .unwrap();
    let code = super::second_factor::pyotp_code(&secret.base32(), 0);
    let log_in = || {
        vec![
            typed("#email", "ana@example.org"),
            typed("#password", PASSWORD),
            Step::Click("#log-in"),
        ]
    };
    #[rustfmt::skip]
    let states = vec![
        form("sent to enrolment", "/admin/login", log_in(), "#must-enrol", "asks members"),
        form("enrolment refused", "/admin/account/two-factor", vec![typed("#code", "12345x"), Step::Click("#confirm-totp")], "#totp-error", "not the one"),
        form("enrolled", "/admin/account/two-factor", vec![typed("#code", &code), Step::Click("#confirm-totp")], "#enrolled", "is set up"),
        page("account with a second factor", "/admin/account", "#second-factor-state", "on since"),
        page("the app's page", "/admin/account/two-factor", "#recovery-left", "10"),
        form("password change refused", "/admin/account", vec![typed("#current_password", PASSWORD), typed("#new_password", "one new password"), typed("#new_password_again", "another new password"), Step::Click("#change-password")], "#password-error", "differ"),
        form("logged out", "/admin/account", vec![Step::Click("nav form.inline button")], "h1", "Staff login"),
        form("second factor asked", "/admin/login", log_in(), "h1", "Second factor"),
        form("second factor refused", "/admin/login/second-factor", vec![typed("#code", "not a code"), Step::Click("#verify")], "#code-error", "not right"),
    ];
    let found = violations_in(&app, &axe, &states).await;
    assert!(
        found.is_empty(),
        "WCAG 2.1 AA violations and weak focus rings:\n{}",
        found.join("\n")
    );
}

/// Single sign-on: the login page with its button, and a refused sign-in's page (no provider
/// is needed for either: the state is refused before one is asked).
#[tokio::test]
async fn axe_finds_no_wcag_21_aa_violation_on_the_single_sign_on_pages() {
    let axe = axe_source();
    let app = spawn_staff_app(&[
        ("oidc.enabled", true.into()),
        ("oidc.issuer", "http://127.0.0.1:9".into()),
        ("oidc.client_id", "newsletter".into()),
        ("oidc.client_secret", "secret".into()),
    ])
    .await;
    super::add_staff(&app, "ana@example.org", StaffRole::Admin).await;
    let states = vec![
        page(
            "login with single sign-on",
            "/admin/login",
            "#sign-in-oidc",
            "Sign in with single sign-on",
        ),
        page(
            "single sign-on refused",
            "/admin/login/oidc/callback?code=x&state=not-a-state",
            "main p",
            "not started in this browser",
        ),
    ];
    let found = violations_in(&app, &axe, &states).await;
    assert!(
        found.is_empty(),
        "WCAG 2.1 AA violations and weak focus rings:\n{}",
        found.join("\n")
    );
}
