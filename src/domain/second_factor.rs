//! Second factors of staff accounts: TOTP (RFC 6238 with HMAC-SHA-1, 6 digits, 30-second
//! steps and a 160-bit secret, computed by `totp-rs`) and recovery codes.
//!
//! A TOTP secret must be read back to check a code, so it cannot be stored hashed: it is stored
//! sealed ([`TotpSecret::seal`]) with a key derived from `security.secret_key` and bound to the
//! account, so a copy of the database alone yields no secret and a sealed secret moved to
//! another account does not open. Recovery codes are stored as SHA-256 only.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use sha2::Sha256;
use totp_rs::{Algorithm, TOTP};
use uuid::Uuid;

use super::staff::{crockford_display, crockford_generate, crockford_parse};
use super::token::constant_time_eq;

/// Seconds in a TOTP time step.
pub const TOTP_STEP_SECONDS: u64 = 30;
/// Steps either side of now whose code is accepted (a clock off by up to 30 s, and the time a
/// person takes to type).
pub const TOTP_SKEW_STEPS: u64 = 1;
/// Digits of a TOTP code.
pub const TOTP_DIGITS: usize = 6;
/// Bytes of a TOTP secret (160 bits, as RFC 4226 recommends).
pub const TOTP_SECRET_BYTES: usize = 20;
/// Recovery codes made at enrolment (and each time they are made again).
pub const RECOVERY_CODES: usize = 10;
/// Characters of a recovery code (Crockford's base32: 80 bits), shown as four groups of four.
const RECOVERY_CODE_CHARS: usize = 16;

/// A TOTP secret. Never shown in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret([u8; TOTP_SECRET_BYTES]);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret([redacted])")
    }
}

impl TotpSecret {
    pub fn generate() -> Self {
        let mut bytes = [0u8; TOTP_SECRET_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    fn totp(&self, issuer: &str, account: &str) -> TOTP {
        TOTP {
            algorithm: Algorithm::SHA1,
            digits: TOTP_DIGITS,
            skew: 0,
            step: TOTP_STEP_SECONDS,
            secret: self.0.to_vec(),
            // otpauth labels cannot hold a colon; the label is for the person's app only.
            issuer: Some(issuer.replace(':', " ")),
            account_name: account.replace(':', " "),
        }
    }

    /// The secret in base32 (RFC 4648, no padding), for typing into an app: 32 characters.
    pub fn base32(&self) -> String {
        self.totp("", "").get_secret_base32()
    }

    /// The `otpauth://totp/...` URI an authenticator app reads from the QR code.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> String {
        self.totp(issuer, account).get_url()
    }

    /// The QR code of [`Self::otpauth_uri`], as an SVG document (black on white, at least
    /// 200 × 200 pixels).
    pub fn qr_svg(&self, issuer: &str, account: &str) -> String {
        let uri = self.otpauth_uri(issuer, account);
        qrcode::QrCode::with_error_correction_level(uri.as_bytes(), qrcode::EcLevel::M)
            .map(|code| {
                code.render::<qrcode::render::svg::Color>()
                    .min_dimensions(200, 200)
                    .build()
            })
            .unwrap_or_default()
    }

    /// The time step (Unix seconds / 30) whose code `code` is, among the steps within
    /// [`TOTP_SKEW_STEPS`] of `unix_seconds`; `None` when it is none of them or not six digits
    /// (spaces are ignored). Whether the step was used already is the caller's to check.
    pub fn step_of(&self, code: &str, unix_seconds: u64) -> Option<u64> {
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if code.len() != TOTP_DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let totp = self.totp("", "");
        let now = unix_seconds / TOTP_STEP_SECONDS;
        let mut found = None;
        for step in now.saturating_sub(TOTP_SKEW_STEPS)..=now + TOTP_SKEW_STEPS {
            let expected = totp.generate(step * TOTP_STEP_SECONDS);
            // every step is computed, so the time does not tell which one matched
            if constant_time_eq(expected.as_bytes(), code.as_bytes()) {
                found = Some(step);
            }
        }
        found
    }

    /// The code of the step holding `unix_seconds` (for tests and the enrolment check).
    pub fn code_at(&self, unix_seconds: u64) -> String {
        self.totp("", "").generate(unix_seconds)
    }

    /// The secret sealed for account `staff_id` under `key` (ChaCha20-Poly1305 with a random
    /// nonce, the account id as associated data): nonce ‖ ciphertext ‖ tag, base64.
    pub fn seal(&self, key: &SealingKey, staff_id: Uuid) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut sealed = self.0.to_vec();
        key.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(staff_id.as_bytes()),
                &mut sealed,
            )
            .expect("a 20-byte secret seals");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        STANDARD.encode(out)
    }

    /// Opens what [`Self::seal`] made for `staff_id`; `None` when it was made under another
    /// key (the secret key changed), for another account, or altered.
    pub fn open(sealed: &str, key: &SealingKey, staff_id: Uuid) -> Option<Self> {
        let bytes = STANDARD.decode(sealed).ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let mut rest = rest.to_vec();
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let plain = key
            .0
            .open_in_place(nonce, Aad::from(staff_id.as_bytes()), &mut rest)
            .ok()?;
        Some(Self(plain.try_into().ok()?))
    }
}

/// The key TOTP secrets are sealed with: HMAC-SHA256(`security.secret_key`, a fixed label).
/// Changing the secret key makes every sealed secret unreadable: members then sign in with a
/// recovery code or have their second factor reset.
pub struct SealingKey(LessSafeKey);

impl SealingKey {
    pub fn derive(secret_key: &[u8]) -> Self {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret_key).expect("HMAC takes keys of any length");
        mac.update(b"newsletter: staff TOTP secrets");
        let key = mac.finalize().into_bytes();
        Self(LessSafeKey::new(
            UnboundKey::new(&CHACHA20_POLY1305, &key).expect("a 32-byte key"),
        ))
    }
}

/// A one-time recovery code: 16 characters of Crockford's base32 (80 bits), shown as
/// `XXXX-XXXX-XXXX-XXXX`, read back without regard to case, dashes or spaces. Only its SHA-256
/// is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCode(String);

impl std::fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryCode([redacted])")
    }
}

impl RecoveryCode {
    pub fn generate() -> Self {
        Self(crockford_generate(RECOVERY_CODE_CHARS))
    }

    /// A code as typed; `None` when it cannot be one.
    pub fn parse(raw: &str) -> Option<Self> {
        crockford_parse(raw, RECOVERY_CODE_CHARS).map(Self)
    }

    pub fn display(&self) -> String {
        crockford_display(&self.0)
    }

    pub fn hash(&self) -> [u8; 32] {
        use sha2::Digest;
        Sha256::digest(self.0.as_bytes()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_sha1_test_vectors_give_the_published_codes() {
        // RFC 6238, appendix B (SHA-1 seed "12345678901234567890", 8 digits there; the last
        // six of each are what a 6-digit code is)
        let secret = TotpSecret(*b"12345678901234567890");
        for (time, eight) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(secret.code_at(time), eight[2..], "at {time}");
        }
    }

    #[test]
    fn a_code_matches_its_step_and_the_neighbours_only() {
        let secret = TotpSecret::generate();
        let t = 1_700_000_000;
        let code = secret.code_at(t);
        let step = t / 30;
        assert_eq!(secret.step_of(&code, t), Some(step));
        assert_eq!(secret.step_of(&code, t + 30), Some(step));
        assert_eq!(
            secret.step_of(&format!(" {} {} ", &code[..3], &code[3..]), t),
            Some(step)
        );
        assert_eq!(secret.step_of(&code, t + 90), None, "two steps later");
        assert_eq!(secret.step_of(&code, t - 90), None);
        assert_eq!(secret.step_of("12345", t), None);
        assert_eq!(secret.step_of("12345a", t), None);
    }

    #[test]
    fn a_sealed_secret_opens_for_its_account_and_key_only() {
        let key = SealingKey::derive(b"one secret key of the service....");
        let other_key = SealingKey::derive(b"another secret key...............");
        let (me, you) = (Uuid::new_v4(), Uuid::new_v4());
        let secret = TotpSecret::generate();
        let sealed = secret.seal(&key, me);
        assert_eq!(TotpSecret::open(&sealed, &key, me), Some(secret.clone()));
        assert_eq!(TotpSecret::open(&sealed, &key, you), None);
        assert_eq!(TotpSecret::open(&sealed, &other_key, me), None);
        assert_ne!(secret.seal(&key, me), sealed, "a fresh nonce each time");
        assert_eq!(TotpSecret::open("not base64!", &key, me), None);
        assert_eq!(TotpSecret::open("", &key, me), None);
        assert!(!format!("{secret:?}").contains(&secret.base32()));
    }

    #[test]
    fn the_enrolment_uri_and_qr_name_the_secret_and_the_issuer() {
        let secret = TotpSecret::generate();
        let uri = secret.otpauth_uri("US ICC: News", "ann@example.org");
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
        assert!(
            uri.contains(&format!("secret={}", secret.base32())),
            "{uri}"
        );
        assert_eq!(secret.base32().len(), 32);
        let svg = secret.qr_svg("US ICC", "ann@example.org");
        assert!(svg.contains("<svg") && svg.contains("</svg>"), "{svg}");
    }

    #[test]
    fn a_recovery_code_reads_back_as_typed() {
        let code = RecoveryCode::generate();
        let shown = code.display();
        assert_eq!(shown.len(), 19, "{shown}");
        assert_eq!(
            RecoveryCode::parse(&shown.to_lowercase()),
            Some(code.clone())
        );
        assert_eq!(
            RecoveryCode::parse(&shown.replace('-', " ")),
            Some(code.clone())
        );
        assert_eq!(RecoveryCode::parse(&shown[..18]), None);
        assert_eq!(RecoveryCode::parse("123456"), None);
    }
}
