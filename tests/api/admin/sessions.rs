//! Sessions a member can see: the account page lists each (device, address, started, last
//! seen) and ends any or all the others; a password change ends the others; a sign-in from a
//! browser not seen before sends the member a notice mail.

use std::time::{Duration, Instant};

use newsletter::domain::StaffRole;

use super::{add_staff, spawn_staff_app, Browser, PASSWORD};
use crate::helpers::TestApp;
use crate::versions::mails;

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";

async fn signed_in_with<'a>(app: &'a TestApp, email: &str, agent: &'static str) -> Browser<'a> {
    let mut browser = Browser::new(app);
    browser.user_agent = Some(agent);
    let r = browser.try_log_in(email, PASSWORD).await;
    assert_eq!(r.status(), 303);
    browser
}

/// The `value` of every hidden `session` field on the account page.
fn session_ids(html: &str) -> Vec<String> {
    html.split("name=\"session\" value=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_owned())
        .collect()
}

#[tokio::test]
async fn the_account_page_lists_each_session_and_ends_one_or_all_the_others() {
    let app = spawn_staff_app(&[]).await;
    add_staff(&app, "ana@example.org", StaffRole::Editor).await;
    add_staff(&app, "bo@example.org", StaffRole::Editor).await;
    let mut laptop = signed_in_with(&app, "ana@example.org", FIREFOX).await;
    let mut office = signed_in_with(&app, "ana@example.org", CHROME).await;
    let mut phone = signed_in_with(&app, "ana@example.org", FIREFOX).await;
    let mut bo = signed_in_with(&app, "bo@example.org", CHROME).await;

    let page = laptop.get("/admin/account").await.text().await.unwrap();
    assert!(page.contains("Firefox 128 on Linux"), "{page}");
    assert!(page.contains("Chrome 126 on Windows"), "{page}");
    assert!(page.contains("127.0.0.1"), "{page}");
    assert!(page.contains("(this browser)"), "{page}");
    let ids = session_ids(&page);
    assert_eq!(ids.len(), 3, "Ana's three sessions, not Bo's: {ids:?}");

    // Ending another member's session by its id does nothing.
    let bos = session_ids(&bo.get("/admin/account").await.text().await.unwrap());
    let r = laptop
        .post("/admin/account/sessions/end", &[("session", &bos[0])])
        .await;
    assert_eq!(r.status(), 422);
    assert_eq!(bo.get("/admin/news").await.status(), 200);
    let r = laptop
        .post("/admin/account/sessions/end", &[("session", "not-an-id")])
        .await;
    assert_eq!(r.status(), 422);

    // The office session, by its row (the list shows the most recently used first: find the
    // one on Chrome).
    let office_id = {
        let at = page.find("Chrome 126 on Windows").unwrap();
        session_ids(&page[at..])[0].clone()
    };
    let r = laptop
        .post("/admin/account/sessions/end", &[("session", &office_id)])
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(office.get("/admin/news").await.status(), 303, "ended");
    assert_eq!(phone.get("/admin/news").await.status(), 200);

    let r = laptop.post("/admin/account/sessions/end-others", &[]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(phone.get("/admin/news").await.status(), 303, "ended");
    assert_eq!(
        laptop.get("/admin/news").await.status(),
        200,
        "this one stays"
    );
    assert_eq!(bo.get("/admin/news").await.status(), 200, "Bo's stay");
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_log WHERE action LIKE 'session%' ORDER BY id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(actions, ["session-end", "sessions-end-others"]);
}

#[tokio::test]
async fn changing_the_password_checks_the_current_one_and_ends_the_other_sessions() {
    let app = spawn_staff_app(&[]).await;
    add_staff(&app, "ana@example.org", StaffRole::Editor).await;
    let mut here = signed_in_with(&app, "ana@example.org", FIREFOX).await;
    let mut there = signed_in_with(&app, "ana@example.org", CHROME).await;
    let new = "a brand new passphrase";
    for (fields, status, says) in [
        (
            [
                ("current_password", "not my password"),
                ("new_password", new),
                ("new_password_again", new),
            ],
            422,
            "current password is not right",
        ),
        (
            [
                ("current_password", PASSWORD),
                ("new_password", new),
                ("new_password_again", "something else"),
            ],
            422,
            "differ",
        ),
        (
            [
                ("current_password", PASSWORD),
                ("new_password", "short"),
                ("new_password_again", "short"),
            ],
            422,
            "at least 12",
        ),
        (
            [
                ("current_password", PASSWORD),
                ("new_password", PASSWORD),
                ("new_password_again", PASSWORD),
            ],
            422,
            "the one you have",
        ),
    ] {
        let r = here.post("/admin/account/password", &fields).await;
        assert_eq!(r.status(), status);
        let text = r.text().await.unwrap();
        assert!(text.contains(says), "{says}: {text}");
    }
    assert_eq!(
        there.get("/admin/news").await.status(),
        200,
        "nothing changed yet"
    );
    let r = here
        .post(
            "/admin/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", new),
                ("new_password_again", new),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        there.get("/admin/news").await.status(),
        303,
        "the other session ended"
    );
    assert_eq!(
        here.get("/admin/news").await.status(),
        200,
        "this one stays"
    );
    let mut again = Browser::new(&app);
    assert_eq!(
        again.try_log_in("ana@example.org", PASSWORD).await.status(),
        401
    );
    assert_eq!(again.try_log_in("ana@example.org", new).await.status(), 303);
}

async fn wait_for_mails(app: &TestApp, subject: &str, n: usize) -> Vec<(String, String, String)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found: Vec<_> = mails(app)
            .into_iter()
            .filter(|(_, s, _)| s == subject)
            .collect();
        if found.len() >= n || Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_sign_in_from_a_browser_not_seen_before_sends_the_member_a_notice() {
    let app = spawn_staff_app(&[]).await;
    add_staff(&app, "ana@example.org", StaffRole::Editor).await;
    let subject = "New sign-in to your staff account";
    // The first sign-in ever is not news; the same browser again is not either.
    let mut laptop = signed_in_with(&app, "ana@example.org", FIREFOX).await;
    assert_eq!(laptop.post("/admin/logout", &[]).await.status(), 303);
    let r = laptop.try_log_in("ana@example.org", PASSWORD).await;
    assert_eq!(r.status(), 303);
    // A new browser is.
    let _elsewhere = signed_in_with(&app, "ana@example.org", CHROME).await;
    let notices = wait_for_mails(&app, subject, 1).await;
    assert_eq!(notices.len(), 1, "{notices:?}");
    let (to, _, text) = &notices[0];
    assert_eq!(to, "ana@example.org");
    assert!(text.contains("Chrome 126 on Windows"), "{text}");
    assert!(text.contains("127.0.0.1"), "{text}");
    assert!(text.contains("/admin/account"), "{text}");
    assert!(!text.contains("  "), "no runs of spaces: {text:?}");
    // A wrong password from yet another browser sends nothing (it signed nobody in).
    let mut stranger = Browser::new(&app);
    assert_eq!(
        stranger
            .try_log_in("ana@example.org", "a wrong password!")
            .await
            .status(),
        401
    );
    app.wait_for_queue_to_drain().await;
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE kind = 'notice'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(queued, 1, "one notice in all");
    assert_eq!(wait_for_mails(&app, subject, 1).await.len(), 1);
    let audited: serde_json::Value = sqlx::query_scalar(
        "SELECT detail FROM audit_log WHERE action = 'sign-in' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(audited["method"], "password");
    assert_eq!(audited["new_device"], true);
}

#[tokio::test]
async fn a_flood_of_sign_ins_from_new_browsers_sends_at_most_five_notices_an_hour() {
    let app = spawn_staff_app(&[]).await;
    add_staff(&app, "ana@example.org", StaffRole::Editor).await;
    for _ in 0..12 {
        signed_in_with(&app, "ana@example.org", FIREFOX).await;
    }
    let queued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM deliveries WHERE kind = 'notice' AND payload->>'to' = 'ana@example.org'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        queued, 5,
        "the first sign-in sends none, the next five one each, then none"
    );
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'sign-in'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(audited, 12, "every sign-in is still in the audit log");
}
