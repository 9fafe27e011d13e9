//! Upgrades keep everything. A database is built at an earlier schema version (the SQL
//! migrations up to it, applied as that release applied them) and filled the way that release
//! filled it: subscribers in every status and spelling, suppressions, consent events, a
//! confirmation waiting to go out, an update half sent with deliveries in every state, API
//! tokens, and (once there were staff) staff and their sessions. Then today's
//! `newsletter migrate` runs, and the test checks, table by table and row by row, that every
//! row that was there is there with the same values (new columns aside), except the rewrites
//! the address data migration documents, which it checks one by one; then that the invariants
//! hold: one canonical address per person, a suppression blocks every spelling, the half-sent
//! update finishes with each due reader mailed once and nobody else, a queued confirmation
//! still confirms, staff still sign in and their sessions still hold.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use newsletter::domain::{EmailAddress, NewPassword, Token};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use sqlx::migrate::Migrate;
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::admin::{free_port, on_port, Browser, PASSWORD};
use crate::helpers::{
    confirmation_link, snapshot, spawn_app_on_database, TestDatabase, SECRET_KEY,
};

/// The first release's schema.
const FIRST_RELEASE: i64 = 20261122000010;
/// The last schema before the address data migration (`data_migrations` came with it).
const BEFORE_ADDRESS_MIGRATION: i64 = 20261123000012;
/// The last schema before the news desk and staff accounts.
const BEFORE_NEWS_DESK_AND_STAFF: i64 = 20261201000101;
/// Where `data_migrations` (and with it the canonical-address step) was introduced.
const DATA_MIGRATIONS: i64 = 20261201000001;
/// Where staff accounts were introduced.
const STAFF: i64 = 20261201000200;
/// Where staff sessions gained their second-factor columns.
const SECOND_FACTORS: i64 = 20261207070000;

/// Today's schema minus its newest migration.
fn current_minus_one() -> i64 {
    let mut versions: Vec<i64> = newsletter::store::MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| m.version)
        .collect();
    versions.sort_unstable();
    versions[versions.len() - 2]
}

fn hash(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// A database at schema `version`: today's migrations up to it, recorded in `_sqlx_migrations`
/// as sqlx recorded them then.
async fn database_at(version: i64) -> (TestDatabase, PgPool) {
    let db = TestDatabase::empty().await;
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    conn.ensure_migrations_table().await.unwrap();
    let mut applied = 0;
    for migration in newsletter::store::MIGRATOR.iter() {
        if migration.migration_type.is_up_migration() && migration.version <= version {
            conn.apply(migration)
                .await
                .unwrap_or_else(|e| panic!("applying {}: {e}", migration.version));
            applied += 1;
        }
    }
    assert!(applied > 0);
    conn.close().await.unwrap();
    let pool = PgPool::connect(&db.url).await.unwrap();
    (db, pool)
}

/// What the seed put in, for the checks after the upgrade.
#[derive(Default)]
struct Seeded {
    update: Uuid,
    /// Addresses (as the relay sees them, lower-cased) the half-sent update must still reach,
    /// each once.
    due: BTreeSet<String>,
    /// Subscribers that must be gone (erased under another spelling).
    erased: Vec<Uuid>,
    /// Merged spellings: (keeper, merged away, expected status, expected canonical address).
    merged: Vec<(Uuid, Uuid, &'static str, &'static str)>,
    /// Subscribers whose stored address the data migration rewrites (only these may change).
    rewritten: Vec<Uuid>,
    /// Spellings a sign-up must not get past: their mailbox is suppressed.
    suppressed_spellings: Vec<&'static str>,
    /// The pending person whose confirmation waits in the queue.
    pending: Uuid,
    /// A staff session's cookie value, when the schema had staff sessions.
    session: Option<String>,
}

/// Runs `sql` with `binds` (text parameters, cast in the SQL as needed).
async fn exec(pool: &PgPool, sql: &str, binds: &[&str]) {
    let mut q = sqlx::query(sql);
    for b in binds {
        q = q.bind(*b);
    }
    q.execute(pool)
        .await
        .unwrap_or_else(|e| panic!("seeding with {sql}: {e}"));
}

/// One subscriber as an older release stored it: `email` as typed, `normalized` as it
/// normalized it, on the default list; `age_days` ago.
async fn subscriber(
    pool: &PgPool,
    email: &str,
    normalized: &str,
    status: &str,
    age_days: i32,
) -> Uuid {
    let id = Uuid::new_v4();
    let subscription = match status {
        "confirmed" => "confirmed",
        "pending" => "pending",
        _ => "unsubscribed",
    };
    sqlx::query(
        "INSERT INTO subscribers (id, email, email_normalized, status, created_at, updated_at,
                                  confirmed_at, unsubscribed_at)
         VALUES ($1, $2, $3, $4, now() - make_interval(days => $5), now() - make_interval(days => $5),
                 CASE WHEN $4 <> 'pending' THEN now() - make_interval(days => $5) + interval '1 hour' END,
                 CASE WHEN $4 = 'unsubscribed' THEN now() - interval '1 day' END)",
    )
    .bind(id)
    .bind(email)
    .bind(normalized)
    .bind(status)
    .bind(age_days)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO subscriptions (subscriber_id, list_id, status)
         SELECT $1, id, $2 FROM lists WHERE slug = 'us-icc-updates'",
    )
    .bind(id)
    .bind(subscription)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO consent_events (subscriber_id, kind, source, occurred_at, ip, user_agent,
                                     consent_text, consent_version, lists)
         VALUES ($1, 'signup', 'form', now() - make_interval(days => $2), '192.0.2.7',
                 'Mozilla/5.0', 'I agree to receive updates.', 'v1', '{us-icc-updates}')",
    )
    .bind(id)
    .bind(age_days)
    .execute(pool)
    .await
    .unwrap();
    if status != "pending" {
        sqlx::query(
            "INSERT INTO consent_events (subscriber_id, kind, source, occurred_at, lists)
             VALUES ($1, 'confirm', 'link', now() - make_interval(days => $2) + interval '1 hour',
                     '{us-icc-updates}')",
        )
        .bind(id)
        .bind(age_days)
        .execute(pool)
        .await
        .unwrap();
    }
    id
}

/// `who`'s delivery of the update in `status`.
async fn delivery(pool: &PgPool, update: Uuid, who: Uuid, status: &str) {
    sqlx::query(
        "INSERT INTO deliveries (kind, update_id, subscriber_id, status, attempts, next_attempt_at,
                                 last_reply, message_id, sent_at, created_at)
         VALUES ('update', $1, $2, $3,
                 CASE $3 WHEN 'queued' THEN 0 ELSE 1 END,
                 now() - interval '1 minute',
                 CASE $3 WHEN 'deferred' THEN '451 4.3.0 Try again later'
                         WHEN 'failed' THEN '550 5.1.1 No such user'
                         WHEN 'skipped' THEN 'no news item matches their topics' END,
                 CASE WHEN $3 IN ('sent', 'sending') THEN '<' || $2 || '@newsletter.example>' END,
                 CASE $3 WHEN 'sent' THEN now() - interval '5 minutes' END,
                 now() - interval '10 minutes')",
    )
    .bind(update)
    .bind(who)
    .bind(status)
    .execute(pool)
    .await
    .unwrap();
}

/// Fills the database at schema `version` as the release at that version would have.
async fn seed(pool: &PgPool, version: i64) -> Seeded {
    let mut seeded = Seeded::default();
    // Before the data migration, addresses were stored as typed and normalized by lower-casing
    // (Unicode domains and quoted local parts kept); after it, in their canonical form.
    let legacy = version < DATA_MIGRATIONS;

    // The half-sent update: started ten minutes ago by a worker that has since died.
    let update = Uuid::new_v4();
    seeded.update = update;
    exec(
        pool,
        "INSERT INTO updates (id, subject, preheader, intro_markdown, status, started_at, created_at)
         VALUES ($1::uuid, 'Before the upgrade', 'Half sent', 'Dear reader, *this* went out during an upgrade.',
                 'sending', now() - interval '10 minutes', now() - interval '1 hour')",
        &[&update.to_string()],
    )
    .await;
    exec(
        pool,
        "INSERT INTO update_lists (update_id, list_id)
         SELECT $1::uuid, id FROM lists WHERE slug = 'us-icc-updates'",
        &[&update.to_string()],
    )
    .await;
    exec(
        pool,
        "INSERT INTO news_items (update_id, position, title, summary, source, url, topic)
         VALUES ($1::uuid, 0, 'The Assembly meets', 'States Parties meet in The Hague.', 'ICC',
                 'https://example.org/asp', NULL)",
        &[&update.to_string()],
    )
    .await;
    exec(
        pool,
        "INSERT INTO workers (id, started_at, heartbeat_at)
         VALUES (gen_random_uuid(), now() - interval '1 hour', now() - interval '9 minutes')",
        &[],
    )
    .await;

    // Readers of every delivery state; the case of what they typed kept in `email`.
    let states = [
        "sent", "sent", "sent", "sending", "deferred", "failed", "skipped", "queued", "queued",
        "queued",
    ];
    for (i, state) in states.iter().enumerate() {
        let typed = format!("Reader{i}@Example.ORG");
        let id = subscriber(pool, &typed, &typed.to_lowercase(), "confirmed", 40).await;
        delivery(pool, update, id, state).await;
        if matches!(*state, "sending" | "deferred" | "queued") {
            seeded.due.insert(typed.to_lowercase());
        }
    }
    // Due when the update began, no longer: they must not be mailed.
    let left = subscriber(
        pool,
        "left@example.org",
        "left@example.org",
        "unsubscribed",
        30,
    )
    .await;
    delivery(pool, update, left, "queued").await;
    let bounced = subscriber(
        pool,
        "bounced@example.org",
        "bounced@example.org",
        "bounced",
        30,
    )
    .await;
    exec(
        pool,
        "UPDATE subscribers SET hard_bounces = 1 WHERE id = $1::uuid",
        &[&bounced.to_string()],
    )
    .await;
    delivery(pool, update, bounced, "queued").await;
    let complained = subscriber(
        pool,
        "Carl@Example.org",
        "carl@example.org",
        "complained",
        30,
    )
    .await;
    sqlx::query("INSERT INTO suppressions (email_hash, reason) VALUES ($1, 'complained')")
        .bind(hash("carl@example.org"))
        .execute(pool)
        .await
        .unwrap();
    delivery(pool, update, complained, "queued").await;
    seeded.suppressed_spellings.extend([
        "carl@example.org",
        "CARL@EXAMPLE.ORG",
        "\"carl\"@example.org",
    ]);
    // Erased: only the hash of the address is left.
    sqlx::query(
        "INSERT INTO suppressions (email_hash, reason, created_at)
         VALUES ($1, 'erased', now() - interval '3 days')",
    )
    .bind(hash("gone@example.org"))
    .execute(pool)
    .await
    .unwrap();
    seeded
        .suppressed_spellings
        .extend(["gone@example.org", "Gone@Example.Org"]);

    // Waiting for their confirmation mail, which the old worker had not sent yet.
    let pending = subscriber(pool, "pat@example.org", "pat@example.org", "pending", 0).await;
    seeded.pending = pending;
    let nonce = Token::nonce();
    let token = Token::derive(
        SECRET_KEY.as_bytes(),
        newsletter::store::signups::CONFIRM_PURPOSE,
        &nonce,
    );
    sqlx::query(
        "INSERT INTO confirmation_tokens (token_hash, subscriber_id, expires_at)
         VALUES ($1, $2, now() + interval '2 days')",
    )
    .bind(token.hash().0.as_slice())
    .bind(pending)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO deliveries (kind, subscriber_id, payload) VALUES ('confirmation', $1, $2)",
    )
    .bind(pending)
    .bind(serde_json::json!({ "nonce": nonce }))
    .execute(pool)
    .await
    .unwrap();

    // An API token and a remembered idempotent answer.
    let api_token = Uuid::new_v4();
    sqlx::query("INSERT INTO api_tokens (id, name, token_hash) VALUES ($1, 'site', $2)")
        .bind(api_token)
        .bind(hash("an api token"))
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO idempotency_keys (api_token_id, key, scope, response_status, response_body)
         VALUES ($1, 'k-1', 'POST /api/v1/updates', 201, '{\"id\": \"x\"}')",
    )
    .bind(api_token)
    .execute(pool)
    .await
    .unwrap();

    if legacy {
        // Two spellings of one mailbox (a Unicode and a punycode domain), stored as two people:
        // the older confirmed, the newer unsubscribed. Merged, the stricter status wins.
        let bob = subscriber(
            pool,
            "bob@bücher.example",
            "bob@bücher.example",
            "confirmed",
            30,
        )
        .await;
        let bob2 = subscriber(
            pool,
            "BOB@xn--bcher-kva.example",
            "bob@xn--bcher-kva.example",
            "unsubscribed",
            10,
        )
        .await;
        delivery(pool, update, bob, "queued").await;
        seeded
            .merged
            .push((bob, bob2, "unsubscribed", "bob@xn--bcher-kva.example"));
        seeded.rewritten.push(bob);
        // A quoted spelling, pending, and the plain one, confirmed and older.
        let cy = subscriber(pool, "cy@example.org", "cy@example.org", "confirmed", 20).await;
        let cy2 = subscriber(
            pool,
            "\"cy\"@example.org",
            "\"cy\"@example.org",
            "pending",
            5,
        )
        .await;
        delivery(pool, update, cy, "queued").await;
        seeded.due.insert("cy@example.org".into());
        seeded.merged.push((cy, cy2, "confirmed", "cy@example.org"));
        // Both spellings confirmed, each with a delivery of the update: one went, the other
        // waits. The mailbox got the update once; it must not get it again.
        let dee = subscriber(
            pool,
            "dee@bücher.example",
            "dee@bücher.example",
            "confirmed",
            25,
        )
        .await;
        let dee2 = subscriber(
            pool,
            "dee@xn--bcher-kva.example",
            "dee@xn--bcher-kva.example",
            "confirmed",
            15,
        )
        .await;
        delivery(pool, update, dee, "sent").await;
        delivery(pool, update, dee2, "queued").await;
        seeded
            .merged
            .push((dee, dee2, "confirmed", "dee@xn--bcher-kva.example"));
        seeded.rewritten.push(dee);
        // Erased under the Unicode spelling after confirming under the punycode one: erased.
        sqlx::query(
            "INSERT INTO suppressions (email_hash, reason, created_at)
             VALUES ($1, 'erased', now() - interval '3 days')",
        )
        .bind(hash("erin@bücher.example"))
        .execute(pool)
        .await
        .unwrap();
        let erin = subscriber(
            pool,
            "erin@xn--bcher-kva.example",
            "erin@xn--bcher-kva.example",
            "confirmed",
            10,
        )
        .await;
        delivery(pool, update, erin, "queued").await;
        seeded.erased.push(erin);
        seeded.suppressed_spellings.extend([
            "erin@xn--bcher-kva.example",
            "ERIN@BÜCHER.example",
            "\"erin\"@bücher.example",
        ]);
        // A complaint stored under the Unicode spelling blocks the punycode one too.
        sqlx::query("INSERT INTO suppressions (email_hash, reason) VALUES ($1, 'complained')")
            .bind(hash("fay@bücher.example"))
            .execute(pool)
            .await
            .unwrap();
    } else {
        // Stored canonical since the data migration, which has run.
        let bob = subscriber(
            pool,
            "bob@xn--bcher-kva.example",
            "bob@xn--bcher-kva.example",
            "confirmed",
            30,
        )
        .await;
        delivery(pool, update, bob, "queued").await;
        seeded.due.insert("bob@xn--bcher-kva.example".into());
        sqlx::query("INSERT INTO suppressions (email_hash, reason) VALUES ($1, 'complained')")
            .bind(hash("fay@xn--bcher-kva.example"))
            .execute(pool)
            .await
            .unwrap();
        exec(
            pool,
            "INSERT INTO data_migrations (name, report) VALUES ('canonical_addresses', '{}')",
            &[],
        )
        .await;
    }
    seeded.suppressed_spellings.extend([
        "fay@xn--bcher-kva.example",
        "Fay@Bücher.example",
        "\"fay\"@bücher.example",
    ]);

    if version >= STAFF {
        let password = NewPassword::parse(PASSWORD).unwrap().hash();
        let staff = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO staff (id, email, email_normalized, role, password_hash)
             VALUES ($1, 'Ana@Example.org', 'ana@example.org', 'admin', $2)",
        )
        .bind(staff)
        .bind(&password)
        .execute(pool)
        .await
        .unwrap();
        let cookie = Token::generate().as_str().to_owned();
        let columns = if version >= SECOND_FACTORS {
            "(id_hash, staff_id, method, second_factor_at)
             VALUES ($1, $2, 'password', now())"
        } else {
            "(id_hash, staff_id) VALUES ($1, $2)"
        };
        sqlx::query(&format!("INSERT INTO staff_sessions {columns}"))
            .bind(hash(&cookie))
            .bind(staff)
            .execute(pool)
            .await
            .unwrap();
        seeded.session = Some(cookie);
    }
    if version >= 20261207002400 {
        // That release wrote the update's first version when it was made, and fixed the
        // version it sends when it started.
        exec(
            pool,
            "INSERT INTO update_versions (update_id, version, content, actor)
             SELECT u.id, 1, jsonb_build_object(
                        'subject', u.subject, 'preheader', u.preheader, 'intro', u.intro_markdown,
                        'template', u.template, 'from', NULL, 'reply_to', NULL,
                        'lists', ARRAY['us-icc-updates'],
                        'news_items', jsonb_build_array(jsonb_build_object(
                            'title', 'The Assembly meets', 'summary', 'States Parties meet in The Hague.',
                            'source', 'ICC', 'url', 'https://example.org/asp', 'published_on', NULL,
                            'topic', NULL, 'news_id', NULL))),
                    'api'
             FROM updates u",
            &[],
        )
        .await;
        exec(
            pool,
            "UPDATE updates SET sent_version = 1, templates_as_of = 0, archive_chosen = true",
            &[],
        )
        .await;
    }
    seeded
}

/// `row` with only `columns`.
fn project(row: &Json, columns: &BTreeSet<String>) -> String {
    let object: serde_json::Map<String, Json> = row
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| columns.contains(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Json::Object(object).to_string()
}

/// The subscriber a row belongs to, if any (`id` of `subscribers`, else `subscriber_id`).
fn owner(table: &str, row: &Json) -> Option<Uuid> {
    let key = if table == "subscribers" {
        "id"
    } else {
        "subscriber_id"
    };
    row.get(key)?.as_str()?.parse().ok()
}

async fn upgrade_from(version: i64) {
    let (db, pool) = database_at(version).await;
    let seeded = seed(&pool, version).await;
    let before = snapshot(&pool).await;

    // Today's `newsletter migrate`, as an operator runs it.
    let out = Command::new(env!("CARGO_BIN_EXE_newsletter"))
        .arg("migrate")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("DATABASE_URL")
        .env("NEWSLETTER__DATABASE__URL", &db.url)
        .env("NEWSLETTER__SECURITY__SECRET_KEY", SECRET_KEY)
        .output()
        .unwrap();
    let printed =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "migrate from {version} failed:\n{printed}"
    );
    let after = snapshot(&pool).await;

    // Row by row: whatever was there is there, in the columns it had, but for the rows of the
    // people the address migration merges, rewrites or erases, checked below one by one.
    let touched: BTreeSet<Uuid> = seeded
        .merged
        .iter()
        .flat_map(|(keeper, away, ..)| [*keeper, *away])
        .chain(seeded.erased.iter().copied())
        .chain(seeded.rewritten.iter().copied())
        .collect();
    let mut lost = Vec::new();
    for (table, (columns, rows)) in &before {
        let Some((now_columns, now_rows)) = after.get(table) else {
            lost.push(format!("table {table} is gone"));
            continue;
        };
        let dropped: Vec<&String> = columns.difference(now_columns).collect();
        assert!(dropped.is_empty(), "{table} lost columns {dropped:?}");
        let mut remaining: BTreeMap<String, usize> = BTreeMap::new();
        for row in now_rows {
            *remaining.entry(project(row, columns)).or_default() += 1;
        }
        for row in rows {
            let key = project(row, columns);
            match remaining.get_mut(&key) {
                Some(n) if *n > 0 => *n -= 1,
                _ if owner(table, row).is_some_and(|o| touched.contains(&o)) => {}
                _ => lost.push(format!("{table}: {key}")),
            }
        }
    }
    assert!(
        lost.is_empty(),
        "upgrading from {version} lost or changed rows:\n{}",
        lost.join("\n")
    );

    // The address migration's work, person by person.
    for (keeper, away, status, canonical) in &seeded.merged {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT status, email_normalized FROM subscribers WHERE id = $1")
                .bind(keeper)
                .fetch_optional(&pool)
                .await
                .unwrap();
        assert_eq!(
            row,
            Some((status.to_string(), canonical.to_string())),
            "the older spelling is kept, canonical, with the stricter status"
        );
        let gone: i64 = sqlx::query_scalar("SELECT count(*) FROM subscribers WHERE id = $1")
            .bind(away)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(gone, 0, "the other spelling is merged into it");
        let history: i64 =
            sqlx::query_scalar("SELECT count(*) FROM consent_events WHERE subscriber_id = $1")
                .bind(keeper)
                .fetch_one(&pool)
                .await
                .unwrap();
        let had = before["consent_events"]
            .1
            .iter()
            .filter(|e| [*keeper, *away].contains(&owner("consent_events", e).unwrap()))
            .count();
        assert!(
            history as usize >= had,
            "both spellings' consent records are kept ({history} of {had})"
        );
    }
    for id in &seeded.erased {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM subscribers WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(left, 0, "erased under another spelling");
    }

    // One canonical address per person.
    let people: Vec<(String, String)> =
        sqlx::query_as("SELECT email, email_normalized FROM subscribers")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut mailboxes = BTreeSet::new();
    for (email, normalized) in &people {
        let canonical = EmailAddress::parse(email)
            .unwrap_or_else(|e| panic!("{email} no longer parses: {e}"))
            .canonical()
            .to_owned();
        assert_eq!(&canonical, normalized, "{email} is stored canonical");
        assert!(mailboxes.insert(canonical), "{email}: one row per mailbox");
    }
    pool.close().await;

    // The service on the upgraded database: the half-sent update finishes.
    let app = spawn_app_on_database(
        db,
        &on_port(
            free_port(),
            &[
                ("worker.lease_seconds", 5.into()),
                ("smtp.timeout_seconds", 3.into()),
            ],
        ),
    )
    .await;
    app.wait_for_update_status_within(&seeded.update.to_string(), "sent", Duration::from_secs(60))
        .await;
    let confirmation = app.smtp.wait_for(1, Duration::from_secs(30)).await;
    let messages = app.smtp.messages();
    let (to_pat, updates): (Vec<_>, Vec<_>) = messages
        .iter()
        .partition(|m| m.rcpt_to[0] == "pat@example.org");
    assert!(!confirmation.is_empty());
    let mailed: Vec<String> = updates
        .iter()
        .map(|m| m.rcpt_to[0].to_lowercase())
        .collect();
    let unique: BTreeSet<String> = mailed.iter().cloned().collect();
    assert_eq!(unique.len(), mailed.len(), "each reader once: {mailed:?}");
    assert_eq!(
        unique, seeded.due,
        "the update reaches exactly those still due after upgrading from {version}"
    );

    // The confirmation queued before the upgrade still confirms.
    assert_eq!(to_pat.len(), 1, "one confirmation mail");
    let link = confirmation_link(&to_pat[0].data);
    let token = link.split("token=").nth(1).expect("a token in the link");
    let confirmed = app
        .post_form("/subscriptions/confirm", &format!("token={token}"))
        .await;
    assert_eq!(confirmed.status(), 200);
    let status: String = sqlx::query_scalar("SELECT status FROM subscribers WHERE id = $1")
        .bind(seeded.pending)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        status, "confirmed",
        "the pre-upgrade confirmation link works"
    );

    // A suppression blocks every spelling of its mailbox: an import of each is refused
    // (one file each: within one file, spellings of one mailbox are duplicates).
    for spelling in &seeded.suppressed_spellings {
        let csv = format!("email\n\"{}\"\n", spelling.replace('"', "\"\""));
        let (ok, out, err) = crate::cli::import_into(app.database_url(), csv.as_bytes());
        assert!(ok, "{err}");
        assert!(
            out.contains("imported 0") && out.contains("suppressed 1"),
            "{spelling} is refused after upgrading from {version}:\n{out}"
        );
    }

    // Staff sign in with the password they had, and a session from before still holds.
    if let Some(cookie) = &seeded.session {
        let mut old = Browser::new(&app);
        old.cookies.push(format!("newsletter_staff={cookie}"));
        let page = old.get("/admin").await;
        assert_eq!(
            page.status(),
            200,
            "a session from before the upgrade holds"
        );
        let mut browser = Browser::new(&app);
        let r = browser.try_log_in("ana@example.org", PASSWORD).await;
        assert_eq!(
            r.status(),
            303,
            "the password from before the upgrade signs in"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn an_upgrade_from_the_first_release_keeps_everything() {
    upgrade_from(FIRST_RELEASE).await;
}

#[tokio::test]
async fn an_upgrade_from_before_the_address_migration_merges_spellings_and_keeps_everything() {
    upgrade_from(BEFORE_ADDRESS_MIGRATION).await;
}

#[tokio::test]
async fn an_upgrade_from_before_the_news_desk_and_staff_keeps_everything() {
    upgrade_from(BEFORE_NEWS_DESK_AND_STAFF).await;
}

#[tokio::test]
async fn an_upgrade_from_the_schema_before_the_current_one_keeps_everything() {
    let version = current_minus_one();
    assert!(version > SECOND_FACTORS - 1, "{version}");
    upgrade_from(version).await;
}
