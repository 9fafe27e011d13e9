use std::fmt;

/// Longest address accepted, in octets (RFC 5321 forward-path limit less the brackets).
pub const MAX_ADDRESS_OCTETS: usize = 254;
/// Longest local part accepted, in octets (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL_PART_OCTETS: usize = 64;

/// An e-mail address as the person typed it (trimmed, domain lower-cased), plus the
/// normalized form that identifies a subscriber (local part lower-cased too).
#[derive(Clone, PartialEq, Eq)]
pub struct EmailAddress {
    as_typed: String,
    normalized: String,
}

impl EmailAddress {
    /// Parses with an RFC 5322 parser (the `email_address` crate), not a regex, then applies our
    /// limits: no display name, no IP literals, a dotted domain, and lettre must accept it too.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("Please enter your e-mail address.".into());
        }
        if trimmed.len() > MAX_ADDRESS_OCTETS {
            return Err(format!(
                "An e-mail address has at most {MAX_ADDRESS_OCTETS} characters."
            ));
        }
        if trimmed.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("An e-mail address cannot contain spaces or control characters.".into());
        }
        let options = email_address::Options {
            minimum_sub_domains: 2,
            allow_domain_literal: false,
            allow_display_text: false,
        };
        let parsed =
            email_address::EmailAddress::parse_with_options(trimmed, options).map_err(|_| {
                "This does not look like an e-mail address (name@example.org).".to_owned()
            })?;
        let local = parsed.local_part();
        if !local.is_ascii() {
            return Err(
                "The part before the @ must use plain letters, digits and . _ + - only.".into(),
            );
        }
        if local.len() > MAX_LOCAL_PART_OCTETS {
            return Err(format!(
                "The part before the @ has at most {MAX_LOCAL_PART_OCTETS} characters."
            ));
        }
        let domain = parsed.domain().to_lowercase();
        if domain
            .split('.')
            .any(|label| label.is_empty() || label.len() > 63)
        {
            return Err("The domain of this address is not valid.".into());
        }
        let as_typed = format!("{local}@{domain}");
        if as_typed.parse::<lettre::Address>().is_err() {
            return Err("This address cannot receive mail from us.".into());
        }
        let normalized = format!("{}@{domain}", local.to_lowercase());
        Ok(Self {
            as_typed,
            normalized,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.as_typed
    }

    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    pub fn domain(&self) -> &str {
        self.as_typed.rsplit_once('@').map_or("", |(_, d)| d)
    }
}

/// Addresses never appear whole in logs or debug output.
impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmailAddress(***@{})", self.domain())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_lowercases_the_domain_but_keeps_the_local_part() {
        let a = EmailAddress::parse("  Jane.Doe@Example.ORG \n").unwrap();
        assert_eq!(a.as_str(), "Jane.Doe@example.org");
        assert_eq!(a.normalized(), "jane.doe@example.org");
    }

    #[test]
    fn accepts_plus_tags_and_subdomains() {
        assert!(EmailAddress::parse("a+news@mail.example.co.uk").is_ok());
    }

    #[test]
    fn rejects_what_is_not_a_plain_address() {
        for bad in [
            "",
            "plainaddress",
            "@example.org",
            "a@",
            "a@localhost",
            "a@@example.org",
            "a b@example.org",
            "Jane <jane@example.org>",
            "a@[127.0.0.1]",
            "a@example..org",
            "a@example.org\r\nBcc: x@example.org",
            "a@-example.org",
            "ü@example.org",
            "a\u{202e}b@example.org",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn accepts_an_internationalized_domain() {
        assert_eq!(
            EmailAddress::parse("a@Bücher.example").unwrap().domain(),
            "bücher.example"
        );
    }

    #[test]
    fn enforces_octet_limits() {
        let local = "a".repeat(65);
        assert!(EmailAddress::parse(&format!("{local}@example.org")).is_err());
        let ok_local = "a".repeat(64);
        assert!(EmailAddress::parse(&format!("{ok_local}@example.org")).is_ok());
        let long_domain = format!("{}.org", vec!["b".repeat(60); 5].join("."));
        assert!(EmailAddress::parse(&format!("a@{long_domain}")).is_err());
    }

    #[test]
    fn debug_output_hides_the_local_part() {
        let a = EmailAddress::parse("secret.person@example.org").unwrap();
        assert!(!format!("{a:?}").contains("secret"));
    }
}
