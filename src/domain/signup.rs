use std::collections::BTreeMap;

use super::{EmailAddress, ListSlug, SubscriberName, UsState};

/// Most lists one sign-up may name.
pub const MAX_LISTS_PER_SIGNUP: usize = 50;

/// Where a sign-up came from; recorded in the consent log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignupSource {
    Form,
    Api,
    /// Asking to come back from an unsubscribe or preferences page.
    Link,
    /// An import by staff in the double opt-in mode.
    Import,
}

impl SignupSource {
    pub fn as_str(self) -> &'static str {
        match self {
            SignupSource::Form => "form",
            SignupSource::Api => "api",
            SignupSource::Link => "link",
            SignupSource::Import => "import",
        }
    }
}

/// A message per invalid field, keyed by the field's name in the form and in JSON.
pub type FieldErrors = BTreeMap<&'static str, String>;

/// The sign-up fields as received, before parsing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignupInput {
    pub email: String,
    pub name: String,
    pub lists: Vec<String>,
    /// Optional US state code: joins that state's public alliance lists too.
    pub state: String,
    /// The hidden field people do not see and bots fill in.
    pub honeypot: String,
}

/// A parsed sign-up: every field valid.
#[derive(Debug, Clone)]
pub struct SignupRequest {
    pub email: EmailAddress,
    pub name: Option<SubscriberName>,
    /// Empty: the default lists.
    pub lists: Vec<ListSlug>,
    pub state: Option<UsState>,
}

impl SignupInput {
    pub fn is_bot(&self) -> bool {
        !self.honeypot.trim().is_empty()
    }

    pub fn parse(&self) -> Result<SignupRequest, FieldErrors> {
        let mut errors = FieldErrors::new();
        let email = EmailAddress::parse(&self.email)
            .map_err(|e| errors.insert("email", e))
            .ok();
        let name = SubscriberName::parse(&self.name)
            .map_err(|e| errors.insert("name", e))
            .ok();
        let lists = self
            .parse_lists()
            .map_err(|e| errors.insert("lists", e))
            .ok();
        let state = UsState::parse(&self.state)
            .map_err(|e| errors.insert("state", e))
            .ok();
        match (email, name, lists, state) {
            (Some(email), Some(name), Some(lists), Some(state)) if errors.is_empty() => {
                Ok(SignupRequest {
                    email,
                    name,
                    lists,
                    state,
                })
            }
            _ => Err(errors),
        }
    }

    fn parse_lists(&self) -> Result<Vec<ListSlug>, String> {
        if self.lists.len() > MAX_LISTS_PER_SIGNUP {
            return Err(format!("Choose at most {MAX_LISTS_PER_SIGNUP} lists."));
        }
        let mut slugs = self
            .lists
            .iter()
            .map(|l| ListSlug::parse(l))
            .collect::<Result<Vec<_>, _>>()?;
        slugs.sort();
        slugs.dedup();
        Ok(slugs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(email: &str, name: &str, lists: &[&str]) -> SignupInput {
        SignupInput {
            email: email.into(),
            name: name.into(),
            lists: lists.iter().map(|s| s.to_string()).collect(),
            state: String::new(),
            honeypot: String::new(),
        }
    }

    #[test]
    fn a_valid_signup_parses_with_deduplicated_lists() {
        let r = input("a@example.org", "Ann", &["b", "a", "b"])
            .parse()
            .unwrap();
        assert_eq!(r.email.as_str(), "a@example.org");
        assert_eq!(r.name.unwrap().as_str(), "Ann");
        let lists: Vec<_> = r.lists.iter().map(|l| l.as_str()).collect();
        assert_eq!(lists, ["a", "b"]);
    }

    #[test]
    fn every_invalid_field_gets_its_own_message() {
        let errors = input("nope", "x\ny", &["Bad List"]).parse().unwrap_err();
        assert_eq!(
            errors.keys().copied().collect::<Vec<_>>(),
            ["email", "lists", "name"]
        );
    }

    #[test]
    fn the_honeypot_marks_a_bot() {
        let mut i = input("a@example.org", "", &[]);
        assert!(!i.is_bot());
        i.honeypot = "http://spam".into();
        assert!(i.is_bot());
    }
}
