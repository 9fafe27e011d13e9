//! Operations staff perform, one file per subject, and those visitors and subscribers perform
//! on the public pages (`signups`, `preferences`). The admin pages, the JSON API and the
//! command line all call these: each rule ("only an admin sends", "a second admin approves")
//! is written once, here. They take parsed input and a pool and return domain results or a
//! typed error; nothing here knows of HTTP or the terminal.
//!
//! This is the doors' only way to the database: no file under `routes/` or `cli` names
//! `store` (`tests/architecture.rs`). A read or a record type with no rule of its own is
//! `store`'s, re-exported (`pub use`) by the module of its subject.

pub mod api_tokens;
pub mod archive;
pub mod audit;
pub mod bounces;
pub mod bulk;
pub mod digests;
pub mod engagement;
pub mod feeds;
pub mod health;
pub mod hygiene;
pub mod idempotency;
pub mod imports;
pub mod link_check;
pub mod lists;
pub mod look;
pub mod news;
pub mod oidc;
pub mod passkeys;
pub mod preferences;
pub mod roles;
pub mod second_factor;
pub mod secret_key;
pub mod signups;
pub mod staff;
pub mod subscribers;
pub mod templates;
pub mod updates;

use uuid::Uuid;

use crate::domain::{StaffRole, TokenScope};
use roles::Rights;

/// Who asks for an operation. A member of staff acts with their role, an API token with its
/// scope (`send`: an admin's rights, `write`: an editor's, `read`: reading only); the command
/// line acts with an admin's rights (whoever runs it runs the service), and so does a digest
/// schedule in `send` mode (only an admin's rights can make one). What each may do is
/// [`roles`]'s matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Staff {
        id: Uuid,
        role: StaffRole,
        email: String,
    },
    ApiToken {
        id: Uuid,
        scope: TokenScope,
    },
    CommandLine,
    /// The worker, firing a digest schedule that an admin or the API set up.
    DigestSchedule(Uuid),
    /// The worker's scheduler, deciding by a rule staff set (an update held for approval when
    /// its audience grew past the threshold). Never has an admin's rights.
    Scheduler,
}

impl Actor {
    /// What this actor may do.
    pub fn rights(&self) -> Rights {
        match self {
            Actor::Staff {
                role: StaffRole::Admin,
                ..
            }
            | Actor::ApiToken {
                scope: TokenScope::Send,
                ..
            }
            | Actor::CommandLine
            | Actor::DigestSchedule(_) => Rights::Admin,
            Actor::Staff {
                role: StaffRole::Editor,
                ..
            }
            | Actor::ApiToken {
                scope: TokenScope::Write,
                ..
            }
            | Actor::Scheduler => Rights::Editor,
            Actor::ApiToken {
                scope: TokenScope::Read,
                ..
            } => Rights::Read,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.rights() == Rights::Admin
    }

    /// Who did it, as records keep it ("added by").
    pub fn label(&self) -> String {
        match self {
            Actor::Staff { email, .. } => email.clone(),
            Actor::ApiToken { id, .. } => format!("API token {id}"),
            Actor::CommandLine => "command line".into(),
            Actor::DigestSchedule(id) => format!("digest schedule {id}"),
            Actor::Scheduler => "scheduler".into(),
        }
    }

    /// The member of staff, if a person signed in is asking.
    pub fn staff_id(&self) -> Option<Uuid> {
        match self {
            Actor::Staff { id, .. } => Some(*id),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_admins_send_tokens_and_the_command_line_have_an_admins_rights() {
        let staff = |role| Actor::Staff {
            id: Uuid::nil(),
            role,
            email: "a@example.org".into(),
        };
        let token = |scope| Actor::ApiToken {
            id: Uuid::nil(),
            scope,
        };
        assert!(staff(StaffRole::Admin).is_admin());
        assert!(!staff(StaffRole::Editor).is_admin());
        assert!(token(TokenScope::Send).is_admin());
        assert!(!token(TokenScope::Write).is_admin());
        assert!(!token(TokenScope::Read).is_admin());
        assert!(Actor::CommandLine.is_admin());
        assert_eq!(Actor::CommandLine.staff_id(), None);
        assert_eq!(staff(StaffRole::Editor).label(), "a@example.org");
    }
}
