//! The RFC 2369 `mailto:` unsubscribe (issue 30, item 4): with `bounce.return_path_domain` set,
//! each update's `List-Unsubscribe` carries `mailto:unsubscribe+<token>@<domain>` after the https
//! URL; a mail to it (any subject, any body) through the inbound listener unsubscribes exactly
//! that person; a forged token, another installation's, or one voided by a new link version
//! changes nothing; without the domain there is no mailto.

use std::time::Duration;

use newsletter::domain::mailto_unsubscribe;

use crate::bounces::overrides;
use crate::helpers::{spawn_app_with, TestApp};
use crate::smtp_server::ReceivedMail;

const WAIT: Duration = Duration::from_secs(20);

fn list_unsubscribe(mail: &ReceivedMail) -> String {
    let parsed = mail_parser::MessageParser::default()
        .parse(&mail.data)
        .unwrap();
    parsed
        .header_raw("List-Unsubscribe")
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn mailto_of(header: &str) -> String {
    let start = header.find("<mailto:").expect("a mailto: address") + "<mailto:".len();
    header[start..start + header[start..].find('>').unwrap()].to_owned()
}

async fn sent(app: &TestApp, n: i64) -> (Vec<(uuid::Uuid, String)>, Vec<ReceivedMail>) {
    let readers = app.seed_confirmed(n, "example.org").await;
    let token = app.api_token().await;
    let id = app.create_update(&token, "News").await;
    app.send_now(&token, &id).await;
    (readers, app.smtp.wait_for(n as usize, WAIT).await)
}

fn plain_mail(to: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: Someone <someone@example.org>\r\nTo: {to}\r\nSubject: {subject}\r\n\
         Message-ID: <x{}@example.org>\r\n\r\nPlease take me off.\r\n",
        uuid::Uuid::new_v4().simple()
    )
    .into_bytes()
}

#[tokio::test]
async fn a_mail_to_the_mailto_address_unsubscribes_exactly_that_person() {
    let app = spawn_app_with(&overrides(&[])).await;
    let (readers, mails) = sent(&app, 3).await;
    let mail = mails
        .iter()
        .find(|m| m.rcpt_to.contains(&readers[1].1))
        .unwrap();
    let header = list_unsubscribe(mail);
    assert!(
        header.starts_with("<https://") || header.starts_with("<http://"),
        "the URL first: {header}"
    );
    let mailto = mailto_of(&header);
    assert!(mailto.starts_with("unsubscribe+") && mailto.ends_with("@bounces.example.org"));
    // Another reader's mailto differs.
    let other = mails
        .iter()
        .find(|m| m.rcpt_to.contains(&readers[0].1))
        .unwrap();
    assert_ne!(mailto_of(&list_unsubscribe(other)), mailto);

    // Any subject, any body; the address in any case.
    let r = app
        .send_report(&mailto.to_ascii_uppercase(), &plain_mail(&mailto, "stop"))
        .await;
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(
        app.subscriber_status(&readers[1].1).await.as_deref(),
        Some("unsubscribed")
    );
    for other in [&readers[0].1, &readers[2].1] {
        assert_eq!(
            app.subscriber_status(other).await.as_deref(),
            Some("confirmed")
        );
    }
    let source: String = sqlx::query_scalar(
        "SELECT source FROM consent_events WHERE subscriber_id = $1 AND kind = 'unsubscribe'",
    )
    .bind(readers[1].0)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(source, "mailto");
    // The same mail again changes nothing more.
    app.send_report(&mailto, &plain_mail(&mailto, "again"))
        .await
        .unwrap();
    let events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM consent_events WHERE subscriber_id = $1 AND kind = 'unsubscribe'",
    )
    .bind(readers[1].0)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(events, 1);
}

#[tokio::test]
async fn a_forged_token_another_installations_and_a_voided_one_change_nothing() {
    let app = spawn_app_with(&overrides(&[])).await;
    let (readers, _) = sent(&app, 2).await;
    let domain = "bounces.example.org";
    let id = readers[0].0;
    let other_key =
        mailto_unsubscribe::address(b"another-installation-secret-key-0123", id, 1, domain);
    let voided = mailto_unsubscribe::address(crate::helpers::SECRET_KEY.as_bytes(), id, 2, domain);
    let mut forged =
        mailto_unsubscribe::address(crate::helpers::SECRET_KEY.as_bytes(), id, 1, domain)
            .into_bytes();
    forged[40] = if forged[40] == b'a' { b'b' } else { b'a' };
    let forged = String::from_utf8(forged).unwrap();
    for address in [&other_key, &voided, &forged] {
        // Taken or refused at RCPT, either way nobody changes.
        let _ = app.send_report(address, &plain_mail(address, "stop")).await;
    }
    // A local part that is no token of ours is refused at RCPT.
    let r = app
        .send_report(
            "unsubscribe+nope@bounces.example.org",
            &plain_mail("x", "stop"),
        )
        .await;
    assert!(r.is_err(), "not an address of ours: refused");
    for (_, email) in &readers {
        assert_eq!(
            app.subscriber_status(email).await.as_deref(),
            Some("confirmed")
        );
    }
}

#[tokio::test]
async fn without_a_verp_domain_there_is_no_mailto() {
    let app = spawn_app_with(&[]).await;
    let (_, mails) = sent(&app, 1).await;
    let header = list_unsubscribe(&mails[0]);
    assert!(!header.contains("mailto:"), "{header}");
}
