//! Staff-written Markdown to HTML that is safe to put in a mail: raw HTML is shown as text,
//! and links or images that are not http(s) or mailto lose their target.

use pulldown_cmark::{html, CowStr, Event, LinkType, Options, Parser, Tag, TagEnd};

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

/// Where a link's destination is written in a Markdown text.
struct Spot {
    /// The bytes to replace: the destination itself, or (`autolink`) the whole `<url>`.
    range: std::ops::Range<usize>,
    url: String,
    autolink: bool,
}

/// Every link destination of `markdown` where it is written: inline links (`[t](url)`),
/// reference definitions (`[r]: url`, once for every link that uses it) and autolinks
/// (`<url>`). Images are not links. A destination written in a form whose text differs from
/// its value (with backslash escapes or entities) is left out: it is not rewritten.
fn link_spots(markdown: &str) -> Vec<Spot> {
    let parser = Parser::new_ext(markdown, Options::ENABLE_STRIKETHROUGH).into_offset_iter();
    let mut spots = Vec::new();
    for (_, definition) in parser.reference_definitions().iter() {
        let text = &markdown[definition.span.clone()];
        if let Some(at) = text.find("]:") {
            if let Some(range) = destination_after(text, at + 2, &definition.dest) {
                spots.push(Spot {
                    range: definition.span.start + range.start..definition.span.start + range.end,
                    url: definition.dest.to_string(),
                    autolink: false,
                });
            }
        }
    }
    for (event, range) in parser {
        let Event::Start(Tag::Link {
            link_type,
            dest_url,
            ..
        }) = event
        else {
            continue;
        };
        let text = &markdown[range.clone()];
        match link_type {
            LinkType::Inline => {
                // The `](` that opens the destination: the last one followed by it.
                let found = text
                    .rmatch_indices("](")
                    .find_map(|(at, _)| destination_after(text, at + 2, &dest_url));
                if let Some(found) = found {
                    spots.push(Spot {
                        range: range.start + found.start..range.start + found.end,
                        url: dest_url.to_string(),
                        autolink: false,
                    });
                }
            }
            LinkType::Autolink if text == format!("<{dest_url}>") => spots.push(Spot {
                range,
                url: dest_url.to_string(),
                autolink: true,
            }),
            _ => {}
        }
    }
    spots.sort_by_key(|s| s.range.start);
    spots
}

/// Where `dest` is written in `text` from `at`, after blanks and an opening `<`.
fn destination_after(text: &str, at: usize, dest: &str) -> Option<std::ops::Range<usize>> {
    let rest = &text[at..];
    let start = at + (rest.len() - rest.trim_start().len());
    let start = start + usize::from(text[start..].starts_with('<'));
    (!dest.is_empty() && text[start..].starts_with(dest)).then(|| start..start + dest.len())
}

/// The destinations of the links in `markdown`, in order of appearance (repeats kept).
pub fn link_destinations(markdown: &str) -> Vec<String> {
    link_spots(markdown).into_iter().map(|s| s.url).collect()
}

/// `markdown` with each link destination that `new` maps replaced by what it maps to; the
/// rest of the text byte for byte as it was. An autolink (`<url>`) becomes `[url](new)`, so
/// the reader still sees the address. Images keep theirs.
pub fn rewrite_links(markdown: &str, new: &std::collections::HashMap<String, String>) -> String {
    let mut out = String::with_capacity(markdown.len());
    let mut done = 0;
    for spot in link_spots(markdown) {
        let Some(to) = new.get(&spot.url) else {
            continue;
        };
        if spot.range.start < done {
            continue;
        }
        out.push_str(&markdown[done..spot.range.start]);
        if spot.autolink {
            out.push('[');
            for c in spot.url.chars() {
                if c.is_ascii_punctuation() {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push_str(&format!("]({to})"));
        } else {
            out.push_str(to);
        }
        done = spot.range.end;
    }
    out.push_str(&markdown[done..]);
    out
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

    fn rewritten(markdown: &str) -> String {
        let map = link_destinations(markdown)
            .into_iter()
            .enumerate()
            .map(|(i, url)| (url, format!("https://n.example/l/{i}")))
            .collect();
        rewrite_links(markdown, &map)
    }

    #[test]
    fn link_destinations_are_rewritten_in_place_and_nothing_else_changes() {
        let markdown = "See [the *Court*](https://icc.example/a \"title\") and \
                        [again](<https://icc.example/b>), [ref][r], <https://icc.example/c_d>, \
                        ![img](https://icc.example/i.png) and `[code](https://x.example)`.\n\n\
                        [r]: https://icc.example/r";
        let out = rewritten(markdown);
        assert_eq!(
            out,
            "See [the *Court*](https://n.example/l/0 \"title\") and \
             [again](<https://n.example/l/1>), [ref][r], \
             [https\\:\\/\\/icc\\.example\\/c\\_d](https://n.example/l/2), \
             ![img](https://icc.example/i.png) and `[code](https://x.example)`.\n\n\
             [r]: https://n.example/l/3"
        );
        // What a reader sees is unchanged; every link now leads through the new address.
        assert_eq!(to_plain_text(&out), to_plain_text(markdown));
        let html = to_safe_html(&out);
        for i in 0..4 {
            assert!(
                html.contains(&format!("href=\"https://n.example/l/{i}\"")),
                "{html}"
            );
        }
        assert!(html.contains("src=\"https://icc.example/i.png\""));
        assert!(!html.contains("href=\"https://icc.example"), "{html}");
    }

    #[test]
    fn a_link_whose_text_names_its_destination_has_only_the_destination_rewritten() {
        let markdown =
            "[https://a.example](https://a.example) [x](https://b.example \"https://b.example\")";
        assert_eq!(
            rewritten(markdown),
            "[https://a.example](https://n.example/l/0) [x](https://n.example/l/1 \"https://b.example\")"
        );
    }

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
