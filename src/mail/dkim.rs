//! DKIM signing (RFC 6376, relaxed/relaxed), with RSA-SHA256 and Ed25519-SHA256 (RFC 8463),
//! one signature per configured key. Every header in [`SIGNED_HEADERS`] is over-signed
//! (RFC 6376 §8.15): listed once more than the mail has it, so a copy added in transit (a second
//! From, Subject or List-Unsubscribe) breaks the signature. lettre's own signer lists each name
//! once and cannot do this.

use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, RsaKeyPair, RSA_PKCS1_SHA256};
use sha2::{Digest, Sha256};

use crate::config::{DkimAlgorithm, DkimKey, DkimSettings};

/// Headers every signature covers, each over-signed.
pub const SIGNED_HEADERS: &[&str] = &[
    "From",
    "Sender",
    "Reply-To",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Feedback-ID",
];

/// Whether mail From `from_domain` and signed with `d=dkim_domain` passes DMARC's relaxed
/// alignment: the same domain, or one a subdomain of the other. (Two sibling subdomains share an
/// organizational domain too, but telling that needs the public suffix list; they are refused.)
pub fn aligned(from_domain: &str, dkim_domain: &str) -> bool {
    let (a, b) = (
        from_domain.to_ascii_lowercase(),
        dkim_domain.to_ascii_lowercase(),
    );
    let (a, b) = (a.trim_end_matches('.'), b.trim_end_matches('.'));
    a == b || a.ends_with(&format!(".{b}")) || b.ends_with(&format!(".{a}"))
}

enum Key {
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

struct Signer {
    selector: String,
    key: Key,
}

/// Signs raw messages with every configured key of one domain.
pub struct Dkim {
    domain: String,
    signers: Vec<Signer>,
}

impl Dkim {
    pub fn new(settings: &DkimSettings) -> anyhow::Result<Self> {
        let signers = settings
            .keys
            .iter()
            .map(|k| {
                Ok(Signer {
                    selector: k.selector.clone(),
                    key: load_key(k)?,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            domain: settings.domain.clone(),
            signers,
        })
    }

    /// `message`, a whole RFC 5322 message with CRLF line ends, with one DKIM-Signature header
    /// per key in front.
    pub fn sign(&self, message: &[u8], now: u64) -> Vec<u8> {
        let (head, body) = split(message);
        let fields = header_fields(head);
        let body_hash = base64(&Sha256::digest(relaxed_body(body)));
        let mut names = Vec::new();
        for name in SIGNED_HEADERS {
            let present = fields
                .iter()
                .filter(|f| field_name(f).eq_ignore_ascii_case(name))
                .count();
            names.extend(std::iter::repeat_n(name.to_ascii_lowercase(), present + 1));
        }
        let signed = signed_fields(&fields, &names);
        let mut out = Vec::with_capacity(message.len() + 1024 * self.signers.len());
        for signer in &self.signers {
            let algorithm = match signer.key {
                Key::Rsa(_) => "rsa-sha256",
                Key::Ed25519(_) => "ed25519-sha256",
            };
            let unsigned = format!(
                "DKIM-Signature: v=1; a={algorithm}; c=relaxed/relaxed; d={}; s={}; t={now};\r\n\th={};\r\n\tbh={body_hash};\r\n\tb=",
                self.domain,
                signer.selector,
                names.join(":"),
            );
            let mut hasher = Sha256::new();
            hasher.update(&signed);
            hasher.update(relaxed_field(&unsigned).trim_end_matches("\r\n"));
            let digest = hasher.finalize();
            let signature = match &signer.key {
                Key::Rsa(key) => {
                    let mut sig = vec![0; key.public().modulus_len()];
                    // Signing with a valid key pair cannot fail but for a wrong output size.
                    key.sign(
                        &RSA_PKCS1_SHA256,
                        &SystemRandom::new(),
                        &signed_data(&signed, &unsigned),
                        &mut sig,
                    )
                    .expect("RSA signing with a buffer of the modulus length");
                    sig
                }
                // RFC 8463: Ed25519 signs the SHA-256 hash of the data.
                Key::Ed25519(key) => key.sign(&digest).as_ref().to_vec(),
            };
            out.extend_from_slice(unsigned.as_bytes());
            out.extend_from_slice(fold(&base64(&signature)).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(message);
        out
    }
}

/// The data RSA-SHA256 signs (ring hashes it itself).
fn signed_data(signed: &str, unsigned: &str) -> Vec<u8> {
    let mut data = signed.as_bytes().to_vec();
    data.extend_from_slice(relaxed_field(unsigned).trim_end_matches("\r\n").as_bytes());
    data
}

fn load_key(key: &DkimKey) -> anyhow::Result<Key> {
    let text = key.private_key.expose();
    let bad = |e: String| {
        anyhow::anyhow!(
            "configuration key `{}`: not a valid {} key: {e}",
            key.file_key,
            key.algorithm
        )
    };
    match key.algorithm {
        DkimAlgorithm::Rsa => {
            let der = pem_body(text).map_err(bad)?;
            if text.contains("BEGIN RSA PRIVATE KEY") {
                RsaKeyPair::from_der(&der)
            } else {
                RsaKeyPair::from_pkcs8(&der)
            }
            .map(Key::Rsa)
            .map_err(|e| bad(format!("{e} (a PKCS#1 or PKCS#8 PEM of 2048 bits or more)")))
        }
        DkimAlgorithm::Ed25519 => {
            let seed = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|e| bad(e.to_string()))?;
            Ed25519KeyPair::from_seed_unchecked(&seed)
                .map(Key::Ed25519)
                .map_err(|e| bad(format!("{e} (the 32-byte secret key in base64)")))
        }
    }
}

fn pem_body(text: &str) -> Result<Vec<u8>, String> {
    let b64: String = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("not PEM: {e}"))
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A base64 signature cut into lines of 72 (folding white space is allowed inside `b=`).
fn fold(b64: &str) -> String {
    b64.as_bytes()
        .chunks(72)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect::<Vec<_>>()
        .join("\r\n\t")
}

/// The header block (each field ending in CRLF) and the body.
fn split(message: &[u8]) -> (&str, &[u8]) {
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(message.len(), |p| p + 2);
    let head = std::str::from_utf8(&message[..end]).unwrap_or("");
    let body = message.get(end + 2..).unwrap_or(&[]);
    (head, body)
}

/// Header fields with their folding, each with its final CRLF.
fn header_fields(head: &str) -> Vec<&str> {
    let mut fields = Vec::new();
    let mut start = 0;
    let bytes = head.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\n' && !matches!(bytes.get(i + 1), Some(b' ' | b'\t')) {
            fields.push(&head[start..=i]);
            start = i + 1;
        }
        i += 1;
    }
    fields
}

fn field_name(field: &str) -> &str {
    field.split(':').next().unwrap_or("").trim()
}

/// The canonical fields `names` select: the n-th use of a name takes its n-th instance from the
/// bottom; a name with no instance left contributes nothing (RFC 6376 §5.4.2).
fn signed_fields(fields: &[&str], names: &[String]) -> String {
    let mut used: Vec<(&str, usize)> = Vec::new();
    let mut out = String::new();
    for name in names {
        let n = match used.iter_mut().find(|(k, _)| k == name) {
            Some((_, n)) => {
                *n += 1;
                *n - 1
            }
            None => {
                used.push((name, 1));
                0
            }
        };
        if let Some(field) = fields
            .iter()
            .rev()
            .filter(|f| field_name(f).eq_ignore_ascii_case(name))
            .nth(n)
        {
            out.push_str(&relaxed_field(field));
        }
    }
    out
}

/// Relaxed header canonicalization of one field: lower-case name, unfolded, runs of white space
/// as one space, none around the colon or at the end; ends in CRLF.
fn relaxed_field(field: &str) -> String {
    let (name, value) = field.split_once(':').unwrap_or((field, ""));
    let unfolded = value.replace("\r\n", "");
    let mut out = name.trim_end().to_ascii_lowercase();
    out.push(':');
    out.push_str(&collapse(unfolded.trim_matches([' ', '\t'])));
    out.push_str("\r\n");
    out
}

fn collapse(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if c == ' ' || c == '\t' {
            space = true;
        } else {
            if space {
                out.push(' ');
                space = false;
            }
            out.push(c);
        }
    }
    out
}

/// Relaxed body canonicalization: white space at line ends dropped, runs of it as one space,
/// empty lines at the end dropped, a non-empty body ending in CRLF.
fn relaxed_body(body: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    let mut lines: Vec<String> = text
        .split("\r\n")
        .map(|l| collapse(l.trim_end_matches([' ', '\t'])))
        .collect();
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    let mut out = Vec::with_capacity(body.len());
    for line in lines {
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_is_the_same_domain_or_a_subdomain() {
        assert!(aligned("example.org", "example.org"));
        assert!(aligned("News.Example.org", "example.org"));
        assert!(aligned("example.org", "mail.example.org"));
        assert!(!aligned("partner.example.net", "example.org"));
        assert!(!aligned("badexample.org", "example.org"));
    }

    #[test]
    fn an_instance_beyond_those_present_signs_as_nothing() {
        let fields = ["From: a@x\r\n", "Subject: one\r\n", "From: b@x\r\n"];
        let names: Vec<String> = ["from", "from", "from", "subject"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            signed_fields(&fields, &names),
            "from:b@x\r\nfrom:a@x\r\nsubject:one\r\n"
        );
    }

    #[test]
    fn relaxed_canonicalization_unfolds_and_collapses() {
        assert_eq!(
            relaxed_field("Subject :  a\r\n\t b  c \r\n"),
            "subject:a b c\r\n"
        );
        assert_eq!(relaxed_body(b" a  b \r\n\r\n\r\n"), b" a b\r\n");
    }
}
