//! Back from a backup: a `pg_dump -Fc` taken while an update is going out, restored with
//! `pg_restore` into a fresh database, and the service started on it resumes the update:
//! nobody the dump says was sent gets it again, and everybody gets it (what went out between
//! the dump and the restore may go again: README says so).

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use newsletter::app::Application;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use crate::helpers::{server_url, spawn_app_with, test_settings};
use crate::smtp_server::TestSmtp;

const PEOPLE: i64 = 60;

async fn sent(pool: &PgPool, update: &str) -> BTreeSet<String> {
    sqlx::query_scalar(
        "SELECT s.email FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
         WHERE d.update_id = $1::uuid AND d.status = 'sent'",
    )
    .bind(update)
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

#[tokio::test]
async fn a_dump_taken_mid_update_restores_and_the_update_finishes_with_each_reader_once() {
    // Twenty mails a second: the update of 60 is still going out when the dump is taken.
    let slow = [
        ("sending.rate_per_second", 20.into()),
        ("worker.lease_seconds", 5.into()),
        ("smtp.timeout_seconds", 3.into()),
    ];
    let app = spawn_app_with(&slow).await;
    let token = app.api_token().await;
    app.seed_confirmed(PEOPLE, "example.org").await;
    let update = app.create_and_send(&token, "Restored").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while sent(&app.pool, &update).await.len() < 10 {
        assert!(Instant::now() < deadline, "the update never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dir = std::env::temp_dir().join(format!("dump-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let dump = dir.join("newsletter.dump");
    let out = Command::new("pg_dump")
        .args(["-Fc", "-d", app.database_url(), "-f"])
        .arg(&dump)
        .output()
        .expect("pg_dump (postgresql-client)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The old installation is gone (whatever it sent after the dump may go again).
    let first_sink: Vec<String> = app
        .smtp
        .messages()
        .into_iter()
        .map(|m| m.rcpt_to[0].clone())
        .collect();
    app.stop().await;

    // A fresh database, restored.
    let name = format!("newsletter_restored_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&server_url()).await.unwrap();
    admin
        .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
        .await
        .unwrap();
    let url = newsletter::store::url_with_database(&server_url(), &name);
    let out = Command::new("pg_restore")
        .args(["--no-owner", "-d", &url])
        .arg(&dump)
        .output()
        .expect("pg_restore (postgresql-client)");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pool = PgPool::connect(&url).await.unwrap();
    let before = sent(&pool, &update).await;
    assert!(
        before.len() >= 10 && (before.len() as i64) < PEOPLE,
        "the dump is mid-update: {} sent",
        before.len()
    );

    // The service on the restored database, sending to a new relay.
    let smtp = TestSmtp::start().await;
    let settings = test_settings(
        &url,
        &smtp.url(),
        &[
            ("worker.lease_seconds", 5.into()),
            ("smtp.timeout_seconds", 3.into()),
        ],
    );
    let restored = Application::build(settings, true).await.unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(restored.run_until(shutdown.clone()));
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let status: String = sqlx::query_scalar("SELECT status FROM updates WHERE id = $1::uuid")
            .bind(&update)
            .fetch_one(&pool)
            .await
            .unwrap();
        if status == "sent" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restored update stayed {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    let _ = server.await;
    let again: Vec<String> = smtp
        .messages()
        .into_iter()
        .map(|m| m.rcpt_to[0].clone())
        .collect();
    pool.close().await;
    admin
        .execute(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str())
        .await
        .unwrap();

    let resent: Vec<&String> = again.iter().filter(|r| before.contains(*r)).collect();
    assert!(
        resent.is_empty(),
        "sent before the dump, sent again: {resent:?}"
    );
    let unique: BTreeSet<&String> = again.iter().collect();
    assert_eq!(unique.len(), again.len(), "each once after the restore");
    let everyone: BTreeSet<String> = before.iter().cloned().chain(again).collect();
    assert_eq!(everyone.len() as i64, PEOPLE, "everybody got it");
    // What the first relay took after the dump was taken is the only overlap there can be.
    let after_dump: BTreeSet<&String> =
        first_sink.iter().filter(|r| !before.contains(*r)).collect();
    eprintln!(
        "{} sent before the dump, {} more before the old service stopped (may repeat)",
        before.len(),
        after_dump.len()
    );
}
