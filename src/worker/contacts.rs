//! Reads each recipient just before their mail is composed (so an unsubscribe a moment earlier
//! still stops it), with the reads of concurrent delivery tasks gathered into one statement.

use std::collections::HashMap;

use sqlx::PgPool;
use uuid::Uuid;

use crate::batched::Batched;
use crate::store::subscribers::{self, Contact};
use crate::store::KeyedPool;

/// Most subscribers read by one statement.
const MAX_BATCH: usize = 256;

/// Answers the subscriber as they are now, or None when they no longer exist.
pub type Contacts = Batched<Uuid, Option<Contact>>;

/// Starts the reader, with its own connection to the database of `pool` (one statement runs at
/// a time; see `KeyedPool`).
pub fn start(pool: &PgPool) -> Contacts {
    let pool = KeyedPool::from(pool);
    Batched::start(MAX_BATCH, move |ids: Vec<Uuid>| {
        let pool = pool.clone();
        async move {
            let found: HashMap<Uuid, Contact> = subscribers::contacts(&pool, &ids)
                .await?
                .into_iter()
                .map(|c| (c.id, c))
                .collect();
            // The same subscriber asked twice in one batch gets the same answer twice.
            Ok(ids.iter().map(|id| found.get(id).cloned()).collect())
        }
    })
}
