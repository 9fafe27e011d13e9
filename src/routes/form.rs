//! Form bodies (`application/x-www-form-urlencoded`) read once, at the edge, the same way for
//! every public form: each value checked for what PostgreSQL and mail cannot hold (a NUL
//! character), each single-valued field given at most once. A field the form does not have is
//! ignored. Failures name the field, for a `422`.

use crate::domain::FieldErrors;

/// Whether a field holds one value or may repeat (`lists=a&lists=b`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arity {
    One,
    Many,
}

/// A form's fields, checked.
#[derive(Debug, Default)]
pub struct FormFields(Vec<(&'static str, String)>);

impl FormFields {
    /// Reads `body` for the form whose fields are `fields`. Invalid UTF-8 is replaced (U+FFFD),
    /// as browsers send UTF-8 and a damaged byte must not fail the request.
    ///
    /// # Errors
    /// A message per field that holds a NUL character, or that was given more than once while
    /// it holds one value.
    pub fn parse(body: &[u8], fields: &[(&'static str, Arity)]) -> Result<Self, FieldErrors> {
        let mut out = Vec::new();
        let mut errors = FieldErrors::new();
        for (key, value) in form_urlencoded::parse(body) {
            let Some(&(name, arity)) = fields.iter().find(|(name, _)| *name == key) else {
                continue;
            };
            if value.contains('\0') {
                errors.insert(
                    name,
                    format!("`{name}` contains a NUL character, which cannot be stored."),
                );
            } else if arity == Arity::One && out.iter().any(|(n, _)| *n == name) {
                errors.insert(name, format!("`{name}` was given more than once."));
            }
            out.push((name, value.into_owned()));
        }
        if errors.is_empty() {
            Ok(Self(out))
        } else {
            Err(errors)
        }
    }

    /// Reads `body` for a form whose fields are not listed one by one (the staff area's): any
    /// field is kept, and every field but those in `repeatable` holds one value.
    ///
    /// # Errors
    /// A sentence naming the first field that holds a NUL, or that was given more than once.
    pub fn parse_any(body: &[u8], repeatable: &[&str]) -> Result<Vec<(String, String)>, String> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (key, value) in form_urlencoded::parse(body) {
            let name = key.replace('\0', "\u{FFFD}");
            if key.contains('\0') || value.contains('\0') {
                return Err(format!(
                    "`{name}` contains a NUL character, which cannot be stored."
                ));
            }
            if !repeatable.contains(&name.as_str()) && out.iter().any(|(n, _)| *n == name) {
                return Err(format!("`{name}` was given more than once."));
            }
            out.push((name, value.into_owned()));
        }
        Ok(out)
    }

    /// The value of a single-valued field; empty when absent.
    pub fn one(&self, name: &str) -> String {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    /// Every value of a repeated field, in order.
    pub fn many(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: &[(&str, Arity)] = &[("email", Arity::One), ("lists", Arity::Many)];

    #[test]
    fn repeated_fields_collect_and_unknown_ones_are_ignored() {
        let f = FormFields::parse(b"email=a%40b.org&lists=x&other=1&lists=y", FIELDS).unwrap();
        assert_eq!(f.one("email"), "a@b.org");
        assert_eq!(f.many("lists"), ["x", "y"]);
        assert_eq!(f.one("other"), "");
    }

    #[test]
    fn a_single_valued_field_given_twice_is_refused_by_name() {
        let e = FormFields::parse(b"email=a%40b.org&email=c%40d.org", FIELDS).unwrap_err();
        assert!(e["email"].contains("more than once"));
    }

    #[test]
    fn a_nul_in_any_field_is_refused_by_name() {
        let e = FormFields::parse(b"email=a&lists=x%00y", FIELDS).unwrap_err();
        assert_eq!(e.keys().copied().collect::<Vec<_>>(), ["lists"]);
        assert!(FormFields::parse(b"other=%00", FIELDS).is_ok());
    }

    #[test]
    fn an_open_form_refuses_nul_and_repeats_except_where_allowed() {
        assert!(FormFields::parse_any(b"a=1&lists=x&lists=y", &["lists"]).is_ok());
        assert!(FormFields::parse_any(b"a=1&a=2", &["lists"])
            .unwrap_err()
            .contains("`a`"));
        assert!(FormFields::parse_any(b"b=x%00", &[])
            .unwrap_err()
            .contains("`b`"));
    }

    #[test]
    fn invalid_utf8_is_replaced_not_refused() {
        let f = FormFields::parse(b"email=%FF%FE", FIELDS).unwrap();
        assert_eq!(f.one("email"), "\u{FFFD}\u{FFFD}");
    }
}
