//! The character rule: every text that reaches XML (the archive's Atom feed), HTML or a mail
//! header holds only characters that XML 1.0 allows and mail carries. Refused: the C0 control
//! characters but tab, line feed and carriage return, DEL and the C1 controls, and the Unicode
//! noncharacters (U+FDD0 to U+FDEF and the last two code points of every plane, U+FFFE and
//! U+FFFF among them: one in a subject once made the archive's feed ill-formed for every
//! reader). An unpaired surrogate cannot be held in a Rust `String`; the API refuses a JSON
//! `"\ud800"` escape before it gets here.
//!
//! What people type is checked ([`check_line`], [`check_text`]: an error naming the character);
//! what the service fetches is cleaned ([`clean`]).

/// Unicode noncharacters: U+FDD0 to U+FDEF, and the last two code points of every plane.
pub fn is_noncharacter(c: char) -> bool {
    let u = c as u32;
    (0xFDD0..=0xFDEF).contains(&u) || u & 0xFFFE == 0xFFFE
}

/// Whether `c` may stand in a text that keeps its line breaks (a summary, an intro, Markdown).
pub fn allowed(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || !(c.is_control() || is_noncharacter(c))
}

/// Characters that break or reorder a line without being controls: the line and paragraph
/// separators (U+2028, U+2029) and the bidirectional embeddings, overrides and isolates
/// (U+202A to U+202E, U+2066 to U+2069), with which a one-line name can show other text than it
/// holds. Refused in one line ([`check_line`]); a text of several lines keeps them.
pub fn breaks_a_line(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Why `c` is refused, as words for staff.
fn describe(c: char) -> String {
    let what = if is_noncharacter(c) {
        "the noncharacter"
    } else if matches!(c, '\u{2028}' | '\u{2029}') {
        "the line separator"
    } else if breaks_a_line(c) {
        "the bidirectional control"
    } else if matches!(c, '\t' | '\n' | '\r') {
        "a line break or tab,"
    } else {
        "the control character"
    };
    format!("{what} U+{:04X}", c as u32)
}

/// A text of several lines: tab and line breaks allowed, no other control character and no
/// noncharacter.
///
/// # Errors
/// A sentence naming the field and the first character refused.
pub fn check_text(field: &str, s: &str) -> Result<(), String> {
    match s.chars().find(|c| !allowed(*c)) {
        Some(c) => Err(format!("The {field} cannot contain {}.", describe(c))),
        None => Ok(()),
    }
}

/// One line (a subject, a name, a title: what may become a mail header): no control character
/// at all, tab and line breaks included, no noncharacter, no line separator and no
/// bidirectional control ([`breaks_a_line`]).
///
/// # Errors
/// A sentence naming the field and the first character refused.
pub fn check_line(field: &str, s: &str) -> Result<(), String> {
    match s
        .chars()
        .find(|c| c.is_control() || is_noncharacter(*c) || breaks_a_line(*c))
    {
        Some(c) => Err(format!("The {field} cannot contain {}.", describe(c))),
        None => Ok(()),
    }
}

/// `s` without the characters the rule refuses (tab and line breaks kept): for text the
/// service fetches (a feed's titles and summaries), which is cleaned rather than refused.
pub fn clean(s: &str) -> String {
    s.chars().filter(|c| allowed(*c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn one_line_refuses_separators_and_bidirectional_controls_a_text_keeps_them() {
        for (bad, named) in [
            ("a\u{2028}b", "line separator U+2028"),
            ("abc\u{202E}txt.exe", "bidirectional control U+202E"),
            ("\u{2066}x\u{2069}", "bidirectional control U+2066"),
        ] {
            let e = check_line("name", bad).unwrap_err();
            assert!(e.contains(named), "{e}");
            assert!(check_text("summary", bad).is_ok());
        }
        assert!(
            check_line("name", "\u{200F}\u{5E9}\u{5DC}\u{5D5}\u{5DD}").is_ok(),
            "RLM stays"
        );
    }

    #[test]
    fn the_rule_refuses_controls_and_noncharacters_and_names_them() {
        for (bad, named) in [
            ("a\u{1}b", "control character U+0001"),
            ("a\u{7f}", "control character U+007F"),
            ("a\u{85}", "control character U+0085"),
            ("\u{FFFE}", "noncharacter U+FFFE"),
            ("\u{FFFF}", "noncharacter U+FFFF"),
            ("\u{FDD0}", "noncharacter U+FDD0"),
            ("\u{1FFFF}", "noncharacter U+1FFFF"),
            ("\u{10FFFE}", "noncharacter U+10FFFE"),
        ] {
            let line = check_line("title", bad).unwrap_err();
            assert!(line.contains(named) && line.contains("title"), "{line}");
            assert!(check_text("summary", bad).unwrap_err().contains(named));
        }
        assert!(check_line("title", "two\nlines").is_err());
        assert!(check_line("title", "a\ttab").is_err());
        assert!(check_text("summary", "two\r\nlines\tand a tab").is_ok());
        for fine in [
            "Gerichtshof",
            "U+FFFD \u{FFFD}",
            "U+FDF0 \u{FDF0}",
            "😀 \u{E000}",
        ] {
            assert!(check_line("title", fine).is_ok(), "{fine}");
        }
    }

    #[test]
    fn clean_keeps_line_breaks_and_drops_what_the_rule_refuses() {
        assert_eq!(clean("a\u{0}b\u{FFFF}c\nd\te\u{1b}"), "abc\nd\te");
    }

    /// The characters XML 1.0 allows (its `Char` production).
    fn xml_char(c: char) -> bool {
        matches!(c as u32, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
    }

    proptest! {
        #[test]
        fn what_passes_is_xml_1_0(s in any::<String>()) {
            if check_text("text", &s).is_ok() {
                prop_assert!(s.chars().all(xml_char));
            }
            prop_assert!(clean(&s).chars().all(xml_char));
            prop_assert!(check_text("text", &clean(&s)).is_ok());
        }
    }
}
