//! All SQL lives here: one file per table family, bound parameters only.

pub mod addresses;
pub mod api_tokens;
pub mod archive;
pub mod audit;
pub mod bounces;
pub mod bulk;
pub mod confirmations;
pub mod consent;
pub mod dashboard;
pub mod deliveries;
pub mod digests;
pub mod feeds;
pub mod hygiene;
pub mod idempotency;
pub mod import_jobs;
pub mod imports;
pub mod link_checks;
pub mod links;
pub mod lists;
pub mod look;
pub mod mail_templates;
pub mod mailbox;
pub mod metrics;
pub mod news;
pub mod oidc;
pub mod passkeys;
pub mod preferences;
pub mod reports;
pub mod second_factor;
pub mod secret_key;
pub mod signups;
pub mod staff;
pub mod subscribers;
pub mod unsubscribes;
pub mod updates;
pub mod workers;

use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use crate::config::DatabaseSettings;

/// The embedded migrations in `migrations/`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A lazy pool: the service starts (and `/health` answers 503) while the database is down.
pub fn pool(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .idle_timeout(Some(Duration::from_secs(300)))
        .connect_lazy(settings.url.expose())
        .context("invalid database.url")
}

/// A pool of one connection for statements that reach their rows only by key conditions,
/// each planned once per connection: sequential scans off and generic plans forced
/// (`enable_seqscan = off`, `plan_cache_mode = force_generic_plan` for the connection). A
/// prepared statement's plan is cached; made while a table was small (a new installation's
/// first send), it could be a scan of the whole table that stays as the table grows, and
/// left to choose, PostgreSQL plans some statements again at every call (measured: the
/// recipient read replanned at one call in six, 4 µs a mail). With sequential scans off, a
/// plan that reaches rows by an index condition on their keys is the cheap one at any size.
/// Connects like the pool it is made from, lazily. Used by the worker's outcome writes and
/// recipient reads, one statement at a time each.
#[derive(Clone)]
pub struct KeyedPool(PgPool);

impl KeyedPool {
    /// One connection to the database of `pool`, with its connect options and acquire timeout.
    pub fn from(pool: &PgPool) -> Self {
        let options = (*pool.connect_options()).clone().options([
            ("enable_seqscan", "off"),
            ("plan_cache_mode", "force_generic_plan"),
        ]);
        Self(
            PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(pool.options().get_acquire_timeout())
                .idle_timeout(Some(Duration::from_secs(300)))
                .connect_lazy_with(options),
        )
    }

    pub fn pool(&self) -> &PgPool {
        &self.0
    }
}

/// Applies the SQL migrations, then the data migrations that need our own code (each once).
/// Returns what the data migrations that ran this time did, a line each, for the caller to
/// show once (`migrate` prints them; `serve` and `worker` log them).
pub async fn migrate(pool: &PgPool) -> anyhow::Result<Vec<String>> {
    MIGRATOR
        .run(pool)
        .await
        .context("applying database migrations")?;
    if let Some(report) = addresses::canonicalize(pool)
        .await
        .context("bringing addresses to their canonical form")?
    {
        return Ok(vec![report.to_string()]);
    }
    Ok(Vec::new())
}

/// How the database's schema stands against this build's migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// Every migration of this build is applied, and no other.
    Current,
    /// This many of this build's migrations are not applied yet.
    Behind(usize),
    /// A migration this build does not know is applied: a newer version migrated it.
    Newer(i64),
}

/// Where the schema stands (`Behind` for an empty database).
pub async fn schema(pool: &PgPool) -> anyhow::Result<Schema> {
    let applied: Vec<i64> =
        match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
        {
            Ok(applied) => applied,
            // 42P01: undefined_table (nothing was ever migrated)
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => Vec::new(),
            Err(e) => return Err(e).context("reading the applied migrations"),
        };
    let known: std::collections::BTreeSet<i64> = MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| m.version)
        .collect();
    if let Some(newer) = applied.iter().find(|v| !known.contains(v)) {
        return Ok(Schema::Newer(*newer));
    }
    let missing = known.iter().filter(|v| !applied.contains(v)).count();
    Ok(match missing {
        0 => Schema::Current,
        n => Schema::Behind(n),
    })
}

/// Waits until the schema is this build's, checking every 2 seconds: a process that does not
/// migrate (`worker`, `inbound`) started beside one that does (`serve`, `newsletter migrate`)
/// waits for it instead of running against a half-made schema. `Ok(false)`: `shutdown` came
/// first.
///
/// Errors: the database was migrated by a newer version (this build must not touch it).
pub async fn wait_for_schema(
    pool: &PgPool,
    shutdown: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<bool> {
    let mut told = false;
    loop {
        match schema(pool).await {
            Ok(Schema::Current) => return Ok(true),
            Ok(Schema::Newer(version)) => anyhow::bail!(
                "the database was migrated by a newer version of newsletter (migration \
                 {version}, which this build does not know): run that version or a newer one"
            ),
            Ok(Schema::Behind(n)) if !told => {
                tracing::warn!(
                    "the database lacks {n} of this build's migrations: waiting for \
                     `newsletter migrate` (or `serve`) to apply them"
                );
                told = true;
            }
            Ok(Schema::Behind(_)) => {}
            Err(e) if is_unavailable(&e) => {
                tracing::warn!("waiting for the database: {e:#}");
            }
            Err(e) => return Err(e),
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(false),
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

pub async fn ping(pool: &PgPool) -> bool {
    sqlx::query("SELECT 1").execute(pool).await.is_ok()
}

/// `Duration` as a Postgres interval parameter, in whole seconds.
pub(crate) fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Whether `e` says the database could not be reached or went away (connection lost, pool
/// exhausted, server shutting down), as opposed to a statement that failed: worth retrying.
pub fn is_unavailable(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<sqlx::Error>())
        .any(|e| match e {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            // 08: connection exception; 57P: operator intervention (shutdown, restart)
            sqlx::Error::Database(db) => db
                .code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
            _ => false,
        })
}

/// `url` with its database name replaced by `db` (query parameters kept).
pub fn url_with_database(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let (scheme, rest) = base.split_once("://").unwrap_or(("postgres", base));
    let host = rest.split_once('/').map_or(rest, |(h, _)| h);
    let base = format!("{scheme}://{host}");
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

#[cfg(test)]
mod tests {
    use super::{is_unavailable, url_with_database};

    #[test]
    fn a_lost_connection_is_unavailable_and_a_failed_statement_is_not() {
        let lost = anyhow::Error::new(sqlx::Error::PoolTimedOut).context("reading the subscriber");
        let reset = anyhow::Error::new(sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        let missing = anyhow::Error::new(sqlx::Error::RowNotFound).context("reading the update");
        assert!(is_unavailable(&lost) && is_unavailable(&reset));
        assert!(!is_unavailable(&missing));
        assert!(!is_unavailable(&anyhow::anyhow!("template error")));
    }

    #[test]
    fn the_database_name_is_replaced_or_added_and_the_query_kept() {
        assert_eq!(
            url_with_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(url_with_database("postgres://h", "x"), "postgres://h/x");
        assert_eq!(
            url_with_database("postgres://h/db?sslmode=disable", "x"),
            "postgres://h/x?sslmode=disable"
        );
    }
}
