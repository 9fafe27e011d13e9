//! Unsubscribe and manage links: `base64url(subscriber id || HMAC(secret, purpose, id, version)[..16])`.
//! Valid for as long as the subscriber exists; raising the subscriber's link version revokes them.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

use super::Token;

/// What a link lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    Unsubscribe,
    Manage,
    /// Marks the reader active (`engagement.remember_last_activity`) when they follow a counted
    /// link: it can do nothing else.
    Activity,
}

impl LinkPurpose {
    fn label(self) -> &'static [u8] {
        match self {
            LinkPurpose::Unsubscribe => b"unsubscribe",
            LinkPurpose::Manage => b"manage",
            LinkPurpose::Activity => b"activity",
        }
    }
}

fn keyed(secret: &[u8], purpose: LinkPurpose, id: Uuid, version: i32) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(purpose.label());
    mac.update(b"\0");
    mac.update(id.as_bytes());
    mac.update(&version.to_be_bytes());
    mac
}

pub fn sign(secret: &[u8], purpose: LinkPurpose, id: Uuid, version: i32) -> Token {
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(id.as_bytes());
    bytes[16..].copy_from_slice(&keyed(secret, purpose, id, version).finalize().into_bytes()[..16]);
    Token::parse(&URL_SAFE_NO_PAD.encode(bytes)).expect("32 bytes encode to a token")
}

fn decode(token: &Token) -> (Uuid, Vec<u8>) {
    let bytes = URL_SAFE_NO_PAD
        .decode(token.as_str())
        .expect("a parsed token decodes");
    let id = Uuid::from_slice(&bytes[..16]).expect("16 bytes");
    (id, bytes[16..].to_vec())
}

/// The subscriber a link claims to be for; check it with [`verify`] against their version.
pub fn subscriber_of(token: &Token) -> Uuid {
    decode(token).0
}

/// Constant-time check of the link's MAC for this subscriber and version.
pub fn verify(secret: &[u8], purpose: LinkPurpose, token: &Token, version: i32) -> bool {
    let (id, tag) = decode(token);
    keyed(secret, purpose, id, version)
        .verify_truncated_left(&tag)
        .is_ok()
}
#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_signed_link_verifies_only_for_its_purpose_version_and_secret() {
        let id = Uuid::new_v4();
        let t = sign(SECRET, LinkPurpose::Unsubscribe, id, 1);
        assert_eq!(subscriber_of(&t), id);
        assert!(verify(SECRET, LinkPurpose::Unsubscribe, &t, 1));
        assert!(!verify(SECRET, LinkPurpose::Manage, &t, 1));
        assert!(!verify(SECRET, LinkPurpose::Unsubscribe, &t, 2));
        assert!(!verify(
            b"another secret of enough length!!",
            LinkPurpose::Unsubscribe,
            &t,
            1
        ));
    }

    #[test]
    fn an_altered_link_does_not_verify() {
        let t = sign(SECRET, LinkPurpose::Unsubscribe, Uuid::new_v4(), 1);
        let mut s = t.as_str().to_owned();
        let swap = if &s[30..31] == "A" { "B" } else { "A" };
        s.replace_range(30..31, swap);
        let altered = Token::parse(&s).unwrap();
        assert!(!verify(SECRET, LinkPurpose::Unsubscribe, &altered, 1));
    }
}
