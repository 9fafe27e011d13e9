//! E-mail templates: `email/<name>/{subject.txt,body.txt,body.html}.hbs` from the shipped set
//! (compiled in; `templates.dir` may override), each possibly replaced by a version staff saved
//! (`ops::templates`, `LiveTemplates`). Compiled once with strict mode on and rendered with
//! sample data, so a broken template fails at start-up or at saving, never at a send. HTML
//! bodies are escaped; subject and text are not, and the subject loses every CR/LF so no header
//! can be injected through it.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use handlebars::Handlebars;
use serde::Serialize;

use crate::template_files::TemplateFiles;

/// Mails the service itself sends; these folders must exist. Every folder under
/// `templates/email/` is loaded, so staff can add templates for updates.
pub const REQUIRED: &[&str] = &["confirmation", "notice", "update", "welcome"];
/// The service's own mails that are not updates: each needs data an update mail does not
/// have, so an update may not use them. Every other folder is an update template (and is
/// checked at start-up with an update's data).
const NOT_FOR_UPDATES: &[&str] = &["confirmation", "notice", "welcome"];

/// The three parts of one mail template, as handlebars source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailSource {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// One of the three parts of a mail template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Subject,
    Text,
    Html,
}

impl Part {
    pub const ALL: [Part; 3] = [Part::Subject, Part::Text, Part::Html];

    /// `subject`, `text` or `html`: the field names of the API and the admin form.
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Subject => "subject",
            Part::Text => "text",
            Part::Html => "html",
        }
    }

    fn file(self) -> &'static str {
        match self {
            Part::Subject => "subject.txt",
            Part::Text => "body.txt",
            Part::Html => "body.html",
        }
    }

    fn of(self, source: &MailSource) -> &str {
        match self {
            Part::Subject => &source.subject,
            Part::Text => &source.text,
            Part::Html => &source.html,
        }
    }
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a template source was refused: the part, and handlebars' reason with its line and
/// column where it gives them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{part}: {message}")]
pub struct TemplateError {
    pub part: Part,
    pub message: String,
}

impl TemplateError {
    /// `reason` in `part`, prefixed with `line L, column C: ` where handlebars knows them.
    fn at(part: Part, position: Option<(usize, usize)>, reason: impl std::fmt::Display) -> Self {
        let message = match position {
            Some((line, column)) => format!("line {line}, column {column}: {reason}"),
            None => reason.to_string(),
        };
        Self { part, message }
    }
}

pub struct MailTemplates {
    html: Handlebars<'static>,
    text: Handlebars<'static>,
    sources: BTreeMap<String, MailSource>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedMail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The two registries every mail template set uses: strict, HTML escaped or not, and the
/// `plain_text` helper for text parts.
fn registries() -> (Handlebars<'static>, Handlebars<'static>) {
    let mut html = Handlebars::new();
    html.set_strict_mode(true);
    let mut text = Handlebars::new();
    text.set_strict_mode(true);
    text.register_escape_fn(handlebars::no_escape);
    // `{{plain_text intro}}`: staff-written Markdown as plain text, for text parts.
    handlebars::handlebars_helper!(plain_text: |markdown: str| super::markdown::to_text(markdown));
    text.register_helper("plain_text", Box::new(plain_text));
    (html, text)
}

/// Registers the three parts of `name`.
fn register(
    html: &mut Handlebars<'static>,
    text: &mut Handlebars<'static>,
    name: &str,
    source: &MailSource,
) -> Result<(), TemplateError> {
    for part in Part::ALL {
        let registry = if part == Part::Html {
            &mut *html
        } else {
            &mut *text
        };
        registry
            .register_template_string(&format!("{name}/{}", part.file()), part.of(source))
            .map_err(|e| TemplateError::at(part, e.pos(), e.reason()))?;
    }
    Ok(())
}

impl MailTemplates {
    /// The shipped templates (overridden by `templates.dir` where `files` has one), compiled
    /// and rendered with sample data.
    ///
    /// # Errors
    /// A required template is missing, or one does not compile or render; the error names it.
    pub fn load(files: &TemplateFiles) -> anyhow::Result<Self> {
        Self::build(&shipped_sources(files)?)
    }

    /// Compiles `sources` (by name) and renders each with sample data.
    ///
    /// # Errors
    /// One does not compile or render; the error names the template and the part.
    pub fn build(sources: &BTreeMap<String, MailSource>) -> anyhow::Result<Self> {
        let (mut html, mut text) = registries();
        for (name, source) in sources {
            register(&mut html, &mut text, name, source)
                .with_context(|| format!("compiling mail template {name}"))?;
        }
        let templates = Self {
            html,
            text,
            sources: sources.clone(),
        };
        for name in sources.keys() {
            templates
                .render(name, &sample_data(name))
                .with_context(|| {
                    format!("mail template {name} does not render with sample data")
                })?;
        }
        Ok(templates)
    }

    /// Whether `source` may be saved as template `name`: each part compiles and renders the
    /// sample data of that template (the check every template passes at start-up).
    ///
    /// # Errors
    /// The first part that does not, with handlebars' reason (line and column included).
    pub fn check(name: &str, source: &MailSource) -> Result<(), TemplateError> {
        let (mut html, mut text) = registries();
        register(&mut html, &mut text, name, source)?;
        let data = sample_data(name);
        for part in Part::ALL {
            let registry = if part == Part::Html { &html } else { &text };
            let rendered = registry
                .render(&format!("{name}/{}", part.file()), &data)
                .map_err(|e| TemplateError::at(part, e.line_no.zip(e.column_no), e.reason()))?;
            if part == Part::Subject && single_line(&rendered).is_empty() {
                return Err(TemplateError {
                    part,
                    message: "renders as an empty subject".into(),
                });
            }
        }
        Ok(())
    }

    /// The source this set compiled for `name`.
    pub fn source(&self, name: &str) -> Option<&MailSource> {
        self.sources.get(name)
    }

    /// Renders template `name` with the sample data it is checked with (the editor's preview).
    ///
    /// # Errors
    /// As [`MailTemplates::render`].
    pub fn render_sample(&self, name: &str) -> anyhow::Result<RenderedMail> {
        self.render(name, &sample_data(name))
    }

    /// Whether a mail template of this name was loaded.
    pub fn has(&self, name: &str) -> bool {
        self.sources.contains_key(name)
    }

    /// Whether an update may be sent with the template of this name: one that was loaded and
    /// renders an update's data (not one of the service's own mails such as `confirmation`).
    pub fn is_for_updates(&self, name: &str) -> bool {
        self.has(name) && !NOT_FOR_UPDATES.contains(&name)
    }

    /// The names of the templates an update may use, in order.
    pub fn for_updates(&self) -> impl Iterator<Item = &str> {
        self.sources
            .keys()
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

/// The shipped mail templates (with `templates.dir`'s overrides), by name.
///
/// # Errors
/// A required template is missing, or a part cannot be read; the error names it.
pub fn shipped_sources(files: &TemplateFiles) -> anyhow::Result<BTreeMap<String, MailSource>> {
    let names = files.list("email", true)?;
    if let Some(missing) = REQUIRED.iter().find(|r| !names.iter().any(|n| n == *r)) {
        bail!("mail template email/{missing} is missing");
    }
    let mut sources = BTreeMap::new();
    for name in names {
        let read = |part: Part| files.read(&format!("email/{name}/{}.hbs", part.file()));
        let source = MailSource {
            subject: read(Part::Subject)?,
            text: read(Part::Text)?,
            html: read(Part::Html)?,
        };
        sources.insert(name, source);
    }
    Ok(sources)
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
        let t = MailTemplates::load(&TemplateFiles::shipped()).unwrap();
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
        std::fs::create_dir_all(dir.join("email/welcome")).unwrap();
        std::fs::write(dir.join("email/welcome/body.txt.hbs"), "{{no_such_field}}").unwrap();
        let err = format!(
            "{:#}",
            MailTemplates::load(&TemplateFiles::with_override(Some(&dir)))
                .err()
                .expect("a broken template fails the load")
        );
        let _ = std::fs::remove_dir_all(&dir);
        assert!(err.contains("welcome"), "{err}");
    }

    #[test]
    fn check_names_the_part_and_the_position_of_an_error() {
        let shipped = shipped_sources(&TemplateFiles::shipped()).unwrap();
        let good = shipped["update"].clone();
        assert_eq!(MailTemplates::check("update", &good), Ok(()));
        let unclosed = MailSource {
            html: "<p>\n{{#if name}}Hello".into(),
            ..good.clone()
        };
        let err = MailTemplates::check("update", &unclosed).unwrap_err();
        assert_eq!(err.part, Part::Html);
        assert!(err.message.contains("line"), "{err}");
        let unknown = MailSource {
            text: "{{no_such_field}}".into(),
            ..good.clone()
        };
        assert_eq!(
            MailTemplates::check("update", &unknown).unwrap_err().part,
            Part::Text
        );
        let empty = MailSource {
            subject: " ".into(),
            ..good
        };
        assert_eq!(
            MailTemplates::check("update", &empty).unwrap_err().part,
            Part::Subject
        );
    }

    #[test]
    fn single_line_removes_line_breaks() {
        assert_eq!(single_line(" Hello\r\nBcc: x@y.z \n"), "Hello Bcc: x@y.z");
    }
}
