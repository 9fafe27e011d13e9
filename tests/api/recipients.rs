//! Who an update goes to when its delivery rows are written in chunks as workers claim them:
//! every confirmed subscriber of its lists once, nobody who left before their chunk, nobody who
//! joined after the start.

use newsletter::domain::UpdateInput;
use std::time::Duration;

use newsletter::store::deliveries::{self, Attempted, Claimed, Outcome};
use newsletter::store::subscribers;
use newsletter::store::updates::{self, Action};
use newsletter::store::KeyedPool;
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
    confirmed_many(&app.pool, "local", "example.net", 5, local).await;
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

    let received = app.smtp.recipients_sorted();
    let mut expected: Vec<String> = national[..39].iter().map(|(_, e)| e.clone()).collect();
    expected.extend((1..=5).map(|i| format!("local{i}@example.net")));
    expected.sort();
    assert_eq!(received, expected, "39 national and 5 local, each once");
    let statuses = app.delivery_statuses(&id).await;
    assert_eq!(statuses.len(), 44);
    assert!(statuses.iter().all(|(_, s, _)| s == "sent"));
}

/// A relay's acceptance, as an outcome.
fn sent() -> Outcome {
    Outcome::Sent {
        message_id: "<m@example.org>".into(),
        reply: "250 ok".into(),
    }
}

/// The attempts of these claimed rows, each ending with `outcome`.
fn attempts_ending<'a>(claimed: &[Claimed], outcome: &'a Outcome) -> Vec<Attempted<'a>> {
    claimed
        .iter()
        .map(|c| Attempted {
            id: c.id,
            attempt: c.attempt,
            outcome,
        })
        .collect()
}

/// The default list (`us-icc-updates`, made by the migrations).
async fn default_list(pool: &PgPool) -> Uuid {
    sqlx::query_scalar("SELECT id FROM lists WHERE slug = 'us-icc-updates'")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Twelve confirmed subscribers of the default list, with ids in a known walk order (0000…01 to
/// 0000…0c) and addresses `{prefix}{i}@example.org`, and an update to that list started on
/// them: (the list, the ids, the update).
async fn twelve_and_started(pool: &PgPool, prefix: &str, subject: &str) -> (Uuid, Vec<Uuid>, Uuid) {
    let list = default_list(pool).await;
    let ids: Vec<Uuid> = (1..=12u128).map(Uuid::from_u128).collect();
    for (i, id) in ids.iter().enumerate() {
        confirmed_on(pool, *id, &format!("{prefix}{i}@example.org"), list).await;
    }
    let update = started_update(pool, list, subject).await;
    (list, ids, update)
}

/// A migrated database with no service running on it, so the test alone writes the rows.
async fn quiet_database() -> (TestDatabase, PgPool) {
    let db = TestDatabase::create().await;
    let pool = PgPool::connect(&db.url).await.unwrap();
    (db, pool)
}

/// An update to `list`, sent now and started by the scheduler's step (no rows written yet).
async fn started_update(pool: &PgPool, list: Uuid, subject: &str) -> Uuid {
    let input: UpdateInput = serde_json::from_value(serde_json::json!({
        "subject": subject, "lists": ["us-icc-updates"], "news_items": []
    }))
    .unwrap();
    let author = updates::Author {
        label: "tests",
        staff_id: None,
    };
    let update = updates::create(pool, &input.parse().unwrap(), &[list], author)
        .await
        .unwrap();
    assert_eq!(
        updates::apply(pool, update, Action::SendNow, None, Default::default())
            .await
            .unwrap(),
        Some(updates::Applied::Done("scheduled".into()))
    );
    assert_eq!(
        updates::start_one_due(pool, (None, Duration::from_secs(3600)), chrono_tz::UTC)
            .await
            .unwrap(),
        Some(updates::Started::Sending(update)),
        "started, without its rows"
    );
    update
}

/// Whether every delivery row of `update` is written (`updates.recipients_complete`).
async fn rows_complete(pool: &PgPool, update: Uuid) -> bool {
    sqlx::query_scalar("SELECT recipients_complete FROM updates WHERE id = $1")
        .bind(update)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// `n` confirmed subscribers, `{prefix}{i}@{domain}`, confirmed on `list`, in one statement.
async fn confirmed_many(pool: &PgPool, prefix: &str, domain: &str, n: i32, list: Uuid) {
    sqlx::query(
        "WITH people AS (
             INSERT INTO subscribers (id, email, email_normalized, status, confirmed_at)
             SELECT gen_random_uuid(), $1 || i || '@' || $2, $1 || i || '@' || $2, 'confirmed', now()
             FROM generate_series(1, $3) AS i RETURNING id)
         INSERT INTO subscriptions (subscriber_id, list_id, status)
         SELECT id, $4, 'confirmed' FROM people",
    )
    .bind(prefix)
    .bind(domain)
    .bind(n)
    .bind(list)
    .execute(pool)
    .await
    .unwrap();
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
    let (list, ids, update) = twelve_and_started(&pool, "p", "Chunks").await;
    let row_count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM deliveries WHERE update_id = $1")
            .bind(update)
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    assert_eq!(row_count().await, 0, "rows are written as they are claimed");
    let counts = || async {
        let view = newsletter::ops::updates::view(&pool, update).await.unwrap();
        (
            view.counts["queued"],
            view.counts["sending"],
            view.counts["sent"],
        )
    };
    assert_eq!(
        counts().await,
        (12, 0, 0),
        "the recipients without a row yet count as queued"
    );

    let lease = Duration::from_secs(60);
    let first = updates::claim_new_recipients(&pool, 5, lease)
        .await
        .unwrap();
    let first_ids: Vec<Uuid> = first.iter().filter_map(|c| c.subscriber_id).collect();
    assert_eq!(first_ids, ids[..5], "the first five, in id order");
    assert!(first
        .iter()
        .all(|c| c.update_id == Some(update) && c.attempt == 1 && c.kind == "update"));
    let (sending, leased): (i64, bool) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'sending' AND attempts = 1),
                bool_and(next_attempt_at > now() + interval '50 seconds')
         FROM deliveries WHERE update_id = $1",
    )
    .bind(update)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (sending, leased),
        (5, true),
        "born claimed and leased, as a claim leaves them"
    );
    let sent = sent();
    let attempts = attempts_ending(&first, &sent);
    assert_eq!(
        deliveries::record(&KeyedPool::from(&pool), &attempts)
            .await
            .unwrap()
            .len(),
        5
    );
    assert!(
        updates::finish_done(&pool).await.unwrap().is_empty(),
        "not finished while rows are still to be written, though every written row is final"
    );
    assert!(
        deliveries::claim(&pool, 10, lease)
            .await
            .unwrap()
            .is_empty(),
        "nothing written is due"
    );

    // After the start: the last person leaves, a newcomer (sorting last) confirms.
    sqlx::query("UPDATE subscribers SET status = 'unsubscribed' WHERE id = $1")
        .bind(ids[11])
        .execute(&pool)
        .await
        .unwrap();
    confirmed_on(&pool, Uuid::max(), "newcomer@example.org", list).await;
    assert_eq!(
        counts().await,
        (6, 0, 5),
        "queued: the six still due, not the leaver, not the newcomer"
    );

    let mut chunks = Vec::new();
    loop {
        let claimed = updates::claim_new_recipients(&pool, 5, lease)
            .await
            .unwrap();
        if claimed.is_empty() {
            break;
        }
        assert!(chunks.len() < 5, "the chunks end");
        chunks.push(claimed.len());
    }
    assert_eq!(chunks, [5, 1]);
    assert_eq!(row_count().await, 11);
    assert_eq!(counts().await, (0, 6, 5));
    let with_rows: Vec<Uuid> = sqlx::query_scalar(
        "SELECT subscriber_id FROM deliveries WHERE update_id = $1 ORDER BY subscriber_id",
    )
    .bind(update)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(with_rows, ids[..11]);
}

#[tokio::test]
async fn a_sending_update_is_counted_once_by_one_worker_and_its_queued_count_follows_its_rows() {
    // At 1,000,000 subscribers the exact count of those without a row takes seconds: the
    // scheduler counts an update's recipients once after the start, and views subtract its rows.
    let (_db, pool) = quiet_database().await;
    let (_, ids, update) = twelve_and_started(&pool, "c", "Counted once").await;
    let queued = || async {
        newsletter::ops::updates::view(&pool, update)
            .await
            .unwrap()
            .counts["queued"]
    };
    let expected = || async {
        sqlx::query_scalar::<_, Option<i64>>(
            "SELECT recipients_expected FROM updates WHERE id = $1",
        )
        .bind(update)
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let lease = Duration::from_secs(60);
    let first = updates::claim_new_recipients(&pool, 5, lease)
        .await
        .unwrap();
    assert_eq!(first.len(), 5);
    assert_eq!(expected().await, None);
    assert_eq!(queued().await, 7, "before the count: counted at the view");

    // while another worker counts it, this one passes
    let mut other = pool.begin().await.unwrap();
    let held: bool = sqlx::query_scalar(updates::RECIPIENT_COUNT_LOCK)
        .bind(update)
        .fetch_one(&mut *other)
        .await
        .unwrap();
    assert!(held);
    assert_eq!(
        updates::count_expected_recipients(&pool).await.unwrap(),
        None,
        "counted by one worker at a time"
    );
    assert_eq!(expected().await, None);
    other.rollback().await.unwrap();

    // counted after five rows were written: the five and the seven still to write
    assert_eq!(
        updates::count_expected_recipients(&pool).await.unwrap(),
        Some(update)
    );
    assert_eq!(expected().await, Some(12));
    assert_eq!(
        updates::count_expected_recipients(&pool).await.unwrap(),
        None,
        "once an update"
    );
    assert_eq!(queued().await, 7, "twelve less the five rows");
    updates::claim_new_recipients(&pool, 5, lease)
        .await
        .unwrap();
    assert_eq!(queued().await, 2);
    // someone still to write leaves: counted until the rows are complete
    sqlx::query("UPDATE subscribers SET status = 'unsubscribed' WHERE id = $1")
        .bind(ids[11])
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(queued().await, 2);
    while !updates::claim_new_recipients(&pool, 5, lease)
        .await
        .unwrap()
        .is_empty()
    {}
    let view = newsletter::ops::updates::view(&pool, update).await.unwrap();
    assert_eq!(
        (view.counts["queued"], view.counts["sending"]),
        (0, 11),
        "complete: only rows count"
    );
}

#[tokio::test]
async fn workers_claiming_new_rows_at_once_take_chunks_in_turn_each_recipient_once() {
    let (_db, pool) = quiet_database().await;
    let list = default_list(&pool).await;
    for i in 1..=20u128 {
        confirmed_on(
            &pool,
            Uuid::from_u128(i),
            &format!("p{i}@example.org"),
            list,
        )
        .await;
    }
    let update = started_update(&pool, list, "Turns").await;

    // Four claims at once on four connections: each waits for the one before and takes the
    // next chunk (none comes back empty while rows are left), and no one is claimed twice.
    let claims = (0..4).map(|_| {
        let pool = pool.clone();
        tokio::spawn(async move {
            updates::claim_new_recipients(&pool, 5, Duration::from_secs(60))
                .await
                .unwrap()
        })
    });
    let mut sizes = Vec::new();
    let mut claimed = Vec::new();
    for claim in claims {
        let rows = claim.await.unwrap();
        sizes.push(rows.len());
        claimed.extend(rows.into_iter().filter_map(|c| c.subscriber_id));
    }
    assert_eq!(sizes, [5, 5, 5, 5]);
    claimed.sort();
    let everyone: Vec<Uuid> = (1..=20u128).map(Uuid::from_u128).collect();
    assert_eq!(claimed, everyone);
    assert!(
        updates::claim_new_recipients(&pool, 5, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(rows_complete(&pool, update).await);
}

/// An update to a small list in a large installation reads its members, not every subscriber:
/// 20 members among 2,020 subscribers, claimed in one statement that fetches a few subscriber
/// rows a member (60 here, among them the member's row and the foreign key's check of the new
/// delivery row), not every subscriber's (2,060 when the walk went through every subscriber
/// probing their subscriptions).
#[tokio::test]
async fn an_update_to_a_small_list_reads_its_members_not_every_subscriber() {
    let (_db, pool) = quiet_database().await;
    let everyone = default_list(&pool).await;
    let local: Uuid =
        sqlx::query_scalar("INSERT INTO lists (slug, name) VALUES ('local', 'Local') RETURNING id")
            .fetch_one(&pool)
            .await
            .unwrap();
    confirmed_many(&pool, "all", "example.org", 2000, everyone).await;
    confirmed_many(&pool, "local", "example.org", 20, local).await;
    let update = started_update(&pool, local, "Local news").await;

    let mut tx = pool.begin().await.unwrap();
    let claimed = updates::claim_new_recipients(&mut *tx, 50, Duration::from_secs(60))
        .await
        .unwrap();
    // Rows fetched through an index count against the index: summed over those of subscribers.
    let fetched: i64 = sqlx::query_scalar(
        "SELECT sum(pg_stat_get_xact_tuples_fetched(indexrelid))::int8 FROM pg_index
         WHERE indrelid = 'subscribers'::regclass",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let mut got: Vec<Uuid> = claimed.iter().filter_map(|c| c.subscriber_id).collect();
    got.sort();
    let members: Vec<Uuid> = sqlx::query_scalar(
        "SELECT subscriber_id FROM subscriptions WHERE list_id = $1 ORDER BY subscriber_id",
    )
    .bind(local)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(got, members, "every member once, nobody else");
    assert!(
        fetched <= 4 * 20,
        "{fetched} subscriber rows fetched for 20 recipients among 2,020 subscribers"
    );
    assert!(
        rows_complete(&pool, update).await,
        "a short chunk completes the rows"
    );
}

#[tokio::test]
async fn new_rows_are_found_through_ordered_indexes_even_on_tables_never_analysed() {
    // A list imported a minute before the send has no statistics yet: the plan must still walk
    // the list's members in subscriber order by `subscriptions_by_list_in_subscriber_order` (no
    // sort of everyone after the cursor, no walk of the primary key of `subscriptions`, which
    // holds every list's members) and read each member by primary key. With a plain filtered
    // scan the planner took `subscribers_by_status` or a bitmap scan plus a sort.
    let (_db, pool) = quiet_database().await;
    let list = default_list(&pool).await;
    confirmed_many(&pool, "n", "example.org", 3000, list).await;
    started_update(&pool, list, "Fresh list").await;

    let mut conn = pool.acquire().await.unwrap();
    sqlx::raw_sql(&format!(
        "PREPARE claim_new(int8, float8) AS {}",
        updates::CLAIM_NEW_RECIPIENTS
    ))
    .execute(&mut *conn)
    .await
    .unwrap();
    for mode in ["force_custom_plan", "force_generic_plan"] {
        sqlx::raw_sql(&format!("SET plan_cache_mode = {mode}"))
            .execute(&mut *conn)
            .await
            .unwrap();
        // Executed (and rolled back): a plain EXPLAIN does not show the plan of the walk's
        // recursive step, only EXPLAIN ANALYZE does.
        sqlx::raw_sql("BEGIN").execute(&mut *conn).await.unwrap();
        let plan: Vec<String> = sqlx::query_scalar(
            "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) EXECUTE claim_new(20, 60)",
        )
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await.unwrap();
        let plan = plan.join("\n");
        assert!(
            plan.contains("Index Scan using subscribers_pkey")
                && plan.contains("using subscriptions_by_list_in_subscriber_order"),
            "{mode}: {plan}"
        );
        assert!(
            !plan.contains("subscribers_by_status")
                && !plan.contains("on subscriptions_pkey")
                && !plan.contains("Seq Scan on subscri")
                && !plan.contains("Bitmap Heap Scan on subscribers")
                && !plan.contains("Sort Key: s.id"),
            "{mode}: {plan}"
        );
    }
    let analysed: Option<f32> =
        sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE relname = 'subscriptions'")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert!(
        analysed.is_some_and(|n| n < 0.0),
        "the test holds only while the tables have no statistics: {analysed:?}"
    );
}

#[tokio::test]
async fn outcomes_and_recipient_reads_go_through_primary_keys_by_plans_cached_while_tables_were_small(
) {
    // A new installation's first send: `deliveries` and `subscribers` hold a few rows and have
    // statistics saying so. The generic plans the worker's keyed connections cache for the
    // outcome write and the recipient read then must reach rows by their ids through the
    // primary keys (an index condition on the ids), never by a scan of a table or of a whole
    // index, or they keep scanning as the send grows the tables to millions of rows.
    let (_db, pool) = quiet_database().await;
    let ids: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO deliveries (kind) SELECT 'confirmation' FROM generate_series(1, 3) RETURNING id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let list = default_list(&pool).await;
    confirmed_many(&pool, "k", "example.org", 3, list).await;
    sqlx::query("ANALYZE deliveries, subscribers, subscriptions, lists")
        .execute(&pool)
        .await
        .unwrap();
    let keyed = KeyedPool::from(&pool);
    let mut conn = keyed.pool().acquire().await.unwrap();
    // the connection's own settings, nothing set here, decide the plans
    sqlx::raw_sql(&format!(
        "PREPARE record_outcomes(int8[], int4[], text[], text[], text[], float8[], bool[]) AS {};
         PREPARE contacts(uuid[]) AS {}",
        deliveries::RECORD_OUTCOMES,
        subscribers::CONTACTS
    ))
    .execute(&mut *conn)
    .await
    .unwrap();
    for (execute, table) in [
        (
            "EXECUTE record_outcomes('{1,2}', '{1,1}', '{sent,sent}', '{250 ok,250 ok}',
                                     '{NULL,NULL}', '{NULL,NULL}', '{f,f}')",
            "deliveries",
        ),
        (
            "EXECUTE contacts('{00000000-0000-0000-0000-000000000001}')",
            "subscribers",
        ),
    ] {
        let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {execute}"))
            .fetch_all(&mut *conn)
            .await
            .unwrap();
        let plan = plan.join("\n");
        assert!(
            plan.contains(&format!("{table}_pkey")) && plan.contains("Index Cond: (id = ANY ($1))"),
            "{plan}"
        );
        assert!(!plan.contains("Seq Scan"), "{plan}");
    }
    drop(conn);

    // and `record` writes through that pool: the claimed rows' outcomes, each once
    let claimed = deliveries::claim(&pool, 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(claimed.len(), ids.len());
    let sent = sent();
    let attempts = attempts_ending(&claimed, &sent);
    let mut written = deliveries::record(&keyed, &attempts).await.unwrap();
    written.sort_unstable();
    assert_eq!(written, ids);
    assert!(deliveries::record(&keyed, &attempts)
        .await
        .unwrap()
        .is_empty());
}
