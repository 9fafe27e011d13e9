//! What the worker does with a mail it is given.

use std::time::Duration;

use crate::helpers::{spawn_app, TestApp};
use crate::smtp_server::TestSmtp;

const WAIT: Duration = Duration::from_secs(20);

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
