//! The `mailto:` unsubscribe address of RFC 2369 (beside the https one-click URL of RFC 8058 in
//! `List-Unsubscribe`): `unsubscribe+<token>@<bounce.return_path_domain>`. A mail to it, whatever
//! its subject and body, unsubscribes the one person the token names.
//!
//! The token is the subscriber's id (16 bytes) followed by the first 10 bytes of
//! HMAC-SHA256(`security.secret_key`, "mailto-unsubscribe\0" || id || link version), in RFC 4648
//! base32, lower case, without padding: 42 characters, so the local part (54) stays within RFC
//! 5321's 64 and survives relays that change its case. Raising the subscriber's link version
//! voids it like their other links; another installation's key makes other tokens.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

use super::verp::{decode, encode};

const MAC_BYTES: usize = 10;
const TOKEN_BYTES: usize = 16 + MAC_BYTES;
/// Characters of an encoded token.
pub const TOKEN_CHARS: usize = (TOKEN_BYTES * 8).div_ceil(5);
/// The local part before the `+`.
pub const LOCAL_PREFIX: &str = "unsubscribe+";

fn mac(secret: &[u8], id: Uuid, version: i32) -> [u8; MAC_BYTES] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(b"mailto-unsubscribe\0");
    mac.update(id.as_bytes());
    mac.update(&version.to_be_bytes());
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; MAC_BYTES];
    out.copy_from_slice(&full[..MAC_BYTES]);
    out
}

/// `unsubscribe+<token>@<domain>` for subscriber `id` at link version `version`.
pub fn address(secret: &[u8], id: Uuid, version: i32, domain: &str) -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    bytes[..16].copy_from_slice(id.as_bytes());
    bytes[16..].copy_from_slice(&mac(secret, id, version));
    format!("{LOCAL_PREFIX}{}@{domain}", encode(&bytes))
}

/// A claimed token: the subscriber it names, to check with [`Claim::verify`] against their
/// current link version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub subscriber: Uuid,
    tag: [u8; MAC_BYTES],
}

impl Claim {
    /// Constant-time check of the token for this subscriber at `version`.
    pub fn verify(&self, secret: &[u8], version: i32) -> bool {
        let expected = mac(secret, self.subscriber, version);
        expected
            .iter()
            .zip(&self.tag)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// The claim in `address` when it is `unsubscribe+<token>@<domain>` (any case) with a token of
/// the right form; None for any other address. The token is not verified here.
pub fn claim_of(address: &str, domain: &str) -> Option<Claim> {
    let (local, at) = address.rsplit_once('@')?;
    if !at.eq_ignore_ascii_case(domain) || local.len() != LOCAL_PREFIX.len() + TOKEN_CHARS {
        return None;
    }
    let (prefix, token) = local.split_at(LOCAL_PREFIX.len());
    if !prefix.eq_ignore_ascii_case(LOCAL_PREFIX) {
        return None;
    }
    let bytes: [u8; TOKEN_BYTES] = decode(&token.to_ascii_lowercase())?;
    let subscriber = Uuid::from_slice(&bytes[..16]).ok()?;
    let mut tag = [0u8; MAC_BYTES];
    tag.copy_from_slice(&bytes[16..]);
    Some(Claim { subscriber, tag })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a-secret-key-of-at-least-32-characters";

    #[test]
    fn an_address_names_its_subscriber_in_any_case_and_only_under_our_key_and_version() {
        let id = Uuid::new_v4();
        let a = address(SECRET, id, 3, "bounces.example.org");
        let local = a.split('@').next().unwrap();
        assert!(local.len() <= 64, "{a}");
        for spelled in [a.clone(), a.to_ascii_uppercase()] {
            let claim = claim_of(&spelled, "bounces.example.org").unwrap();
            assert_eq!(claim.subscriber, id);
            assert!(claim.verify(SECRET, 3));
            assert!(!claim.verify(SECRET, 4), "a raised link version voids it");
            assert!(!claim.verify(b"another-installation-key-0123456789", 3));
        }
        assert!(claim_of(&a, "other.example.org").is_none());
        let mut tampered = a.clone().into_bytes();
        tampered[LOCAL_PREFIX.len() + 30] ^= 1;
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(claim_of(&tampered, "bounces.example.org").is_none_or(|c| !c.verify(SECRET, 3)));
        assert!(claim_of("unsubscribe+x@bounces.example.org", "bounces.example.org").is_none());
        assert!(claim_of("bounces+x@bounces.example.org", "bounces.example.org").is_none());
    }
}
