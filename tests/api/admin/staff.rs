//! `/admin/staff`: addresses are compared in their canonical form, as subscribers' are, so no
//! spelling of one's own address removes oneself; and the last admin stays, even when two
//! admins remove each other at the same moment.

use newsletter::domain::StaffRole;

use super::{signed_in, spawn_staff_app, Browser};
use crate::helpers::TestApp;

async fn members(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar("SELECT email_normalized FROM staff ORDER BY 1")
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_admin_cannot_remove_themself_however_their_address_is_spelled() {
    let app = spawn_staff_app(&[]).await;
    signed_in(&app, "admin1@example.org", StaffRole::Admin).await;
    let mut admin = signed_in(&app, "admin2@example.org", StaffRole::Admin).await;

    for spelling in [
        " admin2@example.org ",
        "ADMIN2@Example.org",
        "\"admin2\"@example.org",
        "admin2@EXAMPLE.ORG",
    ] {
        let r = admin
            .post("/admin/staff/remove", &[("email", spelling)])
            .await;
        assert_eq!(r.status(), 422, "{spelling:?}");
        let page = r.text().await.unwrap();
        assert!(
            page.contains("You cannot remove your own account"),
            "{page}"
        );
    }

    assert_eq!(
        members(&app).await,
        ["admin1@example.org", "admin2@example.org"]
    );
    assert_eq!(
        admin.get("/admin/staff").await.status(),
        200,
        "still signed in"
    );
    let removals: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'staff-remove'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(removals, 0);
}

/// Posts the removal of `email` as the page would, with a CSRF token fetched before.
async fn remove(browser: &mut Browser<'_>, csrf: &str, email: &str) -> u16 {
    let origin = browser.app.settings.server.base_url.as_str().to_owned();
    let fields = [("csrf_token", csrf), ("email", email)];
    browser
        .post_with("/admin/staff/remove", &fields, Some(&origin))
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn two_admins_removing_each_other_at_once_leave_one_admin() {
    let app = spawn_staff_app(&[]).await;
    let mut ana = signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    let mut bo = signed_in(&app, "bo@example.org", StaffRole::Admin).await;
    let (ana_csrf, bo_csrf) = (ana.csrf().await, bo.csrf().await);

    let (by_ana, by_bo) = tokio::join!(
        remove(&mut ana, &ana_csrf, "bo@example.org"),
        remove(&mut bo, &bo_csrf, "ana@example.org"),
    );

    let mut statuses = [by_ana, by_bo];
    statuses.sort_unstable();
    assert_eq!(statuses[0], 200, "one removal went through: {statuses:?}");
    assert!(
        matches!(statuses[1], 403 | 422),
        "the other was refused: {statuses:?}"
    );
    assert_eq!(members(&app).await.len(), 1, "one admin is left");
}
