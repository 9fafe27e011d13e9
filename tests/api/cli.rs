//! The binary itself: help, configuration errors that name the key, and graceful shutdown.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::{TestDatabase, SECRET_KEY};

pub fn newsletter() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_newsletter"));
    // The child's configuration is what each test gives it: none of the caller's settings (a
    // `NEWSLETTER__LOG__LEVEL=warn` left in the shell hid the log lines these tests read).
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("NEWSLETTER__") {
            cmd.env_remove(name);
        }
    }
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("DATABASE_URL")
        .env("NEWSLETTER__SECURITY__SECRET_KEY", SECRET_KEY);
    cmd
}

/// The port a `serve` child with piped stdout says it listens on (within 30 s). Its stdout is
/// read on a thread for the whole run: closing the pipe early would kill the child with a write
/// error.
pub fn listening_port(child: &mut std::process::Child) -> u16 {
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if let Some(addr) = line.trim().strip_prefix("listening on ") {
                let _ = tx.send(addr.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()));
            }
        }
    });
    let port = rx.recv_timeout(Duration::from_secs(30)).ok().flatten();
    port.expect("serve prints where it listens")
}

#[test]
fn help_lists_the_commands() {
    let out = newsletter().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for command in ["serve", "worker", "migrate"] {
        assert!(help.contains(command), "{command} missing from --help");
    }
    let serve = newsletter().args(["serve", "--help"]).output().unwrap();
    assert!(String::from_utf8(serve.stdout)
        .unwrap()
        .contains("--no-worker"));
}

#[test]
fn a_bad_configuration_value_stops_the_start_and_names_the_key() {
    for (var, value, key) in [
        (
            "NEWSLETTER__SIGNUP__PER_IP_PER_MINUTE",
            "lots",
            "signup.per_ip_per_minute",
        ),
        ("NEWSLETTER__SERVER__BIND", "not-an-address", "server.bind"),
        (
            "NEWSLETTER__SECURITY__SECRET_KEY",
            "short",
            "security.secret_key",
        ),
        ("NEWSLETTER__SERVER__NO_SUCH_KEY", "1", "server.no_such_key"),
    ] {
        let out = newsletter()
            .env(var, value)
            .arg("migrate")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{var} accepted");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains(key), "{var}: {stderr}");
    }
}

#[test]
fn a_missing_config_file_is_named() {
    let out = newsletter()
        .args(["--config", "/nonexistent/newsletter.toml", "migrate"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("/nonexistent/newsletter.toml"));
}

/// What `serve --no-worker` on the database at `db_url` prints to a pipe, line by line, up to
/// the first line containing `until` (or for 30 s), before it is stopped. `env`: variables set
/// (`Some`) or removed (`None`).
pub fn serve_output(db_url: &str, env: &[(&str, Option<&str>)], until: &str) -> Vec<String> {
    let mut command = newsletter();
    command
        .env("DATABASE_URL", db_url)
        .env("NEWSLETTER__SERVER__BIND", "127.0.0.1:0")
        .env("NEWSLETTER__SMTP__URL", "smtp://127.0.0.1:9");
    for (name, value) in env {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    let mut child = command
        .args(["serve", "--no-worker"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
        let last = line.contains(until);
        lines.push(line);
        if last {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    lines
}

/// `newsletter serve` with `args` and `env` on the database at `db_url`, and the port it
/// listens on.
pub fn serve(db_url: &str, args: &[&str], env: &[(&str, &str)]) -> (std::process::Child, u16) {
    let mut child = newsletter()
        .env("DATABASE_URL", db_url)
        .env("NEWSLETTER__SERVER__BIND", "127.0.0.1:0")
        .env("NEWSLETTER__SMTP__URL", "smtp://127.0.0.1:9")
        .envs(env.iter().copied())
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let port = listening_port(&mut child);
    (child, port)
}

#[tokio::test]
async fn serve_migrates_answers_and_stops_cleanly_on_sigterm() {
    let db = TestDatabase::create().await;
    let (mut child, port) = serve(&db.url, &[], &[]);

    let health = reqwest::get(format!("http://127.0.0.1:{port}/health"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::task::spawn_blocking(move || {
        for _ in 0..100 {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        None
    })
    .await
    .unwrap();
    assert!(status
        .expect("serve exits within 10 s of SIGTERM")
        .success());
}

#[tokio::test]
async fn the_cli_creates_an_api_token_and_drives_an_update() {
    let db = TestDatabase::create().await;
    let run = |args: &[&str]| {
        let out = newsletter()
            .env("DATABASE_URL", &db.url)
            .env("NEWSLETTER__MAIL__POSTAL_ADDRESS", "1 Main St")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (ok, token, _) = run(&["api-token", "create", "--name", "newsroom"]);
    assert!(ok);
    let token = token.trim();
    assert_eq!(token.len(), 43, "one token on stdout: {token:?}");
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT token_hash FROM api_tokens WHERE name = 'newsroom'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_ne!(stored, token.as_bytes(), "only a hash is stored");

    let file = std::env::temp_dir().join(format!("update-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(
        &file,
        r#"{"subject": "From the CLI", "lists": ["us-icc-updates"]}"#,
    )
    .unwrap();
    let (ok, created, err) = run(&["update", "create", file.to_str().unwrap()]);
    assert!(ok, "{err}");
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    assert_eq!(created["status"], "draft");
    let id = created["id"].as_str().unwrap();

    let (ok, sent, err) = run(&["update", "send", id]);
    assert!(ok, "{err}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&sent).unwrap()["status"],
        "scheduled"
    );
    let (ok, _, err) = run(&["update", "resume", id]);
    assert!(
        !ok && err.contains("scheduled"),
        "resume of a scheduled update is refused: {err}"
    );

    for (body, field) in [
        (r#"{"subject": "", "lists": ["us-icc-updates"]}"#, "subject"),
        (r#"{"subject": "x", "lists": ["nope"]}"#, "lists"),
        (
            r#"{"subject": "x", "lists": ["us-icc-updates"], "template": "confirmation"}"#,
            "template",
        ),
    ] {
        std::fs::write(&file, body).unwrap();
        let (ok, _, err) = run(&["update", "create", file.to_str().unwrap()]);
        assert!(!ok && err.contains(&format!("{field}: ")), "{err}");
    }
    std::fs::write(&file, "{ not json").unwrap();
    let (ok, _, err) = run(&["update", "create", file.to_str().unwrap()]);
    assert!(!ok && err.contains("line 1"), "{err}");
    let _ = std::fs::remove_file(&file);
}

#[tokio::test]
async fn import_checks_every_row_and_refuses_erased_and_unsubscribed_addresses() {
    let db = TestDatabase::create().await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let erased = uuid::Uuid::new_v4();
    sqlx::query(
        "INSERT INTO subscribers (id, email, email_normalized, status) VALUES
           ($1, 'erased@example.org', 'erased@example.org', 'confirmed'),
           (gen_random_uuid(), 'left@example.org', 'left@example.org', 'unsubscribed')",
    )
    .bind(erased)
    .execute(&pool)
    .await
    .unwrap();
    assert!(newsletter::store::preferences::erase(&pool, erased)
        .await
        .unwrap());
    let file = std::env::temp_dir().join(format!("import-{}.csv", uuid::Uuid::new_v4()));
    let run = |csv: &str| {
        std::fs::write(&file, csv).unwrap();
        let out = newsletter()
            .env("DATABASE_URL", &db.url)
            .args(["import", file.to_str().unwrap()])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (ok, _, err) = run(
        "email,name\nok@example.org,Ok\nnot-an-address,Bad\nfine@example.org,\"Line\nBreak\"\n",
    );
    assert!(!ok);
    assert!(err.contains("line 3, column `email`"), "{err}");
    assert!(err.contains("column `name`"), "{err}");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM subscribers")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 1, "nothing imported when a row is bad");

    let (ok, out, err) = run("Email,Name,State\nnew@example.org,New Person,ny\nERASED@example.org,,\nleft@example.org,,\n");
    assert!(ok, "{err}");
    assert!(
        out.contains("imported 1") && out.contains("refused 0, suppressed 2"),
        "{out}"
    );
    assert!(
        out.contains("line 3: suppressed") && out.contains("line 4: suppressed"),
        "{out}"
    );
    let (status, state): (String, Option<String>) =
        sqlx::query_as("SELECT status, us_state FROM subscribers WHERE email = 'new@example.org'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (status.as_str(), state.as_deref()),
        ("confirmed", Some("NY"))
    );
    let erased_back: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM subscribers WHERE email_normalized = 'erased@example.org'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(erased_back, 0);

    // A pending sign-up in the file becomes confirmed on the default list (added); someone
    // already imported is already there; a second line for one address is a duplicate.
    sqlx::query(
        "WITH s AS (INSERT INTO subscribers (id, email, email_normalized, status)
                    VALUES (gen_random_uuid(), 'waiting@example.org', 'waiting@example.org', 'pending')
                    RETURNING id)
         INSERT INTO subscriptions (subscriber_id, list_id)
         SELECT s.id, l.id FROM s, lists l WHERE l.slug = 'us-icc-updates'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (ok, out, err) = run(
        "email\nnew@example.org\nwaiting@example.org\nsecond@example.org\nSecond@example.org\n",
    );
    assert!(ok, "{err}");
    assert!(
        out.contains(
            "imported 1, added to lists 1, already there 1, duplicates 1, refused 0, suppressed 0"
        ),
        "{out}"
    );
    let confirmed: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT s.email, s.status, sub.status FROM subscribers s
         JOIN subscriptions sub ON sub.subscriber_id = s.id ORDER BY s.email",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        confirmed,
        [
            (
                "new@example.org".into(),
                "confirmed".into(),
                "confirmed".into()
            ),
            // the alliance of the state (NY) the first file gave
            (
                "new@example.org".into(),
                "confirmed".into(),
                "confirmed".into()
            ),
            (
                "second@example.org".into(),
                "confirmed".into(),
                "confirmed".into()
            ),
            (
                "waiting@example.org".into(),
                "confirmed".into(),
                "confirmed".into()
            ),
        ]
    );
    let imports_logged: i64 =
        sqlx::query_scalar("SELECT count(*) FROM consent_events WHERE source = 'import'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        imports_logged, 3,
        "one consent event per person an import changed"
    );
    let _ = std::fs::remove_file(&file);
}

/// Runs `newsletter import` on `csv` against `db`: (success, stdout, stderr).
fn import(db: &TestDatabase, csv: &[u8]) -> (bool, String, String) {
    import_into(&db.url, csv)
}

/// Runs `newsletter import` on `csv` against the database at `db_url`.
pub fn import_into(db_url: &str, csv: &[u8]) -> (bool, String, String) {
    let file = std::env::temp_dir().join(format!("import-{}.csv", uuid::Uuid::new_v4()));
    std::fs::write(&file, csv).unwrap();
    let out = newsletter()
        .env("DATABASE_URL", db_url)
        .args(["import", file.to_str().unwrap()])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn import_errors_name_the_line_in_the_file_not_the_record_number() {
    let db = TestDatabase::create().await;
    // line 1 header, 2 blank, 3 a, 4 blank, 5-6 a quoted name over two lines, 7 the bad row;
    // lines end as on Unix, on Windows, and as on the old Mac (CR alone: issue 27)
    for newline in ["\n", "\r\n", "\r"] {
        let csv = [
            "email,name",
            "",
            "a@example.org,A",
            "",
            "b@example.org,\"B",
            "Two\"",
            "bad@,C",
            "",
        ]
        .join(newline);
        let (ok, _, err) = import(&db, csv.as_bytes());
        assert!(!ok);
        assert!(
            err.contains("line 7, column `email`: \"bad@\""),
            "{newline:?}: {err}"
        );
        assert!(err.contains("line 5, column `name`"), "{newline:?}: {err}");
    }
}

#[tokio::test]
async fn import_refuses_every_spelling_of_an_unsubscribed_or_erased_mailbox() {
    let db = TestDatabase::create().await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let left = newsletter::domain::EmailAddress::parse("ida@bücher.example").unwrap();
    let erased = newsletter::domain::EmailAddress::parse("Erik@Bücher.example").unwrap();
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
        "INSERT INTO subscribers (id, email, email_normalized, status) VALUES
           (gen_random_uuid(), $1, $2, 'unsubscribed'), (gen_random_uuid(), $3, $4, 'confirmed')
         RETURNING id",
    )
    .bind(left.as_str())
    .bind(left.canonical())
    .bind(erased.as_str())
    .bind(erased.canonical())
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(newsletter::store::preferences::erase(&pool, ids[1])
        .await
        .unwrap());
    // What releases before the canonical form left: hashes of the spelling as typed.
    sqlx::query(
        "INSERT INTO suppressions (email_hash, reason) VALUES
           (sha256(convert_to('old@münchen.example', 'UTF8')), 'erased'),
           (sha256(convert_to('\"quoted\"@example.org', 'UTF8')), 'erased')",
    )
    .execute(&pool)
    .await
    .unwrap();

    let (ok, out, err) = import(
        &db,
        "email\nida@xn--bcher-kva.example\nerik@xn--bcher-kva.example\nOLD@xn--mnchen-3ya.example\n\
         Quoted@example.org\nnew@bücher.example\nNEW@XN--BCHER-KVA.example\n"
            .as_bytes(),
    );
    assert!(ok, "{err}");
    assert!(
        out.contains(
            "imported 1, added to lists 0, already there 0, duplicates 1, refused 0, suppressed 4"
        ),
        "{out}"
    );
    for line in 2..=5 {
        assert!(out.contains(&format!("line {line}: suppressed")), "{out}");
    }
    let people: Vec<String> = sqlx::query_scalar(
        "SELECT email_normalized FROM subscribers WHERE status = 'confirmed' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(people, ["new@xn--bcher-kva.example"]);
}

#[tokio::test]
async fn import_refuses_addresses_no_mail_can_be_built_for() {
    let db = TestDatabase::create().await;
    let (ok, _, err) = import(
        &db,
        b"email\nok@example.org\n\"a,b\"@example.org\n\"john..doe\"@example.org\n",
    );
    assert!(!ok);
    assert!(
        err.contains("line 3, column `email`") && err.contains("line 4, column `email`"),
        "{err}"
    );
}

#[tokio::test]
async fn bench_runs_small_scenarios_and_writes_its_table_as_json() {
    let json = std::env::temp_dir().join(format!("bench-{}.json", uuid::Uuid::new_v4()));
    let out = newsletter()
        .env("DATABASE_URL", crate::helpers::server_url())
        .env("NEWSLETTER__LOG__LEVEL", "warn")
        .args([
            "bench",
            "--subscribers",
            "300",
            "--seconds",
            "1",
            "--import-rows",
            "300",
            "--scale",
            "200,300",
            "--load-rate",
            "20",
            "--load-seconds",
            "2",
            "--workers",
            "1,2",
            // The search scenario's default is 1,000,000 subscribers: most of this test's time.
            "--search-subscribers",
            "2000",
            "--json",
        ])
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("scenario") && stdout.contains("ratio"),
        "{stdout}"
    );
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    let find = |name: &str| {
        rows.iter()
            .find(|r| r["scenario"] == name)
            .unwrap_or_else(|| panic!("no {name} row"))
    };
    for name in ["send", "signup", "import"] {
        let r = find(name);
        assert!(
            r["figure"].as_f64().unwrap() > 0.0 && r["ceiling"].as_f64().unwrap() > 0.0,
            "{r}"
        );
    }
    assert!(find("unsubscribe (one-click)")["figure"].as_f64().unwrap() > 0.0);
    for name in ["workers 1", "workers 2"] {
        assert!(find(name)["figure"].as_f64().unwrap() > 0.0, "{name}");
    }
    assert!(find("workers 2")["note"]
        .as_str()
        .unwrap()
        .contains("the rate of one"));
    assert!(find("peak RSS during send")["figure"].as_f64().unwrap() > 1.0);
    for name in [
        "scale 200",
        "scale 300",
        "start: first mail",
        "start: rows written",
    ] {
        assert!(find(name)["figure"].as_f64().unwrap() > 0.0, "{name}");
    }
    for name in ["load: sign-up", "load: one-click"] {
        let note = find(name)["note"].as_str().unwrap().to_owned();
        assert!(
            note.starts_with("40 requests at 20/s for 2 s: 0 5xx, 0 4xx"),
            "{name}: {note}"
        );
    }
    let search = find("subscriber search");
    assert!(
        search["figure"].as_f64().unwrap() > 0.0
            && search["note"]
                .as_str()
                .unwrap()
                .contains("slowest of every search"),
        "{search}"
    );
    let pool = find("load: pool connections busy");
    assert!(pool["figure"].as_f64().unwrap() <= pool["ceiling"].as_f64().unwrap());
    // Its own database, by name: other benches may be running against this server.
    let database = stdout
        .lines()
        .find_map(|l| l.strip_prefix("bench database: "))
        .and_then(|l| l.split_whitespace().next())
        .expect("the bench names its database")
        .to_owned();
    let leftover: i64 = {
        let pool = sqlx::PgPool::connect(&crate::helpers::server_url())
            .await
            .unwrap();
        sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
            .bind(&database)
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    assert_eq!(leftover, 0, "the bench drops its database {database}");
}

#[tokio::test]
async fn inbound_alone_needs_its_address_then_takes_reports_and_refuses_relaying() {
    let out = newsletter().arg("inbound").output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("inbound.bind"),
        "the error names the key"
    );

    let db = TestDatabase::create().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = newsletter()
        .env("DATABASE_URL", &db.url)
        .env("NEWSLETTER__INBOUND__BIND", format!("127.0.0.1:{port}"))
        .env(
            "NEWSLETTER__BOUNCE__RETURN_PATH_DOMAIN",
            "bounces.example.org",
        )
        .arg("inbound")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stream = None;
    for _ in 0..200 {
        if let Ok(s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            stream = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stream = stream.expect("`newsletter inbound` listens on inbound.bind");
    let (read, mut write) = stream.into_split();
    let mut lines = tokio::io::BufReader::new(read);
    use tokio::io::AsyncWriteExt;
    assert!(smtp_reply(&mut lines).await.starts_with("220"));
    for (command, expected) in [
        ("EHLO mx.example.net", "250"),
        ("MAIL FROM:<>", "250"),
        ("RCPT TO:<someone@elsewhere.example>", "550"),
        ("RCPT TO:<bounces+notatoken@bounces.example.org>", "550"),
        ("QUIT", "221"),
    ] {
        write
            .write_all(format!("{command}\r\n").as_bytes())
            .await
            .unwrap();
        let answer = smtp_reply(&mut lines).await;
        assert!(answer.starts_with(expected), "{command}: {answer}");
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "stops cleanly on SIGTERM");
}

/// The last line of an SMTP reply (multi-line replies have a `-` after the code).
async fn smtp_reply(lines: &mut tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>) -> String {
    use tokio::io::AsyncBufReadExt;
    let mut line = String::new();
    loop {
        line.clear();
        lines.read_line(&mut line).await.unwrap();
        if line.as_bytes().get(3) != Some(&b'-') {
            return line;
        }
    }
}

#[tokio::test]
async fn the_cli_follows_feeds_and_sets_up_digests_through_the_same_rules() {
    let db = TestDatabase::create().await;
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut child = newsletter()
            .env("DATABASE_URL", &db.url)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(text) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (ok, out, err) = run(
        &[
            "feed",
            "add",
            "https://court.example/feed.xml",
            "--topic",
            "court",
        ],
        None,
    );
    assert!(ok, "{err}");
    let feed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(feed["approve"], false);
    let (ok, _, err) = run(&["feed", "add", "gopher://court.example/"], None);
    assert!(!ok);
    assert!(err.contains("url: "), "{err}");
    let (ok, out, _) = run(&["feed", "list"], None);
    assert!(ok && out.contains("https://court.example/feed.xml"));
    let (ok, _, _) = run(&["feed", "remove", feed["id"].as_str().unwrap()], None);
    assert!(ok);

    let schedule = r#"{"name": "Monthly", "lists": ["us-icc-updates"], "mode": "send",
        "recurrence": {"frequency": "monthly", "day": 31, "time": "18:00"}, "time_zone": "Asia/Tokyo"}"#;
    let (ok, out, err) = run(&["digest", "create", "-"], Some(schedule));
    assert!(ok, "{err}");
    let digest: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(digest["describes"], "monthly on day 31 at 18:00 Asia/Tokyo");
    let (ok, _, err) = run(
        &["digest", "create", "-"],
        Some(
            r#"{"name": "x", "lists": ["nope"], "recurrence": {"frequency": "weekly", "weekdays": ["monday"], "time": "09:00"}}"#,
        ),
    );
    assert!(!ok);
    assert!(err.contains("lists: Unknown lists: nope."), "{err}");
    let (ok, out, _) = run(&["digest", "list"], None);
    assert!(ok && out.contains("Asia/Tokyo"));
}

#[tokio::test]
async fn import_reads_a_bom_semicolons_crlf_and_a_lists_column_in_any_order() {
    let db = TestDatabase::create().await;
    let csv = "\u{FEFF}lists;Email;name\r\nnew-york-alliance;ana@example.org;Ana\r\n;bo@example.org;Bo\r\n";
    let (ok, out, err) = import(&db, csv.as_bytes());
    assert!(ok, "{err}");
    assert!(out.contains("imported 2"), "{out}");
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    // A row that names its lists joins those; one that names none, the default lists.
    let held: Vec<(String, String)> = sqlx::query_as(
        "SELECT s.email, l.slug FROM subscriptions x JOIN subscribers s ON s.id = x.subscriber_id
         JOIN lists l ON l.id = x.list_id WHERE x.status = 'confirmed' ORDER BY 1, 2",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let pair = |e: &str, l: &str| (e.to_owned(), l.to_owned());
    assert_eq!(
        held,
        [
            pair("ana@example.org", "new-york-alliance"),
            pair("bo@example.org", "us-icc-updates"),
        ]
    );
    let logged: Vec<String> = sqlx::query_scalar(
        "SELECT c.lists FROM consent_events c JOIN subscribers s ON s.id = c.subscriber_id
         WHERE s.email = 'ana@example.org'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(logged, ["new-york-alliance"]);

    let (ok, _, err) = import(&db, b"email,lists\ncy@example.org,no-such-list\n");
    assert!(!ok);
    assert!(
        err.contains("line 2, column `lists`: \"no-such-list\" is no open list"),
        "{err}"
    );
}

#[tokio::test]
async fn import_with_opt_in_queues_a_confirmation_for_each_new_person_and_reports_bad_rows() {
    let db = TestDatabase::create().await;
    let file = std::env::temp_dir().join(format!("import-{}.csv", uuid::Uuid::new_v4()));
    std::fs::write(
        &file,
        "email,name\nnew@example.org,New\nnot-an-address,Bad\n",
    )
    .unwrap();
    let out = newsletter()
        .env("DATABASE_URL", &db.url)
        .args([
            "import",
            "--opt-in",
            "--consent-note",
            "Event sheet",
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("rows 2, asked to confirm 1, asked to join more lists 0, already there 0, duplicates 0, refused 1, suppressed 0"),
        "{stdout}"
    );
    assert!(stdout.contains("line 3, column `email`"), "{stdout}");
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let (status, queued): (String, i64) = sqlx::query_as(
        "SELECT s.status, (SELECT count(*) FROM deliveries d
                            WHERE d.subscriber_id = s.id AND d.kind = 'confirmation')
         FROM subscribers s WHERE s.email = 'new@example.org'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((status.as_str(), queued), ("pending", 1));
}

#[tokio::test]
async fn import_progress_off_a_terminal_is_plain_lines_a_script_can_read() {
    let db = TestDatabase::create().await;
    let mut csv = String::from("email\n");
    for i in 0..25_000 {
        csv.push_str(&format!("person{i}@import.example\n"));
    }
    csv.push_str("person7@import.example\n");

    let (ok, out, err) = import(&db, csv.as_bytes());

    assert!(ok, "{err}");
    assert!(
        !err.contains(['\r', '\u{1b}']),
        "no bar drawn into a pipe: {err:?}"
    );
    let steps: Vec<(u64, u64)> = err
        .lines()
        .map(|line| {
            let (done, total) = line
                .strip_prefix("progress ")
                .and_then(|l| l.strip_suffix(" rows"))
                .and_then(|l| l.split_once('/'))
                .unwrap_or_else(|| panic!("not a progress line: {line:?}"));
            (done.parse().unwrap(), total.parse().unwrap())
        })
        .collect();
    assert_eq!(
        steps,
        [(10_000, 25_000), (20_000, 25_000), (25_000, 25_000)],
        "{err}"
    );
    // stdout may carry log lines too (a slow statement on a busy machine): find the summary.
    assert_eq!(
        out.lines().find(|l| l.starts_with("imported ")),
        Some("imported 25000, added to lists 0, already there 0, duplicates 1, refused 0, suppressed 0"),
        "{out}"
    );
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let (actor, rows): (String, serde_json::Value) =
        sqlx::query_as("SELECT actor, detail->'rows' FROM audit_log WHERE action = 'import'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((actor.as_str(), rows), ("command line", 25_001.into()));
    pool.close().await;
}

/// A reader that leaves early (`newsletter staff list | head -1`) ends a listing quietly, with
/// success. (Before, `println!` panicked on the closed pipe: status 101 and a backtrace.)
#[tokio::test]
async fn a_listing_whose_reader_left_ends_quietly() {
    let db = TestDatabase::create().await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    for n in 0..50 {
        newsletter::ops::staff::add(
            &pool,
            &newsletter::ops::Actor::CommandLine,
            &format!("member{n}@example.org"),
            "editor",
            newsletter::domain::NewPassword::parse("a long enough password").unwrap(),
        )
        .await
        .unwrap();
    }
    for command in [
        &["staff", "list"][..],
        &["api-token", "list"],
        &["feed", "list"],
    ] {
        let mut child = newsletter()
            .env("DATABASE_URL", &db.url)
            .args(command)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader is gone before the command writes its first line.
        drop(child.stdout.take());
        let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !stderr.contains("panicked"),
            "{command:?}: {:?} {stderr}",
            out.status
        );
    }
}

/// Log lines read from a pipe (as journald, a file or a collector reads them): no colour
/// codes, and the data migration's summary once (`migrate` printed it, and logged it too).
#[tokio::test]
async fn logs_read_from_a_pipe_carry_no_colour_codes_and_each_line_once() {
    // A database no migration has touched, so the data migration runs and reports.
    let name = format!("newsletter_logs_{}", uuid::Uuid::new_v4().simple());
    let server = crate::helpers::server_url();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&server)
        .await
        .unwrap();
    sqlx::Executor::execute(&mut conn, format!(r#"CREATE DATABASE "{name}""#).as_str())
        .await
        .unwrap();
    let url = newsletter::store::url_with_database(&server, &name);
    let migrated = newsletter()
        .env("DATABASE_URL", &url)
        .env_remove("NO_COLOR")
        .arg("migrate")
        .output()
        .unwrap();
    // `serve`'s own log lines, up to the one saying it listens.
    let logged = serve_output(&url, &[("NO_COLOR", None)], "web server listening");
    sqlx::Executor::execute(
        &mut conn,
        format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str(),
    )
    .await
    .unwrap();

    assert!(migrated.status.success());
    let printed = String::from_utf8(migrated.stdout).unwrap();
    assert_eq!(
        printed.matches("addresses: ").count(),
        1,
        "the data migration's summary once: {printed}"
    );
    assert!(
        logged.iter().any(|l| l.contains("web server listening")),
        "{logged:?}"
    );
    let all = format!("{printed}{}", logged.join("\n"));
    assert!(!all.contains('\u{1b}'), "colour codes in a pipe: {all:?}");
}

#[test]
fn version_names_the_release_and_the_commit_it_was_built_from() {
    let out = newsletter().arg("--version").output().unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    let expected_commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8(o.stdout).unwrap().trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    // A build from a tree with changes not committed says `-dirty`; a clean tree never does.
    let clean = Command::new("git")
        .args([
            "--no-optional-locks",
            "status",
            "--porcelain",
            "--untracked-files=no",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .is_none_or(|o| o.stdout.is_empty());
    let exact = format!(
        "newsletter {} (commit {expected_commit})",
        env!("CARGO_PKG_VERSION")
    );
    let dirty = format!(
        "newsletter {} (commit {expected_commit}-dirty)",
        env!("CARGO_PKG_VERSION")
    );
    if clean {
        assert_eq!(printed.trim(), exact);
    } else {
        assert!(
            printed.trim() == dirty || printed.trim() == exact,
            "{printed}"
        );
    }
}

/// With `log.format = "json"`, everything `serve` writes to standard output is one JSON object
/// a line (the start banner included: it once came as plain text between the JSON lines),
/// each written once.
#[tokio::test]
async fn json_logs_are_json_on_every_line_the_banner_included() {
    let db = TestDatabase::create().await;
    let mut child = newsletter()
        .args(["serve", "--no-worker"])
        .env("NEWSLETTER__DATABASE__URL", &db.url)
        .env("NEWSLETTER__SERVER__BIND", "127.0.0.1:0")
        .env("NEWSLETTER__LOG__FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = lines_of(&mut child);
    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !lines
        .iter()
        .any(|l: &String| l.contains("staff sign in at") || l.contains("setup code"))
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        lines.iter().any(|l| l.contains("listening on")),
        "the banner: {lines:?}"
    );
    for line in &lines {
        let parsed: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(parsed.is_object(), "{line}");
    }
    let mut seen = std::collections::BTreeSet::new();
    for line in &lines {
        let parsed: serde_json::Value = serde_json::from_str(line).unwrap();
        let message = parsed["fields"]["message"].to_string();
        assert!(seen.insert(message.clone()), "printed twice: {message}");
    }
}

/// Lines of a child's standard output and error, as they come.
fn lines_of(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child
        .stdout
        .take()
        .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
    let err = child
        .stderr
        .take()
        .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
    for stream in [out, err].into_iter().flatten() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    rx
}

/// Waits (30 s at most) for a line containing `text`; the lines seen so far otherwise.
fn wait_for_line(
    rx: &std::sync::mpsc::Receiver<String>,
    text: &str,
) -> Result<String, Vec<String>> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(text) => return Ok(line),
            Ok(line) => seen.push(line),
            Err(_) => return Err(seen),
        }
    }
}

/// A worker started on a database not yet migrated (as `systemctl enable --now` starts it
/// beside `serve`) waits for the migrations instead of running against a half-made schema, then
/// works; on a database a newer version migrated it refuses to start.
#[tokio::test]
async fn a_worker_waits_for_the_migrations_and_refuses_a_database_a_newer_version_migrated() {
    let db = TestDatabase::empty().await;
    let mut worker = newsletter()
        .arg("worker")
        .env("NEWSLETTER__DATABASE__URL", &db.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut worker);
    let waiting = wait_for_line(&lines, "waiting for `newsletter migrate`");
    assert!(waiting.is_ok(), "{waiting:?}");
    assert!(worker.try_wait().unwrap().is_none(), "it waits, running");
    let migrated = newsletter()
        .arg("migrate")
        .env("NEWSLETTER__DATABASE__URL", &db.url)
        .output()
        .unwrap();
    assert!(migrated.status.success());
    let started = wait_for_line(&lines, "worker started");
    let _ = worker.kill();
    let _ = worker.wait();
    assert!(started.is_ok(), "{started:?}");

    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (29990101000000, 'from the future', true, '\\x00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let refused = newsletter()
        .arg("worker")
        .env("NEWSLETTER__DATABASE__URL", &db.url)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&refused.stderr).into_owned()
        + &String::from_utf8_lossy(&refused.stdout);
    assert!(!refused.status.success(), "{said}");
    assert!(said.contains("migrated by a newer version"), "{said}");
    assert!(said.contains("29990101000000"), "{said}");
}

/// A restore or a move that starts the service with another `security.secret_key` breaks every
/// link already mailed: the worker says so at start (and keeps working), each start, until the
/// old key is back or `newsletter secret-key accept` records the new one.
#[tokio::test]
async fn another_secret_key_than_the_databases_is_named_at_start_until_accepted() {
    let db = TestDatabase::create().await;
    const OTHER: &str = "another-key-another-key-another-key-0123";
    let start_worker = |key: &str| {
        let mut worker = newsletter()
            .arg("worker")
            .env("NEWSLETTER__DATABASE__URL", &db.url)
            .env("NEWSLETTER__SECURITY__SECRET_KEY", key)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = lines_of(&mut worker);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        while !seen.iter().any(|l: &String| l.contains("worker started")) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => seen.push(line),
                Err(_) => panic!("the worker did not start: {seen:?}"),
            }
        }
        let _ = worker.kill();
        let _ = worker.wait();
        // Both streams to their end: an error line may come on the other stream, and later.
        seen.extend(lines.iter());
        seen.join("\n")
    };
    let warning = "is not the key this database was used with";
    // The first start records the key; the same key again says nothing.
    assert!(!start_worker(SECRET_KEY).contains(warning));
    assert!(!start_worker(SECRET_KEY).contains(warning));
    let told = start_worker(OTHER);
    assert!(told.contains(warning), "{told}");
    assert!(told.contains("newsletter secret-key accept"), "{told}");
    assert!(
        !told.contains(OTHER),
        "the key itself is never printed: {told}"
    );
    // Not accepted: told again at the next start.
    assert!(start_worker(OTHER).contains(warning));
    let accept = |key: &str| {
        let out = newsletter()
            .args(["secret-key", "accept"])
            .env("NEWSLETTER__DATABASE__URL", &db.url)
            .env("NEWSLETTER__SECURITY__SECRET_KEY", key)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(accept(OTHER).contains("recorded"));
    assert!(accept(OTHER).contains("nothing changed"));
    assert!(!start_worker(OTHER).contains(warning));
    // Now the first key is the stranger.
    assert!(start_worker(SECRET_KEY).contains(warning));
}

/// `server.base_url` is a scheme and a host: a path, a user name or a query is refused by name
/// before anything starts; `database.url` must be PostgreSQL's and its error never shows the
/// password.
#[test]
fn a_base_url_with_a_path_and_a_database_url_of_another_kind_are_refused_by_name() {
    for (key, value, named) in [
        (
            "NEWSLETTER__SERVER__BASE_URL",
            "https://example.org/news",
            "server.base_url",
        ),
        (
            "NEWSLETTER__SERVER__BASE_URL",
            "https://a:b@example.org",
            "user name",
        ),
        (
            "NEWSLETTER__DATABASE__URL",
            "mysql://root:hunter2@127.0.0.1/db",
            "PostgreSQL",
        ),
    ] {
        let out = newsletter()
            .arg("migrate")
            .env(key, value)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains(named), "{value}: {said}");
        assert!(!said.contains("hunter2"), "{said}");
        assert_eq!(said.trim().lines().count(), 1, "one line: {said}");
    }
    let out = newsletter()
        .arg("migrate")
        .env("NEWSLETTER__SERVER__BASE_URL", "HTTP://Example.ORG")
        .env(
            "NEWSLETTER__DATABASE__URL",
            "postgres://nobody@127.0.0.1:9/x",
        )
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !said.contains("base_url"),
        "an upper-case scheme is a scheme: {said}"
    );
}

/// Behind a proxy that `server.trust_forwarded_for` does not believe, every visitor would count
/// as the proxy for the per-IP limits: the first proxied request logs a warning that names the
/// setting, once; with the setting on, nothing is said.
#[tokio::test]
async fn a_proxied_request_while_forwarded_for_is_not_trusted_is_named_once() {
    let db = TestDatabase::create().await;
    for trusted in [false, true] {
        let mut child = newsletter()
            .args(["serve", "--no-worker", "--no-inbound"])
            .env("NEWSLETTER__DATABASE__URL", &db.url)
            .env("NEWSLETTER__SERVER__BIND", "127.0.0.1:0")
            .env(
                "NEWSLETTER__SERVER__TRUST_FORWARDED_FOR",
                trusted.to_string(),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = lines_of(&mut child);
        let listening = wait_for_line(&lines, "listening on").expect("serve starts");
        let port = listening
            .trim()
            .rsplit(':')
            .next()
            .unwrap()
            .parse::<u16>()
            .unwrap();
        let client = reqwest::Client::new();
        for _ in 0..3 {
            let r = client
                .get(format!("http://127.0.0.1:{port}/l/no-such-code"))
                .header("x-forwarded-for", "203.0.113.7")
                .send()
                .await
                .unwrap();
            // A link route: counted per client.
            assert_eq!(r.status(), 404);
        }
        // Logging is synchronous: what the three requests logged is in the pipe by now.
        let _ = child.kill();
        let _ = child.wait();
        let warnings = lines
            .iter()
            .filter(|l| l.contains("trust_forwarded_for is off"))
            .count();
        assert_eq!(warnings, usize::from(!trusted), "trusted: {trusted}");
    }
}
