//! The staff area: sign-in, roles, CSRF and Origin checks, news desk, composer, progress.

mod axe;
mod browser;
mod bulk;
mod digests;
mod feedback;
mod first_run;
pub(crate) mod imports;
mod lists;
mod login;
mod login_load;
pub(crate) mod look;
mod news;
mod oidc;
mod passkeys;
mod progress;
pub(crate) mod second_factor;
mod sessions;
mod setup;
mod staff;
mod subscribers;
pub(crate) mod updates;

use std::net::TcpListener;

use newsletter::domain::{NewPassword, StaffRole};
use reqwest::header::{COOKIE, ORIGIN, SET_COOKIE, USER_AGENT};
use toml::Value;

use crate::helpers::{spawn_app_with, try_spawn_app_with, TestApp};

pub const PASSWORD: &str = "a long enough password";

/// The app on a port known in advance, with `server.base_url` naming it, so a browser's
/// `Origin` is the service's own.
pub async fn spawn_staff_app(overrides: &[(&str, Value)]) -> TestApp {
    // The port is free when chosen, but another test may bind it before the app does: then
    // another port (a race seen once in CI among hundreds of tests starting servers).
    for _ in 0..4 {
        match try_spawn_app_with(&on_port(free_port(), overrides)).await {
            Ok(app) => return app,
            Err(e) => eprintln!("starting the staff app: {e:#}; trying another port"),
        }
    }
    spawn_staff_app_on(free_port(), overrides).await
}

/// A port free now on 127.0.0.1, for a server started soon after.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// [`spawn_staff_app`] on `port` (one that others must know before the app starts).
pub async fn spawn_staff_app_on(port: u16, overrides: &[(&str, Value)]) -> TestApp {
    spawn_app_with(&on_port(port, overrides)).await
}

/// `overrides` with `server.bind` and `server.base_url` on `port` of 127.0.0.1.
pub fn on_port<'a>(port: u16, overrides: &[(&'a str, Value)]) -> Vec<(&'a str, Value)> {
    let mut all: Vec<(&str, Value)> = vec![
        ("server.bind", format!("127.0.0.1:{port}").into()),
        ("server.base_url", format!("http://127.0.0.1:{port}").into()),
    ];
    all.extend(overrides.iter().cloned());
    all
}

/// Adds a staff account with [`PASSWORD`], as `newsletter staff add` does.
pub async fn add_staff(app: &TestApp, email: &str, role: StaffRole) {
    newsletter::ops::staff::add(
        &app.pool,
        &newsletter::ops::Actor::CommandLine,
        email,
        role.as_str(),
        NewPassword::parse(PASSWORD).unwrap(),
    )
    .await
    .unwrap();
}

/// The `name=value` of a Set-Cookie header for cookie `name`.
pub fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// The value of the first hidden `csrf_token` field in a page.
pub fn csrf_in(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).expect("the page has a csrf_token field") + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

/// A browser-like visitor of the staff area: cookies kept by hand, `Origin` sent on POSTs.
pub struct Browser<'a> {
    pub app: &'a TestApp,
    pub cookies: Vec<String>,
    /// The `User-Agent` sent, if any.
    pub user_agent: Option<&'static str>,
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            cookies: Vec::new(),
            user_agent: None,
        }
    }

    fn keep_cookies(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all(SET_COOKIE) {
            let pair = value
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_owned();
            let name = pair.split('=').next().unwrap().to_owned();
            self.cookies.retain(|c| !c.starts_with(&format!("{name}=")));
            if !pair.ends_with('=') {
                self.cookies.push(pair);
            }
        }
    }

    pub async fn get(&mut self, path: &str) -> reqwest::Response {
        let response = self
            .app
            .http
            .get(self.app.url(path))
            .header(COOKIE, self.cookies.join("; "))
            .header(USER_AGENT, self.user_agent.unwrap_or(""))
            .send()
            .await
            .unwrap();
        self.keep_cookies(&response);
        response
    }

    /// POSTs `fields` as a form, with `Origin` set to `origin` when given.
    pub async fn post_with(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        origin: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .app
            .http
            .post(self.app.url(path))
            .header(COOKIE, self.cookies.join("; "))
            .header(USER_AGENT, self.user_agent.unwrap_or(""))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(fields).unwrap());
        if let Some(origin) = origin {
            request = request.header(ORIGIN, origin);
        }
        let response = request.send().await.unwrap();
        self.keep_cookies(&response);
        response
    }

    /// POSTs `fields` as the service's own page would: its Origin and the page's CSRF token.
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let csrf = self.csrf().await;
        let mut all = vec![("csrf_token", csrf.as_str())];
        all.extend_from_slice(fields);
        let origin = self.app.settings.server.base_url.as_str().to_owned();
        self.post_with(path, &all, Some(&origin)).await
    }

    /// Approves update `id` at `version` from its page, as the button does: the form carries
    /// the request for approval the page showed (`requested_at`, empty when there is none).
    pub async fn approve(&mut self, id: &str, version: &str) -> reqwest::Response {
        let page = self.get(&format!("/admin/updates/{id}")).await;
        let page = page.text().await.unwrap();
        let marker = "name=\"requested_at\" value=\"";
        let requested = page
            .find(marker)
            .map(|at| &page[at + marker.len()..])
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("")
            .to_owned();
        let fields = [("version", version), ("requested_at", requested.as_str())];
        self.post(&format!("/admin/updates/{id}/approve"), &fields)
            .await
    }

    /// The CSRF token of the current session (from the dashboard's logout form).
    pub async fn csrf(&mut self) -> String {
        let page = self.get("/admin").await.text().await.unwrap();
        csrf_in(&page)
    }

    /// Fills and sends the login form; returns the answer.
    pub async fn try_log_in(&mut self, email: &str, password: &str) -> reqwest::Response {
        let page = self.get("/admin/login").await.text().await.unwrap();
        let csrf = csrf_in(&page);
        let origin = self.app.settings.server.base_url.as_str().to_owned();
        self.post_with(
            "/admin/login",
            &[
                ("csrf_token", &csrf),
                ("email", email),
                ("password", password),
            ],
            Some(&origin),
        )
        .await
    }
}

/// A browser signed in as a new account of `role`.
pub async fn signed_in<'a>(app: &'a TestApp, email: &str, role: StaffRole) -> Browser<'a> {
    add_staff(app, email, role).await;
    let mut browser = Browser::new(app);
    let response = browser.try_log_in(email, PASSWORD).await;
    assert_eq!(response.status(), 303, "logging in as {email}");
    browser
}
