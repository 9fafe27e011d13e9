use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

const TOKEN_BYTES: usize = 32;
const TOKEN_CHARS: usize = 43;

/// A secret token carried in a link: 256 random bits, base64url without padding.
/// Only its [`TokenHash`] is ever stored.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

/// SHA-256 of a token: what the database keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHash(pub [u8; 32]);

impl Token {
    pub fn generate() -> Self {
        let mut bytes = [0u8; TOKEN_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The token for a random `nonce` under `secret`: HMAC-SHA256(secret, purpose || nonce).
    /// Lets a queued mail carry only the nonce, so neither a token nor anything that yields one
    /// without the secret key is stored.
    pub fn derive(secret: &[u8], purpose: &str, nonce: &str) -> Self {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(nonce.as_bytes());
        Self(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    /// 128 random bits, hex-encoded, for [`Token::derive`].
    pub fn nonce() -> String {
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Accepts only the exact shape we issue, so junk never reaches the database.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok = raw.len() == TOKEN_CHARS
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && URL_SAFE_NO_PAD
                .decode(raw)
                .is_ok_and(|b| b.len() == TOKEN_BYTES);
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err("This link is incomplete or damaged.".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

/// Equality of two secrets (a token, a signature, a code) whose time does not depend on where
/// the first difference is; only the lengths may tell.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_differ() {
        let a = Token::generate();
        let b = Token::generate();
        assert_ne!(a, b);
        assert_eq!(Token::parse(a.as_str()).unwrap(), a);
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn altered_or_truncated_tokens_do_not_parse() {
        let t = Token::generate();
        let s = t.as_str();
        assert!(Token::parse(&s[1..]).is_err());
        assert!(Token::parse(&format!("{s}A")).is_err());
        assert!(Token::parse(&s.replace(&s[0..1], "+")).is_err());
        assert!(Token::parse("").is_err());
    }

    #[test]
    fn derived_tokens_depend_on_secret_purpose_and_nonce() {
        let n = Token::nonce();
        let a = Token::derive(b"secret-one", "confirm", &n);
        assert_eq!(a, Token::derive(b"secret-one", "confirm", &n));
        assert!(Token::parse(a.as_str()).is_ok());
        assert_ne!(a, Token::derive(b"secret-two", "confirm", &n));
        assert_ne!(a, Token::derive(b"secret-one", "manage", &n));
        assert_ne!(a, Token::derive(b"secret-one", "confirm", &Token::nonce()));
    }

    #[test]
    fn debug_output_hides_the_token() {
        let t = Token::generate();
        assert!(!format!("{t:?}").contains(t.as_str()));
    }
}
