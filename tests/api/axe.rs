//! axe-core (from the npm registry; `scripts/test` unpacks it into `target/axe`), injected
//! through WebDriver into every public page state, finds no WCAG 2.1 A or AA violation.

use std::path::PathBuf;

use fantoccini::{Client, Locator};

use crate::browser::Driver;
use crate::helpers::{confirmation_link, spawn_app};
use crate::self_service::link_path;

pub fn axe_source() -> String {
    let path = std::env::var_os("NEWSLETTER_TEST_AXE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/axe/package/axe.min.js")
        });
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "axe-core at {} ({e}): scripts/test installs it (npm pack axe-core@4)",
            path.display()
        )
    })
}

/// The violations axe finds on the page shown, as `rule: selectors`.
pub async fn violations(browser: &Client, axe: &str) -> Vec<String> {
    browser.execute(axe, vec![]).await.unwrap();
    let found = browser
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, {runOnly: {type: 'tag',
                                          values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})
                .then(r => done(r.violations.map(v =>
                    v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '))))
                .catch(e => done(['axe failed: ' + e]));",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(found).unwrap()
}

async fn click(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[tokio::test]
async fn axe_finds_no_wcag_21_aa_violation_on_any_public_page_state() {
    let axe = axe_source();
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.seed_confirmed(1, "example.org").await;
    let id = app.create_update(&token, "Archived").await;
    app.send_now(&token, &id).await;
    let mails = app
        .smtp
        .wait_for(1, std::time::Duration::from_secs(10))
        .await;
    let manage = link_path(&app, &mails[0].data, "/manage/");
    let unsubscribe = link_path(&app, &mails[0].data, "/unsubscribe/");
    app.wait_for_update_status(&id, "sent").await;

    let driver = Driver::start();
    let browser = driver.connect().await;
    let mut found = Vec::new();
    let mut check = |state: &'static str, v: Vec<String>| {
        if !v.is_empty() {
            found.push(format!("{state}: {v:?}"));
        }
    };

    browser.goto(&app.url("/")).await.unwrap();
    check("sign-up form", violations(&browser, &axe).await);
    browser
        .find(Locator::Css("#email"))
        .await
        .unwrap()
        .send_keys("not-an-address")
        .await
        .unwrap();
    click(&browser, r#"button[type="submit"]"#).await;
    browser
        .wait()
        .for_element(Locator::Css("#form-errors"))
        .await
        .unwrap();
    check("sign-up form with errors", violations(&browser, &axe).await);
    let email = browser.find(Locator::Css("#email")).await.unwrap();
    email.clear().await.unwrap();
    email.send_keys("axe.reader@example.org").await.unwrap();
    click(&browser, r#"button[type="submit"]"#).await;
    browser
        .wait()
        .for_element(Locator::Css("h1"))
        .await
        .unwrap();
    check("pending", violations(&browser, &axe).await);

    let mails = app
        .smtp
        .wait_for(2, std::time::Duration::from_secs(10))
        .await;
    let link = confirmation_link(&mails[1].data);
    let path = link
        .strip_prefix(app.settings.server.base_url.as_str())
        .unwrap();
    browser.goto(&app.url(path)).await.unwrap();
    check("confirm", violations(&browser, &axe).await);
    click(&browser, r#"button[type="submit"]"#).await;
    browser
        .wait()
        .for_element(Locator::Css("h1"))
        .await
        .unwrap();
    check("confirmed", violations(&browser, &axe).await);

    browser.goto(&app.url(&manage)).await.unwrap();
    check("preferences", violations(&browser, &axe).await);
    click(&browser, "#save").await;
    browser
        .wait()
        .for_element(Locator::Css("#saved"))
        .await
        .unwrap();
    check("preferences saved", violations(&browser, &axe).await);
    // List hygiene's question page, for the same reader (link version 1).
    let manage_token =
        newsletter::domain::Token::parse(manage.rsplit('/').next().unwrap()).unwrap();
    let reader = newsletter::domain::subscriber_link::subscriber_of(&manage_token);
    let activity = newsletter::domain::subscriber_link::sign(
        crate::helpers::SECRET_KEY.as_bytes(),
        newsletter::domain::subscriber_link::LinkPurpose::Activity,
        reader,
        1,
    );
    browser
        .goto(&app.url(&format!("/still-reading/{}", activity.as_str())))
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css("#still-reading"))
        .await
        .unwrap();
    check("still reading?", violations(&browser, &axe).await);
    browser.goto(&app.url(&manage)).await.unwrap();
    click(&browser, "#erase").await;
    browser
        .wait()
        .for_element(Locator::Css("#erase-confirmed"))
        .await
        .unwrap();
    check("delete your data?", violations(&browser, &axe).await);

    browser.goto(&app.url(&unsubscribe)).await.unwrap();
    check("unsubscribe", violations(&browser, &axe).await);
    click(&browser, r#"button[type="submit"]"#).await;
    browser
        .wait()
        .for_element(Locator::Css("h1"))
        .await
        .unwrap();
    check("unsubscribed", violations(&browser, &axe).await);

    browser.goto(&app.url("/archive")).await.unwrap();
    check("archive", violations(&browser, &axe).await);
    click(&browser, "main a[href^='/archive/']").await;
    browser
        .wait()
        .for_element(Locator::Css("h1"))
        .await
        .unwrap();
    check("archived update", violations(&browser, &axe).await);
    browser.goto(&app.url("/no-such-page")).await.unwrap();
    check("not found", violations(&browser, &axe).await);
    browser.goto(&app.url("/manage/not-a-token")).await.unwrap();
    check("invalid link", violations(&browser, &axe).await);

    browser.close().await.unwrap();
    assert!(
        found.is_empty(),
        "WCAG 2.1 AA violations:\n{}",
        found.join("\n")
    );
}
