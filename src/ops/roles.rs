//! The role matrix: which rights each operation needs, checked first by the operation itself
//! (before it reads anything else of its input), whichever door it came through. README's
//! table "Who may do what" is this list; a test holds them together.
//!
//! Rights come in three levels ([`Rights`]): reading (an API token of scope `read`), an
//! editor's (an editor, a `write` token, the worker's scheduler) and an admin's (an admin, a
//! `send` token, the command line, a digest schedule set up by one of them).

use super::Actor;

/// What an actor may do, from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rights {
    /// Reads only.
    Read,
    /// Collects and edits news, follows untrusted feeds, composes drafts and digests for
    /// review, sends test mails, asks for approval.
    Editor,
    /// Everything that changes who gets mail or what every mail carries.
    Admin,
}

/// An operation that changes something, as README's role matrix names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    SubscriberAdd,
    SubscriberEdit,
    SubscriberUnsubscribe,
    SubscriberErase,
    SubscriberExport,
    SubscriberImport,
    ListChange,
    FeedFollow,
    FeedTrust,
    News,
    UpdateCompose,
    UpdateTest,
    UpdateRequestApproval,
    UpdateApprove,
    UpdateSend,
    UpdateArchive,
    DigestReview,
    DigestSend,
    TemplateChange,
    LookChange,
    StaffManage,
    TokenManage,
}

impl Operation {
    pub const ALL: [Operation; 22] = [
        Self::SubscriberAdd,
        Self::SubscriberEdit,
        Self::SubscriberUnsubscribe,
        Self::SubscriberErase,
        Self::SubscriberExport,
        Self::SubscriberImport,
        Self::ListChange,
        Self::FeedFollow,
        Self::FeedTrust,
        Self::News,
        Self::UpdateCompose,
        Self::UpdateTest,
        Self::UpdateRequestApproval,
        Self::UpdateApprove,
        Self::UpdateSend,
        Self::UpdateArchive,
        Self::DigestReview,
        Self::DigestSend,
        Self::TemplateChange,
        Self::LookChange,
        Self::StaffManage,
        Self::TokenManage,
    ];

    /// The rights it takes.
    pub fn needs(self) -> Rights {
        match self {
            Self::FeedFollow
            | Self::News
            | Self::UpdateCompose
            | Self::UpdateTest
            | Self::UpdateRequestApproval
            | Self::DigestReview => Rights::Editor,
            Self::SubscriberAdd
            | Self::SubscriberEdit
            | Self::SubscriberUnsubscribe
            | Self::SubscriberErase
            | Self::SubscriberExport
            | Self::SubscriberImport
            | Self::ListChange
            | Self::FeedTrust
            | Self::UpdateApprove
            | Self::UpdateSend
            | Self::UpdateArchive
            | Self::DigestSend
            | Self::TemplateChange
            | Self::LookChange
            | Self::StaffManage
            | Self::TokenManage => Rights::Admin,
        }
    }

    /// Its row in README's matrix.
    pub fn label(self) -> &'static str {
        match self {
            Self::SubscriberAdd => "Subscribers: add one as confirmed",
            Self::SubscriberEdit => "Subscribers: edit (name, state, lists)",
            Self::SubscriberUnsubscribe => "Subscribers: unsubscribe",
            Self::SubscriberErase => "Subscribers: erase",
            Self::SubscriberExport => "Subscribers: export",
            Self::SubscriberImport => "Subscribers: import (as confirmed or by opt-in)",
            Self::ListChange => "Lists: create, edit, archive, reopen",
            Self::FeedFollow => "Feeds: follow, change, pause or remove an untrusted feed",
            Self::FeedTrust => "Feeds: trust a feed, or change, pause or remove a trusted one",
            Self::News => "News desk: add, edit, approve, delete items",
            Self::UpdateCompose => "Updates: compose and edit drafts, preview",
            Self::UpdateTest => "Updates: send a test mail (within the hourly limit)",
            Self::UpdateRequestApproval => {
                "Updates: request approval (and withdraw one's own request)"
            }
            Self::UpdateApprove => "Updates: approve (a second admin)",
            Self::UpdateSend => {
                "Updates: send, schedule, unschedule, pause, resume, cancel, retry failed mails"
            }
            Self::UpdateArchive => "Updates: put in or leave out of the public archive",
            Self::DigestReview => "Digests: set up, change, delete a schedule in review mode",
            Self::DigestSend => "Digests: set up, change, delete a schedule in send mode",
            Self::TemplateChange => "Mail templates: save, revert",
            Self::LookChange => "The look of the mails: logo, colour, footer, social links",
            Self::StaffManage => "Staff: list, add, reset a password or a second factor, remove",
            Self::TokenManage => "API tokens: list, create, revoke",
        }
    }

    /// What a refusal says may not be done ("Only an admin may …").
    fn phrase(self) -> &'static str {
        match self {
            Self::SubscriberAdd => "add subscribers",
            Self::SubscriberEdit => "edit a subscriber",
            Self::SubscriberUnsubscribe => "unsubscribe someone",
            Self::SubscriberErase => "erase a subscriber",
            Self::SubscriberExport => "export subscribers",
            Self::SubscriberImport => "import subscribers",
            Self::ListChange => "create, edit, archive or reopen a list",
            Self::FeedFollow => "follow feeds",
            Self::FeedTrust => "trust a feed or change a trusted one",
            Self::News => "change the news desk",
            Self::UpdateCompose => "compose updates",
            Self::UpdateTest => "send test mails",
            Self::UpdateRequestApproval => "ask for approval",
            Self::UpdateApprove => "approve an update",
            Self::UpdateSend => "send, schedule, pause, resume, cancel or unschedule an update",
            Self::UpdateArchive => "put an update in the archive or leave it out",
            Self::DigestReview => "set up digests",
            Self::DigestSend => "set up or change a digest that is sent without review",
            Self::TemplateChange => "change mail templates",
            Self::LookChange => "change the look of the mails",
            Self::StaffManage => "manage staff accounts",
            Self::TokenManage => "manage API tokens",
        }
    }
}

/// A refusal by role: the operation needs more rights than the actor has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Forbidden(pub String);

/// The check each operation makes first: `actor` may do `op`, or [`Forbidden`] saying why not.
pub fn authorize(actor: &Actor, op: Operation) -> Result<(), Forbidden> {
    let has = actor.rights();
    if has >= op.needs() {
        return Ok(());
    }
    Err(Forbidden(if has == Rights::Read {
        "This API token's scope is read: it may only read.".to_owned()
    } else {
        format!("Only an admin may {}.", op.phrase())
    }))
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::domain::{StaffRole, TokenScope};

    /// The cells of README's table for `op`: `| label | admin | editor |`.
    fn row(op: Operation) -> String {
        let editor = if op.needs() <= Rights::Editor {
            "yes"
        } else {
            "no"
        };
        format!("| {} | yes | {editor} |", op.label())
    }

    #[test]
    fn readme_shows_the_matrix_the_operations_enforce() {
        let readme = include_str!("../../README.md");
        let missing: Vec<String> = Operation::ALL
            .iter()
            .map(|op| row(*op))
            .filter(|r| !readme.lines().any(|line| line.trim() == r))
            .collect();
        assert!(
            missing.is_empty(),
            "README's role matrix lacks (or differs on) these rows:\n{}",
            missing.join("\n")
        );
    }

    #[test]
    fn each_actor_has_the_rights_of_its_role_or_scope() {
        let staff = |role| Actor::Staff {
            id: Uuid::nil(),
            role,
            email: "a@example.org".into(),
        };
        let token = |scope| Actor::ApiToken {
            id: Uuid::nil(),
            scope,
        };
        for (actor, rights) in [
            (staff(StaffRole::Admin), Rights::Admin),
            (staff(StaffRole::Editor), Rights::Editor),
            (token(TokenScope::Send), Rights::Admin),
            (token(TokenScope::Write), Rights::Editor),
            (token(TokenScope::Read), Rights::Read),
            (Actor::CommandLine, Rights::Admin),
            (Actor::DigestSchedule(Uuid::nil()), Rights::Admin),
            (Actor::Scheduler, Rights::Editor),
        ] {
            assert_eq!(actor.rights(), rights, "{actor:?}");
            for op in Operation::ALL {
                assert_eq!(
                    authorize(&actor, op).is_ok(),
                    rights >= op.needs(),
                    "{actor:?} {op:?}"
                );
            }
        }
        let refused = authorize(&token(TokenScope::Read), Operation::News).unwrap_err();
        assert!(refused.0.contains("scope is read"), "{refused}");
        let refused = authorize(&staff(StaffRole::Editor), Operation::ListChange).unwrap_err();
        assert_eq!(
            refused.0,
            "Only an admin may create, edit, archive or reopen a list."
        );
    }
}
