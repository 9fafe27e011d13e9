//! Staff accounts: roles and passwords (argon2id). Hashing is CPU work, not I/O; callers run it
//! off the async threads.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted (hashing cost does not depend on it, but memory does).
pub const MAX_PASSWORD_CHARS: usize = 1_024;

/// What a member of staff may do. An editor collects news and composes drafts; an admin also
/// sends, schedules, pauses, resumes, cancels, approves and manages staff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StaffRole {
    Admin,
    Editor,
}

impl StaffRole {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim() {
            "admin" => Ok(Self::Admin),
            "editor" => Ok(Self::Editor),
            other => Err(format!("{other:?} is not a role: admin or editor")),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Editor => "editor",
        }
    }
}

/// A password a person chose, checked for length. Never shown in `Debug`.
pub struct NewPassword(String);

impl NewPassword {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim_end_matches(['\r', '\n']);
        let n = raw.chars().count();
        if n < MIN_PASSWORD_CHARS {
            return Err(format!(
                "A password has at least {MIN_PASSWORD_CHARS} characters."
            ));
        }
        if n > MAX_PASSWORD_CHARS {
            return Err(format!(
                "A password has at most {MAX_PASSWORD_CHARS} characters."
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// 20 random characters from an alphabet without look-alikes (about 115 bits).
    pub fn generate() -> Self {
        use rand::Rng;
        const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        let mut rng = rand::rngs::OsRng;
        Self(
            (0..20)
                .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
                .collect(),
        )
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The argon2id PHC string to store.
    pub fn hash(&self) -> String {
        let salt = SaltString::generate(&mut OsRng);
        hasher()
            .hash_password(self.0.as_bytes(), &salt)
            .expect("argon2 hashes any password with valid parameters")
            .to_string()
    }
}

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword([redacted])")
    }
}

/// argon2id with m = 19456 KiB, t = 2, p = 1 (the OWASP minimum).
fn hasher() -> Argon2<'static> {
    let params = Params::new(19_456, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Whether `password` matches the stored PHC string. A malformed hash never matches.
pub fn verify_password(stored: &str, password: &str) -> bool {
    argon2::password_hash::PasswordHash::new(stored)
        .is_ok_and(|h| hasher().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash of a random password nobody knows, verified against when the account does not
/// exist, so an unknown address costs the same time as a wrong password.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| NewPassword::generate().hash())
}

/// The one-time code that lets the first admin be created in the browser (`/admin/setup`):
/// 12 characters of Crockford's base32 (60 bits), shown as `XXXX-XXXX-XXXX`. Only its SHA-256
/// is stored. What a person types back is read without regard to case, dashes or spaces, and
/// with Crockford's look-alikes (`O` as `0`, `I`/`L` as `1`).
#[derive(Clone, PartialEq, Eq)]
pub struct SetupCode(String);

/// Crockford's base32 alphabet (no I, L, O, U).
const CROCKFORD: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const SETUP_CODE_CHARS: usize = 12;

/// `n` random characters of Crockford's base32 (5 bits each).
pub(super) fn crockford_generate(n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rngs::OsRng;
    (0..n)
        .map(|_| CROCKFORD[rng.gen_range(0..CROCKFORD.len())] as char)
        .collect()
}

/// A code of `n` Crockford characters as a person typed it: case, dashes, spaces and tabs
/// ignored, `O` read as `0` and `I`/`L` as `1`. `None`: another length or character.
pub(super) fn crockford_parse(raw: &str, n: usize) -> Option<String> {
    let mut code = String::with_capacity(n);
    for c in raw.chars().filter(|c| !matches!(c, '-' | ' ' | '\t')) {
        let c = match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        };
        if !(c.is_ascii() && CROCKFORD.contains(&(c as u8))) || code.len() == n {
            return None;
        }
        code.push(c);
    }
    (code.len() == n).then_some(code)
}

/// A Crockford code in groups of four joined by dashes (`XXXX-XXXX-XXXX`).
pub(super) fn crockford_display(code: &str) -> String {
    code.as_bytes()
        .chunks(4)
        .map(|group| std::str::from_utf8(group).expect("Crockford codes are ASCII"))
        .collect::<Vec<_>>()
        .join("-")
}

impl SetupCode {
    pub fn generate() -> Self {
        Self(crockford_generate(SETUP_CODE_CHARS))
    }

    /// A code as typed; `None` when it cannot be one (wrong length or characters).
    pub fn parse(raw: &str) -> Option<Self> {
        crockford_parse(raw, SETUP_CODE_CHARS).map(Self)
    }

    /// For the start banner: `XXXX-XXXX-XXXX`.
    pub fn display(&self) -> String {
        crockford_display(&self.0)
    }

    /// The SHA-256 stored in place of the code.
    pub fn hash(&self) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(self.0.as_bytes()).into()
    }
}

impl std::fmt::Debug for SetupCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SetupCode([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only_and_is_argon2id_with_the_minimum_cost() {
        let p = NewPassword::parse("correct horse battery").unwrap();
        let h = p.hash();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password(&h, "correct horse battery"));
        assert!(!verify_password(&h, "correct horse batterz"));
        assert!(!verify_password("not a hash", "correct horse battery"));
    }

    #[test]
    fn short_passwords_are_refused_and_generated_ones_are_long() {
        assert!(NewPassword::parse("short").is_err());
        assert_eq!(NewPassword::generate().expose().chars().count(), 20);
        assert!(!format!("{:?}", NewPassword::generate()).contains('$'));
    }

    #[test]
    fn a_setup_code_reads_back_as_typed_and_nothing_else_passes() {
        let code = SetupCode::generate();
        let shown = code.display();
        assert_eq!(shown.len(), 14, "{shown}");
        assert_eq!(SetupCode::parse(&shown), Some(code.clone()));
        assert_eq!(SetupCode::parse(&shown.to_lowercase()), Some(code.clone()));
        assert_eq!(
            SetupCode::parse(&format!(" {} ", shown.replace('-', " "))),
            Some(code.clone())
        );
        assert_eq!(
            SetupCode::parse("0O1I-L000-0000").map(|c| c.hash()),
            SetupCode::parse("0011-1000-0000").map(|c| c.hash()),
            "look-alikes read as Crockford says"
        );
        for wrong in [
            "",
            "ABCD-EFGH-JKM",
            "ABCD-EFGH-JKMNP",
            "ABCD-EFGH-JKMU",
            "ABCD-EFGH-JKM\u{e9}",
        ] {
            assert_eq!(SetupCode::parse(wrong), None, "{wrong:?}");
        }
        assert!(!format!("{code:?}").contains(&shown[..4]));
    }
}
