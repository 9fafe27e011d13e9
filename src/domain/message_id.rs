//! The Message-ID of an update mail: `update.<update id>.<subscriber id>.<mac>@<host>`, the mac
//! the first 10 bytes of HMAC-SHA256(`security.secret_key`, "message-id\0" || update id ||
//! subscriber id) in lower-case hex (20 characters). It is fixed per recipient (a retry keeps
//! it) and checked without a database lookup. Both ids show elsewhere (a subscriber's own links
//! carry their id; every reader's copy carries the update's), so without the mac anyone holding
//! one forwarded link could make the Message-ID of that person's next mail and forge a
//! complaint about it; with it, only a mail we sent names a person by its Message-ID.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

/// Bytes of the HMAC kept.
const MAC_BYTES: usize = 10;

fn mac(secret: &[u8], update: Uuid, subscriber: Uuid) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(b"message-id\0");
    mac.update(update.as_bytes());
    mac.update(subscriber.as_bytes());
    mac.finalize().into_bytes()[..MAC_BYTES]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The local part (before the `@`) of the Message-ID of update `update`'s mail to `subscriber`.
pub fn update_local(secret: &[u8], update: Uuid, subscriber: Uuid) -> String {
    format!(
        "update.{}.{}.{}",
        update.simple(),
        subscriber.simple(),
        mac(secret, update, subscriber)
    )
}

/// The update and subscriber a local part made by [`update_local`] names; `None` for anything
/// else (another shape, or a mac that does not check out: made by someone without the key).
pub fn parse_update_local(secret: &[u8], local: &str) -> Option<(Uuid, Uuid)> {
    let mut parts = local.split('.');
    let (Some("update"), Some(u), Some(s), Some(given), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let (update, subscriber) = (u.parse().ok()?, s.parse().ok()?);
    let expected = mac(secret, update, subscriber);
    let given = given.to_ascii_lowercase();
    // Constant time: the comparison does not tell how many characters matched.
    let same = expected.len() == given.len()
        && expected
            .bytes()
            .zip(given.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    same.then_some((update, subscriber))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_id_names_its_mail_only_with_the_key_that_made_it() {
        let (u, s) = (Uuid::new_v4(), Uuid::new_v4());
        let local = update_local(b"key one", u, s);
        assert_eq!(parse_update_local(b"key one", &local), Some((u, s)));
        assert_eq!(parse_update_local(b"key one", &local.to_uppercase()), None);
        assert_eq!(parse_update_local(b"key two", &local), None, "another key");
        let forged = format!("update.{}.{}", u.simple(), s.simple());
        assert_eq!(parse_update_local(b"key one", &forged), None, "no mac");
        let other = update_local(b"key one", u, Uuid::new_v4());
        let swapped = format!(
            "{}{}",
            &local[..local.len() - 20],
            &other[other.len() - 20..]
        );
        assert_eq!(
            parse_update_local(b"key one", &swapped),
            None,
            "another mail's mac"
        );
    }
}
