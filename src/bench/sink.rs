//! A fast local SMTP sink for benchmarks: accepts every mail and counts it. 127.0.0.1 only.
//! It runs on a thread of its own, so that its CPU time can be told apart from the rest of the
//! bench process (the sender's).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub struct Sink {
    pub port: u16,
    received: Arc<AtomicU64>,
    /// The Linux thread id of the sink's thread.
    thread: u32,
    stop: CancellationToken,
}

impl Sink {
    pub async fn start() -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let received = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&received);
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let (thread_tx, thread_rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("bench-sink".into())
            .spawn(move || -> anyhow::Result<()> {
                let _ = thread_tx.send(own_thread_id());
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener)?;
                    loop {
                        tokio::select! {
                            _ = stopped.cancelled() => return Ok(()),
                            accepted = listener.accept() => {
                                let (stream, _) = accepted?;
                                let _ = stream.set_nodelay(true);
                                tokio::spawn(session(stream, Arc::clone(&count)));
                            }
                        }
                    }
                })
            })
            .context("starting the sink's thread")?;
        let thread = thread_rx
            .await
            .context("the sink's thread did not start")?
            .context("reading the sink's thread id")?;
        Ok(Self {
            port,
            received,
            thread,
            stop,
        })
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// CPU time (user + system, 10 ms resolution) the sink's thread has used so far.
    pub fn cpu_time(&self) -> Duration {
        super::stat_cpu_time(&format!("/proc/self/task/{}/stat", self.thread))
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The calling thread's Linux thread id, from `/proc/thread-self` (a link to `PID/task/TID`).
fn own_thread_id() -> Option<u32> {
    std::fs::read_link("/proc/thread-self")
        .ok()?
        .file_name()?
        .to_str()?
        .parse()
        .ok()
}

async fn session(stream: TcpStream, received: Arc<AtomicU64>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    if write.write_all(b"220 sink ESMTP\r\n").await.is_err() {
        return;
    }
    let mut line = Vec::with_capacity(1024);
    let mut in_data = false;
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if in_data {
            if line == b".\r\n" {
                in_data = false;
                received.fetch_add(1, Ordering::Relaxed);
                if write.write_all(b"250 2.0.0 ok\r\n").await.is_err() {
                    return;
                }
            }
            continue;
        }
        let reply: &[u8] = match line.get(..4).map(|v| v.to_ascii_uppercase()).as_deref() {
            Some(b"EHLO") => b"250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
            Some(b"DATA") => {
                in_data = true;
                b"354 go ahead\r\n"
            }
            Some(b"QUIT") => {
                let _ = write.write_all(b"221 bye\r\n").await;
                return;
            }
            _ => b"250 ok\r\n",
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}
