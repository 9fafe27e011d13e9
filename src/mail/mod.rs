//! Mail: the template registry, message building and the transports. Only `worker/` sends.

mod compose;
mod templates;
mod transport;

pub use compose::{confirmation_message, ConfirmationMail, Envelope};
pub use templates::{MailTemplates, RenderedMail};
pub use transport::{Mailer, SendError, SendErrorKind};
