//! A bounded HTTP/1.1 load generator for 127.0.0.1: `connections` keep-alive connections each
//! sending POSTs as fast as answers come for `duration` (closed loop), or requests scheduled at a
//! fixed rate (open loop, latency counted from the scheduled moment), recording latencies.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Mutex};

pub struct LoadResult {
    pub requests: usize,
    /// 5xx answers.
    pub errors: usize,
    /// 4xx answers.
    pub rejected: usize,
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
}

impl LoadResult {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentile(&self, p: f64) -> Duration {
        let mut l = self.latencies.clone();
        l.sort();
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    }
}

/// Runs the load; `request(connection, n)` makes the path and body of a connection's n-th POST.
pub async fn post_load(
    port: u16,
    content_type: &str,
    connections: usize,
    duration: Duration,
    request: impl Fn(usize, usize) -> (String, String) + Send + Sync + Clone + 'static,
) -> anyhow::Result<LoadResult> {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..connections {
        let (content_type, make) = (content_type.to_owned(), request.clone());
        tasks.spawn(async move {
            let mut connection = Connection::open(port).await?;
            let mut n = 0;
            while started.elapsed() < duration {
                let (path, payload) = make(c, n);
                n += 1;
                connection
                    .post(&path, &content_type, &payload, Instant::now())
                    .await?;
            }
            anyhow::Ok(connection.tally)
        });
    }
    collect(tasks, started).await
}

/// Sends `rate` requests a second for `duration` (so `rate × duration` in all, whatever the
/// answers), over at most `connections` keep-alive connections; a request waits for a free
/// connection, and that wait counts in its latency. `request(n)` makes the n-th path and body.
pub async fn fixed_rate(
    port: u16,
    content_type: &str,
    connections: usize,
    rate: u32,
    duration: Duration,
    request: impl Fn(usize) -> (String, String) + Send + Sync + 'static,
) -> anyhow::Result<LoadResult> {
    let total = (f64::from(rate) * duration.as_secs_f64()) as usize;
    let (queue, jobs) = mpsc::unbounded_channel::<(String, String, Instant)>();
    let jobs = Arc::new(Mutex::new(jobs));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (content_type, jobs) = (content_type.to_owned(), Arc::clone(&jobs));
        tasks.spawn(async move {
            let mut connection = Connection::open(port).await?;
            loop {
                let job = jobs.lock().await.recv().await;
                let Some((path, payload, due)) = job else {
                    break;
                };
                connection.post(&path, &content_type, &payload, due).await?;
            }
            anyhow::Ok(connection.tally)
        });
    }
    let start = tokio::time::Instant::now();
    for n in 0..total {
        let due = start + Duration::from_secs_f64(n as f64 / f64::from(rate));
        tokio::time::sleep_until(due).await;
        let (path, payload) = request(n);
        if queue.send((path, payload, due.into_std())).is_err() {
            break;
        }
    }
    drop(queue);
    collect(tasks, started).await
}

/// What one connection saw.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    errors: usize,
    rejected: usize,
}

struct Connection {
    stream: BufReader<TcpStream>,
    tally: Tally,
}

impl Connection {
    async fn open(port: u16) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream: BufReader::new(stream),
            tally: Tally::default(),
        })
    }

    /// One POST; its latency counts from `since`.
    async fn post(
        &mut self,
        path: &str,
        content_type: &str,
        payload: &str,
        since: Instant,
    ) -> anyhow::Result<()> {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{payload}",
            payload.len()
        );
        self.stream.get_mut().write_all(request.as_bytes()).await?;
        let status = read_response(&mut self.stream).await?;
        self.tally.latencies.push(since.elapsed());
        match status {
            500.. => self.tally.errors += 1,
            400..=499 => self.tally.rejected += 1,
            _ => {}
        }
        Ok(())
    }
}

async fn collect(
    mut tasks: tokio::task::JoinSet<anyhow::Result<Tally>>,
    started: Instant,
) -> anyhow::Result<LoadResult> {
    let mut result = LoadResult {
        requests: 0,
        errors: 0,
        rejected: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    while let Some(done) = tasks.join_next().await {
        let tally = done.context("load task panicked")??;
        result.requests += tally.latencies.len();
        result.errors += tally.errors;
        result.rejected += tally.rejected;
        result.latencies.extend(tally.latencies);
    }
    result.elapsed = started.elapsed();
    Ok(result)
}

/// Reads one response (status line, headers, Content-Length body) and returns its status.
async fn read_response(stream: &mut BufReader<TcpStream>) -> anyhow::Result<u16> {
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .context("no status line")?
        .parse()?;
    let mut length = 0usize;
    loop {
        line.clear();
        if stream.read_line(&mut line).await? == 0 {
            bail!("connection closed in the headers");
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse()?;
            }
        }
    }
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await?;
    Ok(status)
}
