//! A mail rendered once for many recipients: the template is rendered with placeholders where
//! the personal fields go, cut into literal pieces and fields, and each recipient's mail is
//! the pieces joined with their own values (escaped for HTML as handlebars escapes them). The
//! result is byte for byte what rendering the template for that recipient gives.
//!
//! That holds when the template uses the personal fields only as plain substitutions
//! (`{{name}}`, `{{unsubscribe_url}}`), not in helpers or comparisons. `Stencil::new` checks it
//! for each template by rendering with two different sets of placeholders: when filling the
//! first set's pieces with the second set's placeholders does not give exactly the second
//! rendering, there is no stencil and the caller renders per recipient, as before.

use serde::Serialize;

use super::templates::single_line;
use super::{MailTemplates, RenderedMail};

/// One part of a rendering: text as it is, or the field at this index.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Field(usize),
}

/// The subject, text and HTML of one template for one set of shared data, with holes for the
/// personal fields.
#[derive(Debug)]
pub struct Stencil {
    subject: Vec<Piece>,
    text: Vec<Piece>,
    html: Vec<Piece>,
}

/// Placeholders that survive HTML escaping unchanged (letters and digits only) and cannot
/// occur in the shared data by chance (a random part per set).
fn placeholders(fields: usize) -> Vec<String> {
    let tag: u64 = rand::random();
    (0..fields).map(|i| format!("zq{tag:016x}f{i}x")).collect()
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

fn join(pieces: &[Piece], values: &[&str], escape: bool) -> String {
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
        let (first, second) = (placeholders(fields), placeholders(fields));
        let a = templates.render(name, &data(&first))?;
        let b = templates.render(name, &data(&second))?;
        let stencil = Self {
            subject: cut(&a.subject, &first),
            text: cut(&a.text, &first),
            html: cut(&a.html, &first),
        };
        let values: Vec<&str> = second.iter().map(String::as_str).collect();
        Ok((stencil.fill(&values) == b).then_some(stencil))
    }

    /// The mail for one recipient: `values[i]` where field `i` goes.
    pub fn fill(&self, values: &[&str]) -> RenderedMail {
        RenderedMail {
            subject: single_line(&join(&self.subject, values, false)),
            text: join(&self.text, values, false),
            html: join(&self.html, values, true),
        }
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
}
