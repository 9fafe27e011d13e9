//! A campaigner's first hour on a fresh install, in headless Chromium: the first admin by the
//! setup code (with an authenticator app, as admins must), an import with states and statuses,
//! a feed with relative links (a deleted item stays gone at the next poll), the footer changed
//! on the Look page, a composed update with its items reordered, previewed at a phone's width,
//! sent: the readers' mails carry the new footer and absolute links, and nobody the file said
//! had left is mailed.

use std::time::Duration;

use fantoccini::Locator;

use super::browser::{click, fill, wait_for_contains};
use super::look::parts;
use super::spawn_staff_app;
use crate::browser::Driver;
use crate::feed_server::FeedServer;
use crate::feeds::{poll_again, wait_polled};

#[tokio::test]
async fn a_fresh_install_is_set_up_fed_and_sends_its_first_update_in_a_real_browser() {
    let server = FeedServer::start().await;
    // The shipped rule: admins sign in with a second factor.
    let app = spawn_staff_app(&[("admin.require_second_factor", "admin".into())]).await;
    let code = newsletter::ops::staff::setup_code(&app.pool)
        .await
        .unwrap()
        .unwrap()
        .display();
    let dir = std::env::temp_dir().join(format!("first-run-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("people.csv");
    std::fs::write(
        &file,
        "email,name,state,status\n\
         ana@example.org,Ana,NY,confirmed\n\
         bo@example.org,Bo,NY,\n\
         cy@example.org,Cy,CA,pending\n\
         dee@example.org,Dee,NY,unsubscribed\n\
         eve@example.org,Eve,,complained\n",
    )
    .unwrap();
    let driver = Driver::start();
    let browser = driver.connect().await;

    // First admin.
    browser.goto(&app.url("/admin")).await.unwrap();
    wait_for_contains(&browser, "h1", "Create the first admin").await;
    fill(&browser, "#code", &code).await;
    fill(&browser, "#email", "ana.admin@example.org").await;
    fill(&browser, "#password", "a long enough password").await;
    click(&browser, "#set-up").await;
    // Admins must have a second factor: an authenticator app (here pyotp) is set up first.
    wait_for_contains(&browser, "h1", "Two-factor sign-in").await;
    let secret = browser
        .find(Locator::Css("#totp-secret"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    fill(
        &browser,
        "#code",
        &super::second_factor::pyotp_code(&secret, 0),
    )
    .await;
    click(&browser, "#confirm-totp").await;
    wait_for_contains(&browser, "#enrolled", "is set up").await;
    click(&browser, "#continue").await;
    wait_for_contains(&browser, "h1", "Dashboard").await;

    // The import.
    browser.goto(&app.url("/admin/imports")).await.unwrap();
    browser
        .find(Locator::Css("#file"))
        .await
        .unwrap()
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
    fill(&browser, "#source", "The fair's sign-up sheet").await;
    click(&browser, "#start-import").await;
    wait_for_contains(&browser, "h1", "(done)").await;
    let status = |email: &'static str| {
        let app = &app;
        async move { app.subscriber_status(email).await }
    };
    assert_eq!(
        status("ana@example.org").await.as_deref(),
        Some("confirmed")
    );
    assert_eq!(status("bo@example.org").await.as_deref(), Some("confirmed"));
    assert_eq!(status("cy@example.org").await.as_deref(), Some("pending"));
    assert_ne!(
        status("dee@example.org").await.as_deref(),
        Some("confirmed")
    );
    assert_ne!(
        status("eve@example.org").await.as_deref(),
        Some("confirmed")
    );
    let alliance: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM subscriptions x JOIN lists l ON l.id = x.list_id
         WHERE l.slug = 'new-york-alliance' AND x.status = 'confirmed'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(alliance, 2, "Ana and Bo joined New York's alliance");

    // A feed of relative links, trusted; one item deleted stays gone at the next poll.
    let start = poll_again(&app).await;
    browser.goto(&app.url("/admin/feeds")).await.unwrap();
    fill(&browser, "#url", &server.url("/old/feed")).await;
    click(&browser, "input[name=approve]").await;
    click(&browser, "#add-feed").await;
    wait_for_contains(&browser, "#notice", "feed is followed").await;
    let token = app.api_token().await;
    wait_polled(&app, &token, start).await;
    let id_of = |title: &'static str| {
        let app = &app;
        async move {
            sqlx::query_scalar::<_, String>("SELECT id::text FROM news WHERE title = $1")
                .bind(title)
                .fetch_one(&app.pool)
                .await
                .unwrap()
        }
    };
    let release = id_of("Court release").await;
    browser.goto(&app.url("/admin/news")).await.unwrap();
    click(
        &browser,
        &format!("form[action='/admin/news/{release}/delete'] button"),
    )
    .await;
    wait_for_contains(&browser, "#notice", "deleted").await;
    let again = poll_again(&app).await;
    wait_polled(&app, &token, again).await;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM news WHERE title = 'Court release'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "the deleted item stays gone");

    // The footer, on the Look page.
    browser.goto(&app.url("/admin/look")).await.unwrap();
    fill(&browser, "#colour", "#0b5d1e").await;
    fill(&browser, "#footer", "Sent by **the Coalition desk**.").await;
    click(&browser, "#save-look").await;
    wait_for_contains(&browser, "#notice", "look is saved").await;

    // Compose with two items, the second moved up.
    let hearing = id_of("Hearing notes").await;
    let rooted = id_of("Rooted link without a guid").await;
    browser.goto(&app.url("/admin/updates/new")).await.unwrap();
    fill(&browser, "#subject", "Our first update").await;
    for (n, id) in [&hearing, &rooted].into_iter().enumerate() {
        browser
            .find(Locator::Css(&format!("#item-{}", n + 1)))
            .await
            .unwrap()
            .select_by_value(id)
            .await
            .unwrap();
    }
    click(&browser, "button[aria-label='Move up item 2']").await;
    browser
        .execute(
            "document.querySelectorAll('input[name=lists]').forEach(b => b.checked = true);",
            vec![],
        )
        .await
        .unwrap();
    click(&browser, "#save-draft").await;
    wait_for_contains(&browser, "#notice", "draft is saved").await;

    // The preview at a phone's width, then send.
    browser
        .find(Locator::Css("#preview-width"))
        .await
        .unwrap()
        .select_by_value("phone")
        .await
        .unwrap();
    click(&browser, "#show-preview").await;
    // The page that answers may take its time on a busy machine: wait for it, however long.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let phone = browser
            .execute(
                "var f = document.querySelector('#preview-html'); return f ? f.clientWidth : 0;",
                vec![],
            )
            .await
            .unwrap();
        if phone.as_u64() == Some(375) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the phone width");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    click(&browser, "#send-now").await;
    wait_for_contains(&browser, "#confirm-send", "Send version").await;
    click(&browser, "#confirm-send").await;
    wait_for_contains(&browser, "#notice", "Sending has started").await;
    browser.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);

    // The readers' two, and the admin's own notice that an authenticator app was set up.
    let mails = app.smtp.wait_for(3, Duration::from_secs(60)).await;
    let (admin, mails): (Vec<_>, Vec<_>) = mails
        .iter()
        .partition(|m| m.rcpt_to[0] == "ana.admin@example.org");
    assert_eq!(admin.len(), 1, "the admin's notice");
    let notice = String::from_utf8_lossy(&admin[0].data);
    assert!(
        notice.contains("An authenticator app was set up"),
        "{notice}"
    );
    let mut readers: Vec<&str> = mails.iter().map(|m| m.rcpt_to[0].as_str()).collect();
    readers.sort_unstable();
    assert_eq!(
        readers,
        ["ana@example.org", "bo@example.org"],
        "nobody who left"
    );
    let (text, html) = parts(&mails[0].data);
    let text = crate::helpers::unrewritten(&app, &text).await;
    assert!(text.contains("Sent by the Coalition desk."), "{text}");
    assert!(
        html.contains("Sent by <strong>the Coalition desk</strong>."),
        "{html}"
    );
    let rooted_at = text
        .find(&server.url("/press/rooted.html"))
        .expect("absolute link");
    let hearing_at = text
        .find(&server.url("/blog/posts/hearing.html"))
        .expect("absolute link");
    assert!(
        rooted_at < hearing_at,
        "the order chosen on the page: {text}"
    );
}
