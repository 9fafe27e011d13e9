//! What an API token may do, and what staff call it. The secret itself is a [`super::Token`].

/// Longest token name.
pub const MAX_TOKEN_NAME: usize = 100;
/// Longest lifetime a token can be given, in days (ten years).
pub const MAX_TOKEN_DAYS: u32 = 3_650;

/// A token's scope: `read` only reads (GET), `write` has an editor's rights (composes, never
/// sends, schedules, approves or changes staff, templates, lists or people), `send` an admin's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenScope {
    Read,
    Write,
    Send,
}

impl TokenScope {
    pub const ALL: [TokenScope; 3] = [Self::Read, Self::Write, Self::Send];

    /// # Errors
    /// A sentence naming the scopes there are.
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim() {
            "read" => Ok(Self::Read),
            "write" => Ok(Self::Write),
            "send" => Ok(Self::Send),
            other => Err(format!("{other:?} is not a scope: read, write or send.")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Send => "send",
        }
    }
}

/// A token's name as staff give it: 1 to 100 characters on one line, no noncharacters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenName(String);

impl TokenName {
    /// # Errors
    /// A sentence saying what a name must be.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let name = raw.trim();
        if name.is_empty()
            || name.chars().count() > MAX_TOKEN_NAME
            || super::text::check_line("name", name).is_err()
        {
            return Err(format!(
                "A token's name has 1 to {MAX_TOKEN_NAME} characters, on one line."
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_read_back_as_written_and_others_are_refused() {
        for scope in TokenScope::ALL {
            assert_eq!(TokenScope::parse(scope.as_str()), Ok(scope));
        }
        assert!(TokenScope::parse("admin").is_err());
        assert!(TokenScope::parse("").is_err());
    }

    #[test]
    fn a_name_is_one_short_line() {
        assert_eq!(
            TokenName::parse("  CI deploys ").unwrap().as_str(),
            "CI deploys"
        );
        for bad in [
            "",
            "   ",
            "two\nlines",
            "nul\0",
            "\u{FDD0}",
            &"x".repeat(101),
        ] {
            assert!(TokenName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
