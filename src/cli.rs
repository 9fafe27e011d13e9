//! Command-line interface.

/// `println!` for the commands' output: a reader that goes away early (`newsletter staff list |
/// head -1`) ends the command quietly with success, as Unix tools do, instead of the panic
/// `println!` gives on a closed pipe; any other write error ends it with status 1.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_line(format_args!($($arg)*))
    };
}

mod digests;
mod progress;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use uuid::Uuid;

use crate::app::{self, Application};
use crate::config::Settings;
use crate::domain::UpdateInput;
use crate::mail::MailTemplates;
use crate::ops::updates::{self, Action, UpdateError};
use crate::ops::Actor;
use crate::telemetry;

#[derive(Parser, Debug)]
#[command(
    name = "newsletter",
    version = crate::VERSION,
    about = "Self-hosted e-mail newsletter and subscriber management"
)]
pub struct Cli {
    /// Extra configuration file, read on top of config/default.toml and config/local.toml.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the web server and the background worker (migrates first).
    Serve {
        /// Run the web server without the background worker.
        #[arg(long)]
        no_worker: bool,
        /// Do not open the inbound SMTP listener here even when `inbound.bind` is set (it runs
        /// as `newsletter inbound`, its own service).
        #[arg(long)]
        no_inbound: bool,
    },
    /// Run the background worker alone (any number may run against one database); it also
    /// polls the bounce mailbox when bounce.imap_url is set.
    Worker,
    /// Run the inbound SMTP listener for bounces and complaints alone (`inbound.bind`).
    Inbound,
    /// Apply database migrations.
    Migrate,
    /// The `security.secret_key` this database is used with.
    #[command(subcommand)]
    SecretKey(SecretKeyCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    ApiToken(ApiTokenCommand),
    /// Manage staff accounts for the admin area (/admin).
    #[command(subcommand)]
    Staff(StaffCommand),
    /// Create, schedule, send and inspect updates (the same operations as /api/v1/updates).
    #[command(subcommand)]
    Update(UpdateCommand),
    /// Feeds whose entries come to the news desk.
    #[command(subcommand)]
    Feed(digests::FeedCommand),
    /// Digest schedules.
    #[command(subcommand)]
    Digest(digests::DigestCommand),
    /// Measure: send, scale, start, render, sign-up, one-click unsubscribe, import and a
    /// fixed-rate load, each beside a ceiling measured in the same run where there is one. Uses
    /// its own database (dropped after) and a local SMTP sink.
    Bench {
        /// Subscribers in the send scenario.
        #[arg(long, default_value_t = 100_000)]
        subscribers: i64,
        /// List sizes of the scale scenario (the largest also gives the start figures).
        #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
        scale: Vec<i64>,
        /// Seconds each closed-loop HTTP load (signup, unsubscribe) runs.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Requests per second on each endpoint in the fixed-rate load scenario.
        #[arg(long, default_value_t = 200)]
        load_rate: u32,
        /// Seconds the fixed-rate load scenario runs.
        #[arg(long, default_value_t = 180)]
        load_seconds: u64,
        /// Rows in the import scenario.
        #[arg(long, default_value_t = 100_000)]
        import_rows: usize,
        /// Worker process counts of the workers scenario (one update sent by that many
        /// `newsletter worker` processes each time).
        #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
        workers: Vec<usize>,
        /// Subscribers the search scenario searches among.
        #[arg(long, default_value_t = 1_000_000)]
        search_subscribers: i64,
        /// Only these scenarios (send, scale, workers, signup, unsubscribe, import, search, load);
        /// all by default.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Where the table is written as JSON.
        #[arg(long, default_value = "bench-results.json")]
        json: PathBuf,
    },
    /// Import subscribers from a CSV file with a header row: email (required), name, state,
    /// status, lists, pending_lists (our own export's columns). Every row is checked first; one
    /// bad row stops the import, naming its line, column and value. People join as confirmed
    /// unless the status column says otherwise; erased, unsubscribed, bounced and complained
    /// addresses never come back. Progress goes to stderr: a bar on a terminal, else lines
    /// `progress DONE/TOTAL rows`.
    Import {
        file: PathBuf,
        /// Lists to put everyone on (repeat for several); by default the default lists, for
        /// the rows that name no list.
        #[arg(long = "list")]
        lists: Vec<String>,
        /// How the consent was obtained, kept in the consent log.
        #[arg(long, default_value = "imported by staff, who attest to the consent")]
        consent_note: String,
        /// Send each new person (and each pending one) a double opt-in mail instead (they join
        /// when they confirm); bad rows are then reported and the others imported. The worker
        /// sends the mails.
        #[arg(long)]
        opt_in: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ApiTokenCommand {
    /// Create a token and print it once (only its hash is stored).
    Create {
        #[arg(long)]
        name: String,
        /// read (GET only), write (an editor's rights: composes, never sends) or send (an
        /// admin's rights).
        #[arg(long, default_value = "send")]
        scope: String,
        /// Days until it expires (by default it does not).
        #[arg(long)]
        expires_days: Option<u32>,
    },
    /// List the tokens: id, name, scope, created, last used, expiry, state (never a secret).
    List,
    /// Revoke a token: from its next request on it is refused.
    Revoke { id: Uuid },
}

#[derive(Subcommand, Debug)]
pub enum StaffCommand {
    /// Add an account. The password is read from standard input when it is not a terminal;
    /// otherwise one is generated and printed once.
    Add {
        #[arg(long)]
        email: String,
        /// admin (sends, schedules, manages staff) or editor (news and drafts).
        #[arg(long)]
        role: String,
    },
    /// Set a new password (read or generated as for `add`); the account's sessions end.
    ResetPassword {
        #[arg(long)]
        email: String,
    },
    /// List accounts.
    List,
    /// Remove every second factor of an account (authenticator app, recovery codes, passkeys)
    /// and end its sessions: the member signs in with their password and enrols again (for a
    /// lost phone, and for the last admin, whom no other admin can reset).
    #[command(name = "reset-2fa")]
    Reset2fa {
        #[arg(long)]
        email: String,
    },
    /// Remove an account; its sessions end.
    Remove {
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum UpdateCommand {
    /// Create a draft from a JSON file (the body of POST /api/v1/updates); `-` reads stdin.
    Create {
        file: PathBuf,
    },
    /// Show an update with its delivery counts.
    Show {
        id: Uuid,
    },
    /// Schedule an update for an RFC 3339 time; with `--version`, only if it is still at that
    /// version (as `show` printed it).
    Schedule {
        id: Uuid,
        #[arg(long)]
        at: String,
        #[arg(long)]
        version: Option<i32>,
    },
    /// Send an update now; with `--version`, only if it is still at that version.
    Send {
        id: Uuid,
        #[arg(long)]
        version: Option<i32>,
    },
    /// Back to draft (from scheduled, awaiting approval, or paused before it started), to be
    /// edited; any approval is void.
    Unschedule {
        id: Uuid,
    },
    Pause {
        id: Uuid,
    },
    Resume {
        id: Uuid,
    },
    Cancel {
        id: Uuid,
    },
    /// Queue one test mail of the update (the ledger is not touched).
    Test {
        id: Uuid,
        #[arg(long)]
        to: String,
    },
    /// List deliveries, e.g. `--status failed`.
    Deliveries {
        id: Uuid,
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Queue the failed deliveries again.
    RetryFailed {
        id: Uuid,
    },
    /// The update's report (as `GET /api/v1/updates/{id}/report`), as JSON.
    Report {
        id: Uuid,
    },
    /// Fetch the update's links (as "Check links"): one line per link, failures first; exits
    /// with an error when any failed.
    CheckLinks {
        id: Uuid,
    },
}

#[derive(Subcommand, Debug)]
pub enum SecretKeyCommand {
    /// Record the configured key as this database's, after changing it on purpose: links in
    /// mail sent under the old key stop working (serve, worker and inbound log an error at each
    /// start until the key is put back or accepted).
    Accept,
}

/// `error` and its causes on one line, `: ` between them, each cause once: sqlx (and others)
/// repeat their source's text in their own message, which `{:#}` would print again.
pub fn error_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        // One line: a cause that spans lines (a parser's report) is joined.
        let text = cause
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    telemetry::init(&settings.log);
    let pool = app::pool(&settings.database)?;
    match cli.command {
        Command::Serve {
            no_worker,
            no_inbound,
        } => {
            for done in app::migrate(&pool).await? {
                tracing::info!("data migration done: {done}");
            }
            let mut settings = settings;
            if no_inbound {
                settings.inbound.bind = None;
            }
            crate::ops::secret_key::warn_if_changed(&pool, &settings).await?;
            let app = Application::build(settings.clone(), !no_worker).await?;
            let setup = crate::ops::staff::setup_code(&pool).await?;
            print_banner(&settings, app.port(), !no_worker, setup.as_ref());
            app.run_until(app::shutdown_on_signals()).await
        }
        Command::Worker => {
            let settings = Arc::new(settings);
            let shutdown = app::shutdown_on_signals();
            if !app::wait_for_schema(&pool, &shutdown).await? {
                return Ok(());
            }
            crate::ops::secret_key::warn_if_changed(&pool, &settings).await?;
            let mailbox = tokio::spawn(crate::bounce::mailbox::run(
                Arc::clone(&settings),
                pool.clone(),
                shutdown.clone(),
            ));
            let worker = app::build_worker(settings, pool)?;
            worker.run(shutdown).await;
            mailbox.await.context("the mailbox poller panicked")?;
            Ok(())
        }
        Command::Inbound => {
            // A configuration error first, before any wait for the database.
            anyhow::ensure!(
                settings.inbound.bind.is_some(),
                "inbound.bind is empty: set it (e.g. 0.0.0.0:2525) to run the listener"
            );
            let shutdown = app::shutdown_on_signals();
            if !app::wait_for_schema(&pool, &shutdown).await? {
                return Ok(());
            }
            crate::ops::secret_key::warn_if_changed(&pool, &settings).await?;
            let inbound = crate::bounce::inbound::InboundServer::bind(Arc::new(settings), pool)
                .await?
                .context("inbound.bind is empty: set it (e.g. 0.0.0.0:2525) to run the listener")?;
            inbound.run(shutdown).await;
            Ok(())
        }
        Command::Migrate => {
            for done in app::migrate(&pool).await? {
                out!("{done}");
            }
            out!("migrations applied");
            Ok(())
        }
        Command::SecretKey(SecretKeyCommand::Accept) => {
            if crate::ops::secret_key::accept(&pool, &settings).await? {
                out!("security.secret_key recorded as this database's key");
            } else {
                out!("security.secret_key is already this database's key: nothing changed");
            }
            Ok(())
        }
        Command::ApiToken(command) => run_api_token(&pool, command).await,
        Command::Staff(command) => run_staff(&settings, &pool, command).await,
        Command::Update(command) => run_update(&settings, &pool, command).await,
        Command::Feed(command) => digests::run_feed(&pool, command).await,
        Command::Digest(command) => digests::run_digest(&settings, &pool, command).await,
        Command::Bench {
            subscribers,
            scale,
            seconds,
            load_rate,
            load_seconds,
            import_rows,
            workers,
            search_subscribers,
            only,
            json,
        } => {
            let options = crate::bench::BenchOptions {
                subscribers,
                scale,
                seconds,
                load_rate,
                load_seconds,
                import_rows,
                workers,
                search_subscribers,
                only,
                json,
            };
            crate::bench::run(&settings, options).await
        }
        Command::Import {
            file,
            lists,
            consent_note,
            opt_in: true,
        } => run_opt_in_import(&pool, Arc::new(settings), &file, &lists, &consent_note).await,
        Command::Import {
            file,
            lists,
            consent_note,
            opt_in: false,
        } => run_import(&pool, &file, &lists, &consent_note).await,
    }
}

/// `newsletter import --opt-in`: the import runs as the staff area's and the API's do (a job),
/// here in this process; then its outcome is printed.
async fn run_opt_in_import(
    pool: &sqlx::PgPool,
    settings: Arc<Settings>,
    file: &std::path::Path,
    lists: &[String],
    note: &str,
) -> anyhow::Result<()> {
    use crate::ops::imports::{self, ImportError, ImportRequest};

    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let request = ImportRequest {
        file: &bytes,
        lists,
        mode: "opt-in",
        source: note,
    };
    let id = match imports::start(pool, &Actor::CommandLine, request).await {
        Ok(id) => id,
        Err(ImportError::Invalid(errors)) => {
            let all: Vec<String> = errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            anyhow::bail!("{}: nothing imported: {}", file.display(), all.join("; "))
        }
        Err(e) => return Err(e.into()),
    };
    // The job runs here while its row is read for the progress display.
    let mut progress: Option<progress::Progress> = None;
    let run = imports::run_pending(pool.clone(), settings);
    tokio::pin!(run);
    loop {
        tokio::select! {
            () = &mut run => break,
            () = tokio::time::sleep(std::time::Duration::from_millis(250)) => {
                let job = imports::status(pool, id).await?;
                if job.rows > 0 {
                    let shown = progress.get_or_insert_with(|| progress::Progress::start(job.rows as u64));
                    shown.set(job.processed as u64);
                }
            }
        }
    }
    let job = imports::status(pool, id).await?;
    if let Some(mut shown) = progress {
        shown.set(job.processed as u64);
        shown.finish();
    }
    if let Some(failure) = &job.failure {
        anyhow::bail!("{}: the import failed: {failure}", file.display());
    }
    out!(
        "rows {}, asked to confirm {}, asked to join more lists {}, already there {}, \
         duplicates {}, refused {}, suppressed {}",
        job.rows,
        job.imported,
        job.added_to_lists,
        job.already_there,
        job.duplicates,
        job.refused,
        job.suppressed
    );
    for e in job.errors.as_array().into_iter().flatten() {
        out!(
            "  line {}, column `{}`: {}",
            e["line"],
            e["field"].as_str().unwrap_or(""),
            e["message"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

/// `newsletter import`: the file imported at once, its people as confirmed
/// (`ops::imports::import_file`), with its progress shown; then what happened is printed.
async fn run_import(
    pool: &sqlx::PgPool,
    file: &std::path::Path,
    lists: &[String],
    note: &str,
) -> anyhow::Result<()> {
    use crate::ops::imports::{self, FileImportError};

    let mut shown: Option<progress::Progress> = None;
    let imported = imports::import_file(
        pool,
        &Actor::CommandLine,
        file,
        lists,
        note,
        |done, total| {
            shown
                .get_or_insert_with(|| progress::Progress::start(total as u64))
                .set(done as u64);
        },
    )
    .await;
    if let Some(shown) = shown {
        shown.finish();
    }
    let report = imported.map_err(|e| match e {
        FileImportError::List(problem) => anyhow::anyhow!("--list: {problem}"),
        FileImportError::File(e) => anyhow::anyhow!("{}: {e}", file.display()),
        FileImportError::Rows(errors) => {
            let errors: Vec<String> = errors
                .iter()
                .map(|e| format!("line {}, column `{}`: {}", e.line, e.field, e.message))
                .collect();
            anyhow::anyhow!(
                "{}: nothing imported:\n  {}",
                file.display(),
                errors.join("\n  ")
            )
        }
        FileImportError::Forbidden(e) => e.into(),
        FileImportError::Internal(e) => e,
    })?;
    out!(
        "imported {}, added to lists {}, already there {}, duplicates {}, refused {}, \
         suppressed {}\nconsent source of those who joined as confirmed: {note}",
        report.imported,
        report.added_to_lists,
        report.already_there,
        report.duplicates,
        report.refused.len(),
        report.suppressed.len()
    );
    for (line, why) in &report.refused {
        out!("  line {line}, column `status`: {why}");
    }
    for (line, why) in &report.suppressed {
        out!("  line {line}: {why}");
    }
    Ok(())
}

async fn run_api_token(pool: &sqlx::PgPool, command: ApiTokenCommand) -> anyhow::Result<()> {
    use crate::ops::api_tokens::{self, TokenError, TokenInput};

    let actor = Actor::CommandLine;
    let result = match command {
        ApiTokenCommand::Create {
            name,
            scope,
            expires_days,
        } => {
            let input = TokenInput {
                name,
                scope,
                expires_days: expires_days.map(|d| d.to_string()).unwrap_or_default(),
            };
            api_tokens::create(pool, &actor, &input).await.map(|made| {
                let t = &made.record;
                eprintln!(
                    "API token {} ({}, scope {}) created. It is shown once; store it now:",
                    t.id,
                    t.name,
                    t.scope.as_str()
                );
                out!("{}", made.secret.as_str());
            })
        }
        ApiTokenCommand::List => api_tokens::list(pool, &actor).await.map(|tokens| {
            let time = |t: Option<chrono::DateTime<chrono::Utc>>, none: &str| {
                t.map_or_else(|| none.to_owned(), |t| t.to_rfc3339())
            };
            out!("id\tname\tscope\tcreated\tlast used\texpires\tstate");
            for t in tokens {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else if t.expires_at.is_some_and(|e| e <= chrono::Utc::now()) {
                    "expired"
                } else {
                    "live"
                };
                out!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{state}",
                    t.id,
                    t.name,
                    t.scope.as_str(),
                    t.created_at.to_rfc3339(),
                    time(t.last_used_at, "never"),
                    time(t.expires_at, "never"),
                );
            }
        }),
        ApiTokenCommand::Revoke { id } => api_tokens::revoke(pool, &actor, id).await.map(|done| {
            if done {
                eprintln!("API token {id} revoked");
            } else {
                eprintln!("API token {id} was revoked already");
            }
        }),
    };
    result.map_err(|e| match e {
        TokenError::Invalid(errors) => {
            let all: Vec<String> = errors
                .iter()
                .map(|(k, v)| format!("--{}: {v}", k.replace('_', "-")))
                .collect();
            anyhow::anyhow!("{}", all.join("; "))
        }
        TokenError::Internal(e) => e,
        other => anyhow::anyhow!("{other}"),
    })
}

async fn run_staff(
    settings: &Settings,
    pool: &sqlx::PgPool,
    command: StaffCommand,
) -> anyhow::Result<()> {
    use crate::domain::{NewPassword, StaffRole};
    use crate::ops::staff;

    /// The password from standard input when it is piped, else a generated one (and whether it
    /// was generated, so it is printed once).
    fn password() -> anyhow::Result<(NewPassword, bool)> {
        use std::io::IsTerminal;
        if std::io::stdin().is_terminal() {
            return Ok((NewPassword::generate(), true));
        }
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        let password = NewPassword::parse(&line).map_err(|e| anyhow::anyhow!("password: {e}"))?;
        Ok((password, false))
    }
    /// After success only: a generated password, printed once.
    fn show_once(generated: Option<String>) {
        if let Some(password) = generated {
            eprintln!("Generated password (shown once; store it now):");
            out!("{password}");
        }
    }
    let result = match command {
        StaffCommand::Add { email, role } => {
            let role = StaffRole::parse(&role).map_err(|e| anyhow::anyhow!("--role: {e}"))?;
            let (password, generated) = password()?;
            let shown = generated.then(|| password.expose().to_owned());
            staff::add(pool, &Actor::CommandLine, &email, role.as_str(), password)
                .await
                .map(|role| {
                    eprintln!("staff account {email} ({}) added", role.as_str());
                    show_once(shown);
                })
        }
        StaffCommand::ResetPassword { email } => {
            let (password, generated) = password()?;
            let shown = generated.then(|| password.expose().to_owned());
            staff::reset_password(pool, &Actor::CommandLine, &email, password)
                .await
                .map(|()| {
                    eprintln!("password of {email} changed; its sessions ended");
                    show_once(shown);
                })
        }
        StaffCommand::List => staff::list(pool, &Actor::CommandLine).await.map(|members| {
            for listed in members {
                let m = &listed.member;
                let last = m
                    .last_login_at
                    .map_or_else(|| "never".to_owned(), |t| t.to_rfc3339());
                let app = if m.totp_enrolled_at.is_some() {
                    "authenticator app"
                } else {
                    "no authenticator app"
                };
                out!(
                    "{}\t{}\tlast login {last}\t{app}\t{} passkeys\t{} wrong codes in 7 days",
                    m.email,
                    m.role.as_str(),
                    listed.passkeys,
                    listed.second_factor_failures
                );
            }
        }),
        StaffCommand::Reset2fa { email } => {
            crate::ops::second_factor::reset(pool, settings, &Actor::CommandLine, &email)
                .await
                .map(|reset| eprintln!("{}", reset.told(email.trim())))
        }
        StaffCommand::Remove { email } => staff::remove(pool, &Actor::CommandLine, &email)
            .await
            .map(|()| eprintln!("staff account {email} removed")),
    };
    result.map_err(|e| match e {
        staff::StaffError::Internal(e) => e,
        other => anyhow::anyhow!("{other}"),
    })
}

async fn run_update(
    settings: &Settings,
    pool: &sqlx::PgPool,
    command: UpdateCommand,
) -> anyhow::Result<()> {
    let show = |v: &updates::UpdateView| serde_json::to_string_pretty(v).map(|s| out!("{s}"));
    let act = |action: Action, id: Uuid, version: Option<i32>| async move {
        let view = updates::act(pool, settings, &Actor::CommandLine, id, action, version).await?;
        show(&view).context("printing")?;
        Ok::<(), UpdateError>(())
    };
    let result: Result<(), UpdateError> = async {
        match command {
            UpdateCommand::Create { file } => {
                let text = if file.as_os_str() == "-" {
                    std::io::read_to_string(std::io::stdin()).context("reading stdin")?
                } else {
                    std::fs::read_to_string(&file)
                        .with_context(|| format!("reading {}", file.display()))?
                };
                let input: UpdateInput = serde_json::from_str(&text).map_err(|e| {
                    anyhow::anyhow!(
                        "{}: line {}, column {}: {e}",
                        file.display(),
                        e.line(),
                        e.column()
                    )
                })?;
                let templates = MailTemplates::load(&settings.templates)?;
                show(
                    &updates::create(
                        pool,
                        &templates,
                        &settings.mail,
                        &Actor::CommandLine,
                        &input,
                    )
                    .await?,
                )
                .context("printing")?;
            }
            UpdateCommand::Show { id } => {
                show(&updates::view(pool, id).await?).context("printing")?
            }
            UpdateCommand::Schedule { id, at, version } => {
                let at = updates::parse_time(&at)?;
                act(Action::Schedule(at), id, version).await?;
            }
            UpdateCommand::Send { id, version } => act(Action::SendNow, id, version).await?,
            UpdateCommand::Unschedule { id } => act(Action::Unschedule, id, None).await?,
            UpdateCommand::Pause { id } => act(Action::Pause, id, None).await?,
            UpdateCommand::Resume { id } => act(Action::Resume, id, None).await?,
            UpdateCommand::Cancel { id } => act(Action::Cancel, id, None).await?,
            UpdateCommand::Test { id, to } => {
                updates::send_test(pool, settings, &Actor::CommandLine, id, &to).await?;
                out!("test mail queued");
            }
            UpdateCommand::Deliveries { id, status, limit } => {
                for row in updates::deliveries(pool, id, status.as_deref(), 0, limit).await? {
                    out!("{}", serde_json::to_string(&row).context("printing")?);
                }
            }
            UpdateCommand::RetryFailed { id } => {
                out!(
                    "requeued {}",
                    updates::retry_failed(pool, &Actor::CommandLine, id).await?
                )
            }
            UpdateCommand::Report { id } => {
                let report = crate::ops::engagement::report(pool, id)
                    .await?
                    .ok_or(UpdateError::NotFound)?;
                out!(
                    "{}",
                    serde_json::to_string_pretty(&report).context("printing")?
                );
            }
            UpdateCommand::CheckLinks { id } => {
                let report =
                    crate::ops::link_check::check(pool, settings, &Actor::CommandLine, id).await?;
                for f in &report.failed {
                    let status = f.status.map(|s| format!("{s} ")).unwrap_or_default();
                    let why = f.error.as_deref().unwrap_or("");
                    out!("failed\t{}\t{status}{why}", f.url);
                }
                for ok in &report.ok {
                    out!("ok\t{}\t{}", ok.url, ok.status.unwrap_or_default());
                }
                for url in &report.unchecked {
                    out!("unchecked\t{url}");
                }
                if !report.failed.is_empty() {
                    return Err(UpdateError::Refused(format!(
                        "{} of {} links failed",
                        report.failed.len(),
                        report.links.len()
                    )));
                }
            }
        }
        Ok(())
    }
    .await;
    result.map_err(|e| match e {
        UpdateError::Invalid(errors) => {
            let lines: Vec<String> = errors
                .iter()
                .map(|(field, message)| format!("  {field}: {message}"))
                .collect();
            anyhow::anyhow!("invalid update:\n{}", lines.join("\n"))
        }
        UpdateError::Internal(e) => e,
        other => anyhow::anyhow!("{other}"),
    })
}

/// What `serve` prints once it listens: where it is, where staff sign in (with the one-time
/// `setup code:` while no staff account exists), where mail goes.
fn print_banner(
    settings: &Settings,
    port: u16,
    with_worker: bool,
    setup: Option<&crate::domain::SetupCode>,
) {
    let mail = match &settings.smtp.url {
        Some(_) => "to the SMTP relay in smtp.url".to_owned(),
        None => format!("to .eml files in {}/", settings.smtp.outbox_dir.display()),
    };
    let base = settings.server.base_url.as_str().trim_end_matches('/');
    let mut lines = vec![
        format!(
            "newsletter {} is running: {}",
            crate::VERSION,
            settings.server.base_url.as_str()
        ),
        format!("  listening on {}:{port}", settings.server.bind.ip()),
    ];
    match setup {
        Some(code) => {
            lines.push(format!(
                "  no staff account yet: create the first admin at {base}/admin/setup"
            ));
            lines.push(format!("  setup code: {}", code.display()));
        }
        None => lines.push(format!("  staff sign in at {base}/admin/login")),
    }
    lines.push(format!("  mail goes {mail}"));
    if !with_worker {
        lines.push("  no worker in this process: run `newsletter worker` to send mail".into());
    }
    if let Some(inbound) = settings.inbound.bind {
        lines.push(format!("  bounces and complaints by SMTP on {inbound}"));
    }
    for line in lines {
        match settings.log.format {
            // One JSON object a line for a collector: the banner is log events too.
            crate::config::LogFormat::Json => tracing::info!("{}", line.trim()),
            crate::config::LogFormat::Text => out!("{line}"),
        }
    }
}

/// Writes one line to standard output (see `out!`).
pub(crate) fn write_line(line: std::fmt::Arguments) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_fmt(line)
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush())
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("newsletter: writing to standard output: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::error_line;

    #[derive(Debug)]
    struct Repeats(std::io::Error);
    impl std::fmt::Display for Repeats {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "error returned from database: {}", self.0)
        }
    }
    impl std::error::Error for Repeats {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn an_error_is_one_line_and_names_each_cause_once() {
        let inner = std::io::Error::other("role \"nobody\" does not exist");
        let e = anyhow::Error::new(Repeats(inner)).context("applying\ndatabase migrations");
        assert_eq!(
            error_line(&e),
            "applying database migrations: error returned from database: role \"nobody\" does not exist"
        );
    }
}
