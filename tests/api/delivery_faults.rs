//! How the engine handles what relays do wrong.

use std::time::Duration;

use reqwest::Method;

use crate::helpers::spawn_app;
use crate::smtp_server::Faults;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_temporary_failure_is_retried_and_delivered_once() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.seed_confirmed(3, "example.org").await;
    app.smtp.set_faults(Faults {
        rcpt_transient_times: vec![("reader1@".into(), 1, 451, "4.3.0 try again later".into())],
        ..Faults::default()
    });

    let id = app.create_and_send(&token, "Faults").await;
    app.wait_for_update_status(&id, "sent").await;

    let mails = app.smtp.messages();
    assert_eq!(mails.len(), 3);
    assert_eq!(
        mails
            .iter()
            .filter(|m| m.rcpt_to[0] == "reader1@example.org")
            .count(),
        1
    );
    let statuses = app.delivery_statuses(&id).await;
    assert_eq!(
        statuses[1],
        ("reader1@example.org".into(), "sent".into(), 2)
    );
}

#[tokio::test]
async fn no_such_user_fails_once_marks_the_subscriber_bounced_and_is_not_retried() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.seed_confirmed(3, "example.org").await;
    app.smtp.set_faults(Faults {
        rcpt: vec![("reader2@".into(), 550, "5.1.1 no such user".into())],
        ..Faults::default()
    });

    let id = app.create_and_send(&token, "Faults").await;
    app.wait_for_update_status(&id, "sent").await;

    let statuses = app.delivery_statuses(&id).await;
    assert_eq!(
        statuses[2],
        ("reader2@example.org".into(), "failed".into(), 1)
    );
    assert_eq!(
        app.subscriber_status("reader2@example.org")
            .await
            .as_deref(),
        Some("bounced")
    );
    let failed = app
        .api(
            Method::GET,
            &format!("/api/v1/updates/{id}/deliveries?status=failed"),
            &token,
            None,
        )
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(failed["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(failed["deliveries"][0]["email"], "reader2@example.org");
    assert!(failed["deliveries"][0]["last_reply"]
        .as_str()
        .unwrap()
        .contains("5.1.1"));

    let retry = app
        .api(
            Method::POST,
            &format!("/api/v1/updates/{id}/retry-failed"),
            &token,
            None,
        )
        .await;
    assert_eq!(
        retry.json::<serde_json::Value>().await.unwrap()["requeued"],
        0,
        "a bounced address is not retried"
    );
    let next = app.create_and_send(&token, "Faults").await;
    app.wait_for_update_status(&next, "sent").await;
    assert_eq!(
        app.delivery_statuses(&next).await.len(),
        2,
        "never mailed again"
    );
}

#[tokio::test]
async fn a_policy_rejection_fails_the_mail_but_leaves_the_subscriber_alone() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.seed_confirmed(2, "example.org").await;
    app.smtp.set_faults(Faults {
        data_reply: vec![(
            "reader0@".into(),
            550,
            "5.7.26 unauthenticated mail is prohibited".into(),
        )],
        ..Faults::default()
    });

    let id = app.create_and_send(&token, "Faults").await;
    app.wait_for_update_status(&id, "sent").await;

    let statuses = app.delivery_statuses(&id).await;
    assert_eq!(
        statuses[0],
        ("reader0@example.org".into(), "failed".into(), 1)
    );
    assert_eq!(
        app.subscriber_status("reader0@example.org")
            .await
            .as_deref(),
        Some("confirmed")
    );
}

#[tokio::test]
async fn a_connection_cut_in_the_middle_of_data_is_retried_and_delivered_once() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.seed_confirmed(3, "example.org").await;
    app.smtp.set_faults(Faults {
        cut_in_data_times: vec![("reader1@".into(), 1)],
        ..Faults::default()
    });

    let id = app.create_and_send(&token, "Faults").await;
    app.wait_for_update_status(&id, "sent").await;

    assert_eq!(
        app.smtp
            .messages()
            .iter()
            .filter(|m| m.rcpt_to[0] == "reader1@example.org")
            .count(),
        1
    );
    let statuses = app.delivery_statuses(&id).await;
    assert_eq!(
        statuses[1],
        ("reader1@example.org".into(), "sent".into(), 2)
    );
}

#[tokio::test]
async fn a_mail_taken_without_a_reply_is_recorded_as_ambiguous_and_retried() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.seed_confirmed(2, "example.org").await;
    app.smtp.set_faults(Faults {
        close_before_250_times: vec![("reader0@".into(), 1)],
        ..Faults::default()
    });

    let id = app.create_and_send(&token, "Faults").await;
    app.wait_for_update_status(&id, "sent").await;

    assert_eq!(
        app.smtp.ambiguous().len(),
        1,
        "the relay had the body once without answering"
    );
    let (status, ambiguous, attempts): (String, bool, i32) = sqlx::query_as(
        "SELECT d.status, d.ambiguous, d.attempts FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
         WHERE s.email = 'reader0@example.org'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((status.as_str(), ambiguous, attempts), ("sent", true, 2));
}

#[tokio::test]
async fn a_relay_down_for_a_while_delays_the_update_and_then_everything_is_delivered() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.seed_confirmed(30, "example.org").await;
    let port = app.smtp.port();
    app.smtp.stop().await;

    let id = app.create_and_send(&token, "Faults").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let deferred: i64 =
        sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE status = 'deferred'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(deferred > 0, "mails wait while the relay is down");
    let relay = crate::smtp_server::TestSmtp::start_on(port).await.unwrap();

    app.wait_for_update_status(&id, "sent").await;
    let mails = relay.wait_for(30, WAIT).await;
    let mut recipients: Vec<String> = mails.iter().map(|m| m.rcpt_to[0].clone()).collect();
    recipients.sort();
    recipients.dedup();
    assert_eq!(
        (mails.len(), recipients.len()),
        (30, 30),
        "all delivered, none twice"
    );
}

#[tokio::test]
async fn a_mail_that_cannot_go_out_before_give_up_after_hours_is_marked_failed() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.seed_confirmed(1, "example.org").await;
    app.smtp.set_faults(Faults {
        rcpt: vec![("reader0@".into(), 451, "4.3.0 mailbox busy".into())],
        ..Faults::default()
    });
    let id = app.create_and_send(&token, "Faults").await;
    app.wait_for_delivery_rows(&id, 1).await;
    // The row has been waiting longer than sending.give_up_after_hours (72).
    sqlx::query("UPDATE deliveries SET created_at = now() - interval '73 hours'")
        .execute(&app.pool)
        .await
        .unwrap();

    app.wait_for_update_status(&id, "sent").await;

    let (status, reply): (String, String) =
        sqlx::query_as("SELECT status, last_reply FROM deliveries")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(status, "failed");
    assert!(
        reply.contains("gave up") && reply.contains("4.3.0"),
        "{reply}"
    );
    assert_eq!(
        app.subscriber_status("reader0@example.org")
            .await
            .as_deref(),
        Some("confirmed")
    );
}

#[tokio::test]
async fn sending_twice_with_one_idempotency_key_sends_once() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.seed_confirmed(3, "example.org").await;
    let id = app.create_update(&token, "Once").await;
    for _ in 0..2 {
        let response = app
            .http
            .post(app.url(&format!("/api/v1/updates/{id}/send")))
            .bearer_auth(&token)
            .header("idempotency-key", "send-1")
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "the repeat gets the first answer, not a 409"
        );
    }
    app.wait_for_update_status(&id, "sent").await;
    assert_eq!(app.smtp.count(), 3);
}

/// Sends an update to `n` readers with `faults` on the relay until `clear_after`, then a healthy
/// relay; returns the update id once it is sent.
async fn through_faults(
    app: &crate::helpers::TestApp,
    n: i64,
    faults: Faults,
    clear_after: Duration,
) -> String {
    let token = app.api_token().await;
    app.seed_confirmed(n, "example.org").await;
    app.smtp.set_faults(faults);
    let id = app.create_and_send(&token, "Faults").await;
    tokio::time::sleep(clear_after).await;
    app.smtp.set_faults(Faults::default());
    app.wait_for_update_status(&id, "sent").await;
    id
}

#[tokio::test]
async fn a_421_greeting_defers_everything_until_the_relay_accepts_again() {
    let app = spawn_app().await;
    let faults = Faults {
        greeting: Some((421, "4.3.2 service not available".into())),
        ..Faults::default()
    };
    let id = through_faults(&app, 5, faults, Duration::from_millis(800)).await;
    let statuses = app.delivery_statuses(&id).await;
    assert!(
        statuses
            .iter()
            .all(|(_, s, attempts)| s == "sent" && *attempts >= 2),
        "{statuses:?}"
    );
    assert_eq!(app.smtp.count(), 5);
}

#[tokio::test]
async fn a_452_on_rcpt_is_retried_and_a_552_after_data_fails_without_a_bounce() {
    let app = spawn_app().await;
    let faults = Faults {
        rcpt_transient_times: vec![("reader1@".into(), 2, 452, "4.2.2 mailbox full".into())],
        data_reply: vec![(
            "reader2@".into(),
            552,
            "5.3.4 message too big for system".into(),
        )],
        ..Faults::default()
    };
    let token = app.api_token().await;
    app.seed_confirmed(3, "example.org").await;
    app.smtp.set_faults(faults);
    let id = app.create_and_send(&token, "Faults").await;
    app.wait_for_update_status(&id, "sent").await;

    let statuses = app.delivery_statuses(&id).await;
    assert_eq!(
        statuses[1],
        ("reader1@example.org".into(), "sent".into(), 3)
    );
    assert_eq!(
        statuses[2],
        ("reader2@example.org".into(), "failed".into(), 1)
    );
    assert_eq!(
        app.subscriber_status("reader2@example.org")
            .await
            .as_deref(),
        Some("confirmed")
    );
}

#[tokio::test]
async fn a_relay_that_stalls_past_the_timeout_is_given_up_on_and_retried() {
    let app = crate::helpers::spawn_app_with(&[("smtp.timeout_seconds", 1.into())]).await;
    let faults = Faults {
        stall: Some(Duration::from_millis(1500)),
        ..Faults::default()
    };
    let id = through_faults(&app, 2, faults, Duration::from_millis(2500)).await;

    let replies: Vec<(String, i32)> =
        sqlx::query_as("SELECT status, attempts FROM deliveries WHERE update_id = $1::uuid")
            .bind(&id)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert!(
        replies.iter().all(|(s, a)| s == "sent" && *a >= 2),
        "{replies:?}"
    );
    assert_eq!(
        app.smtp.recipients_sorted(),
        ["reader0@example.org", "reader1@example.org"],
        "each delivered once"
    );
}

/// Waits until every delivery of the update was tried at least `attempts` times and none is in
/// flight; returns (status, attempts, last reply) by subscriber e-mail.
async fn wait_for_attempts(
    app: &crate::helpers::TestApp,
    id: &str,
    attempts: i32,
) -> Vec<(String, i32, String)> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let rows: Vec<(String, i32, Option<String>)> = sqlx::query_as(
            "SELECT d.status, d.attempts, d.last_reply FROM deliveries d
             JOIN subscribers s ON s.id = d.subscriber_id WHERE d.update_id = $1::uuid ORDER BY s.email",
        )
        .bind(id)
        .fetch_all(&app.pool)
        .await
        .unwrap();
        if rows
            .iter()
            .all(|(s, a, _)| s != "sending" && *a >= attempts)
        {
            return rows
                .into_iter()
                .map(|(s, a, r)| (s, a, r.unwrap_or_default()))
                .collect();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "deliveries not tried {attempts} times: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// An update to 3 readers, sent through a relay that advertises STARTTLS and refuses it, with
/// `tls=<mode>` in `smtp.url`; returns the app and the update id.
async fn update_through_a_relay_refusing_starttls(mode: &str) -> (crate::helpers::TestApp, String) {
    let smtp = crate::smtp_server::TestSmtp::start().await;
    smtp.set_faults(Faults {
        refuse_starttls: true,
        ..Faults::default()
    });
    let url = format!("{}?tls={mode}", smtp.url());
    let app = crate::helpers::spawn_app_on(smtp, &[("smtp.url", url.into())]).await;
    let token = app.api_token().await;
    app.seed_confirmed(3, "example.org").await;
    let id = app.create_and_send(&token, "Faults").await;
    (app, id)
}

#[tokio::test]
async fn with_tls_required_a_relay_that_refuses_starttls_gets_nothing_in_the_clear() {
    let (app, id) = update_through_a_relay_refusing_starttls("required").await;
    let rows = wait_for_attempts(&app, &id, 2).await;

    assert_eq!(app.smtp.count(), 0, "no mail went out without TLS");
    for (status, _, reply) in &rows {
        assert_eq!(status, "deferred", "{rows:?}");
        assert!(
            reply.contains("454") || reply.contains("STARTTLS"),
            "{rows:?}"
        );
    }
    for n in 0..3 {
        assert_eq!(
            app.subscriber_status(&format!("reader{n}@example.org"))
                .await
                .as_deref(),
            Some("confirmed")
        );
    }
}

#[tokio::test]
async fn with_opportunistic_tls_a_refused_starttls_falls_back_to_a_plain_connection() {
    let (app, id) = update_through_a_relay_refusing_starttls("opportunistic").await;
    app.wait_for_update_status(&id, "sent").await;

    assert_eq!(app.smtp.count(), 3);
    assert!(
        app.delivery_statuses(&id)
            .await
            .iter()
            .all(|(_, s, attempts)| s == "sent" && *attempts == 1),
        "sent at the first attempt"
    );
}

#[tokio::test]
async fn a_relay_that_refuses_auth_defers_the_mail_and_fails_or_bounces_nobody() {
    let smtp = crate::smtp_server::TestSmtp::start().await;
    smtp.set_faults(Faults {
        require_auth: Some(("newsletter".into(), "s3cret pass".into())),
        refuse_auth_times: 4,
        ..Faults::default()
    });
    let url = format!("smtp://newsletter:s3cret%20pass@127.0.0.1:{}", smtp.port());
    let app = crate::helpers::spawn_app_on(smtp, &[("smtp.url", url.into())]).await;
    let token = app.api_token().await;
    app.seed_confirmed(3, "example.org").await;

    let id = app.create_and_send(&token, "Faults").await;
    app.wait_for_update_status(&id, "sent").await;

    let mails = app.smtp.messages();
    assert_eq!(mails.len(), 3, "each delivered once");
    assert!(mails
        .iter()
        .all(|m| m.authenticated_as.as_deref() == Some("newsletter")));
    let statuses = app.delivery_statuses(&id).await;
    assert!(statuses.iter().all(|(_, s, _)| s == "sent"), "{statuses:?}");
    assert!(
        statuses.iter().any(|(_, _, attempts)| *attempts >= 2),
        "the refusals deferred some mail: {statuses:?}"
    );
    for (email, _, _) in &statuses {
        assert_eq!(
            app.subscriber_status(email).await.as_deref(),
            Some("confirmed")
        );
    }
}
