//! A bounded HTTP/1.1 load generator for 127.0.0.1: `connections` keep-alive connections each
//! sending POSTs for `duration`, recording latencies.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub struct LoadResult {
    pub requests: usize,
    pub errors: usize,
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
            let mut stream = BufReader::new(TcpStream::connect(("127.0.0.1", port)).await?);
            stream.get_ref().set_nodelay(true)?;
            let mut latencies = Vec::new();
            let mut errors = 0;
            let mut n = 0;
            while started.elapsed() < duration {
                let (path, payload) = make(c, n);
                n += 1;
                let request = format!(
                    "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{payload}",
                    payload.len()
                );
                let sent = Instant::now();
                stream.get_mut().write_all(request.as_bytes()).await?;
                let status = read_response(&mut stream).await?;
                latencies.push(sent.elapsed());
                if status >= 500 {
                    errors += 1;
                }
            }
            anyhow::Ok((latencies, errors))
        });
    }
    let mut result = LoadResult {
        requests: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    while let Some(done) = tasks.join_next().await {
        let (latencies, errors) = done.context("load task panicked")??;
        result.requests += latencies.len();
        result.errors += errors;
        result.latencies.extend(latencies);
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
