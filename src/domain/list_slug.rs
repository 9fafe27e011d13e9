/// A list's slug: 1 to 63 of `a-z`, `0-9` and `-`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListSlug(String);

impl ListSlug {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        let valid = !s.is_empty()
            && s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !s.starts_with('-');
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!("{:?} is not a list name.", truncate(s, 40)))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_lowercase_slugs() {
        assert_eq!(
            ListSlug::parse("us-icc-updates").unwrap().as_str(),
            "us-icc-updates"
        );
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "",
            "-x",
            "Upper",
            "a b",
            "a/b",
            "x'; drop table lists;--",
            &"a".repeat(64),
        ] {
            assert!(ListSlug::parse(bad).is_err(), "{bad:?}");
        }
    }
}
