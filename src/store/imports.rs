//! Importing subscribers whose consent staff attest to, set-based: the rows go into a temporary
//! table in chunks, then a few statements sort them out. Erased (suppressed), unsubscribed,
//! bounced and complained addresses are refused: only their own double opt-in brings them back.

use anyhow::Context;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::preferences::suppression_hashes;
use crate::domain::{EmailAddress, SubscriberName, UsState};

/// Rows sent to PostgreSQL per statement.
const CHUNK: usize = 10_000;

#[derive(Debug)]
pub struct ImportRow {
    pub line: usize,
    pub email: EmailAddress,
    pub name: Option<SubscriberName>,
    pub state: Option<UsState>,
    /// Slugs of lists this row joins besides the import's own (known lists only).
    pub lists: Vec<String>,
}

#[derive(Debug, Default)]
pub struct ImportReport {
    pub imported: usize,
    pub already_subscribed: usize,
    /// Later lines of an address that an earlier line of the same file already had.
    pub duplicates: usize,
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
    let mut tx = pool.begin().await.context("starting the import")?;
    let report = import_in(&mut tx, rows, lists, note).await?;
    tx.commit().await.context("committing the import")?;
    Ok(report)
}

/// Imports `rows` onto `lists` inside the caller's transaction `tx`, which must commit (or
/// roll back) before it imports again: so a job records its progress with the rows, at once.
pub async fn import_in(
    tx: &mut Transaction<'_, Postgres>,
    rows: &[ImportRow],
    lists: &[(Uuid, String)],
    note: &str,
) -> anyhow::Result<ImportReport> {
    let list_ids: Vec<Uuid> = lists.iter().map(|(id, _)| *id).collect();
    let slugs: Vec<String> = lists.iter().map(|(_, s)| s.clone()).collect();
    sqlx::query(
        "CREATE TEMPORARY TABLE import_rows (
             line integer NOT NULL, email text NOT NULL, normalized text NOT NULL,
             name text, us_state text, lists text[] NOT NULL, first boolean NOT NULL DEFAULT false,
             id uuid
         ) ON COMMIT DROP",
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "CREATE TEMPORARY TABLE import_keys (line integer NOT NULL, hash bytea NOT NULL)
         ON COMMIT DROP",
    )
    .execute(&mut **tx)
    .await?;
    for chunk in rows.chunks(CHUNK) {
        let lines: Vec<i32> = chunk
            .iter()
            .map(|r| i32::try_from(r.line).unwrap_or(i32::MAX))
            .collect();
        let emails: Vec<&str> = chunk.iter().map(|r| r.email.as_str()).collect();
        let normalized: Vec<&str> = chunk.iter().map(|r| r.email.canonical()).collect();
        let names: Vec<Option<&str>> = chunk
            .iter()
            .map(|r| r.name.as_ref().map(SubscriberName::as_str))
            .collect();
        let states: Vec<Option<&str>> = chunk.iter().map(|r| r.state.map(UsState::code)).collect();
        // Arrays of arrays must be rectangular: each row's lists go as one space-separated text.
        let row_lists: Vec<String> = chunk.iter().map(|r| r.lists.join(" ")).collect();
        sqlx::query(
            "INSERT INTO import_rows (line, email, normalized, name, us_state, lists)
             SELECT line, email, normalized, name, us_state,
                    coalesce(string_to_array(nullif(lists, ''), ' '), '{}')
             FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
                  AS u(line, email, normalized, name, us_state, lists)",
        )
        .bind(&lines)
        .bind(&emails)
        .bind(&normalized)
        .bind(&names)
        .bind(&states)
        .bind(&row_lists)
        .execute(&mut **tx)
        .await
        .context("loading the rows")?;
        // Every spelling under which each address may have been erased.
        let (key_lines, hashes): (Vec<i32>, Vec<Vec<u8>>) = chunk
            .iter()
            .zip(&lines)
            .flat_map(|(r, line)| suppression_hashes(&r.email).into_iter().map(|h| (*line, h)))
            .unzip();
        sqlx::query("INSERT INTO import_keys SELECT * FROM unnest($1::int[], $2::bytea[])")
            .bind(&key_lines)
            .bind(&hashes)
            .execute(&mut **tx)
            .await
            .context("loading the suppression keys")?;
    }
    // Without statistics on the temporary table the planner guesses, and may loop.
    // (Two plain statements: `raw_sql`'s future is not `Send`, which a web handler needs.)
    for analyze in ["ANALYZE import_rows", "ANALYZE import_keys"] {
        sqlx::query(analyze).execute(&mut **tx).await?;
    }
    // The first line of each address counts; later ones are duplicates within the file.
    sqlx::query(
        "UPDATE import_rows r SET first = true
         FROM (SELECT DISTINCT ON (normalized) line FROM import_rows ORDER BY normalized, line) f
         WHERE r.line = f.line",
    )
    .execute(&mut **tx)
    .await?;
    let mut refused: Vec<(i32, String)> = sqlx::query_as(
        "WITH erased AS (
             SELECT DISTINCT ON (k.line) k.line, x.reason
             FROM import_keys k JOIN suppressions x ON x.email_hash = k.hash
             ORDER BY k.line, x.reason = 'complained' DESC)
         DELETE FROM import_rows r
         USING (SELECT r2.line,
                       CASE WHEN e.reason = 'complained' THEN 'suppressed: this address reported our mail as spam'
                            WHEN e.line IS NOT NULL THEN 'suppressed: this address was erased on request'
                            ELSE 'suppressed: the address is ' || s.status END AS why
                FROM import_rows r2
                LEFT JOIN erased e ON e.line = r2.line
                LEFT JOIN subscribers s ON s.email_normalized = r2.normalized
                WHERE e.line IS NOT NULL OR s.status IN ('unsubscribed', 'bounced', 'complained')) gone
         WHERE r.line = gone.line
         RETURNING r.line, gone.why",
    )
    .fetch_all(&mut **tx)
    .await
    .context("checking suppressions")?;
    refused.sort();
    // New addresses are added; pending ones become confirmed; either way each import row
    // learns its subscriber's id, so what follows needs no lookup by address.
    let imported: i64 = sqlx::query_scalar(
        "WITH people AS (
             INSERT INTO subscribers (id, email, email_normalized, name, us_state, status, confirmed_at)
             SELECT gen_random_uuid(), email, normalized, name, us_state, 'confirmed', now()
             FROM import_rows WHERE first
             ON CONFLICT (email_normalized) DO UPDATE
                 SET status = 'confirmed',
                     confirmed_at = CASE WHEN subscribers.status = 'pending' THEN now()
                                         ELSE subscribers.confirmed_at END,
                     updated_at = CASE WHEN subscribers.status = 'pending' THEN now()
                                       ELSE subscribers.updated_at END
             RETURNING xmax = 0 AS added)
         SELECT count(*) FILTER (WHERE added) FROM people",
    )
    .fetch_one(&mut **tx)
    .await
    .context("adding subscribers")?;
    // One join by address, after which each import row carries its subscriber's id.
    sqlx::query(
        "UPDATE import_rows r SET id = s.id FROM subscribers s
         WHERE r.first AND s.email_normalized = r.normalized",
    )
    .execute(&mut **tx)
    .await?;
    let imported = usize::try_from(imported).unwrap_or(0);
    sqlx::query(
        "INSERT INTO subscriptions (subscriber_id, list_id, status)
         SELECT DISTINCT r.id, l.id, 'confirmed' FROM import_rows r
         JOIN lists l ON l.id = ANY($1::uuid[]) OR l.slug = ANY(r.lists)
         WHERE r.first
         ON CONFLICT (subscriber_id, list_id) DO UPDATE SET status = 'confirmed', updated_at = now()
             WHERE subscriptions.status = 'pending'",
    )
    .bind(&list_ids)
    .execute(&mut **tx)
    .await
    .context("adding subscriptions")?;
    sqlx::query(
        "INSERT INTO consent_events (subscriber_id, kind, source, consent_text, consent_version, lists)
         SELECT r.id, 'signup', 'import', $1, 'import',
                ARRAY(SELECT DISTINCT x FROM unnest($2::text[] || r.lists) AS x ORDER BY x)
         FROM import_rows r WHERE r.first",
    )
    .bind(note)
    .bind(&slugs)
    .execute(&mut **tx)
    .await
    .context("logging consent")?;
    let duplicates: i64 = sqlx::query_scalar("SELECT count(*) FROM import_rows WHERE NOT first")
        .fetch_one(&mut **tx)
        .await?;
    let duplicates = usize::try_from(duplicates).unwrap_or(0);
    let accepted = rows.len() - refused.len();
    Ok(ImportReport {
        imported,
        already_subscribed: accepted - duplicates - imported,
        duplicates,
        refused: refused
            .into_iter()
            .map(|(line, why)| (line as usize, why))
            .collect(),
    })
}
