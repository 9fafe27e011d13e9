//! What `/health` and `/metrics` read: whether the database answers, and the ledger's figures
//! (from the database at each scrape, so they hold across processes).

pub use crate::store::metrics::{snapshot, Snapshot};
pub use crate::store::ping as database_answers;
