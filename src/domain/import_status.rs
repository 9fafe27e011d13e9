//! The `status` column of an import file: what the file says of each person. Our own export
//! writes the statuses a subscriber has here; `erased` stands for someone another service
//! erased, whom only the suppression list remembers.

/// A person's status as an import file gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportStatus {
    /// Also an empty cell: staff attest to the consent.
    Confirmed,
    /// Signed up and never confirmed: kept pending, mailed only in the opt-in mode.
    Pending,
    /// Stopped reading and did not answer list hygiene's question (our own export writes it):
    /// kept `lapsed`, not mailed and not suppressed; a lapsed person here stays so.
    Lapsed,
    Unsubscribed,
    Bounced,
    Complained,
    Erased,
}

/// The statuses a `status` cell may hold, as its error message lists them.
pub const IMPORT_STATUSES: &str =
    "confirmed, pending, lapsed, unsubscribed, bounced, complained or erased";

impl ImportStatus {
    /// One of [`IMPORT_STATUSES`] in any case, or an empty cell (confirmed); `None` for anything
    /// else (the caller words the error with the column and the value).
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw.trim().to_ascii_lowercase().as_str() {
            "" | "confirmed" => Self::Confirmed,
            "pending" => Self::Pending,
            "lapsed" => Self::Lapsed,
            "unsubscribed" => Self::Unsubscribed,
            "bounced" => Self::Bounced,
            "complained" => Self::Complained,
            "erased" => Self::Erased,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirmed => "confirmed",
            Self::Pending => "pending",
            Self::Lapsed => "lapsed",
            Self::Unsubscribed => "unsubscribed",
            Self::Bounced => "bounced",
            Self::Complained => "complained",
            Self::Erased => "erased",
        }
    }

    /// Whether the file says the person left (or never was to be mailed): such a row never
    /// subscribes anyone and puts the address on the suppression list.
    pub fn is_out(self) -> bool {
        !matches!(self, Self::Confirmed | Self::Pending | Self::Lapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_and_blank_is_confirmed() {
        for s in [
            ImportStatus::Confirmed,
            ImportStatus::Pending,
            ImportStatus::Lapsed,
            ImportStatus::Unsubscribed,
            ImportStatus::Bounced,
            ImportStatus::Complained,
            ImportStatus::Erased,
        ] {
            assert_eq!(ImportStatus::parse(&s.as_str().to_uppercase()), Some(s));
            assert!(IMPORT_STATUSES.contains(s.as_str()));
        }
        assert_eq!(ImportStatus::parse(" "), Some(ImportStatus::Confirmed));
        assert_eq!(ImportStatus::parse("active"), None);
    }
}
