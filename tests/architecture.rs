//! The code map's rules between modules (ARCHITECTURE.md, "Code map"), checked on the source
//! text: the doors (`routes/`, `cli`) reach the database only through `ops`; `ops` never calls
//! the worker; `mail` does no SQL and `store` knows no mail types; the rate limiter is not the
//! HTTP routes' own; `bench` does not go through the command line.

use std::fs;
use std::path::{Path, PathBuf};

/// One rule: no file under any of `under` (folders or files of `src/`) names any of `names`.
struct Rule {
    under: &'static [&'static str],
    names: &'static [&'static str],
    why: &'static str,
    /// Whether `//` comments count: the doors' rule is a plain `grep` (ARCHITECTURE.md says
    /// so), the others are about code and let comments name what they describe.
    comments_count: bool,
}

const RULES: &[Rule] = &[
    Rule {
        under: &["routes", "cli.rs", "cli"],
        names: &["store::", "crate::store", "super::store"],
        why: "a door reaches the database only through `ops`",
        comments_count: true,
    },
    Rule {
        under: &["ops"],
        names: &["worker::"],
        why: "`ops` never calls the worker (a preview renders through `mail`)",
        comments_count: false,
    },
    Rule {
        under: &["mail"],
        names: &["sqlx", "store::"],
        why: "`mail` does no SQL (its saved templates come through `mail::SavedTemplates`)",
        comments_count: false,
    },
    Rule {
        under: &["store"],
        names: &["crate::mail"],
        why: "`store` knows no mail types",
        comments_count: false,
    },
    Rule {
        under: &["bounce"],
        names: &["crate::routes"],
        why: "the SMTP listener takes the rate limiter from `limits`, not from the HTTP routes",
        comments_count: false,
    },
    Rule {
        under: &["bench"],
        names: &["cli::"],
        why: "`bench` imports through `ops::imports`",
        comments_count: false,
    },
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file at or under `path`.
fn rust_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_owned()];
    }
    let Ok(entries) = fs::read_dir(path) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.expect("a readable source folder").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// `line` without its `//` comment: a line that starts with `//`, or the part from a `//`
/// that follows a space (a URL's `://` in a string stays).
fn without_comment(line: &str) -> &str {
    if line.trim_start().starts_with("//") {
        return "";
    }
    line.find(" //").map_or(line, |at| &line[..at])
}

/// `file:line: text` for each line of a file under the rule's paths that names what it must not.
fn offences(rule: &Rule) -> Vec<String> {
    let root = src();
    let mut found = Vec::new();
    for under in rule.under {
        for file in rust_files(&root.join(under)) {
            let text = fs::read_to_string(&file).expect("a readable source file");
            for (n, line) in text.lines().enumerate() {
                let code = if rule.comments_count {
                    line
                } else {
                    without_comment(line)
                };
                if rule.names.iter().any(|name| code.contains(name)) {
                    let shown = file.strip_prefix(root.parent().unwrap()).unwrap_or(&file);
                    found.push(format!("{}:{}: {}", shown.display(), n + 1, line.trim()));
                }
            }
        }
    }
    found
}

#[test]
fn each_module_names_only_what_the_code_map_allows() {
    let mut failures = Vec::new();
    for rule in RULES {
        let found = offences(rule);
        if !found.is_empty() {
            failures.push(format!("{}:\n  {}", rule.why, found.join("\n  ")));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_rule_looks_at_files_that_exist() {
    for rule in RULES {
        for under in rule.under {
            let path = src().join(under);
            assert!(
                !rust_files(&path).is_empty(),
                "{} holds no Rust file: the rule \"{}\" checks nothing",
                path.display(),
                rule.why
            );
        }
    }
}
