//! Rebuilds when a shipped template changes: they are compiled into the binary
//! (`src/template_files.rs`).
fn main() {
    println!("cargo:rerun-if-changed=templates");
}
