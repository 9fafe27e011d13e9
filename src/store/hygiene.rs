//! `repermission_requests` and the `lapsed` status (`ops::hygiene`).

use sqlx::{PgExecutor, PgPool, Postgres, Transaction};
use uuid::Uuid;

/// Confirmed subscribers inactive since `since` for at least `$1` days, sent at least `$2`
/// updates since then; at most `$3`.
macro_rules! due_sql {
    () => {
        "SELECT s.id, s.email, s.link_version, s.since FROM (
             SELECT id, email, link_version,
                    coalesce(last_active_on, (confirmed_at AT TIME ZONE 'UTC')::date,
                             (created_at AT TIME ZONE 'UTC')::date) AS since
             FROM subscribers WHERE status = 'confirmed') s
         WHERE s.since <= (now() AT TIME ZONE 'UTC')::date - $1::int
           AND (SELECT count(*) FROM deliveries d
                WHERE d.subscriber_id = s.id AND d.kind = 'update' AND d.status = 'sent'
                  AND d.sent_at >= s.since) >= $2::int
           -- not asked yet in this quiet spell (before the limit: the asked would fill it)
           AND NOT EXISTS (SELECT 1 FROM repermission_requests r
                           WHERE r.subscriber_id = s.id AND r.inactive_since = s.since)
         ORDER BY s.since, s.id
         LIMIT $3"
    };
}

/// Who would be asked now with these settings (counted, nothing written).
pub async fn would_ask(
    db: impl PgExecutor<'_>,
    inactive_days: i32,
    min_updates: i32,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(concat!("SELECT count(*) FROM (", due_sql!(), ") due"))
        .bind(inactive_days)
        .bind(min_updates)
        .bind(i64::MAX)
        .fetch_one(db)
        .await
}

/// A person just asked: their id, address and link version.
#[derive(Debug, sqlx::FromRow)]
pub struct Asked {
    pub id: Uuid,
    pub email: String,
    pub link_version: i32,
}

/// Records a question for each person due (at most `limit`) not yet asked in this inactive
/// spell, in `tx`; returns those recorded. Two workers at once record each person once (the
/// second waits on the first's rows and then finds them).
pub async fn ask(
    tx: &mut Transaction<'_, Postgres>,
    inactive_days: i32,
    min_updates: i32,
    limit: i64,
) -> sqlx::Result<Vec<Asked>> {
    sqlx::query_as(concat!(
        "WITH due AS (",
        due_sql!(),
        "), asked AS (
             INSERT INTO repermission_requests (subscriber_id, inactive_since)
             SELECT id, since FROM due
             ON CONFLICT DO NOTHING
             RETURNING subscriber_id)
         SELECT d.id, d.email, d.link_version FROM due d JOIN asked a ON a.subscriber_id = d.id"
    ))
    .bind(inactive_days)
    .bind(min_updates)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
}

/// Queues the question mail (a `notice` to the person, with their subscriber id so erasure
/// and a change of status reach it).
pub async fn queue_question(
    tx: &mut Transaction<'_, Postgres>,
    people: &[(Uuid, serde_json::Value)],
) -> sqlx::Result<()> {
    let ids: Vec<Uuid> = people.iter().map(|(id, _)| *id).collect();
    let payloads: Vec<serde_json::Value> = people.iter().map(|(_, p)| p.clone()).collect();
    sqlx::query(
        "INSERT INTO deliveries (kind, subscriber_id, payload)
         SELECT 'notice', id, payload FROM unnest($1::uuid[], $2::jsonb[]) AS x(id, payload)",
    )
    .bind(&ids)
    .bind(&payloads)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Those whose question went out (the relay took it) more than `grace_days` ago and who
/// neither answered nor were active since become `lapsed`; returns how many. A question still
/// queued, deferred or failed lapses nobody.
pub async fn lapse(db: impl PgExecutor<'_>, grace_days: i32) -> sqlx::Result<u64> {
    let lapsed = sqlx::query(
        "WITH gone AS (
             UPDATE repermission_requests r SET lapsed_at = now()
             FROM subscribers s
             WHERE s.id = r.subscriber_id AND s.status = 'confirmed'
               AND r.answered_at IS NULL AND r.lapsed_at IS NULL
               AND EXISTS (SELECT 1 FROM deliveries d
                           WHERE d.kind = 'notice' AND d.subscriber_id = r.subscriber_id
                             AND d.status = 'sent' AND d.sent_at >= r.asked_at
                             AND d.sent_at <= now() - make_interval(days => $1))
             RETURNING r.subscriber_id)
         UPDATE subscribers SET status = 'lapsed', updated_at = now()
         WHERE id IN (SELECT subscriber_id FROM gone)",
    )
    .bind(grace_days)
    .execute(db)
    .await?
    .rows_affected();
    Ok(lapsed)
}

/// How many wait for an answer and how many are lapsed.
pub async fn standing(db: &PgPool) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM repermission_requests r JOIN subscribers s ON s.id = r.subscriber_id
                 WHERE r.answered_at IS NULL AND r.lapsed_at IS NULL AND s.status = 'confirmed'),
                (SELECT count(*) FROM subscribers WHERE status = 'lapsed')",
    )
    .fetch_one(db)
    .await
}

/// The person answered the question: every open question of theirs is answered, and a lapsed
/// person is confirmed again. Returns whether they are confirmed now.
pub async fn answer(pool: &PgPool, id: Uuid) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE repermission_requests SET answered_at = now()
         WHERE subscriber_id = $1 AND answered_at IS NULL",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    let status: Option<String> = sqlx::query_scalar(
        "UPDATE subscribers
         SET status = CASE WHEN status = 'lapsed' THEN 'confirmed' ELSE status END,
             updated_at = CASE WHEN status = 'lapsed' THEN now() ELSE updated_at END
         WHERE id = $1 RETURNING status",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(status.as_deref() == Some("confirmed"))
}

/// A lapsed person is confirmed again and their open questions answered (any activity, whether
/// or not its date is remembered).
pub async fn unlapse(pool: &PgPool, id: Uuid) -> sqlx::Result<()> {
    answer(pool, id).await.map(|_| ())
}
