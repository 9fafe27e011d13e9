//! Command-line interface.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::app::{self, Application};
use crate::config::Settings;
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
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    telemetry::init(&settings.log);
    match cli.command {
        Command::Serve { no_worker } => {
            let pool = store::pool(&settings.database)?;
            store::migrate(&pool).await?;
            let app = Application::build(settings.clone(), !no_worker).await?;
            print_banner(&settings, app.port(), !no_worker);
            app.run_until(app::shutdown_on_signals()).await
        }
        Command::Worker => {
            let pool = store::pool(&settings.database)?;
            let worker = app::build_worker(Arc::new(settings), pool)?;
            worker.run(app::shutdown_on_signals()).await;
            Ok(())
        }
        Command::Migrate => {
            let pool = store::pool(&settings.database)?;
            store::migrate(&pool).await?;
            println!("migrations applied");
            Ok(())
        }
    }
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
