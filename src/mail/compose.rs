//! Building lettre messages from rendered templates.

use anyhow::Context;
use lettre::message::{header, Mailbox, MultiPart};
use lettre::Message;
use serde::Serialize;

use super::encoding;
use super::headers::{FeedbackId, ListId, ListUnsubscribe, ListUnsubscribePost, QuotedFrom};
use super::stencil::EncodedMail;
use super::{MailTemplates, RenderedMail};
use crate::config::MailSettings;

/// Who a mail goes to, the Message-ID it carries, and who it is from.
pub struct Envelope<'a> {
    pub to_email: &'a str,
    pub to_name: Option<&'a str>,
    /// Without angle brackets: `local@host`.
    pub message_id: String,
    pub from: Mailbox,
    pub reply_to: Option<Mailbox>,
    /// The envelope sender (SMTP `MAIL FROM`, the `Return-Path` at the recipient): a VERP
    /// address naming this mail's delivery row (`domain::verp`). None: the From address.
    pub return_path: Option<String>,
}

impl<'a> Envelope<'a> {
    pub fn new(
        mail: &MailSettings,
        to_email: &'a str,
        to_name: Option<&'a str>,
        message_id: String,
    ) -> Self {
        Self {
            to_email,
            to_name,
            message_id,
            from: mail.from.clone(),
            reply_to: mail.reply_to.clone(),
            return_path: None,
        }
    }
}

/// The list headers of a bulk mail.
pub struct ListHeaders {
    /// The unsubscribe URL; only an https one is offered for one-click (`List-Unsubscribe-Post`).
    pub unsubscribe_url: String,
    /// The RFC 2369 `mailto:` unsubscribe address, offered after the URL (only with
    /// `bounce.return_path_domain` set: `domain::mailto_unsubscribe`).
    pub unsubscribe_mailto: Option<String>,
    /// The whole List-Id value, `"Name" <slug.host>` (`headers::list_id`).
    pub list_id: String,
    /// `Feedback-ID` for providers' complaint loops: `campaign:list:kind:sender`.
    pub feedback_id: String,
}

#[derive(Serialize)]
/// What a confirmation mail shows. It carries no text the requester typed (no name, in the
/// greeting or in `To`): until the address is confirmed, anyone could have typed it, and it
/// must not be a way to send words of their choosing from our domain to a stranger.
pub struct ConfirmationMail<'a> {
    pub email: &'a str,
    pub confirm_url: &'a str,
    pub expires_hours: u64,
    pub postal_address: &'a str,
}

pub fn confirmation_message(
    templates: &MailTemplates,
    envelope: &Envelope<'_>,
    data: &ConfirmationMail<'_>,
) -> anyhow::Result<Message> {
    let rendered = templates.render("confirmation", data)?;
    build(envelope, rendered, None)
}

/// A notice to a member of staff: what happened, and a link to act on it. Not bulk mail: no
/// list headers.
#[derive(Serialize)]
pub struct Notice<'a> {
    pub subject: &'a str,
    pub text: &'a str,
    /// The link's words ("Review it").
    pub action: &'a str,
    pub url: &'a str,
}

pub fn notice_message(
    templates: &MailTemplates,
    envelope: &Envelope<'_>,
    notice: &Notice<'_>,
) -> anyhow::Result<Message> {
    let rendered = templates.render("notice", notice)?;
    build(envelope, rendered, None)
}

/// Renders template `name` with `data` and builds a mail with list headers.
pub fn bulk_message<T: Serialize>(
    templates: &MailTemplates,
    name: &str,
    envelope: &Envelope<'_>,
    data: &T,
    list: &ListHeaders,
) -> anyhow::Result<Message> {
    let rendered = templates.render(name, data)?;
    build(envelope, rendered, Some(list))
}

/// Builds a mail with list headers from a rendering done already.
pub fn bulk_message_rendered(
    envelope: &Envelope<'_>,
    rendered: RenderedMail,
    list: &ListHeaders,
) -> anyhow::Result<Message> {
    build(envelope, rendered, Some(list))
}

/// Builds a mail with list headers from a filled `Stencil`, its parts encoded already.
pub fn bulk_message_encoded(
    envelope: &Envelope<'_>,
    mail: EncodedMail,
    list: &ListHeaders,
) -> anyhow::Result<Message> {
    build_encoded(envelope, mail, Some(list))
}

fn build(
    envelope: &Envelope<'_>,
    rendered: RenderedMail,
    list: Option<&ListHeaders>,
) -> anyhow::Result<Message> {
    let mail = EncodedMail {
        text: encoding::body(&rendered.text),
        html: encoding::body(&rendered.html),
        subject: rendered.subject,
    };
    build_encoded(envelope, mail, list)
}

fn build_encoded(
    envelope: &Envelope<'_>,
    mail: EncodedMail,
    list: Option<&ListHeaders>,
) -> anyhow::Result<Message> {
    let to_address: lettre::Address = envelope.to_email.parse().context("recipient address")?;
    let to = Mailbox::new(envelope.to_name.map(str::to_owned), to_address.clone());
    let mut builder = Message::builder()
        .from(envelope.from.clone())
        .header(QuotedFrom(envelope.from.clone()))
        .to(to)
        .subject(mail.subject)
        .message_id(Some(format!("<{}>", envelope.message_id)))
        .date_now()
        .header(header::MIME_VERSION_1_0);
    if let Some(reply_to) = &envelope.reply_to {
        builder = builder.reply_to(reply_to.clone());
    }
    if let Some(return_path) = &envelope.return_path {
        let sender = return_path
            .parse()
            .context("envelope sender (VERP) address")?;
        builder = builder.envelope(
            lettre::address::Envelope::new(Some(sender), vec![to_address])
                .context("the envelope")?,
        );
    }
    if let Some(list) = list {
        builder = builder
            .header(ListUnsubscribe(match &list.unsubscribe_mailto {
                // One-click over https first (RFC 8058), then the mail address (RFC 2369).
                Some(mailto) => format!("<{}>, <mailto:{mailto}>", list.unsubscribe_url),
                None => format!("<{}>", list.unsubscribe_url),
            }))
            .header(ListId(list.list_id.clone()))
            .header(FeedbackId(list.feedback_id.clone()));
        // RFC 8058 one-click needs an https URL; over http the link stays, one-click does not.
        if list.unsubscribe_url.starts_with("https://") {
            builder = builder.header(ListUnsubscribePost("List-Unsubscribe=One-Click".into()));
        }
    }
    builder
        .multipart(MultiPart::alternative_plain_html(mail.text, mail.html))
        .context("building the message")
}
