//! E-mail templates: `templates/email/<name>/{subject.txt,body.txt,body.html}.hbs`, compiled once
//! at start-up with strict mode on. HTML bodies are escaped; subject and text are not, and the
//! subject loses every CR/LF so no header can be injected through it.

use std::path::Path;

use anyhow::{bail, Context};
use handlebars::Handlebars;
use serde::Serialize;

/// Mails the service itself sends; these folders must exist. Every folder under
/// `templates/email/` is loaded, so staff can add templates for updates.
pub const REQUIRED: &[&str] = &["confirmation", "update", "welcome"];

pub struct MailTemplates {
    html: Handlebars<'static>,
    text: Handlebars<'static>,
    names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedMail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl MailTemplates {
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let mut html = Handlebars::new();
        html.set_strict_mode(true);
        let mut text = Handlebars::new();
        text.set_strict_mode(true);
        text.register_escape_fn(handlebars::no_escape);
        let email_dir = dir.join("email");
        let mut names: Vec<String> = std::fs::read_dir(&email_dir)
            .with_context(|| format!("reading {}", email_dir.display()))?
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.path().is_dir())
            .filter_map(|entry| entry.file_name().into_string().ok())
            .collect();
        names.sort();
        if let Some(missing) = REQUIRED.iter().find(|r| !names.iter().any(|n| n == *r)) {
            bail!(
                "mail template folder {}/{missing} is missing",
                email_dir.display()
            );
        }
        for name in &names {
            let folder = email_dir.join(name);
            for file in ["subject.txt", "body.txt", "body.html"] {
                let registry = if file == "body.html" {
                    &mut html
                } else {
                    &mut text
                };
                let path = folder.join(format!("{file}.hbs"));
                registry
                    .register_template_file(&format!("{name}/{file}"), &path)
                    .with_context(|| format!("loading mail template {}", path.display()))?;
            }
        }
        Ok(Self { html, text, names })
    }

    /// Whether a mail template of this name was loaded.
    pub fn has(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    pub fn render<T: Serialize>(&self, name: &str, data: &T) -> anyhow::Result<RenderedMail> {
        let subject = self
            .text
            .render(&format!("{name}/subject.txt"), data)
            .with_context(|| format!("rendering the subject of mail {name}"))?;
        let subject = single_line(&subject);
        if subject.is_empty() {
            bail!("mail {name} rendered an empty subject");
        }
        Ok(RenderedMail {
            subject,
            text: self
                .text
                .render(&format!("{name}/body.txt"), data)
                .with_context(|| format!("rendering the text body of mail {name}"))?,
            html: self
                .html
                .render(&format!("{name}/body.html"), data)
                .with_context(|| format!("rendering the HTML body of mail {name}"))?,
        })
    }
}

/// Collapses all whitespace runs (CR and LF included) to one space.
pub fn single_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_removes_line_breaks() {
        assert_eq!(single_line(" Hello\r\nBcc: x@y.z \n"), "Hello Bcc: x@y.z");
    }
}
