//! One mailbox, one subscriber: every spelling of an address (an IDN's U-label or A-label, a
//! quoted local part equal to a dot-atom, any case) is the same person at sign-up, in JSON,
//! at import, on the envelope and in the erasure hash; addresses no mail can be built for are
//! refused where they enter; stored addresses from before are merged by a data migration.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{confirmation_link, spawn_app, spawn_app_with, TestDatabase};
use crate::smtp_server::Faults;

const WAIT: Duration = Duration::from_secs(10);

async fn confirm_from(app: &crate::helpers::TestApp, mail: &[u8]) {
    let link = confirmation_link(mail);
    let token = link.split("token=").nth(1).unwrap();
    let page = app
        .post_form("/subscriptions/confirm", &format!("token={token}"))
        .await;
    assert_eq!(page.status(), 200);
}

#[tokio::test]
async fn two_spellings_of_one_mailbox_are_one_subscriber_who_gets_each_update_once() {
    let app = spawn_app().await;
    assert_eq!(app.signup("Ann.Doe@example.org").await.status(), 303);
    assert_eq!(app.signup("ida@bücher.example").await.status(), 303);
    let mails = app.smtp.wait_for(2, WAIT).await;
    for mail in &mails {
        confirm_from(&app, &mail.data).await;
    }
    // The other spellings, by form and by JSON, once everyone is confirmed.
    assert_eq!(app.signup("\"ann.doe\"@example.org").await.status(), 303);
    let json = app
        .post_json(
            "/subscriptions",
            &json!({"email": "IDA@xn--bcher-kva.example"}),
        )
        .await;
    assert_eq!(json.status(), 202);
    let people: Vec<(String, String)> =
        sqlx::query_as("SELECT email, status FROM subscribers ORDER BY email")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        people,
        [
            ("Ann.Doe@example.org".into(), "confirmed".into()),
            ("ida@xn--bcher-kva.example".into(), "confirmed".into()),
        ]
    );

    let token = app.api_token().await;
    let id = app.create_and_send(&token, "Once each").await;
    app.wait_for_update_status(&id, "sent").await;
    let updates: Vec<Vec<String>> = app
        .smtp
        .messages()
        .into_iter()
        .filter(|m| String::from_utf8_lossy(&m.data).contains("Subject: Once each"))
        .map(|m| m.rcpt_to)
        .collect();
    assert_eq!(updates.len(), 2, "one mail per mailbox: {updates:?}");
}

#[tokio::test]
async fn an_international_domain_goes_on_the_envelope_as_its_a_label() {
    let app = spawn_app().await;
    app.smtp.set_faults(Faults {
        no_smtputf8: true,
        ..Faults::default()
    });
    assert_eq!(app.signup("idn5@Bücher.example").await.status(), 303);
    let mail = app.smtp.wait_for(1, WAIT).await.remove(0);
    assert_eq!(mail.rcpt_to, ["idn5@xn--bcher-kva.example"]);
    app.wait_for_queue_to_drain().await;
    let status: String = sqlx::query_scalar("SELECT status FROM deliveries")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(status, "sent");
}

#[tokio::test]
async fn addresses_no_mail_can_be_built_for_are_refused_by_form_json_and_api() {
    let app = spawn_app().await;
    for bad in ["\"a,b\"@example.org", "\"john..doe\"@example.org"] {
        let form = app.signup(bad).await;
        assert_eq!(form.status(), 422, "{bad}");
        assert!(form.text().await.unwrap().contains("quoted part"));
        let json = app
            .post_json("/subscriptions", &json!({ "email": bad }))
            .await;
        assert_eq!(json.status(), 422, "{bad}");
        let body: serde_json::Value = json.json().await.unwrap();
        assert!(body["errors"]["email"].is_string(), "{body}");
    }
    let token = app.api_token().await;
    let id = app.create_update(&token, "Test").await;
    let test = app
        .api(
            Method::POST,
            &format!("/api/v1/updates/{id}/test"),
            &token,
            Some(json!({"to": "\"a,b\"@example.org"})),
        )
        .await;
    assert_eq!(test.status(), 422);
    let (subscribers, deliveries, _, _) = app.row_counts().await;
    assert_eq!(
        (subscribers, deliveries),
        (0, 0),
        "nothing stored or queued"
    );
}

/// A subscriber stored the way releases before the canonical form stored one.
async fn legacy(
    pool: &sqlx::PgPool,
    email: &str,
    normalized: &str,
    status: &str,
    days_ago: i32,
) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "WITH s AS (
             INSERT INTO subscribers (id, email, email_normalized, status, created_at, confirmed_at)
             VALUES ($1, $2, $3, $4, now() - make_interval(days => $5), now() - make_interval(days => $5))
             RETURNING id)
         INSERT INTO subscriptions (subscriber_id, list_id, status)
         SELECT s.id, l.id, CASE WHEN $4 = 'unsubscribed' THEN 'unsubscribed' ELSE 'confirmed' END
         FROM s, lists l WHERE l.slug = 'us-icc-updates'",
    )
    .bind(id)
    .bind(email)
    .bind(normalized)
    .bind(status)
    .bind(days_ago)
    .execute(pool)
    .await
    .unwrap();
    id
}

async fn suppress(pool: &sqlx::PgPool, spelling: &str, days_ago: i32) {
    sqlx::query(
        "INSERT INTO suppressions (email_hash, reason, created_at)
         VALUES (sha256(convert_to($1, 'UTF8')), 'erased', now() - make_interval(days => $2))",
    )
    .bind(spelling)
    .bind(days_ago)
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn the_data_migration_merges_spellings_and_the_strictest_status_wins() {
    let db = TestDatabase::create().await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    sqlx::query("DELETE FROM data_migrations")
        .execute(&pool)
        .await
        .unwrap();
    let ida = legacy(
        &pool,
        "ida@bücher.example",
        "ida@bücher.example",
        "confirmed",
        2,
    )
    .await;
    let ida_too = legacy(
        &pool,
        "ida@xn--bcher-kva.example",
        "ida@xn--bcher-kva.example",
        "unsubscribed",
        1,
    )
    .await;
    let ann = legacy(
        &pool,
        "Ann.Doe@example.org",
        "ann.doe@example.org",
        "confirmed",
        3,
    )
    .await;
    let ann_too = legacy(
        &pool,
        "\"ann.doe\"@example.org",
        "\"ann.doe\"@example.org",
        "confirmed",
        1,
    )
    .await;
    sqlx::query(
        "INSERT INTO deliveries (kind, subscriber_id, status) VALUES ('welcome', $1, 'sent')",
    )
    .bind(ann_too)
    .execute(&pool)
    .await
    .unwrap();
    // Erased under the U-label after confirming: erased. Erased before confirming again: kept.
    legacy(
        &pool,
        "zoe@xn--mnchen-3ya.example",
        "zoe@xn--mnchen-3ya.example",
        "confirmed",
        3,
    )
    .await;
    suppress(&pool, "zoe@münchen.example", 1).await;
    let max = legacy(
        &pool,
        "max@xn--mnchen-3ya.example",
        "max@xn--mnchen-3ya.example",
        "confirmed",
        1,
    )
    .await;
    suppress(&pool, "max@münchen.example", 2).await;
    // Erased under the quoted spelling: erased.
    legacy(&pool, "bo@example.net", "bo@example.net", "confirmed", 3).await;
    suppress(&pool, "\"bo\"@example.net", 1).await;
    legacy(
        &pool,
        "\"a,b\"@example.org",
        "\"a,b\"@example.org",
        "confirmed",
        1,
    )
    .await;

    let done = newsletter::store::migrate(&pool).await.unwrap();
    assert_eq!(
        done,
        [
            "addresses: 1 rewritten to their canonical form, 2 duplicates merged, 2 erased \
          (erased under another spelling), 1 suppressions cleared, 1 unparseable left as they are"
        ]
    );
    let people: Vec<(Uuid, String, String, String)> = sqlx::query_as(
        "SELECT id, email, email_normalized, status FROM subscribers ORDER BY email_normalized",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let expected: Vec<(Uuid, &str, &str, &str)> = vec![
        (
            ann,
            "Ann.Doe@example.org",
            "ann.doe@example.org",
            "confirmed",
        ),
        (
            ida,
            "ida@xn--bcher-kva.example",
            "ida@xn--bcher-kva.example",
            "unsubscribed",
        ),
        (
            max,
            "max@xn--mnchen-3ya.example",
            "max@xn--mnchen-3ya.example",
            "confirmed",
        ),
    ];
    let people: Vec<(Uuid, &str, &str, &str)> = people
        .iter()
        .filter(|p| !p.1.contains(','))
        .map(|(i, e, n, s)| (*i, e.as_str(), n.as_str(), s.as_str()))
        .collect();
    assert_eq!(people, expected);
    let ida_lists: Vec<String> =
        sqlx::query_scalar("SELECT status FROM subscriptions WHERE subscriber_id = $1")
            .bind(ida)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(ida_lists, ["unsubscribed"], "the strictest list status too");
    let moved: Option<Uuid> = sqlx::query_scalar("SELECT subscriber_id FROM deliveries")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(moved, Some(ann), "the ledger follows the merge");
    let gone: i64 = sqlx::query_scalar("SELECT count(*) FROM subscribers WHERE id = ANY($1)")
        .bind(vec![ida_too, ann_too])
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(gone, 0);
    let suppressions: i64 = sqlx::query_scalar("SELECT count(*) FROM suppressions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        suppressions, 4,
        "zoe and bo added theirs, max's old one went"
    );
    assert!(
        newsletter::store::migrate(&pool).await.unwrap().is_empty(),
        "it runs once"
    );
}

#[tokio::test]
async fn a_worker_never_sends_to_a_second_spelling_made_by_an_old_release() {
    // After the migration, the second spelling is gone: an update reaches the mailbox once.
    let app = spawn_app_with(&[]).await;
    sqlx::query("DELETE FROM data_migrations")
        .execute(&app.pool)
        .await
        .unwrap();
    legacy(
        &app.pool,
        "Ann.Doe@example.org",
        "ann.doe@example.org",
        "confirmed",
        2,
    )
    .await;
    legacy(
        &app.pool,
        "\"ann.doe\"@example.org",
        "\"ann.doe\"@example.org",
        "confirmed",
        1,
    )
    .await;
    newsletter::store::migrate(&app.pool).await.unwrap();
    let token = app.api_token().await;
    let id = app.create_and_send(&token, "Once").await;
    app.wait_for_update_status(&id, "sent").await;
    let rcpts: Vec<Vec<String>> = app.smtp.messages().into_iter().map(|m| m.rcpt_to).collect();
    assert_eq!(rcpts, [vec!["Ann.Doe@example.org".to_owned()]]);
}
