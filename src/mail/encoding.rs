//! Content-Transfer-Encoding of mail bodies (RFC 2045 §6): the encoding lettre's `Body::new`
//! chooses and the very bytes it gives, made with less work.
//!
//! lettre turns a text into CRLF lines by inserting each `\r` into the string where it goes
//! (a copy of the rest of the text per line: measured at 4 % of the sending process's CPU for
//! 12 KB mails) and quoted-printable-encodes the whole text for every mail. Here the CRLF pass
//! is one copy, and a [`Lines`] (a body part of a stencil) keeps the encoding of each line that
//! is the same for every recipient, so per mail only the lines with a personal field are
//! encoded. Quoted-printable encoding is line by line (each CRLF in the text is a hard line
//! break that resets the line length; RFC 2045 §6.7 rules 4 and 5), which makes encoding the
//! lines apart and joining them with CRLF the same as encoding the whole.
//!
//! The choice of encoding and the encoders are lettre's own crates (`email-encoding`,
//! `quoted_printable`); the tests hold the output to `Body::new`'s byte for byte.

use email_encoding::body::Encoding;
use lettre::message::header::ContentTransferEncoding;
use lettre::message::Body;

use super::stencil::{join, Piece};

/// `text` encoded as lettre's `Body::new(text)` encodes it: 7bit when it is ASCII with short
/// lines, else quoted-printable unless more than a third of it would need escaping (then
/// base64, left to lettre).
pub fn body(text: &str) -> Body {
    encoded(text, Encoding::choose(text, false))
}

fn encoded(text: &str, choice: Encoding) -> Body {
    match choice {
        Encoding::SevenBit => {
            Body::dangerous_pre_encoded(crlf(text), ContentTransferEncoding::SevenBit)
        }
        Encoding::QuotedPrintable => Body::dangerous_pre_encoded(
            quoted_printable::encode(crlf(text)),
            ContentTransferEncoding::QuotedPrintable,
        ),
        _ => Body::new(text.to_owned()),
    }
}

/// `text` with CRLF line endings: a `\r` before each `\n` that has none (as lettre's
/// `in_place_crlf_line_endings`, in one pass).
fn crlf(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 16);
    let mut lines = text.split('\n').peekable();
    while let Some(line) = lines.next() {
        out.extend_from_slice(line.as_bytes());
        if lines.peek().is_some() {
            if !line.ends_with('\r') {
                out.push(b'\r');
            }
            out.push(b'\n');
        }
    }
    out
}

/// One line of a body part, without its `\n`.
#[derive(Debug)]
enum Line {
    /// The same for everyone: its quoted-printable encoding.
    Fixed(Vec<u8>),
    /// With a personal field: encoded per mail.
    Holed(Vec<Piece>),
}

/// A body part with holes (its pieces), cut into lines, the lines without a hole encoded once.
#[derive(Debug)]
pub struct Lines {
    pieces: Vec<Piece>,
    lines: Vec<Line>,
}

/// The content of a line that a `\n` ends, as quoted-printable sees it: its `\r`, if any, is
/// the CR of the CRLF.
fn content(line: &[u8], last: bool) -> &[u8] {
    match line.strip_suffix(b"\r") {
        Some(before) if !last => before,
        _ => line,
    }
}

impl Lines {
    pub fn new(pieces: Vec<Piece>) -> Self {
        // Pieces per line: a literal is split at each `\n`; a field stays on its line.
        let mut cut: Vec<Vec<Piece>> = vec![Vec::new()];
        for piece in &pieces {
            match piece {
                Piece::Literal(text) => {
                    let mut parts = text.split('\n');
                    if let Some(first) = parts.next().filter(|s| !s.is_empty()) {
                        push_literal(cut.last_mut().expect("one line at least"), first);
                    }
                    for part in parts {
                        cut.push(Vec::new());
                        if !part.is_empty() {
                            push_literal(cut.last_mut().expect("just pushed"), part);
                        }
                    }
                }
                Piece::Field(i) => cut
                    .last_mut()
                    .expect("one line at least")
                    .push(Piece::Field(*i)),
            }
        }
        let count = cut.len();
        let lines = cut
            .into_iter()
            .enumerate()
            .map(|(n, line)| {
                if line.iter().any(|p| matches!(p, Piece::Field(_))) {
                    Line::Holed(line)
                } else {
                    let text = join(&line, &[], false);
                    Line::Fixed(quoted_printable::encode(content(
                        text.as_bytes(),
                        n + 1 == count,
                    )))
                }
            })
            .collect();
        Self { pieces, lines }
    }

    /// The pieces, as given.
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// The part for one recipient (`values[i]` where field `i` goes, HTML-escaped when
    /// `escape`), encoded as [`body`] encodes the filled text.
    pub fn body(&self, values: &[&str], escape: bool) -> Body {
        let text = join(&self.pieces, values, escape);
        let choice = Encoding::choose(text.as_str(), false);
        // A value with a line break would move the lines; then the whole text is encoded.
        if choice != Encoding::QuotedPrintable || values.iter().any(|v| v.contains('\n')) {
            return encoded(&text, choice);
        }
        let mut out = Vec::with_capacity(text.len() + text.len() / 8);
        let count = self.lines.len();
        for (n, line) in self.lines.iter().enumerate() {
            if n > 0 {
                out.extend_from_slice(b"\r\n");
            }
            match line {
                Line::Fixed(encoded) => out.extend_from_slice(encoded),
                Line::Holed(pieces) => {
                    let filled = join(pieces, values, escape);
                    out.extend(quoted_printable::encode(content(
                        filled.as_bytes(),
                        n + 1 == count,
                    )));
                }
            }
        }
        Body::dangerous_pre_encoded(out, ContentTransferEncoding::QuotedPrintable)
    }
}

fn push_literal(line: &mut Vec<Piece>, text: &str) {
    line.push(Piece::Literal(text.to_owned()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lettre(text: &str) -> (ContentTransferEncoding, Vec<u8>) {
        let b = Body::new(text.to_owned());
        (b.encoding(), b.into_vec())
    }

    fn ours(b: Body) -> (ContentTransferEncoding, Vec<u8>) {
        (b.encoding(), b.into_vec())
    }

    /// Text of short and long lines, spaces and tabs before line ends, lone and paired CRs,
    /// `=`, and characters from one to four bytes, in proportions that give each encoding.
    fn mail_text() -> impl Strategy<Value = String> {
        let atom = prop_oneof![
            8 => "[a-z]{1,90}",
            2 => Just(" ".to_owned()),
            1 => Just("\t".to_owned()),
            2 => Just("\n".to_owned()),
            1 => Just("\r\n".to_owned()),
            1 => Just("\r".to_owned()),
            1 => Just("=".to_owned()),
            1 => Just("é".to_owned()),
            1 => Just("–".to_owned()),
            1 => Just("😀".to_owned()),
        ];
        prop::collection::vec(atom, 0..60).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn a_body_is_what_lettre_makes_of_the_text(text in mail_text()) {
            prop_assert_eq!(ours(body(&text)), lettre(&text));
        }

        #[test]
        fn a_part_with_holes_is_what_lettre_makes_of_the_filled_text(
            parts in prop::collection::vec(mail_text(), 1..6),
            values in prop::collection::vec(mail_text(), 2),
            escape in any::<bool>(),
        ) {
            // Literals between fields 0 and 1, in turn.
            let mut pieces = Vec::new();
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    pieces.push(Piece::Field(i % 2));
                }
                if !part.is_empty() {
                    pieces.push(Piece::Literal(part.clone()));
                }
            }
            let lines = Lines::new(pieces);
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            let filled = join(lines.pieces(), &values, escape);
            prop_assert_eq!(ours(lines.body(&values, escape)), lettre(&filled));
        }
    }

    #[test]
    fn the_three_encodings_are_all_met() {
        let seven = "Hello\nworld\n";
        let quoted = format!("{}\n–\n", "a".repeat(100));
        let base64 = "ééééééééé";
        for (text, want) in [
            (seven, ContentTransferEncoding::SevenBit),
            (quoted.as_str(), ContentTransferEncoding::QuotedPrintable),
            (base64, ContentTransferEncoding::Base64),
        ] {
            assert_eq!(ours(body(text)), lettre(text));
            assert_eq!(body(text).encoding(), want, "{text:?}");
        }
    }

    #[test]
    fn lines_without_a_field_are_encoded_once() {
        let lines = Lines::new(vec![
            Piece::Literal("Dear ".into()),
            Piece::Field(0),
            Piece::Literal(",\nthe same for all – \n".into()),
        ]);
        assert!(matches!(lines.lines[0], Line::Holed(_)));
        assert!(matches!(&lines.lines[1], Line::Fixed(q) if q == b"the same for all =E2=80=93=20"));
        assert!(matches!(&lines.lines[2], Line::Fixed(q) if q.is_empty()));
        assert_eq!(lines.lines.len(), 3);
    }
}
