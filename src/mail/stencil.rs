//! A mail rendered once for many recipients: the template is rendered with placeholders where
//! the personal fields go, cut into literal pieces and fields, and each recipient's mail is
//! the pieces joined with their own values (escaped for HTML as handlebars escapes them). The
//! result is byte for byte what rendering the template for that recipient gives.
//!
//! That holds when the template uses the personal fields only as plain substitutions
//! (`{{name}}`, `{{unsubscribe_url}}`; in HTML only escaped) or as the condition of `#if` /
//! `#unless` (the stencil is made per "named or not", and the other fields are never empty),
//! not in helpers, comparisons, `#each`/`#with`, partials, or through `this`, `@root` (but as
//! `@root.field` for a field that is not personal) or `../`.
//! Staff may save templates that do otherwise, so `Stencil::new` proves it for each template
//! from its syntax tree (`plain_uses_only`) and, as a second check, renders with two different
//! sets of placeholders (of different lengths, the second with characters HTML escapes): when
//! filling the first set's pieces with the second set's values does not give exactly the
//! second rendering, or the syntax check fails, there is no stencil and the caller renders
//! per recipient.

use handlebars::template::{HelperTemplate, Parameter, Template, TemplateElement};
use lettre::message::Body;
use serde::Serialize;

use super::encoding::Lines;
use super::templates::{single_line, MailSource};
use super::{MailTemplates, RenderedMail};

/// One part of a rendering: text as it is, or the field at this index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Piece {
    Literal(String),
    Field(usize),
}

/// The subject, text and HTML of one template for one set of shared data, with holes for the
/// personal fields; the lines of text and HTML without a hole already transfer-encoded.
#[derive(Debug)]
pub struct Stencil {
    subject: Vec<Piece>,
    text: Lines,
    html: Lines,
}

/// One recipient's mail from a stencil: the subject, and the text and HTML parts encoded for
/// the message (as `encoding::body` encodes the filled text).
pub struct EncodedMail {
    pub subject: String,
    pub text: Body,
    pub html: Body,
}

/// Placeholders that survive HTML escaping unchanged (letters and digits only) and cannot
/// occur in the shared data by chance (a random part per set).
fn placeholders(fields: usize) -> Vec<String> {
    let tag: u64 = rand::random();
    (0..fields).map(|i| format!("zq{tag:016x}f{i}x")).collect()
}

/// A second set, each of another length than the first's and with characters HTML escapes,
/// so a template that measures or compares a field, or leaves it unescaped, renders apart.
fn probing_placeholders(fields: usize) -> Vec<String> {
    let tag: u64 = rand::random();
    (0..fields)
        .map(|i| format!("<&\"'zq{tag:016x}p{i}{}", "y".repeat(i + 1)))
        .collect()
}

/// Whether every use of one of `personal` (top-level data keys) in `source` is one the
/// stencil reproduces: a plain `{{field}}` (also `{{{field}}}` outside HTML) or the single
/// condition of `#if`/`#unless`. Anything that could reach a field another way (`this`,
/// `@root`, `../`, a partial, a decorator) fails too.
fn plain_uses_only(source: &MailSource, personal: &[String]) -> bool {
    [
        (&source.subject, false),
        (&source.text, false),
        (&source.html, true),
    ]
    .into_iter()
    .all(|(text, html)| {
        Template::compile(text).is_ok_and(|t| elements_ok(&t.elements, personal, html))
    })
}

fn elements_ok(elements: &[TemplateElement], personal: &[String], html: bool) -> bool {
    elements.iter().all(|element| match element {
        TemplateElement::RawString(_) | TemplateElement::Comment(_) => true,
        TemplateElement::Expression(h) => plain_field(h, personal) || helper_ok(h, personal, html),
        TemplateElement::HtmlExpression(h) => {
            (!html && plain_field(h, personal)) || helper_ok(h, personal, html)
        }
        TemplateElement::HelperBlock(h) => {
            let condition = matches!(&h.name, Parameter::Name(n) if n == "if" || n == "unless")
                && h.params.len() == 1
                && h.hash.is_empty()
                && h.block_param.is_none();
            if condition && reaches(&h.params[0], personal) {
                plain_field_param(&h.params[0], personal) && bodies_ok(h, personal, html)
            } else {
                helper_ok(h, personal, html)
            }
        }
        _ => false,
    })
}

fn bodies_ok(h: &HelperTemplate, personal: &[String], html: bool) -> bool {
    [&h.template, &h.inverse]
        .into_iter()
        .flatten()
        .all(|t| elements_ok(&t.elements, personal, html))
}

/// A helper or block that touches no personal field, whose bodies are fine.
fn helper_ok(h: &HelperTemplate, personal: &[String], html: bool) -> bool {
    !reaches(&h.name, personal)
        && !h.params.iter().any(|p| reaches(p, personal))
        && !h.hash.values().any(|p| reaches(p, personal))
        && bodies_ok(h, personal, html)
}

/// `{{field}}` of a personal field, nothing more.
fn plain_field(h: &HelperTemplate, personal: &[String]) -> bool {
    h.params.is_empty()
        && h.hash.is_empty()
        && h.template.is_none()
        && h.inverse.is_none()
        && plain_field_param(&h.name, personal)
}

fn plain_field_param(p: &Parameter, personal: &[String]) -> bool {
    path_text(p).is_some_and(|raw| personal.iter().any(|f| f == raw))
}

fn path_text(p: &Parameter) -> Option<&str> {
    match p {
        Parameter::Name(n) => Some(n),
        Parameter::Path(handlebars::Path::Relative((_, raw)))
        | Parameter::Path(handlebars::Path::Local((_, _, raw))) => Some(raw),
        _ => None,
    }
}

/// Whether `p` may read a personal field: names one (as a path's first segment), or could
/// reach the root's fields another way.
fn reaches(p: &Parameter, personal: &[String]) -> bool {
    match p {
        Parameter::Literal(_) => false,
        Parameter::Subexpression(sub) => match sub.as_element() {
            TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => {
                reaches(&h.name, personal)
                    || h.params.iter().any(|p| reaches(p, personal))
                    || h.hash.values().any(|p| reaches(p, personal))
            }
            _ => true,
        },
        other => match path_text(other) {
            Some(raw) => {
                // `@root.field…` reaches that field of the root, as `field…` does at the top
                // (the shipped templates read `@root.brand.colour` inside their loops).
                let raw = raw.strip_prefix("@root.").unwrap_or(raw);
                let first = raw.split(['.', '/']).next().unwrap_or(raw);
                personal.iter().any(|f| f == first)
                    || raw.starts_with("this")
                    || raw.starts_with("@root")
                    || raw.starts_with('.')
                    || raw.contains("..")
            }
            None => true,
        },
    }
}

/// `rendered` cut at each occurrence of one of `holes`.
fn cut(rendered: &str, holes: &[String]) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut rest = rendered;
    loop {
        let next = holes
            .iter()
            .enumerate()
            .filter_map(|(i, h)| rest.find(h.as_str()).map(|at| (at, i, h.len())))
            .min();
        match next {
            Some((at, field, len)) => {
                if at > 0 {
                    pieces.push(Piece::Literal(rest[..at].to_owned()));
                }
                pieces.push(Piece::Field(field));
                rest = &rest[at + len..];
            }
            None => {
                if !rest.is_empty() {
                    pieces.push(Piece::Literal(rest.to_owned()));
                }
                return pieces;
            }
        }
    }
}

/// The pieces with `values[i]` where field `i` goes, HTML-escaped when `escape`.
pub(super) fn join(pieces: &[Piece], values: &[&str], escape: bool) -> String {
    let mut out = String::with_capacity(
        pieces
            .iter()
            .map(|p| match p {
                Piece::Literal(s) => s.len(),
                Piece::Field(i) => values[*i].len() + 16,
            })
            .sum(),
    );
    for piece in pieces {
        match piece {
            Piece::Literal(s) => out.push_str(s),
            Piece::Field(i) if escape => out.push_str(&handlebars::html_escape(values[*i])),
            Piece::Field(i) => out.push_str(values[*i]),
        }
    }
    out
}

impl Stencil {
    /// Renders template `name` with the data `data(placeholders)` gives for `fields` personal
    /// fields. `None` when the template uses a personal field other than as a plain
    /// substitution (then render per recipient).
    ///
    /// # Errors
    /// The template does not render (as `MailTemplates::render`).
    pub fn new<T: Serialize>(
        templates: &MailTemplates,
        name: &str,
        fields: usize,
        data: impl Fn(&[String]) -> T,
    ) -> anyhow::Result<Option<Self>> {
        let (first, second) = (placeholders(fields), probing_placeholders(fields));
        let a = templates.render(name, &data(&first))?;
        let b = templates.render(name, &data(&second))?;
        // The top-level keys that hold a personal field.
        let personal: Vec<String> = match serde_json::to_value(data(&first)) {
            Ok(serde_json::Value::Object(map)) => map
                .into_iter()
                .filter(|(_, v)| {
                    v.as_str()
                        .is_some_and(|s| first.iter().any(|p| s.contains(p.as_str())))
                })
                .map(|(k, _)| k)
                .collect(),
            _ => return Ok(None),
        };
        let Some(source) = templates.source(name) else {
            return Ok(None);
        };
        if !plain_uses_only(source, &personal) {
            return Ok(None);
        }
        let stencil = Self {
            subject: cut(&a.subject, &first),
            text: Lines::new(cut(&a.text, &first)),
            html: Lines::new(cut(&a.html, &first)),
        };
        let values: Vec<&str> = second.iter().map(String::as_str).collect();
        Ok((stencil.fill(&values) == b).then_some(stencil))
    }

    /// The mail for one recipient: `values[i]` where field `i` goes.
    pub fn fill(&self, values: &[&str]) -> RenderedMail {
        RenderedMail {
            subject: self.subject(values),
            text: join(self.text.pieces(), values, false),
            html: join(self.html.pieces(), values, true),
        }
    }

    /// The mail for one recipient, its parts transfer-encoded: the same message as
    /// `fill(values)` gives, with only the lines that hold a field encoded here.
    pub fn fill_encoded(&self, values: &[&str]) -> EncodedMail {
        EncodedMail {
            subject: self.subject(values),
            text: self.text.body(values, false),
            html: self.html.body(values, true),
        }
    }

    fn subject(&self, values: &[&str]) -> String {
        single_line(&join(&self.subject, values, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutting_finds_every_hole_in_order() {
        let holes = vec!["AA".to_owned(), "BB".to_owned()];
        assert_eq!(
            cut("xAAyBBAA", &holes),
            [
                Piece::Literal("x".into()),
                Piece::Field(0),
                Piece::Literal("y".into()),
                Piece::Field(1),
                Piece::Field(0)
            ]
        );
        assert_eq!(join(&cut("<AA>", &holes), &["a&b", ""], true), "<a&amp;b>");
    }

    fn source(html: &str) -> MailSource {
        MailSource {
            subject: "{{subject}}".into(),
            text: "Hello {{{name}}} {{#if name}}{{name}}{{else}}you{{/if}}".into(),
            html: html.into(),
        }
    }

    #[test]
    fn only_plain_uses_of_personal_fields_pass_the_syntax_check() {
        let personal = vec!["name".to_owned(), "email".to_owned()];
        let ok = |html: &str| plain_uses_only(&source(html), &personal);
        assert!(ok("<p>{{#if name}}Hi {{name}}{{/if}} {{email}} {{#each news_items}}{{title}}{{/each}}</p>"));
        assert!(ok("{{#unless name}}Hello{{else}}{{name}}{{/unless}}"));
        assert!(!ok("{{{name}}}"), "unescaped in HTML");
        assert!(!ok("{{#if (eq name \"Bob\")}}Bob!{{/if}}"), "a comparison");
        assert!(!ok("{{len email}}"), "a helper");
        assert!(
            !ok("{{#each news_items}}{{../name}}{{/each}}"),
            "a parent path"
        );
        assert!(!ok("{{#each this}}{{this}}{{/each}}"), "the root's values");
        assert!(!ok("{{lookup @root \"name\"}}"), "the root");
        assert!(
            !ok("{{#each news_items}}{{@root.name}}{{/each}}"),
            "a personal field of the root"
        );
        assert!(!ok("{{#each news_items}}{{@root.this.name}}{{/each}}"));
        assert!(
            ok("{{#each news_items}}<a style=\"color: {{@root.brand.colour}}\">{{title}}</a>{{/each}}"),
            "another field of the root"
        );
        assert!(
            !ok("{{#with name}}{{this}}{{/with}}"),
            "a block over a field"
        );
        assert!(!ok("{{> other}}"), "a partial");
    }
}
