//! The Nagle stall, measured: the same pre-built messages pushed to a local sink by lettre's stock
//! pooled transport and by our pool of TCP_NODELAY connections, same pool size and concurrency.
//! Run with `cargo bench --bench smtp_transport`; prints mails per second for each.

#[allow(dead_code)]
#[path = "../tests/api/smtp_server.rs"]
mod smtp_server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use newsletter::config::Settings;
use newsletter::mail::Mailer;
use tokio::sync::Semaphore;

const MESSAGES: usize = 2_000;
const CONNECTIONS: u32 = 4;
const IN_FLIGHT: usize = 16;
/// Each run stops after this long, whatever it reached.
const TIME_LIMIT: Duration = Duration::from_secs(120);

fn messages() -> Vec<Message> {
    let body = "News on the United States and the International Criminal Court. ".repeat(100);
    (0..MESSAGES)
        .map(|i| {
            Message::builder()
                .from("Updates <updates@example.org>".parse().unwrap())
                .to(format!("reader{i}@example.org").parse().unwrap())
                .subject("Benchmark")
                .body(body.clone())
                .unwrap()
        })
        .collect()
}

async fn run<F, Fut>(name: &str, send: F) -> f64
where
    F: Fn(Message) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let send = Arc::new(send);
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for message in messages() {
        if started.elapsed() > TIME_LIMIT {
            break;
        }
        let permit = Arc::clone(&slots).acquire_owned().await.unwrap();
        let send = Arc::clone(&send);
        tasks.spawn(async move {
            let ok = send(message).await;
            drop(permit);
            ok
        });
    }
    let mut sent = 0;
    while let Some(ok) = tasks.join_next().await {
        sent += usize::from(ok.unwrap_or(false));
    }
    let rate = sent as f64 / started.elapsed().as_secs_f64();
    println!("{name:<44} {sent:>6} mails  {rate:>9.0} mails/s");
    rate
}

#[tokio::main]
async fn main() {
    println!("{MESSAGES} messages of ~6.5 KB, {CONNECTIONS} connections, {IN_FLIGHT} in flight, to a local sink");

    let sink = smtp_server::TestSmtp::start().await;
    let stock = AsyncSmtpTransport::<Tokio1Executor>::from_url(&sink.url())
        .unwrap()
        .pool_config(PoolConfig::new().max_size(CONNECTIONS))
        .build();
    let stock_rate = run("lettre stock pool (no TCP_NODELAY)", move |m| {
        let t = stock.clone();
        async move { t.send(m).await.is_ok() }
    })
    .await;

    let sink = smtp_server::TestSmtp::start().await;
    let settings = Settings::from_overrides([
        (
            "security.secret_key",
            "bench-secret-key-0123456789abcdef0123".into(),
        ),
        ("smtp.url", sink.url().into()),
        ("smtp.pool_size", i64::from(CONNECTIONS).into()),
    ])
    .unwrap();
    let ours = Arc::new(Mailer::from_settings(&settings.smtp, None).unwrap());
    let our_rate = run("newsletter pool (TCP_NODELAY, kept open)", move |m| {
        let t = Arc::clone(&ours);
        async move { t.send(m).await.is_ok() }
    })
    .await;
    println!(
        "ratio: {:.1}x",
        our_rate / stock_rate.max(f64::MIN_POSITIVE)
    );
}
