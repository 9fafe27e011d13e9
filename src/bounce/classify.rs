//! The one classifier for every report that comes back after the relay took a mail, whatever
//! way it came in (the inbound listener, the mailbox, a provider's event turned into the same
//! words). Pure: bytes in, a [`Report`] out; no I/O.
//!
//! - A delivery status notification (RFC 3464, `multipart/report; report-type=delivery-status`,
//!   the `message/delivery-status` part): `Action: failed` with `Status: 5.1.x` (or `5.2.1`,
//!   mailbox disabled) is a hard bounce; any other failure, `4.x.x` and `Action: delayed` are
//!   soft; `delivered`, `relayed` and `expanded` are no bounce.
//! - A feedback report (RFC 5965, `message/feedback-report`): `Feedback-Type: abuse`, `fraud`
//!   or `virus` is a complaint; any other type (`not-spam`, `auth-failure`) is no complaint.
//! - An automatic reply (RFC 3834 `Auto-Submitted` other than `no`, the de facto
//!   `X-Autoreply`/`X-Autorespond`/`Precedence: auto_reply` headers, an "out of office" subject)
//!   that is not a DSN: ignored (counted).
//! - A bounce in plain text (Exim's default, old qmail): from a mailer daemon or with a
//!   bounce-like subject, read for the first enhanced status code (RFC 3463) in the text.
//! - Anything else: unknown, kept for staff.

use std::borrow::Cow;

use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders, PartType};

/// What a report says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// The address does not exist (or is disabled): stop mailing it.
    Hard,
    /// A temporary or unclear failure: counted, `bounce.soft_limit` of them within
    /// `bounce.soft_window_days` stop mail.
    Soft,
    /// The recipient said "this is spam".
    Complaint,
    /// A vacation notice or another automatic reply: changes nothing.
    AutoReply,
    /// Not a report we understand: kept for staff, changes nothing.
    Unknown,
}

impl ReportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Hard => "hard",
            ReportKind::Soft => "soft",
            ReportKind::Complaint => "complaint",
            ReportKind::AutoReply => "auto_reply",
            ReportKind::Unknown => "unknown",
        }
    }
}

/// What a report says of one recipient it names.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Lower-cased.
    pub recipient: String,
    pub kind: ReportKind,
    pub status: Option<String>,
    pub detail: String,
}

/// A classified report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub kind: ReportKind,
    /// The enhanced status code (RFC 3463), e.g. `5.1.1`.
    pub status: Option<String>,
    /// The recipient the report is about, lower-cased (`Original-Recipient`,
    /// `Final-Recipient`, ARF `Original-Rcpt-To`), when it names one; with several, the first
    /// that failed (else delayed).
    pub recipient: Option<String>,
    /// Every recipient the report names, each with what it says of them (a DSN or bounce
    /// about several recipients); the kind, status and recipient above are the first
    /// failure's.
    pub recipients: Vec<Verdict>,
    /// The Message-ID of the original mail, without angle brackets, when the report carries it.
    pub message_id: Option<String>,
    /// The envelope sender of the original mail as the report states it (ARF
    /// `Original-Mail-From`), lower-cased: a VERP address there names the mail exactly.
    pub original_sender: Option<String>,
    /// One line for staff: the diagnostic, the feedback type, or why it is unknown. At most
    /// [`MAX_DETAIL`] characters.
    pub detail: String,
}

/// Longest [`Report::detail`], in characters.
pub const MAX_DETAIL: usize = 300;

impl Report {
    fn new(kind: ReportKind, detail: impl Into<String>) -> Self {
        let detail: String = detail.into();
        Self {
            kind,
            status: None,
            recipient: None,
            recipients: Vec::new(),
            message_id: None,
            original_sender: None,
            detail: one_line(&detail),
        }
    }

    /// With `verdicts` (the first failure, else delay, else the first, becomes the report's
    /// own kind, status, recipient and detail; none: the report stays as it is).
    fn with_verdicts(self, verdicts: Vec<Verdict>) -> Self {
        let chosen = verdicts
            .iter()
            .position(|v| matches!(v.kind, ReportKind::Hard))
            .or_else(|| verdicts.iter().position(|v| v.kind == ReportKind::Soft))
            .or((!verdicts.is_empty()).then_some(0));
        let report = match chosen {
            Some(i) => self.about(&verdicts[i]),
            None => self,
        };
        Self {
            recipients: verdicts,
            ..report
        }
    }

    /// This report as it concerns one of its recipients.
    fn about(&self, verdict: &Verdict) -> Self {
        Self {
            kind: verdict.kind,
            status: verdict.status.clone(),
            recipient: Some(verdict.recipient.clone()),
            detail: verdict.detail.clone(),
            ..self.clone()
        }
    }

    /// What the report says of the recipient `is_them` picks, when it names several and that
    /// is one of them; else the report as it is.
    pub fn for_recipient(&self, is_them: impl Fn(&str) -> bool) -> Self {
        match self.recipients.iter().find(|v| is_them(&v.recipient)) {
            Some(verdict) if self.recipients.len() > 1 => self.about(verdict),
            _ => self.clone(),
        }
    }
}

/// Classifies one report as received (headers and body).
pub fn classify(raw: &[u8]) -> Report {
    let Some(message) = MessageParser::default().parse(raw) else {
        return Report::new(ReportKind::Unknown, "not an e-mail message (no headers)");
    };
    let message_id = original_message_id(&message);
    let mut report = if let Some(fields) = part_of_type(&message, "delivery-status") {
        from_dsn(&fields)
    } else if let Some(fields) = part_of_type(&message, "feedback-report") {
        from_arf(&fields, &message)
    } else if from_mailer_daemon(&message) {
        // Bounces carry `Auto-Submitted: auto-replied` too (RFC 3834 §5): the sender decides.
        from_text(&message)
    } else if is_auto_reply(&message) {
        Report::new(ReportKind::AutoReply, "automatic reply (RFC 3834)")
    } else if has_bounce_subject(&message) {
        from_text(&message)
    } else {
        Report::new(
            ReportKind::Unknown,
            "neither a delivery status notification, a feedback report nor an automatic reply",
        )
    };
    report.message_id = message_id;
    report
}

/// The body of the first `message/<subtype>` (or `message/global-<subtype>`) part, as text.
fn part_of_type<'a>(message: &'a Message<'a>, subtype: &str) -> Option<Cow<'a, str>> {
    let global = format!("global-{subtype}");
    message.parts.iter().find_map(|part| {
        let ct = part.content_type()?;
        let sub = ct.subtype()?;
        (ct.ctype().eq_ignore_ascii_case("message")
            && (sub.eq_ignore_ascii_case(subtype) || sub.eq_ignore_ascii_case(&global)))
        .then(|| String::from_utf8_lossy(part.contents()))
    })
}

/// Header-style field groups (RFC 3464 §2.1, RFC 5965 §3.1): each group a list of
/// (lower-case name, value), continuation lines unfolded.
fn field_groups(text: &str) -> Vec<Vec<(String, String)>> {
    let mut groups = Vec::new();
    let mut group: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !group.is_empty() {
                groups.push(std::mem::take(&mut group));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = group.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            group.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    if !group.is_empty() {
        groups.push(group);
    }
    groups
}

fn field<'a>(group: &'a [(String, String)], name: &str) -> Option<&'a str> {
    group
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// `rfc822; Someone@Example.org` → `someone@example.org`.
fn typed_address(value: &str) -> Option<String> {
    let address = value.split_once(';').map_or(value, |(_, a)| a);
    bare_address(address)
}

fn bare_address(value: &str) -> Option<String> {
    let a = value
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    (a.contains('@') && !a.contains(char::is_whitespace) && a.len() <= 254)
        .then(|| a.to_ascii_lowercase())
}

fn from_dsn(text: &str) -> Report {
    let groups = field_groups(text);
    let recipients: Vec<&Vec<(String, String)>> = groups
        .iter()
        .filter(|g| field(g, "final-recipient").is_some() || field(g, "action").is_some())
        .collect();
    let Some(first) = recipients.first() else {
        return Report::new(
            ReportKind::Unknown,
            "delivery status notification without a recipient",
        );
    };
    let verdict = |group: &[(String, String)]| {
        let action = field(group, "action").unwrap_or("").to_ascii_lowercase();
        let status = field(group, "status").and_then(status_code);
        let diagnostic = field(group, "diagnostic-code").unwrap_or("");
        // `failed` (opensmtpd says `error`), with comments some MTAs add after the word.
        let kind = match (
            action.split_whitespace().next().unwrap_or(""),
            status.as_deref(),
        ) {
            ("failed" | "error", Some(s)) if is_hard(s) => ReportKind::Hard,
            ("failed" | "error" | "delayed", _) => ReportKind::Soft,
            _ => ReportKind::Unknown,
        };
        let detail = if kind == ReportKind::Unknown {
            format!("delivery status notification with action {action:?}: not a failure")
        } else if diagnostic.is_empty() {
            format!("{action} {}", status.as_deref().unwrap_or(""))
        } else {
            format!("{action}: {diagnostic}")
        };
        let recipient = field(group, "original-recipient")
            .and_then(typed_address)
            .or_else(|| field(group, "final-recipient").and_then(typed_address));
        (kind, status, recipient, one_line(&detail))
    };
    let verdicts: Vec<Verdict> = recipients
        .iter()
        .filter_map(|g| {
            let (kind, status, recipient, detail) = verdict(g.as_slice());
            Some(Verdict {
                recipient: recipient?,
                kind,
                status,
                detail,
            })
        })
        .collect();
    let (kind, status, _, detail) = verdict(first.as_slice());
    Report {
        status,
        ..Report::new(kind, detail)
    }
    .with_verdicts(verdicts)
}

/// `5.1.x` (bad address) and `5.2.1` (mailbox disabled) mean the address is gone for good.
fn is_hard(status: &str) -> bool {
    status.starts_with("5.1.") || status == "5.2.1"
}

fn from_arf(text: &str, message: &Message<'_>) -> Report {
    let groups = field_groups(text);
    let fields: Vec<(String, String)> = groups.into_iter().flatten().collect();
    let feedback = field(&fields, "feedback-type")
        .unwrap_or("")
        .to_ascii_lowercase();
    let kind = match feedback.as_str() {
        "abuse" | "fraud" | "virus" => ReportKind::Complaint,
        _ => ReportKind::Unknown,
    };
    let recipient = field(&fields, "original-rcpt-to")
        .and_then(bare_address)
        .or_else(|| {
            original(message).and_then(|m| {
                m.to()
                    .and_then(|to| to.first())
                    .and_then(|a| a.address())
                    .and_then(bare_address)
            })
        })
        // Providers that redact the address ("redacted@") name nobody.
        .filter(|a| !a.ends_with('@') && a.split('@').nth(1).is_some_and(|d| d.contains('.')));
    let report = Report {
        original_sender: field(&fields, "original-mail-from").and_then(bare_address),
        ..Report::new(kind, format!("feedback report, type {feedback:?}"))
    };
    let verdicts = recipient
        .map(|recipient| Verdict {
            recipient,
            kind: report.kind,
            status: None,
            detail: report.detail.clone(),
        })
        .into_iter()
        .collect();
    report.with_verdicts(verdicts)
}

fn is_auto_reply(message: &Message<'_>) -> bool {
    let header = |name: &str| {
        message
            .header_raw(name)
            .map(|v| v.trim().to_ascii_lowercase())
    };
    if header("auto-submitted").is_some_and(|v| !v.starts_with("no")) {
        return true;
    }
    if header("x-autoreply").is_some()
        || header("x-autorespond").is_some()
        || header("x-autogenerated").is_some_and(|v| v == "reply")
        || header("precedence").is_some_and(|v| v == "auto_reply")
    {
        return true;
    }
    let subject = message.subject().unwrap_or("").to_ascii_lowercase();
    [
        "out of office",
        "out of the office",
        "automatic reply",
        "auto-reply",
        "autoreply",
        "auto:",
        "vacation",
        "away from",
        "abwesenheit",
        "réponse automatique",
    ]
    .iter()
    .any(|p| subject.contains(p))
}

/// From a mail system (`MAILER-DAEMON`, `postmaster`) or naming failed recipients.
fn from_mailer_daemon(message: &Message<'_>) -> bool {
    let from = message
        .from()
        .and_then(|f| f.first())
        .and_then(|a| a.address())
        .unwrap_or("")
        .to_ascii_lowercase();
    from.starts_with("mailer-daemon@")
        || from.starts_with("postmaster@")
        || message.header_raw("X-Failed-Recipients").is_some()
}

fn has_bounce_subject(message: &Message<'_>) -> bool {
    let subject = message.subject().unwrap_or("").to_ascii_lowercase();
    [
        "undeliver",
        "delivery fail",
        "delivery status notification",
        "returned mail",
        "returning message to sender",
        "failure notice",
    ]
    .iter()
    .any(|p| subject.contains(p))
}

/// A bounce without a delivery-status part: the first enhanced status code in the text says
/// what it is. The recipients: those in `X-Failed-Recipients` (Exim), else those that open a
/// line as `<address>:` (qmail, Postfix, Yahoo), else the first address in the text; each
/// judged by the first status code after its first mention, before the next one's.
fn from_text(message: &Message<'_>) -> Report {
    let text: String = message
        .text_bodies()
        .filter_map(|p| p.text_contents())
        .collect::<Vec<_>>()
        .join("\n");
    let status = first_status_code(&text);
    let kind_of = |status: Option<&str>| match status {
        Some(s) if is_hard(s) => ReportKind::Hard,
        Some(s) if s.starts_with('4') || s.starts_with('5') => ReportKind::Soft,
        _ => ReportKind::Unknown,
    };
    let detail_of = |status: Option<&str>, text: &str| {
        let line = status
            .and_then(|s| text.lines().find(|l| l.contains(s)))
            .map(str::trim)
            .unwrap_or("a bounce without an enhanced status code");
        one_line(&format!("plain-text bounce: {line}"))
    };
    let mut named: Vec<String> = message
        .headers_raw()
        .filter(|(name, _)| name.eq_ignore_ascii_case("X-Failed-Recipients"))
        .flat_map(|(_, value)| value.split(','))
        .filter_map(bare_address)
        .collect();
    if named.is_empty() {
        named = text
            .lines()
            .filter_map(|l| {
                let (head, _) = l.trim_start().split_once(':')?;
                head.starts_with('<').then(|| bare_address(head)).flatten()
            })
            .collect();
    }
    if named.is_empty() {
        named.extend(
            text.split_whitespace()
                .map(|w| w.trim_matches(|c: char| "<>():;,\"'".contains(c)))
                .find_map(|w| {
                    bare_address(w).filter(|a| !a.starts_with("bounces+") && w.contains('.'))
                }),
        );
    }
    named.dedup();
    let lower = text.to_ascii_lowercase();
    let starts: Vec<Option<usize>> = named.iter().map(|a| lower.find(a.as_str())).collect();
    let verdicts = named
        .iter()
        .zip(&starts)
        .map(|(address, start)| {
            let own = start.and_then(|start| {
                let end = starts
                    .iter()
                    .flatten()
                    .filter(|&&s| s > start)
                    .min()
                    .copied()
                    .unwrap_or(text.len());
                first_status_code(text.get(start..end)?)
            });
            let status = own.or_else(|| status.clone());
            Verdict {
                recipient: address.clone(),
                kind: kind_of(status.as_deref()),
                detail: detail_of(status.as_deref(), &text),
                status,
            }
        })
        .collect();
    Report {
        status: status.clone(),
        ..Report::new(
            kind_of(status.as_deref()),
            detail_of(status.as_deref(), &text),
        )
    }
    .with_verdicts(verdicts)
}

/// The first `class.subject.detail` code (RFC 3463: class 2, 4 or 5, up to 3 digits each) in
/// `text` that is not part of a longer dotted number (an IP address, a version).
fn first_status_code(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    (0..bytes.len()).find_map(|i| {
        if !matches!(bytes[i], b'2' | b'4' | b'5')
            || (i > 0 && (bytes[i - 1].is_ascii_digit() || bytes[i - 1] == b'.'))
        {
            return None;
        }
        status_code(&text[i..]).filter(|code| {
            let after = bytes.get(i + code.len());
            !after.is_some_and(|b| {
                b.is_ascii_digit()
                    || *b == b'.' && {
                        bytes
                            .get(i + code.len() + 1)
                            .is_some_and(u8::is_ascii_digit)
                    }
            })
        })
    })
}

/// The enhanced status code at the start of `value` (`5.1.1 (bad mailbox)` → `5.1.1`).
fn status_code(value: &str) -> Option<String> {
    let value = value.trim_start();
    let end = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let code = &value[..end];
    let parts: Vec<&str> = code.split('.').collect();
    let ok = parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    ok.then(|| code.to_owned())
}

/// The original message a report carries (`message/rfc822`), if it carries a whole one.
fn original<'a>(message: &'a Message<'a>) -> Option<&'a Message<'a>> {
    message.parts.iter().find_map(|p| match &p.body {
        PartType::Message(m) => Some(m),
        _ => None,
    })
}

/// Whether a part carries a copy of the original mail: whole (`message/rfc822`,
/// `message/global`) or its headers (`text/rfc822-headers`, `message/rfc822-headers`,
/// `message/global-headers`).
fn carries_original(part: &MessagePart<'_>) -> bool {
    if matches!(part.body, PartType::Message(_)) {
        return true;
    }
    part.content_type().is_some_and(|ct| {
        (ct.ctype().eq_ignore_ascii_case("text") || ct.ctype().eq_ignore_ascii_case("message"))
            && ct.subtype().is_some_and(|s| {
                s.eq_ignore_ascii_case("rfc822-headers")
                    || s.eq_ignore_ascii_case("global-headers")
                    || s.eq_ignore_ascii_case("rfc822")
            })
    })
}

/// The Message-ID in a block of headers, its last line read even without a final newline.
fn message_id_in_headers(raw: &[u8]) -> Option<String> {
    let mut headers = Vec::with_capacity(raw.len() + 4);
    headers.extend_from_slice(raw);
    headers.extend_from_slice(b"\r\n\r\n");
    MessageParser::default()
        .parse_headers(&headers)
        .and_then(|m| m.message_id().map(str::to_owned))
}

/// The Message-ID of the original mail: from a carried copy of it (whole or headers only,
/// wherever it is in the MIME tree), an `X-Original-Message-ID` field, the copy an Exim
/// bounce's text carries, or the report's own `In-Reply-To` (auto-replies, some bounces).
fn original_message_id(message: &Message<'_>) -> Option<String> {
    if let Some(id) = message
        .parts
        .iter()
        .filter(|p| carries_original(p))
        .find_map(|p| message_id_in_headers(p.contents()))
    {
        return Some(id);
    }
    if let Some(id) = part_of_type(message, "delivery-status").and_then(|t| {
        field_groups(&t)
            .into_iter()
            .flatten()
            .find(|(n, _)| n == "x-original-message-id")
            .map(|(_, v)| v.trim().trim_matches(['<', '>']).to_owned())
    }) {
        return Some(id);
    }
    // The text of an Exim bounce carries the original's headers after a separator line.
    if let Some(id) = message.text_bodies().find_map(|p| {
        let text = p.text_contents()?;
        text.lines()
            .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
            .map(|l| l[11..].trim().trim_matches(['<', '>']).to_owned())
    }) {
        return Some(id);
    }
    message
        .in_reply_to()
        .as_text()
        .map(|id| id.trim_matches(['<', '>']).to_owned())
}

fn one_line(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(MAX_DETAIL)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!("../../tests/fixtures/reports/", $name))
        };
    }

    fn update_mid(suffix: &str) -> Option<String> {
        Some(format!(
            "update.0f1e2d3c4b5a69788796a5b4c3d2e1f0.{suffix}@news.example.org"
        ))
    }

    #[test]
    fn a_postfix_dsn_for_an_unknown_user_is_hard() {
        let r = classify(fixture!("postfix_hard.eml"));
        assert_eq!(r.kind, ReportKind::Hard);
        assert_eq!(r.status.as_deref(), Some("5.1.1"));
        assert_eq!(r.recipient.as_deref(), Some("ghost@example.net"));
        assert_eq!(r.message_id, update_mid("11112222333344445555666677778888"));
        assert!(r.detail.contains("User unknown"), "{}", r.detail);
    }

    #[test]
    fn a_delayed_dsn_with_4_2_2_is_soft() {
        let r = classify(fixture!("postfix_delayed.eml"));
        assert_eq!(r.kind, ReportKind::Soft);
        assert_eq!(r.status.as_deref(), Some("4.2.2"));
        assert_eq!(r.recipient.as_deref(), Some("full@example.net"));
        assert_eq!(r.message_id, update_mid("99998888777766665555444433332222"));
    }

    #[test]
    fn an_exim_plain_text_bounce_is_hard() {
        let r = classify(fixture!("exim_hard.eml"));
        assert_eq!(r.kind, ReportKind::Hard);
        assert_eq!(r.status.as_deref(), Some("5.1.1"));
        assert_eq!(r.recipient.as_deref(), Some("nobody@example.com"));
        assert_eq!(r.message_id, update_mid("aaaabbbbccccddddeeeeffff00001111"));
    }

    #[test]
    fn gmail_and_microsoft_dsns_are_hard() {
        let g = classify(fixture!("gmail_hard.eml"));
        assert_eq!(g.kind, ReportKind::Hard);
        assert_eq!(g.recipient.as_deref(), Some("no.such.person@gmail.com"));
        assert_eq!(g.message_id, update_mid("12341234123412341234123412341234"));
        let m = classify(fixture!("microsoft_hard.eml"));
        assert_eq!(m.kind, ReportKind::Hard);
        assert_eq!(m.status.as_deref(), Some("5.1.10"));
        assert_eq!(m.recipient.as_deref(), Some("gone@outlook.com"));
        assert_eq!(m.message_id, update_mid("55556666777788889999aaaabbbbcccc"));
    }

    #[test]
    fn arf_abuse_reports_are_complaints() {
        let y = classify(fixture!("yahoo_arf.eml"));
        assert_eq!(y.kind, ReportKind::Complaint);
        assert_eq!(y.recipient.as_deref(), Some("annoyed@yahoo.com"));
        assert_eq!(y.message_id, update_mid("deadbeefdeadbeefdeadbeefdeadbeef"));
        assert_eq!(
            y.original_sender.as_deref(),
            Some("bounces+aaaaaaaaaaaaaaaaaaaaaaaaaaaaa@bounces.example.org")
        );
        // AOL redacts the address: the report names its mail only by the Message-ID.
        let a = classify(fixture!("aol_arf_headers_only.eml"));
        assert_eq!(a.kind, ReportKind::Complaint);
        assert_eq!(a.recipient, None);
        assert_eq!(a.message_id, update_mid("cafecafecafecafecafecafecafecafe"));
    }

    #[test]
    fn a_not_spam_feedback_report_is_no_complaint() {
        let raw = String::from_utf8_lossy(fixture!("yahoo_arf.eml"))
            .replace("Feedback-Type: abuse", "Feedback-Type: not-spam");
        assert_eq!(classify(raw.as_bytes()).kind, ReportKind::Unknown);
    }

    #[test]
    fn vacation_notices_are_auto_replies_even_with_a_status_code_in_the_text() {
        let v = classify(fixture!("vacation.eml"));
        assert_eq!(v.kind, ReportKind::AutoReply);
        assert_eq!(v.message_id, update_mid("11112222333344445555666677778888"));
        assert_eq!(
            classify(fixture!("outlook_ooo.eml")).kind,
            ReportKind::AutoReply
        );
    }

    #[test]
    fn malformed_or_unrelated_mail_is_unknown() {
        assert_eq!(
            classify(fixture!("malformed.eml")).kind,
            ReportKind::Unknown
        );
        assert_eq!(classify(b"").kind, ReportKind::Unknown);
        assert_eq!(classify(b"\x00\xff\xfe garbage").kind, ReportKind::Unknown);
        let letter =
            b"From: a@example.org\r\nSubject: hello\r\n\r\nHi, 5.1.1 is a nice number.\r\n";
        assert_eq!(classify(letter).kind, ReportKind::Unknown);
    }

    #[test]
    fn status_codes_are_found_but_not_inside_addresses_or_versions() {
        assert_eq!(
            first_status_code("said: 550 5.1.1 <x@y>").as_deref(),
            Some("5.1.1")
        );
        assert_eq!(
            first_status_code("host [192.5.1.1] said: 4.4.7").as_deref(),
            Some("4.4.7")
        );
        assert_eq!(first_status_code("Exim 4.96, version 5.1.1.2"), None);
        assert_eq!(status_code("5.1.10 (x)").as_deref(), Some("5.1.10"));
        assert_eq!(status_code("3.1.1"), None);
    }

    fn corpus(name: &str) -> Vec<u8> {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/reports/corpus/"
        );
        std::fs::read(format!("{dir}{name}")).unwrap()
    }

    fn corpus_mid(n: u32) -> Option<String> {
        Some(format!(
            "update.0f1e2d3c4b5a69788796a5b4c3d2e1f0.{n:032x}@news.example.org"
        ))
    }

    #[test]
    fn the_original_message_id_is_read_from_every_kind_of_carried_copy() {
        for (file, n) in [
            ("postfix_headers_without_final_newline.eml", 0x104),
            ("truncated_report.eml", 0x902),
            ("postfix_message_rfc822_headers.eml", 0x105),
            ("postfix_message_rfc822_whole.eml", 0x108),
            ("exchange_online_unknown.eml", 0x301),
            ("nested_report_in_mixed.eml", 0x901),
        ] {
            let r = classify(&corpus(file));
            assert_eq!(r.message_id, corpus_mid(n), "{file}");
            assert_eq!(r.kind, ReportKind::Hard, "{file}");
        }
    }

    #[test]
    fn a_report_about_several_recipients_says_what_it_says_of_each() {
        let r = classify(&corpus("postfix_multi_recipient.eml"));
        let verdicts: Vec<(&str, ReportKind)> = r
            .recipients
            .iter()
            .map(|v| (v.recipient.as_str(), v.kind))
            .collect();
        assert_eq!(
            verdicts,
            [
                ("alice@example.net", ReportKind::Hard),
                ("bob@example.net", ReportKind::Hard),
                ("carol@example.net", ReportKind::Soft)
            ]
        );
        assert_eq!(r.kind, ReportKind::Hard);
        let carol = r.for_recipient(|a| a == "carol@example.net");
        assert_eq!(
            (carol.kind, carol.status.as_deref()),
            (ReportKind::Soft, Some("4.4.1"))
        );

        let q = classify(&corpus("qmail_multi_recipient.eml"));
        let verdicts: Vec<(&str, ReportKind, Option<&str>)> = q
            .recipients
            .iter()
            .map(|v| (v.recipient.as_str(), v.kind, v.status.as_deref()))
            .collect();
        assert_eq!(
            verdicts,
            [
                (
                    "first.gone@qmail.example.org",
                    ReportKind::Hard,
                    Some("5.1.1")
                ),
                (
                    "second.full@qmail.example.net",
                    ReportKind::Soft,
                    Some("4.2.2")
                )
            ]
        );
        let e = classify(&corpus("exim_multi_recipient.eml"));
        assert_eq!(e.recipients.len(), 2);
        assert!(e.recipients.iter().all(|v| v.kind == ReportKind::Hard));
    }

    #[test]
    fn the_detail_is_one_bounded_line() {
        let long = format!(
            "Action: failed\nStatus: 5.7.1\nDiagnostic-Code: smtp; {}\n",
            "x ".repeat(1000)
        );
        let r = from_dsn(&format!(
            "Reporting-MTA: dns; a\n\nFinal-Recipient: rfc822; a@b.c\n{long}"
        ));
        assert_eq!(
            r.kind,
            ReportKind::Soft,
            "a policy failure is not the address's fault"
        );
        assert!(r.detail.chars().count() <= MAX_DETAIL && !r.detail.contains('\n'));
    }
}
