//! The whole path in a real headless Chromium: log in, add two news items, compose, preview as
//! a subscriber, send a test, send to a list, watch the progress page reach "sent".

use std::collections::HashMap;
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use newsletter::domain::StaffRole;

use super::{add_staff, spawn_staff_app, PASSWORD};
use crate::browser::Driver;

pub(super) async fn fill(browser: &Client, css: &str, text: &str) {
    let field = browser.find(Locator::Css(css)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

pub(super) async fn click(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Signs `email` (an account with [`PASSWORD`]) in through the login page, and waits for the
/// dashboard.
pub(super) async fn sign_in(browser: &Client, app: &crate::helpers::TestApp, email: &str) {
    browser.goto(&app.url("/admin/login")).await.unwrap();
    fill(browser, "#email", email).await;
    fill(browser, "#password", PASSWORD).await;
    click(browser, "#log-in").await;
    wait_for_text(browser, "h1", "Dashboard").await;
}

/// The text of the first element matching `css`, once the page shows one (a page that is being
/// replaced is read again).
async fn text_of(browser: &Client, css: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(el) = browser.find(Locator::Css(css)).await {
            if let Ok(text) = el.text().await {
                return text;
            }
        }
        assert!(Instant::now() < deadline, "no {css} on the page");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the element matching `css` reads `expected` (the page may reload meanwhile).
pub(super) async fn wait_for_text(browser: &Client, css: &str, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = text_of(browser, css).await;
        if now == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{css} stayed {now:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_admin_composes_tests_edits_confirms_and_sends_the_edited_version_in_a_real_browser() {
    let app = spawn_staff_app(&[]).await;
    let readers = app.seed_confirmed(3, "example.org").await;
    app.seed_confirmed_from(10, 1, "example.org").await;
    sqlx::query(
        "UPDATE subscribers SET status = 'unsubscribed' WHERE email = 'reader10@example.org'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    add_staff(&app, "ana@example.org", StaffRole::Admin).await;
    let driver = Driver::start();
    let browser = driver.connect().await;

    sign_in(&browser, &app, "ana@example.org").await;

    for (title, topic) in [
        ("Senate hearing on the ICC", "congress"),
        ("Assembly of States Parties opens", "asp"),
    ] {
        browser.goto(&app.url("/admin/news")).await.unwrap();
        fill(&browser, "#title", title).await;
        fill(&browser, "#url", "https://example.org/news").await;
        fill(&browser, "#source", "Reuters").await;
        browser
            .find(Locator::Css("#topic"))
            .await
            .unwrap()
            .select_by_value(topic)
            .await
            .unwrap();
        fill(&browser, "#summary", "What happened.").await;
        click(&browser, "#add-news").await;
        browser
            .wait()
            .for_element(Locator::XPath(&format!("//td/a[text()='{title}']")))
            .await
            .unwrap();
    }
    let ids: Vec<String> = sqlx::query_scalar("SELECT id::text FROM news ORDER BY title DESC")
        .fetch_all(&app.pool)
        .await
        .unwrap();

    browser.goto(&app.url("/admin/updates/new")).await.unwrap();
    fill(
        &browser,
        "#subject",
        "This week: the Senate and the Assembly",
    )
    .await;
    fill(&browser, "#intro", "Dear reader, *two* things happened.").await;
    for (slot, id) in ids.iter().enumerate() {
        browser
            .find(Locator::Css(&format!("#item-{}", slot + 1)))
            .await
            .unwrap()
            .select_by_value(id)
            .await
            .unwrap();
    }
    click(&browser, "#save-draft").await;
    wait_for_text(&browser, "h1", "This week: the Senate and the Assembly").await;
    assert_eq!(text_of(&browser, "#status").await, "draft");

    let mut previewed = browser.current_url().await.unwrap();
    previewed.set_query(Some("email=reader0%40example.org&width=desktop"));
    fill(&browser, "#preview-email", "reader0@example.org").await;
    click(&browser, "#show-preview").await;
    browser.wait().for_url(&previewed).await.unwrap();
    let frame = browser
        .wait()
        .for_element(Locator::Css("#preview-html"))
        .await
        .unwrap();
    frame.enter_frame().await.unwrap();
    let mail = text_of(&browser, "body").await;
    browser.enter_parent_frame().await.unwrap();
    assert!(
        mail.contains("Senate hearing on the ICC")
            && mail.contains("Assembly of States Parties opens"),
        "the preview shows both items: {mail}"
    );
    assert!(mail.contains("Reader 0"), "as reader0 gets it: {mail}");

    click(&browser, "#send-test").await;
    wait_for_text(
        &browser,
        "p.notice",
        "The test mail is queued; it arrives in a moment, its subject marked [Test].",
    )
    .await;
    let test = app.smtp.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(test[0].rcpt_to, ["ana@example.org"]);
    let update_page = browser.current_url().await.unwrap();

    // After the test, the campaigner edits the draft: the send must carry the edit.
    let edit = format!("{}/edit", update_page.path());
    browser.goto(&app.url(&edit)).await.unwrap();
    wait_for_text(&browser, "h1", "Edit the draft").await;
    browser
        .find(Locator::Css("#subject"))
        .await
        .unwrap()
        .clear()
        .await
        .unwrap();
    fill(&browser, "#subject", "Edited: the Senate and the Assembly").await;
    browser
        .find(Locator::Css("#intro"))
        .await
        .unwrap()
        .clear()
        .await
        .unwrap();
    fill(&browser, "#intro", "Dear reader, the edited intro.").await;
    click(&browser, "#save-draft").await;
    wait_for_text(&browser, "h1", "Edited: the Senate and the Assembly").await;

    let send = text_of(&browser, "#send-now").await;
    assert_eq!(send, "Send now to 3 recipients…");
    click(&browser, "#send-now").await;
    // The confirmation page: what goes out, to how many, and which version.
    wait_for_text(&browser, "h1", "Send this update now?").await;
    assert_eq!(
        text_of(&browser, "#confirm-subject").await,
        "Edited: the Senate and the Assembly"
    );
    assert_eq!(text_of(&browser, "#confirm-recipients").await, "3");
    assert_eq!(text_of(&browser, "#confirm-version").await, "2");
    click(&browser, "#confirm-send").await;
    // The page reloads itself while the update goes out.
    wait_for_text(&browser, "#status", "sent").await;
    assert_eq!(text_of(&browser, "#count-sent").await, "3");
    assert_eq!(text_of(&browser, "#sent-version").await, "2");
    browser.close().await.unwrap();

    app.smtp.wait_for(4, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mails = app.smtp.messages();
    assert_eq!(mails.len(), 4, "the test mail and one per recipient");
    let mut per_reader: HashMap<String, usize> = HashMap::new();
    let parser = mail_parser::MessageParser::default();
    let slug: String = sqlx::query_scalar("SELECT slug FROM updates")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    for mail in &mails {
        let parsed = parser.parse(&mail.data).unwrap();
        let subject = parsed.subject().unwrap().to_owned();
        let text = parsed.body_text(0).unwrap().into_owned();
        assert!(
            text.contains("Senate hearing on the ICC")
                && text.contains("Assembly of States Parties opens"),
            "{text}"
        );
        if mail.rcpt_to[0] == "ana@example.org" {
            assert_eq!(subject, "[Test] This week: the Senate and the Assembly");
            continue;
        }
        *per_reader.entry(mail.rcpt_to[0].clone()).or_default() += 1;
        assert_eq!(
            subject, "Edited: the Senate and the Assembly",
            "the edited version"
        );
        assert!(text.contains("the edited intro"), "{text}");
        assert!(
            text.contains(&format!("/archive/{slug}")),
            "the web link is the update's own page: {text}"
        );
    }
    let expected: HashMap<String, usize> = readers
        .iter()
        .map(|(_, email)| (email.clone(), 1))
        .collect();
    assert_eq!(per_reader, expected, "one mail per confirmed subscriber");
}

#[tokio::test]
async fn an_admin_finds_and_unsubscribes_someone_and_imports_a_file_in_a_real_browser() {
    let app = spawn_staff_app(&[]).await;
    app.seed_confirmed(20, "example.org").await;
    assert_eq!(app.signup("wrote.in@example.org").await.status(), 303);
    add_staff(&app, "ana@example.org", StaffRole::Admin).await;
    let file = std::env::temp_dir().join(format!("event-{}.csv", uuid::Uuid::new_v4()));
    std::fs::write(
        &file,
        "email,name\nnew@example.org,New\nnot-an-address,Bad\n",
    )
    .unwrap();
    let driver = Driver::start();
    let browser = driver.connect().await;

    sign_in(&browser, &app, "ana@example.org").await;

    browser.goto(&app.url("/admin/subscribers")).await.unwrap();
    fill(&browser, "#query", "OTE.IN").await;
    click(&browser, "#find").await;
    wait_for_text(&browser, "tbody a", "wrote.in@example.org").await;
    click(&browser, "tbody a").await;
    wait_for_text(&browser, "h1", "wrote.in@example.org").await;
    let log = text_of(&browser, "#consent-log tbody").await;
    assert!(log.contains("signup") && log.contains("form"), "{log}");
    assert_eq!(text_of(&browser, "#status").await, "pending");
    click(&browser, "#unsubscribe").await;
    wait_for_text(&browser, "#status", "unsubscribed").await;

    browser.goto(&app.url("/admin/imports")).await.unwrap();
    browser
        .find(Locator::Css("#file"))
        .await
        .unwrap()
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
    fill(&browser, "#source", "Conference sign-up sheet").await;
    click(&browser, "#start-import").await;
    wait_for_text(&browser, "h1", "Import (done)").await;
    assert_eq!(text_of(&browser, "#imported").await, "1");
    let errors = text_of(&browser, "#errors tbody").await;
    assert!(
        errors.starts_with("3 email"),
        "line 3 of the file: {errors}"
    );
    browser.close().await.unwrap();
    let _ = std::fs::remove_file(&file);
    assert_eq!(
        app.subscriber_status("new@example.org").await.as_deref(),
        Some("confirmed")
    );
}

/// Waits until the element matching `css` holds `needle` (the page may still be the old one).
pub(super) async fn wait_for_contains(browser: &Client, css: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = text_of(browser, css).await;
        if now.contains(needle) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "{css} stayed {now:?}, expected {needle:?} in it"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The subject of the `n`th mail the relay received.
fn subject_of(app: &crate::helpers::TestApp, n: usize) -> String {
    let mails = app.smtp.messages();
    mail_parser::MessageParser::default()
        .parse(&mails[n - 1].data)
        .unwrap()
        .subject()
        .unwrap_or_default()
        .to_owned()
}

/// Sends a test mail of update `id` from its page and waits for it (the `n`th mail).
async fn send_test_from_page(browser: &Client, app: &crate::helpers::TestApp, id: &str, n: usize) {
    browser
        .goto(&app.url(&format!("/admin/updates/{id}")))
        .await
        .unwrap();
    click(browser, "#send-test").await;
    wait_for_text(
        browser,
        "p.notice",
        "The test mail is queued; it arrives in a moment, its subject marked [Test].",
    )
    .await;
    app.smtp.wait_for(n, Duration::from_secs(30)).await;
}

#[tokio::test]
async fn an_admin_edits_the_update_template_in_a_real_browser_and_the_next_test_send_uses_it() {
    let app = spawn_staff_app(&[]).await;
    let token = app.api_token().await;
    let id = app.create_update(&token, "Browser week").await;
    add_staff(&app, "ana@example.org", StaffRole::Admin).await;
    let driver = Driver::start();
    let browser = driver.connect().await;
    sign_in(&browser, &app, "ana@example.org").await;

    browser
        .find(Locator::LinkText("Mail templates"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&browser, "h1", "Mail templates").await;
    browser
        .find(Locator::LinkText("update"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&browser, "h1", "Mail template update").await;

    // A version that does not compile is refused, naming the part and the line.
    fill(&browser, "#subject", "{{#if subject}}[browser] {{subject}}").await;
    click(&browser, "#save-template").await;
    let error = wait_for_contains(&browser, "#template-error", "subject").await;
    assert!(error.contains("line"), "{error}");
    let saved: i64 = sqlx::query_scalar("SELECT count(*) FROM mail_template_versions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(saved, 0, "nothing was saved");
    send_test_from_page(&browser, &app, &id, 1).await;
    assert_eq!(
        subject_of(&app, 1),
        "[Test] Browser week",
        "the old one is in use"
    );

    // A good one: previewed, saved, used by the next test send.
    browser
        .goto(&app.url("/admin/templates/update"))
        .await
        .unwrap();
    fill(&browser, "#subject", "[browser] {{subject}}").await;
    click(&browser, "#preview-template").await;
    wait_for_text(&browser, "#preview-subject", "[browser] Sample update").await;
    click(&browser, "#save-template").await;
    let current = wait_for_contains(&browser, "#current", "version 1").await;
    assert!(current.contains("ana@example.org"), "{current}");
    send_test_from_page(&browser, &app, &id, 2).await;
    assert_eq!(subject_of(&app, 2), "[Test] [browser] Browser week");

    // Reverts: to the shipped default, then back to version 1.
    browser
        .goto(&app.url("/admin/templates/update"))
        .await
        .unwrap();
    click(&browser, "#revert-default").await;
    let current = wait_for_contains(&browser, "#current", "version 2").await;
    assert!(current.contains("shipped default"), "{current}");
    send_test_from_page(&browser, &app, &id, 3).await;
    assert_eq!(subject_of(&app, 3), "[Test] Browser week");
    browser
        .goto(&app.url("/admin/templates/update"))
        .await
        .unwrap();
    click(&browser, "#revert-1").await;
    wait_for_contains(&browser, "#current", "version 3").await;
    send_test_from_page(&browser, &app, &id, 4).await;
    assert_eq!(subject_of(&app, 4), "[Test] [browser] Browser week");
    browser.close().await.unwrap();
}

#[tokio::test]
async fn the_template_editor_shows_the_html_mail_with_its_own_styles_and_saves_nothing() {
    let app = spawn_staff_app(&[]).await;
    add_staff(&app, "ana@example.org", StaffRole::Admin).await;
    let driver = Driver::start();
    let browser = driver.connect().await;
    sign_in(&browser, &app, "ana@example.org").await;
    browser
        .goto(&app.url("/admin/templates/update"))
        .await
        .unwrap();
    wait_for_text(&browser, "h1", "Mail template update").await;

    // An unsaved change with an inline style, shown in the frame by "Preview the HTML mail".
    let marker = r#"<p id="marker" style="color: rgb(1, 2, 3)">Marked {{subject}}</p></body>"#;
    browser
        .execute(
            "const html = document.querySelector('#html');
             html.value = html.value.replace('</body>', arguments[0]);",
            vec![serde_json::json!(marker)],
        )
        .await
        .unwrap();
    click(&browser, "#preview-html").await;
    let frame = browser
        .find(Locator::Css("iframe[name=template-frame]"))
        .await
        .unwrap();
    frame.enter_frame().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let marked = loop {
        if let Ok(found) = browser.find(Locator::Css("#marker")).await {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "the frame never showed the change"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(marked.text().await.unwrap(), "Marked Sample update");
    // The mail's own inline style applies: the frame has the mail's policy, not the staff
    // page's (a frame that inherits the staff page's policy drops inline styles).
    assert_eq!(marked.css_value("color").await.unwrap(), "rgba(1, 2, 3, 1)");
    browser.enter_parent_frame().await.unwrap();

    let saved: i64 = sqlx::query_scalar("SELECT count(*) FROM mail_template_versions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(saved, 0, "a preview saves nothing");
}

/// The preview shows the HTML mail at a phone's width (375 px) or a desktop's (600 px), with
/// the plain-text mail beside it.
#[tokio::test]
async fn the_preview_switches_between_desktop_and_phone_width_with_the_text_beside_it() {
    let app = spawn_staff_app(&[]).await;
    let token = app.api_token().await;
    let id = app.create_update(&token, "Seen on a phone").await;
    add_staff(&app, "ana@example.org", StaffRole::Admin).await;
    let driver = Driver::start();
    let browser = driver.connect().await;
    sign_in(&browser, &app, "ana@example.org").await;

    let width = |css: &'static str| {
        let browser = browser.clone();
        async move {
            browser
                .execute(
                    &format!("return document.querySelector('{css}').clientWidth;"),
                    vec![],
                )
                .await
                .unwrap()
                .as_u64()
                .unwrap()
        }
    };
    browser
        .goto(&app.url(&format!("/admin/updates/{id}")))
        .await
        .unwrap();
    wait_for_text(&browser, "h1", "Seen on a phone").await;
    assert_eq!(width("#preview-html").await, 600, "desktop by default");
    browser
        .find(fantoccini::Locator::Css("#preview-width"))
        .await
        .unwrap()
        .select_by_value("phone")
        .await
        .unwrap();
    click(&browser, "#show-preview").await;
    wait_for_contains(&browser, "#preview-html", "").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while width("#preview-html").await != 375 {
        assert!(std::time::Instant::now() < deadline, "the phone width");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(width("#preview-text").await > 0, "the text beside it");
    browser.close().await.unwrap();
}

/// The composer's news items move up and down, go, and come, on the page (a small script);
/// the saved draft has them in the order shown.
#[tokio::test]
async fn news_items_are_reordered_removed_and_added_on_the_composer_page() {
    let app = spawn_staff_app(&[]).await;
    let token = app.api_token().await;
    let mut ids = Vec::new();
    for title in ["First story", "Second story", "Third story"] {
        let r = app
            .api(
                reqwest::Method::POST,
                "/api/v1/news",
                &token,
                Some(serde_json::json!({ "title": title })),
            )
            .await;
        ids.push(
            r.json::<serde_json::Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    add_staff(&app, "ana@example.org", StaffRole::Admin).await;
    let driver = Driver::start();
    let browser = driver.connect().await;
    sign_in(&browser, &app, "ana@example.org").await;

    browser.goto(&app.url("/admin/updates/new")).await.unwrap();
    wait_for_text(&browser, "h1", "New update").await;
    fill(&browser, "#subject", "Reordered").await;
    for (n, id) in ids.iter().enumerate() {
        browser
            .find(fantoccini::Locator::Css(&format!("#item-{}", n + 1)))
            .await
            .unwrap()
            .select_by_value(id)
            .await
            .unwrap();
    }
    // Third up (before the second), then the first removed: Third, Second.
    click(&browser, "button[aria-label='Move up item 3']").await;
    click(&browser, "button[aria-label='Remove item 1']").await;
    wait_for_contains(&browser, "#items-status", "removed").await;
    let slots_before = browser
        .find_all(fantoccini::Locator::Css(".item-slot"))
        .await
        .unwrap()
        .len();
    click(&browser, "#add-item").await;
    let slots_after = browser
        .find_all(fantoccini::Locator::Css(".item-slot"))
        .await
        .unwrap()
        .len();
    assert_eq!(slots_after, slots_before + 1, "another slot");
    browser
        .find(fantoccini::Locator::Css(&format!("#item-{slots_after}")))
        .await
        .unwrap()
        .select_by_value(&ids[0])
        .await
        .unwrap();
    browser
        .execute(
            "document.querySelector(\"input[name=lists][value='us-icc-updates']\").checked = true;",
            vec![],
        )
        .await
        .unwrap();
    click(&browser, "#save-draft").await;
    wait_for_contains(&browser, "#notice", "draft is saved").await;
    browser.close().await.unwrap();

    let titles: Vec<String> = sqlx::query_scalar(
        "SELECT i.title FROM news_items i JOIN updates u ON u.id = i.update_id
         WHERE u.subject = 'Reordered' ORDER BY i.position",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(titles, ["Third story", "Second story", "First story"]);
}
