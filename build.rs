//! Rebuilds when a shipped template or a migration changes: both are compiled into the binary
//! (`src/template_files.rs`, `sqlx::migrate!`).
fn main() {
    println!("cargo:rerun-if-changed=templates");
    println!("cargo:rerun-if-changed=migrations");
}
