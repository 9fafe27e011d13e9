//! Single sign-on against a real OpenID Provider: the `oidc-provider` package (certified by
//! the OpenID Foundation; `scripts/test` installs it into `target/oidc-provider`) on 127.0.0.1,
//! run by `tests/fixtures/oidc/provider.mjs`, whose accounts can make it lie (a changed
//! signature, another login's nonce). A browser's way through the provider is walked over HTTP
//! here (its login form, then back), and once in Chromium.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use newsletter::domain::StaffRole;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;
use toml::Value;

use super::browser::{click, fill, wait_for_text};
use super::{add_staff, free_port, spawn_staff_app_on, Browser};
use crate::browser::Driver;
use crate::helpers::TestApp;

const CLIENT_ID: &str = "newsletter-tests";
const CLIENT_SECRET: &str = "a client secret for the tests";
/// The login every staff member below was added with.
const MEMBER: &str = "member@example.org";

/// The provider's accounts, by the login typed on its page.
fn accounts() -> serde_json::Value {
    let account = |email: &str, verified: bool, amr: serde_json::Value, misbehave: &str| {
        json!({ "email": email, "email_verified": verified, "amr": amr,
                "misbehave": if misbehave.is_empty() { serde_json::Value::Null } else { misbehave.into() } })
    };
    json!({
        // The member's address as the provider spells it: the same mailbox.
        "member": account("Member@Example.ORG", true, json!(null), ""),
        "member-mfa": account(MEMBER, true, json!(["mfa"]), ""),
        "unverified": account(MEMBER, false, json!(null), ""),
        "forger": account(MEMBER, true, json!(null), "signature"),
        "replayer": account(MEMBER, true, json!(null), "nonce"),
        "stranger": account("member@evil-example.org", true, json!(null), ""),
        "newcomer": account("newcomer@example.org", true, json!(null), ""),
    })
}

/// `provider.mjs` in a process group of its own, killed on drop (it also ends when its
/// standard input, held here, closes).
struct Provider {
    child: Child,
    issuer: String,
}

impl Provider {
    /// On `port`, or any free one.
    fn start(redirect_uri: &str, port: Option<u16>) -> Self {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let modules = root.join("target/oidc-provider/node_modules");
        assert!(
            modules.join("oidc-provider/package.json").exists(),
            "oidc-provider is needed: scripts/test installs it into target/oidc-provider"
        );
        let config = json!({
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uri": redirect_uri,
            "accounts": accounts(),
            "port": port,
        });
        let mut child = Command::new("node")
            .arg(root.join("tests/fixtures/oidc/provider.mjs"))
            .arg(config.to_string())
            .env("OIDC_PROVIDER_MODULES", &modules)
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting node (apt-get install nodejs)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let started: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("provider.mjs said {line:?}"));
        let issuer = started["issuer"].as_str().unwrap().to_owned();
        assert!(issuer.starts_with("http://127.0.0.1:"), "{issuer}");
        Self { child, issuer }
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("--")
            .arg(format!("-{}", self.child.id()))
            .status();
        let _ = self.child.wait();
    }
}

/// The callback of the app on `port`.
fn redirect_uri(port: u16) -> String {
    format!("http://127.0.0.1:{port}/admin/login/oidc/callback")
}

/// The app with single sign-on through a fresh provider, for `example.org`, with `overrides`.
async fn spawn_with_provider(overrides: &[(&str, Value)]) -> (TestApp, Provider) {
    let port = free_port();
    let provider = Provider::start(&redirect_uri(port), None);
    let mut all: Vec<(&str, Value)> = vec![
        ("oidc.enabled", true.into()),
        ("oidc.issuer", provider.issuer.as_str().into()),
        ("oidc.client_id", CLIENT_ID.into()),
        ("oidc.client_secret", CLIENT_SECRET.into()),
        (
            "oidc.allowed_domains",
            Value::Array(vec!["example.org".into()]),
        ),
    ];
    all.extend(overrides.iter().cloned());
    let app = spawn_staff_app_on(port, &all).await;
    (app, provider)
}

/// Where a redirect goes.
fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .unwrap_or_else(|| panic!("no redirect: {}", response.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// The sign-in started at the login page's button: the provider's URL (the browser's cookie
/// kept).
async fn start(browser: &mut Browser<'_>) -> String {
    let response = browser.get("/admin/login/oidc").await;
    assert_eq!(response.status(), 303);
    location(&response)
}

/// What a browser does at the provider, from its authorization URL: its login form filled in
/// as `login`, then the redirects until one leaves for the callback, whose URL is returned
/// (not followed). Cookies kept by hand, at most 8 hops.
async fn at_provider(authorize: &str, login: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let origin = authorize.split("/auth").next().unwrap().to_owned();
    let absolute = |url: &str| {
        if url.starts_with('/') {
            format!("{origin}{url}")
        } else {
            url.to_owned()
        }
    };
    fn keep(response: &reqwest::Response, cookies: &mut Vec<String>) {
        for value in response.headers().get_all(SET_COOKIE) {
            let pair = value
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_owned();
            let name = pair.split('=').next().unwrap().to_owned();
            cookies.retain(|c| !c.starts_with(&format!("{name}=")));
            cookies.push(pair);
        }
    }
    let mut cookies: Vec<String> = Vec::new();
    let mut url = authorize.to_owned();
    for _ in 0..8 {
        let response = http
            .get(&url)
            .header(COOKIE, cookies.join("; "))
            .send()
            .await
            .unwrap();
        keep(&response, &mut cookies);
        if response.status().is_redirection() {
            let next = absolute(&location(&response));
            if next.contains("/admin/login/oidc/callback") {
                return next;
            }
            url = next;
            continue;
        }
        // The provider's login page.
        let page = response.text().await.unwrap();
        let action = page
            .split("action=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no form on the provider's page: {page}"));
        let response = http
            .post(absolute(action))
            .header(COOKIE, cookies.join("; "))
            .form(&[("prompt", "login"), ("login", login), ("password", "any")])
            .send()
            .await
            .unwrap();
        keep(&response, &mut cookies);
        assert!(response.status().is_redirection(), "{}", response.status());
        url = absolute(&location(&response));
    }
    panic!("the provider never sent the browser back");
}

/// The path and query of a URL of the app.
fn path_of(url: &str) -> &str {
    let after_scheme = &url[url.find("://").unwrap() + 3..];
    &after_scheme[after_scheme.find('/').unwrap()..]
}

/// `url` with query parameter `name` set to `value`.
fn with_param(url: &str, name: &str, value: &str) -> String {
    let mut parsed = url::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == name {
                value.to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    parsed.query_pairs_mut().clear().extend_pairs(pairs);
    parsed.to_string()
}

/// Signs `login` in through the provider, from the app's button to the callback's answer.
async fn sign_in_as(browser: &mut Browser<'_>, login: &str) -> reqwest::Response {
    let authorize = start(browser).await;
    let callback = at_provider(&authorize, login).await;
    browser.get(path_of(&callback)).await
}

/// Whether the browser has a live session (the dashboard answers rather than the login page).
async fn has_session(browser: &mut Browser<'_>) -> bool {
    let response = browser.get("/admin").await;
    match response.status().as_u16() {
        200 => true,
        303 => {
            assert_eq!(location(&response), "/admin/login");
            false
        }
        other => panic!("/admin answered {other}"),
    }
}

/// The audit log's (action, actor, detail) entries, oldest first.
async fn audit(app: &TestApp) -> Vec<(String, String, serde_json::Value)> {
    sqlx::query_as("SELECT action, actor, detail FROM audit_log ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

/// The reasons of the `sign-in-refused` entries, and whether any `sign-in` was written.
async fn refusals(app: &TestApp) -> (Vec<String>, bool) {
    let entries = audit(app).await;
    let reasons = entries
        .iter()
        .filter(|(action, _, _)| action == "sign-in-refused")
        .map(|(_, _, detail)| {
            assert_eq!(detail["method"], "oidc");
            detail["reason"].as_str().unwrap().to_owned()
        })
        .collect();
    let signed_in = entries.iter().any(|(action, _, _)| action == "sign-in");
    (reasons, signed_in)
}

/// A refused sign-in: its status and page, no session, one `sign-in-refused` with `reason`.
async fn assert_refused(
    browser: &mut Browser<'_>,
    response: reqwest::Response,
    status: u16,
    says: &str,
    reason: &str,
) {
    assert_eq!(response.status(), status);
    let page = response.text().await.unwrap();
    assert!(
        page.contains(says),
        "the page does not say {says:?}: {page}"
    );
    assert!(
        !has_session(browser).await,
        "a refused sign-in left a session"
    );
    let (reasons, signed_in) = refusals(browser.app).await;
    assert_eq!(reasons, [reason]);
    assert!(!signed_in);
}

#[tokio::test]
async fn a_member_signs_in_through_the_provider_under_any_spelling_of_their_address() {
    let (app, _provider) = spawn_with_provider(&[]).await;
    add_staff(&app, MEMBER, StaffRole::Editor).await;
    let mut browser = Browser::new(&app);

    let login = browser.get("/admin/login").await.text().await.unwrap();
    assert!(login.contains("href=\"/admin/login/oidc\""), "{login}");
    assert!(login.contains("Sign in with single sign-on"));

    let authorize = start(&mut browser).await;
    let url = url::Url::parse(&authorize).unwrap();
    let params: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(params["code_challenge_method"], "S256");
    assert_eq!(params["client_id"], CLIENT_ID);
    assert!(params["scope"].split(' ').any(|s| s == "openid"));
    assert!(params.contains_key("state") && params.contains_key("nonce"));
    let callback = at_provider(&authorize, "member").await;
    let response = browser.get(path_of(&callback)).await;

    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/admin");
    assert!(has_session(&mut browser).await);
    let signed_in: Vec<_> = audit(&app)
        .await
        .into_iter()
        .filter(|(action, _, _)| action == "sign-in")
        .collect();
    assert_eq!(signed_in.len(), 1);
    let (_, actor, detail) = &signed_in[0];
    assert_eq!(actor, MEMBER);
    assert_eq!(detail["method"], "oidc");
    assert_eq!(detail["second_factor"], false);
    // The provider's state serves once: the same answer again is refused.
    let again = browser.get(path_of(&callback)).await;
    assert_eq!(again.status(), 400);
    assert_eq!(refusals(&app).await.0, ["unknown-state"]);
}

#[tokio::test]
async fn the_providers_amr_says_whether_both_factors_were_proved() {
    let rule = [("admin.require_second_factor", "all".into())];
    let (app, _provider) = spawn_with_provider(&rule).await;
    add_staff(&app, MEMBER, StaffRole::Editor).await;

    // amr ["mfa"]: both factors, the staff area is open.
    let mut both = Browser::new(&app);
    let response = sign_in_as(&mut both, "member-mfa").await;
    assert_eq!(location(&response), "/admin");
    assert!(has_session(&mut both).await);
    // No amr: one factor, and the member, who must have a second one, is sent to enrol.
    let mut one = Browser::new(&app);
    let response = sign_in_as(&mut one, "member").await;
    assert_eq!(location(&response), "/admin/account/two-factor");
    assert_eq!(
        location(&one.get("/admin").await),
        "/admin/account/two-factor"
    );

    let factors: Vec<serde_json::Value> = audit(&app)
        .await
        .into_iter()
        .filter(|(action, _, _)| action == "sign-in")
        .map(|(_, _, detail)| detail["second_factor"].clone())
        .collect();
    assert_eq!(factors, [true, false]);
}

#[tokio::test]
async fn an_id_token_whose_signature_was_changed_is_refused() {
    let (app, _provider) = spawn_with_provider(&[]).await;
    add_staff(&app, MEMBER, StaffRole::Admin).await;
    let mut browser = Browser::new(&app);

    let response = sign_in_as(&mut browser, "forger").await;

    assert_refused(
        &mut browser,
        response,
        400,
        "could not be verified",
        "bad-signature",
    )
    .await;
}

#[tokio::test]
async fn an_id_token_with_the_nonce_of_another_sign_in_is_refused() {
    let (app, _provider) = spawn_with_provider(&[]).await;
    add_staff(&app, MEMBER, StaffRole::Admin).await;
    let mut browser = Browser::new(&app);

    let response = sign_in_as(&mut browser, "replayer").await;

    assert_refused(
        &mut browser,
        response,
        400,
        "could not be verified",
        "wrong-nonce",
    )
    .await;
}

#[tokio::test]
async fn an_answer_with_another_state_is_refused() {
    let (app, _provider) = spawn_with_provider(&[]).await;
    add_staff(&app, MEMBER, StaffRole::Admin).await;
    let mut browser = Browser::new(&app);
    let authorize = start(&mut browser).await;
    let callback = at_provider(&authorize, "member").await;

    let forged = with_param(
        &callback,
        "state",
        newsletter::domain::Token::generate().as_str(),
    );
    let response = browser.get(path_of(&forged)).await;

    assert_refused(
        &mut browser,
        response,
        400,
        "not started in this browser",
        "unknown-state",
    )
    .await;
}

#[tokio::test]
async fn an_answer_carried_to_another_browser_is_refused() {
    let (app, _provider) = spawn_with_provider(&[]).await;
    add_staff(&app, MEMBER, StaffRole::Admin).await;
    // The attacker signs in at the provider and hands their answer to a victim's browser.
    let mut attacker = Browser::new(&app);
    let callback = at_provider(&start(&mut attacker).await, "member").await;
    let mut victim = Browser::new(&app);
    start(&mut victim).await;

    let response = victim.get(path_of(&callback)).await;

    assert_refused(
        &mut victim,
        response,
        400,
        "not started in this browser",
        "other-browser",
    )
    .await;
}

#[tokio::test]
async fn a_sign_in_older_than_ten_minutes_is_refused() {
    let (app, _provider) = spawn_with_provider(&[]).await;
    add_staff(&app, MEMBER, StaffRole::Admin).await;
    let mut browser = Browser::new(&app);
    let callback = at_provider(&start(&mut browser).await, "member").await;
    sqlx::query("UPDATE oidc_logins SET created_at = now() - interval '601 seconds'")
        .execute(&app.pool)
        .await
        .unwrap();

    let response = browser.get(path_of(&callback)).await;

    assert_refused(
        &mut browser,
        response,
        400,
        "more than 10 minutes",
        "expired",
    )
    .await;
}

#[tokio::test]
async fn an_error_from_the_provider_is_a_plain_page() {
    let (app, _provider) = spawn_with_provider(&[]).await;
    let mut browser = Browser::new(&app);
    add_staff(&app, MEMBER, StaffRole::Admin).await;
    let authorize = start(&mut browser).await;
    let state = url::Url::parse(&authorize)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();

    let response = browser
        .get(&format!(
            "/admin/login/oidc/callback?error=access_denied&error_description=The+user+said+no&state={state}"
        ))
        .await;

    assert_refused(
        &mut browser,
        response,
        400,
        "(access_denied)",
        "provider-error",
    )
    .await;
    // Its state is spent.
    assert_eq!(
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM oidc_logins")
            .fetch_one(&app.pool)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn an_address_outside_the_allowed_domains_is_refused() {
    let (app, _provider) = spawn_with_provider(&[("oidc.default_role", "editor".into())]).await;
    add_staff(&app, "member@evil-example.org", StaffRole::Admin).await;
    let mut browser = Browser::new(&app);

    let response = sign_in_as(&mut browser, "stranger").await;

    assert_refused(
        &mut browser,
        response,
        403,
        "at evil-example.org may not",
        "domain-not-allowed",
    )
    .await;
}

#[tokio::test]
async fn an_address_the_provider_did_not_verify_is_refused() {
    let (app, _provider) = spawn_with_provider(&[]).await;
    add_staff(&app, MEMBER, StaffRole::Admin).await;
    let mut browser = Browser::new(&app);

    let response = sign_in_as(&mut browser, "unverified").await;

    assert_refused(
        &mut browser,
        response,
        403,
        "is verified",
        "email-unverified",
    )
    .await;
}

#[tokio::test]
async fn someone_without_an_account_is_refused_when_there_is_no_default_role() {
    let (app, _provider) = spawn_with_provider(&[]).await;
    add_staff(&app, MEMBER, StaffRole::Admin).await;
    let mut browser = Browser::new(&app);

    let response = sign_in_as(&mut browser, "newcomer").await;

    assert_refused(
        &mut browser,
        response,
        403,
        "no staff account for newcomer@example.org",
        "unknown-member",
    )
    .await;
    let accounts: i64 = sqlx::query_scalar("SELECT count(*) FROM staff")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(accounts, 1);
}

#[tokio::test]
async fn someone_without_an_account_gets_the_default_role_at_their_first_sign_in() {
    let (app, _provider) = spawn_with_provider(&[("oidc.default_role", "editor".into())]).await;
    add_staff(&app, MEMBER, StaffRole::Admin).await;
    let mut browser = Browser::new(&app);

    let response = sign_in_as(&mut browser, "newcomer").await;

    assert_eq!(response.status(), 303);
    assert!(has_session(&mut browser).await);
    let role: String = sqlx::query_scalar("SELECT role FROM staff WHERE email = $1")
        .bind("newcomer@example.org")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(role, "editor");
    let entries = audit(&app).await;
    let added = entries
        .iter()
        .find(|(action, _, detail)| action == "staff-add" && detail["by"] == "single sign-on")
        .expect("a staff-add entry by single sign-on");
    assert_eq!(added.1, "newcomer@example.org");
    assert_eq!(added.2["role"], "editor");
    // The random password is nobody's: a password login with a guess fails.
    let guess = Browser::new(&app)
        .try_log_in("newcomer@example.org", super::PASSWORD)
        .await;
    assert_eq!(guess.status(), 401);
}

#[tokio::test]
async fn without_single_sign_on_there_is_no_button_and_no_route() {
    let app = super::spawn_staff_app(&[]).await;
    let mut browser = Browser::new(&app);
    add_staff(&app, MEMBER, StaffRole::Admin).await;

    let login = browser.get("/admin/login").await.text().await.unwrap();

    assert!(!login.contains("/admin/login/oidc"));
    assert_eq!(browser.get("/admin/login/oidc").await.status(), 404);
    assert_eq!(
        browser
            .get("/admin/login/oidc/callback?code=x&state=y")
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn an_unreachable_provider_does_not_stop_the_service_and_is_asked_again_at_sign_in() {
    // Nobody listens on the issuer's port when the service starts.
    let port = free_port();
    let provider_port = std::iter::repeat_with(free_port)
        .take(10)
        .find(|p| *p != port)
        .unwrap();
    let issuer = format!("http://127.0.0.1:{provider_port}");
    let app = spawn_staff_app_on(
        port,
        &[
            ("oidc.enabled", true.into()),
            ("oidc.issuer", issuer.as_str().into()),
            ("oidc.client_id", CLIENT_ID.into()),
            ("oidc.client_secret", CLIENT_SECRET.into()),
        ],
    )
    .await;
    add_staff(&app, MEMBER, StaffRole::Admin).await;
    let mut browser = Browser::new(&app);

    let response = browser.get("/admin/login/oidc").await;

    assert_eq!(response.status(), 503);
    let page = response.text().await.unwrap();
    assert!(page.contains("cannot be reached"), "{page}");
    assert_eq!(browser.get("/admin/login").await.status(), 200);

    // Once the provider answers, the next sign-in reads its discovery document.
    let provider = Provider::start(&redirect_uri(port), Some(provider_port));
    assert_eq!(provider.issuer, issuer);
    let response = sign_in_as(&mut browser, "member").await;
    assert_eq!(response.status(), 303);
    assert!(has_session(&mut browser).await);
}

#[tokio::test]
async fn a_member_signs_in_through_the_providers_own_page_in_a_real_browser() {
    let (app, _provider) =
        spawn_with_provider(&[("admin.require_second_factor", "none".into())]).await;
    add_staff(&app, MEMBER, StaffRole::Editor).await;
    let driver = Driver::start();
    let browser = driver.connect().await;

    browser.goto(&app.url("/admin/login")).await.unwrap();
    click(&browser, "#sign-in-oidc").await;
    // The provider's development login page.
    fill(&browser, "input[name=login]", "member").await;
    fill(&browser, "input[name=password]", "any password").await;
    click(&browser, "button[type=submit]").await;
    wait_for_text(&browser, "h1", "Dashboard").await;

    let (reasons, signed_in) = refusals(&app).await;
    assert!(reasons.is_empty(), "{reasons:?}");
    assert!(signed_in);
    browser.close().await.unwrap();
}

#[tokio::test]
async fn refused_answers_count_as_failed_logins_from_the_client_and_a_sign_in_is_not_one() {
    let (app, _provider) = spawn_with_provider(&[("admin.login_failures_per_ip", 2.into())]).await;
    add_staff(&app, MEMBER, StaffRole::Admin).await;
    let mut browser = Browser::new(&app);
    // Two forged answers: refused, each counted.
    for _ in 0..2 {
        let token = newsletter::domain::Token::generate();
        let r = browser
            .get(&format!(
                "/admin/login/oidc/callback?code=x&state={}",
                token.as_str()
            ))
            .await;
        assert_eq!(r.status(), 400);
    }
    // The third: the client is over the limit, whatever it sends.
    let token = newsletter::domain::Token::generate();
    let r = browser
        .get(&format!(
            "/admin/login/oidc/callback?code=x&state={}",
            token.as_str()
        ))
        .await;
    assert_eq!(r.status(), 429);
    // A sign-in that goes through leaves no failure behind.
    let (app, _provider2) = spawn_with_provider(&[("admin.login_failures_per_ip", 2.into())]).await;
    add_staff(&app, MEMBER, StaffRole::Admin).await;
    let mut browser = Browser::new(&app);
    let callback = at_provider(&start(&mut browser).await, "member").await;
    let r = browser.get(path_of(&callback)).await;
    assert_eq!(r.status(), 303);
    let failures: i64 = sqlx::query_scalar("SELECT count(*) FROM staff_login_failures")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(failures, 0);
}
