//! Rate limits hold at the moment of sending; a throttled domain slows down without bouncing;
//! the circuit breaker pauses an update that policy refusals pile up on.
//!
//! The limiter's own decisions are checked on a controlled clock (`worker::throttle`'s unit
//! tests). Here, end to end, only bounds that a slow or busy machine cannot break are asserted:
//! mails arrive at the relay after the limiter let them go, so the time from "send" to the last
//! arrival can only grow under load, never shrink below what the rate allows. Counting arrivals
//! in a one-second window cannot be such a bound: mails released over two seconds can bunch up
//! on their way to the relay.

use std::time::{Duration, Instant};

use crate::helpers::spawn_app_with;
use crate::smtp_server::Faults;

const WAIT: Duration = Duration::from_secs(60);

/// The shortest time in which a limiter of `rate` per second that starts with a full `burst`
/// can let `mails` go: the first `burst` at once, then one each `1 / rate` seconds.
pub fn least_time(mails: u32, rate: u32, burst: u32) -> Duration {
    Duration::from_secs_f64(f64::from(mails.saturating_sub(burst + 1)) / f64::from(rate))
}

/// The latest of `times`, counted from `start`.
pub fn last_after(times: impl IntoIterator<Item = Instant>, start: Instant) -> Duration {
    times.into_iter().max().expect("some mail") - start
}

#[tokio::test]
async fn with_a_rate_of_50_and_a_burst_of_10_500_mails_take_at_least_9_8_seconds() {
    let _turn = crate::exclusive().await;
    let app = spawn_app_with(&[
        ("sending.rate_per_second", 50.into()),
        ("sending.burst", 10.into()),
        ("smtp.pool_size", 16.into()),
    ])
    .await;
    let token = app.api_token().await;
    app.seed_confirmed(500, "example.org").await;

    let start = Instant::now();
    let id = app.create_and_send(&token, "Rated").await;
    let mails = app.smtp.wait_for(500, WAIT).await;
    app.wait_for_update_status(&id, "sent").await;

    let took = last_after(mails.iter().map(|m| m.started_at), start);
    println!("500 mails at 50/s + burst 10: the last arrived after {took:?}");
    assert!(took >= least_time(500, 50, 10), "too fast: {took:?}");
}

#[tokio::test]
async fn a_domain_limit_holds_while_other_domains_go_faster() {
    let _turn = crate::exclusive().await;
    let limits = "v = { \"slow.example\" = 5 }"
        .parse::<toml::Table>()
        .unwrap()["v"]
        .clone();
    let app = spawn_app_with(&[("sending.domain_limits", limits)]).await;
    let token = app.api_token().await;
    app.seed_confirmed_from(0, 20, "slow.example").await;
    app.seed_confirmed_from(100, 200, "fast.example").await;

    let start = Instant::now();
    let id = app.create_and_send(&token, "Rated").await;
    let mails = app.smtp.wait_for(220, WAIT).await;
    app.wait_for_update_status(&id, "sent").await;

    let at = |domain: &str| -> Vec<Instant> {
        mails
            .iter()
            .filter(|m| m.rcpt_to[0].ends_with(domain))
            .map(|m| m.started_at)
            .collect()
    };
    let (slow, fast) = (at("@slow.example"), at("@fast.example"));
    assert_eq!((slow.len(), fast.len()), (20, 200));
    let (last_slow, last_fast) = (last_after(slow, start), last_after(fast, start));
    println!("slow.example done after {last_slow:?}, fast.example after {last_fast:?}");
    assert!(
        last_slow >= least_time(20, 5, 5),
        "slow.example (5/s + burst 5) was too fast: {last_slow:?}"
    );
    assert!(
        last_fast < last_slow,
        "fast.example is not held back by slow.example"
    );
    let statuses = app.delivery_statuses(&id).await;
    assert!(statuses.iter().all(|(_, s, _)| s == "sent"));
}

#[tokio::test]
async fn a_throttle_reply_slows_that_domain_down_and_bounces_nobody() {
    let _turn = crate::exclusive().await;
    let app = spawn_app_with(&[]).await;
    let token = app.api_token().await;
    app.seed_confirmed_from(0, 5, "throttled.example").await;
    app.seed_confirmed_from(10, 20, "fine.example").await;
    app.smtp.set_faults(Faults {
        rcpt: vec![(
            "@throttled.example".into(),
            421,
            "4.7.28 rate limited, try later".into(),
        )],
        ..Faults::default()
    });

    app.create_and_send(&token, "Rated").await;
    app.smtp.wait_for(20, WAIT).await;
    app.wait_for_queue_to_drain().await;

    let rows: Vec<(String, String, f64)> = sqlx::query_as(
        "SELECT s.email, d.status, extract(epoch FROM d.next_attempt_at - now())::float8
         FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
         WHERE s.email LIKE '%@throttled.example' ORDER BY s.email",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 5);
    for (email, status, wait) in &rows {
        assert!(
            status == "deferred" || status == "queued",
            "{email}: {status}"
        );
        assert!(
            *wait > 10.0,
            "{email} retries only after the slow-down ({wait:.1} s)"
        );
        assert_eq!(
            app.subscriber_status(email).await.as_deref(),
            Some("confirmed")
        );
    }
    assert!(app
        .smtp
        .messages()
        .iter()
        .all(|m| m.rcpt_to[0].ends_with("@fine.example")));
}

#[tokio::test]
async fn policy_refusals_trip_the_circuit_breaker_which_pauses_the_update_with_a_reason() {
    let _turn = crate::exclusive().await;
    let app = spawn_app_with(&[
        ("sending.breaker_min_sends", 10.into()),
        ("sending.breaker_percent", 20.into()),
        ("sending.concurrency", 2.into()),
        ("worker.batch_size", 5.into()),
    ])
    .await;
    let token = app.api_token().await;
    app.seed_confirmed(200, "example.org").await;
    app.smtp.set_faults(Faults {
        data_reply: vec![(
            "@example.org".into(),
            550,
            "5.7.1 message refused as spam".into(),
        )],
        ..Faults::default()
    });

    let id = app.create_and_send(&token, "Rated").await;
    app.wait_for_update_status(&id, "paused").await;
    app.wait_for_no_mail_in_flight(&id).await;

    let view = app.update_view(&token, &id).await;
    let reason = view["status_reason"].as_str().unwrap();
    assert!(
        reason.contains("circuit breaker") && reason.contains("5.7.1"),
        "{reason}"
    );
    let failed = view["counts"]["failed"].as_i64().unwrap();
    assert!(
        (10..200).contains(&failed),
        "stopped early: {failed} failed"
    );
    let bounced: i64 =
        sqlx::query_scalar("SELECT count(*) FROM subscribers WHERE status <> 'confirmed'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(bounced, 0, "policy refusals suppress nobody");
}
