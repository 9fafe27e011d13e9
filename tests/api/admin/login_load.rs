//! Logins under load (issue 26): at most `admin.max_concurrent_logins` password checks at
//! once, the rest 429 with Retry-After; guesses made at once count each other before any hash;
//! an IPv6 network counts as one client; a burst gives its memory back; no answer is a 5xx.

use std::sync::Arc;

use newsletter::domain::StaffRole;
use reqwest::header::{COOKIE, ORIGIN, SET_COOKIE};
use reqwest::StatusCode;

use super::{add_staff, csrf_in, spawn_staff_app, PASSWORD};
use crate::server_process::ServerProcess;

/// A login form as a browser holds it: the login cookie and the form's CSRF token.
struct LoginForm {
    base: String,
    cookie: String,
    csrf: String,
    http: reqwest::Client,
}

impl LoginForm {
    async fn open(base: &str) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let page = http
            .get(format!("{base}/admin/login"))
            .send()
            .await
            .unwrap();
        let cookie = page
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("newsletter_login="))
            .and_then(|v| v.split(';').next())
            .expect("a login cookie")
            .to_owned();
        let csrf = csrf_in(&page.text().await.unwrap());
        Self {
            base: base.to_owned(),
            cookie,
            csrf,
            http,
        }
    }

    /// Sends the form, from `forwarded_for` when given (behind a trusted proxy).
    async fn send(
        &self,
        email: &str,
        password: &str,
        forwarded_for: Option<&str>,
    ) -> reqwest::Response {
        let body = serde_urlencoded::to_string([
            ("csrf_token", self.csrf.as_str()),
            ("email", email),
            ("password", password),
        ])
        .unwrap();
        let mut request = self
            .http
            .post(format!("{}/admin/login", self.base))
            .header(COOKIE, &self.cookie)
            .header(ORIGIN, &self.base)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(ip) = forwarded_for {
            request = request.header("x-forwarded-for", ip);
        }
        request.send().await.unwrap()
    }
}

/// Sends the form `n` times at once, the `i`th with the address and password `who(i)`: each
/// answer's status, and whether it said when to come back (`Retry-After`).
async fn at_once(
    form: &Arc<LoginForm>,
    n: usize,
    who: impl Fn(usize) -> (&'static str, String),
) -> Vec<(StatusCode, bool)> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (form, (email, password)) = (Arc::clone(form), who(i));
        tasks.spawn(async move {
            let r = form.send(email, &password, None).await;
            (r.status(), r.headers().contains_key("retry-after"))
        });
    }
    tasks.join_all().await
}

fn count(answers: &[(StatusCode, bool)], status: u16) -> usize {
    answers.iter().filter(|(s, _)| s.as_u16() == status).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn forty_guesses_at_once_at_one_account_check_at_most_its_limit() {
    let app = spawn_staff_app(&[
        ("admin.login_failures_per_account", 5.into()),
        ("admin.login_failures_per_ip", 1_000.into()),
    ])
    .await;
    add_staff(&app, "ana@example.org", StaffRole::Admin).await;
    let form = Arc::new(LoginForm::open(&app.address).await);

    let answers = at_once(&form, 40, |i| {
        ("ana@example.org", format!("guess number {i}"))
    })
    .await;

    let checked = count(&answers, 401);
    assert!(
        (1..=5).contains(&checked),
        "{checked} passwords checked against a limit of 5: {answers:?}"
    );
    assert_eq!(checked + count(&answers, 429), 40, "{answers:?}");
    assert!(answers.iter().all(|(s, retry)| s.as_u16() != 429 || *retry));
    let failures: i64 = sqlx::query_scalar("SELECT count(*) FROM staff_login_failures")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        failures as usize, checked,
        "only checked guesses are failures"
    );
    let right = form.send("ana@example.org", PASSWORD, None).await;
    assert_eq!(right.status(), 429, "the account waits out its window");
}

#[tokio::test]
async fn an_ipv6_network_of_the_configured_prefix_is_one_client() {
    let app = spawn_staff_app(&[
        ("admin.login_failures_per_account", 100.into()),
        ("admin.login_failures_per_ip", 3.into()),
        ("server.trust_forwarded_for", true.into()),
    ])
    .await;
    add_staff(&app, "ana@example.org", StaffRole::Admin).await;
    let form = LoginForm::open(&app.address).await;
    for (i, host) in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::9"]
        .iter()
        .enumerate()
    {
        let r = form
            .send(&format!("x{i}@example.org"), "guess guess", Some(host))
            .await;
        assert_eq!(r.status(), 401, "{host}");
    }
    let same_network = form
        .send("ana@example.org", PASSWORD, Some("2001:db8:1:2::77"))
        .await;
    assert_eq!(same_network.status(), 429, "a new address in the same /64");
    let other_network = form
        .send("ana@example.org", PASSWORD, Some("2001:db8:1:3::1"))
        .await;
    assert_eq!(other_network.status(), 303, "another /64 is another client");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_200_logins_gives_its_memory_back_and_no_answer_is_a_5xx() {
    let mut server = ServerProcess::start(&[
        ("NEWSLETTER__ADMIN__LOGIN_FAILURES_PER_ACCOUNT", "1000"),
        ("NEWSLETTER__ADMIN__LOGIN_FAILURES_PER_IP", "1000"),
    ])
    .await;
    let pool = sqlx::PgPool::connect(&server.db.url).await.unwrap();
    newsletter::ops::staff::add(
        &pool,
        &newsletter::ops::Actor::CommandLine,
        "ana@example.org",
        StaffRole::Admin.as_str(),
        newsletter::domain::NewPassword::parse(PASSWORD).unwrap(),
    )
    .await
    .unwrap();
    let form = Arc::new(LoginForm::open(&server.address).await);
    let before = server.rss_bytes();

    let answers = at_once(&form, 200, |i| {
        let email = if i % 2 == 0 {
            "ana@example.org"
        } else {
            "nobody@example.org"
        };
        (email, "not the password".to_owned())
    })
    .await;

    let after = server.rss_bytes();
    assert!(server.is_running());
    let (wrong, busy) = (count(&answers, 401), count(&answers, 429));
    assert_eq!(wrong + busy, 200, "only 401 and 429: {answers:?}");
    assert!(wrong >= 2, "some passwords were checked: {answers:?}");
    assert!(answers.iter().all(|(s, retry)| s.as_u16() != 429 || *retry));
    let mb = |b: u64| b as f64 / 1e6;
    assert!(
        after <= before + 50_000_000,
        "resident memory {:.1} MB before the burst, {:.1} MB after ({wrong} checked, {busy} busy)",
        mb(before),
        mb(after)
    );
    eprintln!(
        "resident memory {:.1} MB before, {:.1} MB after ({wrong} checked, {busy} busy)",
        mb(before),
        mb(after)
    );
    pool.close().await;
}
