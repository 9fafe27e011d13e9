//! The bounce classifier cross-checked with a third party: GNU Mailman's detector,
//! `flufl.bounce` (from PyPI; `scripts/test` installs it into `target/pyenv`), over every
//! report in `tests/fixtures/reports` (DSNs, ARF reports and automatic replies in the shapes
//! Postfix, Exim, Exchange, Gmail, Yahoo, Microsoft JMRP, qmail, Sendmail and Domino send; an
//! RFC 3464 minimum; several recipients; 8-bit text; badly nested or cut MIME).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use newsletter::bounce::{classify, ReportKind};

/// Prints, as JSON, the temporary and permanent failures flufl.bounce finds in each file named
/// on the command line.
const SCAN: &str = r#"
import email, json, sys
from flufl.bounce import all_failures
found = {}
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        temporary, permanent = all_failures(email.message_from_binary_file(f))
    found[path] = {"temporary": sorted(a.decode("ascii").lower() for a in temporary),
                   "permanent": sorted(a.decode("ascii").lower() for a in permanent)}
print(json.dumps(found))
"#;

const FULL_MAILBOX: &str = "5.2.2 (mailbox full) may pass: soft by design, counted per mail";
const POLICY: &str = "5.7.x is a refusal by policy, not a bad address: soft by design";
const TEMPORARY: &str = "the receiving server said 4.x.x (temporary); the relay gave up \
                         later: soft by design";
const NO_ADDRESS_CODE: &str = "the status says nothing of the address (RFC 3463: 5.0.0 other, \
                               5.4.1 no answer from host): soft by design";

/// The permanent failures flufl.bounce finds that ours does not count hard, and why. A line
/// here that no longer applies fails the test too.
const NOT_HARD: &[(&str, &str, &str)] = &[
    (
        "domino_dsn.eml",
        "old.person@domino.example.com",
        NO_ADDRESS_CODE,
    ),
    (
        "exchange_online_dbeb_5_4_1.eml",
        "nobody@fabrikam.example",
        NO_ADDRESS_CODE,
    ),
    ("exchange_quota.eml", "full@contoso.example", FULL_MAILBOX),
    ("exim_mixed_codes.eml", "busy@example.com", TEMPORARY),
    ("exim_quota.eml", "quota@example.org", FULL_MAILBOX),
    (
        "forwarded_bounce.eml",
        "somebody.else@example.net",
        "a bounce a person forwarded inside their own message is no report of a mail system: \
         unknown, kept for staff",
    ),
    (
        "gmail_unauthenticated_5_7_26.eml",
        "strict.reader@gmail.com",
        POLICY,
    ),
    (
        "postfix_mailbox_full.eml",
        "full.user@example.com",
        FULL_MAILBOX,
    ),
    ("postfix_policy_refusal.eml", "strict@example.com", POLICY),
    (
        "qmail_multi_recipient.eml",
        "second.full@qmail.example.net",
        TEMPORARY,
    ),
    (
        "sendmail_multi_recipient.eml",
        "student.full@sendmail.example.edu",
        FULL_MAILBOX,
    ),
];

/// Every report of the corpus, by file name.
fn corpus() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reports");
    let mut files: Vec<PathBuf> = [root.clone(), root.join("corpus")]
        .iter()
        .flat_map(|dir| std::fs::read_dir(dir).unwrap())
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    files
}

fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// flufl.bounce's (temporary, permanent) failures of each file, by file name.
fn flufl_bounce(files: &[PathBuf]) -> BTreeMap<String, (Vec<String>, Vec<String>)> {
    let out = Command::new(crate::helpers::python())
        .arg("-c")
        .arg(SCAN)
        .args(files)
        .output()
        .expect("flufl.bounce's python (scripts/test installs it into target/pyenv)");
    assert!(
        out.status.success(),
        "flufl.bounce: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let list = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_owned())
            .collect()
    };
    found
        .into_iter()
        .map(|(path, v)| {
            (
                name(Path::new(&path)),
                (list(&v["temporary"]), list(&v["permanent"])),
            )
        })
        .collect()
}

#[test]
fn every_permanent_failure_flufl_bounce_finds_is_one_ours_classifies_hard() {
    let files = corpus();
    assert!(files.len() >= 40, "a corpus of {} reports", files.len());
    let theirs = flufl_bounce(&files);
    let mut disagree = Vec::new();
    let mut excused = BTreeSet::new();
    let mut hard = 0;
    for file in &files {
        let name = name(file);
        let report = classify(&std::fs::read(file).unwrap());
        let ours: BTreeMap<&str, ReportKind> = report
            .recipients
            .iter()
            .map(|v| (v.recipient.as_str(), v.kind))
            .collect();
        let (temporary, permanent) = &theirs[&name];
        for address in permanent {
            let kind = ours.get(address.as_str()).copied();
            if kind == Some(ReportKind::Hard) {
                hard += 1;
                continue;
            }
            match NOT_HARD.iter().find(|(f, a, _)| *f == name && a == address) {
                Some(excuse) => {
                    excused.insert(excuse);
                }
                None => disagree.push(format!(
                    "{name}: flufl.bounce finds {address} a permanent failure, ours {kind:?}"
                )),
            }
        }
        for address in temporary {
            if ours.get(address.as_str()) == Some(&ReportKind::Hard) {
                disagree.push(format!(
                    "{name}: flufl.bounce finds {address} a temporary failure, ours hard"
                ));
            }
        }
    }
    assert!(disagree.is_empty(), "{disagree:#?}");
    let stale: Vec<_> = NOT_HARD.iter().filter(|e| !excused.contains(e)).collect();
    assert!(
        stale.is_empty(),
        "excused, but no longer a disagreement: {stale:#?}"
    );
    assert!(
        hard >= 25,
        "only {hard} agreed hard failures: is flufl.bounce working?"
    );
}
