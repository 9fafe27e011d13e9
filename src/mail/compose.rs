//! Building lettre messages from rendered templates.

use anyhow::Context;
use lettre::message::{header, Mailbox, MultiPart};
use lettre::Message;
use serde::Serialize;

use super::{MailTemplates, RenderedMail};
use crate::config::MailSettings;

/// Who a mail goes to and the Message-ID it carries.
pub struct Envelope<'a> {
    pub to_email: &'a str,
    pub to_name: Option<&'a str>,
    /// Without angle brackets: `local@host`.
    pub message_id: String,
}

#[derive(Serialize)]
pub struct ConfirmationMail<'a> {
    pub name: Option<&'a str>,
    pub email: &'a str,
    pub confirm_url: &'a str,
    pub expires_hours: u64,
    pub postal_address: &'a str,
}

pub fn confirmation_message(
    templates: &MailTemplates,
    mail: &MailSettings,
    envelope: &Envelope<'_>,
    data: &ConfirmationMail<'_>,
) -> anyhow::Result<Message> {
    let rendered = templates.render("confirmation", data)?;
    build(mail, envelope, rendered)
}

fn build(
    mail: &MailSettings,
    envelope: &Envelope<'_>,
    rendered: RenderedMail,
) -> anyhow::Result<Message> {
    let to = Mailbox::new(
        envelope.to_name.map(str::to_owned),
        envelope.to_email.parse().context("recipient address")?,
    );
    let mut builder = Message::builder()
        .from(mail.from.clone())
        .to(to)
        .subject(rendered.subject)
        .message_id(Some(format!("<{}>", envelope.message_id)))
        .date_now();
    if let Some(reply_to) = &mail.reply_to {
        builder = builder.reply_to(reply_to.clone());
    }
    builder
        .header(header::MIME_VERSION_1_0)
        .multipart(MultiPart::alternative_plain_html(
            rendered.text,
            rendered.html,
        ))
        .context("building the message")
}
