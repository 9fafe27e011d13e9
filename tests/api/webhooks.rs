//! Sending providers' webhooks: a correctly signed sample is recorded, a forged or unsigned one
//! is refused with 401 and changes nothing. Keys are made for each test with `openssl`, and
//! samples signed with them.

use std::path::PathBuf;
use std::process::Command;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use toml::Value;

use crate::helpers::{spawn_app_with, TestApp};

/// A temporary folder for keys, removed on drop.
struct Keys(PathBuf);

impl Keys {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("webhook-keys-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn openssl(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&self.0)
            .output()
            .expect("openssl runs (scripts/test installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// base64 of the SHA-256 signature of `data` with the private key in `key`.
    fn sign(&self, key: &str, data: &[u8]) -> String {
        let input = self.path("data.bin");
        std::fs::write(&input, data).unwrap();
        let signature = self.openssl(&["dgst", "-sha256", "-sign", key, "data.bin"]);
        STANDARD.encode(signature)
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn app_with(overrides: &[(&str, Value)]) -> TestApp {
    let app = spawn_app_with(overrides).await;
    app.seed_confirmed(2, "example.net").await;
    app
}

async fn reports(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM bounce_reports")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

async fn post(app: &TestApp, path: &str, headers: &[(&str, String)], body: &[u8]) -> u16 {
    answer(app, path, headers, body).await.0
}

/// The status and the JSON answer of a call.
async fn answer(
    app: &TestApp,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, serde_json::Value) {
    let mut request = app
        .http
        .post(app.url(path))
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// Unix seconds, `offset` from now.
fn unix_now(offset: i64) -> i64 {
    chrono::Utc::now().timestamp() + offset
}

const AN_HOUR: i64 = 3600;

async fn status(app: &TestApp, email: &str) -> String {
    app.subscriber_status(email).await.unwrap()
}

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ses-bounces";

fn sns_message(
    keys: &Keys,
    topic: &str,
    recipient: &str,
    forge_recipient: Option<&str>,
) -> Vec<u8> {
    sns_message_at(keys, topic, recipient, forge_recipient, 0, "9f1b-sns")
}

/// An SNS notification of an SES bounce for `recipient`, signed with its `Timestamp`
/// `offset` seconds from now; `forge_recipient` replaces the recipient after signing.
fn sns_message_at(
    keys: &Keys,
    topic: &str,
    recipient: &str,
    forge_recipient: Option<&str>,
    offset: i64,
    id: &str,
) -> Vec<u8> {
    let notification = |to: &str| {
        json!({
            "notificationType": "Bounce",
            "bounce": {"bounceType": "Permanent", "bounceSubType": "General",
                       "bouncedRecipients": [{"emailAddress": to, "status": "5.1.1",
                                              "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]},
            "mail": {"messageId": "0100018c-ses", "source": "updates@example.org"}
        })
        .to_string()
    };
    let message = notification(recipient);
    let time = chrono::DateTime::from_timestamp(unix_now(offset), 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    let signed = format!(
        "Message\n{message}\nMessageId\n{id}\nTimestamp\n{time}\nTopicArn\n{topic}\nType\nNotification\n"
    );
    let signature = keys.sign("sns.key", signed.as_bytes());
    let shown = forge_recipient.map_or(message, notification);
    json!({"Type": "Notification", "MessageId": id, "TopicArn": topic, "Message": shown,
           "Timestamp": time, "SignatureVersion": "2", "Signature": signature,
           "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService.pem"})
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn ses_through_sns_accepts_a_signed_bounce_and_refuses_a_forged_or_unsigned_one() {
    let keys = Keys::new();
    keys.openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "sns.key",
        "-out",
        "sns.pem",
        "-days",
        "2",
        "-subj",
        "/CN=sns.amazonaws.com",
    ]);
    let cert = keys.path("sns.pem");
    let app = app_with(&[
        (
            "webhooks.ses_certificate_file",
            cert.to_str().unwrap().into(),
        ),
        ("webhooks.ses_topic_arn", TOPIC.into()),
    ])
    .await;

    let forged = sns_message(
        &keys,
        TOPIC,
        "reader0@example.net",
        Some("reader1@example.net"),
    );
    assert_eq!(post(&app, "/webhooks/ses", &[], &forged).await, 401);
    let mut unsigned: serde_json::Value =
        serde_json::from_slice(&sns_message(&keys, TOPIC, "reader1@example.net", None)).unwrap();
    unsigned.as_object_mut().unwrap().remove("Signature");
    assert_eq!(
        post(&app, "/webhooks/ses", &[], unsigned.to_string().as_bytes()).await,
        401
    );
    // Amazon signs every customer's topics with the same certificate: a correctly signed
    // message of someone else's topic is refused.
    let foreign_topic = "arn:aws:sns:us-east-1:999999999999:not-ours";
    let foreign = sns_message(&keys, foreign_topic, "reader1@example.net", None);
    assert_eq!(post(&app, "/webhooks/ses", &[], &foreign).await, 401);
    assert_eq!(reports(&app).await, 0, "nothing recorded");
    assert_eq!(status(&app, "reader1@example.net").await, "confirmed");

    let signed = sns_message(&keys, TOPIC, "reader0@example.net", None);
    assert_eq!(post(&app, "/webhooks/ses", &[], &signed).await, 200);
    assert_eq!(status(&app, "reader0@example.net").await, "bounced");
    assert_eq!(status(&app, "reader1@example.net").await, "confirmed");
    let source: String = sqlx::query_scalar("SELECT source FROM bounce_reports WHERE matched")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(source, "ses");
}

#[tokio::test]
async fn postmark_accepts_its_credentials_and_refuses_others() {
    let app = app_with(&[
        ("webhooks.postmark_username", "hooks".into()),
        (
            "webhooks.postmark_password",
            "a-long-random-password".into(),
        ),
    ])
    .await;
    let body = json!({"RecordType": "SpamComplaint", "Type": "SpamComplaint", "Email": "reader1@example.net",
                      "MessageID": "b7bc2f4a-e38e-4336-af7d-e6c392c2f817"})
    .to_string();
    let basic = |credentials: &str| {
        vec![(
            "authorization",
            format!("Basic {}", STANDARD.encode(credentials)),
        )]
    };

    assert_eq!(
        post(
            &app,
            "/webhooks/postmark",
            &basic("hooks:guess"),
            body.as_bytes()
        )
        .await,
        401
    );
    assert_eq!(
        post(&app, "/webhooks/postmark", &[], body.as_bytes()).await,
        401
    );
    assert_eq!(reports(&app).await, 0);
    assert_eq!(status(&app, "reader1@example.net").await, "confirmed");

    let ok = basic("hooks:a-long-random-password");
    assert_eq!(
        post(&app, "/webhooks/postmark", &ok, body.as_bytes()).await,
        200
    );
    assert_eq!(status(&app, "reader1@example.net").await, "complained");
    assert_eq!(status(&app, "reader0@example.net").await, "confirmed");
    // The provider's retry of the same event is recorded once.
    assert_eq!(
        post(&app, "/webhooks/postmark", &ok, body.as_bytes()).await,
        200
    );
    assert_eq!(reports(&app).await, 1);
}

#[tokio::test]
async fn sendgrid_accepts_a_signed_batch_and_refuses_a_forged_one() {
    let keys = Keys::new();
    keys.openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        "sg.key",
    ]);
    let public =
        STANDARD.encode(keys.openssl(&["ec", "-in", "sg.key", "-pubout", "-outform", "DER"]));
    let app = app_with(&[("webhooks.sendgrid_public_key", public.into())]).await;

    let body = json!([
        {"email": "reader0@example.net", "event": "bounce", "type": "bounce", "status": "5.1.1",
         "reason": "550 5.1.1 The email account that you tried to reach does not exist.",
         "smtp-id": "<x@sendgrid>", "timestamp": unix_now(-1)},
        {"email": "reader1@example.net", "event": "delivered", "timestamp": unix_now(-1)}
    ])
    .to_string();
    let timestamp = &unix_now(0).to_string();
    let signature = keys.sign("sg.key", format!("{timestamp}{body}").as_bytes());
    let headers = |sig: &str| {
        vec![
            ("x-twilio-email-event-webhook-signature", sig.to_owned()),
            (
                "x-twilio-email-event-webhook-timestamp",
                timestamp.to_owned(),
            ),
        ]
    };

    let forged = body.replace("reader0", "reader1");
    assert_eq!(
        post(
            &app,
            "/webhooks/sendgrid",
            &headers(&signature),
            forged.as_bytes()
        )
        .await,
        401
    );
    assert_eq!(
        post(&app, "/webhooks/sendgrid", &[], body.as_bytes()).await,
        401
    );
    assert_eq!(reports(&app).await, 0);

    assert_eq!(
        post(
            &app,
            "/webhooks/sendgrid",
            &headers(&signature),
            body.as_bytes()
        )
        .await,
        200
    );
    assert_eq!(status(&app, "reader0@example.net").await, "bounced");
    assert_eq!(
        status(&app, "reader1@example.net").await,
        "confirmed",
        "a delivered event is no report"
    );
    assert_eq!(reports(&app).await, 1);
}

#[tokio::test]
async fn mailgun_accepts_its_hmac_and_refuses_a_forged_one() {
    let key = "mailgun-signing-key-0123456789";
    let app = app_with(&[("webhooks.mailgun_signing_key", key.into())]).await;
    let sign = |timestamp: &str, token: &str, key: &str| {
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(format!("{timestamp}{token}").as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let now = unix_now(0).to_string();
    let body = |signature: String| {
        json!({
            "signature": {"timestamp": now, "token": "c0ffee", "signature": signature},
            "event-data": {"event": "complained", "recipient": "reader0@example.net",
                           "message": {"headers": {"message-id": "20261201.abc@mg.example.org"}}}
        })
        .to_string()
    };
    let forged = body(sign(&now, "c0ffee", "a-guessed-key"));
    assert_eq!(
        post(&app, "/webhooks/mailgun", &[], forged.as_bytes()).await,
        401
    );
    assert_eq!(post(&app, "/webhooks/mailgun", &[], b"{}").await, 401);
    assert_eq!(reports(&app).await, 0);
    assert_eq!(status(&app, "reader0@example.net").await, "confirmed");

    let signed = body(sign(&now, "c0ffee", key));
    assert_eq!(
        post(&app, "/webhooks/mailgun", &[], signed.as_bytes()).await,
        200
    );
    assert_eq!(status(&app, "reader0@example.net").await, "complained");
    assert_eq!(status(&app, "reader1@example.net").await, "confirmed");
}

#[tokio::test]
async fn a_provider_without_keys_is_off() {
    let app = app_with(&[]).await;
    for provider in ["ses", "postmark", "sendgrid", "mailgun"] {
        assert_eq!(
            post(&app, &format!("/webhooks/{provider}"), &[], b"{}").await,
            404,
            "{provider}"
        );
    }
}

/// An app with the SES webhook on, and the keys its SNS messages are signed with.
async fn ses_app() -> (Keys, TestApp) {
    let keys = Keys::new();
    keys.openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "sns.key",
        "-out",
        "sns.pem",
        "-days",
        "2",
        "-subj",
        "/CN=sns.amazonaws.com",
    ]);
    let cert = keys.path("sns.pem");
    let app = app_with(&[
        (
            "webhooks.ses_certificate_file",
            cert.to_str().unwrap().into(),
        ),
        ("webhooks.ses_topic_arn", TOPIC.into()),
    ])
    .await;
    (keys, app)
}

#[tokio::test]
async fn ses_refuses_a_signed_message_out_of_its_time_and_takes_a_message_id_once() {
    let (keys, app) = ses_app().await;
    for offset in [-AN_HOUR, AN_HOUR] {
        let old = sns_message_at(&keys, TOPIC, "reader0@example.net", None, offset, "m-old");
        assert_eq!(
            post(&app, "/webhooks/ses", &[], &old).await,
            401,
            "{offset}"
        );
    }
    assert_eq!(reports(&app).await, 0, "nothing recorded");
    assert_eq!(status(&app, "reader0@example.net").await, "confirmed");

    let fresh = sns_message_at(&keys, TOPIC, "reader0@example.net", None, -60, "m-1");
    let (code, first) = answer(&app, "/webhooks/ses", &[], &fresh).await;
    assert_eq!(
        (code, first["recorded"].as_i64()),
        (200, Some(1)),
        "{first}"
    );
    let (code, again) = answer(&app, "/webhooks/ses", &[], &fresh).await;
    assert_eq!(
        (code, again["recorded"].as_i64()),
        (200, Some(0)),
        "{again}"
    );
    // Another message under a MessageId seen before is a replay too.
    let reused = sns_message_at(&keys, TOPIC, "reader1@example.net", None, 0, "m-1");
    let (code, reused) = answer(&app, "/webhooks/ses", &[], &reused).await;
    assert_eq!(
        (code, reused["recorded"].as_i64()),
        (200, Some(0)),
        "{reused}"
    );
    assert_eq!(reports(&app).await, 1);
    assert_eq!(status(&app, "reader0@example.net").await, "bounced");
    assert_eq!(status(&app, "reader1@example.net").await, "confirmed");
}

#[tokio::test]
async fn sendgrid_refuses_an_old_timestamp_and_takes_a_call_once() {
    let keys = Keys::new();
    keys.openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        "sg.key",
    ]);
    let public =
        STANDARD.encode(keys.openssl(&["ec", "-in", "sg.key", "-pubout", "-outform", "DER"]));
    let app = app_with(&[("webhooks.sendgrid_public_key", public.into())]).await;
    let body = json!([
        {"email": "reader0@example.net", "event": "spamreport", "sg_event_id": "sg-1",
         "timestamp": unix_now(-AN_HOUR)},
    ])
    .to_string();
    let signed = |timestamp: i64| {
        let timestamp = timestamp.to_string();
        let signature = keys.sign("sg.key", format!("{timestamp}{body}").as_bytes());
        vec![
            ("x-twilio-email-event-webhook-signature", signature),
            ("x-twilio-email-event-webhook-timestamp", timestamp),
        ]
    };

    let old = signed(unix_now(-AN_HOUR));
    assert_eq!(
        post(&app, "/webhooks/sendgrid", &old, body.as_bytes()).await,
        401
    );
    assert_eq!(reports(&app).await, 0);
    assert_eq!(status(&app, "reader0@example.net").await, "confirmed");

    let now = signed(unix_now(0));
    let (code, first) = answer(&app, "/webhooks/sendgrid", &now, body.as_bytes()).await;
    assert_eq!(
        (code, first["recorded"].as_i64()),
        (200, Some(1)),
        "{first}"
    );
    let (code, again) = answer(&app, "/webhooks/sendgrid", &now, body.as_bytes()).await;
    assert_eq!(
        (code, again["recorded"].as_i64()),
        (200, Some(0)),
        "{again}"
    );
    // SendGrid's own retry, signed anew: the event id was seen.
    let retry = signed(unix_now(1));
    let (code, retried) = answer(&app, "/webhooks/sendgrid", &retry, body.as_bytes()).await;
    assert_eq!(
        (code, retried["recorded"].as_i64()),
        (200, Some(0)),
        "{retried}"
    );
    assert_eq!(reports(&app).await, 1);
    assert_eq!(status(&app, "reader0@example.net").await, "complained");
}

#[tokio::test]
async fn mailgun_refuses_an_old_timestamp_and_a_token_replayed_with_other_events() {
    let key = "mailgun-signing-key-0123456789";
    let app = app_with(&[("webhooks.mailgun_signing_key", key.into())]).await;
    let call = |timestamp: i64, token: &str, recipient: &str| {
        let timestamp = timestamp.to_string();
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(format!("{timestamp}{token}").as_bytes());
        let signature: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        json!({
            "signature": {"timestamp": timestamp, "token": token, "signature": signature},
            "event-data": {"id": format!("ev-{recipient}"), "event": "complained",
                           "recipient": recipient},
        })
        .to_string()
    };

    // A call signed long ago, its event-data replaced: refused.
    let old = call(
        unix_now(-400 * 24 * AN_HOUR),
        "t-2025",
        "reader1@example.net",
    );
    assert_eq!(
        post(&app, "/webhooks/mailgun", &[], old.as_bytes()).await,
        401
    );
    assert_eq!(reports(&app).await, 0);
    assert_eq!(status(&app, "reader1@example.net").await, "confirmed");

    let now = unix_now(0);
    let fresh = call(now, "t-1", "reader0@example.net");
    let (code, first) = answer(&app, "/webhooks/mailgun", &[], fresh.as_bytes()).await;
    assert_eq!(
        (code, first["recorded"].as_i64()),
        (200, Some(1)),
        "{first}"
    );
    let (code, again) = answer(&app, "/webhooks/mailgun", &[], fresh.as_bytes()).await;
    assert_eq!(
        (code, again["recorded"].as_i64()),
        (200, Some(0)),
        "{again}"
    );
    // The same signature (timestamp and token) with other event-data: a replay.
    let replayed = call(now, "t-1", "reader1@example.net");
    let (code, replayed) = answer(&app, "/webhooks/mailgun", &[], replayed.as_bytes()).await;
    assert_eq!(
        (code, replayed["recorded"].as_i64()),
        (200, Some(0)),
        "{replayed}"
    );
    assert_eq!(reports(&app).await, 1);
    assert_eq!(status(&app, "reader0@example.net").await, "complained");
    assert_eq!(status(&app, "reader1@example.net").await, "confirmed");
}

#[tokio::test]
async fn postmark_records_each_event_once_by_its_id() {
    let app = app_with(&[
        ("webhooks.postmark_username", "hooks".into()),
        (
            "webhooks.postmark_password",
            "a-long-random-password".into(),
        ),
    ])
    .await;
    let auth = vec![(
        "authorization",
        format!("Basic {}", STANDARD.encode("hooks:a-long-random-password")),
    )];
    let event = json!({"RecordType": "Bounce", "ID": 4323372036854775807_u64, "Type": "SoftBounce",
                       "Email": "reader0@example.net", "Description": "mailbox full"});
    let (code, first) = answer(
        &app,
        "/webhooks/postmark",
        &auth,
        event.to_string().as_bytes(),
    )
    .await;
    assert_eq!(
        (code, first["recorded"].as_i64()),
        (200, Some(1)),
        "{first}"
    );
    // Postmark's retry of the same event, its JSON not byte for byte the same.
    let mut retry = event.clone();
    retry["Details"] = json!("retried");
    let (code, again) = answer(
        &app,
        "/webhooks/postmark",
        &auth,
        retry.to_string().as_bytes(),
    )
    .await;
    assert_eq!(
        (code, again["recorded"].as_i64()),
        (200, Some(0)),
        "{again}"
    );
    assert_eq!(reports(&app).await, 1);
}
