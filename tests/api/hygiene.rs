//! List hygiene (issue 29, item 5), with a controlled clock (dates moved back in the database):
//! inactive people get exactly one re-permission mail however often and by however many the
//! housekeeping runs; who answers stays confirmed; the others become `lapsed` and get no further
//! update; a click on a link in an old mail brings one back; nothing happens while it is off.

use std::time::Duration;

use newsletter::domain::StaffRole;
use newsletter::ops::hygiene::SUBJECT;
use uuid::Uuid;

use crate::admin::{signed_in, spawn_staff_app};
use crate::helpers::TestApp;
use crate::smtp_server::ReceivedMail;

const WAIT: Duration = Duration::from_secs(30);

fn settings(enabled: bool) -> Vec<(&'static str, toml::Value)> {
    vec![
        ("engagement.remember_last_activity", true.into()),
        ("hygiene.enabled", enabled.into()),
        ("hygiene.inactive_days", 180.into()),
        ("hygiene.min_updates", 2.into()),
        ("hygiene.grace_days", 14.into()),
        ("worker.housekeeping_seconds", 1.into()),
    ]
}

fn subject(mail: &ReceivedMail) -> String {
    let message = mail_parser::MessageParser::default()
        .parse(&mail.data)
        .unwrap();
    message.subject().unwrap_or("").to_owned()
}

fn text(mail: &ReceivedMail) -> String {
    let message = mail_parser::MessageParser::default()
        .parse(&mail.data)
        .unwrap();
    message.body_text(0).unwrap().into_owned()
}

async fn status_of(app: &TestApp, id: Uuid) -> String {
    sqlx::query_scalar("SELECT status FROM subscribers WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// Four readers sent two updates; then the clock moves: all confirmed 400 days ago and the two
/// updates sent 190 days ago; `active` was active 10 days ago, `new` confirmed 10 days ago.
async fn history(app: &TestApp) -> Vec<(Uuid, String)> {
    let readers = app.seed_confirmed(4, "example.org").await;
    let token = app.api_token().await;
    for n in 0..2 {
        let id = app.create_update(&token, &format!("Update {n}")).await;
        app.send_now(&token, &id).await;
        app.wait_for_update_status(&id, "sent").await;
    }
    app.smtp.wait_for(8, WAIT).await;
    sqlx::query(
        "UPDATE subscribers SET confirmed_at = now() - interval '400 days', last_active_on = NULL",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE deliveries SET sent_at = now() - interval '190 days' WHERE kind = 'update'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query("UPDATE subscribers SET last_active_on = current_date - 10 WHERE id = $1")
        .bind(readers[0].0)
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE subscribers SET confirmed_at = now() - interval '10 days' WHERE id = $1")
        .bind(readers[3].0)
        .execute(&app.pool)
        .await
        .unwrap();
    readers
}

async fn questions(app: &TestApp) -> Vec<Uuid> {
    sqlx::query_scalar(
        "SELECT subscriber_id FROM deliveries WHERE kind = 'notice' AND subscriber_id IS NOT NULL
         ORDER BY subscriber_id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn inactive_readers_are_asked_once_the_silent_lapse_and_a_click_brings_one_back() {
    let app = spawn_staff_app(&settings(true)).await;
    let readers = history(&app).await;
    let (active, answers, silent, new) = (&readers[0], &readers[1], &readers[2], &readers[3]);

    // The worker's housekeeping asks the two inactive readers; a second worker's run and more
    // runs at once ask nobody again.
    let mails = app.smtp.wait_for(10, WAIT).await;
    let asked: Vec<&ReceivedMail> = mails.iter().filter(|m| subject(m) == SUBJECT).collect();
    assert_eq!(asked.len(), 2);
    let (a, b) = tokio::join!(
        newsletter::ops::hygiene::run(&app.pool, &app.settings),
        newsletter::ops::hygiene::run(&app.pool, &app.settings)
    );
    assert_eq!(a.unwrap().asked + b.unwrap().asked, 0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut expected = vec![answers.0, silent.0];
    expected.sort();
    assert_eq!(
        questions(&app).await,
        expected,
        "each asked once, nobody else"
    );
    assert_eq!(app.smtp.count(), 10);
    assert!(!asked
        .iter()
        .any(|m| m.rcpt_to.contains(&active.1) || m.rcpt_to.contains(&new.1)));

    // One answers: the mail's button opens a page; its GET changes nothing, its POST keeps them.
    let mail = asked
        .iter()
        .find(|m| m.rcpt_to.contains(&answers.1))
        .unwrap();
    let body = text(mail);
    let url = body
        .split_whitespace()
        .find(|w| w.contains("/still-reading/"))
        .unwrap()
        .to_owned();
    let path = url
        .strip_prefix(app.settings.server.base_url.as_str())
        .unwrap();
    let page = app.get(path).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("id=\"still-reading\""));
    let open: i64 =
        sqlx::query_scalar("SELECT count(*) FROM repermission_requests WHERE answered_at IS NULL")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(open, 2, "a GET (a mail scanner's) answers nothing");
    // From another site: refused, nothing answered.
    let foreign = app
        .http
        .post(&url)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
    let still_open: i64 =
        sqlx::query_scalar("SELECT count(*) FROM repermission_requests WHERE answered_at IS NULL")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(still_open, 2);
    // A NUL or an over-long token: refused, never a 5xx.
    for bad in [
        "/still-reading/a%00b".to_owned(),
        format!("/still-reading/{}", "a".repeat(5000)),
    ] {
        let r = app
            .http
            .post(app.url(&bad))
            .header("origin", app.settings.server.base_url.origin())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{bad}: {}", r.status());
    }
    let r = app
        .http
        .post(&url)
        .header("origin", app.settings.server.base_url.origin())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Thank you"));

    // The grace period passes: the silent one lapses, the one who answered does not.
    // The question went out (the relay took it) more than grace_days ago.
    sqlx::query("UPDATE repermission_requests SET asked_at = asked_at - interval '15 days'")
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE deliveries SET sent_at = sent_at - interval '15 days' WHERE kind = 'notice'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while status_of(&app, silent.0).await != "lapsed" {
        assert!(tokio::time::Instant::now() < deadline, "never lapsed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status_of(&app, answers.0).await, "confirmed");
    assert_eq!(status_of(&app, active.0).await, "confirmed");
    let suppressed: i64 = sqlx::query_scalar("SELECT count(*) FROM suppressions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(suppressed, 0, "lapsed is not suppressed");
    let audited: Vec<serde_json::Value> =
        sqlx::query_scalar("SELECT detail FROM audit_log WHERE action = 'hygiene' ORDER BY id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    let sum = |k: &str| audited.iter().map(|d| d[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!((sum("asked"), sum("lapsed")), (2, 1), "{audited:?}");

    // The list's count leaves the lapsed reader out.
    let token = app.api_token().await;
    let lists: serde_json::Value = app
        .api(reqwest::Method::GET, "/api/v1/lists", &token, None)
        .await
        .json()
        .await
        .unwrap();
    let list = lists
        .as_array()
        .or_else(|| lists["lists"].as_array())
        .unwrap()
        .iter()
        .find(|l| l["slug"] == "us-icc-updates")
        .unwrap()
        .clone();
    assert_eq!(list["confirmed_subscribers"], 3, "{list}");

    // The staff page counts them.
    let mut staff = signed_in(&app, "ana@example.org", StaffRole::Editor).await;
    let page = staff.get("/admin/hygiene").await.text().await.unwrap();
    assert!(page.contains("<dd id=\"hygiene-lapsed\">1</dd>"), "{page}");

    // The next update does not go to the lapsed reader.
    let next = app.create_update(&token, "After the lapse").await;
    app.send_now(&token, &next).await;
    app.wait_for_update_status(&next, "sent").await;
    let got: Vec<String> = app
        .smtp
        .messages()
        .iter()
        .filter(|m| subject(m) == "After the lapse")
        .flat_map(|m| m.rcpt_to.clone())
        .collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(!got.contains(&silent.1));

    // A click on a link of an old mail brings them back.
    let old = mails
        .iter()
        .find(|m| m.rcpt_to.contains(&silent.1) && subject(m) != SUBJECT)
        .unwrap();
    let manage = text(old)
        .split_whitespace()
        .find(|w| w.contains("/manage/"))
        .unwrap()
        .to_owned();
    assert_eq!(app.http.get(&manage).send().await.unwrap().status(), 200);
    assert_eq!(status_of(&app, silent.0).await, "confirmed");

    // A lapsed person who unsubscribes is unsubscribed, and a later click does not bring them
    // back.
    sqlx::query("UPDATE subscribers SET status = 'lapsed' WHERE id = $1")
        .bind(silent.0)
        .execute(&app.pool)
        .await
        .unwrap();
    let one_click = crate::report::header_url(old, "List-Unsubscribe");
    assert_eq!(crate::report::one_click_post(&app, &one_click).await, 200);
    assert_eq!(status_of(&app, silent.0).await, "unsubscribed");
    app.http.get(&manage).send().await.unwrap();
    assert_eq!(status_of(&app, silent.0).await, "unsubscribed");
}

#[tokio::test]
async fn nothing_happens_while_it_is_off_but_the_page_says_who_would_be_asked() {
    let app = spawn_staff_app(&settings(false)).await;
    history(&app).await;
    let counts = newsletter::ops::hygiene::run(&app.pool, &app.settings)
        .await
        .unwrap();
    assert_eq!((counts.asked, counts.lapsed), (0, 0));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(questions(&app).await.is_empty());
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM repermission_requests")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    let mut staff = signed_in(&app, "ana@example.org", StaffRole::Editor).await;
    let page = staff.get("/admin/hygiene").await.text().await.unwrap();
    assert!(page.contains("Off: nothing happens"), "{page}");
    assert!(
        page.contains("<tr><td>180 days (the setting)</td><td>2</td></tr>"),
        "{page}"
    );
}

#[test]
fn hygiene_without_last_activity_is_refused_naming_the_key() {
    let out = crate::cli::newsletter()
        .arg("migrate")
        .env("NEWSLETTER__HYGIENE__ENABLED", "true")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("hygiene.enabled"), "{said}");
    assert!(said.contains("engagement.remember_last_activity"), "{said}");
}

/// Each run asks the next people due: those already asked in this quiet spell do not fill a
/// run's quota (they once did, and then nobody past the first run's quota was ever asked). A
/// question the relay has not taken lapses nobody.
#[tokio::test]
async fn each_run_asks_the_next_people_due_and_an_unsent_question_lapses_nobody() {
    let app = spawn_staff_app(&settings(false)).await;
    let readers = history(&app).await;
    let mut asked = Vec::new();
    for _ in 0..3 {
        let mut tx = app.pool.begin().await.unwrap();
        let now = newsletter::store::hygiene::ask(&mut tx, 180, 2, 1)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        asked.push(now.iter().map(|p| p.id).collect::<Vec<_>>());
    }
    assert_eq!(asked[0].len(), 1);
    assert_eq!(asked[1].len(), 1);
    assert_ne!(asked[0], asked[1], "the second run asks the next one");
    assert!(asked[2].is_empty(), "two were due: {asked:?}");
    let mut both = [asked[0][0], asked[1][0]];
    both.sort();
    let mut expected = [readers[1].0, readers[2].0];
    expected.sort();
    assert_eq!(both, expected);
    // Asked long ago, but no question mail was ever sent: nobody lapses.
    sqlx::query("UPDATE repermission_requests SET asked_at = now() - interval '60 days'")
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        newsletter::store::hygiene::lapse(&app.pool, 14)
            .await
            .unwrap(),
        0
    );
}
