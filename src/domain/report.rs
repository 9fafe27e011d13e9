//! The words of an update's report: which mailbox provider an address belongs to, and what a
//! relay's refusal means in plain words. Pure functions over strings.

/// The mailbox providers the report shows on their own (the rest are `others`): the largest
/// ones, whose rules (Gmail's and Yahoo's bulk-sender rules of 2024, Outlook.com's of 2025)
/// decide most of a list's deliverability.
pub const PROVIDERS: [&str; 5] = [
    "gmail.com",
    "yahoo.com",
    "outlook.com/hotmail.com",
    "icloud.com",
    "others",
];

/// The provider of a mail domain (an A-label, lower case), as [`PROVIDERS`] names it.
pub fn provider_of(domain: &str) -> &'static str {
    let first = domain.split('.').next().unwrap_or("");
    match domain {
        "gmail.com" | "googlemail.com" => "gmail.com",
        "ymail.com" | "rocketmail.com" | "aol.com" => "yahoo.com",
        "outlook.com" | "hotmail.com" | "live.com" | "msn.com" => "outlook.com/hotmail.com",
        "icloud.com" | "me.com" | "mac.com" => "icloud.com",
        _ if first == "yahoo" => "yahoo.com",
        _ if matches!(first, "hotmail" | "outlook" | "live") => "outlook.com/hotmail.com",
        _ => "others",
    }
}

/// Gmail's complaint-rate lines (its sender guidelines): stay under the first; at the second,
/// Gmail starts refusing or filtering the sender's mail.
pub const COMPLAINT_RATE_GOOD: f64 = 0.001;
pub const COMPLAINT_RATE_LIMIT: f64 = 0.003;

/// The reply code of a relay's answer, as the report groups by it: the basic code and the
/// enhanced status code (RFC 3463) where the reply has them (`550 5.7.26`, `421 4.7.28`,
/// `5.1.1`), else `other`.
pub fn reply_group(reply: &str) -> String {
    let words: Vec<&str> = reply
        .split(|c: char| c.is_whitespace() || c == '-' || c == ':' || c == ',' || c == ';')
        .map(|w| w.trim_matches(|c: char| matches!(c, '(' | ')' | '[' | ']' | '<' | '>')))
        .filter(|w| !w.is_empty())
        .collect();
    let basic = words.iter().find(|w| {
        w.len() == 3
            && w.bytes().all(|b| b.is_ascii_digit())
            && matches!(w.as_bytes()[0], b'4' | b'5')
    });
    let enhanced = words.iter().find(|w| is_enhanced(w));
    match (basic, enhanced) {
        (Some(b), Some(e)) => format!("{b} {e}"),
        (Some(b), None) => (*b).to_owned(),
        (None, Some(e)) => (*e).to_owned(),
        (None, None) => "other".to_owned(),
    }
}

fn is_enhanced(word: &str) -> bool {
    let parts: Vec<&str> = word.trim_end_matches('.').split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

/// What a reply group means and what to do, in plain words.
pub fn explain(group: &str) -> &'static str {
    let enhanced = group.rsplit(' ').next().unwrap_or(group);
    match enhanced {
        "5.7.515" => "Outlook.com refuses mail from bulk senders that fails DMARC or lacks SPF and DKIM: see Deliverability.",
        "5.7.26" | "5.7.27" => "Gmail refused mail that fails authentication (SPF, DKIM or DMARC for the From domain): see Deliverability.",
        "4.7.28" | "4.7.27" => "Gmail is slowing down mail from this sender (an unusual rate, or complaints): the service retries later; check the complaint rate.",
        "5.7.1" => "Refused by the receiving server's policy (a spam filter or a block list): check Deliverability and the complaint rate.",
        "5.1.1" | "5.1.10" | "5.1.0" => "The mailbox does not exist: the address is wrong or closed. The subscriber is bounced and never mailed again.",
        "4.2.2" | "5.2.2" => "The mailbox is full. Retried while it is temporary; the reader may not read this address any more.",
        "4.4.1" | "4.4.2" | "4.4.7" => "The receiving server could not be reached or did not answer in time: retried automatically.",
        "4.7.0" => "A temporary refusal (greylisting or rate limiting): retried automatically.",
        _ if group.starts_with('4') => "A temporary refusal: retried automatically until sending.give_up_after_hours.",
        _ if group.starts_with('5') => "A permanent refusal by the receiving server: the relay's reply says why.",
        _ => "No reply code: the connection failed, or the mail was given up on.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_grouped_by_their_codes() {
        assert_eq!(
            reply_group("550 5.7.26 Unauthenticated email from x is not accepted"),
            "550 5.7.26"
        );
        assert_eq!(
            reply_group("550-5.7.26 This mail has been blocked"),
            "550 5.7.26"
        );
        assert_eq!(
            reply_group("421 4.7.28 Our system has detected an unusual rate"),
            "421 4.7.28"
        );
        assert_eq!(
            reply_group("gave up after 72 hours: 451 4.3.0 try later"),
            "451 4.3.0"
        );
        assert_eq!(reply_group("5.1.1 user unknown"), "5.1.1");
        // as lettre words a relay's error
        assert_eq!(
            reply_group("permanent error (550): 5.1.1 No such user"),
            "550 5.1.1"
        );
        assert_eq!(reply_group("connection refused"), "other");
        assert_eq!(reply_group("250 2.0.0 ok"), "other");
        assert!(explain("550 5.7.515").contains("Outlook.com"));
        assert!(explain("550 5.7.26").contains("Gmail"));
        assert!(explain("451 4.3.0").contains("retried"));
    }

    #[test]
    fn providers_are_the_large_ones_and_others() {
        assert_eq!(provider_of("googlemail.com"), "gmail.com");
        assert_eq!(provider_of("yahoo.co.uk"), "yahoo.com");
        assert_eq!(provider_of("hotmail.fr"), "outlook.com/hotmail.com");
        assert_eq!(provider_of("me.com"), "icloud.com");
        assert_eq!(provider_of("example.org"), "others");
        assert_eq!(provider_of("notgmail.com"), "others");
    }
}
