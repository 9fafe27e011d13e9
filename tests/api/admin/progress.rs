//! The progress page (counts, failed recipients with the relay's replies, retry failed) and the
//! dashboard.

use std::time::Duration;

use newsletter::domain::StaffRole;

use super::updates::{compose, desk_item, send_key};
use super::{signed_in, spawn_staff_app};
use crate::smtp_server::Faults;

#[tokio::test]
async fn the_progress_page_shows_failed_recipients_with_the_relays_reply_and_retries_them() {
    let app = spawn_staff_app(&[]).await;
    app.seed_confirmed(3, "example.org").await;
    app.smtp.set_faults(Faults {
        rcpt: vec![(
            "reader1@example.org".into(),
            552,
            "5.2.2 Mailbox full, try another day".into(),
        )],
        ..Faults::default()
    });
    let mut admin = signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    let item = desk_item(&mut admin, "Senate hearing", "congress").await;
    let id = compose(&mut admin, "Weekly", &[&item]).await;
    let form = send_key(&mut admin, &id).await;
    admin
        .post(&format!("/admin/updates/{id}/send"), &form.fields())
        .await;
    app.wait_for_update_status(&id, "sent").await;

    let page = admin
        .get(&format!("/admin/updates/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<strong id=\"count-sent\">2</strong>"),
        "{page}"
    );
    assert!(page.contains("reader1@example.org"));
    assert!(
        page.contains("Mailbox full, try another day"),
        "the relay's reply"
    );
    assert!(!page.contains("auto-refresh"), "no reloading once sent");

    app.smtp.set_faults(Faults::default());
    let retry = admin
        .post(&format!("/admin/updates/{id}/retry-failed"), &[])
        .await;
    assert_eq!(retry.status(), 303);
    app.smtp.wait_for(3, Duration::from_secs(30)).await;
    app.wait_for_update_status(&id, "sent").await;
    let statuses = app.delivery_statuses(&id).await;
    assert!(statuses.iter().all(|(_, s, _)| s == "sent"), "{statuses:?}");
}

#[tokio::test]
async fn the_progress_page_reloads_itself_while_the_update_goes_out() {
    let app = spawn_staff_app(&[("sending.rate_per_second", 2.into())]).await;
    app.seed_confirmed(6, "example.org").await;
    let mut admin = signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    let id = compose(&mut admin, "Slow", &[]).await;
    let form = send_key(&mut admin, &id).await;
    admin
        .post(&format!("/admin/updates/{id}/send"), &form.fields())
        .await;
    app.wait_for_update_status(&id, "sending").await;
    let page = admin
        .get(&format!("/admin/updates/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(r#"id="auto-refresh" data-seconds="2""#)
            && page.contains(r#"<script src="/admin/static/admin-refresh.js" defer>"#),
        "{page}"
    );
    assert!(
        !page.contains("http-equiv=\"refresh\""),
        "no meta refresh, which the reader could not stop (WCAG 2.2.1)"
    );
    assert!(page.contains("Current rate"));
}

#[tokio::test]
async fn the_dashboard_shows_subscribers_by_status_and_list_a_chart_and_the_last_updates() {
    let app = spawn_staff_app(&[]).await;
    app.seed_confirmed(4, "example.org").await;
    assert_eq!(app.signup("new@example.org").await.status(), 303);
    let mut editor = signed_in(&app, "ed@example.org", StaffRole::Editor).await;
    compose(&mut editor, "A draft on the dashboard", &[]).await;
    let page = editor.get("/admin").await.text().await.unwrap();
    assert!(page.contains("<strong>4</strong>confirmed"), "{page}");
    assert!(page.contains("<strong>1</strong>pending"), "{page}");
    assert!(page.contains("<svg class=\"chart\""));
    assert!(
        page.contains("1 sign-ups and 0 unsubscribes"),
        "today's sign-up is counted"
    );
    assert!(page.contains("A draft on the dashboard"));
    assert!(page.contains("<td>4</td>"), "confirmed on the default list");
}

/// Whether the page shown is still the one `mark` was set on (a reload forgets it).
async fn still_marked(browser: &fantoccini::Client) -> bool {
    browser
        .execute("return window.marked === true;", vec![])
        .await
        .unwrap()
        == serde_json::json!(true)
}

async fn mark(browser: &fantoccini::Client) {
    browser
        .execute("window.marked = true;", vec![])
        .await
        .unwrap();
}

#[tokio::test]
async fn the_reader_can_stop_the_progress_page_reloading_and_focus_holds_it_still() {
    use fantoccini::Locator;

    let app = spawn_staff_app(&[]).await;
    app.seed_confirmed(1, "example.org").await;
    app.smtp.set_faults(Faults {
        rcpt: vec![("@".into(), 451, "4.3.0 Try again later".into())],
        ..Faults::default()
    });
    let token = app.api_token().await;
    let id = app.create_update(&token, "Going out slowly").await;
    app.send_now(&token, &id).await;
    app.wait_for_update_status(&id, "sending").await;
    super::add_staff(&app, "ana@example.org", StaffRole::Admin).await;
    let driver = crate::browser::Driver::start();
    let browser = driver.connect().await;
    browser.goto(&app.url("/admin/login")).await.unwrap();
    for (css, text) in [
        ("#email", "ana@example.org"),
        ("#password", super::PASSWORD),
    ] {
        let field = browser.find(Locator::Css(css)).await.unwrap();
        field.send_keys(text).await.unwrap();
    }
    browser
        .find(Locator::Css("#log-in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::XPath("//h1[text()='Dashboard']"))
        .await
        .unwrap();
    browser
        .goto(&app.url(&format!("/admin/updates/{id}")))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let wait_for_reload = async || {
        while still_marked(&browser).await {
            assert!(
                std::time::Instant::now() < deadline,
                "the page never reloaded"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };

    // It reloads by itself.
    browser
        .wait()
        .for_element(Locator::Css("#keep-reloading"))
        .await
        .unwrap();
    mark(&browser).await;
    wait_for_reload().await;

    // Not while a control has the focus.
    browser
        .wait()
        .for_element(Locator::Css("#preview-email"))
        .await
        .unwrap();
    browser
        .execute("document.getElementById('preview-email').focus();", vec![])
        .await
        .unwrap();
    mark(&browser).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        still_marked(&browser).await,
        "reloaded under a focused field"
    );

    // Unticked, it stays still, and stays unticked after the reader reloads it.
    browser
        .find(Locator::Css("#keep-reloading"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .execute("document.activeElement.blur();", vec![])
        .await
        .unwrap();
    mark(&browser).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(still_marked(&browser).await, "reloaded after being stopped");
    browser.refresh().await.unwrap();
    let kept = browser
        .wait()
        .for_element(Locator::Css("#keep-reloading"))
        .await
        .unwrap();
    assert_eq!(
        kept.prop("checked").await.unwrap().as_deref(),
        Some("false")
    );
    browser.close().await.unwrap();
}
