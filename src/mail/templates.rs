//! E-mail templates: `templates/email/<name>/{subject.txt,body.txt,body.html}.hbs`, compiled once
//! at start-up with strict mode on. HTML bodies are escaped; subject and text are not, and the
//! subject loses every CR/LF so no header can be injected through it.

use std::path::Path;

use anyhow::{bail, Context};
use handlebars::Handlebars;
use serde::Serialize;

/// Mails the service itself sends; these folders must exist. Every folder under
/// `templates/email/` is loaded, so staff can add templates for updates.
pub const REQUIRED: &[&str] = &["confirmation", "notice", "update", "welcome"];
/// The service's own mails that are not updates: each needs data an update mail does not
/// have, so an update may not use them. Every other folder is an update template (and is
/// checked at start-up with an update's data).
const NOT_FOR_UPDATES: &[&str] = &["confirmation", "notice", "welcome"];

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
        // `{{plain_text intro}}`: staff-written Markdown as plain text, for text parts.
        handlebars::handlebars_helper!(plain_text: |markdown: str| super::markdown::to_text(markdown));
        text.register_helper("plain_text", Box::new(plain_text));
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
        let templates = Self { html, text, names };
        for name in &templates.names {
            templates
                .render(name, &sample_data(name))
                .with_context(|| {
                    format!("mail template {name} does not render with sample data")
                })?;
        }
        Ok(templates)
    }

    /// Whether a mail template of this name was loaded.
    pub fn has(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// Whether an update may be sent with the template of this name: one that was loaded and
    /// renders an update's data (not one of the service's own mails such as `confirmation`).
    pub fn is_for_updates(&self, name: &str) -> bool {
        self.has(name) && !NOT_FOR_UPDATES.contains(&name)
    }

    /// The names of the templates an update may use, in order.
    pub fn for_updates(&self) -> impl Iterator<Item = &str> {
        self.names
            .iter()
            .map(String::as_str)
            .filter(|n| self.is_for_updates(n))
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

/// Data of the shape the worker gives each mail, so a broken template fails at start-up
/// rather than at the ten-thousandth send. Folders other than the built-in mails are update
/// templates.
fn sample_data(name: &str) -> serde_json::Value {
    let links = serde_json::json!({
        "name": "Sample Reader", "email": "reader@example.org", "postal_address": "1 Sample Street",
        "manage_url": "https://example.org/manage/x", "unsubscribe_url": "https://example.org/unsubscribe/x",
    });
    let mut data = match name {
        // NOT_FOR_UPDATES, each with its own data; everything else gets an update's.
        "confirmation" => serde_json::json!({
            "confirm_url": "https://example.org/subscriptions/confirm?token=x", "expires_hours": 72,
        }),
        "welcome" => serde_json::json!({ "lists": ["Sample list"] }),
        "notice" => serde_json::json!({
            "subject": "A digest waits for your review", "text": "The digest is ready.",
            "action": "Review it", "url": "https://example.org/admin/updates/x",
        }),
        _ => serde_json::json!({
            "subject": "Sample update", "preheader": "Sample", "intro": "Hello", "intro_html": "<p>Hello</p>",
            "web_url": "https://example.org/archive/2026-11-20-sample-update",
            "news_items": [{"title": "Item", "summary": "Summary", "source": "Source",
                            "url": "https://example.org/item", "published_on": "2026-11-20", "topic": "congress"}],
        }),
    };
    if let (Some(d), Some(l)) = (data.as_object_mut(), links.as_object()) {
        d.extend(l.clone());
    }
    data
}

/// Collapses all whitespace runs (CR and LF included) to one space.
pub(crate) fn single_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_templates_load_and_render_with_sample_data() {
        let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/templates"));
        let t = MailTemplates::load(dir).unwrap();
        assert!(t.has("update") && t.has("confirmation") && t.has("welcome"));
        assert!(t.is_for_updates("update"));
        assert!(!t.is_for_updates("confirmation") && !t.is_for_updates("welcome"));
        assert!(!t.is_for_updates("no-such-template"));
        assert_eq!(t.for_updates().collect::<Vec<_>>(), ["update"]);
        let r = t.render("update", &sample_data("update")).unwrap();
        assert_eq!(r.subject, "Sample update");
        assert!(
            r.html.contains("Sample Reader")
                && r.text.contains("https://example.org/unsubscribe/x")
        );
    }

    #[test]
    fn a_template_naming_a_missing_field_fails_the_load() {
        let dir =
            std::env::temp_dir().join(format!("newsletter-templates-{}", uuid::Uuid::new_v4()));
        let shipped = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/email"));
        for name in REQUIRED {
            let to = dir.join("email").join(name);
            std::fs::create_dir_all(&to).unwrap();
            for file in ["subject.txt.hbs", "body.txt.hbs", "body.html.hbs"] {
                std::fs::copy(shipped.join(name).join(file), to.join(file)).unwrap();
            }
        }
        std::fs::write(dir.join("email/welcome/body.txt.hbs"), "{{no_such_field}}").unwrap();
        let err = format!(
            "{:#}",
            MailTemplates::load(&dir)
                .err()
                .expect("a broken template fails the load")
        );
        let _ = std::fs::remove_dir_all(&dir);
        assert!(err.contains("welcome"), "{err}");
    }

    #[test]
    fn single_line_removes_line_breaks() {
        assert_eq!(single_line(" Hello\r\nBcc: x@y.z \n"), "Hello Bcc: x@y.z");
    }
}
