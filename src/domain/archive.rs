//! The address of a sent update in the public archive.

use chrono::NaiveDate;

/// Longest part of a slug taken from the subject, in characters.
const MAX_WORDS_LEN: usize = 60;

/// `YYYY-MM-DD-words-of-the-subject`: the date the update started sending, then the subject in
/// lower-case ASCII letters and digits (common accented Latin letters lose their accent, every
/// other character separates words), cut at a word boundary after at most 60 characters.
/// Always a valid path segment; two updates with one subject on one day get the same slug, so
/// the store makes the second one unique.
pub fn archive_slug(subject: &str, date: NaiveDate) -> String {
    let mut words = String::new();
    let mut pending_dash = false;
    for c in subject.chars().flat_map(char::to_lowercase) {
        match fold(c) {
            Some(c) => {
                if pending_dash && !words.is_empty() {
                    words.push('-');
                }
                pending_dash = false;
                words.push(c);
            }
            None => pending_dash = true,
        }
    }
    if words.len() > MAX_WORDS_LEN {
        let cut = words[..=MAX_WORDS_LEN].rfind('-').unwrap_or(MAX_WORDS_LEN);
        words.truncate(cut);
    }
    if words.is_empty() {
        words.push_str("update");
    }
    format!("{}-{words}", date.format("%Y-%m-%d"))
}

/// An ASCII letter or digit for `c`, or None when `c` separates words.
fn fold(c: char) -> Option<char> {
    if c.is_ascii_alphanumeric() {
        return Some(c);
    }
    let base = match c {
        'à'..='å' => 'a',
        'ç' => 'c',
        'è'..='ë' => 'e',
        'ì'..='ï' => 'i',
        'ñ' => 'n',
        'ò'..='ö' | 'ø' => 'o',
        'ù'..='ü' => 'u',
        'ý' | 'ÿ' => 'y',
        _ => return None,
    };
    Some(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()
    }

    #[test]
    fn a_slug_is_the_date_and_the_subject_in_plain_words() {
        assert_eq!(
            archive_slug("Senate hearing on the ICC!", day()),
            "2026-12-01-senate-hearing-on-the-icc"
        );
        assert_eq!(
            archive_slug("  Médecins — sans frontières ", day()),
            "2026-12-01-medecins-sans-frontieres"
        );
        assert_eq!(archive_slug("<script>", day()), "2026-12-01-script");
        assert_eq!(archive_slug("日本", day()), "2026-12-01-update");
    }

    #[test]
    fn a_long_subject_is_cut_at_a_word_boundary() {
        let slug = archive_slug(&"word ".repeat(40), day());
        assert!(slug.len() <= 11 + MAX_WORDS_LEN, "{slug}");
        assert!(slug.ends_with("-word"), "{slug}");
    }
}
