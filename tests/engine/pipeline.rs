//! The sending pipeline streams: no batch waits for its slowest mail, so one recipient whose
//! relay stalls holds only its own slot, and the others go out meanwhile.

use std::time::Duration;

use crate::helpers::spawn_app_with;
use crate::smtp_server::Faults;

#[tokio::test]
async fn one_stalled_recipient_does_not_hold_back_the_others() {
    let _turn = crate::exclusive().await;
    let app = spawn_app_with(&[
        ("worker.batch_size", 10.into()),
        ("sending.concurrency", 4.into()),
        ("smtp.pool_size", 4.into()),
        ("smtp.timeout_seconds", 30.into()),
        ("worker.lease_seconds", 60.into()),
    ])
    .await;
    app.seed_confirmed_from(0, 1, "stalled.example").await;
    app.seed_confirmed_from(100, 200, "fine.example").await;
    app.smtp.set_faults(Faults {
        stall_rcpt: vec![("@stalled.example".into(), Duration::from_secs(120))],
        ..Faults::default()
    });
    let token = app.api_token().await;
    app.create_and_send(&token, "Streaming").await;

    // The stalled mail's relay answers only after 120 s and our timeout is 30 s: everyone
    // else must be served while it still hangs, however slow this machine is.
    let mails = app.smtp.wait_for(200, Duration::from_secs(25)).await;
    assert!(mails
        .iter()
        .all(|m| m.rcpt_to[0].ends_with("@fine.example")));
    let stalled: String = sqlx::query_scalar(
        "SELECT d.status FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
         WHERE s.email LIKE '%@stalled.example'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        stalled, "sending",
        "the stalled mail is still waiting for its relay"
    );
}
