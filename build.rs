//! Rebuilds when a shipped template or a migration changes: both are compiled into the binary
//! (`src/template_files.rs`, `sqlx::migrate!`). Gives the binary the git commit it was built
//! from (`NEWSLETTER_GIT_COMMIT`, for `newsletter --version`): set from outside when building
//! without a git checkout, else read from git, else "unknown". A build from a checkout with
//! changes to tracked files not yet committed says so: `<commit>-dirty`.
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
        .or_else(|| {
            let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
            // `git status` prints nothing for a clean tree (untracked files do not count).
            let dirty = Command::new("git")
                // --no-optional-locks: never rewrite the index (that would rerun this script).
                .args([
                    "--no-optional-locks",
                    "status",
                    "--porcelain",
                    "--untracked-files=no",
                ])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .is_some_and(|o| !o.stdout.is_empty());
            Some(if dirty {
                format!("{commit}-dirty")
            } else {
                commit
            })
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=NEWSLETTER_GIT_COMMIT={commit}");
    // A commit or a checkout moves HEAD's reflog: build again to name the new commit.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        println!("cargo:rerun-if-changed={dir}/logs/HEAD");
        // Staging, committing or editing a tracked file can change the `-dirty` mark.
        println!("cargo:rerun-if-changed={dir}/index");
        for tracked in [
            "src",
            "Cargo.toml",
            "Cargo.lock",
            "build.rs",
            "static",
            "config",
        ] {
            println!("cargo:rerun-if-changed={tracked}");
        }
    }
}
