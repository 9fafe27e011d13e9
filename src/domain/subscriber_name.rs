/// Longest name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// An optional display name: trimmed, at most 100 characters, the character rule for a line
/// (`domain::text`: no control characters, so no CR/LF can reach a header; no noncharacters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberName(String);

impl SubscriberName {
    /// `Ok(None)` for an empty or blank name.
    pub fn parse(raw: &str) -> Result<Option<Self>, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        if trimmed.chars().count() > MAX_NAME_CHARS {
            return Err(format!("A name has at most {MAX_NAME_CHARS} characters."));
        }
        super::text::check_line("name", trimmed)?;
        Ok(Some(Self(trimmed.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_is_no_name() {
        assert_eq!(SubscriberName::parse("   ").unwrap(), None);
    }

    #[test]
    fn keeps_unicode_and_counts_characters_not_bytes() {
        let name = "é".repeat(100);
        assert_eq!(
            SubscriberName::parse(&name).unwrap().unwrap().as_str(),
            name
        );
        assert!(SubscriberName::parse(&"é".repeat(101)).is_err());
    }

    #[test]
    fn rejects_control_characters() {
        for bad in [
            "a\r\nBcc: x",
            "a\u{0}b",
            "tab\there",
            "bell\u{7}",
            "non\u{FFFF}",
            "non\u{FFFE}",
        ] {
            assert!(SubscriberName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
