//! Whether `security.secret_key` is the key this database was used with. Every link already
//! mailed (confirmation, unsubscribe, preferences, the RFC 8058 one-click URL), every sealed
//! second-factor secret and every pending single sign-on is bound to that key: a restore or a
//! move that starts the service with another key breaks them all, and nothing else would say
//! so. The database keeps a fingerprint of the key (64 bits of an HMAC-SHA256 of a fixed label
//! under it: it tells keys apart and reveals nothing of the key); `serve`, `worker` and
//! `inbound` compare it at start, and `newsletter secret-key accept` records a key changed on
//! purpose.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::PgPool;

use crate::config::Settings;
use crate::store::secret_key as store;

const LABEL: &[u8] = b"newsletter secret-key fingerprint v1";

/// The fingerprint of `key`: 16 lower-case hex digits.
pub fn fingerprint(key: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(LABEL);
    let digest = mac.finalize().into_bytes();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// What the start-up check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheck {
    /// The first start on this database: the key's fingerprint is now recorded.
    Recorded,
    /// The key is the one recorded.
    Same,
    /// Another key than the recorded one.
    Changed { recorded: String, now: String },
}

/// Compares the configured key with the one recorded, recording it on the first start.
///
/// Errors: the database cannot be read or written.
pub async fn check(pool: &PgPool, settings: &Settings) -> anyhow::Result<KeyCheck> {
    let now = fingerprint(settings.security.secret_key.expose().as_bytes());
    if store::record_first(pool, &now).await? {
        return Ok(KeyCheck::Recorded);
    }
    let recorded = store::recorded(pool).await?.unwrap_or_default();
    Ok(if recorded == now {
        KeyCheck::Same
    } else {
        KeyCheck::Changed { recorded, now }
    })
}

/// Runs [`check`] at a process's start and logs an error when the key changed. Never stops
/// the process: a key may be changed on purpose (after a leak), and the service must keep
/// answering; the error repeats at each start until the key is put back or accepted.
pub async fn warn_if_changed(pool: &PgPool, settings: &Settings) -> anyhow::Result<()> {
    if let KeyCheck::Changed { recorded, now } = check(pool, settings).await? {
        tracing::error!(
            recorded = %recorded,
            now = %now,
            "security.secret_key is not the key this database was used with: every link in \
             mail already sent (confirmation, unsubscribe, preferences), every second-factor \
             secret and every pending sign-in no longer works. After a restore or a move, put \
             the old key back; if you changed it on purpose, run `newsletter secret-key accept`"
        );
    }
    Ok(())
}

/// Records the configured key as the one this database is used with (`newsletter secret-key
/// accept`). Returns whether the recorded fingerprint changed.
///
/// Errors: the database cannot be written.
pub async fn accept(pool: &PgPool, settings: &Settings) -> anyhow::Result<bool> {
    let now = fingerprint(settings.security.secret_key.expose().as_bytes());
    Ok(store::replace(pool, &now).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_tells_keys_apart_and_does_not_contain_the_key() {
        let a = fingerprint(b"0123456789abcdef0123456789abcdef");
        assert_eq!(a, fingerprint(b"0123456789abcdef0123456789abcdef"));
        assert_ne!(a, fingerprint(b"0123456789abcdef0123456789abcdeg"));
        assert_eq!(a.len(), 16);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }
}
