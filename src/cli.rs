//! Command-line interface.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use uuid::Uuid;

use crate::app::{self, Application};
use crate::config::Settings;
use crate::domain::UpdateInput;
use crate::mail::MailTemplates;
use crate::store::updates::Action;
use crate::updates::{self, UpdateError};
use crate::{store, telemetry};

#[derive(Parser, Debug)]
#[command(
    name = "newsletter",
    version,
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
        /// Run the web server only.
        #[arg(long)]
        no_worker: bool,
    },
    /// Run the background worker alone (any number may run against one database).
    Worker,
    /// Apply database migrations.
    Migrate,
    /// Manage API tokens.
    #[command(subcommand)]
    ApiToken(ApiTokenCommand),
    /// Create, schedule, send and inspect updates (the same operations as /api/v1/updates).
    #[command(subcommand)]
    Update(UpdateCommand),
}

#[derive(Subcommand, Debug)]
pub enum ApiTokenCommand {
    /// Create a token and print it once (only its hash is stored).
    Create {
        #[arg(long)]
        name: String,
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
    /// Schedule an update for an RFC 3339 time.
    Schedule {
        id: Uuid,
        #[arg(long)]
        at: String,
    },
    /// Send an update now.
    Send {
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
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    telemetry::init(&settings.log);
    let pool = store::pool(&settings.database)?;
    match cli.command {
        Command::Serve { no_worker } => {
            store::migrate(&pool).await?;
            let app = Application::build(settings.clone(), !no_worker).await?;
            print_banner(&settings, app.port(), !no_worker);
            app.run_until(app::shutdown_on_signals()).await
        }
        Command::Worker => {
            let worker = app::build_worker(Arc::new(settings), pool)?;
            worker.run(app::shutdown_on_signals()).await;
            Ok(())
        }
        Command::Migrate => {
            store::migrate(&pool).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::ApiToken(ApiTokenCommand::Create { name }) => {
            let name = name.trim();
            anyhow::ensure!(
                !name.is_empty() && name.len() <= 100,
                "--name: 1 to 100 characters"
            );
            let (id, token) = store::api_tokens::create(&pool, name)
                .await
                .context("creating the token")?;
            eprintln!("API token {id} ({name}) created. It is shown once; store it now:");
            println!("{}", token.as_str());
            Ok(())
        }
        Command::Update(command) => run_update(&settings, &pool, command).await,
    }
}

async fn run_update(
    settings: &Settings,
    pool: &sqlx::PgPool,
    command: UpdateCommand,
) -> anyhow::Result<()> {
    let show = |v: &updates::UpdateView| serde_json::to_string_pretty(v).map(|s| println!("{s}"));
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
                let templates = MailTemplates::load(&settings.templates.dir)?;
                show(&updates::create(pool, &templates, &input).await?).context("printing")?;
            }
            UpdateCommand::Show { id } => {
                show(&updates::view(pool, id).await?).context("printing")?
            }
            UpdateCommand::Schedule { id, at } => {
                let at = updates::parse_time(&at)?;
                show(&updates::act(pool, settings, id, Action::Schedule(at)).await?)
                    .context("printing")?;
            }
            UpdateCommand::Send { id } => {
                show(&updates::act(pool, settings, id, Action::SendNow).await?)
                    .context("printing")?
            }
            UpdateCommand::Pause { id } => {
                show(&updates::act(pool, settings, id, Action::Pause).await?).context("printing")?
            }
            UpdateCommand::Resume { id } => {
                show(&updates::act(pool, settings, id, Action::Resume).await?)
                    .context("printing")?
            }
            UpdateCommand::Cancel { id } => {
                show(&updates::act(pool, settings, id, Action::Cancel).await?)
                    .context("printing")?
            }
            UpdateCommand::Test { id, to } => {
                updates::send_test(pool, id, &to).await?;
                println!("test mail queued");
            }
            UpdateCommand::Deliveries { id, status, limit } => {
                for row in updates::deliveries(pool, id, status.as_deref(), 0, limit).await? {
                    println!("{}", serde_json::to_string(&row).context("printing")?);
                }
            }
            UpdateCommand::RetryFailed { id } => {
                println!("requeued {}", updates::retry_failed(pool, id).await?)
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

fn print_banner(settings: &Settings, port: u16, with_worker: bool) {
    let mail = match &settings.smtp.url {
        Some(_) => "to the SMTP relay in smtp.url".to_owned(),
        None => format!("to .eml files in {}/", settings.smtp.outbox_dir.display()),
    };
    println!(
        "newsletter is running: {}",
        settings.server.base_url.as_str()
    );
    println!("  listening on {}:{port}", settings.server.bind.ip());
    println!("  mail goes {mail}");
    if !with_worker {
        println!("  no worker in this process: run `newsletter worker` to send mail");
    }
}
