//! List headers (RFC 2369, RFC 8058, RFC 2919). Values come only from `server.base_url`, list
//! slugs and tokens, none of which can hold CR or LF.

use lettre::message::header::{self, Header, HeaderName, HeaderValue};
use lettre::message::Mailbox;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

macro_rules! text_header {
    ($name:ident, $header:literal) => {
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(pub String);

        impl Header for $name {
            fn name() -> HeaderName {
                HeaderName::new_from_ascii_str($header)
            }
            fn parse(s: &str) -> Result<Self, BoxError> {
                Ok(Self(s.to_owned()))
            }
            fn display(&self) -> HeaderValue {
                HeaderValue::new(Self::name(), self.0.clone())
            }
        }
    };
}

text_header!(ListUnsubscribe, "List-Unsubscribe");
text_header!(ListUnsubscribePost, "List-Unsubscribe-Post");
text_header!(ListId, "List-Id");
text_header!(FeedbackId, "Feedback-ID");

/// A List-Id value (RFC 2919): `"Name" <slug.host>`, the name as a quoted string when it is
/// printable ASCII, else left out.
pub fn list_id(name: Option<&str>, slug: &str, host: &str) -> String {
    match name.filter(|n| {
        !n.is_empty() && n.len() <= 200 && n.bytes().all(|b| (b' '..=b'~').contains(&b))
    }) {
        Some(name) => format!("\"{}\" <{slug}.{host}>", quote(name)),
        None => format!("<{slug}.{host}>"),
    }
}

fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// `From` with an ASCII display name written as an RFC 5322 quoted string
/// (`"US & ICC Updates" <updates@example.org>`), where lettre would encode any name holding a
/// special character (`&`, `,`, `.`) as base64, which spam filters score (`FROM_EXCESS_BASE64`).
/// A name with other characters keeps lettre's RFC 2047 encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotedFrom(pub Mailbox);

impl Header for QuotedFrom {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("From")
    }
    fn parse(s: &str) -> Result<Self, BoxError> {
        Ok(Self(s.parse()?))
    }
    fn display(&self) -> HeaderValue {
        match self.0.name.as_deref() {
            Some(name)
                if !name.is_empty()
                    && name.bytes().all(|b| (b' '..=b'~').contains(&b))
                    && name.len() <= 200 =>
            {
                let value = format!("\"{}\" <{}>", quote(name), self.0.email);
                HeaderValue::dangerous_new_pre_encoded(Self::name(), value.clone(), value)
            }
            _ => header::From::from(lettre::message::Mailboxes::from(self.0.clone())).display(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ascii_name_goes_out_as_a_quoted_string() {
        let from: Mailbox = "US & ICC Updates <updates@example.org>".parse().unwrap();
        let message = lettre::Message::builder()
            .from(from.clone())
            .header(QuotedFrom(from))
            .to("a@example.org".parse().unwrap())
            .body(String::from("x"))
            .unwrap();
        let text = String::from_utf8(message.formatted()).unwrap();
        assert!(
            text.contains("From: \"US & ICC Updates\" <updates@example.org>\r\n"),
            "{text}"
        );
        assert_eq!(
            message.envelope().from().unwrap().to_string(),
            "updates@example.org"
        );
    }

    #[test]
    fn quotes_are_escaped_and_other_names_stay_encoded() {
        let quoted = QuotedFrom(Mailbox::new(
            Some(r#"The "Desk" \ news"#.into()),
            "d@example.org".parse().unwrap(),
        ));
        let mut headers = lettre::message::header::Headers::new();
        headers.set(quoted);
        assert_eq!(
            headers.get_raw("From"),
            Some(r#""The \"Desk\" \\ news" <d@example.org>"#)
        );
        let accented = QuotedFrom(Mailbox::new(
            Some("Café".into()),
            "d@example.org".parse().unwrap(),
        ));
        headers.set(accented);
        assert!(headers.to_string().contains("=?utf-8?"), "{headers}");
    }
}
