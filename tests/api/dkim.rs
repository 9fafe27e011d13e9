//! DKIM as a third party sees it: every mail verified by dkimpy (from PyPI; `scripts/test`
//! installs it into `target/pyenv`), with RSA, Ed25519 and both at once; over-signed headers, so
//! a From added in transit fails; an update From not aligned with the signing domain refused.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{spawn_app_with, TestApp};

const WAIT: Duration = Duration::from_secs(10);

/// Verifies every DKIM-Signature of the message on stdin against the records given as
/// `name=record` arguments; prints one line per signature: `pass` or `fail`.
const VERIFY: &str = r#"
import sys, dkim
records = dict(a.split("=", 1) for a in sys.argv[1:])
def dns(name, timeout=5):
    return records.get(name.decode().rstrip("."), "").encode()
msg = sys.stdin.buffer.read()
d = dkim.DKIM(msg)
n = len([l for l in msg.split(b"\r\n\r\n", 1)[0].split(b"\r\n") if l.lower().startswith(b"dkim-signature:")])
for i in range(n):
    print("pass" if d.verify(idx=i, dnsfunc=dns) else "fail")
"#;

/// dkimpy's verdict on each signature of `message`.
fn dkimpy(message: &[u8], records: &[(String, String)]) -> Vec<String> {
    use std::io::Write;
    let mut child = Command::new(crate::helpers::python())
        .arg("-c")
        .arg(VERIFY)
        .args(records.iter().map(|(n, r)| format!("{n}={r}")))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("dkimpy's python (scripts/test installs it into target/pyenv)");
    child.stdin.take().unwrap().write_all(message).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "dkimpy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

struct Key {
    file: PathBuf,
    /// The DNS TXT record.
    record: String,
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("dkim-{}-{name}", uuid::Uuid::new_v4()))
}

fn rsa_key() -> Key {
    let file = temp("rsa.pem");
    let ok = Command::new("openssl")
        .args(["genrsa", "-out"])
        .arg(&file)
        .arg("2048")
        .output()
        .unwrap();
    assert!(ok.status.success());
    let public = Command::new("openssl")
        .args(["rsa", "-pubout", "-outform", "DER", "-in"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(public.status.success());
    let p = base64::engine::general_purpose::STANDARD.encode(public.stdout);
    Key {
        file,
        record: format!("v=DKIM1; k=rsa; p={p}"),
    }
}

fn ed25519_key() -> Key {
    use ring::signature::KeyPair;
    let seed: [u8; 32] = rand::random();
    let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
    let file = temp("ed25519.key");
    let b64 = base64::engine::general_purpose::STANDARD;
    std::fs::write(&file, b64.encode(seed)).unwrap();
    Key {
        file,
        record: format!(
            "v=DKIM1; k=ed25519; p={}",
            b64.encode(pair.public_key().as_ref())
        ),
    }
}

async fn app_signing(overrides: &[(&str, String)]) -> TestApp {
    let mut all: Vec<(&str, toml::Value)> = vec![("mail.dkim.domain", "example.org".into())];
    all.extend(overrides.iter().map(|(k, v)| (*k, v.as_str().into())));
    spawn_app_with(&all).await
}

/// Mails of one update to two readers, and a confirmation.
async fn signed_mails(app: &TestApp) -> Vec<Vec<u8>> {
    let token = app.api_token().await;
    app.seed_confirmed(2, "example.com").await;
    let id = app.create_update(&token, "Signed").await;
    app.send_now(&token, &id).await;
    app.smtp.wait_for(2, WAIT).await;
    assert_eq!(app.signup("new.reader@example.com").await.status(), 303);
    app.smtp
        .wait_for(3, WAIT)
        .await
        .into_iter()
        .map(|m| m.data)
        .collect()
}

fn signature_headers(mail: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(mail);
    let head = text
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .replace("\r\n\t", " ");
    head.lines()
        .filter_map(|l| l.strip_prefix("DKIM-Signature:"))
        .map(|v| v.split_whitespace().collect())
        .collect()
}

#[tokio::test]
async fn rsa_signed_mails_verify_with_dkimpy_and_over_sign_from_and_content_type() {
    let rsa = rsa_key();
    let app = app_signing(&[
        ("mail.dkim.selector", "rsa1".into()),
        ("mail.dkim.private_key_file", rsa.file.display().to_string()),
    ])
    .await;
    let records = [("rsa1._domainkey.example.org".to_owned(), rsa.record)];
    for mail in signed_mails(&app).await {
        assert_eq!(dkimpy(&mail, &records), ["pass"]);
        let signatures = signature_headers(&mail);
        let h = signatures[0]
            .split(';')
            .find_map(|t| t.trim().strip_prefix("h="))
            .unwrap()
            .to_owned();
        assert!(h.contains("from:from:"), "{h}");
        assert!(h.contains("subject:subject:"), "{h}");
        assert!(h.contains("content-type:content-type"), "{h}");
    }
    let _ = std::fs::remove_file(rsa.file);
}

#[tokio::test]
async fn ed25519_signed_mails_verify_with_dkimpy() {
    let ed = ed25519_key();
    let app = app_signing(&[
        ("mail.dkim.selector", "ed1".into()),
        ("mail.dkim.algorithm", "ed25519".into()),
        ("mail.dkim.private_key_file", ed.file.display().to_string()),
    ])
    .await;
    let records = [("ed1._domainkey.example.org".to_owned(), ed.record)];
    for mail in signed_mails(&app).await {
        assert_eq!(dkimpy(&mail, &records), ["pass"]);
        assert!(signature_headers(&mail)[0].contains("a=ed25519-sha256"));
    }
    let _ = std::fs::remove_file(ed.file);
}

#[tokio::test]
async fn dual_signed_mails_carry_rsa_and_ed25519_and_a_forged_second_from_fails_both() {
    let (rsa, ed) = (rsa_key(), ed25519_key());
    let app = app_signing(&[
        ("mail.dkim.selector", "rsa1".into()),
        ("mail.dkim.private_key_file", rsa.file.display().to_string()),
        ("mail.dkim.ed25519_selector", "ed1".into()),
        (
            "mail.dkim.ed25519_private_key_file",
            ed.file.display().to_string(),
        ),
    ])
    .await;
    let records = [
        ("rsa1._domainkey.example.org".to_owned(), rsa.record),
        ("ed1._domainkey.example.org".to_owned(), ed.record),
    ];
    for mail in signed_mails(&app).await {
        assert_eq!(dkimpy(&mail, &records), ["pass", "pass"]);
        let algorithms: Vec<bool> = signature_headers(&mail)
            .iter()
            .map(|s| s.contains("a=rsa-sha256"))
            .collect();
        assert_eq!(algorithms.iter().filter(|rsa| **rsa).count(), 1);
        assert_eq!(algorithms.len(), 2);

        for forged in [
            "From: Attacker <ceo@evil.example>\r\n",
            "Subject: Urgent: wire the money\r\n",
            "List-Unsubscribe: <https://evil.example/x>\r\n",
        ] {
            let end = mail.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 2;
            let mut tampered = mail[..end].to_vec();
            tampered.extend_from_slice(forged.as_bytes());
            tampered.extend_from_slice(&mail[end..]);
            assert_eq!(
                dkimpy(&tampered, &records),
                ["fail", "fail"],
                "still verifies with {forged:?} added"
            );
        }
    }
    let _ = std::fs::remove_file(rsa.file);
    let _ = std::fs::remove_file(ed.file);
}

#[tokio::test]
async fn an_update_from_not_aligned_with_the_dkim_domain_is_refused() {
    let ed = ed25519_key();
    let app = app_signing(&[
        ("mail.dkim.selector", "ed1".into()),
        ("mail.dkim.algorithm", "ed25519".into()),
        ("mail.dkim.private_key_file", ed.file.display().to_string()),
    ])
    .await;
    let token = app.api_token().await;
    let body = |from: &str| {
        json!({"subject": "Partner news", "intro": "Hello.", "lists": ["us-icc-updates"],
               "from": from})
    };
    let refused = app
        .api(
            Method::POST,
            "/api/v1/updates",
            &token,
            Some(body("Partner <news@partner.example.net>")),
        )
        .await;
    assert_eq!(refused.status(), 422);
    let errors = refused.json::<serde_json::Value>().await.unwrap();
    assert!(
        errors["errors"]["from"]
            .as_str()
            .unwrap()
            .contains("not aligned"),
        "{errors}"
    );

    let created = app
        .api(
            Method::POST,
            "/api/v1/updates",
            &token,
            Some(body("Desk <desk@news.example.org>")),
        )
        .await;
    assert_eq!(created.status(), 201, "a subdomain is aligned");
    let id = created.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let patched = app
        .api(
            Method::PATCH,
            &format!("/api/v1/updates/{id}"),
            &token,
            Some(json!({"from": "news@partner.example.net"})),
        )
        .await;
    assert_eq!(patched.status(), 422);
    let _ = std::fs::remove_file(ed.file);
}

/// What `newsletter serve` logs before it says where it listens, with DKIM set up for
/// `dkim_domain` (and the default `mail.from`, at example.org).
fn start_up_log(dkim_domain: &str, key: &Key, db: &str) -> String {
    use std::io::{BufRead, BufReader};
    let mut child = crate::cli::newsletter()
        .env("DATABASE_URL", db)
        .env("NEWSLETTER__SERVER__BIND", "127.0.0.1:0")
        .env("NEWSLETTER__SMTP__URL", "smtp://127.0.0.1:9")
        .env("NEWSLETTER__MAIL__DKIM__DOMAIN", dkim_domain)
        .env("NEWSLETTER__MAIL__DKIM__SELECTOR", "ed1")
        .env("NEWSLETTER__MAIL__DKIM__ALGORITHM", "ed25519")
        .env("NEWSLETTER__MAIL__DKIM__PRIVATE_KEY_FILE", &key.file)
        .env("NO_COLOR", "1")
        .arg("serve")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let stderr = BufReader::new(child.stderr.take().unwrap());
    for lines in [
        Box::new(stdout.lines()) as Box<dyn Iterator<Item = std::io::Result<String>> + Send>,
        Box::new(stderr.lines()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let mut log = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while let Ok(line) =
        rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
    {
        if line.trim().starts_with("listening on ") {
            let _ = child.kill();
            let _ = child.wait();
            return log;
        }
        log.push_str(&line);
        log.push('\n');
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("serve did not start: {log}");
}

#[tokio::test]
async fn start_up_warns_when_the_dkim_domain_is_not_aligned_with_mail_from() {
    let db = crate::helpers::TestDatabase::create().await;
    let key = ed25519_key();

    let unaligned = start_up_log("partner.example.net", &key, &db.url);
    let aligned = start_up_log("mail.example.org", &key, &db.url);

    let warning = "mail.dkim.domain is not aligned with the domain of mail.from";
    let line = unaligned
        .lines()
        .find(|l| l.contains(warning))
        .unwrap_or_else(|| panic!("no warning at start: {unaligned}"));
    assert!(
        line.contains("WARN") && line.contains("partner.example.net"),
        "{line}"
    );
    assert!(!aligned.contains(warning), "{aligned}");
    let _ = std::fs::remove_file(key.file);
}
