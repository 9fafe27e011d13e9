//! Where mail goes: an SMTP relay (pooled connections) or, with no relay configured, `.eml` files.

use std::path::PathBuf;

use anyhow::Context;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::SmtpSettings;

pub enum Mailer {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(AsyncFileTransport<Tokio1Executor>),
}

/// How a failed send should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendErrorKind {
    /// 4xx, connection refused, timeout: try again later.
    Transient,
    /// 5xx: this recipient will not take it.
    Permanent,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{reply}")]
pub struct SendError {
    pub kind: SendErrorKind,
    /// The relay's reply or the local error, for the ledger.
    pub reply: String,
    /// Set when the message may have reached the relay (the error came after the body was sent).
    pub ambiguous: bool,
}

impl Mailer {
    pub fn from_settings(settings: &SmtpSettings) -> anyhow::Result<Self> {
        match &settings.url {
            Some(url) => {
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
                    .context("invalid smtp.url")?
                    .timeout(Some(settings.timeout))
                    .pool_config(PoolConfig::new().max_size(settings.pool_size))
                    .build();
                Ok(Mailer::Smtp(transport))
            }
            None => {
                std::fs::create_dir_all(&settings.outbox_dir).with_context(|| {
                    format!("creating smtp.outbox_dir {}", settings.outbox_dir.display())
                })?;
                Ok(Mailer::Files(AsyncFileTransport::new(PathBuf::from(
                    &settings.outbox_dir,
                ))))
            }
        }
    }

    /// Sends one message; `Ok` carries the relay's reply.
    pub async fn send(&self, message: Message) -> Result<String, SendError> {
        match self {
            Mailer::Smtp(t) => match t.send(message).await {
                Ok(response) => Ok(format!(
                    "{} {}",
                    response.code(),
                    response.message().collect::<Vec<_>>().join(" ")
                )),
                Err(e) => Err(classify(&e)),
            },
            Mailer::Files(t) => t
                .send(message)
                .await
                .map(|id| format!("written {id}.eml"))
                .map_err(|e| SendError {
                    kind: SendErrorKind::Transient,
                    reply: format!("writing the outbox file: {e}"),
                    ambiguous: false,
                }),
        }
    }
}

fn classify(e: &lettre::transport::smtp::Error) -> SendError {
    let kind = if e.is_permanent() {
        SendErrorKind::Permanent
    } else {
        SendErrorKind::Transient
    };
    SendError {
        kind,
        reply: error_chain(e),
        ambiguous: false,
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
