//! E-mail templates: `email/<name>/{subject.txt,body.txt,body.html}.hbs` from the shipped set
//! (compiled in; `templates.dir` may override), each possibly replaced by a version staff saved
//! (`ops::templates`, `LiveTemplates`). Compiled once with strict mode on, their partials
//! checked and every rendering bounded (`bounds`), and rendered with sample data whose links and
//! postal address are unique values, so a broken template, or one that leaves out what its
//! kind of mail must show ([`required`]), fails at start-up or at saving, never at a send. HTML
//! bodies are escaped; subject and text are not, and the subject loses every CR/LF so no header
//! can be injected through it.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use handlebars::template::Template;
use handlebars::Handlebars;
use serde::Serialize;

use super::bounds::{self, RenderFailure, RenderLimits};
use super::brand::Brand;
use super::explain;
use crate::config::TemplateSettings;
use crate::template_files::TemplateFiles;

pub use crate::domain::MailSource;

/// Mails the service itself sends; these folders must exist. Every folder under
/// `templates/email/` is loaded, so staff can add templates for updates.
pub const REQUIRED: &[&str] = &["confirmation", "notice", "update", "welcome"];
/// The service's own mails that are not updates: each needs data an update mail does not
/// have, so an update may not use them. Every other folder is an update template (and is
/// checked at start-up with an update's data).
const NOT_FOR_UPDATES: &[&str] = &["confirmation", "notice", "welcome"];

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

    pub(super) fn of(self, source: &MailSource) -> &str {
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

/// Why a template source was refused: the part, and the reason in plain words with the line
/// and column and the offending line quoted where handlebars gives a position (`explain`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{part}: {message}")]
pub struct TemplateError {
    pub part: Part,
    pub message: String,
}

impl TemplateError {
    /// Why rendering `part` (whose text is `source`) stopped.
    fn rendering(part: Part, source: &str, failure: RenderFailure) -> Self {
        let message = match failure {
            RenderFailure::Template(e) => explain::render_error(source, &e),
            other => other.to_string(),
        };
        Self { part, message }
    }
}

pub struct MailTemplates {
    html: Handlebars<'static>,
    text: Handlebars<'static>,
    sources: BTreeMap<String, MailSource>,
    limits: RenderLimits,
    /// The look every mail of this set carries, given to each rendering as `brand`.
    brand: Brand,
}

/// A template's data with the set's look beside it as `brand`.
#[derive(Serialize)]
struct Branded<'a, T> {
    #[serde(flatten)]
    data: &'a T,
    brand: &'a Brand,
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
    bounds::register_marker(&mut html);
    bounds::register_marker(&mut text);
    (html, text)
}

/// The name a part of template `name` is registered (and included as a partial) under.
fn registered(name: &str, part: Part) -> String {
    format!("{name}/{}", part.file())
}

/// Compiles the three parts of `name`, checks their partials (`bounds::check_partials`) and
/// registers them, each body with its marker.
fn register(
    html: &mut Handlebars<'static>,
    text: &mut Handlebars<'static>,
    name: &str,
    source: &MailSource,
) -> Result<(), TemplateError> {
    let mut compiled = Vec::with_capacity(Part::ALL.len());
    for part in Part::ALL {
        let template = Template::compile_with_name(part.of(source), registered(name, part))
            .map_err(|e| TemplateError {
                part,
                message: explain::compile_error(part.of(source), &e),
            })?;
        compiled.push((part, template));
    }
    let names: Vec<String> = Part::ALL.iter().map(|p| registered(name, *p)).collect();
    let parts: Vec<(&str, &Template)> = names
        .iter()
        .zip(&compiled)
        .map(|(n, (_, t))| (n.as_str(), t))
        .collect();
    bounds::check_partials(&parts).map_err(|(i, message)| TemplateError {
        part: Part::ALL[i],
        message,
    })?;
    for ((part, mut template), name) in compiled.into_iter().zip(names) {
        bounds::instrument(&mut template);
        let registry = if part == Part::Html {
            &mut *html
        } else {
            &mut *text
        };
        registry.register_template(&name, template);
    }
    Ok(())
}

/// Renders each part of `name` with its sample data, within `limits`, and checks that the
/// subject is not empty and that both bodies show what a mail of this kind must show.
fn render_sample(
    (html, text): (&Handlebars<'static>, &Handlebars<'static>),
    name: &str,
    source: &MailSource,
    limits: RenderLimits,
) -> Result<RenderedMail, TemplateError> {
    let sample = Sample::new(name);
    let render = |part: Part| {
        let registry = if part == Part::Html { html } else { text };
        bounds::render(registry, &registered(name, part), &sample.data, limits)
            .map_err(|e| TemplateError::rendering(part, part.of(source), e))
    };
    let subject = single_line(&render(Part::Subject)?);
    if subject.is_empty() {
        return Err(TemplateError {
            part: Part::Subject,
            message: "renders as an empty subject".into(),
        });
    }
    let mail = RenderedMail {
        subject,
        text: render(Part::Text)?,
        html: render(Part::Html)?,
    };
    sample.shown_in(name, &mail)?;
    Ok(mail)
}

impl MailTemplates {
    /// The shipped templates (overridden by `templates.dir` where `settings` names one),
    /// compiled and rendered with sample data.
    ///
    /// # Errors
    /// A required template is missing, or one does not compile or render; the error names it.
    pub fn load(settings: &TemplateSettings) -> anyhow::Result<Self> {
        Self::build(
            &shipped_sources(&settings.files())?,
            settings.into(),
            Brand::plain(),
        )
    }

    /// Compiles `sources` (by name) and renders each with sample data, every rendering
    /// (then and later) within `limits` and with `brand` as the look.
    ///
    /// # Errors
    /// One does not compile or render, or leaves out what its kind of mail must show; the error
    /// names the template and the part.
    pub fn build(
        sources: &BTreeMap<String, MailSource>,
        limits: RenderLimits,
        brand: Brand,
    ) -> anyhow::Result<Self> {
        let (mut html, mut text) = registries();
        for (name, source) in sources {
            register(&mut html, &mut text, name, source)
                .with_context(|| format!("compiling mail template {name}"))?;
        }
        for (name, source) in sources {
            render_sample((&html, &text), name, source, limits).with_context(|| {
                format!("mail template {name} does not render with sample data")
            })?;
        }
        Ok(Self {
            html,
            text,
            sources: sources.clone(),
            limits,
            brand,
        })
    }

    /// Whether `source` may be saved as template `name`: each part compiles, its partials pass
    /// `bounds::check_partials`, and it renders the sample data of that template within
    /// `limits`, showing what a mail of its kind must show (the check every template passes at
    /// start-up). The sample rendering is the editor's preview.
    ///
    /// Compiling needs a stack of `bounds::compile_stack_bytes` for the source: run this on a
    /// thread that has it (`LiveTemplates::check`).
    ///
    /// # Errors
    /// The first part that does not, with the reason (line and column where handlebars knows
    /// them).
    pub fn check(
        name: &str,
        source: &MailSource,
        limits: RenderLimits,
    ) -> Result<RenderedMail, TemplateError> {
        let (mut html, mut text) = registries();
        register(&mut html, &mut text, name, source)?;
        render_sample((&html, &text), name, source, limits)
    }

    /// The source this set compiled for `name`.
    pub fn source(&self, name: &str) -> Option<&MailSource> {
        self.sources.get(name)
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

    /// Renders template `name` with `data`, each part within the limits the set was built with.
    ///
    /// # Errors
    /// A part does not render (a field missing in strict mode, a limit passed), or the subject
    /// is empty.
    pub fn render<T: Serialize>(&self, name: &str, data: &T) -> anyhow::Result<RenderedMail> {
        let data = Branded {
            data,
            brand: &self.brand,
        };
        let render = |registry: &Handlebars<'static>, part: Part| {
            bounds::render(registry, &registered(name, part), &data, self.limits)
        };
        let subject = render(&self.text, Part::Subject)
            .with_context(|| format!("rendering the subject of mail {name}"))?;
        let subject = single_line(&subject);
        if subject.is_empty() {
            bail!("mail {name} rendered an empty subject");
        }
        Ok(RenderedMail {
            subject,
            text: render(&self.text, Part::Text)
                .with_context(|| format!("rendering the text body of mail {name}"))?,
            html: render(&self.html, Part::Html)
                .with_context(|| format!("rendering the HTML body of mail {name}"))?,
        })
    }
}

/// What a mail of template `name` must show in its text and its HTML part: the field of the
/// data that holds it, and what it is called. An update, whatever its template, carries the
/// unsubscribe link, the preferences link and the postal address (the law in most places
/// wants all three); a confirmation its confirmation link; a welcome the preferences link.
fn required(name: &str) -> &'static [(&'static str, &'static str)] {
    match name {
        "confirmation" => &[("confirm_url", "the confirmation link")],
        "welcome" => &[("manage_url", "the preferences link")],
        "notice" => &[],
        _ => &[
            ("unsubscribe_url", "the unsubscribe link"),
            ("manage_url", "the preferences link"),
            ("postal_address", "the postal address"),
        ],
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

/// Sample data of the shape the worker gives each mail, so a broken template fails at start-up
/// rather than at the ten-thousandth send, with unique values (a random tag) for the links and
/// the postal address, so a rendering that shows them can only have rendered their fields.
struct Sample {
    data: serde_json::Value,
}

impl Sample {
    fn new(name: &str) -> Self {
        let tag = format!("{:016x}", rand::random::<u64>());
        Self {
            data: sample_data(name, &tag),
        }
    }

    /// Checks that the text and the HTML part of `mail` each show every value [`required`]
    /// for `name` (in the HTML part, as it is or HTML-escaped).
    fn shown_in(&self, name: &str, mail: &RenderedMail) -> Result<(), TemplateError> {
        for (part, body) in [(Part::Text, &mail.text), (Part::Html, &mail.html)] {
            let missing: Vec<String> = required(name)
                .iter()
                .filter(|(field, _)| {
                    let value = self.data[*field].as_str().unwrap_or_default();
                    !(body.contains(value)
                        || part == Part::Html && body.contains(&handlebars::html_escape(value)))
                })
                .map(|(field, what)| format!("{what} ({{{{{field}}}}})"))
                .collect();
            if !missing.is_empty() {
                return Err(TemplateError {
                    part,
                    message: format!("must show {}", missing.join(", ")),
                });
            }
        }
        Ok(())
    }
}

/// Folders other than the built-in mails are update templates. `tag` makes the links and the
/// postal address unique.
fn sample_data(name: &str, tag: &str) -> serde_json::Value {
    let links = serde_json::json!({
        "name": "Sample Reader", "email": "reader@example.org",
        "postal_address": format!("1 Sample Street, Sampletown {tag}"),
        "manage_url": format!("https://example.org/manage/sample-{tag}"),
        "unsubscribe_url": format!("https://example.org/unsubscribe/sample-{tag}"),
    });
    let mut data = match name {
        // NOT_FOR_UPDATES, each with its own data; everything else gets an update's.
        "confirmation" => serde_json::json!({
            "confirm_url": format!("https://example.org/subscriptions/confirm?token=sample-{tag}"),
            "expires_hours": 72,
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
        d.insert(
            "brand".into(),
            serde_json::to_value(Brand::sample()).unwrap_or_default(),
        );
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

    // A generous time: these tests check the output and depth bounds, which must stop a
    // blow-up first even on a busy machine (2 s was hit once in CI before 2 MiB was written).
    const LIMITS: RenderLimits = RenderLimits {
        max_output_bytes: 2 << 20,
        max_render: std::time::Duration::from_secs(60),
    };

    fn settings(dir: Option<&std::path::Path>) -> TemplateSettings {
        TemplateSettings {
            dir: dir.map(std::path::Path::to_path_buf),
            max_output_bytes: LIMITS.max_output_bytes,
            max_render: LIMITS.max_render,
        }
    }

    fn shipped(name: &str) -> MailSource {
        shipped_sources(&TemplateFiles::shipped()).unwrap()[name].clone()
    }

    #[test]
    fn the_shipped_templates_load_and_render_with_sample_data() {
        let t = MailTemplates::load(&settings(None)).unwrap();
        assert!(t.has("update") && t.has("confirmation") && t.has("welcome"));
        assert!(t.is_for_updates("update"));
        assert!(!t.is_for_updates("confirmation") && !t.is_for_updates("welcome"));
        assert!(!t.is_for_updates("no-such-template"));
        assert_eq!(t.for_updates().collect::<Vec<_>>(), ["update"]);
        let r = t.render("update", &sample_data("update", "t")).unwrap();
        assert_eq!(r.subject, "Sample update");
        assert!(
            r.html.contains("Sample Reader")
                && r.text.contains("https://example.org/unsubscribe/sample-t")
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
            MailTemplates::load(&settings(Some(&dir)))
                .err()
                .expect("a broken template fails the load")
        );
        let _ = std::fs::remove_dir_all(&dir);
        assert!(err.contains("welcome"), "{err}");
    }

    #[test]
    fn check_names_the_part_and_the_position_of_an_error() {
        let good = shipped("update");
        assert!(MailTemplates::check("update", &good, LIMITS).is_ok());
        let unclosed = MailSource {
            html: "<p>\n{{#if name}}Hello".into(),
            ..good.clone()
        };
        let err = MailTemplates::check("update", &unclosed, LIMITS).unwrap_err();
        assert_eq!(err.part, Part::Html);
        assert!(err.message.contains("line"), "{err}");
        let unknown = MailSource {
            text: "{{no_such_field}}".into(),
            ..good.clone()
        };
        assert_eq!(
            MailTemplates::check("update", &unknown, LIMITS)
                .unwrap_err()
                .part,
            Part::Text
        );
        let empty = MailSource {
            subject: " ".into(),
            ..good
        };
        assert_eq!(
            MailTemplates::check("update", &empty, LIMITS)
                .unwrap_err()
                .part,
            Part::Subject
        );
    }

    #[test]
    fn a_broken_template_is_explained_in_plain_words_with_the_line_quoted() {
        let good = shipped("update");
        let refused = |html: &str| {
            let broken = MailSource {
                html: html.into(),
                ..good.clone()
            };
            MailTemplates::check("update", &broken, LIMITS)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            refused("<p>\n  {{#if name}}Hello\n</p>"),
            "html: line 2, column 3: a `{{#if}}` block is opened here and never closed \
             (close it with `{{/if}}`): `  {{#if name}}Hello`"
        );
        assert_eq!(
            refused("<p>\n{{#if name}}x{{/each}}</p>"),
            "html: line 2, column 14: `{{/each}}` closes a `{{#if}}` block: close `{{#if}}` \
             with `{{/if}}` first: `{{#if name}}x{{/each}}</p>`"
        );
        assert_eq!(
            refused("<p>{{{intro_html}}</p>"),
            "html: line 1, column 4: this `{{{` is closed with `}}`: an expression opened \
             with three braces ends with three, `}}}`: `<p>{{{intro_html}}</p>`"
        );
        assert_eq!(
            refused("<p>{{name}</p>"),
            "html: line 1, column 4: this `{{` is never closed: an expression ends with `}}`: \
             `<p>{{name}</p>`"
        );
        assert_eq!(
            refused("<p>\n\n<b>{{shout name}}</b></p>"),
            "html: line 3, column 4: there is no helper called `shout` (the helpers are `if`, \
             `unless`, `each`, `with`, `lookup`, comparisons such as `eq`, and `plain_text` in \
             the text part): `<b>{{shout name}}</b></p>`"
        );
        assert_eq!(
            refused("<p>{{#each news_items}}{{nope}}{{/each}}</p>"),
            "html: line 1, column 24: `nope` is not a field of this mail's data: \
             `<p>{{#each news_items}}{{nope}}{{/each}}</p>`"
        );
        // Whatever else the parser refuses: where, and what an expression may be.
        let other = refused("<p>{{ }}</p>");
        assert!(
            other.starts_with("html: line 1, column 7: handlebars cannot read what is here")
                && other.ends_with(": `<p>{{ }}</p>`")
                && !other.contains("expected"),
            "{other}"
        );
    }

    #[test]
    fn parts_that_include_each_other_are_refused_with_the_cycle_named() {
        let looping = MailSource {
            subject: "{{> update/body.txt}}".into(),
            text: "{{> update/subject.txt}}".into(),
            ..shipped("update")
        };
        let err = MailTemplates::check("update", &looping, LIMITS).unwrap_err();
        assert_eq!(err.part, Part::Subject);
        assert_eq!(
            err.message,
            "partials include each other: update/subject.txt → update/body.txt → update/subject.txt"
        );
    }

    #[test]
    fn a_template_must_show_what_its_kind_of_mail_carries() {
        let update = shipped("update");
        let no_unsubscribe = MailSource {
            text: update.text.replace("{{unsubscribe_url}}", ""),
            ..update.clone()
        };
        let err = MailTemplates::check("update", &no_unsubscribe, LIMITS).unwrap_err();
        assert_eq!(err.part, Part::Text);
        assert_eq!(
            err.message,
            "must show the unsubscribe link ({{unsubscribe_url}})"
        );
        let written_out = MailSource {
            html: "<p>{{subject}}</p><a href=\"https://example.org/manage/sample-x\">x</a>".into(),
            ..update.clone()
        };
        let err = MailTemplates::check("update", &written_out, LIMITS).unwrap_err();
        assert_eq!(err.part, Part::Html);
        assert!(
            err.message.contains("unsubscribe link")
                && err.message.contains("preferences link")
                && err.message.contains("postal address"),
            "{err}"
        );
        // Unescaped, in a condition or a loop: what counts is what the rendering shows.
        let shown_otherwise = MailSource {
            html: "{{{unsubscribe_url}}} {{#if manage_url}}{{manage_url}}{{/if}} \
                   {{#each news_items}}{{@root.postal_address}}{{/each}}"
                .into(),
            ..update
        };
        assert!(MailTemplates::check("update", &shown_otherwise, LIMITS).is_ok());

        let confirmation = shipped("confirmation");
        let no_link = MailSource {
            html: "<p>Please confirm.</p>".into(),
            ..confirmation
        };
        let err = MailTemplates::check("confirmation", &no_link, LIMITS).unwrap_err();
        assert_eq!(
            (err.part, err.message.as_str()),
            (
                Part::Html,
                "must show the confirmation link ({{confirm_url}})"
            )
        );
        let welcome = shipped("welcome");
        let no_preferences = MailSource {
            text: "Welcome!".into(),
            ..welcome
        };
        let err = MailTemplates::check("welcome", &no_preferences, LIMITS).unwrap_err();
        assert_eq!(
            (err.part, err.message.as_str()),
            (
                Part::Text,
                "must show the preferences link ({{manage_url}})"
            )
        );
    }

    #[test]
    fn a_template_that_includes_itself_or_blows_up_is_refused_not_rendered_forever() {
        let update = shipped("update");
        let recursive = MailSource {
            html: r#"{{#*inline "r"}}x{{> r}}{{/inline}}{{> r}}"#.into(),
            ..update.clone()
        };
        let err = MailTemplates::check("update", &recursive, LIMITS).unwrap_err();
        assert_eq!(
            (err.part, err.message.as_str()),
            (Part::Html, "partials include each other: r → r")
        );
        let huge = MailSource {
            text: bounds::fan_out(8, 10, "xxxxxxxxxx"),
            ..update
        };
        let err = MailTemplates::check("update", &huge, LIMITS).unwrap_err();
        assert_eq!(err.part, Part::Text);
        assert!(err.message.contains("templates.max_output_bytes"), "{err}");
    }

    #[test]
    fn single_line_removes_line_breaks() {
        assert_eq!(single_line(" Hello\r\nBcc: x@y.z \n"), "Hello Bcc: x@y.z");
    }
}
