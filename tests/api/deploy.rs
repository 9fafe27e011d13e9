//! The files in `deploy/`: the systemd units pass `systemd-analyze verify` (when systemd's
//! tools are on the machine; otherwise the test says why it checked nothing), with the usual
//! hardening, and each starts the command it names.

use std::path::{Path, PathBuf};
use std::process::Command;

const UNITS: [&str; 3] = [
    "newsletter-web.service",
    "newsletter-worker@.service",
    "newsletter-inbound.service",
];

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

#[test]
fn the_units_are_hardened_and_start_the_right_command() {
    for (unit, command) in UNITS.iter().zip(["serve --no-worker", "worker", "inbound"]) {
        let text = std::fs::read_to_string(deploy().join(unit)).unwrap();
        let exec = text
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap_or_else(|| panic!("{unit}: no ExecStart"));
        assert!(exec.ends_with(command), "{unit}: {exec}");
        for line in [
            "User=newsletter",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "Restart=on-failure",
            "StateDirectory=newsletter",
            "EnvironmentFile=/etc/newsletter/newsletter.env",
        ] {
            assert!(text.lines().any(|l| l == line), "{unit}: {line}");
        }
    }
}

#[test]
fn systemd_analyze_accepts_the_units() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze is not on this machine: the units were not verified");
        return;
    }
    // Verified as installed, but with this build's binary where they expect it.
    let dir = std::env::temp_dir().join(format!("units-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut paths = Vec::new();
    for unit in UNITS {
        let text = std::fs::read_to_string(deploy().join(unit))
            .unwrap()
            .replace(
                "/usr/local/bin/newsletter",
                env!("CARGO_BIN_EXE_newsletter"),
            );
        let path = dir.join(unit);
        std::fs::write(&path, text).unwrap();
        paths.push(path);
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&paths)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(said.trim().is_empty(), "systemd-analyze found: {said}");
}
