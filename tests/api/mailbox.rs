//! The bounce mailbox: a real dovecot IMAP server (Debian's dovecot-imapd, a private instance
//! per test on its own port and folders), reports delivered into it, and the pollers.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use toml::Value;

use crate::helpers::{spawn_app_without_worker, TestApp};

const USER: &str = "bounces";
const PASSWORD: &str = "mailbox-password";

/// A private dovecot: its config, state and mail under a temporary folder; stopped on drop.
struct Dovecot {
    dir: PathBuf,
    port: u16,
    /// IMAP over TLS, with a self-signed certificate no client trusts.
    tls_port: u16,
    child: Child,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Dovecot {
    async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("dovecot-{}", uuid::Uuid::new_v4().simple()));
        for sub in ["run", "state", "home"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        // Mail is stored as nobody (dovecot refuses root); the folders above must let it in.
        let nobody = 65534;
        std::os::unix::fs::chown(dir.join("home"), Some(nobody), Some(nobody)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let (port, tls_port) = (free_port(), free_port());
        let made = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                "tls.key",
                "-out",
                "tls.pem",
            ])
            .current_dir(&dir)
            .output()
            .expect("openssl runs");
        assert!(made.status.success());
        let d = dir.display();
        let config = format!(
            "protocols = imap\nlisten = 127.0.0.1\nbase_dir = {d}/run\nstate_dir = {d}/state\n\
             instance_name = test-{port}\nlog_path = {d}/log\n\
             ssl = yes\nssl_cert = <{d}/tls.pem\nssl_key = <{d}/tls.key\n\
             disable_plaintext_auth = no\nauth_mechanisms = plain login\n\
             passdb {{\n driver = passwd-file\n args = scheme=PLAIN username_format=%u {d}/passwd\n}}\n\
             userdb {{\n driver = static\n args = uid={nobody} gid={nobody} home={d}/home/%u\n}}\n\
             mail_location = maildir:~/Maildir\n\
             service imap-login {{\n chroot =\n inet_listener imap {{\n  address = 127.0.0.1\n  port = {port}\n }}\n \
             inet_listener imaps {{\n  address = 127.0.0.1\n  port = {tls_port}\n  ssl = yes\n }}\n}}\n\
             service anvil {{\n chroot =\n}}\n"
        );
        std::fs::write(dir.join("dovecot.conf"), config).unwrap();
        std::fs::write(dir.join("passwd"), format!("{USER}:{{PLAIN}}{PASSWORD}\n")).unwrap();
        // Debian puts it in /usr/sbin, which not every PATH holds.
        let binary = ["/usr/sbin/dovecot", "dovecot"]
            .into_iter()
            .find(|b| !b.starts_with('/') || std::path::Path::new(b).exists())
            .unwrap();
        let child = Command::new(binary)
            .arg("-F")
            .arg("-c")
            .arg(dir.join("dovecot.conf"))
            .spawn()
            .expect("dovecot runs (scripts/test installs dovecot-imapd)");
        let dovecot = Self {
            dir,
            port,
            tls_port,
            child,
        };
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return dovecot;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "dovecot did not start: {:?}",
            std::fs::read_to_string(dovecot.dir.join("log"))
        );
    }

    fn url(&self) -> String {
        format!("imap://{USER}:{PASSWORD}@127.0.0.1:{}", self.port)
    }

    fn tls_url(&self) -> String {
        format!("imaps://{USER}:{PASSWORD}@127.0.0.1:{}", self.tls_port)
    }

    /// A raw IMAP session for the test's own checks.
    async fn session(&self) -> Imap {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        let mut imap = Imap {
            io: BufReader::new(stream),
            tag: 0,
        };
        imap.line().await;
        imap.command(&format!("LOGIN {USER} {PASSWORD}")).await;
        imap
    }

    /// Delivers `raw` into `folder` (APPEND, as an MDA would).
    async fn deliver(&self, folder: &str, raw: &[u8]) {
        let mut imap = self.session().await;
        imap.tag += 1;
        let tag = format!("t{}", imap.tag);
        let io = imap.io.get_mut();
        io.write_all(format!("{tag} APPEND {folder} {{{}}}\r\n", raw.len()).as_bytes())
            .await
            .unwrap();
        let go = imap.line().await;
        assert!(go.starts_with('+'), "{go}");
        let io = imap.io.get_mut();
        io.write_all(raw).await.unwrap();
        io.write_all(b"\r\n").await.unwrap();
        loop {
            let line = imap.line().await;
            if line.starts_with(&tag) {
                assert!(line.contains("OK"), "{line}");
                break;
            }
        }
    }

    /// UIDs in `folder` matching an IMAP SEARCH `criteria`.
    async fn search(&self, folder: &str, criteria: &str) -> Vec<u32> {
        let mut imap = self.session().await;
        imap.command(&format!("SELECT {folder}")).await;
        imap.command(&format!("UID SEARCH {criteria}"))
            .await
            .iter()
            .filter_map(|l| l.strip_prefix("* SEARCH"))
            .flat_map(|r| {
                r.split_whitespace()
                    .map(|n| n.parse().unwrap())
                    .collect::<Vec<u32>>()
            })
            .collect()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Imap {
    io: BufReader<TcpStream>,
    tag: u32,
}

impl Imap {
    async fn line(&mut self) -> String {
        let mut line = String::new();
        self.io.read_line(&mut line).await.unwrap();
        line
    }

    async fn command(&mut self, command: &str) -> Vec<String> {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        self.io
            .get_mut()
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .await
            .unwrap();
        let mut lines = Vec::new();
        loop {
            let line = self.line().await;
            if line.starts_with(&tag) {
                assert!(line.contains("OK"), "{command}: {line}");
                return lines;
            }
            lines.push(line);
        }
    }
}

/// A Postfix-style DSN for `email`'s mail of update `update` (its Message-ID), no VERP.
fn dsn(app: &TestApp, update: &str, subscriber: uuid::Uuid, email: &str) -> Vec<u8> {
    let host = app.settings.server.base_url.host();
    let update = uuid::Uuid::parse_str(update).unwrap();
    format!(
        "From: MAILER-DAEMON@mx.example.net\r\nTo: updates@example.org\r\n\
         Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\n<{email}>: 550 5.1.1 user unknown\r\n\r\n\
         --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n\
         Final-Recipient: rfc822; {email}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n\
         --B\r\nContent-Type: text/rfc822-headers\r\n\r\nTo: {email}\r\n\
         Message-ID: <{}@{host}>\r\n\r\n--B--\r\n",
        newsletter::domain::message_id::update_local(
            app.settings.security.secret_key.expose().as_bytes(),
            update,
            subscriber
        ),
    )
    .into_bytes()
}

async fn app_and_update(
    dovecot: &Dovecot,
    extra: &[(&str, Value)],
) -> (TestApp, String, Vec<(uuid::Uuid, String)>) {
    let mut overrides = vec![
        ("bounce.imap_url", dovecot.url().into()),
        ("bounce.imap_poll_seconds", 3600.into()),
    ];
    overrides.extend(extra.iter().cloned());
    let app = spawn_app_without_worker(&overrides).await;
    app.start_worker(&[]);
    let readers = app.seed_confirmed(2, "example.net").await;
    let token = app.api_token().await;
    let update = app.create_and_send(&token, "This week").await;
    app.smtp.wait_for(2, Duration::from_secs(20)).await;
    app.wait_for_queue_to_drain().await;
    (app, update, readers)
}

#[tokio::test]
async fn a_dsn_in_the_mailbox_is_processed_once_when_two_workers_poll() {
    let dovecot = Dovecot::start().await;
    let (app, update, readers) = app_and_update(&dovecot, &[]).await;
    dovecot
        .deliver("INBOX", &dsn(&app, &update, readers[0].0, &readers[0].1))
        .await;
    dovecot
        .deliver(
            "INBOX",
            b"From: someone@example.net\r\nSubject: hello\r\n\r\nJust a letter.\r\n",
        )
        .await;

    // Two worker processes' pollers at once, each with its own IMAP session.
    let (a, b) = tokio::join!(
        newsletter::bounce::mailbox::poll_once(&app.settings, &app.pool),
        newsletter::bounce::mailbox::poll_once(&app.settings, &app.pool),
    );
    assert_eq!(
        a.unwrap() + b.unwrap(),
        2,
        "each message processed by exactly one poller"
    );
    assert_eq!(
        newsletter::bounce::mailbox::poll_once(&app.settings, &app.pool)
            .await
            .unwrap(),
        0,
        "nothing left to do"
    );

    assert_eq!(
        app.subscriber_status(&readers[0].1).await.unwrap(),
        "bounced"
    );
    assert_eq!(
        app.subscriber_status(&readers[1].1).await.unwrap(),
        "confirmed"
    );
    let rows: Vec<(String, String, bool)> =
        sqlx::query_as("SELECT source, kind, matched FROM bounce_reports ORDER BY kind")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        rows,
        vec![
            ("imap".into(), "hard".into(), true),
            ("imap".into(), "unknown".into(), false)
        ]
    );
    assert_eq!(
        dovecot
            .search("INBOX", "KEYWORD NewsletterProcessed SEEN")
            .await
            .len(),
        2,
        "both flagged processed, neither deleted"
    );
}

#[tokio::test]
async fn a_failed_processing_leaves_the_message_in_the_mailbox() {
    let dovecot = Dovecot::start().await;
    let (app, update, readers) = app_and_update(
        &dovecot,
        &[("bounce.imap_processed_folder", "Processed".into())],
    )
    .await;
    dovecot.session().await.command("CREATE Processed").await;
    dovecot
        .deliver("INBOX", &dsn(&app, &update, readers[1].0, &readers[1].1))
        .await;

    // Recording fails: the reports table is away.
    sqlx::query("ALTER TABLE bounce_reports RENAME TO bounce_reports_away")
        .execute(&app.pool)
        .await
        .unwrap();
    let failed = newsletter::bounce::mailbox::poll_once(&app.settings, &app.pool)
        .await
        .unwrap();
    assert_eq!(failed, 0);
    assert_eq!(
        dovecot.search("INBOX", "ALL").await.len(),
        1,
        "the message stays"
    );
    assert_eq!(
        dovecot.search("INBOX", "UNSEEN").await.len(),
        1,
        "not even marked read"
    );
    assert_eq!(
        app.subscriber_status(&readers[1].1).await.unwrap(),
        "confirmed"
    );

    sqlx::query("ALTER TABLE bounce_reports_away RENAME TO bounce_reports")
        .execute(&app.pool)
        .await
        .unwrap();
    let done = newsletter::bounce::mailbox::poll_once(&app.settings, &app.pool)
        .await
        .unwrap();
    assert_eq!(done, 1, "the next poll takes it");
    assert_eq!(
        app.subscriber_status(&readers[1].1).await.unwrap(),
        "bounced"
    );
    assert!(
        dovecot.search("INBOX", "ALL").await.is_empty(),
        "moved out of the inbox"
    );
    assert_eq!(
        dovecot.search("Processed", "ALL").await.len(),
        1,
        "into the processed folder"
    );
}

#[tokio::test]
async fn over_imaps_an_untrusted_certificate_is_refused_and_the_message_stays() {
    let dovecot = Dovecot::start().await;
    let app = spawn_app_without_worker(&[("bounce.imap_url", dovecot.tls_url().into())]).await;
    dovecot
        .deliver(
            "INBOX",
            b"From: MAILER-DAEMON@mx.example.net\r\nSubject: x\r\n\r\n550 5.1.1\r\n",
        )
        .await;

    let refused = newsletter::bounce::mailbox::poll_once(&app.settings, &app.pool)
        .await
        .expect_err("a self-signed certificate is not trusted");
    assert!(format!("{refused:#}").contains("TLS"), "{refused:#}");
    assert_eq!(
        dovecot.search("INBOX", "UNSEEN").await.len(),
        1,
        "the message stays"
    );
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM bounce_reports")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(recorded, 0);
}

#[tokio::test]
async fn two_newsletter_worker_processes_poll_the_mailbox_and_process_each_message_once() {
    let dovecot = Dovecot::start().await;
    let (app, update, readers) = app_and_update(&dovecot, &[]).await;
    dovecot
        .deliver("INBOX", &dsn(&app, &update, readers[0].0, &readers[0].1))
        .await;
    for i in 0..3 {
        let letter = format!("From: someone@example.net\r\nSubject: letter {i}\r\n\r\nHello.\r\n");
        dovecot.deliver("INBOX", letter.as_bytes()).await;
    }

    let workers: Vec<Child> = (0..2)
        .map(|_| {
            crate::cli::newsletter()
                .env("DATABASE_URL", app.database_url())
                .env("NEWSLETTER__SMTP__URL", app.smtp.url())
                .env("NEWSLETTER__BOUNCE__IMAP_URL", dovecot.url())
                .env("NEWSLETTER__BOUNCE__IMAP_POLL_SECONDS", "1")
                .arg("worker")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while dovecot
        .search("INBOX", "KEYWORD NewsletterProcessed")
        .await
        .len()
        < 4
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the workers did not process the mailbox"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for worker in workers {
        let _ = Command::new("kill").arg(worker.id().to_string()).status();
        let mut worker = worker;
        let _ = worker.wait();
    }

    assert_eq!(
        app.subscriber_status(&readers[0].1).await.unwrap(),
        "bounced"
    );
    let (reports, claims): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM bounce_reports),
                (SELECT count(*) FROM mailbox_claims WHERE done_at IS NOT NULL)",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (reports, claims),
        (4, 4),
        "each message recorded and claimed once"
    );
    let bounces: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM consent_events WHERE kind = 'bounce' AND source = 'report'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(bounces, 1);
}

/// Two readers' update sent with VERP envelope senders; the app polls `dovecot`. Returns the
/// app and the relay's mails, by recipient.
async fn app_with_verp(dovecot: &Dovecot) -> (TestApp, Vec<crate::smtp_server::ReceivedMail>) {
    app_with_verp_worker(dovecot, &[]).await
}

/// [`app_with_verp`], its worker (which composes the mails) started with `worker`.
async fn app_with_verp_worker(
    dovecot: &Dovecot,
    worker: &[(&str, Value)],
) -> (TestApp, Vec<crate::smtp_server::ReceivedMail>) {
    let app = spawn_app_without_worker(&[
        ("bounce.imap_url", dovecot.url().into()),
        ("bounce.imap_poll_seconds", 3600.into()),
        ("bounce.return_path_domain", "bounces.example.org".into()),
    ])
    .await;
    app.start_worker(worker);
    app.seed_confirmed(2, "example.net").await;
    let token = app.api_token().await;
    app.create_and_send(&token, "This week").await;
    let mut mails = app.smtp.wait_for(2, Duration::from_secs(20)).await;
    mails.sort_by(|a, b| a.rcpt_to.cmp(&b.rcpt_to));
    app.wait_for_queue_to_drain().await;
    (app, mails)
}

fn message_id_of(mail: &crate::smtp_server::ReceivedMail) -> String {
    mail_parser::MessageParser::default()
        .parse(&mail.data)
        .unwrap()
        .message_id()
        .unwrap()
        .to_owned()
}

/// A DSN delivered to `to` (Delivered-To, as an MDA writes it) about `email`, carrying the
/// headers of mail `mid`.
fn dsn_to(to: &str, email: &str, mid: &str) -> Vec<u8> {
    format!(
        "Delivered-To: {to}\r\nFrom: MAILER-DAEMON@mx.example.net\r\nTo: {to}\r\n\
         Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n\
         Message-ID: <{}@mx.example.net>\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\n<{email}>: 550 5.1.1 user unknown\r\n\r\n\
         --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n\
         Final-Recipient: rfc822; {email}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n\
         --B\r\nContent-Type: text/rfc822-headers\r\n\r\nTo: {email}\r\n\
         Message-ID: <{mid}>\r\n\r\n--B--\r\n",
        uuid::Uuid::new_v4().simple()
    )
    .into_bytes()
}

/// (matched, detail) of every report, oldest first.
async fn kept(app: &TestApp) -> Vec<(bool, String)> {
    sqlx::query_as("SELECT matched, detail FROM bounce_reports ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

async fn nobody_changed(app: &TestApp) {
    for reader in ["reader0@example.net", "reader1@example.net"] {
        assert_eq!(
            app.subscriber_status(reader).await.unwrap(),
            "confirmed",
            "{reader}"
        );
    }
    let (suppressed, logged): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM suppressions),
                (SELECT count(*) FROM consent_events WHERE source = 'report')",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((suppressed, logged), (0, 0));
}

#[tokio::test]
async fn an_arf_in_the_mailbox_naming_only_an_address_changes_nobody_and_is_kept_unmatched() {
    let dovecot = Dovecot::start().await;
    let (app, _) = app_with_verp(&dovecot).await;
    dovecot
        .deliver(
            "INBOX",
            b"From: feedback@arf.mail.example.com\r\nTo: abuse@example.org\r\n\
              Subject: abuse report\r\nMIME-Version: 1.0\r\n\
              Content-Type: multipart/report; report-type=feedback-report; boundary=\"A\"\r\n\r\n\
              --A\r\nContent-Type: text/plain\r\n\r\nAn abuse report.\r\n\r\n\
              --A\r\nContent-Type: message/feedback-report\r\n\r\n\
              Feedback-Type: abuse\r\nVersion: 1\r\nOriginal-Rcpt-To: <reader0@example.net>\r\n\r\n--A--\r\n",
        )
        .await;

    assert_eq!(
        newsletter::bounce::mailbox::poll_once(&app.settings, &app.pool)
            .await
            .unwrap(),
        1
    );

    nobody_changed(&app).await;
    let kept = kept(&app).await;
    assert_eq!(kept.len(), 1);
    assert!(!kept[0].0);
    assert!(kept[0].1.contains("names only an address"), "{}", kept[0].1);
}

#[tokio::test]
async fn dsns_in_the_mailbox_with_a_message_id_we_never_sent_or_another_persons_change_nobody() {
    let dovecot = Dovecot::start().await;
    let (app, mails) = app_with_verp(&dovecot).await;
    let host = app.settings.server.base_url.host();
    let never_sent = format!(
        "update.{}.{}@{host}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    dovecot
        .deliver(
            "INBOX",
            &dsn_to("updates@example.org", "reader0@example.net", &never_sent),
        )
        .await;
    dovecot
        .deliver(
            "INBOX",
            &dsn_to(
                "updates@example.org",
                "reader1@example.net",
                &message_id_of(&mails[0]),
            ),
        )
        .await;
    assert_eq!(
        newsletter::bounce::mailbox::poll_once(&app.settings, &app.pool)
            .await
            .unwrap(),
        2
    );
    nobody_changed(&app).await;
    let kept = kept(&app).await;
    assert_eq!(kept.len(), 2);
    assert!(kept.iter().all(|(matched, _)| !matched), "{kept:?}");

    // The DSN that came back to reader1's mail's VERP address bounces exactly reader1.
    dovecot
        .deliver(
            "INBOX",
            &dsn_to(
                &mails[1].mail_from,
                "reader1@example.net",
                &message_id_of(&mails[1]),
            ),
        )
        .await;
    assert_eq!(
        newsletter::bounce::mailbox::poll_once(&app.settings, &app.pool)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        app.subscriber_status("reader1@example.net").await.unwrap(),
        "bounced"
    );
    assert_eq!(
        app.subscriber_status("reader0@example.net").await.unwrap(),
        "confirmed"
    );
}

/// A mail to a reader's `mailto:` unsubscribe address that reaches the bounce mailbox (the MX
/// delivers it there) unsubscribes exactly that reader, whatever it says, and is no report; a
/// forged token in the same place changes nobody.
#[tokio::test]
async fn a_mail_to_a_mailto_unsubscribe_address_in_the_mailbox_unsubscribes_that_reader() {
    let dovecot = Dovecot::start().await;
    // The worker that composes the mails has the VERP domain too: their List-Unsubscribe
    // carries the mailto address.
    let (app, mails) = app_with_verp_worker(
        &dovecot,
        &[("bounce.return_path_domain", "bounces.example.org".into())],
    )
    .await;
    let header = mail_parser::MessageParser::default()
        .parse(&mails[0].data)
        .unwrap()
        .header_raw("List-Unsubscribe")
        .unwrap()
        .to_owned();
    let start = header.find("<mailto:").expect("a mailto: address") + "<mailto:".len();
    let mailto = header[start..start + header[start..].find('>').unwrap()].to_owned();
    let mut forged = mailto.clone().into_bytes();
    forged[30] = if forged[30] == b'a' { b'b' } else { b'a' };
    let forged = String::from_utf8(forged).unwrap();
    let letter = |to: &str| {
        format!(
            "Delivered-To: {to}\r\nFrom: Reader <someone@example.net>\r\nTo: {to}\r\n\
             Subject: whatever\r\nMessage-ID: <{}@example.net>\r\n\r\nStop, please.\r\n",
            uuid::Uuid::new_v4().simple()
        )
        .into_bytes()
    };
    dovecot.deliver("INBOX", &letter(&forged)).await;
    newsletter::bounce::mailbox::poll_once(&app.settings, &app.pool)
        .await
        .unwrap();
    nobody_changed(&app).await;
    dovecot.deliver("INBOX", &letter(&mailto)).await;
    newsletter::bounce::mailbox::poll_once(&app.settings, &app.pool)
        .await
        .unwrap();
    assert_eq!(
        app.subscriber_status(&mails[0].rcpt_to[0]).await.unwrap(),
        "unsubscribed"
    );
    assert_eq!(
        app.subscriber_status(&mails[1].rcpt_to[0]).await.unwrap(),
        "confirmed"
    );
    assert!(kept(&app).await.is_empty(), "no bounce report was kept");
}
