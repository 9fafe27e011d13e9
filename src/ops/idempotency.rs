//! The API's Idempotency-Key: a key claimed once per token and request, its answer kept and
//! replayed (the door decides what each claim answers).

pub use crate::store::idempotency::{claim, release, store, Claim};
