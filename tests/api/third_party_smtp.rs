//! An end-to-end send through a third-party SMTP server: Debian's python3-aiosmtpd, writing
//! each mail it accepts into a Maildir.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::helpers::spawn_app_on_url;

const PYTHON: &str = "/usr/bin/python3";

struct Aiosmtpd {
    child: Child,
    port: u16,
    maildir: PathBuf,
}

impl Aiosmtpd {
    async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let maildir =
            std::env::temp_dir().join(format!("newsletter-aiosmtpd-{}", uuid::Uuid::new_v4()));
        let mut child = Command::new(PYTHON)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3-aiosmtpd is needed: scripts/test installs it (apt-get install python3-aiosmtpd)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Self {
                    child,
                    port,
                    maildir,
                };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("aiosmtpd did not start: is python3-aiosmtpd installed?");
    }

    fn mails(&self) -> Vec<Vec<u8>> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
            .collect()
    }
}

impl Drop for Aiosmtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.maildir);
    }
}

#[tokio::test]
async fn an_update_goes_through_aiosmtpd_once_per_recipient_with_its_headers() {
    let relay = Aiosmtpd::start().await;
    // https: one-click (List-Unsubscribe-Post) is offered only with https links
    let app = spawn_app_on_url(
        &format!("smtp://127.0.0.1:{}", relay.port),
        &[("server.base_url", "https://news.example.org".into())],
    )
    .await;
    let token = app.api_token().await;
    app.seed_confirmed(25, "example.org").await;
    let id = app.create_update(&token, "Through aiosmtpd").await;

    app.send_now(&token, &id).await;
    app.wait_for_update_status(&id, "sent").await;

    let mails = relay.mails();
    assert_eq!(mails.len(), 25);
    let mut recipients = Vec::new();
    for raw in &mails {
        let parsed = mail_parser::MessageParser::default()
            .parse(raw)
            .expect("MIME");
        assert_eq!(parsed.subject(), Some("Through aiosmtpd"));
        assert!(parsed.header_raw("List-Unsubscribe").is_some());
        assert_eq!(
            parsed.header_raw("List-Unsubscribe-Post").unwrap().trim(),
            "List-Unsubscribe=One-Click"
        );
        recipients.push(parsed.header_raw("X-RcptTo").unwrap().trim().to_owned());
    }
    recipients.sort();
    recipients.dedup();
    assert_eq!(recipients.len(), 25, "one mail per recipient");
}
