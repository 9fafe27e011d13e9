//! Importing subscribers, set-based: the rows go into a temporary table in chunks, then a few
//! statements sort them out, each row to one outcome. Nobody's status goes up on an import's
//! word but a pending person's whom staff attest consented: erased (suppressed), unsubscribed,
//! bounced and complained addresses stay out (only their own double opt-in brings them back);
//! a row the file says left never subscribes anyone and puts its address on the suppression
//! list.

use anyhow::Context;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::preferences::suppression_hashes;
use crate::domain::{EmailAddress, ImportStatus, SubscriberName, UsState};

/// Rows sent to PostgreSQL per statement.
const CHUNK: usize = 10_000;

#[derive(Debug, Clone)]
pub struct ImportRow {
    pub line: usize,
    pub email: EmailAddress,
    pub name: Option<SubscriberName>,
    pub state: Option<UsState>,
    pub status: ImportStatus,
    /// Slugs of lists this row joins at its status (known open lists only).
    pub lists: Vec<String>,
    /// Slugs of lists this row joins as pending (awaiting the person's confirmation).
    pub pending_lists: Vec<String>,
}

impl ImportRow {
    /// A row that names no list joins the default lists and its state's alliance lists.
    fn names_lists(&self) -> bool {
        !(self.lists.is_empty() && self.pending_lists.is_empty())
    }
}

/// The lists of an import besides the rows' own: `every` row joins the first, and a row that
/// names no list joins `unlisted` (the default lists when staff chose none) and its state's
/// alliance lists.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportLists<'a> {
    pub every: &'a [(Uuid, String)],
    pub unlisted: &'a [(Uuid, String)],
}

/// What became of the rows, one outcome each.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// New people.
    pub imported: usize,
    /// People already here who joined a list (or, pending, became confirmed).
    pub added_to_lists: usize,
    /// People already here on every list the row names: nothing changed.
    pub already_there: usize,
    /// Later lines of an address that an earlier line of the same file already had.
    pub duplicates: usize,
    /// (line, why): on the suppression list, unsubscribed, bounced or complained here, or so
    /// says the file.
    pub suppressed: Vec<(usize, String)>,
    /// (line, why), about the `status` column: the file says the person left, but they are
    /// subscribed here; they are left as they are.
    pub refused: Vec<(usize, String)>,
}

/// Imports `rows` in one transaction.
pub async fn import(
    pool: &PgPool,
    rows: &[ImportRow],
    lists: ImportLists<'_>,
    note: &str,
) -> anyhow::Result<ImportReport> {
    let mut tx = pool.begin().await.context("starting the import")?;
    let report = import_in(&mut tx, rows, lists, note).await?;
    tx.commit().await.context("committing the import")?;
    Ok(report)
}

/// Imports `rows` inside the caller's transaction `tx`, which must commit (or roll back) before
/// it imports again: so a job records its progress with the rows, at once.
pub async fn import_in(
    tx: &mut Transaction<'_, Postgres>,
    rows: &[ImportRow],
    lists: ImportLists<'_>,
    note: &str,
) -> anyhow::Result<ImportReport> {
    let ids = |l: &[(Uuid, String)]| l.iter().map(|(id, _)| *id).collect::<Vec<Uuid>>();
    let (every, unlisted) = (ids(lists.every), ids(lists.unlisted));
    // outcome: null while undecided, then imported, added, already, duplicate, suppressed or
    // refused; was: the person's status before this import, when they were here.
    sqlx::query(
        "CREATE TEMPORARY TABLE import_rows (
             line integer NOT NULL, email text NOT NULL, normalized text NOT NULL,
             name text, us_state text, status text NOT NULL, lists text[] NOT NULL,
             pending text[] NOT NULL, unlisted boolean NOT NULL,
             first boolean NOT NULL DEFAULT false, id uuid, was text, joined text[],
             outcome text, why text
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
        load(tx, chunk).await?;
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
    sqlx::query("UPDATE import_rows SET outcome = 'duplicate' WHERE NOT first")
        .execute(&mut **tx)
        .await?;
    // Who is here already, and how.
    sqlx::query(
        "UPDATE import_rows r SET id = s.id, was = s.status FROM subscribers s
         WHERE r.first AND s.email_normalized = r.normalized",
    )
    .execute(&mut **tx)
    .await
    .context("finding who is here")?;
    // Out whatever the file says: on the suppression list under any spelling, or out here.
    sqlx::query(
        "WITH erased AS (
             SELECT DISTINCT ON (k.line) k.line, x.reason
             FROM import_keys k JOIN suppressions x ON x.email_hash = k.hash
             ORDER BY k.line, x.reason = 'complained' DESC)
         UPDATE import_rows r SET outcome = 'suppressed',
             why = CASE WHEN e.reason = 'complained' THEN 'suppressed: this address reported our mail as spam'
                        WHEN e.reason = 'erased' THEN 'suppressed: this address was erased on request'
                        WHEN e.line IS NOT NULL THEN 'suppressed: this address is on the suppression list (' || e.reason || ')'
                        ELSE 'suppressed: the address is ' || r.was END
         FROM import_rows r2 LEFT JOIN erased e ON e.line = r2.line
         WHERE r.line = r2.line AND r.outcome IS NULL
           AND (e.line IS NOT NULL OR r2.was IN ('unsubscribed', 'bounced', 'complained'))",
    )
    .execute(&mut **tx)
    .await
    .context("checking suppressions")?;
    // The file says they left, but they are subscribed here: an import takes nobody off.
    sqlx::query(
        "UPDATE import_rows SET outcome = 'refused',
             why = '\"' || status || '\": ' || CASE was WHEN 'confirmed' THEN 'this person is confirmed here'
                                                   ELSE 'this person signed up here and has not confirmed yet' END
                   || '; an import takes nobody off (unsubscribe them from their page if the file is right), so the row was left out'
         WHERE outcome IS NULL AND status NOT IN ('confirmed', 'pending', 'lapsed') AND was IS NOT NULL",
    )
    .execute(&mut **tx)
    .await?;
    // New people the file says left: kept with that status (erased ones only as a hash), and
    // with the reason in their consent log.
    sqlx::query(
        "WITH gone AS (
             INSERT INTO subscribers (id, email, email_normalized, name, us_state, status, unsubscribed_at)
             SELECT gen_random_uuid(), email, normalized, name, us_state, status, now() FROM import_rows
             WHERE outcome IS NULL AND status IN ('unsubscribed', 'bounced', 'complained')
             ON CONFLICT (email_normalized) DO NOTHING
             RETURNING id, email_normalized, status)
         , logged AS (
             INSERT INTO consent_events (subscriber_id, kind, source, consent_text, consent_version)
             SELECT id, CASE status WHEN 'unsubscribed' THEN 'unsubscribe' WHEN 'bounced' THEN 'bounce'
                                    ELSE 'complaint' END,
                    'import', $1, 'import'
             FROM gone)
         UPDATE import_rows r SET id = g.id FROM gone g WHERE r.first AND r.normalized = g.email_normalized",
    )
    .bind(note)
    .execute(&mut **tx)
    .await
    .context("keeping who left")?;
    sqlx::query(
        "UPDATE import_rows SET outcome = 'suppressed', why = 'suppressed: the file says ' || status
         WHERE outcome IS NULL AND status NOT IN ('confirmed', 'pending', 'lapsed')",
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO suppressions (email_hash, reason)
         SELECT sha256(convert_to(normalized, 'UTF8')), status
         FROM import_rows WHERE outcome = 'suppressed' AND status NOT IN ('confirmed', 'pending', 'lapsed')
         ON CONFLICT (email_hash) DO NOTHING",
    )
    .execute(&mut **tx)
    .await
    .context("suppressing who left")?;
    // The rest join: new people at the row's status; a pending person becomes confirmed on
    // staff's word; no one else's status changes. Each row learns its subscriber's id.
    sqlx::query(
        "WITH people AS (
             INSERT INTO subscribers (id, email, email_normalized, name, us_state, status, confirmed_at)
             SELECT gen_random_uuid(), email, normalized, name, us_state, status,
                    CASE WHEN status = 'confirmed' THEN now() END
             FROM import_rows WHERE outcome IS NULL
             ON CONFLICT (email_normalized) DO UPDATE
                 -- (a lapsed row never makes a pending person lapsed: a click would then
                 -- confirm them without their own opt-in)
                 SET status = CASE WHEN subscribers.status = 'pending' AND excluded.status <> 'lapsed'
                                   THEN excluded.status ELSE subscribers.status END,
                     confirmed_at = CASE WHEN subscribers.status = 'pending' AND excluded.status <> 'lapsed'
                                         THEN excluded.confirmed_at ELSE subscribers.confirmed_at END,
                     updated_at = CASE WHEN subscribers.status = 'pending' AND excluded.status = 'confirmed'
                                       THEN now() ELSE subscribers.updated_at END
             RETURNING id, email_normalized, xmax = 0 AS added)
         UPDATE import_rows r SET id = p.id, outcome = CASE WHEN p.added THEN 'imported' END
         FROM people p WHERE r.outcome IS NULL AND r.normalized = p.email_normalized",
    )
    .execute(&mut **tx)
    .await
    .context("adding subscribers")?;
    // Their lists: at the row's status (pending_lists as pending); a pending membership becomes
    // confirmed, one the person left stays left.
    sqlx::query(
        "WITH active AS (
             SELECT id, CASE WHEN status IN ('confirmed', 'lapsed') THEN 'confirmed' ELSE 'pending' END AS status,
                    lists, pending, unlisted, us_state
             FROM import_rows WHERE outcome IS NULL OR outcome = 'imported')
         , wanted AS (
             SELECT r.id, l.list_id, r.status FROM active r, unnest($1::uuid[]) AS l(list_id)
             UNION ALL
             SELECT r.id, l.list_id, r.status FROM active r, unnest($2::uuid[]) AS l(list_id)
             WHERE r.unlisted
             UNION ALL
             SELECT r.id, a.id, r.status FROM active r JOIN alliance_lists a ON a.us_state = r.us_state
             WHERE r.unlisted
             UNION ALL
             SELECT r.id, l.id, r.status FROM active r
             JOIN lists l ON l.slug = ANY(r.lists) AND l.archived_at IS NULL
             UNION ALL
             SELECT r.id, l.id, 'pending' FROM active r
             JOIN lists l ON l.slug = ANY(r.pending) AND l.archived_at IS NULL)
         , best AS (
             SELECT DISTINCT ON (id, list_id) id, list_id, status FROM wanted
             ORDER BY id, list_id, status = 'confirmed' DESC)
         , joined AS (
             INSERT INTO subscriptions (subscriber_id, list_id, status)
             SELECT id, list_id, status FROM best
             ON CONFLICT (subscriber_id, list_id) DO UPDATE SET status = 'confirmed', updated_at = now()
                 WHERE subscriptions.status = 'pending' AND excluded.status = 'confirmed'
             RETURNING subscriber_id, list_id)
         UPDATE import_rows r SET joined = j.slugs
         FROM (SELECT j.subscriber_id, array_agg(l.slug ORDER BY l.slug) AS slugs
               FROM joined j JOIN lists l ON l.id = j.list_id GROUP BY j.subscriber_id) j
         WHERE r.id = j.subscriber_id AND (r.outcome IS NULL OR r.outcome = 'imported')",
    )
    .bind(&every)
    .bind(&unlisted)
    .execute(&mut **tx)
    .await
    .context("adding subscriptions")?;
    sqlx::query(
        "UPDATE import_rows SET outcome = CASE
             WHEN joined IS NOT NULL OR (was = 'pending' AND status = 'confirmed') THEN 'added'
             ELSE 'already' END
         WHERE outcome IS NULL",
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO consent_events (subscriber_id, kind, source, consent_text, consent_version, lists)
         SELECT id, 'signup', 'import', $1, 'import', coalesce(joined, '{}')
         FROM import_rows WHERE outcome IN ('imported', 'added')",
    )
    .bind(note)
    .execute(&mut **tx)
    .await
    .context("logging consent")?;
    report(tx).await
}

/// Sends `chunk` to the temporary tables: its rows, and every spelling under which each
/// address may have been erased.
async fn load(tx: &mut Transaction<'_, Postgres>, chunk: &[ImportRow]) -> anyhow::Result<()> {
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
    let statuses: Vec<&str> = chunk.iter().map(|r| r.status.as_str()).collect();
    // Arrays of arrays must be rectangular: each row's lists go as one space-separated text.
    let row_lists: Vec<String> = chunk.iter().map(|r| r.lists.join(" ")).collect();
    let pending: Vec<String> = chunk.iter().map(|r| r.pending_lists.join(" ")).collect();
    let unlisted: Vec<bool> = chunk.iter().map(|r| !r.names_lists()).collect();
    sqlx::query(
        "INSERT INTO import_rows (line, email, normalized, name, us_state, status, lists, pending, unlisted)
         SELECT line, email, normalized, name, us_state, status,
                coalesce(string_to_array(nullif(lists, ''), ' '), '{}'),
                coalesce(string_to_array(nullif(pending, ''), ' '), '{}'), unlisted
         FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::text[], $9::bool[])
              AS u(line, email, normalized, name, us_state, status, lists, pending, unlisted)",
    )
    .bind(&lines)
    .bind(&emails)
    .bind(&normalized)
    .bind(&names)
    .bind(&states)
    .bind(&statuses)
    .bind(&row_lists)
    .bind(&pending)
    .bind(&unlisted)
    .execute(&mut **tx)
    .await
    .context("loading the rows")?;
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
    Ok(())
}

/// The outcome of every row of `import_rows`, counted; the suppressed and refused ones by line.
async fn report(tx: &mut Transaction<'_, Postgres>) -> anyhow::Result<ImportReport> {
    let counts: Vec<(String, i64)> =
        sqlx::query_as("SELECT outcome, count(*) FROM import_rows GROUP BY outcome")
            .fetch_all(&mut **tx)
            .await
            .context("counting the outcome")?;
    let listed: Vec<(i32, String, String)> = sqlx::query_as(
        "SELECT line, outcome, why FROM import_rows
         WHERE outcome IN ('suppressed', 'refused') ORDER BY line",
    )
    .fetch_all(&mut **tx)
    .await
    .context("reading the rows left out")?;
    let count = |name: &str| {
        counts
            .iter()
            .find(|(outcome, _)| outcome == name)
            .map_or(0, |(_, n)| usize::try_from(*n).unwrap_or(0))
    };
    let mut report = ImportReport {
        imported: count("imported"),
        added_to_lists: count("added"),
        already_there: count("already"),
        duplicates: count("duplicate"),
        ..Default::default()
    };
    for (line, outcome, why) in listed {
        let row = (usize::try_from(line).unwrap_or(0), why);
        if outcome == "suppressed" {
            report.suppressed.push(row);
        } else {
            report.refused.push(row);
        }
    }
    Ok(report)
}
