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
    for (unit, command) in UNITS
        .iter()
        .zip(["serve --no-worker --no-inbound", "worker", "inbound"])
    {
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

/// The web unit's command, run as the unit runs it (its own configuration file aside), with
/// `inbound.bind` set as the shipped example sets it: the port stays free for
/// `newsletter-inbound.service` (the web unit once took it, and the inbound unit then failed to
/// start; as a user without the capability to bind port 25, the web unit itself failed).
#[tokio::test]
async fn the_web_unit_leaves_the_inbound_port_to_the_inbound_unit() {
    let text = std::fs::read_to_string(deploy().join("newsletter-web.service")).unwrap();
    let exec = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let args: Vec<&str> = exec
        .split_whitespace()
        .skip(1)
        .skip_while(|a| *a == "--config" || a.starts_with("/etc/"))
        .collect();
    assert_eq!(args[0], "serve", "{exec}");
    let db = crate::helpers::TestDatabase::create().await;
    let inbound = crate::admin::free_port();
    let mut child = crate::cli::newsletter()
        .args(&args)
        .env("NEWSLETTER__DATABASE__URL", &db.url)
        .env("NEWSLETTER__SERVER__BIND", "127.0.0.1:0")
        .env("NEWSLETTER__INBOUND__BIND", format!("127.0.0.1:{inbound}"))
        .env(
            "NEWSLETTER__INBOUND__COMPLAINTS_ADDRESS",
            "abuse@example.org",
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _web = crate::cli::listening_port(&mut child);
    let free = std::net::TcpListener::bind(("127.0.0.1", inbound));
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        free.is_ok(),
        "`{exec}` took inbound.bind's port: {:?}",
        free.err()
    );
}

/// `nginx -t` accepts the shipped configuration whole, on the nginx Debian ships (the proxy
/// test runs its https server block; this checks the rest: the redirect from http, the
/// directives of the whole file).
#[test]
fn nginx_accepts_the_whole_shipped_configuration() {
    let dir = crate::proxy::self_signed("nginx-t", "news.example.org");
    let d = dir.display();
    let site = std::fs::read_to_string(deploy().join("nginx-newsletter.conf"))
        .unwrap()
        .replace(
            "/etc/letsencrypt/live/news.example.org/fullchain.pem",
            &format!("{d}/cert.pem"),
        )
        .replace(
            "/etc/letsencrypt/live/news.example.org/privkey.pem",
            &format!("{d}/key.pem"),
        );
    std::fs::write(dir.join("site.conf"), site).unwrap();
    std::fs::write(
        dir.join("nginx.conf"),
        format!(
            "pid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\n\
             http {{ access_log off; include {d}/site.conf; }}\n"
        ),
    )
    .unwrap();
    let out = Command::new("nginx")
        .arg("-t")
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .output()
        .expect("nginx (scripts/test installs Debian's package)");
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "nginx -t: {said}");
    assert!(
        !said.contains("[emerg]") && !said.contains("[warn]"),
        "{said}"
    );
}
