//! What the worker does with a mail it is given: mails that cannot be built, a configuration
//! that lacks the postal address, Message-IDs, the one-click header, an unsubscribe while mail
//! waits for the rate limit, and a relay that restarted under pooled connections.

use std::time::{Duration, Instant};

use reqwest::Method;

use crate::helpers::{spawn_app, spawn_app_with, spawn_app_without_worker, TestApp};
use crate::smtp_server::{Faults, TestSmtp};

const WAIT: Duration = Duration::from_secs(20);

fn parse(raw: &[u8]) -> mail_parser::Message<'_> {
    mail_parser::MessageParser::default()
        .parse(raw)
        .expect("MIME")
}

/// Polls `sql` (one text or NULL) until it returns a value, or panics after `WAIT`.
async fn wait_for_value(app: &TestApp, sql: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let value: Option<String> = sqlx::query_scalar(sql)
            .fetch_optional(&app.pool)
            .await
            .unwrap()
            .flatten();
        if let Some(value) = value {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing came of: {sql}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn an_update_with_a_template_not_made_for_updates_is_refused_at_create_and_patch() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    for template in ["confirmation", "welcome"] {
        let created = app
            .api(
                Method::POST,
                "/api/v1/updates",
                &token,
                Some(serde_json::json!({
                    "subject": "Wrong template", "lists": ["us-icc-updates"], "template": template,
                })),
            )
            .await;
        assert_eq!(created.status(), 422, "{template}");
        let body: serde_json::Value = created.json().await.unwrap();
        assert!(body["errors"]["template"].is_string(), "{template}: {body}");
    }
    let id = app.create_update(&token, "Right template").await;

    let patched = app
        .api(
            Method::PATCH,
            &format!("/api/v1/updates/{id}"),
            &token,
            Some(serde_json::json!({ "template": "confirmation" })),
        )
        .await;

    assert_eq!(patched.status(), 422);
    let body: serde_json::Value = patched.json().await.unwrap();
    assert!(body["errors"]["template"].is_string(), "{body}");
    assert_eq!(app.update_view(&token, &id).await["template"], "update");
}

#[tokio::test]
async fn a_mail_that_cannot_be_composed_fails_at_once_with_the_reason() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.seed_confirmed(2, "example.org").await;
    let id = app.create_update(&token, "Never composable").await;
    // As an update stored before templates were checked: the confirmation mail's template
    // needs a confirm_url that no update mail has.
    sqlx::query("UPDATE updates SET template = 'confirmation' WHERE id = $1::uuid")
        .bind(&id)
        .execute(&app.pool)
        .await
        .unwrap();

    app.send_now(&token, &id).await;
    app.wait_for_update_status(&id, "sent").await;

    let rows: Vec<(String, i32, String)> = sqlx::query_as(
        "SELECT status, attempts, last_reply FROM deliveries WHERE update_id = $1::uuid",
    )
    .bind(&id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2);
    for (status, attempts, reply) in rows {
        assert_eq!((status.as_str(), attempts), ("failed", 1), "{reply}");
        assert!(
            reply.contains("cannot be composed") && reply.contains("confirm_url"),
            "{reply}"
        );
    }
    assert_eq!(app.smtp.count(), 0);
}

#[tokio::test]
async fn a_worker_without_a_postal_address_holds_update_mail_back_with_the_reason() {
    // The web server, which checks the address before a send starts, has one; the worker,
    // which makes the mail, does not.
    let app = spawn_app_without_worker(&[]).await;
    app.start_worker(&[("mail.postal_address", "".into())]);
    let token = app.api_token().await;
    app.seed_confirmed(1, "example.org").await;

    let id = app.create_and_send(&token, "Without an address").await;

    let reply = wait_for_value(
        &app,
        &format!(
            "SELECT coalesce(last_reply, CASE WHEN status = 'sent' THEN 'SENT' END)
             FROM deliveries WHERE update_id = '{id}'"
        ),
    )
    .await;
    assert!(reply.contains("mail.postal_address"), "{reply}");
    let (status, attempts): (String, i32) =
        sqlx::query_as("SELECT status, attempts FROM deliveries WHERE update_id = $1::uuid")
            .bind(&id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        (status.as_str(), attempts),
        ("queued", 0),
        "held, not failed"
    );
    assert_eq!(app.smtp.count(), 0, "nothing left without the address");
}

#[tokio::test]
async fn confirmation_message_ids_differ_between_installations_and_survive_a_retry() {
    // Two installations (or one reinstalled): each one's first row has id 1.
    let first = spawn_app().await;
    let second = spawn_app().await;
    first.signup("one@example.org").await;
    second.signup("two@example.org").await;
    let one = first.smtp.wait_for(1, WAIT).await.remove(0);
    let two = second.smtp.wait_for(1, WAIT).await.remove(0);
    let id_one = parse(&one.data).message_id().unwrap().to_owned();
    let id_two = parse(&two.data).message_id().unwrap().to_owned();
    assert_ne!(id_one, id_two);

    first.smtp.set_faults(Faults {
        close_before_250_times: vec![("again@example.org".into(), 1)],
        ..Faults::default()
    });
    first.signup("again@example.org").await;
    let delivered = first.smtp.wait_for(2, WAIT).await.remove(1);
    let lost = first.smtp.ambiguous().remove(0);

    let retried = parse(&delivered.data).message_id().unwrap().to_owned();
    assert_eq!(
        parse(&lost.data).message_id().unwrap(),
        retried,
        "a retry of the row carries the same Message-ID"
    );
    assert_ne!(retried, id_one);
    let recorded = wait_for_value(
        &first,
        "SELECT d.message_id FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
         WHERE s.email = 'again@example.org' AND d.status = 'sent'",
    )
    .await;
    assert_eq!(recorded, retried);
}

/// The first update mail sent by an app with this `server.base_url`.
async fn update_mail_with_base_url(base_url: &str) -> Vec<u8> {
    let app = spawn_app_with(&[("server.base_url", base_url.into())]).await;
    let token = app.api_token().await;
    app.seed_confirmed(1, "example.org").await;
    app.create_and_send(&token, "Headers").await;
    app.smtp.wait_for(1, WAIT).await.remove(0).data
}

#[tokio::test]
async fn one_click_unsubscribe_is_offered_only_with_an_https_link() {
    let https = update_mail_with_base_url("https://news.example.org").await;
    let http = update_mail_with_base_url("http://news.example.org").await;

    let https = parse(&https);
    assert!(https
        .header_raw("List-Unsubscribe")
        .unwrap()
        .contains("<https://news.example.org/unsubscribe/"));
    assert_eq!(
        https.header_raw("List-Unsubscribe-Post").unwrap().trim(),
        "List-Unsubscribe=One-Click"
    );
    let http = parse(&http);
    assert!(http
        .header_raw("List-Unsubscribe")
        .unwrap()
        .contains("<http://news.example.org/unsubscribe/"));
    assert!(
        http.header_raw("List-Unsubscribe-Post").is_none(),
        "RFC 8058 needs https"
    );
}

#[tokio::test]
async fn an_unsubscribe_while_mail_waits_for_the_rate_limit_stops_that_mail() {
    // One mail a second, one at once: the k-th permit comes no earlier than k-1 seconds
    // after the send started, whatever the machine's speed.
    let app = spawn_app_with(&[
        ("sending.rate_per_second", 1.into()),
        ("sending.burst", 1.into()),
    ])
    .await;
    let token = app.api_token().await;
    let people = app.seed_confirmed(5, "example.org").await;
    let id = app.create_update(&token, "Rate-limited").await;

    let started = Instant::now();
    app.send_now(&token, &id).await;
    let first = app.smtp.wait_for(1, WAIT).await.remove(0).rcpt_to[0].clone();
    let others: Vec<String> = people
        .iter()
        .map(|(_, email)| email.clone())
        .filter(|email| *email != first)
        .collect();
    sqlx::query(
        "WITH gone AS (
             UPDATE subscribers SET status = 'unsubscribed', unsubscribed_at = now()
             WHERE email = ANY($1) RETURNING id)
         UPDATE subscriptions SET status = 'unsubscribed' WHERE subscriber_id IN (SELECT id FROM gone)",
    )
    .bind(&others)
    .execute(&app.pool)
    .await
    .unwrap();
    let unsubscribed_after = started.elapsed();
    app.wait_for_update_status(&id, "sent").await;

    // A mail to one of them left only if its last look at the recipient came before the
    // unsubscribe, so its permit too: of the permits granted by then, one was the first mail's.
    let could_have_left = unsubscribed_after.as_secs() as usize;
    let received = app
        .smtp
        .messages()
        .iter()
        .filter(|m| others.contains(&m.rcpt_to[0]))
        .count();
    assert!(
        received <= could_have_left,
        "{received} mails reached people who unsubscribed {unsubscribed_after:?} after the send \
         started, while they waited for the rate limit"
    );
    let skipped: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM deliveries WHERE update_id = $1::uuid AND status = 'skipped'",
    )
    .bind(&id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(skipped as usize + received, others.len());
}

#[tokio::test]
async fn after_the_relay_restarts_the_next_mail_goes_out_at_once_on_a_new_connection() {
    let app = spawn_app().await;
    app.signup("before@example.org").await;
    app.smtp.wait_for(1, WAIT).await;
    let port = app.smtp.port();
    app.smtp.stop().await;
    let relay = TestSmtp::start_on(port)
        .await
        .expect("the relay's port again");

    app.signup("after@example.org").await;

    relay.wait_for(1, WAIT).await;
    let attempts = wait_for_value(
        &app,
        "SELECT d.attempts::text FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
         WHERE s.email = 'after@example.org' AND d.status = 'sent'",
    )
    .await;
    assert_eq!(
        attempts, "1",
        "delivered on the first attempt, never deferred"
    );
}

#[tokio::test]
async fn a_pooled_connection_the_relay_closed_with_421_while_idle_does_not_defer_the_next_mail() {
    let app = spawn_app().await;
    app.signup("before@example.org").await;
    app.smtp.wait_for(1, WAIT).await;
    // The relay says goodbye (421) to its idle clients; the line waits, unread, in the socket.
    app.smtp.close_idle_connections();
    // Longer idle than the pool's check threshold (2 s): waiting longer only makes it surer.
    tokio::time::sleep(Duration::from_millis(2_500)).await;

    app.signup("after@example.org").await;

    app.smtp.wait_for(2, WAIT).await;
    let attempts = wait_for_value(
        &app,
        "SELECT d.attempts::text FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
         WHERE s.email = 'after@example.org' AND d.status = 'sent'",
    )
    .await;
    assert_eq!(
        attempts, "1",
        "the idle connection was checked, not used blindly"
    );
}
