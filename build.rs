//! Rebuilds when a shipped template or a migration changes: both are compiled into the binary
//! (`src/template_files.rs`, `sqlx::migrate!`). Gives the binary the git commit it was built
//! from (`NEWSLETTER_GIT_COMMIT`, for `newsletter --version`): set from outside when building
//! without a git checkout, else read from git, else "unknown".
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn main() {
    println!("cargo:rerun-if-changed=templates");
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-env-changed=NEWSLETTER_GIT_COMMIT");
    let commit = std::env::var("NEWSLETTER_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=NEWSLETTER_GIT_COMMIT={commit}");
    // A commit or a checkout moves HEAD's reflog: build again to name the new commit.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        println!("cargo:rerun-if-changed={dir}/logs/HEAD");
    }
}
