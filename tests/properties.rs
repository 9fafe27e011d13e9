//! Property tests: parsers never panic and never let through what they promise to refuse;
//! hostile subscriber data cannot break out of a header or of HTML escaping.

use newsletter::domain::{EmailAddress, SignupInput, SubscriberName, Token};
use newsletter::mail::{bulk_message, Envelope, ListHeaders, MailTemplates};
use proptest::prelude::*;

fn templates() -> MailTemplates {
    MailTemplates::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/templates"
    )))
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn address_parsing_never_panics_and_accepts_only_clean_bounded_addresses(raw in "\\PC{0,300}|[a-zA-Z0-9._%+\\-@\\r\\n <>\"]{0,80}") {
        if let Ok(a) = EmailAddress::parse(&raw) {
            prop_assert!(a.as_str().len() <= 254);
            prop_assert!(!a.as_str().chars().any(|c| c.is_whitespace() || c.is_control()));
            prop_assert_eq!(a.as_str().matches('@').count(), 1);
            prop_assert_eq!(EmailAddress::parse(a.as_str()).unwrap(), a.clone());
            prop_assert_eq!(a.normalized(), a.normalized().to_lowercase());
        }
    }

    #[test]
    fn valid_looking_addresses_are_accepted(local in "[a-z0-9]{1,20}([._+-][a-z0-9]{1,10}){0,2}", domain in "[a-z0-9]{1,20}(\\.[a-z]{2,10}){1,2}") {
        let raw = format!("{local}@{domain}");
        prop_assert!(EmailAddress::parse(&raw).is_ok(), "{}", raw);
    }

    #[test]
    fn names_never_carry_control_characters(raw in "\\PC{0,150}|[a-z \\r\\n\\t\\u{0}]{0,20}") {
        if let Ok(Some(name)) = SubscriberName::parse(&raw) {
            prop_assert!(!name.as_str().chars().any(char::is_control));
            prop_assert!(name.as_str().chars().count() <= 100);
        }
    }

    #[test]
    fn token_parsing_never_panics_and_round_trips(raw in "[A-Za-z0-9_\\-+/=]{0,60}") {
        if let Ok(t) = Token::parse(&raw) {
            prop_assert_eq!(t.as_str(), raw.as_str());
        }
        let fresh = Token::generate();
        prop_assert_eq!(Token::parse(fresh.as_str()).unwrap(), fresh);
    }

    #[test]
    fn signup_parsing_never_panics(email in "\\PC{0,80}", name in "\\PC{0,120}", lists in proptest::collection::vec("\\PC{0,20}", 0..60), state in "\\PC{0,4}") {
        let _ = SignupInput { email, name, lists, state, honeypot: String::new() }.parse();
    }

    #[test]
    fn hostile_names_and_subjects_cannot_inject_headers_or_markup(name in "\\PC{0,100}", subject in "\\PC{1,100}") {
        let Ok(Some(name)) = SubscriberName::parse(&name) else { return Ok(()) };
        let settings = newsletter::config::Settings::from_overrides([("security.secret_key", "x".repeat(40).into())]).unwrap();
        let data = serde_json::json!({
            "subject": subject, "preheader": "", "intro": "", "intro_html": "", "news_items": [],
            "name": name.as_str(), "email": "a@example.org", "unsubscribe_url": "https://x.example/u",
            "manage_url": "https://x.example/m", "web_url": "https://x.example/w", "postal_address": "1 St",
        });
        let envelope = Envelope::new(&settings.mail, "a@example.org", Some(name.as_str()), "m.1@example.org".into());
        let list = ListHeaders { unsubscribe_url: "https://x.example/u".into(), list_id: "l.example.org".into() };
        let message = bulk_message(&templates(), "update", &envelope, &data, &list).unwrap();
        let raw = String::from_utf8_lossy(&message.formatted()).into_owned();
        let head = raw.split("\r\n\r\n").next().unwrap();
        prop_assert!(!head.lines().any(|l| l.to_ascii_lowercase().starts_with("bcc:")), "{}", head);
        prop_assert_eq!(head.lines().filter(|l| l.starts_with("To:")).count(), 1);
        prop_assert_eq!(head.lines().filter(|l| l.starts_with("Subject:")).count(), 1);
        let parsed = mail_parser::MessageParser::default().parse(raw.as_bytes()).unwrap();
        let html = parsed.body_html(0).unwrap();
        let greeting = format!("Hello {},", name.as_str());
        if name.as_str().contains(['<', '>', '&', '"']) {
            prop_assert!(!html.contains(&greeting), "the name reached the HTML unescaped: {}", html);
        } else {
            prop_assert!(html.contains(&greeting) || name.as_str().contains(['\'', '`', '=']));
        }
    }
}
