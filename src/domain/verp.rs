//! VERP (variable envelope return path): each mail's envelope sender names its delivery row,
//! `bounces+<token>@<bounce.return_path_domain>`, so a bounce that comes back to that address
//! says exactly which mail it is about, without trusting anything inside the report.
//!
//! The token is the delivery id (8 bytes, big-endian) followed by the first 10 bytes of
//! HMAC-SHA256(`security.secret_key`, "verp\0" || id), in RFC 4648 base32, lower case, without
//! padding: 29 characters. It is checked without a database lookup; a guessed or altered token
//! fails the HMAC (80 bits). Base32 survives relays and mailbox providers that change the case
//! of a local part.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bytes of the HMAC kept in a token.
const MAC_BYTES: usize = 10;
/// Bytes of a token before encoding: the id and the truncated HMAC.
const TOKEN_BYTES: usize = 8 + MAC_BYTES;
/// Characters of an encoded token.
pub const TOKEN_CHARS: usize = (TOKEN_BYTES * 8).div_ceil(5);
/// The local part before the `+`.
pub const LOCAL_PREFIX: &str = "bounces+";

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

fn mac(secret: &[u8], delivery_id: i64) -> [u8; MAC_BYTES] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(b"verp\0");
    mac.update(&delivery_id.to_be_bytes());
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; MAC_BYTES];
    out.copy_from_slice(&full[..MAC_BYTES]);
    out
}

/// The token naming `delivery_id` under `secret`.
pub fn token(secret: &[u8], delivery_id: i64) -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    bytes[..8].copy_from_slice(&delivery_id.to_be_bytes());
    bytes[8..].copy_from_slice(&mac(secret, delivery_id));
    encode(&bytes)
}

/// The envelope sender of the mail of `delivery_id`: `bounces+<token>@<domain>`.
pub fn return_path(secret: &[u8], delivery_id: i64, domain: &str) -> String {
    format!("{LOCAL_PREFIX}{}@{domain}", token(secret, delivery_id))
}

/// The delivery id a token names, if the token is one we made (any letter case).
pub fn verify(secret: &[u8], token: &str) -> Option<i64> {
    if token.len() != TOKEN_CHARS {
        return None;
    }
    let bytes: [u8; TOKEN_BYTES] = decode(&token.to_ascii_lowercase())?;
    let id = i64::from_be_bytes(bytes[..8].try_into().ok()?);
    let expected = mac(secret, id);
    // Constant time: the comparison does not tell how many bytes matched.
    let diff = expected
        .iter()
        .zip(&bytes[8..])
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    (diff == 0).then_some(id)
}

/// The delivery id named by `address` when it is `bounces+<token>@<domain>` (any case) with a
/// token of ours; None for any other address.
pub fn delivery_of(secret: &[u8], address: &str, domain: &str) -> Option<i64> {
    let (local, at) = address.rsplit_once('@')?;
    if !at.eq_ignore_ascii_case(domain) || local.len() <= LOCAL_PREFIX.len() {
        return None;
    }
    let (prefix, token) = local.split_at(LOCAL_PREFIX.len());
    if !prefix.eq_ignore_ascii_case(LOCAL_PREFIX) {
        return None;
    }
    verify(secret, token)
}

/// RFC 4648 base32, lower case, without padding.
pub(crate) fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// The `N` bytes `text` (lower-case base32 of exactly `N` bytes, padding bits zero) encodes.
pub(crate) fn decode<const N: usize>(text: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    let (mut buffer, mut bits, mut n) = (0u32, 0u32, 0usize);
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            *out.get_mut(n)? = (buffer >> bits) as u8;
            n += 1;
        }
    }
    // The padding bits of the last character must be zero: one spelling per token.
    (n == N && buffer & ((1 << bits) - 1) == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a-secret-key-of-at-least-32-characters";

    #[test]
    fn a_token_names_its_delivery_and_survives_case_changes() {
        for id in [1, 42, 9_876_543_210, i64::MAX] {
            let t = token(SECRET, id);
            assert_eq!(t.len(), TOKEN_CHARS);
            assert!(t.bytes().all(|b| ALPHABET.contains(&b)));
            assert_eq!(verify(SECRET, &t), Some(id));
            assert_eq!(verify(SECRET, &t.to_ascii_uppercase()), Some(id));
        }
    }

    #[test]
    fn a_token_does_not_show_the_address_and_differs_per_delivery() {
        assert_ne!(token(SECRET, 1), token(SECRET, 2));
        let path = return_path(SECRET, 7, "bounces.example.org");
        assert!(path.starts_with("bounces+") && path.ends_with("@bounces.example.org"));
        assert!(
            path.len() - "@bounces.example.org".len() <= 64,
            "local part within RFC 5321"
        );
    }

    #[test]
    fn altered_foreign_or_malformed_tokens_are_refused() {
        let t = token(SECRET, 1234);
        assert_eq!(verify(b"another-secret-key-of-32-characters!!", &t), None);
        // Another id with the first delivery's MAC: the HMAC does not match.
        let mut forged = token(SECRET, 1235)[..13].to_owned();
        forged.push_str(&t[13..]);
        assert_eq!(verify(SECRET, &forged), None);
        for bad in ["", "short", &t[1..], &format!("{t}a"), &t.replace('a', "1")] {
            if bad != t {
                assert_eq!(verify(SECRET, bad), None, "{bad:?}");
            }
        }
    }

    #[test]
    fn only_our_domain_and_prefix_name_a_delivery() {
        let domain = "bounces.example.org";
        let path = return_path(SECRET, 99, domain);
        assert_eq!(delivery_of(SECRET, &path, domain), Some(99));
        assert_eq!(
            delivery_of(SECRET, &path.to_ascii_uppercase(), domain),
            Some(99)
        );
        assert_eq!(delivery_of(SECRET, &path, "other.example.org"), None);
        let other_prefix = path.replacen("bounces+", "bouncez+", 1);
        assert_eq!(delivery_of(SECRET, &other_prefix, domain), None);
        assert_eq!(
            delivery_of(SECRET, "postmaster@bounces.example.org", domain),
            None
        );
    }
}
