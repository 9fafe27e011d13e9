//! `newsletter feed …` and `newsletter digest …`: the command-line door to followed feeds and
//! digest schedules (`ops::feeds`, `ops::digests`), printing JSON as the API answers.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use serde::Serialize;
use uuid::Uuid;

use crate::config::Settings;
use crate::mail::MailTemplates;
use crate::ops::digests::{self, DigestError, DigestInput};
use crate::ops::feeds::{self, FeedError, FeedInput};
use crate::ops::Actor;

#[derive(Subcommand, Debug)]
pub enum FeedCommand {
    /// Follow an RSS 2.0 or Atom feed; its entries come to the news desk.
    Add {
        url: String,
        /// Topic slug of its items.
        #[arg(long)]
        topic: Option<String>,
        /// Trusted: its items are approved at once, without review.
        #[arg(long)]
        approve: bool,
        /// Minutes between its polls (5 to 10080); default `feeds.poll_minutes`.
        #[arg(long)]
        poll_minutes: Option<i32>,
    },
    /// Every feed with its last read and last error.
    List,
    /// Stop following a feed (its items stay on the desk).
    Remove { id: Uuid },
}

#[derive(Subcommand, Debug)]
pub enum DigestCommand {
    /// Create a schedule from a JSON file: the body of POST /api/v1/digests (`-` for stdin).
    Create { file: PathBuf },
    /// Every schedule with its next occurrences.
    List,
    /// One schedule with its next and its last occurrences.
    Show { id: Uuid },
    /// Delete a schedule.
    Remove { id: Uuid },
}

fn print(value: &impl Serialize) -> anyhow::Result<()> {
    out!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Each field error on its own line, `field: message`.
fn field_errors(errors: &crate::domain::FieldErrors) -> anyhow::Error {
    let lines: Vec<String> = errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    anyhow::anyhow!("{}", lines.join("\n"))
}

fn feed_error(e: FeedError) -> anyhow::Error {
    match e {
        FeedError::Invalid(errors) => field_errors(&errors),
        other => anyhow::Error::new(other),
    }
}

fn digest_error(e: DigestError) -> anyhow::Error {
    match e {
        DigestError::Invalid(errors) => field_errors(&errors),
        other => anyhow::Error::new(other),
    }
}

pub async fn run_feed(pool: &sqlx::PgPool, command: FeedCommand) -> anyhow::Result<()> {
    match command {
        FeedCommand::Add {
            url,
            topic,
            approve,
            poll_minutes,
        } => {
            let input = FeedInput {
                url: Some(url),
                topic,
                approve: Some(approve),
                active: Some(true),
                poll_minutes,
            };
            print(
                &feeds::add(pool, &Actor::CommandLine, &input)
                    .await
                    .map_err(feed_error)?,
            )
        }
        FeedCommand::List => print(&feeds::list(pool).await.map_err(feed_error)?),
        FeedCommand::Remove { id } => {
            feeds::remove(pool, &Actor::CommandLine, id)
                .await
                .map_err(feed_error)?;
            eprintln!("feed {id} removed");
            Ok(())
        }
    }
}

pub async fn run_digest(
    settings: &Settings,
    pool: &sqlx::PgPool,
    command: DigestCommand,
) -> anyhow::Result<()> {
    match command {
        DigestCommand::Create { file } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading stdin")?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            let input: DigestInput = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a digest schedule", file.display()))?;
            let templates = MailTemplates::load(&settings.templates)?;
            print(
                &digests::create(pool, settings, &templates, &Actor::CommandLine, &input)
                    .await
                    .map_err(digest_error)?,
            )
        }
        DigestCommand::List => print(&digests::list(pool).await.map_err(digest_error)?),
        DigestCommand::Show { id } => print(&digests::view(pool, id).await.map_err(digest_error)?),
        DigestCommand::Remove { id } => {
            digests::remove(pool, &Actor::CommandLine, id)
                .await
                .map_err(digest_error)?;
            eprintln!("digest {id} removed");
            Ok(())
        }
    }
}
