//! Where mail goes: an SMTP relay (our pool of TCP_NODELAY connections) or, with no relay
//! configured, `.eml` files.

use std::path::PathBuf;

use anyhow::Context;
use lettre::{AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};

use super::dkim::Dkim;
use super::smtp_pool::{RelayConfig, SmtpPool};
use crate::config::{DkimSettings, SmtpSettings};

enum Transport {
    Smtp(SmtpPool),
    Files(AsyncFileTransport<Tokio1Executor>),
}

/// Sends mail, DKIM-signed when `mail.dkim` is set.
pub struct Mailer {
    transport: Transport,
    dkim: Option<Dkim>,
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
    /// The SMTP reply code, when the relay answered.
    pub code: Option<u16>,
    /// The enhanced status code (RFC 3463) in the reply, e.g. "5.1.1".
    pub enhanced: Option<String>,
    /// Set when the message may have reached the relay (the error came after the body was sent).
    pub ambiguous: bool,
}

impl SendError {
    pub fn new(kind: SendErrorKind, reply: String, code: Option<u16>, ambiguous: bool) -> Self {
        let enhanced = enhanced_code(&reply);
        Self {
            kind,
            reply,
            code,
            enhanced,
            ambiguous,
        }
    }

    pub fn transient(reply: String, ambiguous: bool) -> Self {
        Self::new(SendErrorKind::Transient, reply, None, ambiguous)
    }

    /// 5.1.x: the address does not exist (a hard bounce).
    pub fn is_hard_bounce(&self) -> bool {
        self.kind == SendErrorKind::Permanent
            && self
                .enhanced
                .as_deref()
                .is_some_and(|c| c.starts_with("5.1."))
    }

    /// x.7.x: a policy rejection (spam, authentication, reputation).
    pub fn is_policy(&self) -> bool {
        self.enhanced
            .as_deref()
            .is_some_and(|c| c.get(1..4) == Some(".7."))
    }
}

/// The first `d.ddd.ddd` token of a reply, where d is 2, 4 or 5 for the class.
pub fn enhanced_code(reply: &str) -> Option<String> {
    reply
        .split(|c: char| c.is_whitespace() || c == ':' || c == '(' || c == ')' || c == ',')
        .find(|w| {
            let parts: Vec<&str> = w.split('.').collect();
            parts.len() == 3
                && matches!(parts[0], "2" | "4" | "5")
                && parts[1..]
                    .iter()
                    .all(|p| (1..=3).contains(&p.len()) && p.chars().all(|c| c.is_ascii_digit()))
        })
        .map(str::to_owned)
}

impl Mailer {
    pub fn from_settings(
        settings: &SmtpSettings,
        dkim: Option<&DkimSettings>,
    ) -> anyhow::Result<Self> {
        let transport = match &settings.url {
            Some(url) => {
                let relay = RelayConfig::parse(url.expose(), settings.timeout)
                    .context("invalid smtp.url")?;
                Transport::Smtp(SmtpPool::new(
                    relay,
                    settings.pool_size,
                    &settings.helo_name,
                ))
            }
            None => {
                std::fs::create_dir_all(&settings.outbox_dir).with_context(|| {
                    format!("creating smtp.outbox_dir {}", settings.outbox_dir.display())
                })?;
                Transport::Files(AsyncFileTransport::new(PathBuf::from(&settings.outbox_dir)))
            }
        };
        Ok(Self {
            transport,
            dkim: dkim.map(Dkim::new).transpose()?,
        })
    }

    /// Signs (when configured) and sends one message; `Ok` carries the relay's reply.
    pub async fn send(&self, message: Message) -> Result<String, SendError> {
        let mut body = message.formatted();
        if let Some(dkim) = &self.dkim {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            body = dkim.sign(&body, now);
        }
        match &self.transport {
            Transport::Smtp(pool) => {
                let response = pool.send(message.envelope(), &body).await?;
                Ok(format!(
                    "{} {}",
                    response.code(),
                    response.message().collect::<Vec<_>>().join(" ")
                ))
            }
            Transport::Files(t) => t
                .send_raw(message.envelope(), &body)
                .await
                .map(|id| format!("written {id}.eml"))
                .map_err(|e| SendError::transient(format!("writing the outbox file: {e}"), false)),
        }
    }
}

pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enhanced_codes_are_found_in_replies() {
        assert_eq!(
            enhanced_code("permanent error (550): 5.1.1 no such user").as_deref(),
            Some("5.1.1")
        );
        assert_eq!(
            enhanced_code("421 4.7.28 rate limited").as_deref(),
            Some("4.7.28")
        );
        assert_eq!(enhanced_code("550 mailbox unavailable"), None);
        assert_eq!(enhanced_code("version 1.2.3 here"), None);
    }

    #[test]
    fn bounces_and_policy_rejections_are_told_apart() {
        let bounce = SendError::new(
            SendErrorKind::Permanent,
            "550 5.1.1 no such user".into(),
            Some(550),
            false,
        );
        let policy = SendError::new(
            SendErrorKind::Permanent,
            "550 5.7.26 unauthenticated".into(),
            Some(550),
            false,
        );
        assert!(bounce.is_hard_bounce() && !bounce.is_policy());
        assert!(policy.is_policy() && !policy.is_hard_bounce());
    }
}
