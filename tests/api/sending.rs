//! What the worker does with a mail it is given.

use std::time::Duration;

use crate::helpers::{spawn_app, spawn_app_with, TestApp};
use crate::smtp_server::TestSmtp;

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
