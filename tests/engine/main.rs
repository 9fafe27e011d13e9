//! Timing-sensitive tests of the sending engine: rate limits, worker processes, and the database
//! restarted under them. A separate test binary, so no other test loads the machine while they
//! measure; within it they take turns (`exclusive()`).

mod digests;
#[path = "../api/helpers.rs"]
#[allow(dead_code)]
mod helpers;
mod pipeline;
mod postgres_restart;
mod rate_limits;
#[path = "../api/smtp_server.rs"]
#[allow(dead_code)]
mod smtp_server;
mod workers;

use tokio::sync::{Mutex, MutexGuard};

static TURN: Mutex<()> = Mutex::const_new(());

/// Held for the whole of a timing-sensitive test.
pub async fn exclusive() -> MutexGuard<'static, ()> {
    TURN.lock().await
}
