//! Domain types. No I/O here: nothing in `domain/` knows of SQL, HTTP or SMTP.
//! Each type is built by a `parse` that rejects what it cannot represent.

mod api_token;
mod archive;
mod client;
mod contact;
mod email;
mod feed;
mod import_status;
mod list_slug;
pub mod look;
mod mail_template;
pub mod mailto_unsubscribe;
pub mod message_id;
pub mod recurrence;
pub mod report;
pub mod schedule;
pub mod second_factor;
mod signup;
mod staff;
pub mod subscriber_link;
mod subscriber_name;
pub mod text;
mod token;
mod update;
mod update_record;
mod us_state;
pub mod verp;

pub use api_token::{TokenName, TokenScope, MAX_TOKEN_DAYS};
pub use archive::archive_slug;
pub use client::{client_key, describe_user_agent, RequestOrigin};
pub use contact::Contact;
pub use email::EmailAddress;
pub use feed::{next_wait, parse_feed, FeedEntry, ParsedFeed, POLL_MINUTES};
pub use import_status::{ImportStatus, IMPORT_STATUSES};
pub use list_slug::ListSlug;
pub use look::{Logo, LogoRef, Look, LookInput, LookText, LookVersion};
pub use mail_template::{MailSource, TemplateVersion};
pub use recurrence::{Recurrence, RecurrenceInput};
pub use signup::{FieldErrors, SignupInput, SignupRequest, SignupSource};
pub use staff::{dummy_hash, verify_password, NewPassword, SetupCode, StaffRole};
pub use subscriber_name::SubscriberName;
pub use token::{constant_time_eq, Token, TokenHash};
pub use update::{
    parse_topic, safe_url, NewUpdate, NewsItem, NewsItemInput, UpdateInput, MAX_NEWS_ITEMS,
    MAX_URL_CHARS,
};
pub use update_record::{UpdateContent, UpdateRecord};
pub use us_state::{UsState, US_STATES};
