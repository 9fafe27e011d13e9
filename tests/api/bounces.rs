//! Bounces and complaints that arrive later: real reports sent by SMTP to the app's inbound
//! listener after an update went out with VERP envelope senders.

use std::time::Duration;

use toml::Value;

use crate::helpers::{spawn_app_with, TestApp};
use crate::smtp_server::ReceivedMail;

const VERP_DOMAIN: &str = "bounces.example.org";
pub(crate) const COMPLAINTS: &str = "fbl@example.org";

pub(crate) fn overrides(extra: &[(&'static str, Value)]) -> Vec<(&'static str, Value)> {
    let mut all = vec![
        ("bounce.return_path_domain", VERP_DOMAIN.into()),
        ("inbound.bind", "127.0.0.1:0".into()),
        ("inbound.complaints_address", COMPLAINTS.into()),
        // Reports sent one after another: a closed session may not be reaped yet.
        ("inbound.max_sessions_per_ip", 50.into()),
    ];
    all.extend(extra.iter().cloned());
    all
}

/// An app with VERP and the listener on, `n` confirmed readers, an update sent to them all;
/// returns the app, the update id and the mails the relay received (by recipient).
async fn sent_update(
    n: i64,
    extra: &[(&'static str, Value)],
) -> (TestApp, String, Vec<ReceivedMail>) {
    let app = spawn_app_with(&overrides(extra)).await;
    app.seed_confirmed(n, "example.net").await;
    let token = app.api_token().await;
    let id = app.create_and_send(&token, "This week").await;
    let mut mails = app.smtp.wait_for(n as usize, Duration::from_secs(20)).await;
    mails.sort_by(|a, b| a.rcpt_to.cmp(&b.rcpt_to));
    app.wait_for_queue_to_drain().await;
    (app, id, mails)
}

fn message_id(mail: &ReceivedMail) -> String {
    mail_parser::MessageParser::default()
        .parse(&mail.data)
        .unwrap()
        .message_id()
        .unwrap()
        .to_owned()
}

/// A Postfix-style delivery status notification for `mail`.
pub(crate) fn dsn(mail: &ReceivedMail, action: &str, status: &str) -> Vec<u8> {
    dsn_naming(
        &mail.mail_from,
        &mail.rcpt_to[0],
        &message_id(mail),
        action,
        status,
    )
}

/// A Postfix-style delivery status notification sent `to`, about `rcpt`, carrying the headers
/// of the mail `mid`.
fn dsn_naming(to: &str, rcpt: &str, mid: &str, action: &str, status: &str) -> Vec<u8> {
    format!(
        "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n\
         To: {verp}\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\
         Message-Id: <{nonce}@mx.example.net>\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\n<{rcpt}>: host said: {status}\r\n\r\n\
         --B\r\nContent-Type: message/delivery-status\r\n\r\n\
         Reporting-MTA: dns; mx.example.net\r\n\r\n\
         Final-Recipient: rfc822; {rcpt}\r\nAction: {action}\r\nStatus: {status}\r\n\
         Diagnostic-Code: smtp; 550 {status} <{rcpt}>: recipient problem\r\n\r\n\
         --B\r\nContent-Type: text/rfc822-headers\r\n\r\n\
         To: {rcpt}\r\nSubject: This week\r\nMessage-ID: <{mid}>\r\n\r\n--B--\r\n",
        verp = to,
        nonce = uuid::Uuid::new_v4().simple(),
    )
    .into_bytes()
}

/// A Yahoo-style ARF abuse report about `mail`.
pub(crate) fn arf(mail: &ReceivedMail) -> Vec<u8> {
    arf_with(mail, "", &message_id(mail))
}

/// An ARF abuse report about `mail` with these extra feedback fields and this original
/// Message-ID.
fn arf_with(mail: &ReceivedMail, fields: &str, mid: &str) -> Vec<u8> {
    format!(
        "From: feedback@arf.mail.example.com\r\nTo: {COMPLAINTS}\r\nSubject: FW: This week\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=feedback-report; boundary=\"A\"\r\n\r\n\
         --A\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n\r\n\
         --A\r\nContent-Type: message/feedback-report\r\n\r\n\
         Feedback-Type: abuse\r\nUser-Agent: Test-FBL/1.0\r\nVersion: 1\r\n\
         {fields}Original-Rcpt-To: <{rcpt}>\r\n\r\n\
         --A\r\nContent-Type: message/rfc822\r\n\r\n\
         To: {rcpt}\r\nSubject: This week\r\nMessage-ID: <{mid}>\r\n\r\nHello.\r\n--A--\r\n",
        rcpt = mail.rcpt_to[0],
    )
    .into_bytes()
}

async fn status_of(app: &TestApp, email: &str) -> String {
    app.subscriber_status(email).await.unwrap()
}

/// (email, delivery report) of an update's rows, by email.
async fn reports(app: &TestApp, update: &str) -> Vec<(String, Option<String>)> {
    sqlx::query_as(
        "SELECT s.email, d.report FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
         WHERE d.update_id = $1::uuid ORDER BY s.email",
    )
    .bind(update)
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&app.pool).await.unwrap()
}

#[tokio::test]
async fn with_verp_each_mail_has_its_own_envelope_sender_naming_no_address() {
    let (_app, _, mails) = sent_update(3, &[]).await;
    let senders: std::collections::BTreeSet<&str> =
        mails.iter().map(|m| m.mail_from.as_str()).collect();
    assert_eq!(
        senders.len(),
        3,
        "one envelope sender per mail: {senders:?}"
    );
    for mail in &mails {
        assert!(
            mail.mail_from.starts_with("bounces+")
                && mail.mail_from.ends_with("@bounces.example.org"),
            "{}",
            mail.mail_from
        );
        let local = mail.rcpt_to[0].split('@').next().unwrap();
        assert!(
            !mail.mail_from.contains(local),
            "the token does not show the address"
        );
        // The From header stays the configured one.
        let parsed = mail_parser::MessageParser::default()
            .parse(&mail.data)
            .unwrap();
        let from = parsed
            .from()
            .and_then(|f| f.first())
            .and_then(|a| a.address());
        assert_eq!(from, Some("updates@example.org"));
    }
}

#[tokio::test]
async fn a_dsn_for_one_recipient_bounces_exactly_that_subscriber_and_delivery() {
    let (app, update, mails) = sent_update(3, &[]).await;
    let target = &mails[1];

    let report = dsn(target, "failed", "5.1.1");
    let reply = app
        .send_report(&target.mail_from, &report)
        .await
        .expect("the listener takes the DSN");
    assert_eq!(reply.code().to_string(), "250");

    assert_eq!(status_of(&app, "reader1@example.net").await, "bounced");
    assert_eq!(status_of(&app, "reader0@example.net").await, "confirmed");
    assert_eq!(status_of(&app, "reader2@example.net").await, "confirmed");
    assert_eq!(
        reports(&app, &update).await,
        vec![
            ("reader0@example.net".into(), None),
            ("reader1@example.net".into(), Some("hard".into())),
            ("reader2@example.net".into(), None),
        ]
    );
    let (kind, source, matched, status, raw): (String, String, bool, Option<String>, String) =
        sqlx::query_as("SELECT kind, source, matched, status_code, raw FROM bounce_reports")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        (kind.as_str(), source.as_str(), matched),
        ("hard", "smtp", true)
    );
    assert_eq!(status.as_deref(), Some("5.1.1"));
    assert!(
        raw.contains("Final-Recipient: rfc822; reader1@example.net"),
        "the raw report is kept"
    );
    let logged = count(
        &app,
        "SELECT count(*) FROM consent_events c JOIN subscribers s ON s.id = c.subscriber_id
         WHERE c.kind = 'bounce' AND c.source = 'report' AND s.email = 'reader1@example.net'",
    )
    .await;
    assert_eq!(logged, 1, "the bounce is in the consent log");
    let token = app.api_token().await;
    let view = app.update_view(&token, &update).await;
    assert_eq!(view["bounced"], 1, "{view}");
    assert_eq!(view["complained"], 0, "{view}");
    let listed: serde_json::Value = app
        .api(
            reqwest::Method::GET,
            &format!("/api/v1/bounces?update={update}"),
            &token,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let listed = listed["reports"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["kind"], "hard");
    let mut admin = crate::admin::signed_in(
        &app,
        "ana@example.org",
        newsletter::domain::StaffRole::Admin,
    )
    .await;
    let page = admin
        .get(&format!("/admin/updates/{update}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<strong id=\"count-bounced\">1</strong>")
            && page.contains("<strong id=\"count-complained\">0</strong>"),
        "the staff page shows the reported bounce"
    );
    assert_eq!(listed[0]["status_code"], "5.1.1");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("newsletter_reports{kind=\"hard\",source=\"smtp\"} 1"),
        "{metrics}"
    );

    // The same DSN again (a sender's retry) is recorded once.
    app.send_report(&target.mail_from, &report).await.unwrap();
    assert_eq!(count(&app, "SELECT count(*) FROM bounce_reports").await, 1);
}

#[tokio::test]
async fn a_4_2_2_dsn_counts_soft_and_soft_limit_of_them_on_different_mails_bounce_the_subscriber() {
    let (app, update, mails) = sent_update(2, &[("bounce.soft_limit", 2.into())]).await;
    let target = &mails[0];
    let later = another_update(&app, "Next week", "reader0@example.net").await;

    app.send_report(&target.mail_from, &dsn(target, "delayed", "4.2.2"))
        .await
        .unwrap();
    assert_eq!(
        status_of(&app, "reader0@example.net").await,
        "confirmed",
        "one soft bounce is not enough"
    );
    assert_eq!(reports(&app, &update).await[0].1.as_deref(), Some("soft"));
    let kind: String = sqlx::query_scalar("SELECT kind FROM bounce_reports")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(kind, "soft");

    // The sending server's next notice about the same mail: still one soft bounce. (Before
    // soft bounces counted per mail, this made the reader bounced.)
    app.send_report(&target.mail_from, &dsn(target, "failed", "4.2.2"))
        .await
        .unwrap();
    assert_eq!(status_of(&app, "reader0@example.net").await, "confirmed");

    app.send_report(&later.mail_from, &dsn(&later, "delayed", "4.2.2"))
        .await
        .unwrap();
    assert_eq!(
        status_of(&app, "reader0@example.net").await,
        "bounced",
        "soft_limit mails reached"
    );
    assert_eq!(status_of(&app, "reader1@example.net").await, "confirmed");
}

#[tokio::test]
async fn an_arf_complaint_unsubscribes_and_suppresses_one_person_and_an_import_is_refused() {
    let (app, update, mails) = sent_update(3, &[]).await;
    let target = &mails[2];

    let reply = app.send_report(COMPLAINTS, &arf(target)).await.unwrap();
    assert_eq!(reply.code().to_string(), "250");

    assert_eq!(status_of(&app, "reader2@example.net").await, "complained");
    for other in ["reader0@example.net", "reader1@example.net"] {
        assert_eq!(status_of(&app, other).await, "confirmed");
    }
    let still_subscribed = count(
        &app,
        "SELECT count(*) FROM subscriptions x JOIN subscribers s ON s.id = x.subscriber_id
         WHERE s.email = 'reader2@example.net' AND x.status <> 'unsubscribed'",
    )
    .await;
    assert_eq!(still_subscribed, 0, "unsubscribed from every list");
    let suppressed: Vec<String> = sqlx::query_scalar("SELECT reason FROM suppressions")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(suppressed, vec!["complained".to_owned()]);
    assert_eq!(
        reports(&app, &update).await[2].1.as_deref(),
        Some("complaint")
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM consent_events WHERE kind = 'complaint'"
        )
        .await,
        1
    );

    let (ok, out, err) = crate::cli::import_into(
        app.database_url(),
        b"email\nreader2@example.net\nnew.reader@example.net\n",
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("imported 1")
            && out.contains("suppressed 1")
            && out.contains("line 2: suppressed: this address reported our mail as spam"),
        "{out}"
    );
    assert_eq!(status_of(&app, "reader2@example.net").await, "complained");
}

#[tokio::test]
async fn a_vacation_auto_reply_changes_nothing() {
    let (app, update, mails) = sent_update(1, &[]).await;
    let target = &mails[0];
    let vacation = format!(
        "From: Reader <{rcpt}>\r\nTo: {verp}\r\nSubject: Out of office: This week\r\n\
         Auto-Submitted: auto-replied\r\nIn-Reply-To: <{mid}>\r\n\r\n\
         I am away until Monday.\r\n",
        rcpt = target.rcpt_to[0],
        verp = target.mail_from,
        mid = message_id(target),
    );
    app.send_report(&target.mail_from, vacation.as_bytes())
        .await
        .unwrap();
    assert_eq!(status_of(&app, "reader0@example.net").await, "confirmed");
    assert_eq!(reports(&app, &update).await[0].1, None);
    let kind: String = sqlx::query_scalar("SELECT kind FROM bounce_reports")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(kind, "auto_reply", "counted, nothing else");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM consent_events WHERE source = 'report'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn hostile_reports_change_nothing_else() {
    let (app, update, mails) =
        sent_update(2, &[("inbound.max_message_bytes", 100_000.into())]).await;

    // Huge: refused with 552, nothing recorded.
    let mut huge = dsn(&mails[0], "failed", "5.1.1");
    huge.extend(std::iter::repeat_n(b"x".repeat(76).into_iter().chain(*b"\r\n"), 2000).flatten());
    let refused = app
        .send_report(&mails[0].mail_from, &huge)
        .await
        .unwrap_err();
    assert_eq!(
        refused.status().map(|c| c.to_string()).as_deref(),
        Some("552"),
        "{refused}"
    );
    assert_eq!(count(&app, "SELECT count(*) FROM bounce_reports").await, 0);

    // Malformed MIME: kept as unknown for staff, nobody touched.
    let junk =
        b"Content-Type: multipart/report; boundary=\"\r\n\r\n--\x00\xff\r\nAction: failed\r\n";
    app.send_report(&mails[0].mail_from, junk).await.unwrap();

    // The token of reader0's mail, carrying the Message-ID of reader1's: the report is not
    // trusted for either.
    let mut forged = dsn(&mails[1], "failed", "5.1.1");
    let text = String::from_utf8(forged.clone()).unwrap().replacen(
        &format!("To: {}", mails[1].mail_from),
        &format!("To: {}", mails[0].mail_from),
        1,
    );
    forged = text.into_bytes();
    app.send_report(&mails[0].mail_from, &forged).await.unwrap();

    // Recipients that are not ours: refused, nothing relayed.
    let other = app
        .send_report("someone@elsewhere.example", b"Subject: hi\r\n\r\nhi\r\n")
        .await
        .unwrap_err();
    assert_eq!(
        other.status().map(|c| c.to_string()).as_deref(),
        Some("550")
    );
    let bad_token = app
        .send_report(
            &format!("bounces+{}@{VERP_DOMAIN}", "a".repeat(29)),
            b"Subject: hi\r\n\r\nhi\r\n",
        )
        .await
        .unwrap_err();
    assert_eq!(
        bad_token.status().map(|c| c.to_string()).as_deref(),
        Some("550")
    );

    for reader in ["reader0@example.net", "reader1@example.net"] {
        assert_eq!(status_of(&app, reader).await, "confirmed");
    }
    assert_eq!(
        reports(&app, &update)
            .await
            .iter()
            .filter(|r| r.1.is_some())
            .count(),
        0
    );
    let kept: Vec<(String, bool, String)> =
        sqlx::query_as("SELECT kind, matched, detail FROM bounce_reports ORDER BY id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert_eq!(kept[1].0, "hard");
    assert!(
        !kept[1].1,
        "a report that contradicts its token stays unmatched"
    );
    assert!(
        kept[1].2.contains("Message-ID of another mail"),
        "{}",
        kept[1].2
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM consent_events WHERE source = 'report'"
        )
        .await,
        0
    );
    assert_eq!(app.smtp.count(), 2, "nothing relayed");
    let token = app.api_token().await;
    let unmatched: serde_json::Value = app
        .api(
            reqwest::Method::GET,
            "/api/v1/bounces?unmatched=true",
            &token,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        unmatched["reports"].as_array().unwrap().len(),
        1,
        "{unmatched}"
    );
}

#[tokio::test]
async fn the_complaint_breaker_pauses_an_update_with_the_reason() {
    let app = spawn_app_with(&overrides(&[
        ("sending.rate_per_second", 4.into()),
        ("sending.burst", 1.into()),
        ("sending.breaker_min_sends", 3.into()),
    ]))
    .await;
    app.seed_confirmed(40, "example.net").await;
    let token = app.api_token().await;
    let update = app.create_and_send(&token, "This week").await;
    let mails = app.smtp.wait_for(4, Duration::from_secs(20)).await;

    app.send_report(COMPLAINTS, &arf(&mails[0])).await.unwrap();

    app.wait_for_update_status(&update, "paused").await;
    let reason: String =
        sqlx::query_scalar("SELECT status_reason FROM updates WHERE id = $1::uuid")
            .bind(&update)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(
        reason.contains("complaint breaker") && reason.contains("1 complaints"),
        "{reason}"
    );
    app.wait_for_no_mail_in_flight(&update).await;
    let sent = app.smtp.count();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(app.smtp.count(), sent, "no mail after the pause");
    assert!(sent < 40);
}

#[tokio::test]
async fn an_arf_report_is_matched_by_the_verp_sender_it_states() {
    let (app, update, mails) = sent_update(2, &[]).await;
    let target = &mails[1];
    // A feedback loop that rewrote the Message-ID and redacted the recipient still states the
    // original envelope sender.
    let report = arf_with(
        target,
        &format!("Original-Mail-From: <{}>\r\n", target.mail_from),
        "rewritten-by-the-provider@fbl.example.com",
    );
    let report = String::from_utf8(report)
        .unwrap()
        .replace(
            &format!("Original-Rcpt-To: <{}>", target.rcpt_to[0]),
            "Original-Rcpt-To: <redacted@>",
        )
        .replace(&format!("To: {}", target.rcpt_to[0]), "To: redacted@");
    app.send_report(COMPLAINTS, report.as_bytes())
        .await
        .unwrap();

    assert_eq!(status_of(&app, "reader1@example.net").await, "complained");
    assert_eq!(status_of(&app, "reader0@example.net").await, "confirmed");
    assert_eq!(
        reports(&app, &update).await[1].1.as_deref(),
        Some("complaint")
    );
}

/// The first line the listener sends on a new connection.
async fn greeting(app: &TestApp) -> (String, tokio::io::BufReader<tokio::net::TcpStream>) {
    use tokio::io::AsyncBufReadExt;
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", app.inbound_port.unwrap()))
        .await
        .unwrap();
    let mut reader = tokio::io::BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await.unwrap();
    (line, reader)
}

#[tokio::test]
async fn the_listener_limits_sessions_per_client_and_closes_silent_ones() {
    use tokio::io::AsyncBufReadExt;
    let app = spawn_app_with(&overrides(&[
        ("inbound.per_ip_per_minute", 2.into()),
        ("inbound.timeout_seconds", 1.into()),
    ]))
    .await;
    let (first, mut silent) = greeting(&app).await;
    assert!(first.starts_with("220"), "{first}");
    let (second, _) = greeting(&app).await;
    assert!(second.starts_with("220"), "{second}");
    let (third, _) = greeting(&app).await;
    assert!(
        third.starts_with("421"),
        "over inbound.per_ip_per_minute: {third}"
    );

    // The first client says nothing: closed after inbound.timeout_seconds.
    let started = std::time::Instant::now();
    let mut line = String::new();
    silent.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("421 4.4.2"), "{line}");
    assert!(started.elapsed() < Duration::from_secs(5));
    line.clear();
    assert_eq!(silent.read_line(&mut line).await.unwrap(), 0, "and closed");
}

#[tokio::test]
async fn the_token_of_one_update_with_the_message_id_of_another_changes_nothing() {
    let (app, first, mails) = sent_update(1, &[]).await;
    let token = app.api_token().await;
    let second = app.create_and_send(&token, "Next week").await;
    let all = app.smtp.wait_for(2, Duration::from_secs(20)).await;
    app.wait_for_queue_to_drain().await;
    let later = all
        .iter()
        .find(|m| m.mail_from != mails[0].mail_from)
        .expect("the second update's mail");

    // The first update's token, a DSN about the second update's mail.
    let report = dsn(later, "failed", "5.1.1");
    app.send_report(&mails[0].mail_from, &report).await.unwrap();

    assert_eq!(status_of(&app, "reader0@example.net").await, "confirmed");
    for update in [&first, &second] {
        assert_eq!(
            reports(&app, update).await[0].1,
            None,
            "no delivery row marked"
        );
    }
    let (matched, detail): (bool, String) =
        sqlx::query_as("SELECT matched, detail FROM bounce_reports")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(
        !matched && detail.contains("Message-ID of another mail"),
        "{detail}"
    );
}

#[tokio::test]
async fn after_a_complaint_only_the_persons_own_new_double_opt_in_brings_them_back() {
    let (app, _, mails) = sent_update(1, &[]).await;
    app.send_report(COMPLAINTS, &arf(&mails[0])).await.unwrap();
    assert_eq!(status_of(&app, "reader0@example.net").await, "complained");

    assert_eq!(app.signup("reader0@example.net").await.status(), 303);
    let received = app.smtp.wait_for(2, Duration::from_secs(20)).await;
    let confirmation = received
        .iter()
        .find(|m| String::from_utf8_lossy(&m.data).contains("/subscriptions/confirm?token="))
        .expect("a confirmation mail");
    assert_eq!(
        status_of(&app, "reader0@example.net").await,
        "complained",
        "a sign-up alone changes nothing"
    );
    assert_eq!(count(&app, "SELECT count(*) FROM suppressions").await, 1);

    let link = crate::helpers::confirmation_link(&confirmation.data);
    let token = link.split("token=").nth(1).unwrap();
    let page = app
        .post_form("/subscriptions/confirm", &format!("token={token}"))
        .await;
    assert_eq!(page.status(), 200);
    assert_eq!(status_of(&app, "reader0@example.net").await, "confirmed");
    assert_eq!(count(&app, "SELECT count(*) FROM suppressions").await, 0);
}

#[tokio::test]
async fn a_confirmation_link_made_before_a_complaint_confirms_nothing() {
    let (app, _, mails) = sent_update(1, &[]).await;
    // The reader asks for another list's confirmation, then reports the update as spam.
    let signup = app
        .post_form(
            "/subscriptions",
            "email=reader0%40example.net&lists=new-york-alliance",
        )
        .await;
    assert_eq!(signup.status(), 303);
    let received = app.smtp.wait_for(2, Duration::from_secs(20)).await;
    let confirmation = received
        .iter()
        .find(|m| String::from_utf8_lossy(&m.data).contains("/subscriptions/confirm?token="))
        .expect("a confirmation mail");
    app.send_report(COMPLAINTS, &arf(&mails[0])).await.unwrap();
    assert_eq!(status_of(&app, "reader0@example.net").await, "complained");

    let link = crate::helpers::confirmation_link(&confirmation.data);
    let token = link.split("token=").nth(1).unwrap();
    app.post_form("/subscriptions/confirm", &format!("token={token}"))
        .await;
    assert_eq!(status_of(&app, "reader0@example.net").await, "complained");
    assert_eq!(count(&app, "SELECT count(*) FROM suppressions").await, 1);
}

#[tokio::test]
async fn erasing_a_person_blanks_their_reports_and_keeps_the_counts() {
    let (app, update, mails) = sent_update(1, &[]).await;
    app.send_report(&mails[0].mail_from, &dsn(&mails[0], "failed", "5.1.1"))
        .await
        .unwrap();
    let id: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM subscribers WHERE email = 'reader0@example.net'")
            .fetch_one(&app.pool)
            .await
            .unwrap();

    assert!(newsletter::store::preferences::erase(&app.pool, id)
        .await
        .unwrap());

    let (kind, raw, message_id, subscriber): (String, String, Option<String>, Option<uuid::Uuid>) =
        sqlx::query_as("SELECT kind, raw, message_id, subscriber_id FROM bounce_reports")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        (kind.as_str(), raw.as_str(), message_id, subscriber),
        ("hard", "", None, None)
    );
    let view = app.update_view(&app.api_token().await, &update).await;
    assert_eq!(view["bounced"], 1, "the update's figures stay true");
}

/// Sends another update to everyone and returns its mail to `rcpt`, once the relay took it
/// and its outcome is recorded.
async fn another_update(app: &TestApp, subject: &str, rcpt: &str) -> ReceivedMail {
    let token = app.api_token().await;
    app.create_and_send(&token, subject).await;
    let ours = |m: &ReceivedMail| {
        m.rcpt_to[0] == rcpt
            && String::from_utf8_lossy(&m.data).contains(&format!("Subject: {subject}"))
    };
    // Each turn waits for one more mail (bounded by wait_for's 20 s).
    let mail = loop {
        let all = app.smtp.messages();
        if let Some(mail) = all.iter().find(|m| ours(m)) {
            break mail.clone();
        }
        app.smtp
            .wait_for(all.len() + 1, Duration::from_secs(20))
            .await;
    };
    app.wait_for_queue_to_drain().await;
    mail
}

/// An ARF abuse report that names only an address: no Message-ID, no envelope sender.
fn arf_naming_only(rcpt: &str) -> Vec<u8> {
    format!(
        "From: feedback@arf.mail.example.com\r\nTo: {COMPLAINTS}\r\nSubject: abuse report\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=feedback-report; boundary=\"A\"\r\n\r\n\
         --A\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n\r\n\
         --A\r\nContent-Type: message/feedback-report\r\n\r\n\
         Feedback-Type: abuse\r\nUser-Agent: Test-FBL/1.0\r\nVersion: 1\r\n\
         Original-Rcpt-To: <{rcpt}>\r\n\r\n--A--\r\n"
    )
    .into_bytes()
}

/// (kind, matched, detail) of every report, oldest first.
async fn kept(app: &TestApp) -> Vec<(String, bool, String)> {
    sqlx::query_as("SELECT kind, matched, detail FROM bounce_reports ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

async fn nothing_changed_for_anyone(app: &TestApp, readers: &[&str]) {
    for reader in readers {
        assert_eq!(status_of(app, reader).await, "confirmed", "{reader}");
    }
    assert_eq!(count(app, "SELECT count(*) FROM suppressions").await, 0);
    assert_eq!(
        count(
            app,
            "SELECT count(*) FROM consent_events WHERE source = 'report'"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            app,
            "SELECT count(*) FROM deliveries WHERE report IS NOT NULL"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn an_arf_naming_only_an_address_changes_nobody_and_is_kept_unmatched_with_the_reason() {
    let (app, _, _) = sent_update(2, &[]).await;

    let reply = app
        .send_report(COMPLAINTS, &arf_naming_only("reader0@example.net"))
        .await
        .expect("the report is taken");
    assert_eq!(reply.code().to_string(), "250");

    nothing_changed_for_anyone(&app, &["reader0@example.net", "reader1@example.net"]).await;
    let kept = kept(&app).await;
    assert_eq!(kept.len(), 1, "{kept:?}");
    let (kind, matched, detail) = &kept[0];
    assert_eq!((kind.as_str(), *matched), ("complaint", false));
    assert!(detail.contains("names only an address"), "{detail}");
}

#[tokio::test]
async fn a_dsn_with_a_message_id_we_never_sent_or_another_persons_changes_nobody() {
    let (app, update, mails) = sent_update(2, &[]).await;
    let host = app.settings.server.base_url.host().to_owned();
    let update = uuid::Uuid::parse_str(&update).unwrap().simple();

    // Our form of Message-ID, for reader0's address, but a subscriber id nobody has.
    let never_sent = format!("update.{update}.{}@{host}", uuid::Uuid::new_v4().simple());
    let forged = dsn_naming(
        COMPLAINTS,
        "reader0@example.net",
        &never_sent,
        "failed",
        "5.1.1",
    );
    app.send_report(COMPLAINTS, &forged).await.unwrap();
    // reader1's address with the Message-ID of reader0's mail.
    let crossed = dsn_naming(
        COMPLAINTS,
        "reader1@example.net",
        &message_id(&mails[0]),
        "failed",
        "5.1.1",
    );
    app.send_report(COMPLAINTS, &crossed).await.unwrap();
    // What anyone holding one of reader0's links can make: their subscriber id (it leads their
    // unsubscribe token) and this update's id (every reader's copy shows it), in our form.
    let reader0: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM subscribers WHERE email = 'reader0@example.net'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let made_up = format!("update.{update}.{}@{host}", reader0.simple());
    let guessed = dsn_naming(
        COMPLAINTS,
        "reader0@example.net",
        &made_up,
        "failed",
        "5.1.1",
    );
    app.send_report(COMPLAINTS, &guessed).await.unwrap();

    nothing_changed_for_anyone(&app, &["reader0@example.net", "reader1@example.net"]).await;
    let kept = kept(&app).await;
    assert_eq!(kept.len(), 3, "{kept:?}");
    assert!(kept.iter().all(|(_, matched, _)| !matched), "{kept:?}");
    assert!(kept[0].2.contains("names no mail we sent"), "{}", kept[0].2);
    assert!(kept[1].2.contains("another recipient"), "{}", kept[1].2);
    assert!(kept[2].2.contains("names no mail we sent"), "{}", kept[2].2);

    // The report of the mail's own server, to its VERP address, still bounces exactly reader1.
    let reply = app
        .send_report(&mails[1].mail_from, &dsn(&mails[1], "failed", "5.1.1"))
        .await
        .unwrap();
    assert_eq!(reply.code().to_string(), "250");
    assert_eq!(status_of(&app, "reader1@example.net").await, "bounced");
    assert_eq!(status_of(&app, "reader0@example.net").await, "confirmed");
}

/// A Mailgun webhook call signed now with a fresh token.
async fn mailgun(app: &TestApp, event_data: serde_json::Value) -> serde_json::Value {
    use hmac::{Hmac, Mac};
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let token = uuid::Uuid::new_v4().simple().to_string();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(MAILGUN_KEY.as_bytes()).unwrap();
    mac.update(format!("{timestamp}{token}").as_bytes());
    let signature: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let body = serde_json::json!({
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": event_data,
    });
    let response = app.post_json("/webhooks/mailgun", &body).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

const MAILGUN_KEY: &str = "mailgun-signing-key-for-bounces";

#[tokio::test]
async fn three_deferred_events_and_a_dsn_for_one_mail_are_one_soft_bounce() {
    let (app, _, mails) = sent_update(
        1,
        &[
            ("bounce.soft_limit", 2.into()),
            ("webhooks.mailgun_signing_key", MAILGUN_KEY.into()),
        ],
    )
    .await;
    let first = &mails[0];
    let second = another_update(&app, "Next week", "reader0@example.net").await;

    for attempt in 1..=3 {
        let answer = mailgun(
            &app,
            serde_json::json!({
                "id": format!("deferred-{attempt}"), "event": "failed", "severity": "temporary",
                "recipient": "reader0@example.net",
                "delivery-status": {"message": "452 4.2.2 Mailbox full", "attempt-no": attempt},
                "message": {"headers": {"message-id": message_id(first)}},
            }),
        )
        .await;
        assert_eq!(answer["recorded"], 1, "{answer}");
    }
    app.send_report(&first.mail_from, &dsn(first, "delayed", "4.2.2"))
        .await
        .unwrap();
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM bounce_reports WHERE kind = 'soft' AND matched"
        )
        .await,
        4,
        "every report kept"
    );
    assert_eq!(
        status_of(&app, "reader0@example.net").await,
        "confirmed",
        "four reports of one mail are one soft bounce (soft_limit 2)"
    );

    app.send_report(&second.mail_from, &dsn(&second, "delayed", "4.2.2"))
        .await
        .unwrap();
    assert_eq!(
        status_of(&app, "reader0@example.net").await,
        "bounced",
        "a second mail makes two"
    );
}

#[tokio::test]
async fn a_later_delivery_clears_the_soft_count() {
    let (app, _, mails) = sent_update(
        1,
        &[
            ("bounce.soft_limit", 2.into()),
            ("webhooks.mailgun_signing_key", MAILGUN_KEY.into()),
        ],
    )
    .await;
    let first = &mails[0];
    let second = another_update(&app, "Next week", "reader0@example.net").await;

    app.send_report(&first.mail_from, &dsn(first, "delayed", "4.2.2"))
        .await
        .unwrap();
    // The provider delivered a mail to the reader since.
    let answer = mailgun(
        &app,
        serde_json::json!({"id": "delivered-1", "event": "delivered",
                           "recipient": "reader0@example.net"}),
    )
    .await;
    assert_eq!(answer["recorded"], 1, "{answer}");
    app.send_report(&second.mail_from, &dsn(&second, "delayed", "4.2.2"))
        .await
        .unwrap();
    assert_eq!(
        status_of(&app, "reader0@example.net").await,
        "confirmed",
        "the delivery cleared the first soft bounce"
    );

    // Our relay takes a later mail and nobody reports it: the second no longer counts either.
    another_update(&app, "The week after", "reader0@example.net").await;
    let fourth = another_update(&app, "A month on", "reader0@example.net").await;
    app.send_report(&fourth.mail_from, &dsn(&fourth, "delayed", "4.2.2"))
        .await
        .unwrap();
    assert_eq!(
        status_of(&app, "reader0@example.net").await,
        "confirmed",
        "the relay's 250 for the third mail, never reported, cleared the second soft bounce"
    );
}

/// A relay's 250 is no proof of delivery: a mail that is itself deferred later clears nothing.
/// (Before, each new mail's 250 cleared the count, so someone whose every weekly mail was
/// deferred never reached `soft_limit`.)
#[tokio::test]
async fn a_reader_whose_every_weekly_mail_is_deferred_is_bounced_at_the_soft_limit() {
    let (app, _, mails) = sent_update(1, &[]).await;
    let mut mail = mails[0].clone();
    for week in 1..=3 {
        assert_eq!(
            status_of(&app, "reader0@example.net").await,
            "confirmed",
            "before the report of week {week}"
        );
        app.send_report(&mail.mail_from, &dsn(&mail, "delayed", "4.4.1"))
            .await
            .unwrap();
        if week < 3 {
            mail = another_update(&app, &format!("Week {}", week + 1), "reader0@example.net").await;
        }
    }
    assert_eq!(
        status_of(&app, "reader0@example.net").await,
        "bounced",
        "three mails deferred, one a week (bounce.soft_limit = 3)"
    );
}

#[tokio::test]
async fn the_third_soft_bounce_on_three_different_mails_bounces_the_reader() {
    let (app, _, mails) = sent_update(1, &[]).await;
    let second = another_update(&app, "Next week", "reader0@example.net").await;
    let third = another_update(&app, "The week after", "reader0@example.net").await;

    for (n, mail) in [&mails[0], &second, &third].into_iter().enumerate() {
        assert_eq!(
            status_of(&app, "reader0@example.net").await,
            "confirmed",
            "after {n} soft bounces"
        );
        app.send_report(&mail.mail_from, &dsn(mail, "delayed", "4.4.1"))
            .await
            .unwrap();
    }
    assert_eq!(status_of(&app, "reader0@example.net").await, "bounced");
}

/// A raw SMTP client of the listener, from a chosen local address.
struct Client {
    io: tokio::io::BufReader<tokio::net::TcpStream>,
}

impl Client {
    async fn connect_from(app: &TestApp, local: &str) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
        let address = format!("127.0.0.1:{}", app.inbound_port.unwrap());
        let stream = tokio::time::timeout(
            Duration::from_secs(10),
            socket.connect(address.parse().unwrap()),
        )
        .await
        .expect("connected in time")
        .unwrap();
        Self {
            io: tokio::io::BufReader::new(stream),
        }
    }

    /// The next reply (all its lines), or "" when the server closed the connection.
    async fn reply(&mut self) -> String {
        use tokio::io::AsyncBufReadExt;
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout(Duration::from_secs(30), self.io.read_line(&mut line))
                .await
                .expect("a reply within 30 s")
                .unwrap_or(0);
            reply.push_str(&line);
            if read == 0 || line.as_bytes().get(3) != Some(&b'-') {
                return reply;
            }
        }
    }

    /// Sends `line` and reads the reply. A write that fails because the server already ended
    /// the session (its `421` may have arrived while we slept) still reads what it said.
    async fn send(&mut self, line: &[u8]) -> String {
        use tokio::io::AsyncWriteExt;
        let io = self.io.get_mut();
        let written = match io.write_all(line).await {
            Ok(()) => io.write_all(b"\r\n").await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        }
        self.reply().await
    }
}

#[tokio::test]
async fn twenty_sessions_from_one_address_kept_alive_cannot_hold_the_listener() {
    let app = spawn_app_with(&[
        ("bounce.return_path_domain", VERP_DOMAIN.into()),
        ("inbound.bind", "127.0.0.1:0".into()),
        ("inbound.complaints_address", COMPLAINTS.into()),
    ])
    .await;

    let mut held = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..20 {
        let mut client = Client::connect_from(&app, "127.0.0.1").await;
        let greeting = client.reply().await;
        if greeting.starts_with("220") {
            held.push(client);
        } else {
            refused.push(greeting);
        }
    }
    assert_eq!(
        held.len(),
        4,
        "inbound.max_sessions_per_ip (4) open at once: {refused:?}"
    );
    assert!(
        refused.iter().all(|r| r.starts_with("421 4.7.0")),
        "{refused:?}"
    );
    for client in &mut held {
        assert!(client.send(b"NOOP").await.starts_with("250"));
    }

    // Another client is served at once, and can hand in a report.
    let mut other = Client::connect_from(&app, "127.0.0.2").await;
    let greeting = other.reply().await;
    assert!(greeting.starts_with("220"), "{greeting}");
    assert!(other.send(b"EHLO mx.example.net").await.starts_with("250"));
    assert!(other.send(b"MAIL FROM:<>").await.starts_with("250"));
    assert!(other
        .send(format!("RCPT TO:<{COMPLAINTS}>").as_bytes())
        .await
        .starts_with("250"));
    assert!(other.send(b"DATA").await.starts_with("354"));
    let reply = other
        .send(b"From: someone@example.net\r\nSubject: hello\r\n\r\nHello.\r\n.")
        .await;
    assert!(reply.starts_with("250"), "{reply}");

    // A session that ends frees its place for its client.
    let mut first = held.remove(0);
    assert!(first.send(b"QUIT").await.starts_with("221"));
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = Client::connect_from(&app, "127.0.0.1").await;
        let greeting = again.reply().await;
        if greeting.starts_with("220") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the place was not freed: {greeting}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_session_ends_after_session_seconds_whatever_it_sends() {
    let app = spawn_app_with(&overrides(&[
        ("inbound.session_seconds", 2.into()),
        ("inbound.timeout_seconds", 60.into()),
    ]))
    .await;
    let mut client = Client::connect_from(&app, "127.0.0.1").await;
    assert!(client.reply().await.starts_with("220"));

    // NOOP and RSET every 100 ms: the session still ends (bounded: 30 s per reply, 300 turns).
    let mut last = String::new();
    for turn in 0..300 {
        last = client
            .send(if turn % 2 == 0 { b"NOOP" } else { b"RSET" })
            .await;
        if !last.starts_with("250") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(last.starts_with("421 4.4.2"), "{last:?}");
    assert_eq!(client.reply().await, "", "and closed");
}

#[tokio::test]
async fn an_over_long_line_is_answered_line_too_long_and_nothing_is_recorded() {
    let app = spawn_app_with(&overrides(&[])).await;
    let mut client = Client::connect_from(&app, "127.0.0.1").await;
    assert!(client.reply().await.starts_with("220"));
    let long_command = format!("EHLO {}", "x".repeat(600));
    assert_eq!(
        client.send(long_command.as_bytes()).await,
        "500 5.5.2 line too long\r\n"
    );
    assert!(client.send(b"EHLO mx.example.net").await.starts_with("250"));
    assert!(client.send(b"MAIL FROM:<>").await.starts_with("250"));
    assert!(client
        .send(format!("RCPT TO:<{COMPLAINTS}>").as_bytes())
        .await
        .starts_with("250"));
    assert!(client.send(b"DATA").await.starts_with("354"));
    let message = format!(
        "From: MAILER-DAEMON@mx.example.net\r\nSubject: x\r\n\r\n{}\r\n.",
        "y".repeat(10_000)
    );
    assert_eq!(
        client.send(message.as_bytes()).await,
        "500 5.5.2 line too long\r\n",
        "not a size complaint"
    );
    assert_eq!(count(&app, "SELECT count(*) FROM bounce_reports").await, 0);
    assert!(client.send(b"QUIT").await.starts_with("221"));
}

/// Hands one short report to the complaints address in an open session; the last reply.
async fn hand_in(client: &mut Client, n: usize) -> String {
    let message = format!(
        "From: MAILER-DAEMON@mx.example.net\r\nSubject: report {n}\r\n\r\nFeedback about flood{n}@example.net\r\n."
    );
    let mail = client.send(b"MAIL FROM:<>").await;
    assert!(mail.starts_with("250"), "{mail}");
    let rcpt = client
        .send(format!("RCPT TO:<{COMPLAINTS}>").as_bytes())
        .await;
    assert!(rcpt.starts_with("250"), "{rcpt}");
    match client.send(b"DATA").await {
        reply if reply.starts_with("354") => client.send(message.as_bytes()).await,
        refused => refused,
    }
}

#[tokio::test]
async fn a_client_handing_in_more_reports_than_its_share_is_deferred_and_another_is_not() {
    let app = spawn_app_with(&overrides(&[(
        "inbound.reports_per_ip_per_minute",
        2.into(),
    )]))
    .await;
    let mut flood = Client::connect_from(&app, "127.0.0.1").await;
    assert!(flood.reply().await.starts_with("220"));
    assert!(flood
        .send(b"EHLO flood.example.net")
        .await
        .starts_with("250"));
    let mut answers = Vec::new();
    for n in 0..4 {
        answers.push(hand_in(&mut flood, n).await);
    }
    assert!(
        answers[..2].iter().all(|a| a.starts_with("250")),
        "{answers:?}"
    );
    assert!(
        answers[2..].iter().all(|a| a.starts_with("451 4.7.1")),
        "{answers:?}"
    );
    assert_eq!(count(&app, "SELECT count(*) FROM bounce_reports").await, 2);
    let mut other = Client::connect_from(&app, "127.0.0.2").await;
    assert!(other.reply().await.starts_with("220"));
    assert!(other.send(b"EHLO mx.example.org").await.starts_with("250"));
    assert!(
        hand_in(&mut other, 9).await.starts_with("250"),
        "another client is served"
    );
    assert_eq!(count(&app, "SELECT count(*) FROM bounce_reports").await, 3);
}
