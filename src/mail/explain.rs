//! Handlebars' errors in plain words, for whoever wrote the template: what is wrong, the line
//! and column, and the offending line quoted ("line 3, column 3: a `{{#if}}` block is opened
//! here and never closed (close it with `{{/if}}`): `  {{#if name}}Hello`"), instead of the
//! parser's jargon ("expected escape, expression, html_expression, …").

use handlebars::{RenderError, RenderErrorReason, TemplateError, TemplateErrorReason};

/// Longest stretch of the offending line quoted, in characters.
const QUOTED_CHARS: usize = 100;

/// Why `source` does not compile.
pub fn compile_error(source: &str, e: &TemplateError) -> String {
    let (position, words) = match e.reason() {
        TemplateErrorReason::InvalidSyntax(_) => match unclosed(source) {
            Some(Unclosed::Block { name, at }) => (
                Some(at),
                format!(
                    "a `{{{{#{name}}}}}` block is opened here and never closed (close it with \
                     `{{{{/{name}}}}}`)"
                ),
            ),
            Some(Unclosed::Expression { at }) => (
                Some(at),
                "this `{{` is never closed: an expression ends with `}}`".to_owned(),
            ),
            Some(Unclosed::Triple { at }) => (
                Some(at),
                "this `{{{` is closed with `}}`: an expression opened with three braces ends \
                 with three, `}}}`"
                    .to_owned(),
            ),
            None => (
                e.pos(),
                "handlebars cannot read what is here: an expression is a field (`{{name}}`), a \
                 helper with its arguments (`{{plain_text intro}}`) or a block \
                 (`{{#if name}}…{{/if}}`), and a stray `{{` or `}}` must be removed or escaped \
                 as `\\{{`"
                    .to_owned(),
            ),
        },
        TemplateErrorReason::MismatchingClosedHelper(open, close)
        | TemplateErrorReason::MismatchingClosedDecorator(open, close) => {
            let (open, close) = (bare(open), bare(close));
            (
                e.pos(),
                format!(
                    "`{{{{/{close}}}}}` closes a `{{{{#{open}}}}}` block: close `{{{{#{open}}}}}` \
                     with `{{{{/{open}}}}}` first"
                ),
            )
        }
        TemplateErrorReason::InvalidParam(param) => (
            e.pos(),
            format!("`{param}` is not something a helper can be given here"),
        ),
        TemplateErrorReason::NestedSubexpression => (
            e.pos(),
            "a sub-expression `( … )` cannot hold another one here".to_owned(),
        ),
        other => (e.pos(), other.to_string()),
    };
    located(source, position, &words)
}

/// Why `source` stopped rendering (a helper or a field that does not exist, …).
pub fn render_error(source: &str, e: &RenderError) -> String {
    let words = match e.reason() {
        RenderErrorReason::HelperNotFound(name) => format!(
            "there is no helper called `{name}` (the helpers are `if`, `unless`, `each`, \
             `with`, `lookup`, comparisons such as `eq`, and `plain_text` in the text part)"
        ),
        RenderErrorReason::MissingVariable(Some(path)) => {
            format!("`{path}` is not a field of this mail's data")
        }
        RenderErrorReason::MissingVariable(None) => {
            "this names a field that is not in this mail's data".to_owned()
        }
        RenderErrorReason::PartialNotFound(name) => {
            format!("there is no part or inline partial called `{name}` to include")
        }
        RenderErrorReason::DecoratorNotFound(name) => {
            format!("there is no decorator called `{name}`")
        }
        other => other.to_string(),
    };
    located(source, e.line_no.zip(e.column_no), &words)
}

/// `words` prefixed with `line L, column C: ` and followed by the quoted line, where known.
fn located(source: &str, position: Option<(usize, usize)>, words: &str) -> String {
    let Some((line, column)) = position else {
        return words.to_owned();
    };
    match source.lines().nth(line.saturating_sub(1)) {
        Some(text) if !text.trim().is_empty() => {
            format!(
                "line {line}, column {column}: {words}: `{}`",
                quoted(text, column)
            )
        }
        _ => format!("line {line}, column {column}: {words}"),
    }
}

/// The line, shortened around `column` when it is long.
fn quoted(text: &str, column: usize) -> String {
    let text = text.trim_end();
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= QUOTED_CHARS {
        return text.to_owned();
    }
    let start = column
        .saturating_sub(QUOTED_CHARS / 2)
        .min(chars.len() - QUOTED_CHARS);
    let end = start + QUOTED_CHARS;
    format!(
        "{}{}{}",
        if start > 0 { "…" } else { "" },
        chars[start..end].iter().collect::<String>(),
        if end < chars.len() { "…" } else { "" }
    )
}

/// A name as handlebars quotes it in its messages, without the quotes.
fn bare(name: &str) -> &str {
    name.trim_matches('"')
}

/// What is left open at the end of a template that does not parse.
#[derive(Debug, PartialEq, Eq)]
enum Unclosed {
    /// The innermost `{{#name …}}` without its `{{/name}}`, and where it opens.
    Block { name: String, at: (usize, usize) },
    /// A `{{` without `}}` after it.
    Expression { at: (usize, usize) },
    /// A `{{{` closed by `}}` alone.
    Triple { at: (usize, usize) },
}

/// Blocks a closing tag is matched against, innermost first: enough for any template that
/// passes the nesting bound, and a bounded search for one that does not.
const MATCHED_DEPTH: usize = 64;

/// A rough reading of the template's `{{ }}` (comments and escaped braces skipped) to find
/// what is open when the parser ran out of text. One pass over the text.
fn unclosed(source: &str) -> Option<Unclosed> {
    // Each open block's name and the byte where it opens.
    let mut open: Vec<(String, usize)> = Vec::new();
    let mut rest = source;
    let mut offset = 0;
    while let Some(found) = rest.find("{{") {
        let start = offset + found;
        if found > 0 && rest.as_bytes()[found - 1] == b'\\' {
            offset = start + 2;
            rest = &source[offset..];
            continue;
        }
        let after = &source[start + 2..];
        let (end_marker, body_from) = if after.starts_with("!--") {
            ("--}}", 3)
        } else {
            ("}}", 0)
        };
        let Some(end) = after[body_from..].find(end_marker) else {
            return Some(Unclosed::Expression {
                at: position(source, start),
            });
        };
        let closed_by = &after[body_from + end..];
        if after.starts_with('{') && !closed_by.starts_with("}}}") {
            return Some(Unclosed::Triple {
                at: position(source, start),
            });
        }
        let body = after[body_from..body_from + end]
            .trim_start_matches(['{', '~'])
            .trim_end_matches(['}', '~'])
            .trim();
        if let Some(opened) = body.strip_prefix('#').or_else(|| body.strip_prefix('^')) {
            let name: String = opened
                .trim_start_matches(['>', '*', ' '])
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '}')
                .collect();
            if !name.is_empty() {
                open.push((name, start));
            }
        } else if let Some(closed) = body.strip_prefix('/') {
            let name = closed.trim();
            let depth = open.len();
            if let Some(i) = open
                .iter()
                .rev()
                .take(MATCHED_DEPTH)
                .position(|(n, _)| n == name)
            {
                open.truncate(depth - 1 - i);
            }
        }
        offset = start + 2 + body_from + end + end_marker.len();
        rest = &source[offset..];
    }
    open.pop().map(|(name, start)| Unclosed::Block {
        name,
        at: position(source, start),
    })
}

/// The 1-based line and column (in characters) of byte `index` of `source`.
fn position(source: &str, index: usize) -> (usize, usize) {
    let before = &source[..index];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unclosed_block_is_named_where_it_opens() {
        assert_eq!(
            unclosed("<p>\n  {{#if name}}Hello\n{{#each items}}x{{/each}}"),
            Some(Unclosed::Block {
                name: "if".into(),
                at: (2, 3)
            })
        );
        assert_eq!(
            unclosed("a {{! a comment }} {{!-- {{#if x}} --}} b {{name"),
            Some(Unclosed::Expression { at: (1, 43) })
        );
        assert_eq!(unclosed("\\{{#if}} {{#if a}}{{/if}}"), None);
    }

    #[test]
    fn thousands_of_open_blocks_are_read_in_one_pass() {
        let source = format!(
            "{}{}",
            "{{#if a}}\n".repeat(15_000),
            "{{/b}}".repeat(15_000)
        );
        assert_eq!(
            unclosed(&source),
            Some(Unclosed::Block {
                name: "if".into(),
                at: (15_000, 1)
            })
        );
    }

    #[test]
    fn a_long_line_is_quoted_around_the_column() {
        let line = format!("{}{{{{#if x}}}}{}", "a".repeat(200), "b".repeat(200));
        let q = quoted(&line, 201);
        assert!(
            q.starts_with('…') && q.ends_with('…') && q.contains("{{#if x}}"),
            "{q}"
        );
        assert_eq!(quoted("  short  ", 1), "  short");
    }
}
