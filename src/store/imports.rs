//! Importing subscribers whose consent staff attest to, set-based: the rows go into a temporary
//! table in chunks, then a few statements sort them out. Erased (suppressed), unsubscribed,
//! bounced and complained addresses are refused: only their own double opt-in brings them back.

use anyhow::Context;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{EmailAddress, SubscriberName, UsState};

/// Rows sent to PostgreSQL per statement.
const CHUNK: usize = 10_000;

pub struct ImportRow {
    pub line: usize,
    pub email: EmailAddress,
    pub name: Option<SubscriberName>,
    pub state: Option<UsState>,
}

#[derive(Debug, Default)]
pub struct ImportReport {
    pub imported: usize,
    pub already_subscribed: usize,
    /// (line, why)
    pub refused: Vec<(usize, String)>,
}

/// Imports `rows` onto `lists` in one transaction.
pub async fn import(
    pool: &PgPool,
    rows: &[ImportRow],
    lists: &[(Uuid, String)],
    note: &str,
) -> anyhow::Result<ImportReport> {
    let list_ids: Vec<Uuid> = lists.iter().map(|(id, _)| *id).collect();
    let slugs: Vec<String> = lists.iter().map(|(_, s)| s.clone()).collect();
    let mut tx = pool.begin().await.context("starting the import")?;
    sqlx::query(
        "CREATE TEMPORARY TABLE import_rows (
             line integer NOT NULL, email text NOT NULL, normalized text NOT NULL,
             name text, us_state text, first boolean NOT NULL DEFAULT false
         ) ON COMMIT DROP",
    )
    .execute(&mut *tx)
    .await?;
    for chunk in rows.chunks(CHUNK) {
        let lines: Vec<i32> = chunk
            .iter()
            .map(|r| i32::try_from(r.line).unwrap_or(i32::MAX))
            .collect();
        let emails: Vec<&str> = chunk.iter().map(|r| r.email.as_str()).collect();
        let normalized: Vec<&str> = chunk.iter().map(|r| r.email.normalized()).collect();
        let names: Vec<Option<&str>> = chunk
            .iter()
            .map(|r| r.name.as_ref().map(SubscriberName::as_str))
            .collect();
        let states: Vec<Option<&str>> = chunk.iter().map(|r| r.state.map(UsState::code)).collect();
        sqlx::query(
            "INSERT INTO import_rows (line, email, normalized, name, us_state)
             SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::text[])",
        )
        .bind(&lines)
        .bind(&emails)
        .bind(&normalized)
        .bind(&names)
        .bind(&states)
        .execute(&mut *tx)
        .await
        .context("loading the rows")?;
    }
    // The first line of each address counts; later ones are duplicates within the file.
    sqlx::query(
        "UPDATE import_rows r SET first = true
         FROM (SELECT DISTINCT ON (normalized) line FROM import_rows ORDER BY normalized, line) f
         WHERE r.line = f.line",
    )
    .execute(&mut *tx)
    .await?;
    let refused: Vec<(i32, String)> = sqlx::query_as(
        "SELECT r.line, CASE WHEN x.email_hash IS NOT NULL THEN 'suppressed: this address was erased on request'
                             ELSE 'suppressed: the address is ' || s.status END
         FROM import_rows r
         LEFT JOIN suppressions x ON x.email_hash = sha256(convert_to(r.normalized, 'UTF8'))
         LEFT JOIN subscribers s ON s.email_normalized = r.normalized
         WHERE x.email_hash IS NOT NULL OR s.status IN ('unsubscribed', 'bounced', 'complained')
         ORDER BY r.line",
    )
    .fetch_all(&mut *tx)
    .await
    .context("checking suppressions")?;
    sqlx::query(
        "DELETE FROM import_rows r
         USING (SELECT r2.line FROM import_rows r2
                LEFT JOIN suppressions x ON x.email_hash = sha256(convert_to(r2.normalized, 'UTF8'))
                LEFT JOIN subscribers s ON s.email_normalized = r2.normalized
                WHERE x.email_hash IS NOT NULL OR s.status IN ('unsubscribed', 'bounced', 'complained')) gone
         WHERE r.line = gone.line",
    )
    .execute(&mut *tx)
    .await?;
    let imported = sqlx::query(
        "INSERT INTO subscribers (id, email, email_normalized, name, us_state, status, confirmed_at)
         SELECT gen_random_uuid(), email, normalized, name, us_state, 'confirmed', now()
         FROM import_rows WHERE first
         ON CONFLICT (email_normalized) DO NOTHING",
    )
    .execute(&mut *tx)
    .await
    .context("adding subscribers")?
    .rows_affected() as usize;
    sqlx::query(
        "UPDATE subscribers s SET status = 'confirmed', confirmed_at = now(), updated_at = now()
         FROM import_rows r WHERE r.first AND s.email_normalized = r.normalized AND s.status = 'pending'",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO subscriptions (subscriber_id, list_id, status)
         SELECT s.id, l, 'confirmed' FROM import_rows r
         JOIN subscribers s ON s.email_normalized = r.normalized, unnest($1::uuid[]) AS l
         WHERE r.first
         ON CONFLICT (subscriber_id, list_id) DO UPDATE SET status = 'confirmed', updated_at = now()
             WHERE subscriptions.status = 'pending'",
    )
    .bind(&list_ids)
    .execute(&mut *tx)
    .await
    .context("adding subscriptions")?;
    sqlx::query(
        "INSERT INTO consent_events (subscriber_id, kind, source, consent_text, consent_version, lists)
         SELECT s.id, 'signup', 'import', $1, 'import', $2 FROM import_rows r
         JOIN subscribers s ON s.email_normalized = r.normalized WHERE r.first",
    )
    .bind(note)
    .bind(&slugs)
    .execute(&mut *tx)
    .await
    .context("logging consent")?;
    let accepted = rows.len() - refused.len();
    tx.commit().await.context("committing the import")?;
    Ok(ImportReport {
        imported,
        already_subscribed: accepted - imported,
        refused: refused
            .into_iter()
            .map(|(line, why)| (line as usize, why))
            .collect(),
    })
}
