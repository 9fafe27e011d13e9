use std::time::Duration;

use serde_json::json;

use crate::helpers::{confirmation_link, spawn_app, spawn_app_on, spawn_app_with};
use crate::smtp_server::TestSmtp;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn form_signup_redirects_to_the_pending_page_and_mails_one_confirmation() {
    let app = spawn_app().await;

    let response = app
        .post_form("/subscriptions", "email=Ann.Lee%40Example.org&name=Ann+Lee")
        .await;

    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/subscriptions/pending");
    let mails = app.smtp.wait_for(1, WAIT).await;
    assert_eq!(mails[0].rcpt_to, ["Ann.Lee@example.org"]);
    assert_eq!(mails[0].mail_from, app.settings.mail.from.email.to_string());
    let row: (String, String, Option<String>, String) =
        sqlx::query_as("SELECT email, email_normalized, name, status FROM subscribers")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        row,
        (
            "Ann.Lee@example.org".into(),
            "ann.lee@example.org".into(),
            Some("Ann Lee".into()),
            "pending".into()
        )
    );
    let lists: Vec<(String, String)> = sqlx::query_as(
        "SELECT l.slug, s.status FROM subscriptions s JOIN lists l ON l.id = s.list_id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(lists, [("us-icc-updates".to_owned(), "pending".to_owned())]);
    let page = app
        .get("/subscriptions/pending")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Check your inbox"));
}

#[tokio::test]
async fn json_signup_answers_202_pending_and_records_consent_with_its_source() {
    let app = spawn_app().await;

    let response = app
        .post_json(
            "/subscriptions",
            &json!({"email": "bo@example.org", "name": "Bo", "lists": ["us-icc-updates"]}),
        )
        .await;

    assert_eq!(response.status(), 202);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap(),
        json!({"status": "pending"})
    );
    let consent: (
        String,
        String,
        Option<String>,
        Option<String>,
        Vec<String>,
        Option<String>,
    ) = sqlx::query_as(
        "SELECT kind, source, consent_text, consent_version, lists, host(ip) FROM consent_events",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(consent.0, "signup");
    assert_eq!(consent.1, "api");
    assert_eq!(
        consent.2.as_deref(),
        Some(app.settings.signup.consent_text.as_str())
    );
    assert_eq!(
        consent.3.as_deref(),
        Some(app.settings.signup.consent_version.as_str())
    );
    assert_eq!(consent.4, ["us-icc-updates"]);
    assert_eq!(consent.5.as_deref(), Some("127.0.0.1"));
    app.smtp.wait_for(1, WAIT).await;
}

#[tokio::test]
async fn tokens_are_stored_only_as_hashes() {
    let app = spawn_app().await;
    app.signup("hash@example.org").await;
    let mail = app.smtp.wait_for(1, WAIT).await.remove(0);
    let link = confirmation_link(&mail.data);
    let token = link.split("token=").nth(1).unwrap();
    app.wait_for_queue_to_drain().await;

    let dump: String = sqlx::query_scalar(
        "SELECT concat_ws('|', (SELECT string_agg(encode(token_hash, 'escape'), ',') FROM confirmation_tokens),
                              (SELECT string_agg(payload::text, ',') FROM deliveries))",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(!dump.contains(token), "the raw token is stored");
    let payload_after_send: serde_json::Value =
        sqlx::query_scalar("SELECT payload FROM deliveries")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        payload_after_send,
        json!({}),
        "the nonce is dropped once the mail is sent"
    );
}

#[tokio::test]
async fn signing_up_again_while_pending_resends_at_most_once_per_ten_minutes() {
    let app = spawn_app().await;
    app.signup("again@example.org").await;
    app.smtp.wait_for(1, WAIT).await;

    for _ in 0..3 {
        assert_eq!(app.signup("AGAIN@example.org").await.status(), 303);
    }
    app.wait_for_queue_to_drain().await;
    assert_eq!(app.smtp.count(), 1, "no re-send within ten minutes");

    sqlx::query("UPDATE subscribers SET last_confirmation_at = now() - interval '11 minutes'")
        .execute(&app.pool)
        .await
        .unwrap();
    app.signup("again@example.org").await;
    let mails = app.smtp.wait_for(2, WAIT).await;
    assert_ne!(
        confirmation_link(&mails[0].data),
        confirmation_link(&mails[1].data)
    );
    let events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM consent_events WHERE kind = 'signup'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(events, 5, "every sign-up attempt is in the consent log");
}

#[tokio::test]
async fn the_answer_is_the_same_for_new_pending_confirmed_and_unsubscribed_addresses() {
    let app = spawn_app().await;
    for (email, status) in [
        ("pending@example.org", "pending"),
        ("confirmed@example.org", "confirmed"),
        ("gone@example.org", "unsubscribed"),
    ] {
        app.signup(email).await;
        sqlx::query("UPDATE subscribers SET status = $1 WHERE email = $2")
            .bind(status)
            .bind(email)
            .execute(&app.pool)
            .await
            .unwrap();
    }
    sqlx::query("UPDATE subscriptions SET status = 'confirmed' FROM subscribers s WHERE s.id = subscriber_id AND s.status = 'confirmed'")
        .execute(&app.pool)
        .await
        .unwrap();

    let mut answers = Vec::new();
    for email in [
        "new@example.org",
        "pending@example.org",
        "confirmed@example.org",
        "gone@example.org",
    ] {
        for json in [false, true] {
            let response = if json {
                app.post_json("/subscriptions", &json!({ "email": email }))
                    .await
            } else {
                app.signup(email).await
            };
            let mut headers: Vec<(String, String)> = response
                .headers()
                .iter()
                .filter(|(name, _)| *name != "date")
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
                .collect();
            headers.sort();
            answers.push((
                json,
                response.status(),
                headers,
                response.text().await.unwrap(),
            ));
        }
    }
    for pair in answers.chunks(2).skip(1) {
        assert_eq!(pair[0], answers[0], "form answer differs");
        assert_eq!(pair[1], answers[1], "JSON answer differs");
    }
}

#[tokio::test]
async fn a_filled_honeypot_gets_the_success_answer_and_nothing_is_stored_or_sent() {
    let app = spawn_app().await;

    let form = app
        .post_form(
            "/subscriptions",
            "email=bot%40example.org&website=http%3A%2F%2Fspam",
        )
        .await;
    let json = app
        .post_json(
            "/subscriptions",
            &json!({"email": "bot2@example.org", "website": "x"}),
        )
        .await;

    assert_eq!(form.status(), 303);
    assert_eq!(json.status(), 202);
    assert_eq!(app.row_counts().await, (0, 0, 0, 0));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.smtp.count(), 0);
}

#[tokio::test]
async fn more_signups_than_the_per_ip_limit_get_429_with_retry_after() {
    let app = spawn_app_with(&[("signup.per_ip_per_minute", 3.into())]).await;

    for i in 0..3 {
        assert_eq!(app.signup(&format!("r{i}@example.org")).await.status(), 303);
    }
    let limited = app
        .post_json("/subscriptions", &json!({"email": "r9@example.org"}))
        .await;

    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    assert!(limited.text().await.unwrap().contains("Too many sign-ups"));
    assert_eq!(app.subscriber_status("r9@example.org").await, None);
}

#[tokio::test]
async fn a_signup_while_the_relay_is_down_succeeds_and_is_mailed_once_it_is_back() {
    let relay = TestSmtp::start().await;
    let port = relay.port();
    relay.stop().await;
    let app = spawn_app_on(relay, &[]).await;

    assert_eq!(app.signup("patient@example.org").await.status(), 303);
    let deferred = async {
        loop {
            let (status, attempts): (String, i32) =
                sqlx::query_as("SELECT status, attempts FROM deliveries")
                    .fetch_one(&app.pool)
                    .await
                    .unwrap();
            if status == "deferred" && attempts >= 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, deferred)
        .await
        .expect("the mail is deferred while the relay is down");

    let relay = TestSmtp::start_on(port)
        .await
        .expect("relay port is free again");
    let mails = relay.wait_for(1, WAIT).await;
    assert_eq!(mails[0].rcpt_to, ["patient@example.org"]);
    app.wait_for_queue_to_drain().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(relay.count(), 1, "delivered exactly once");
    let status: String = sqlx::query_scalar("SELECT status FROM deliveries")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(status, "sent");
    app.stop().await;
}

#[tokio::test]
async fn the_form_page_is_labelled_and_lists_the_public_lists() {
    let app = spawn_app().await;
    sqlx::query(
        "INSERT INTO lists (slug, name, is_public) VALUES ('hidden-list', 'Staff only', false)",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    let page = app.get("/").await.text().await.unwrap();

    assert!(page.contains(r#"<label for="email">"#));
    assert!(page.contains(r#"<label for="name">"#));
    assert!(page.contains(r#"name="lists" value="us-icc-updates""#));
    assert!(!page.contains("hidden-list"));
    assert!(page.contains(r#"name="website""#), "honeypot field present");
    assert!(page.contains(&app.settings.signup.consent_text));
}

#[tokio::test]
async fn a_private_list_cannot_be_joined_by_signup() {
    let app = spawn_app().await;
    sqlx::query("INSERT INTO lists (slug, name, is_public) VALUES ('board', 'Board', false)")
        .execute(&app.pool)
        .await
        .unwrap();

    let response = app
        .post_json(
            "/subscriptions",
            &json!({"email": "x@example.org", "lists": ["board"]}),
        )
        .await;

    assert_eq!(response.status(), 422);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["errors"]["lists"].as_str().unwrap().contains("board"));
    assert_eq!(app.row_counts().await, (0, 0, 0, 0));
}

/// Sign-ups that arrive together are written by one statement (group commit): the answers,
/// the rows and the consent log are as if each had been written alone, and one address sent
/// many times at once still gets one subscriber and one confirmation.
#[tokio::test]
async fn sign_ups_arriving_together_are_each_recorded_once_and_one_address_gets_one_confirmation() {
    let app = crate::helpers::spawn_app_without_worker(&[]).await;
    let app = std::sync::Arc::new(app);
    let mut asked = Vec::new();
    for n in 0..40 {
        let app = std::sync::Arc::clone(&app);
        // every fourth is the same address, in several spellings
        let email = match n % 4 {
            0 if n % 8 == 0 => "Same.One%40Example.org".to_owned(),
            0 => "same.one%40EXAMPLE.org".to_owned(),
            _ => format!("p{n}%40example.org"),
        };
        asked.push(tokio::spawn(async move {
            app.post_form("/subscriptions", &format!("email={email}"))
                .await
                .status()
        }));
    }
    for answer in asked {
        assert_eq!(answer.await.unwrap(), 303);
    }
    let per_address: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT s.email_normalized,
                (SELECT count(*) FROM deliveries d WHERE d.subscriber_id = s.id AND d.kind = 'confirmation'),
                (SELECT count(*) FROM consent_events c WHERE c.subscriber_id = s.id AND c.kind = 'signup')
         FROM subscribers s ORDER BY s.email_normalized",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(per_address.len(), 31, "30 addresses and one asked 10 times");
    for (email, confirmations, consents) in &per_address {
        let times = if email == "same.one@example.org" {
            10
        } else {
            1
        };
        assert_eq!(
            (*confirmations, *consents),
            (1, times),
            "{email}: one confirmation, one consent event per sign-up"
        );
    }
}

fn signup_request(email: &str) -> newsletter::domain::SignupRequest {
    newsletter::domain::SignupRequest {
        email: newsletter::domain::EmailAddress::parse(email).unwrap(),
        name: None,
        lists: Vec::new(),
        state: None,
    }
}

fn signup_record<'a>(
    request: &'a newsletter::domain::SignupRequest,
    lists: &'a [(uuid::Uuid, String)],
    origin: &'a newsletter::store::consent::RequestOrigin,
) -> newsletter::store::signups::SignupRecord<'a> {
    newsletter::store::signups::SignupRecord {
        request,
        lists,
        source: newsletter::domain::SignupSource::Form,
        origin,
        consent_text: "I agree",
        consent_version: "v1",
        resend_after: Duration::from_secs(600),
        confirm_ttl: Duration::from_secs(3600),
        secret_key: b"a test key of no importance at all",
    }
}

/// One statement of sign-ups fails as a whole (nothing of it is kept); the group commit then
/// writes its sign-ups one by one, so a sign-up that cannot be written (here: its list was
/// deleted after it was looked up) fails alone and the others are recorded.
#[tokio::test]
async fn a_sign_up_that_cannot_be_written_fails_alone_and_the_others_of_its_batch_are_recorded() {
    use newsletter::store::signups::{self, Signup, SignupOutcome, SignupWriter};
    let app = crate::helpers::spawn_app_without_worker(&[]).await;
    let list: uuid::Uuid = sqlx::query_scalar("SELECT id FROM lists WHERE slug = 'us-icc-updates'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let good = [(list, "us-icc-updates".to_owned())];
    let gone = [(uuid::Uuid::new_v4(), "gone".to_owned())];
    let origin = newsletter::store::consent::RequestOrigin::default();
    let subscribers = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM subscribers")
            .fetch_one(&app.pool)
            .await
            .unwrap()
    };

    // One statement: the same address twice is queued, then throttled; a bad one fails all.
    let (a, b) = (
        signup_request("a@example.org"),
        signup_request("b@example.org"),
    );
    let twice = [
        Signup::new(signup_record(&a, &good, &origin)),
        Signup::new(signup_record(&a, &good, &origin)),
    ];
    assert_eq!(
        signups::record_many(&app.pool, &twice).await.unwrap(),
        [SignupOutcome::ConfirmationQueued, SignupOutcome::Throttled]
    );
    let with_bad = [
        Signup::new(signup_record(&b, &good, &origin)),
        Signup::new(signup_record(&b, &gone, &origin)),
    ];
    assert!(signups::record_many(&app.pool, &with_bad).await.is_err());
    assert_eq!(
        subscribers().await,
        1,
        "nothing of the failed statement is kept"
    );

    // Through the writer: 30 at once, one of them bad.
    let writer = SignupWriter::start(app.pool.clone());
    let mut asked = Vec::new();
    for n in 0..30 {
        let writer = writer.clone();
        let lists = if n == 17 {
            gone.to_vec()
        } else {
            good.to_vec()
        };
        asked.push(tokio::spawn(async move {
            let request = signup_request(&format!("w{n}@example.org"));
            let origin = newsletter::store::consent::RequestOrigin::default();
            writer
                .record(signup_record(&request, &lists, &origin))
                .await
        }));
    }
    let mut answers = Vec::new();
    for a in asked {
        answers.push(a.await.unwrap());
    }
    for (n, answer) in answers.iter().enumerate() {
        if n == 17 {
            let e = answer.as_ref().unwrap_err();
            assert!(format!("{e:#}").contains("foreign key"), "{e:#}");
        } else {
            assert_eq!(answer.as_ref().unwrap(), &SignupOutcome::ConfirmationQueued);
        }
    }
    assert_eq!(subscribers().await, 1 + 29);
    let w17: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM subscribers WHERE email_normalized = 'w17@example.org'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(w17, 0);
}

/// A group of sign-ups mixing new addresses (written as sets), known ones and one address given
/// twice gets the answers and rows each sign-up would get alone, in address order: every queued
/// confirmation's nonce derives its stored token, every sign-up has its consent event with the
/// lists it asked for, and nothing is written twice.
#[tokio::test]
async fn a_group_of_new_known_and_repeated_addresses_is_written_as_each_sign_up_alone() {
    use newsletter::domain::Token;
    use newsletter::store::signups::{self, Signup, SignupOutcome, CONFIRM_PURPOSE};
    let app = crate::helpers::spawn_app_without_worker(&[]).await;
    let pool = &app.pool;
    let main: uuid::Uuid = sqlx::query_scalar("SELECT id FROM lists WHERE slug = 'us-icc-updates'")
        .fetch_one(pool)
        .await
        .unwrap();
    let other: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO lists (slug, name, is_public) VALUES ('congress-watch', 'Congress', true)
         RETURNING id",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let one = [(main, "us-icc-updates".to_owned())];
    let both = [
        (other, "congress-watch".to_owned()),
        (main, "us-icc-updates".to_owned()),
    ];
    let origin = newsletter::store::consent::RequestOrigin::default();
    let (confirmed, unsubscribed, recent) = (
        signup_request("confirmed@example.org"),
        signup_request("left@example.org"),
        signup_request("recent@example.org"),
    );
    // Known before the group: one confirmed, one who left long ago, one who signed up just now.
    signups::record_many(
        pool,
        &[
            Signup::new(signup_record(&confirmed, &one, &origin)),
            Signup::new(signup_record(&unsubscribed, &one, &origin)),
            Signup::new(signup_record(&recent, &one, &origin)),
        ],
    )
    .await
    .unwrap();
    sqlx::raw_sql(
        "UPDATE subscribers SET status = 'confirmed', confirmed_at = now()
         WHERE email_normalized = 'confirmed@example.org';
         UPDATE subscriptions SET status = 'confirmed' WHERE subscriber_id =
             (SELECT id FROM subscribers WHERE email_normalized = 'confirmed@example.org');
         UPDATE subscribers SET status = 'unsubscribed',
                last_confirmation_at = now() - interval '1 day'
         WHERE email_normalized = 'left@example.org';
         UPDATE subscriptions SET status = 'unsubscribed' WHERE subscriber_id =
             (SELECT id FROM subscribers WHERE email_normalized = 'left@example.org')",
    )
    .execute(pool)
    .await
    .unwrap();

    let (twice, fresh) = (
        signup_request("twice@example.org"),
        signup_request("new@example.org"),
    );
    let group = [
        Signup::new(signup_record(&twice, &one, &origin)),
        Signup::new(signup_record(&confirmed, &one, &origin)),
        Signup::new(signup_record(&fresh, &both, &origin)),
        Signup::new(signup_record(&unsubscribed, &one, &origin)),
        Signup::new(signup_record(&twice, &one, &origin)),
        Signup::new(signup_record(&recent, &one, &origin)),
    ];
    assert_eq!(
        signups::record_many(pool, &group).await.unwrap(),
        [
            SignupOutcome::ConfirmationQueued,
            SignupOutcome::NothingToConfirm,
            SignupOutcome::ConfirmationQueued,
            SignupOutcome::ConfirmationQueued,
            SignupOutcome::Throttled,
            SignupOutcome::Throttled,
        ]
    );

    // Per address: subscriptions (list slug and status), consent events of the group, queued
    // confirmations and tokens in all.
    let rows: Vec<(String, Vec<String>, i64, i64, i64)> = sqlx::query_as(
        "SELECT s.email_normalized,
                ARRAY(SELECT l.slug || ':' || sub.status FROM subscriptions sub
                      JOIN lists l ON l.id = sub.list_id
                      WHERE sub.subscriber_id = s.id ORDER BY l.slug),
                (SELECT count(*) FROM consent_events c WHERE c.subscriber_id = s.id),
                (SELECT count(*) FROM deliveries d
                 WHERE d.subscriber_id = s.id AND d.kind = 'confirmation'),
                (SELECT count(*) FROM confirmation_tokens t WHERE t.subscriber_id = s.id)
         FROM subscribers s ORDER BY s.email_normalized",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let pending =
        |lists: &[&str]| -> Vec<String> { lists.iter().map(|l| format!("{l}:pending")).collect() };
    assert_eq!(
        rows,
        [
            (
                "confirmed@example.org".to_owned(),
                vec!["us-icc-updates:confirmed".to_owned()],
                2,
                1,
                1
            ),
            (
                "left@example.org".to_owned(),
                pending(&["us-icc-updates"]),
                2,
                2,
                2
            ),
            (
                "new@example.org".to_owned(),
                pending(&["congress-watch", "us-icc-updates"]),
                1,
                1,
                1
            ),
            (
                "recent@example.org".to_owned(),
                pending(&["us-icc-updates"]),
                2,
                1,
                1
            ),
            (
                "twice@example.org".to_owned(),
                pending(&["us-icc-updates"]),
                2,
                1,
                1
            ),
        ]
    );

    // Each queued confirmation carries the nonce its token's hash was derived from.
    let key: &[u8] = b"a test key of no importance at all";
    let mails: Vec<(String, Vec<u8>)> = sqlx::query_as(
        "SELECT d.payload->>'nonce', t.token_hash FROM deliveries d
         JOIN LATERAL (SELECT token_hash FROM confirmation_tokens t
                       WHERE t.subscriber_id = d.subscriber_id
                       ORDER BY t.created_at DESC LIMIT 1) t ON true
         JOIN subscribers s ON s.id = d.subscriber_id
         WHERE s.email_normalized IN ('new@example.org', 'twice@example.org')",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(mails.len(), 2);
    for (nonce, hash) in mails {
        assert_eq!(
            Token::derive(key, CONFIRM_PURPOSE, &nonce)
                .hash()
                .0
                .to_vec(),
            hash
        );
    }

    // The new address's consent event names both lists it asked for.
    let lists: Vec<String> = sqlx::query_scalar(
        "SELECT c.lists FROM consent_events c JOIN subscribers s ON s.id = c.subscriber_id
         WHERE s.email_normalized = 'new@example.org'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(lists, ["congress-watch", "us-icc-updates"]);
}
