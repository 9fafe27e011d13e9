//! Passkeys in a real Chromium, through WebDriver's virtual authenticator (the WebAuthn
//! extension commands chromedriver supports): registered at enrolment, then signing in alone,
//! then as the second factor after a password; removed; a replayed answer and a forged one are
//! refused. The service is at `http://localhost:PORT` (a relying party id must be a domain,
//! and browsers treat localhost as secure).

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::Client;
use newsletter::domain::StaffRole;
use serde_json::{json, Value};

use super::browser::{click, fill, wait_for_contains};
use super::{add_staff, free_port, spawn_staff_app_on, Browser, PASSWORD};
use crate::browser::Driver;
use crate::helpers::TestApp;

/// `POST /session/{id}/webauthn/authenticator`: a CTAP2 authenticator built into the
/// "device", holding resident keys and verifying its user (a fingerprint, say) every time.
#[derive(Debug)]
struct AddVirtualAuthenticator;

impl WebDriverCompatibleCommand for AddVirtualAuthenticator {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/webauthn/authenticator",
            session_id.expect("a WebDriver session")
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        let body = json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserConsenting": true,
            "isUserVerified": true,
        });
        (axum::http::Method::POST, Some(body.to_string()))
    }
}

async fn with_authenticator(driver: &Driver) -> Client {
    let browser = driver.connect().await;
    browser
        .issue_cmd(AddVirtualAuthenticator)
        .await
        .expect("chromedriver adds a virtual authenticator");
    browser
}

async fn spawn_on_localhost(overrides: &[(&str, toml::Value)]) -> TestApp {
    let port = free_port();
    let base = format!("http://localhost:{port}");
    let mut all: Vec<(&str, toml::Value)> = vec![("server.base_url", base.as_str().into())];
    all.extend(overrides.iter().cloned());
    spawn_staff_app_on(port, &all).await
}

/// `path` at the service's own base URL (`http://localhost:PORT`), where its cookies and
/// `Origin` belong.
fn at(app: &TestApp, path: &str) -> String {
    app.settings.server.base_url.join(path)
}

async fn audit(app: &TestApp, action: &str) -> Vec<Value> {
    sqlx::query_scalar("SELECT detail FROM audit_log WHERE action = $1 ORDER BY id")
        .bind(action)
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

/// Clicks `button` (a passkey ceremony) and waits for the page it leads to show `notice`; on
/// failure, says what the page's status line said.
async fn passkey_then(browser: &Client, button: &str, css: &str, expected: &str) {
    click(browser, button).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Ok(el) = browser.find(fantoccini::Locator::Css(css)).await {
            if el.text().await.is_ok_and(|t| t.contains(expected)) {
                return;
            }
        }
        if std::time::Instant::now() > deadline {
            let status = match browser
                .find(fantoccini::Locator::Css("#passkey-status"))
                .await
            {
                Ok(el) => el.text().await.unwrap_or_default(),
                Err(_) => "(no status line)".into(),
            };
            panic!("{css} never read {expected:?}; the passkey status said {status:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Signs Ana in with her password on the login page shown, and waits for the page headed
/// `then`.
async fn password(browser: &Client, then: &str) {
    fill(browser, "#email", "ana@example.org").await;
    fill(browser, "#password", PASSWORD).await;
    click(browser, "#log-in").await;
    wait_for_contains(browser, "h1", then).await;
}

async fn log_out(browser: &Client) {
    click(browser, "nav form.inline button").await;
    wait_for_contains(browser, "h1", "Staff login").await;
}

#[tokio::test]
async fn a_passkey_is_registered_then_signs_in_alone_and_as_the_second_factor_in_a_real_browser() {
    let app = spawn_on_localhost(&[("admin.require_second_factor", "admin".into())]).await;
    add_staff(&app, "ana@example.org", StaffRole::Admin).await;
    let driver = Driver::start();
    let browser = with_authenticator(&driver).await;

    // The password alone: sent to enrolment, where a passkey is one way to enrol.
    browser.goto(&at(&app, "/admin/login")).await.unwrap();
    password(&browser, "Two-factor sign-in").await;
    let axe = crate::axe::axe_source();
    let found = crate::axe::violations(&browser, &axe).await;
    assert!(
        found.is_empty(),
        "enrolment with a passkey offered: {found:?}"
    );
    fill(&browser, "#passkey-name", "Test laptop").await;
    passkey_then(&browser, "#add-passkey", "#notice", "passkey is added").await;
    wait_for_contains(&browser, "#passkeys", "Test laptop").await;
    let found = crate::axe::violations(&browser, &axe).await;
    assert!(
        found.is_empty(),
        "the account page with a passkey: {found:?}"
    );
    let added = audit(&app, "passkey-add").await;
    assert_eq!(added, [json!({ "name": "Test laptop" })]);
    browser.goto(&at(&app, "/admin/staff")).await.unwrap();
    wait_for_contains(&browser, "main tbody", "1 passkey(s)").await;

    // A passkey alone signs in, as both factors.
    log_out(&browser).await;
    let found = crate::axe::violations(&browser, &axe).await;
    assert!(
        found.is_empty(),
        "the login page with its passkey button: {found:?}"
    );
    passkey_then(&browser, "#passkey-sign-in", "h1", "Dashboard").await;
    let signed: Vec<Value> = audit(&app, "sign-in").await;
    let last = signed.last().unwrap();
    assert_eq!(last["method"], "passkey");
    assert_eq!(last["second_factor"], true);
    browser.goto(&at(&app, "/admin/staff")).await.unwrap();
    wait_for_contains(&browser, "h1", "Staff").await;

    // After a password, the passkey is the second factor.
    log_out(&browser).await;
    password(&browser, "Second factor").await;
    let found = crate::axe::violations(&browser, &axe).await;
    assert!(found.is_empty(), "the second factor by passkey: {found:?}");
    passkey_then(&browser, "#passkey-second-factor", "h1", "Dashboard").await;
    let used = audit(&app, "second-factor").await;
    assert_eq!(used.last().unwrap()["method"], "passkey");

    // Removed, it no longer counts: the next password sign-in is sent to enrolment again.
    browser.goto(&at(&app, "/admin/account")).await.unwrap();
    click(&browser, "#passkeys button.danger").await;
    wait_for_contains(&browser, "#notice", "passkey is removed").await;
    wait_for_contains(&browser, "#no-passkeys", "No passkeys yet").await;
    log_out(&browser).await;
    password(&browser, "Two-factor sign-in").await;
    browser.close().await.unwrap();
}

/// The script a page runs to sign in with a passkey by hand: begin, ask the authenticator,
/// then send the same answer twice; resolves to the two statuses.
const SIGN_IN_TWICE: &str = r#"
const done = arguments[arguments.length - 1];
const csrf = document.querySelector('#passkey-sign-in').getAttribute('data-csrf');
const b = s => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4)), c => c.charCodeAt(0)).buffer;
const t = a => btoa(String.fromCharCode(...new Uint8Array(a))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const post = (url, f) => fetch(url, { method: 'POST', body: new URLSearchParams(f) });
(async () => {
  const begun = await (await post('/admin/login/passkey/begin', { csrf_token: csrf })).json();
  const o = begun.options;
  o.challenge = b(o.challenge);
  const c = await navigator.credentials.get({ publicKey: o });
  const credential = JSON.stringify({ id: c.id, rawId: t(c.rawId), type: c.type, extensions: {},
    response: { authenticatorData: t(c.response.authenticatorData), clientDataJSON: t(c.response.clientDataJSON),
                signature: t(c.response.signature), userHandle: t(c.response.userHandle) } });
  const fields = { csrf_token: csrf, ceremony: begun.ceremony, credential };
  const first = await post('/admin/login/passkey/finish', fields);
  const second = await post('/admin/login/passkey/finish', fields);
  done([first.status, second.status]);
})().catch(e => done(['failed: ' + e]));
"#;

#[tokio::test]
async fn a_replayed_passkey_answer_and_a_forged_one_are_refused() {
    let app = spawn_on_localhost(&[]).await;
    add_staff(&app, "ana@example.org", StaffRole::Admin).await;
    let driver = Driver::start();
    let browser = with_authenticator(&driver).await;
    browser.goto(&at(&app, "/admin/login")).await.unwrap();
    password(&browser, "Dashboard").await;
    browser.goto(&at(&app, "/admin/account")).await.unwrap();
    fill(&browser, "#passkey-name", "Phone").await;
    passkey_then(&browser, "#add-passkey", "#notice", "passkey is added").await;
    log_out(&browser).await;

    let statuses = browser.execute_async(SIGN_IN_TWICE, vec![]).await.unwrap();
    assert_eq!(statuses, json!([200, 401]), "the same answer twice");
    let refused = audit(&app, "sign-in-refused").await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["method"], "passkey");
    browser.close().await.unwrap();

    // A made-up answer, with a ceremony of its own: refused, nobody signed in.
    let mut stranger = Browser::new(&app);
    let page = stranger.get("/admin/login").await.text().await.unwrap();
    let csrf = super::csrf_in(&page);
    let origin = app.settings.server.base_url.as_str().to_owned();
    let begun = stranger
        .post_with(
            "/admin/login/passkey/begin",
            &[("csrf_token", &csrf)],
            Some(&origin),
        )
        .await;
    assert_eq!(begun.status(), 200);
    let begun: Value = begun.json().await.unwrap();
    let forged = json!({
        "id": "AAAA", "rawId": "AAAA", "type": "public-key", "extensions": {},
        "response": { "authenticatorData": "AAAA", "clientDataJSON": "AAAA",
                      "signature": "AAAA", "userHandle": "AAAA" }
    })
    .to_string();
    for credential in [forged.as_str(), "{", ""] {
        let r = stranger
            .post_with(
                "/admin/login/passkey/finish",
                &[
                    ("csrf_token", &csrf),
                    ("ceremony", begun["ceremony"].as_str().unwrap()),
                    ("credential", credential),
                ],
                Some(&origin),
            )
            .await;
        assert_eq!(r.status(), 401, "{credential}");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("not accepted"));
    }
    assert!(stranger
        .cookies
        .iter()
        .all(|c| !c.starts_with("newsletter_staff=")));
    // A made-up registration: told it was not added, in the words of adding one.
    // (Bo: Ana's password sign-in would now ask for her passkey.)
    add_staff(&app, "bo@example.org", StaffRole::Editor).await;
    let mut bo = Browser::new(&app);
    assert_eq!(
        bo.try_log_in("bo@example.org", PASSWORD).await.status(),
        303
    );
    let r = bo.post("/admin/account/passkeys/begin", &[]).await;
    assert_eq!(r.status(), 200);
    let begun: Value = r.json().await.unwrap();
    let r = bo
        .post(
            "/admin/account/passkeys/finish",
            &[
                ("ceremony", begun["ceremony"].as_str().unwrap()),
                ("name", "Made up"),
                ("credential", &forged),
            ],
        )
        .await;
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("was not added"),
        "{body}"
    );
    // A field the door cannot read is answered in JSON too, naming it.
    let r = bo
        .post(
            "/admin/account/passkeys/finish",
            &[("ceremony", "x"), ("name", "a\u{0}b"), ("credential", "{}")],
        )
        .await;
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("name"), "{body}");
    // A session signed in long ago adds no passkey.
    sqlx::query("UPDATE staff_sessions SET created_at = now() - interval '16 minutes'")
        .execute(&app.pool)
        .await
        .unwrap();
    let r = bo.post("/admin/account/passkeys/begin", &[]).await;
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("recent sign-in"),
        "{body}"
    );
    // Without the login page's CSRF token: refused before anything.
    let r = stranger
        .post_with("/admin/login/passkey/begin", &[], Some(&origin))
        .await;
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn passkeys_are_not_offered_where_they_cannot_work() {
    // 127.0.0.1 over http: an IP address cannot be a relying party id.
    let app = super::spawn_staff_app(&[]).await;
    add_staff(&app, "ana@example.org", StaffRole::Admin).await;
    let mut browser = Browser::new(&app);
    let login = browser.get("/admin/login").await.text().await.unwrap();
    assert!(!login.contains("passkey-sign-in"), "{login}");
    assert_eq!(
        browser
            .try_log_in("ana@example.org", PASSWORD)
            .await
            .status(),
        303
    );
    let account = browser.get("/admin/account").await.text().await.unwrap();
    assert!(account.contains("id=\"passkeys-unavailable\""), "{account}");
    assert!(account.contains("domain name"), "{account}");
    let r = browser.post("/admin/account/passkeys/begin", &[]).await;
    assert_eq!(r.status(), 409);
    let r = browser
        .post("/admin/account/passkeys/remove", &[("passkey", "nope")])
        .await;
    assert_eq!(r.status(), 422);
}
