//! Feedback and time on the staff pages: every time in the member's own time zone (a setting
//! per account, default `server.time_zone`), to the minute, with the zone named; the dashboard
//! counts people, not sign-up events. (That every change is followed by a notice is checked
//! for every form by `audit_trail::every_form_of_the_staff_area_…`.)

use newsletter::domain::StaffRole;

use super::{signed_in, spawn_staff_app};

/// The times shown in table cells: `2026-12-07 09:30 EST` (a zone of letters or an offset).
fn times_in(page: &str) -> Vec<String> {
    let shape = |t: &str| {
        let b = t.as_bytes();
        b.len() > 17
            && b[..16].iter().enumerate().all(|(i, c)| match i {
                4 | 7 => *c == b'-',
                10 => *c == b' ',
                13 => *c == b':',
                _ => c.is_ascii_digit(),
            })
            && b[16] == b' '
            && b[17..]
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'-')
    };
    page.split("<td>")
        .filter_map(|cell| cell.split("</td>").next())
        .filter(|t| shape(t))
        .map(str::to_owned)
        .collect()
}

/// Whether `page` shows a time with seconds and a fraction (`12:34:56.789`).
fn has_raw_time(page: &str) -> bool {
    let b = page.as_bytes();
    b.windows(10).any(|w| {
        w[0].is_ascii_digit()
            && w[1].is_ascii_digit()
            && w[2] == b':'
            && w[3].is_ascii_digit()
            && w[4].is_ascii_digit()
            && w[5] == b':'
            && w[6].is_ascii_digit()
            && w[7].is_ascii_digit()
            && w[8] == b'.'
            && w[9].is_ascii_digit()
    })
}

#[tokio::test]
async fn each_member_reads_times_in_their_own_time_zone_to_the_minute() {
    let app = spawn_staff_app(&[]).await;
    let mut ed = signed_in(&app, "ed@example.org", StaffRole::Editor).await;

    let log = ed.get("/admin/audit").await.text().await.unwrap();
    let shown = times_in(&log);
    assert!(!shown.is_empty(), "{log}");
    assert!(
        shown
            .iter()
            .all(|t| t.ends_with(" EST") || t.ends_with(" EDT")),
        "the organisation's zone (America/New_York) by default: {shown:?}"
    );
    assert!(!has_raw_time(&log), "no seconds or microseconds: {log}");

    // An unknown zone is refused, quoted, and nothing changes.
    let r = ed
        .post("/admin/account/time-zone", &[("time_zone", "Mars/Base")])
        .await;
    assert_eq!(r.status(), 422);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("&quot;Mars/Base&quot; is not a time zone"),
        "{page}"
    );

    // An editor sets their own zone: told so, audited, and every time follows.
    let r = ed
        .post("/admin/account/time-zone", &[("time_zone", "Asia/Tokyo")])
        .await;
    assert_eq!(r.status(), 303);
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    let page = ed.get(&to).await.text().await.unwrap();
    assert!(page.contains("Your settings are saved."), "{page}");
    assert!(page.contains("Asia/Tokyo"));
    let log = ed.get("/admin/audit").await.text().await.unwrap();
    let shown = times_in(&log);
    assert!(
        !shown.is_empty() && shown.iter().all(|t| t.ends_with(" JST")),
        "{shown:?}"
    );
    let audited: Vec<(String, serde_json::Value)> =
        sqlx::query_as("SELECT actor, detail FROM audit_log WHERE action = 'account-time-zone'")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].0, "ed@example.org");
    assert_eq!(audited[0].1["changed"]["time_zone"]["to"], "Asia/Tokyo");

    // Another member still reads the organisation's zone.
    let mut ad = signed_in(&app, "ad@example.org", StaffRole::Admin).await;
    let log = ad.get("/admin/audit").await.text().await.unwrap();
    assert!(times_in(&log).iter().all(|t| !t.ends_with(" JST")));

    // Blank: back to the organisation's.
    ed.post("/admin/account/time-zone", &[("time_zone", "")])
        .await;
    let log = ed.get("/admin/audit").await.text().await.unwrap();
    assert!(times_in(&log)
        .iter()
        .all(|t| t.ends_with(" EST") || t.ends_with(" EDT")));
}

#[tokio::test]
async fn the_dashboard_counts_people_not_sign_up_events() {
    let app = spawn_staff_app(&[]).await;
    let token = app.api_token().await;
    let file = "email,name\nana@example.org,Ana\nbo@example.org,Bo\ncy@example.org,Cy\n";
    // The same three people imported twice (before: six sign-ups on the dashboard).
    for _ in 0..2 {
        let r = crate::imports::start(&app, &token, "mode=confirmed&source=A%20sheet", file.into())
            .await;
        assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
        let job: serde_json::Value = r.json().await.unwrap();
        let seen = crate::imports::follow(&app, &token, job["id"].as_str().unwrap()).await;
        assert_eq!(seen.last().unwrap()["status"], "done");
    }
    let mut ad = signed_in(&app, "ad@example.org", StaffRole::Admin).await;
    let page = ad.get("/admin").await.text().await.unwrap();
    assert!(
        page.contains("3 sign-ups and 0 unsubscribes"),
        "three people: {page}"
    );
}

#[tokio::test]
async fn the_audit_log_filters_by_actor_action_record_and_day_and_pages() {
    let app = spawn_staff_app(&[]).await;
    let mut ad = signed_in(&app, "ad@example.org", StaffRole::Admin).await;
    let mut ed = signed_in(&app, "ed@example.org", StaffRole::Editor).await;
    for n in 0..105 {
        let r = ed
            .post("/admin/news", &[("title", &format!("Item {n}"))])
            .await;
        assert_eq!(r.status(), 303);
    }
    ad.post("/admin/lists", &[("slug", "ny"), ("name", "New York")])
        .await;

    let rows = |page: &str| page.matches("<tr><td>").count();
    let by_editor = ed
        .get("/admin/audit?actor=ED%40")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        rows(&by_editor),
        100,
        "a full page of the editor's 106 entries"
    );
    assert!(!by_editor.contains("<td>ad@example.org</td>"));
    let next = by_editor
        .split("<a href=\"")
        .filter_map(|a| a.split('"').next())
        .find(|h| h.starts_with("/admin/audit?"))
        .expect("the older page's link")
        .replace("&amp;", "&")
        .replace("&#x3D;", "=");
    let page2 = ed.get(&next).await.text().await.unwrap();
    assert_eq!(rows(&page2), 6, "5 items and the sign-in: {next}");
    assert!(!page2.contains("<td>ad@example.org</td>"));

    let lists = ed
        .get("/admin/audit?action=list-create&subject=ny")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(rows(&lists), 1);
    assert!(lists.contains("<td>ad@example.org</td>"));

    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::America::New_York)
        .date_naive();
    let yesterday = today.pred_opt().unwrap();
    let none = ed
        .get(&format!("/admin/audit?from={yesterday}&to={yesterday}"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(rows(&none), 0, "nothing yesterday");
    assert!(none.contains("Nothing recorded"));
    let all_today = ed
        .get(&format!(
            "/admin/audit?from={today}&to={today}&action=list-create"
        ))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(rows(&all_today), 1);

    let r = ed.get("/admin/audit?from=yesterday").await;
    assert_eq!(r.status(), 422);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("&quot;yesterday&quot; is not a day"));
    let r = ed.get("/admin/audit?action=no-such").await;
    assert_eq!(r.status(), 422);
    let r = ed.get("/admin/audit?before=abc").await;
    assert_eq!(r.status(), 422, "not ignored");
}

/// Every staff page with times shows them in the reader's zone, none raw. (Before, the Look page
/// showed `2026-12-07T06:35:18.590121Z` and the tokens page the organisation's zone. Found
/// from outside.)
#[tokio::test]
async fn no_staff_page_shows_a_raw_time_or_another_zone() {
    let app = spawn_staff_app(&[]).await;
    let token = app.api_token().await;
    app.seed_confirmed(1, "example.org").await;
    let id = app.create_update(&token, "Timed").await;
    let mut ad = signed_in(&app, "ad@example.org", StaffRole::Admin).await;
    ad.post("/admin/account/time-zone", &[("time_zone", "Asia/Tokyo")])
        .await;
    let saved = ad
        .post(
            "/admin/look",
            &[("colour", "#0b5d1e"), ("footer", "Hello.")],
        )
        .await;
    assert_eq!(saved.status(), 303);
    for page in [
        "/admin/audit".to_owned(),
        "/admin/tokens".into(),
        "/admin/look".into(),
        "/admin/updates".into(),
        format!("/admin/updates/{id}"),
        "/admin/staff".into(),
        "/admin/subscribers?query=reader".into(),
    ] {
        let html = ad.get(&page).await.text().await.unwrap();
        assert!(!has_raw_time(&html), "{page} shows a raw time: {html}");
        assert!(
            !html.contains(" EST") && !html.contains(" EDT"),
            "{page}: {html}"
        );
        assert!(
            html.contains(" JST"),
            "{page} shows no time in the reader's zone"
        );
    }
}

/// The dashboard's complaint budget: update mail taken in the last 7 days and the complaints it
/// drew, in all and by mailbox provider, judged against Gmail's 0.1 % and 0.3 % lines; mail
/// sent before the window does not count.
#[tokio::test]
async fn the_dashboard_shows_the_complaint_budget_of_the_last_seven_days_by_provider() {
    let app = spawn_staff_app(&[]).await;
    let gmail = app.seed_confirmed(2, "gmail.com").await;
    app.seed_confirmed_from(10, 2, "example.org").await;
    let token = app.api_token().await;
    let id = app.create_update(&token, "Budget").await;
    app.send_now(&token, &id).await;
    app.wait_for_update_status(&id, "sent").await;
    // One gmail.com reader complained; an older mail's complaint is outside the window.
    sqlx::query("UPDATE deliveries SET report = 'complaint' WHERE subscriber_id = $1")
        .bind(gmail[0].0)
        .execute(&app.pool)
        .await
        .unwrap();
    let older = app.create_update(&token, "Older").await;
    let inserted = sqlx::query(
        "INSERT INTO deliveries (kind, update_id, subscriber_id, status, sent_at, report)
         VALUES ('update', $2::uuid, $1, 'sent', now() - interval '8 days', 'complaint')",
    )
    .bind(gmail[1].0)
    .bind(&older)
    .execute(&app.pool)
    .await
    .unwrap();
    assert_eq!(inserted.rows_affected(), 1);
    let mut staff = signed_in(&app, "ana@example.org", StaffRole::Editor).await;
    let page = staff.get("/admin").await.text().await.unwrap();
    let table = &page[page.find("id=\"complaint-budget\"").expect("the budget")..];
    let table = &table[..table.find("</table>").unwrap()];
    let row = |provider: &str| {
        let at = table
            .find(&format!("<th scope=\"row\">{provider}</th>"))
            .unwrap_or_else(|| panic!("{provider}: {table}"));
        let rest = &table[at..];
        rest[..rest.find("</tr>").unwrap()].to_owned()
    };
    assert!(
        row("all").contains("<td>4</td><td>0</td><td>1</td><td>25.00 %: at or over 0.3 %"),
        "{}",
        row("all")
    );
    assert!(row("gmail.com").contains("<td>2</td><td>0</td><td>1</td><td>50.00 %"));
    assert!(row("others").contains("<td>2</td><td>0</td><td>0</td><td>0.00 %: under 0.1 %"));
}
