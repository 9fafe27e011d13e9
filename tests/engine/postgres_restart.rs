//! PostgreSQL restarted (stopped immediately, then started) twice in the middle of an update:
//! the workers come back to it, every recipient still gets the update, with duplicates only
//! within the in-flight bound. The database is a private cluster of this test: the shared one
//! on port 5432 serves other tests and is never restarted.

use std::fs::File;
use std::mem::ManuallyDrop;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sqlx::{Connection, Executor, PgConnection, PgPool};
use uuid::Uuid;

use crate::helpers::TestDatabase;
use crate::smtp_server::TestSmtp;
use crate::workers::{Ledger, Web, WorkerProcess};

/// Longest wait for any one `initdb`, `pg_ctl` or `chown`.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);

/// A PostgreSQL cluster in a temporary directory, listening on 127.0.0.1 only. On drop (a
/// panicking test too) it is stopped at once and its directory deleted.
struct PrivatePostgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl PrivatePostgres {
    fn start() -> Self {
        let bin = server_binaries();
        let dir = std::env::temp_dir().join(format!("newsletter-pg-{}", Uuid::new_v4().simple()));
        std::fs::create_dir(&dir).expect("creating the cluster's directory");
        let cluster = Self {
            bin,
            dir,
            port: free_port(),
        };
        if running_as_root() {
            let mut chown = Command::new("chown");
            chown.arg("postgres:").arg(&cluster.dir);
            cluster
                .run(chown)
                .expect("giving the cluster's directory to postgres");
        }
        let mut initdb = cluster.server_command("initdb");
        initdb
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .arg("-D")
            .arg(cluster.data());
        cluster.run(initdb).expect("initdb");
        cluster
            .pg_ctl(&["start"])
            .expect("starting the private cluster");
        cluster
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a database and applies the migrations.
    async fn create_database(&self) -> String {
        let name = format!("newsletter_restart_{}", Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&self.url("postgres"))
            .await
            .expect("connecting to the private cluster");
        conn.execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
            .await
            .expect("creating the database");
        conn.close().await.ok();
        let url = self.url(&name);
        let pool = PgPool::connect(&url)
            .await
            .expect("connecting to the database");
        newsletter::store::migrate(&pool)
            .await
            .expect("migrating the database");
        pool.close().await;
        url
    }

    /// The harshest stop that keeps the data: the server is killed with every connection cut
    /// (`-m immediate`); the next start runs crash recovery.
    fn crash(&self) {
        self.pg_ctl(&["stop", "-m", "immediate"])
            .expect("stopping the private cluster");
    }

    fn start_again(&self) {
        self.pg_ctl(&["start"])
            .expect("starting the private cluster again");
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn pg_ctl(&self, action: &[&str]) -> Result<(), String> {
        let mut cmd = self.server_command("pg_ctl");
        cmd.arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-w", "-t", "30", "-o"])
            .arg(format!(
                "-k {} -c listen_addresses=127.0.0.1 -p {} -c fsync=off",
                self.dir.display(),
                self.port
            ))
            .args(action);
        self.run(cmd)
    }

    /// A server program, run as `postgres` when we are root (the server refuses root).
    fn server_command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        let mut cmd = if running_as_root() {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        };
        cmd.current_dir(&self.dir);
        cmd
    }

    /// Runs `cmd` to its end within `COMMAND_LIMIT`; on failure, says what it and the server
    /// wrote.
    fn run(&self, mut cmd: Command) -> Result<(), String> {
        let output = self.dir.join("command.log");
        let file = File::create(&output).map_err(|e| format!("{}: {e}", output.display()))?;
        let err = file.try_clone().map_err(|e| e.to_string())?;
        let mut child = cmd
            .stdout(file)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("{cmd:?}: {e}"))?;
        let deadline = Instant::now() + COMMAND_LIMIT;
        let status = loop {
            match child.try_wait().map_err(|e| e.to_string())? {
                Some(status) => break Some(status),
                None if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        if status.is_some_and(|s| s.success()) {
            return Ok(());
        }
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let log = read(&self.dir.join("server.log"));
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        let ended = match status {
            Some(status) => status.to_string(),
            None => format!("did not end within {COMMAND_LIMIT:?}"),
        };
        Err(format!(
            "{cmd:?} {ended}:\n{}\nserver log (last lines, newest first):\n{}",
            read(&output),
            tail.join("\n")
        ))
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if self.data().join("postmaster.pid").exists() {
            if let Err(e) = self.pg_ctl(&["stop", "-m", "immediate"]) {
                eprintln!("stopping the private cluster: {e}");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The directory holding `initdb` and `pg_ctl` (the newest installed version).
fn server_binaries() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .expect("no /usr/lib/postgresql/*/bin/{initdb,pg_ctl}: install Debian's `postgresql` package (apt-get install postgresql)")
}

fn running_as_root() -> bool {
    // /proc/self belongs to the effective user of this process
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("finding a free port")
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_twice_mid_update_loses_nobody_and_duplicates_within_the_in_flight_bound(
) {
    let _turn = crate::exclusive().await;
    const RECIPIENTS: i64 = 2_000;
    const WORKERS: usize = 2;
    const CONCURRENCY: usize = 8;
    // how long the database stays down at each restart: shorter, then longer than the workers'
    // 5 s wait for a connection (`database.acquire_timeout_seconds`)
    const DOWN: [Duration; 2] = [Duration::from_secs(2), Duration::from_secs(7)];
    const RESTARTS: usize = DOWN.len();
    let postgres = tokio::task::block_in_place(PrivatePostgres::start);
    let url = postgres.create_database().await;
    // TestDatabase's drop would act on the shared server: this one goes with the cluster.
    let db = ManuallyDrop::new(TestDatabase {
        name: String::new(),
        url,
    });
    let smtp = TestSmtp::start().await;
    let web = Web::start(&db, &smtp).await;
    let env = [
        ("NEWSLETTER__SENDING__RATE_PER_SECOND", "300"),
        ("NEWSLETTER__SENDING__CONCURRENCY", "8"),
        ("NEWSLETTER__WORKER__BATCH_SIZE", "20"),
    ];
    let _workers: Vec<WorkerProcess> = (0..WORKERS)
        .map(|_| WorkerProcess::start(&db.url, &smtp.url(), &env))
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while web.live_workers().await < WORKERS as i64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "workers did not register"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    let id = web.send_update(RECIPIENTS).await;

    // each restart once a few hundred mails arrived since the database was last up
    let mut up_at = 0;
    for (restart, down) in (1..).zip(DOWN) {
        smtp.wait_for(up_at + 300, Duration::from_secs(60)).await;
        let at = started.elapsed();
        tokio::task::block_in_place(|| postgres.crash());
        let down_at = smtp.count();
        tokio::time::sleep(down).await;
        let while_down = smtp.count() - down_at;
        tokio::task::block_in_place(|| postgres.start_again());
        up_at = smtp.count();
        println!(
            "restart {restart}: {:.1} s in, {down_at} mails received; down {down:?}, {while_down} more arrived meanwhile",
            at.as_secs_f64(),
        );
    }
    web.wait_until_sent(&id, Duration::from_secs(90)).await;
    let elapsed = started.elapsed();
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    let beating: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM workers WHERE heartbeat_at > now() - interval '2 seconds'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();

    let ledger = Ledger::read(&web, &smtp, &id, RECIPIENTS).await;
    let (ambiguous, in_flight): (Vec<_>, Vec<_>) =
        ledger.duplicated.iter().partition(|(_, _, amb)| *amb);
    println!(
        "duplicates: {} in flight at a restart (sent again after the lease expired), {} ambiguous replies",
        in_flight.len(),
        ambiguous.len()
    );
    println!(
        "postgres restart test: recipients {RECIPIENTS}, delivered {}, duplicates {}, lost {}, restarts {RESTARTS}, sent in {:.1} s",
        ledger.per_recipient.len(),
        ledger.duplicates,
        ledger.lost,
        elapsed.as_secs_f64()
    );
    assert!(
        ledger
            .duplicated
            .iter()
            .all(|(_, attempts, _)| *attempts >= 2),
        "every duplicate was attempted again: {:?}",
        ledger.duplicated
    );
    assert_eq!(
        ledger.lost, 0,
        "every recipient got the update at least once"
    );
    let bound = RESTARTS * WORKERS * CONCURRENCY;
    assert!(
        ledger.duplicates <= bound,
        "{} duplicates for {RESTARTS} restarts of the database (bound: {bound})",
        ledger.duplicates
    );
    assert_eq!(
        ledger.sent_rows.len(),
        RECIPIENTS as usize,
        "every ledger row ends sent"
    );
    assert!(
        ledger
            .sent_rows
            .iter()
            .all(|e| ledger.per_recipient.contains_key(e)),
        "the ledger agrees with the relay"
    );
    assert_eq!(
        beating, WORKERS as i64,
        "every worker process outlived the restarts and still beats"
    );
}
