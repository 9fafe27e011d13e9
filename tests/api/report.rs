//! An update's report (issue 29, item 3): every figure equals the ledger's and the reports'
//! counts; each recipient is counted once; unsubscribes through the update's own links, clicks
//! per link, providers and reply groups; the same figures in the API, the page and the CSV.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::admin::{signed_in, spawn_staff_app};
use crate::bounces::{arf, dsn, overrides, COMPLAINTS};
use crate::helpers::TestApp;
use crate::smtp_server::{Faults, ReceivedMail};
use newsletter::domain::StaffRole;

async fn report(app: &TestApp, token: &str, id: &str) -> Value {
    let r = app
        .api(
            Method::GET,
            &format!("/api/v1/updates/{id}/report"),
            token,
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// The ledger by status, straight from the table.
async fn ledger(app: &TestApp, id: &str) -> BTreeMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>(
        "SELECT status, count(*) FROM deliveries WHERE update_id = $1::uuid GROUP BY status",
    )
    .bind(id)
    .fetch_all(&app.pool)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

/// An RFC 8058 one-click POST to `url`: its status.
pub async fn one_click_post(app: &TestApp, url: &str) -> u16 {
    app.http
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn to(mails: &[ReceivedMail], rcpt: &str) -> ReceivedMail {
    mails
        .iter()
        .find(|m| m.rcpt_to[0] == rcpt)
        .unwrap_or_else(|| panic!("a mail to {rcpt}"))
        .clone()
}

/// The first `<...>` of header `name` (List-Unsubscribe's https URL comes first).
pub fn header_url(mail: &ReceivedMail, name: &str) -> String {
    let parsed = mail_parser::MessageParser::default()
        .parse(&mail.data)
        .unwrap();
    let value = parsed.header_raw(name).unwrap();
    let start = value.find('<').unwrap() + 1;
    value[start..start + value[start..].find('>').unwrap()].to_owned()
}

#[tokio::test]
async fn the_reports_figures_equal_the_ledger_and_the_reports_and_account_for_everyone() {
    let app = spawn_staff_app(&overrides(&[])).await;
    app.smtp.set_faults(Faults {
        rcpt: vec![
            (
                "reader5@outlook.com".into(),
                550,
                "5.1.1 No such user".into(),
            ),
            (
                "reader8@example.org".into(),
                451,
                "4.3.0 Try again later".into(),
            ),
        ],
        ..Faults::default()
    });
    app.seed_confirmed_from(0, 4, "gmail.com").await;
    app.seed_confirmed_from(4, 3, "outlook.com").await;
    app.seed_confirmed_from(7, 3, "example.org").await;
    // Reader 9 chose a topic none of the news items has: skipped.
    sqlx::query("UPDATE subscribers SET topics = '{court}' WHERE email = 'reader9@example.org'")
        .execute(&app.pool)
        .await
        .unwrap();
    let token = app.api_token().await;
    let body = json!({
        "subject": "Report", "lists": ["us-icc-updates"],
        "intro": "See [the statement](https://example.org/statement).",
        "news_items": [
            {"title": "Senate", "url": "https://example.org/senate", "topic": "congress"},
            {"title": "Assembly", "url": "https://example.org/asp", "topic": "asp"}
        ]
    });
    let r = app
        .api(Method::POST, "/api/v1/updates", &token, Some(body))
        .await;
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.send_now(&token, &id).await;
    let mails = app.smtp.wait_for(7, Duration::from_secs(30)).await;
    // Wait for the failure and the skip to be written (the deferral stays).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let l = ledger(&app, &id).await;
        if l.get("failed") == Some(&1) && l.get("skipped") == Some(&1) && l.get("sent") == Some(&7)
        {
            break;
        }
        assert!(Instant::now() < deadline, "the ledger stayed {l:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A later bounce (a DSN) for reader 0, a complaint (ARF) for reader 1.
    let bounced = to(&mails, "reader0@gmail.com");
    app.send_report(&bounced.mail_from, &dsn(&bounced, "failed", "5.1.1"))
        .await
        .unwrap();
    app.send_report(COMPLAINTS, &arf(&to(&mails, "reader1@gmail.com")))
        .await
        .unwrap();
    // Reader 2 unsubscribes by one-click, reader 3 on the page their mail's footer opens.
    let one_click = header_url(&to(&mails, "reader2@gmail.com"), "List-Unsubscribe");
    assert!(one_click.contains(&format!("?update={id}")), "{one_click}");
    assert_eq!(one_click_post(&app, &one_click).await, 200);
    let footer = header_url(&to(&mails, "reader3@gmail.com"), "List-Unsubscribe");
    let page = app
        .http
        .get(&footer)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let action = page
        .split("action=\"")
        .nth(2)
        .and_then(|rest| rest.split('"').next())
        .expect("the page's unsubscribe-from-everything form")
        .replace("&#x3D;", "=");
    assert!(action.ends_with(&format!("?update={id}")), "{action}");
    let base = app.settings.server.base_url.as_str();
    let r = app
        .http
        .post(format!("{base}{action}"))
        .header("origin", base)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("action=all")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The same link again, and one naming an update the person was never sent: nothing more.
    assert_eq!(one_click_post(&app, &one_click).await, 200);
    // Three clicks on the statement.
    let html = mail_parser::MessageParser::default()
        .parse(&mails[0].data)
        .unwrap()
        .body_html(0)
        .unwrap()
        .into_owned();
    let link = html
        .split("href=\"")
        .map(|h| h.split('"').next().unwrap())
        .find(|h| h.contains("/l/"))
        .unwrap()
        .to_owned();
    for _ in 0..3 {
        assert_eq!(app.http.get(&link).send().await.unwrap().status(), 302);
    }

    let deadline = Instant::now() + Duration::from_secs(20);
    let got = loop {
        let got = report(&app, &token, &id).await;
        if got["bounced_later"] == 1 && got["complaints"] == 1 {
            break got;
        }
        assert!(
            Instant::now() < deadline,
            "the reports never counted: {got}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let l = ledger(&app, &id).await;
    let still = l.get("queued").unwrap_or(&0)
        + l.get("deferred").unwrap_or(&0)
        + l.get("sending").unwrap_or(&0);
    assert_eq!(got["sent"], l["sent"]);
    assert_eq!(got["failed"], l["failed"]);
    assert_eq!(got["skipped"], l["skipped"]);
    assert_eq!(got["queued"], still);
    assert_eq!(
        (
            got["sent"].clone(),
            got["failed"].clone(),
            got["skipped"].clone(),
            got["queued"].clone()
        ),
        (json!(7), json!(1), json!(1), json!(1))
    );
    assert_eq!(got["recipients"], 10, "sent + failed + skipped + queued");
    assert_eq!(got["audience"], 10, "the audience at the start");
    let reported: (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE report = 'hard'), count(*) FILTER (WHERE report = 'complaint')
         FROM deliveries WHERE update_id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (
            got["bounced_later"].as_i64().unwrap(),
            got["complaints"].as_i64().unwrap()
        ),
        reported
    );
    assert_eq!(
        got["unsubscribes"], 2,
        "one-click and the page; a repeat counts nothing"
    );
    // Reader 9 was skipped: their own link naming this update counts nothing.
    let skipped: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM subscribers WHERE email = 'reader9@example.org'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let links = newsletter::mail::Links::for_id(&app.settings, skipped, 1);
    assert_eq!(
        one_click_post(&app, &format!("{}?update={id}", links.unsubscribe)).await,
        200
    );
    assert_eq!(
        app.subscriber_status("reader9@example.org")
            .await
            .as_deref(),
        Some("unsubscribed")
    );
    assert_eq!(
        report(&app, &token, &id).await["unsubscribes"],
        2,
        "not for someone the update skipped"
    );
    let clicks: BTreeMap<String, i64> = got["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["url"].as_str().unwrap().to_owned(),
                l["clicks"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        clicks,
        BTreeMap::from([
            ("https://example.org/statement".to_owned(), 3),
            ("https://example.org/senate".to_owned(), 0),
            ("https://example.org/asp".to_owned(), 0),
        ])
    );
    let providers: BTreeMap<String, Value> = got["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["provider"].as_str().unwrap().to_owned(), p.clone()))
        .collect();
    let gmail = &providers["gmail.com"];
    assert_eq!(
        (
            gmail["delivered"].clone(),
            gmail["bounced"].clone(),
            gmail["complained"].clone()
        ),
        (json!(4), json!(1), json!(1))
    );
    assert_eq!(gmail["complaint_rate"], 0.25);
    let outlook = &providers["outlook.com/hotmail.com"];
    assert_eq!(
        (outlook["delivered"].clone(), outlook["bounced"].clone()),
        (json!(2), json!(1))
    );
    assert_eq!(providers["others"]["delivered"], 1);
    let replies: BTreeMap<String, (i64, i64)> = got["replies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["code"].as_str().unwrap().to_owned(),
                (
                    g["failed"].as_i64().unwrap(),
                    g["deferred"].as_i64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(
        replies,
        BTreeMap::from([
            ("550 5.1.1".to_owned(), (1, 0)),
            ("451 4.3.0".to_owned(), (0, 1))
        ])
    );

    // The page and the CSV say the same, to an editor too.
    let mut editor = signed_in(&app, "ed@example.org", StaffRole::Editor).await;
    let page = editor.get(&format!("/admin/updates/{id}/report")).await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    for (field, value) in [
        ("report-sent", 7),
        ("report-failed", 1),
        ("report-unsubscribes", 2),
        ("report-complaints", 1),
    ] {
        assert!(
            page.contains(&format!("id=\"{field}\">{value}<")),
            "{field}: {page}"
        );
    }
    assert!(page.contains("25.00 %: at or over 0.3 %"), "{page}");
    assert!(page.contains("The mailbox does not exist"), "{page}");
    let csv = editor.get(&format!("/admin/updates/{id}/report.csv")).await;
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = csv.text().await.unwrap();
    for row in [
        "total,sent,7",
        "total,unsubscribes,2",
        "clicks,https://example.org/statement,3",
        "failed,550 5.1.1,1",
    ] {
        assert!(csv.contains(row), "{row}: {csv}");
    }
}

#[tokio::test]
async fn a_report_of_no_such_update_is_404_and_a_forged_update_in_a_link_counts_nothing() {
    let app = spawn_staff_app(&[]).await;
    app.seed_confirmed(1, "example.org").await;
    let token = app.api_token().await;
    let sent = app.create_and_send(&token, "Sent").await;
    let other = app.create_and_send(&token, "Other").await;
    let mails = app.smtp.wait_for(2, Duration::from_secs(20)).await;
    let r = app
        .api(
            Method::GET,
            &format!("/api/v1/updates/{}/report", uuid::Uuid::new_v4()),
            &token,
            None,
        )
        .await;
    assert_eq!(r.status(), 404);
    let r = app
        .api(
            Method::GET,
            "/api/v1/updates/not-an-id/report",
            &token,
            None,
        )
        .await;
    assert_eq!(r.status(), 404);
    // The link of the first update's mail, made to name a draft the person was never sent.
    let draft = app.create_update(&token, "Draft").await;
    let first = mails
        .iter()
        .find(|m| String::from_utf8_lossy(&m.data).contains(&sent))
        .unwrap_or(&mails[0]);
    let url = header_url(first, "List-Unsubscribe");
    let forged = format!("{}?update={draft}", url.split('?').next().unwrap());
    assert_eq!(one_click_post(&app, &forged).await, 200);
    for id in [&draft, &sent, &other] {
        assert_eq!(report(&app, &token, id).await["unsubscribes"], 0, "{id}");
    }
}

/// A malformed `?update=` (not a UUID, repeated, empty, huge) on the unsubscribe page and on the
/// one-click POST: the page shows, the one-click unsubscribes (RFC 8058 answers 200 whatever the
/// query), and nothing is counted for any update.
#[tokio::test]
async fn a_malformed_update_in_an_unsubscribe_link_still_unsubscribes_and_counts_nothing() {
    let app = spawn_staff_app(&[]).await;
    let readers = app.seed_confirmed(1, "example.org").await;
    let token = app.api_token().await;
    let sent = app.create_and_send(&token, "Sent").await;
    let mails = app.smtp.wait_for(1, Duration::from_secs(20)).await;
    let url = header_url(&mails[0], "List-Unsubscribe");
    let bare = url.split('?').next().unwrap().to_owned();
    let path = bare
        .strip_prefix(app.settings.server.base_url.as_str())
        .unwrap()
        .to_owned();
    let long = "f".repeat(5000);
    for query in [
        "update=not-a-uuid".to_owned(),
        format!("update={sent}&update={sent}"),
        "update=".to_owned(),
        format!("update={long}"),
        "update=%ff%fe".to_owned(),
    ] {
        let page = app.get(&format!("{path}?{query}")).await;
        assert_eq!(page.status(), 200, "{query}");
    }
    assert_eq!(
        one_click_post(&app, &format!("{bare}?update=not-a-uuid")).await,
        200
    );
    assert_eq!(
        app.subscriber_status(&readers[0].1).await.as_deref(),
        Some("unsubscribed")
    );
    assert_eq!(report(&app, &token, &sent).await["unsubscribes"], 0);
}
