/// The 50 states, the District of Columbia and the inhabited territories, by USPS code.
pub const US_STATES: &[(&str, &str)] = &[
    ("AL", "Alabama"),
    ("AK", "Alaska"),
    ("AZ", "Arizona"),
    ("AR", "Arkansas"),
    ("CA", "California"),
    ("CO", "Colorado"),
    ("CT", "Connecticut"),
    ("DE", "Delaware"),
    ("DC", "District of Columbia"),
    ("FL", "Florida"),
    ("GA", "Georgia"),
    ("HI", "Hawaii"),
    ("ID", "Idaho"),
    ("IL", "Illinois"),
    ("IN", "Indiana"),
    ("IA", "Iowa"),
    ("KS", "Kansas"),
    ("KY", "Kentucky"),
    ("LA", "Louisiana"),
    ("ME", "Maine"),
    ("MD", "Maryland"),
    ("MA", "Massachusetts"),
    ("MI", "Michigan"),
    ("MN", "Minnesota"),
    ("MS", "Mississippi"),
    ("MO", "Missouri"),
    ("MT", "Montana"),
    ("NE", "Nebraska"),
    ("NV", "Nevada"),
    ("NH", "New Hampshire"),
    ("NJ", "New Jersey"),
    ("NM", "New Mexico"),
    ("NY", "New York"),
    ("NC", "North Carolina"),
    ("ND", "North Dakota"),
    ("OH", "Ohio"),
    ("OK", "Oklahoma"),
    ("OR", "Oregon"),
    ("PA", "Pennsylvania"),
    ("RI", "Rhode Island"),
    ("SC", "South Carolina"),
    ("SD", "South Dakota"),
    ("TN", "Tennessee"),
    ("TX", "Texas"),
    ("UT", "Utah"),
    ("VT", "Vermont"),
    ("VA", "Virginia"),
    ("WA", "Washington"),
    ("WV", "West Virginia"),
    ("WI", "Wisconsin"),
    ("WY", "Wyoming"),
    ("AS", "American Samoa"),
    ("GU", "Guam"),
    ("MP", "Northern Mariana Islands"),
    ("PR", "Puerto Rico"),
    ("VI", "U.S. Virgin Islands"),
];

/// A US state, DC or territory, by its two-letter USPS code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsState(&'static str);

impl UsState {
    /// `Ok(None)` for an empty value; accepts the code in any case.
    pub fn parse(raw: &str) -> Result<Option<Self>, String> {
        let code = raw.trim().to_ascii_uppercase();
        if code.is_empty() {
            return Ok(None);
        }
        US_STATES
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(c, _)| Some(Self(c)))
            .ok_or_else(|| "Choose a US state, DC or territory from the list.".to_owned())
    }

    /// The state whose name (as in [`US_STATES`]) `raw` is, in any case and spacing: what a
    /// spreadsheet holds more often than the code. `None` for anything else.
    pub fn from_name(raw: &str) -> Option<Self> {
        let words = |s: &str| {
            s.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase()
        };
        let wanted = words(raw);
        US_STATES
            .iter()
            .find(|(_, name)| words(name) == wanted)
            .map(|(c, _)| Self(c))
    }

    pub fn code(self) -> &'static str {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_parse_in_any_case_and_blank_is_none() {
        assert_eq!(UsState::parse(" ny ").unwrap().unwrap().code(), "NY");
        assert_eq!(UsState::parse("").unwrap(), None);
        assert!(UsState::parse("XX").is_err());
        assert!(UsState::parse("New York").is_err());
        assert_eq!(US_STATES.len(), 56);
    }

    #[test]
    fn names_are_found_in_any_case_and_spacing() {
        assert_eq!(
            UsState::from_name(" new  YORK ").map(UsState::code),
            Some("NY")
        );
        assert_eq!(
            UsState::from_name("u.s. virgin islands").map(UsState::code),
            Some("VI")
        );
        assert_eq!(UsState::from_name("Calif."), None);
        assert_eq!(UsState::from_name("NY"), None);
    }
}
