//! The real `newsletter serve` binary in a process of its own, on a fresh database: for what
//! only a whole process shows (its resident memory, whether it is still alive).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{TestDatabase, SECRET_KEY};

pub struct ServerProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`, also its `server.base_url`.
    pub address: String,
    pub db: TestDatabase,
}

impl ServerProcess {
    /// `newsletter serve --no-worker` with `settings` (`NEWSLETTER__SECTION__KEY`, value),
    /// once `/health` answers.
    pub async fn start(settings: &[(&str, &str)]) -> Self {
        let db = TestDatabase::create().await;
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("http://127.0.0.1:{port}");
        let mut command = Command::new(env!("CARGO_BIN_EXE_newsletter"));
        command
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("DATABASE_URL", &db.url)
            .env("NEWSLETTER__SECURITY__SECRET_KEY", SECRET_KEY)
            .env("NEWSLETTER__SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("NEWSLETTER__SERVER__BASE_URL", &address)
            .env("NEWSLETTER__LOG__LEVEL", "warn")
            .args(["serve", "--no-worker"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (key, value) in settings {
            command.env(key, value);
        }
        let child = command.spawn().expect("starting newsletter serve");
        let server = Self { child, address, db };
        let deadline = Instant::now() + Duration::from_secs(60);
        let http = reqwest::Client::new();
        loop {
            if let Ok(r) = http.get(format!("{}/health", server.address)).send().await {
                if r.status() == 200 {
                    return server;
                }
            }
            assert!(Instant::now() < deadline, "the server did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The process's resident memory (`VmRSS`), in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("reading the server's /proc status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc status");
        kib * 1024
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
