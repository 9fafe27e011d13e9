//! Staff-written Markdown to HTML that is safe to put in a mail: raw HTML is shown as text,
//! and links or images that are not http(s) or mailto lose their target.

use pulldown_cmark::{html, CowStr, Event, Options, Parser, Tag, TagEnd};

use crate::domain::safe_url;

/// The words of a Markdown text without its markup (for a page's description).
pub fn to_plain_text(markdown: &str) -> String {
    let mut out = String::new();
    for event in Parser::new_ext(markdown, Options::ENABLE_STRIKETHROUGH) {
        match event {
            Event::Text(t) | Event::Code(t) | Event::Html(t) | Event::InlineHtml(t) => {
                out.push_str(&t)
            }
            Event::SoftBreak | Event::HardBreak | Event::End(_) => out.push(' '),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub fn to_safe_html(markdown: &str) -> String {
    let parser =
        Parser::new_ext(markdown, Options::ENABLE_STRIKETHROUGH).map(|event| match event {
            Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => Event::Start(Tag::Link {
                link_type,
                dest_url: safe_dest(dest_url),
                title,
                id,
            }),
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            }) => Event::Start(Tag::Image {
                link_type,
                dest_url: safe_dest(dest_url),
                title,
                id,
            }),
            other => other,
        });
    let mut out = String::new();
    html::push_html(&mut out, parser);
    // Images never wider than the column, in clients that ignore <style> too. Every `<img` in
    // the output is pulldown-cmark's own: raw HTML became escaped text above.
    out.replace("<img ", r#"<img style="max-width: 100%; height: auto;" "#)
}

/// Staff-written Markdown as the plain text of a mail's text part: no Markdown syntax left;
/// emphasis as its words, a link as its text and then its URL in angle brackets (so a `)` or
/// `.` after it cannot become part of the URL), an image as its alt text, list items with
/// `*` or their number, paragraphs separated by a blank line. Links whose target is not http(s)
/// or mailto keep only their text.
pub fn to_text(markdown: &str) -> String {
    let mut out = String::new();
    // Targets of the links (or images) being read, and their text so far.
    let mut links: Vec<(Option<String>, usize)> = Vec::new();
    let mut lists: Vec<Option<u64>> = Vec::new();
    let block_break = |out: &mut String| {
        let trimmed = out.trim_end_matches([' ', '\n']).len();
        out.truncate(trimmed);
        if !out.is_empty() {
            out.push_str("\n\n");
        }
    };
    for event in Parser::new_ext(markdown, Options::ENABLE_STRIKETHROUGH) {
        match event {
            Event::Text(t) | Event::Code(t) | Event::Html(t) | Event::InlineHtml(t) => {
                out.push_str(&t)
            }
            Event::SoftBreak => out.push(' '),
            Event::HardBreak => out.push('\n'),
            Event::Rule => {
                block_break(&mut out);
                out.push_str("----");
            }
            Event::Start(
                Tag::Paragraph | Tag::Heading { .. } | Tag::BlockQuote(_) | Tag::CodeBlock(_),
            ) if lists.is_empty() => block_break(&mut out),
            Event::Start(Tag::List(start)) => {
                if lists.is_empty() {
                    block_break(&mut out);
                }
                lists.push(start);
            }
            Event::End(TagEnd::List(_)) => {
                lists.pop();
            }
            Event::Start(Tag::Item) => {
                let trimmed = out.trim_end_matches(' ').len();
                out.truncate(trimmed);
                if !out.is_empty() && !out.ends_with('\n') {
                    out.push('\n');
                }
                out.push_str(&"  ".repeat(lists.len().saturating_sub(1)));
                match lists.last_mut() {
                    Some(Some(n)) => {
                        out.push_str(&format!("{n}. "));
                        *n += 1;
                    }
                    _ => out.push_str("* "),
                }
            }
            Event::Start(Tag::Link { dest_url, .. }) => {
                links.push((Some(dest_url.to_string()), out.len()));
            }
            Event::Start(Tag::Image { .. }) => links.push((None, out.len())),
            Event::End(TagEnd::Link | TagEnd::Image) => {
                if let Some((Some(dest), start)) = links.pop() {
                    let shown = out[start..].trim();
                    if safe_url(&dest).is_ok() && shown != dest && !dest.is_empty() {
                        out.push_str(&format!(" <{dest}>"));
                    }
                }
            }
            _ => {}
        }
    }
    out.trim().to_owned()
}

fn safe_dest(dest: CowStr<'_>) -> CowStr<'_> {
    match safe_url(&dest) {
        Ok(_) => dest,
        Err(_) => CowStr::Borrowed("#"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_becomes_html() {
        assert_eq!(to_safe_html("Hello *all*"), "<p>Hello <em>all</em></p>\n");
    }

    #[test]
    fn markdown_becomes_plain_text_without_its_syntax() {
        let text = to_text(
            "Dear **reader**, see [the report](https://example.org/a_(b)) (new).\n\n\
             ![A chart of votes](https://example.org/chart.png)\n\n\
             * one _item_\n* [two](javascript:alert(1))\n\n1. first\n2. second",
        );
        assert_eq!(
            text,
            "Dear reader, see the report <https://example.org/a_(b)> (new).\n\n\
             A chart of votes\n\n\
             * one item\n* two\n\n1. first\n2. second"
        );
    }

    #[test]
    fn raw_html_and_script_links_are_neutralised() {
        let html = to_safe_html(
            "<script>alert(1)</script>\n\n[x](javascript:alert(1)) [ok](https://example.org)",
        );
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains(r##"href="#""##));
        assert!(html.contains(r#"href="https://example.org""#));
    }
}
