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
    let id = app.create_and_send(&token, "Streaming").await;

    // The stalled mail's relay answers only after 120 s and our timeout is 30 s: everyone
    // else must be served while it still hangs, however slow this machine is.
    let mails = app.smtp.wait_for(200, Duration::from_secs(25)).await;
    assert!(mails
        .iter()
        .all(|m| m.rcpt_to[0].ends_with("@fine.example")));
    // Rows are written in subscriber-id order (random here): when the stalled recipient comes
    // after everyone else, its row is written by the claim after the others' last, which may
    // come a moment after their mails arrived (CI failed here once, the row not yet written).
    // Its relay then holds it for our whole 30 s timeout, so it shows "sending" for 30 s from
    // its claim: polled every 25 ms, that is what the first sight of it must be.
    app.wait_for_delivery_rows(&id, 201).await;
    let stalled = app
        .delivery_statuses(&id)
        .await
        .into_iter()
        .find(|(email, _, _)| email.ends_with("@stalled.example"))
        .map(|(_, status, _)| status)
        .expect("the stalled recipient has a row");
    assert_eq!(
        stalled, "sending",
        "the stalled mail is still waiting for its relay"
    );
}

/// A mail whose lease ran out while it waited in its worker's queue (behind a slow relay here;
/// after a database outage longer than the lease in the restart test) may already have been
/// taken over by a claim: its worker must not send it as well. Before the lease check, the
/// worker's next claim took back the expired rows still in its own queue and in flight, and
/// both copies went out.
#[tokio::test]
async fn a_mail_whose_lease_ran_out_in_the_queue_is_not_sent_twice() {
    let _turn = crate::exclusive().await;
    const RECIPIENTS: usize = 24;
    let app = spawn_app_with(&[
        ("worker.batch_size", 20.into()),
        ("worker.lease_seconds", 3.into()),
        ("sending.concurrency", 1.into()),
        ("smtp.pool_size", 1.into()),
        ("smtp.timeout_seconds", 2.into()),
    ])
    .await;
    app.seed_confirmed_from(0, RECIPIENTS as i64, "slow.example")
        .await;
    // about half a second a mail, one at a time: the 20 claimed together need about 10 s,
    // more than three times the lease, however fast this machine is
    app.smtp.set_faults(Faults {
        stall: Some(Duration::from_millis(100)),
        ..Faults::default()
    });
    let token = app.api_token().await;
    let id = app.create_and_send(&token, "Slow relay").await;
    // about 8 s here: each claim sends the three or four mails that fit in half the lease and
    // hands the rest back; the limit leaves room for a much slower machine
    app.wait_for_update_status_within(&id, "sent", Duration::from_secs(120))
        .await;

    let mut received = app.smtp.recipients_sorted();
    let total = received.len();
    received.dedup();
    assert_eq!(received.len(), RECIPIENTS, "every recipient got the update");
    assert_eq!(total, RECIPIENTS, "nobody got it twice");
    let rows = app.delivery_statuses(&id).await;
    assert!(
        rows.iter().all(|(_, status, _)| status == "sent"),
        "{rows:?}"
    );
}
