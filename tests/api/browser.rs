//! A real headless browser (Debian's chromium through chromedriver) walks the sign-up form.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use crate::helpers::spawn_app;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// chromedriver on a free local port, in a process group of its own. On drop the whole group
/// is killed (chromedriver and every chromium it started, even for a session a failing test
/// never closed) and the sessions' profile directories are removed.
pub struct Driver {
    child: Child,
    port: u16,
    profiles: std::sync::Mutex<Vec<std::path::PathBuf>>,
}

impl Driver {
    pub fn start() -> Self {
        assert!(
            std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists(),
            "chromium and chromium-driver are needed: scripts/test installs them (apt-get install chromium chromium-driver)"
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        Self {
            child,
            port,
            profiles: std::sync::Mutex::default(),
        }
    }

    pub async fn connect(&self) -> Client {
        self.connect_with(None).await
    }

    /// A session emulating a phone 375 CSS pixels wide (Chrome's `mobileEmulation`).
    pub async fn connect_phone(&self) -> Client {
        self.connect_with(Some(json!({
            "deviceMetrics": {"width": 375, "height": 812, "pixelRatio": 2.0, "touch": true, "mobile": true}
        })))
        .await
    }

    async fn connect_with(&self, mobile: Option<serde_json::Value>) -> Client {
        let profile =
            std::env::temp_dir().join(format!("newsletter-chromium-{}", uuid::Uuid::new_v4()));
        self.profiles
            .lock()
            .expect("profiles lock")
            .push(profile.clone());
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-quic", "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync",
                         format!("--user-data-dir={}", profile.display())]
            }),
        );
        // A busy machine (CI runs the suite beside other work) may take seconds to draw a page:
        // every lookup waits up to 30 s for its element to appear, a script (axe) may run 2
        // minutes and a page may load as long. These are limits, never sleeps.
        caps.insert(
            "timeouts".into(),
            json!({"implicit": 30_000, "script": 120_000, "pageLoad": 120_000}),
        );
        if let Some(mobile) = mobile {
            caps["goog:chromeOptions"]["mobileEmulation"] = mobile;
        }
        let url = format!("http://127.0.0.1:{}", self.port);
        // chromedriver may take a while to listen, and chromium to start, on a busy machine.
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        while std::time::Instant::now() < deadline {
            let builder = ClientBuilder::new(HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await;
            if let Ok(client) = builder {
                return client;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("could not start a chromium session through chromedriver");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // the group's id is chromedriver's pid (`process_group(0)`)
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        for profile in self.profiles.lock().expect("profiles lock").drain(..) {
            let _ = std::fs::remove_dir_all(profile);
        }
    }
}

#[tokio::test]
async fn a_visitor_fills_the_form_in_a_real_browser_and_lands_on_the_pending_page() {
    let app = spawn_app().await;
    let driver = Driver::start();
    let browser = driver.connect().await;

    browser.goto(&app.url("/")).await.unwrap();
    let email = browser.find(Locator::Css("#email")).await.unwrap();
    email.send_keys("browser.user@example.org").await.unwrap();
    browser
        .find(Locator::Css("#name"))
        .await
        .unwrap()
        .send_keys("Dana Browser")
        .await
        .unwrap();
    let checkbox = browser
        .find(Locator::Css(
            r#"input[name="lists"][value="us-icc-updates"]"#,
        ))
        .await
        .unwrap();
    assert_eq!(
        checkbox.prop("checked").await.unwrap().as_deref(),
        Some("true"),
        "the default list is pre-selected"
    );
    browser
        .find(Locator::Css(r#"button[type="submit"]"#))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    browser
        .wait()
        .for_url(&url_of(&app.url("/subscriptions/pending")))
        .await
        .unwrap();
    let heading = browser
        .find(Locator::Css("h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(heading, "Check your inbox");
    browser.close().await.unwrap();
    assert_eq!(
        app.subscriber_status("browser.user@example.org")
            .await
            .as_deref(),
        Some("pending")
    );
    let mail = app.smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mail[0].rcpt_to, ["browser.user@example.org"]);
}

fn url_of(s: &str) -> url::Url {
    url::Url::parse(s).unwrap()
}

#[tokio::test]
async fn a_subscriber_changes_lists_unsubscribes_and_resubscribes_in_a_real_browser() {
    use newsletter::domain::subscriber_link::{sign, LinkPurpose};

    let app = spawn_app().await;
    let people = app.seed_confirmed(1, "example.org").await;
    let token = sign(
        crate::helpers::SECRET_KEY.as_bytes(),
        LinkPurpose::Manage,
        people[0].0,
        1,
    );
    let driver = Driver::start();
    let browser = driver.connect().await;

    browser
        .goto(&app.url(&format!("/manage/{}", token.as_str())))
        .await
        .unwrap();
    assert_eq!(
        browser
            .find(Locator::Css("h1"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "Your preferences"
    );
    browser
        .find(Locator::Css(
            r#"input[name="lists"][value="new-york-alliance"]"#,
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .find(Locator::Css("#save"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let saved = browser
        .wait()
        .for_element(Locator::Css("#saved"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(saved, "Your preferences are saved.");
    let lists: Vec<String> = sqlx::query_scalar(
        "SELECT l.slug FROM subscriptions s JOIN lists l ON l.id = s.list_id WHERE s.status = 'confirmed' ORDER BY l.slug",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(lists, ["new-york-alliance", "us-icc-updates"]);

    browser
        .find(Locator::Css("#unsubscribe-all"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css("#resubscribe"))
        .await
        .unwrap();
    assert_eq!(
        app.subscriber_status("reader0@example.org")
            .await
            .as_deref(),
        Some("unsubscribed")
    );

    browser
        .find(Locator::Css("#resubscribe"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let heading = browser
        .wait()
        .for_element(Locator::XPath("//h1[text()='Check your inbox']"))
        .await;
    assert!(heading.is_ok(), "the pending page is shown");
    browser.close().await.unwrap();
    let mail = app.smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mail[0].rcpt_to, ["reader0@example.org"]);
    let link = crate::helpers::confirmation_link(&mail[0].data);
    let confirm = app
        .post_form(
            "/subscriptions/confirm",
            &format!("token={}", link.split("token=").nth(1).unwrap()),
        )
        .await;
    assert_eq!(confirm.status(), 200);
    assert_eq!(
        app.subscriber_status("reader0@example.org")
            .await
            .as_deref(),
        Some("confirmed")
    );
}

/// WCAG relative luminance contrast of two `rgb(r, g, b)` colours.
pub fn contrast(a: &str, b: &str) -> f64 {
    let lum = |c: &str| {
        let v: Vec<f64> = c
            .trim_start_matches("rgba(")
            .trim_start_matches("rgb(")
            .trim_end_matches(')')
            .split(',')
            .take(3)
            .map(|x| x.trim().parse::<f64>().unwrap() / 255.0)
            .map(|x| {
                if x <= 0.03928 {
                    x / 12.92
                } else {
                    ((x + 0.055) / 1.055).powf(2.4)
                }
            })
            .collect();
        0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]
    };
    let (x, y) = (lum(a), lum(b));
    (x.max(y) + 0.05) / (x.min(y) + 0.05)
}

#[tokio::test]
async fn a_failed_sign_up_says_error_in_the_title_focuses_the_field_and_links_it() {
    let app = spawn_app().await;
    let driver = Driver::start();
    let browser = driver.connect().await;
    browser.goto(&app.url("/")).await.unwrap();
    browser
        .find(Locator::Css("#email"))
        .await
        .unwrap()
        .send_keys("not-an-address")
        .await
        .unwrap();
    browser
        .find(Locator::Css(r#"button[type="submit"]"#))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css("#form-errors"))
        .await
        .unwrap();

    let title = browser.title().await.unwrap();
    assert!(title.starts_with("Error: "), "{title}");
    let seen = browser
        .execute(
            "const f = document.activeElement; const s = getComputedStyle(f);
             return {id: f.id, outline: s.outlineColor, width: parseFloat(s.outlineWidth),
                     style: s.outlineStyle, border: s.borderTopColor,
                     valid_border: getComputedStyle(document.getElementById('name')).borderTopColor,
                     links: [...document.querySelectorAll('#form-errors a')].map(a => a.getAttribute('href'))};",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        seen["id"], "email",
        "the invalid field has the focus: {seen}"
    );
    assert_eq!(seen["links"], json!(["#email"]), "{seen}");
    assert!(
        seen["width"].as_f64().unwrap() >= 2.0 && seen["style"] != "none",
        "{seen}"
    );
    let ring = contrast(seen["outline"].as_str().unwrap(), "rgb(255, 255, 255)");
    assert!(
        ring >= 3.0,
        "focus ring contrast {ring:.2}:1 against white: {seen}"
    );
    assert_ne!(
        seen["border"], seen["valid_border"],
        "the field in error has a border of its own: {seen}"
    );
    let border = contrast(seen["border"].as_str().unwrap(), "rgb(255, 255, 255)");
    assert!(
        border >= 3.0,
        "the field in error's border {border:.2}:1: {seen}"
    );
    browser.close().await.unwrap();
}
