//! Property tests: parsers never panic and never let through what they promise to refuse;
//! hostile subscriber data cannot break out of a header or of HTML escaping.

use newsletter::domain::{EmailAddress, SignupInput, SubscriberName, Token};
use newsletter::mail::{bulk_message, Envelope, ListHeaders, MailTemplates, Stencil};
use newsletter::ops::imports::read_csv;
use proptest::prelude::*;

fn templates() -> &'static MailTemplates {
    static TEMPLATES: std::sync::OnceLock<MailTemplates> = std::sync::OnceLock::new();
    TEMPLATES.get_or_init(|| MailTemplates::load(&settings().templates).unwrap())
}

fn settings() -> newsletter::config::Settings {
    newsletter::config::Settings::from_overrides([("security.secret_key", "x".repeat(40).into())])
        .unwrap()
}

/// An update mail to `to`, built the way the worker builds one.
fn update_mail(to: &str, name: Option<&str>, subject: &str) -> Result<lettre::Message, String> {
    let data = serde_json::json!({
        "subject": subject, "preheader": "", "intro": "", "intro_html": "", "news_items": [],
        "name": name, "email": to, "unsubscribe_url": "https://x.example/u",
        "manage_url": "https://x.example/m", "web_url": "https://x.example/w", "postal_address": "1 St",
    });
    let envelope = Envelope::new(&settings().mail, to, name, "m.1@example.org".into());
    let list = ListHeaders {
        unsubscribe_url: "https://x.example/u".into(),
        unsubscribe_mailto: None,
        list_id: "<l.example.org>".into(),
        feedback_id: "u:l:update:example.org".into(),
    };
    bulk_message(templates(), "update", &envelope, &data, &list).map_err(|e| format!("{e:#}"))
}

/// `s` with each ASCII letter in upper or lower case as `mask`'s bits say.
fn recase(s: &str, mask: u64) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 64) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

/// `s` with ASCII letters turned into their fullwidth compatibility forms where `mask` says.
fn fullwidth(s: &str, mask: u64) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| match c {
            'a'..='z' if mask >> (i % 64) & 1 == 1 => {
                char::from_u32(c as u32 - 'a' as u32 + 0xFF41).unwrap()
            }
            _ => c,
        })
        .collect()
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
            prop_assert_eq!(a.canonical(), a.canonical().to_lowercase());
            prop_assert!(a.as_str().is_ascii(), "the envelope form is ASCII: {}", a.as_str());
            // whatever the parser accepts, the mail builder accepts, with it as the recipient
            let mail = update_mail(a.as_str(), None, "s");
            prop_assert!(mail.is_ok(), "{}: {:?}", a.as_str(), mail.err());
            let mail = mail.unwrap();
            let to: Vec<String> = mail.envelope().to().iter().map(|t| t.to_string()).collect();
            prop_assert_eq!(to, vec![a.as_str().to_owned()]);
        }
    }

    #[test]
    fn quoted_and_international_addresses_build_mails_or_are_refused(raw in "\"?[a-zA-Z0-9.,+ @\\\\]{0,12}\"?@[a-zA-Z0-9üßéÄ\\-]{1,12}\\.[a-zA-Zü]{2,6}") {
        if let Ok(a) = EmailAddress::parse(&raw) {
            let mail = update_mail(a.as_str(), None, "s");
            prop_assert!(mail.is_ok(), "{} -> {}: {:?}", raw, a.as_str(), mail.err());
            prop_assert_eq!(mail.unwrap().envelope().to().len(), 1);
        }
    }

    #[test]
    fn spellings_of_one_mailbox_give_one_canonical_form(
        local in "[a-z0-9]{1,10}([._+-][a-z0-9]{1,8}){0,2}",
        label in "[a-z0-9äöüéñ]{1,12}",
        tld in "[a-z]{2,6}",
        case in any::<u64>(), width in any::<u64>(), quote in any::<bool>(), ascii in any::<bool>(),
    ) {
        prop_assume!(!label.starts_with("xn--") && !label.contains("--"));
        let plain = format!("{local}@{label}.{tld}");
        let Ok(reference) = EmailAddress::parse(&plain) else { return Ok(()) };
        let domain = if ascii {
            reference.domain().to_owned()
        } else {
            fullwidth(&recase(&format!("{label}.{tld}"), case.rotate_left(7)), width)
        };
        let local = recase(&local, case);
        let local = if quote { format!("\"{local}\"") } else { local };
        let spelling = format!("{local}@{domain}");
        let other = EmailAddress::parse(&spelling);
        prop_assert!(other.is_ok(), "{} refused: {:?}", spelling, other.err());
        let other = other.unwrap();
        prop_assert_eq!(other.canonical(), reference.canonical(), "{} vs {}", spelling, plain);
    }

    #[test]
    fn different_mailboxes_keep_different_canonical_forms(
        a in "[a-z0-9]{1,8}(\\.[a-z0-9]{1,4})?@[a-z0-9äöüéñ]{1,8}\\.[a-z]{2,3}",
        b in "[a-z0-9]{1,8}(\\.[a-z0-9]{1,4})?@[a-z0-9äöüéñ]{1,8}\\.[a-z]{2,3}",
    ) {
        prop_assume!(a != b);
        if let (Ok(x), Ok(y)) = (EmailAddress::parse(&a), EmailAddress::parse(&b)) {
            prop_assert_ne!(x.canonical(), y.canonical(), "{} and {}", a, b);
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
        // An update's subject is never blank (its parser refuses one).
        prop_assume!(!subject.trim().is_empty());
        let message = update_mail("a@example.org", Some(name.as_str()), &subject).unwrap();
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

    #[test]
    fn a_stencil_fills_in_exactly_what_rendering_per_recipient_gives(
        name in proptest::option::of("\\PC{0,40}|[<>&\"'`= a-z]{0,12}"),
        email in "[a-z0-9.+]{1,20}@[a-z0-9.-]{1,20}",
        unsubscribe in "https://[a-z.]{1,20}/unsubscribe/[A-Za-z0-9_&=?-]{0,40}",
        manage in "https://[a-z.]{1,20}/manage/[A-Za-z0-9_&=?<>-]{0,40}",
        items in 0usize..3,
    ) {
        let data = |name: Option<&str>, email: &str, unsubscribe: &str, manage: &str| serde_json::json!({
            "subject": "Weekly <news> & more", "preheader": "Pre \"header\"", "intro": "Dear *reader*",
            "intro_html": "<p>Dear <em>reader</em></p>",
            "news_items": (0..items).map(|i| serde_json::json!({"title": format!("Item {i} <b>"), "summary": "S & T",
                "source": "Src", "url": "https://example.org/a?b=1&c=2", "published_on": "2026-11-20", "topic": null}))
                .collect::<Vec<_>>(),
            "name": name, "email": email, "unsubscribe_url": unsubscribe, "manage_url": manage,
            "web_url": "https://example.org/archive/x", "postal_address": "1 St & Co",
        });
        // An empty name is no name, as the worker has it.
        let name = name.filter(|n| !n.is_empty());
        let named = name.is_some();
        let stencil = Stencil::new(templates(), "update", 4, |holes| {
            data(named.then_some(holes[0].as_str()), &holes[1], &holes[2], &holes[3])
        })
        .unwrap()
        .expect("the shipped update template takes a stencil");
        let values = [name.as_deref().unwrap_or(""), &email, &unsubscribe, &manage];
        let filled = stencil.fill(&values);
        let rendered = templates().render("update", &data(name.as_deref(), &email, &unsubscribe, &manage)).unwrap();
        prop_assert_eq!(&filled, &rendered);
        // Its parts, encoded a line at a time, are what lettre makes of the rendered text.
        let encoded = stencil.fill_encoded(&values);
        prop_assert_eq!(&encoded.subject, &rendered.subject);
        for (ours, text) in [(encoded.text, rendered.text), (encoded.html, rendered.html)] {
            let lettre = lettre::message::Body::new(text);
            prop_assert_eq!(ours.encoding(), lettre.encoding());
            prop_assert_eq!(ours.into_vec(), lettre.into_vec());
        }
    }

    #[test]
    fn an_import_file_never_panics_and_names_only_lines_it_has(
        body in "\\PC{0,200}|[a-z@.,;\"\\r\\n ]{0,120}",
        header in "(email|EMAIL|name|state|status|lists|x)([,;](email|name|state|status|lists|pending_lists|x)){0,4}",
        bom in any::<bool>(),
    ) {
        let mut file = Vec::new();
        if bom {
            file.extend_from_slice(b"\xEF\xBB\xBF");
        }
        file.extend_from_slice(format!("{header}\n{body}").as_bytes());
        // A line ends with LF, CRLF or CR alone.
        let ends = file
            .iter()
            .enumerate()
            .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && file.get(i + 1) != Some(&b'\n')))
            .count();
        let lines = ends + 1;
        if let Ok(read) = read_csv(&file, &["news".to_string()]) {
            prop_assert!(read.rows.len() <= read.records);
            for line in read.errors.iter().map(|e| e.line).chain(read.rows.iter().map(|r| r.line)) {
                prop_assert!((2..=lines).contains(&line), "line {} of a {}-line file", line, lines);
            }
        }
    }

    #[test]
    fn each_row_and_each_bad_field_is_reported_on_the_line_it_is_on(
        rows in proptest::collection::vec((any::<bool>(), 0usize..3, "[a-z]{1,8}"), 1..40),
        crlf in any::<bool>(),
        semicolon in any::<bool>(),
        bom in any::<bool>(),
    ) {
        let (end, sep) = (if crlf { "\r\n" } else { "\n" }, if semicolon { ";" } else { "," });
        let mut file = String::new();
        if bom {
            file.push('\u{feff}');
        }
        file.push_str(&format!("name{sep}email{end}"));
        let (mut line, mut good, mut bad) = (1usize, Vec::new(), Vec::new());
        for (is_good, blank_lines_before, local) in &rows {
            for _ in 0..*blank_lines_before {
                file.push_str(end);
                line += 1;
            }
            line += 1;
            if *is_good {
                file.push_str(&format!("{local}{sep}{local}{line}@example.org{end}"));
                good.push(line);
            } else {
                file.push_str(&format!("{local}{sep}{local} at example.org{end}"));
                bad.push(line);
            }
        }
        let read = read_csv(file.as_bytes(), &[]).unwrap();
        prop_assert_eq!(read.records, rows.len());
        prop_assert_eq!(read.rows.iter().map(|r| r.line).collect::<Vec<_>>(), good.clone());
        for row in &read.rows {
            let expected = format!("{}@example.org", row.line);
            prop_assert!(row.email.as_str().ends_with(&expected), "{} on line {}", row.email.as_str(), row.line);
        }
        prop_assert_eq!(read.errors.iter().map(|e| (e.line, e.field.as_str())).collect::<Vec<_>>(),
            bad.iter().map(|&l| (l, "email")).collect::<Vec<_>>());
    }
}
