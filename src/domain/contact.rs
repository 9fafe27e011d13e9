//! A recipient as a mail needs them: address, name, link version, topics, lists.

use uuid::Uuid;

/// What the worker needs to address a mail.
#[derive(Debug, Clone)]
pub struct Contact {
    pub id: Uuid,
    pub email: String,
    pub name: Option<String>,
    pub status: String,
    pub link_version: i32,
    /// Chosen topics; None: every topic.
    pub topics: Option<Vec<String>>,
    /// Slugs of the lists the subscriber is confirmed on.
    pub lists: Vec<String>,
}

impl Contact {
    /// Still on at least one of `lists`.
    pub fn on_any(&self, lists: &[String]) -> bool {
        self.lists.iter().any(|l| lists.contains(l))
    }
}
