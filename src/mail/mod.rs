//! Mail: the template registry, message building and the transports. Only `worker/` sends.

pub mod bounds;
mod brand;
mod compose;
mod dkim;
mod encoding;
mod explain;
mod headers;
mod live;
pub mod markdown;
mod smtp_pool;
mod stencil;
mod templates;
mod transport;
mod update;

pub use bounds::RenderLimits;
pub use brand::Brand;
pub use compose::{
    bulk_message, bulk_message_encoded, bulk_message_rendered, confirmation_message,
    notice_message, ConfirmationMail, Envelope, ListHeaders, Notice,
};
pub use dkim::aligned;
pub use headers::list_id;
pub use live::{LiveTemplates, SavedTemplates};
pub use stencil::{EncodedMail, Stencil};
pub use templates::{
    shipped_sources, MailSource, MailTemplates, Part, RenderedMail, TemplateError,
};
pub use transport::{enhanced_code, Mailer, SendError, SendErrorKind};
pub use update::{
    items_for, prepare_update, render_update, render_update_for, update_stencil, Links,
    PreparedUpdate, ACTIVITY_MARK, TEST_MARK,
};
