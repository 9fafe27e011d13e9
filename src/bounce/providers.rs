//! Sending providers' bounce and complaint events: each provider's own credential or signature
//! check, and its events read into the same [`Report`] the mail classifier makes. Pure: no
//! I/O (the routes in `routes::webhooks` read the request and record the reports).
//!
//! - Amazon SES through SNS: the SNS message signature (`SignatureVersion` 2, SHA256withRSA)
//!   checked against the configured signing certificate (`webhooks.ses_certificate_file`, PEM);
//!   version 1 (SHA-1) is refused.
//! - Postmark: HTTP basic credentials set on the webhook (`webhooks.postmark_username`,
//!   `webhooks.postmark_password`), compared in constant time.
//! - SendGrid: the signed event webhook, ECDSA P-256 over `timestamp || body`
//!   (`X-Twilio-Email-Event-Webhook-Signature`, `…-Timestamp`) with the public key SendGrid
//!   shows (`webhooks.sendgrid_public_key`, base64 DER).
//! - Mailgun: HMAC-SHA256 of `timestamp || token` under the webhook signing key
//!   (`webhooks.mailgun_signing_key`).
//!
//! Fresh and once: a signed call whose signed time (SNS `Timestamp`, SendGrid's timestamp
//! header, Mailgun's `timestamp`) is further than `webhooks.max_age_seconds` from ours, either
//! way, is refused ([`SignatureError::Stale`]); each call names the token that makes it unique
//! ([`Call::token`]) and each event its provider id ([`Event::id`]), so that one seen before
//! changes nothing (`bounce::record_call`).

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::classify::{Report, ReportKind, MAX_DETAIL};

/// Why a call is refused (401).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("no signature or credentials")]
    Missing,
    #[error("the signature or credentials do not match")]
    Invalid,
    #[error("the signed time is further than webhooks.max_age_seconds from ours")]
    Stale,
}

/// How far a signed call's time may be from ours, either way (`webhooks.max_age_seconds`).
#[derive(Debug, Clone, Copy)]
pub struct Freshness {
    pub now: DateTime<Utc>,
    pub max_age: Duration,
}

impl Freshness {
    /// Whether `signed_at` (Unix seconds) is within `max_age` of `now`.
    fn check(&self, signed_at: i64) -> Result<(), SignatureError> {
        let max_age = i64::try_from(self.max_age.as_secs()).unwrap_or(i64::MAX);
        (signed_at.abs_diff(self.now.timestamp()) <= max_age.unsigned_abs())
            .then_some(())
            .ok_or(SignatureError::Stale)
    }
}

/// One event read from a provider's call.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The provider's own id for the event, when it gives one: an event seen before is
    /// skipped.
    pub id: Option<String>,
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// A bounce or complaint, and the event's own JSON (kept as its raw text, and
    /// fingerprinted so a provider's retry is recorded once).
    Report { report: Report, raw: String },
    /// The provider delivered a mail: the person's soft bounces reported before no longer count.
    Delivered {
        recipient: Option<String>,
        message_id: Option<String>,
    },
}

/// A checked call's events, and what makes the call unique (a token seen before: the call is
/// a replay and changes nothing).
#[derive(Debug, PartialEq)]
pub struct Call {
    pub token: Option<String>,
    pub events: Vec<Event>,
}

fn delivered(id: Option<String>, recipient: Option<&str>, message_id: Option<&str>) -> Event {
    Event {
        id,
        kind: EventKind::Delivered {
            recipient: recipient.map(|r| r.trim().to_ascii_lowercase()),
            message_id: message_id.map(|m| m.trim().trim_matches(['<', '>']).to_owned()),
        },
    }
}

fn report(
    kind: ReportKind,
    recipient: Option<&str>,
    message_id: Option<&str>,
    status: Option<&str>,
    detail: String,
) -> Report {
    Report {
        kind,
        status: status
            .map(str::trim)
            .filter(|s| s.split('.').count() == 3 && s.len() <= 11)
            .map(str::to_owned),
        recipient: recipient.map(|r| r.trim().to_ascii_lowercase()),
        recipients: Vec::new(),
        message_id: message_id.map(|m| m.trim().trim_matches(['<', '>']).to_owned()),
        original_sender: None,
        detail: detail
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(MAX_DETAIL)
            .collect(),
    }
}

fn text<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

// ---- Amazon SES through SNS ----

/// The SNS signing certificate: a PEM file's first certificate.
pub struct SnsCertificate(Vec<u8>);

impl SnsCertificate {
    /// Reads the first `CERTIFICATE` block of a PEM text; checks it parses as X.509.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let body: String = pem
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END CERTIFICATE-----"))
            .collect();
        let der = STANDARD
            .decode(body.trim())
            .map_err(|_| "no PEM certificate in the file".to_owned())?;
        let pki = rustls_pki_types::CertificateDer::from(der.as_slice());
        webpki::EndEntityCert::try_from(&pki)
            .map_err(|e| format!("not an X.509 certificate: {e}"))?;
        Ok(Self(der))
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let pki = rustls_pki_types::CertificateDer::from(self.0.as_slice());
        webpki::EndEntityCert::try_from(&pki).is_ok_and(|cert| {
            cert.verify_signature(webpki::ring::RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok()
        })
    }
}

/// What an SNS call is.
#[derive(Debug, PartialEq)]
pub enum SnsCall {
    /// A new subscription: staff confirm it by opening this URL once.
    SubscriptionConfirmation { subscribe_url: String },
    /// The call's token is the SNS `MessageId`.
    Notification(Call),
    /// Anything else that was correctly signed (UnsubscribeConfirmation).
    Other,
}

/// Checks an SNS message's signature (the SNS "verifying message signatures" procedure,
/// version 2), its topic and its signed `Timestamp`, and reads SES bounce, complaint and
/// delivery notifications from it. Amazon signs every customer's topics with one certificate,
/// so only `topic_arn` is accepted.
pub fn ses(
    body: &[u8],
    certificate: &SnsCertificate,
    topic_arn: &str,
    freshness: Freshness,
) -> Result<SnsCall, SignatureError> {
    let envelope: Value = serde_json::from_slice(body).map_err(|_| SignatureError::Missing)?;
    let signature = text(&envelope, "/Signature").ok_or(SignatureError::Missing)?;
    if text(&envelope, "/SignatureVersion") != Some("2") {
        return Err(SignatureError::Invalid);
    }
    let kind = text(&envelope, "/Type").ok_or(SignatureError::Invalid)?;
    if text(&envelope, "/TopicArn") != Some(topic_arn) {
        return Err(SignatureError::Invalid);
    }
    let fields: &[&str] = match kind {
        "Notification" => &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ],
        _ => &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ],
    };
    let mut signed = String::new();
    for field in fields {
        match text(&envelope, &format!("/{field}")) {
            Some(value) => {
                signed.push_str(field);
                signed.push('\n');
                signed.push_str(value);
                signed.push('\n');
            }
            None if *field == "Subject" => {}
            None => return Err(SignatureError::Invalid),
        }
    }
    let signature = STANDARD
        .decode(signature)
        .map_err(|_| SignatureError::Invalid)?;
    if !certificate.verify(signed.as_bytes(), &signature) {
        return Err(SignatureError::Invalid);
    }
    let signed_at = text(&envelope, "/Timestamp")
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .ok_or(SignatureError::Invalid)?;
    freshness.check(signed_at.timestamp())?;
    match kind {
        "SubscriptionConfirmation" => Ok(SnsCall::SubscriptionConfirmation {
            subscribe_url: text(&envelope, "/SubscribeURL").unwrap_or("").to_owned(),
        }),
        "Notification" => {
            let message = text(&envelope, "/Message").unwrap_or("");
            Ok(SnsCall::Notification(Call {
                token: text(&envelope, "/MessageId").map(str::to_owned),
                events: ses_events(message),
            }))
        }
        _ => Ok(SnsCall::Other),
    }
}

/// The events in an SES notification (`notificationType`, or `eventType` of an event
/// publishing configuration set): one per bounced, complaining or delivered recipient.
fn ses_events(message: &str) -> Vec<Event> {
    let Ok(n) = serde_json::from_str::<Value>(message) else {
        return Vec::new();
    };
    let kind = text(&n, "/notificationType")
        .or_else(|| text(&n, "/eventType"))
        .unwrap_or("");
    let message_id = n
        .pointer("/mail/headers")
        .and_then(Value::as_array)
        .and_then(|h| {
            h.iter().find(|h| {
                text(h, "/name").is_some_and(|name| name.eq_ignore_ascii_case("message-id"))
            })
        })
        .and_then(|h| text(h, "/value"))
        .or_else(|| text(&n, "/mail/commonHeaders/messageId"));
    let one = |r: &Value, report: Report| Event {
        id: None,
        kind: EventKind::Report {
            raw: serde_json::json!({ "notification": kind, "recipient": r, "mail": n.get("mail") })
                .to_string(),
            report,
        },
    };
    match kind {
        "Delivery" => n
            .pointer("/delivery/recipients")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|r| delivered(None, Some(r), message_id))
            .collect(),
        "Bounce" => {
            let bounce_type = text(&n, "/bounce/bounceType").unwrap_or("");
            let sub_type = text(&n, "/bounce/bounceSubType").unwrap_or("");
            let recipients = n
                .pointer("/bounce/bouncedRecipients")
                .and_then(Value::as_array);
            recipients
                .into_iter()
                .flatten()
                .map(|r| {
                    let status = text(r, "/status");
                    let kind = match (bounce_type, status) {
                        ("Permanent", Some(s)) if s.starts_with("5.1.") || s == "5.2.1" => {
                            ReportKind::Hard
                        }
                        ("Permanent", None) if sub_type == "General" || sub_type == "NoEmail" => {
                            ReportKind::Hard
                        }
                        _ => ReportKind::Soft,
                    };
                    one(
                        r,
                        report(
                            kind,
                            text(r, "/emailAddress"),
                            message_id,
                            status,
                            format!(
                                "SES {bounce_type}/{sub_type}: {}",
                                text(r, "/diagnosticCode").unwrap_or("")
                            ),
                        ),
                    )
                })
                .collect()
        }
        "Complaint" => {
            let feedback = text(&n, "/complaint/complaintFeedbackType").unwrap_or("abuse");
            let kind = if feedback == "not-spam" {
                ReportKind::Unknown
            } else {
                ReportKind::Complaint
            };
            let recipients = n
                .pointer("/complaint/complainedRecipients")
                .and_then(Value::as_array);
            recipients
                .into_iter()
                .flatten()
                .map(|r| {
                    one(
                        r,
                        report(
                            kind,
                            text(r, "/emailAddress"),
                            message_id,
                            None,
                            format!("SES complaint, type {feedback:?}"),
                        ),
                    )
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

// ---- Postmark ----

/// Checks the basic credentials of a Postmark webhook call (`Authorization` header value).
pub fn postmark_authorized(
    authorization: Option<&str>,
    user: &str,
    password: &str,
) -> Result<(), SignatureError> {
    let value = authorization.ok_or(SignatureError::Missing)?;
    let (scheme, credentials) = value
        .trim()
        .split_once(' ')
        .ok_or(SignatureError::Invalid)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(SignatureError::Invalid);
    }
    let decoded = STANDARD
        .decode(credentials.trim())
        .map_err(|_| SignatureError::Invalid)?;
    let expected = format!("{user}:{password}");
    crate::domain::constant_time_eq(&decoded, expected.as_bytes())
        .then_some(())
        .ok_or(SignatureError::Invalid)
}

/// The event in a Postmark bounce, spam complaint or delivery webhook body. Its id:
/// `RecordType` and `ID` (a delivery has none: its `MessageID` and recipient).
pub fn postmark(body: &[u8]) -> Vec<Event> {
    let Ok(e) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let record = text(&e, "/RecordType").unwrap_or("");
    let message_id = e
        .pointer("/Headers")
        .and_then(Value::as_array)
        .and_then(|h| {
            h.iter()
                .find(|h| text(h, "/Name").is_some_and(|n| n.eq_ignore_ascii_case("message-id")))
        })
        .and_then(|h| text(h, "/Value"));
    if record == "Delivery" {
        let recipient = text(&e, "/Recipient");
        let id =
            text(&e, "/MessageID").map(|m| format!("Delivery:{m}:{}", recipient.unwrap_or("")));
        return vec![delivered(id, recipient, message_id)];
    }
    let id = e.get("ID").filter(|id| !id.is_null()).map(|id| {
        format!(
            "{record}:{}",
            id.as_str().map_or_else(|| id.to_string(), str::to_owned)
        )
    });
    let kind = match (record, text(&e, "/Type").unwrap_or("")) {
        ("SpamComplaint", _) | ("Bounce", "SpamComplaint") => ReportKind::Complaint,
        ("Bounce", "HardBounce" | "BadEmailAddress" | "ManuallyDeactivated") => ReportKind::Hard,
        ("Bounce", "AutoResponder") => ReportKind::AutoReply,
        ("Bounce", _) => ReportKind::Soft,
        _ => return Vec::new(),
    };
    let detail = format!(
        "Postmark {record} {}: {}",
        text(&e, "/Type").unwrap_or(""),
        text(&e, "/Description")
            .or_else(|| text(&e, "/Details"))
            .unwrap_or("")
    );
    vec![Event {
        id,
        kind: EventKind::Report {
            report: report(kind, text(&e, "/Email"), message_id, None, detail),
            raw: e.to_string(),
        },
    }]
}

// ---- SendGrid ----

/// The DER prefix of a P-256 public key's SubjectPublicKeyInfo, before the 65-byte point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// SendGrid's verification key: the uncompressed P-256 point from its base64 DER
/// SubjectPublicKeyInfo.
pub struct SendgridKey(Vec<u8>);

impl SendgridKey {
    pub fn from_base64(spki: &str) -> Result<Self, String> {
        let der = STANDARD
            .decode(spki.trim())
            .map_err(|_| "expected the base64 public key SendGrid shows".to_owned())?;
        match der.strip_prefix(&P256_SPKI_PREFIX[..]) {
            Some(point) if point.len() == 65 && point[0] == 4 => Ok(Self(point.to_vec())),
            _ => Err("expected an ECDSA P-256 public key (base64 DER)".to_owned()),
        }
    }
}

/// Checks a SendGrid signed event webhook call: the signature (base64 DER ECDSA) of
/// `timestamp || body`, then the timestamp's age. The call's token is its signature.
pub fn sendgrid_verified(
    body: &[u8],
    signature: Option<&str>,
    timestamp: Option<&str>,
    key: &SendgridKey,
    freshness: Freshness,
) -> Result<String, SignatureError> {
    let (Some(signature), Some(timestamp)) = (signature, timestamp) else {
        return Err(SignatureError::Missing);
    };
    let decoded = STANDARD
        .decode(signature.trim())
        .map_err(|_| SignatureError::Invalid)?;
    let mut signed = timestamp.trim().as_bytes().to_vec();
    signed.extend_from_slice(body);
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, &key.0)
        .verify(&signed, &decoded)
        .map_err(|_| SignatureError::Invalid)?;
    freshness.check(
        timestamp
            .trim()
            .parse()
            .map_err(|_| SignatureError::Invalid)?,
    )?;
    Ok(signature.trim().to_owned())
}

/// The events in a SendGrid event batch (a JSON array): `bounce` (type `bounce` or
/// `blocked`), `deferred`, `spamreport`, `delivered`; each with its `sg_event_id`.
pub fn sendgrid(body: &[u8]) -> Vec<Event> {
    let Ok(Value::Array(events)) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    events
        .into_iter()
        .filter_map(|e| {
            let id = text(&e, "/sg_event_id").map(str::to_owned);
            let status = text(&e, "/status");
            let kind = match (text(&e, "/event")?, text(&e, "/type")) {
                ("delivered", _) => {
                    return Some(delivered(id, text(&e, "/email"), text(&e, "/smtp-id")))
                }
                ("spamreport", _) => ReportKind::Complaint,
                ("bounce", Some("blocked")) | ("deferred", _) => ReportKind::Soft,
                ("bounce", _) => match status {
                    Some(s) if s.starts_with("5.1.") || s == "5.2.1" => ReportKind::Hard,
                    _ => ReportKind::Soft,
                },
                _ => return None,
            };
            let detail = format!(
                "SendGrid {}: {}",
                text(&e, "/event").unwrap_or(""),
                text(&e, "/reason")
                    .or_else(|| text(&e, "/response"))
                    .unwrap_or("")
            );
            Some(Event {
                id,
                kind: EventKind::Report {
                    report: report(
                        kind,
                        text(&e, "/email"),
                        text(&e, "/smtp-id"),
                        status,
                        detail,
                    ),
                    raw: e.to_string(),
                },
            })
        })
        .collect()
}

// ---- Mailgun ----

/// Checks a Mailgun webhook body's `signature` object: HMAC-SHA256 of `timestamp || token`
/// under the signing key, hex; then the timestamp's age. The call's token is Mailgun's.
pub fn mailgun_verified(
    body: &Value,
    signing_key: &str,
    freshness: Freshness,
) -> Result<String, SignatureError> {
    let (Some(timestamp), Some(token), Some(signature)) = (
        text(body, "/signature/timestamp"),
        text(body, "/signature/token"),
        text(body, "/signature/signature"),
    ) else {
        return Err(SignatureError::Missing);
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(signing_key.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(token.as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if !crate::domain::constant_time_eq(
        expected.as_bytes(),
        signature.to_ascii_lowercase().as_bytes(),
    ) {
        return Err(SignatureError::Invalid);
    }
    freshness.check(
        timestamp
            .trim()
            .parse()
            .map_err(|_| SignatureError::Invalid)?,
    )?;
    Ok(token.to_owned())
}

/// The event in a Mailgun webhook's `event-data`: `failed` (permanent or temporary),
/// `complained` or `delivered`; with its `id`.
pub fn mailgun(body: &Value) -> Vec<Event> {
    let Some(e) = body.get("event-data") else {
        return Vec::new();
    };
    let id = text(e, "/id").map(str::to_owned);
    let message_id = text(e, "/message/headers/message-id");
    if text(e, "/event") == Some("delivered") {
        return vec![delivered(id, text(e, "/recipient"), message_id)];
    }
    let status = text(e, "/delivery-status/enhanced-code")
        .map(str::to_owned)
        .or_else(|| {
            text(e, "/delivery-status/message")
                .or_else(|| text(e, "/delivery-status/description"))
                .and_then(|m| {
                    m.split_whitespace()
                        .find(|w| w.split('.').count() == 3 && w.starts_with(['4', '5']))
                })
                .map(str::to_owned)
        });
    let kind = match (text(e, "/event").unwrap_or(""), text(e, "/severity")) {
        ("complained", _) => ReportKind::Complaint,
        ("failed", Some("permanent")) => match status.as_deref() {
            Some(s) if s.starts_with("5.1.") || s == "5.2.1" => ReportKind::Hard,
            None if text(e, "/reason") == Some("bounce") => ReportKind::Hard,
            _ => ReportKind::Soft,
        },
        ("failed", _) => ReportKind::Soft,
        _ => return Vec::new(),
    };
    let detail = format!(
        "Mailgun {}: {}",
        text(e, "/event").unwrap_or(""),
        text(e, "/delivery-status/message")
            .or_else(|| text(e, "/delivery-status/description"))
            .unwrap_or("")
    );
    vec![Event {
        id,
        kind: EventKind::Report {
            report: report(
                kind,
                text(e, "/recipient"),
                message_id,
                status.as_deref(),
                detail,
            ),
            raw: e.to_string(),
        },
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report_of(event: &Event) -> &Report {
        match &event.kind {
            EventKind::Report { report, .. } => report,
            EventKind::Delivered { .. } => panic!("a delivery, not a report: {event:?}"),
        }
    }

    fn at(now: i64) -> Freshness {
        Freshness {
            now: DateTime::from_timestamp(now, 0).unwrap(),
            max_age: Duration::from_secs(300),
        }
    }

    #[test]
    fn postmark_credentials_are_checked() {
        let good = format!("Basic {}", STANDARD.encode("hooks:s3cret"));
        assert_eq!(postmark_authorized(Some(&good), "hooks", "s3cret"), Ok(()));
        assert_eq!(
            postmark_authorized(None, "hooks", "s3cret"),
            Err(SignatureError::Missing)
        );
        let bad = format!("Basic {}", STANDARD.encode("hooks:guess"));
        assert_eq!(
            postmark_authorized(Some(&bad), "hooks", "s3cret"),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            postmark_authorized(Some("Bearer x"), "hooks", "s3cret"),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn provider_events_map_to_the_classifier_kinds() {
        let pm = postmark(br#"{"RecordType":"Bounce","ID":42,"Type":"HardBounce","Email":"A@Example.net","Description":"gone"}"#);
        assert_eq!(report_of(&pm[0]).kind, ReportKind::Hard);
        assert_eq!(
            report_of(&pm[0]).recipient.as_deref(),
            Some("a@example.net")
        );
        assert_eq!(pm[0].id.as_deref(), Some("Bounce:42"));
        let pm = postmark(br#"{"RecordType":"SpamComplaint","Email":"a@example.net"}"#);
        assert_eq!(report_of(&pm[0]).kind, ReportKind::Complaint);
        let pm =
            postmark(br#"{"RecordType":"Delivery","MessageID":"m1","Recipient":"a@example.net"}"#);
        assert!(
            matches!(&pm[0].kind, EventKind::Delivered { recipient: Some(r), .. } if r == "a@example.net")
        );
        assert!(postmark(br#"{"RecordType":"Open"}"#).is_empty());

        let sg = sendgrid(br#"[{"event":"bounce","type":"bounce","status":"5.1.1","email":"a@example.net","smtp-id":"<m@x>","sg_event_id":"e1"},
                               {"event":"deferred","email":"b@example.net"},{"event":"open","email":"c@example.net"},
                               {"event":"spamreport","email":"d@example.net"},{"event":"delivered","email":"e@example.net"}]"#);
        let kinds: Vec<Option<ReportKind>> = sg
            .iter()
            .map(|e| match &e.kind {
                EventKind::Report { report, .. } => Some(report.kind),
                EventKind::Delivered { .. } => None,
            })
            .collect();
        assert_eq!(
            kinds,
            [
                Some(ReportKind::Hard),
                Some(ReportKind::Soft),
                Some(ReportKind::Complaint),
                None
            ]
        );
        assert_eq!(report_of(&sg[0]).message_id.as_deref(), Some("m@x"));
        assert_eq!(sg[0].id.as_deref(), Some("e1"));

        let mg: Value = serde_json::from_str(r#"{"event-data":{"id":"ev1","event":"failed","severity":"temporary","recipient":"a@example.net","delivery-status":{"message":"452 4.2.2 full"}}}"#).unwrap();
        let mg = mailgun(&mg);
        assert_eq!(report_of(&mg[0]).kind, ReportKind::Soft);
        assert_eq!(report_of(&mg[0]).status.as_deref(), Some("4.2.2"));
        assert_eq!(mg[0].id.as_deref(), Some("ev1"));

        let ses = ses_events(
            r#"{"notificationType":"Bounce","bounce":{"bounceType":"Permanent","bounceSubType":"General",
            "bouncedRecipients":[{"emailAddress":"a@example.net","status":"5.1.1","diagnosticCode":"smtp; 550 5.1.1 unknown"}]},
            "mail":{"headers":[{"name":"Message-ID","value":"<m@x>"}]}}"#,
        );
        assert_eq!(report_of(&ses[0]).kind, ReportKind::Hard);
        assert_eq!(report_of(&ses[0]).message_id.as_deref(), Some("m@x"));
        let ses = ses_events(
            r#"{"notificationType":"Delivery","delivery":{"recipients":["a@example.net"]},"mail":{}}"#,
        );
        assert!(
            matches!(&ses[0].kind, EventKind::Delivered { recipient: Some(r), .. } if r == "a@example.net")
        );
    }

    #[test]
    fn mailgun_signatures_and_their_age_are_checked() {
        let key = "key-0123456789";
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(b"1700000000abcdef");
        let sig: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let body = serde_json::json!({"signature": {"timestamp": "1700000000", "token": "abcdef", "signature": sig}});
        assert_eq!(
            mailgun_verified(&body, key, at(1_700_000_100)),
            Ok("abcdef".to_owned())
        );
        assert_eq!(
            mailgun_verified(&body, "another-key", at(1_700_000_100)),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            mailgun_verified(&serde_json::json!({}), key, at(1_700_000_100)),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            mailgun_verified(&body, key, at(1_700_000_301)),
            Err(SignatureError::Stale),
            "older than max_age"
        );
        assert_eq!(
            mailgun_verified(&body, key, at(1_699_999_699)),
            Err(SignatureError::Stale),
            "too far in the future"
        );
        assert_eq!(
            mailgun_verified(&body, key, at(1_700_000_300)),
            Ok("abcdef".to_owned()),
            "max_age itself is still fresh"
        );
    }
}
