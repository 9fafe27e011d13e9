//! A mail template's source (subject, text and HTML bodies) and its saved versions. What the
//! sources may hold is `mail`'s to check.

use chrono::{DateTime, Utc};

/// The three parts of one mail template, as handlebars source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailSource {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// One saved version. `source` is `None` for a version that stands for the shipped template.
#[derive(Debug, Clone)]
pub struct TemplateVersion {
    pub name: String,
    pub version: i32,
    pub source: Option<MailSource>,
    /// The version whose parts this one copies, for a revert to an earlier version.
    pub reverted_from: Option<i32>,
    pub saved_by: String,
    pub saved_at: DateTime<Utc>,
}
