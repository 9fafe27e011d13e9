use std::fmt;

/// Longest address accepted, in octets (RFC 5321 forward-path limit less the brackets).
pub const MAX_ADDRESS_OCTETS: usize = 254;
/// Longest local part accepted, in octets (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL_PART_OCTETS: usize = 64;

/// An e-mail address in the one form this service sends to and identifies people by.
///
/// Two spellings of one mailbox give one `canonical()` form (RFC 5321/5322, RFC 5891, UTS #46):
/// - the domain goes through UTS #46 mapping (Unicode compatibility forms folded, case folded)
///   to its A-label (`bücher.example`, `BÜCHER.example` and `xn--bcher-kva.example` are one);
/// - a quoted local part whose content is a dot-atom is the same mailbox as that dot-atom
///   (`"ann.doe"@example.org` is `ann.doe@example.org`); any other quoted local part is refused,
///   since no relay or mail client we send through handles it reliably;
/// - the local part is lower-cased (providers treat it case-insensitively, RFC 5321 notwithstanding).
///
/// `as_str()` is what goes on the wire (envelope and `To`): the local part with its case kept and
/// the A-label domain, so a relay without SMTPUTF8 accepts it. Uniqueness, suppression, imports
/// and the erasure hash all use `canonical()`.
#[derive(Clone, PartialEq, Eq)]
pub struct EmailAddress {
    as_sent: String,
    canonical: String,
}

/// Characters of an RFC 5322 `atext` besides letters and digits.
const ATEXT_SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~";

/// Whether `local` is an RFC 5322 dot-atom: atext runs separated by single dots.
fn is_dot_atom(local: &str) -> bool {
    !local.is_empty()
        && local.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ATEXT_SPECIALS.contains(c))
        })
}

/// The content of a quoted local part with its quoted-pairs (`\x`) resolved, or `None` when
/// `local` is not quoted.
fn unquote(local: &str) -> Option<String> {
    let inner = local.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' { chars.next()? } else { c });
    }
    Some(out)
}

impl EmailAddress {
    /// Parses with an RFC 5322 parser (the `email_address` crate), not a regex, then brings the
    /// address to its canonical form and applies our limits: no display name, no IP literals, a
    /// dotted domain of letters, digits and hyphens (after IDNA), an ASCII dot-atom local part
    /// of at most 64 octets, at most 254 octets in all, and lettre must accept it too.
    ///
    /// # Errors
    /// A sentence for the person who typed it, saying what is wrong.
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
        let local = match unquote(parsed.local_part()) {
            Some(inner) if is_dot_atom(&inner) => inner,
            Some(_) => {
                return Err(
                    "We cannot send to a quoted part before the @ that holds spaces, commas, \
                     double dots or other special characters: please use another address."
                        .into(),
                )
            }
            None => parsed.local_part().to_owned(),
        };
        if !local.is_ascii() {
            return Err(
                "The part before the @ must use plain letters, digits and . _ + - only.".into(),
            );
        }
        if !is_dot_atom(&local) {
            return Err("The part before the @ is not valid (two dots in a row?).".into());
        }
        if local.len() > MAX_LOCAL_PART_OCTETS {
            return Err(format!(
                "The part before the @ has at most {MAX_LOCAL_PART_OCTETS} characters."
            ));
        }
        let domain = idna::domain_to_ascii_strict(parsed.domain())
            .map_err(|_| "The domain of this address is not valid.".to_owned())?;
        if domain.split('.').count() < 2
            || domain
                .split('.')
                .any(|label| label.is_empty() || label.len() > 63)
        {
            return Err("The domain of this address is not valid.".into());
        }
        let as_sent = format!("{local}@{domain}");
        if as_sent.len() > MAX_ADDRESS_OCTETS {
            return Err(format!(
                "An e-mail address has at most {MAX_ADDRESS_OCTETS} characters."
            ));
        }
        if as_sent.parse::<lettre::Address>().is_err() {
            return Err("This address cannot receive mail from us.".into());
        }
        let canonical = format!("{}@{domain}", local.to_ascii_lowercase());
        Ok(Self { as_sent, canonical })
    }

    /// The address as it goes on the wire: the local part as typed (unquoted), the A-label domain.
    pub fn as_str(&self) -> &str {
        &self.as_sent
    }

    /// The one form of this mailbox: what identifies a subscriber and what suppression hashes.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// The domain as an A-label (ASCII, lower case).
    pub fn domain(&self) -> &str {
        self.as_sent.rsplit_once('@').map_or("", |(_, d)| d)
    }

    /// Every form under which this mailbox may have been put on the suppression list: the
    /// canonical form first, then the spellings that releases before the canonical form stored
    /// (the domain as its Unicode U-label, the local part in double quotes). Their SHA-256 hashes
    /// are what an erasure left; none of them is a different mailbox.
    pub fn suppression_keys(&self) -> Vec<String> {
        let (local, domain) = self
            .canonical
            .rsplit_once('@')
            .expect("a canonical address has an @");
        let (unicode, _) = idna::domain_to_unicode(domain);
        let mut keys = vec![self.canonical.clone()];
        for d in [domain, unicode.as_str()] {
            for l in [local.to_owned(), format!("\"{local}\"")] {
                let key = format!("{l}@{d}");
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
        }
        keys
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
        assert_eq!(a.canonical(), "jane.doe@example.org");
    }

    #[test]
    fn one_mailbox_has_one_canonical_form_whatever_its_spelling() {
        for (a, b) in [
            ("ida@bücher.example", "ida@xn--bcher-kva.example"),
            ("ida@BÜCHER.example", "IDA@xn--bcher-kva.EXAMPLE"),
            ("ida@ｂücher.example", "ida@bücher.example"),
            ("Ann.Doe@example.org", "\"ann.doe\"@example.org"),
            ("\"a\\+b\"@example.org", "a+b@example.org"),
        ] {
            let (a, b) = (
                EmailAddress::parse(a).unwrap(),
                EmailAddress::parse(b).unwrap(),
            );
            assert_eq!(a.canonical(), b.canonical());
        }
    }

    #[test]
    fn the_envelope_form_has_the_a_label_and_no_quotes() {
        let a = EmailAddress::parse("Idn5@Bücher.example").unwrap();
        assert_eq!(a.as_str(), "Idn5@xn--bcher-kva.example");
        assert_eq!(a.domain(), "xn--bcher-kva.example");
        let q = EmailAddress::parse("\"Ann.Doe\"@example.org").unwrap();
        assert_eq!(q.as_str(), "Ann.Doe@example.org");
    }

    #[test]
    fn suppression_keys_cover_the_spellings_earlier_releases_hashed() {
        let keys = EmailAddress::parse("ida@xn--bcher-kva.example")
            .unwrap()
            .suppression_keys();
        assert_eq!(keys[0], "ida@xn--bcher-kva.example");
        assert!(keys.contains(&"ida@bücher.example".to_owned()));
        assert!(keys.contains(&"\"ida\"@bücher.example".to_owned()));
        assert_eq!(
            EmailAddress::parse("a@example.org")
                .unwrap()
                .suppression_keys(),
            ["a@example.org", "\"a\"@example.org"]
        );
    }

    #[test]
    fn quoted_local_parts_that_are_no_dot_atom_are_refused() {
        for bad in [
            "\"a,b\"@example.org",
            "\"john..doe\"@example.org",
            "\"a b\"@example.org",
            "\".a\"@example.org",
            "\"\"@example.org",
            "\"a@b\"@example.org",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "accepted {bad:?}");
        }
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
            "xn--bcher-kva.example"
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
