//! Who an update goes to when its delivery rows are written in chunks: every confirmed
//! subscriber of its lists once, nobody who left before their chunk, nobody who joined after
//! the start.

use newsletter::domain::UpdateInput;
use newsletter::store::updates::{self, Action};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{spawn_app_with, TestDatabase};

#[tokio::test]
async fn an_update_written_in_chunks_of_seven_reaches_each_confirmed_subscriber_of_its_lists_once()
{
    let app = spawn_app_with(&[("worker.recipient_chunk", 7.into())]).await;
    let token = app.api_token().await;
    let national = app.seed_confirmed(40, "example.org").await;
    let local: Uuid =
        sqlx::query_scalar("INSERT INTO lists (slug, name) VALUES ('local', 'Local') RETURNING id")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    // Ten national subscribers are on the local list too; five are on it alone.
    let on_both: Vec<Uuid> = national[..10].iter().map(|(id, _)| *id).collect();
    sqlx::query(
        "INSERT INTO subscriptions (subscriber_id, list_id, status)
         SELECT unnest($1::uuid[]), $2, 'confirmed'",
    )
    .bind(&on_both)
    .bind(local)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "WITH people AS (
             INSERT INTO subscribers (id, email, email_normalized, status, confirmed_at)
             SELECT gen_random_uuid(), 'local' || i || '@example.net', 'local' || i || '@example.net',
                    'confirmed', now()
             FROM generate_series(1, 5) AS i RETURNING id)
         INSERT INTO subscriptions (subscriber_id, list_id, status)
         SELECT id, $1, 'confirmed' FROM people",
    )
    .bind(local)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query("UPDATE subscribers SET status = 'unsubscribed' WHERE email = $1")
        .bind(&national[39].1)
        .execute(&app.pool)
        .await
        .unwrap();

    let id = app.create_update(&token, "Chunks").await;
    sqlx::query("INSERT INTO update_lists (update_id, list_id) VALUES ($1::uuid, $2)")
        .bind(&id)
        .bind(local)
        .execute(&app.pool)
        .await
        .unwrap();
    app.send_now(&token, &id).await;
    app.wait_for_update_status(&id, "sent").await;

    let mut received: Vec<String> = app
        .smtp
        .messages()
        .into_iter()
        .map(|m| m.rcpt_to[0].clone())
        .collect();
    received.sort();
    let mut expected: Vec<String> = national[..39].iter().map(|(_, e)| e.clone()).collect();
    expected.extend((1..=5).map(|i| format!("local{i}@example.net")));
    expected.sort();
    assert_eq!(received, expected, "39 national and 5 local, each once");
    let statuses = app.delivery_statuses(&id).await;
    assert_eq!(statuses.len(), 44);
    assert!(statuses.iter().all(|(_, s, _)| s == "sent"));
}

/// A migrated database with no service running on it, so the test alone writes the rows.
async fn quiet_database() -> (TestDatabase, PgPool) {
    let db = TestDatabase::create().await;
    let pool = PgPool::connect(&db.url).await.unwrap();
    (db, pool)
}

async fn confirmed_on(pool: &PgPool, id: Uuid, email: &str, list: Uuid) {
    sqlx::query(
        "WITH s AS (INSERT INTO subscribers (id, email, email_normalized, status, confirmed_at)
                    VALUES ($1, $2, $2, 'confirmed', now()) RETURNING id)
         INSERT INTO subscriptions (subscriber_id, list_id, status) SELECT id, $3, 'confirmed' FROM s",
    )
    .bind(id)
    .bind(email)
    .bind(list)
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn who_leaves_before_their_chunk_gets_no_row_and_who_confirms_after_the_start_is_not_a_recipient(
) {
    let (_db, pool) = quiet_database().await;
    let list: Uuid = sqlx::query_scalar("SELECT id FROM lists WHERE slug = 'us-icc-updates'")
        .fetch_one(&pool)
        .await
        .unwrap();
    // Ids in a known order: 0000…01 to 0000…0c.
    let ids: Vec<Uuid> = (1..=12u128).map(Uuid::from_u128).collect();
    for (i, id) in ids.iter().enumerate() {
        confirmed_on(&pool, *id, &format!("p{i}@example.org"), list).await;
    }
    let input: UpdateInput = serde_json::from_value(serde_json::json!({
        "subject": "Chunks", "lists": ["us-icc-updates"], "news_items": []
    }))
    .unwrap();
    let update = updates::create(&pool, &input.parse().unwrap(), &[list])
        .await
        .unwrap();
    updates::apply(&pool, update, Action::SendNow)
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    let started = updates::start_one_due(&pool, 5).await.unwrap();
    assert_eq!(
        started,
        Some((update, 5)),
        "the first chunk comes with the start"
    );
    let row_count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM deliveries WHERE update_id = $1")
            .bind(update)
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    assert_eq!(row_count().await, 5);
    assert!(
        updates::finish_done(&pool).await.unwrap().is_empty(),
        "not finished while rows are still to be written"
    );

    // After the start: the last person leaves, a newcomer (sorting last) confirms.
    sqlx::query("UPDATE subscribers SET status = 'unsubscribed' WHERE id = $1")
        .bind(ids[11])
        .execute(&pool)
        .await
        .unwrap();
    confirmed_on(&pool, Uuid::max(), "newcomer@example.org", list).await;

    let mut chunks = Vec::new();
    while let Some((id, n)) = updates::add_recipients(&pool, 5).await.unwrap() {
        assert_eq!(id, update);
        chunks.push(n);
    }
    assert_eq!(chunks, [5, 1]);
    let with_rows: Vec<Uuid> = sqlx::query_scalar(
        "SELECT subscriber_id FROM deliveries WHERE update_id = $1 ORDER BY subscriber_id",
    )
    .bind(update)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(with_rows, ids[..11]);
}
