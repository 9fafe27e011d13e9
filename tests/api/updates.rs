use std::collections::HashMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn creating_an_update_answers_201_with_a_draft_and_get_shows_zero_counts() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let id = app.create_update(&token, "Senate hearing on the ICC").await;

    let view = app.update_view(&token, &id).await;

    assert_eq!(view["id"], id.as_str());
    assert_eq!(view["status"], "draft");
    assert_eq!(view["lists"], json!(["us-icc-updates"]));
    assert_eq!(
        view["news_items"][1]["title"],
        "Assembly of States Parties opens"
    );
    assert_eq!(
        view["counts"],
        json!({"queued": 0, "sending": 0, "sent": 0, "deferred": 0, "failed": 0, "skipped": 0})
    );
    assert_eq!(view["rate_per_second"], 0.0);
}

#[tokio::test]
async fn the_api_refuses_requests_without_a_valid_token() {
    let app = spawn_app().await;
    for token in [
        "",
        "not-a-token",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let response = app
            .api(Method::POST, "/api/v1/updates", token, Some(json!({})))
            .await;
        assert_eq!(response.status(), 401, "token {token:?}");
        assert!(response.json::<serde_json::Value>().await.unwrap()["error"].is_string());
    }
    assert_eq!(
        app.http
            .get(app.url("/api/v1/updates/x"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

#[tokio::test]
async fn invalid_updates_get_422_with_a_message_per_field() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let body = json!({"subject": "Line\r\nBcc: x@example.org", "lists": ["no-such-list"],
                      "news_items": [{"title": "x", "url": "javascript:alert(1)"}], "template": "nope"});

    let response = app
        .api(Method::POST, "/api/v1/updates", &token, Some(body))
        .await;

    assert_eq!(response.status(), 422);
    let errors = response.json::<serde_json::Value>().await.unwrap()["errors"].clone();
    for field in ["subject", "news_items"] {
        assert!(errors[field].is_string(), "{field}: {errors}");
    }
    let wrong_type = app
        .api(
            Method::POST,
            "/api/v1/updates",
            &token,
            Some(json!({"subject": 5})),
        )
        .await;
    assert_eq!(wrong_type.status(), 422);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM updates")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[tokio::test]
async fn an_idempotency_key_makes_a_repeated_create_return_the_first_answer() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let body = json!({"subject": "Once", "lists": ["us-icc-updates"]});
    let mut ids = Vec::new();
    for _ in 0..3 {
        let response = app
            .http
            .post(app.url("/api/v1/updates"))
            .bearer_auth(&token)
            .header("idempotency-key", "create-once-1")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        ids.push(response.json::<serde_json::Value>().await.unwrap()["id"].clone());
    }
    assert!(ids.windows(2).all(|w| w[0] == w[1]));
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM updates")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn scheduling_is_refused_while_the_postal_address_is_empty() {
    let app = spawn_app_with(&[("mail.postal_address", "".into())]).await;
    let token = app.api_token().await;
    let id = app.create_update(&token, "No address").await;

    let response = app
        .api(
            Method::POST,
            &format!("/api/v1/updates/{id}/send"),
            &token,
            None,
        )
        .await;

    assert_eq!(response.status(), 422);
    let error = response.json::<serde_json::Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(error.contains("mail.postal_address"), "{error}");
    assert_eq!(app.update_view(&token, &id).await["status"], "draft");
}

#[tokio::test]
async fn an_update_to_1000_subscribers_delivers_exactly_1000_personalised_mails_with_list_headers()
{
    // https: one-click (List-Unsubscribe-Post) is offered only with https links
    let app = spawn_app_with(&[
        ("smtp.pool_size", 8.into()),
        ("server.base_url", "https://news.example.org".into()),
    ])
    .await;
    let token = app.api_token().await;
    let people = app.seed_confirmed(1000, "example.org").await;
    sqlx::query(
        "UPDATE subscribers SET name = '<b>Bold</b> & Co' WHERE email = 'reader7@example.org'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let id = app.create_update(&token, "Senate hearing on the ICC").await;

    app.send_now(&token, &id).await;
    app.wait_for_update_status(&id, "sent").await;

    let mails = app.smtp.messages();
    assert_eq!(mails.len(), 1000);
    let mut by_recipient: HashMap<String, usize> = HashMap::new();
    for mail in &mails {
        assert_eq!(mail.rcpt_to.len(), 1);
        *by_recipient.entry(mail.rcpt_to[0].clone()).or_default() += 1;
    }
    assert_eq!(by_recipient.len(), 1000, "every recipient once");
    assert!(people
        .iter()
        .all(|(_, email)| by_recipient.get(email) == Some(&1)));

    let ids: HashMap<String, String> = people
        .iter()
        .map(|(id, e)| (e.clone(), id.simple().to_string()))
        .collect();
    let update_simple = id.replace('-', "");
    let base = app.settings.server.base_url.as_str().to_owned();
    let parser = mail_parser::MessageParser::default();
    for mail in &mails {
        let to = &mail.rcpt_to[0];
        let parsed = parser.parse(&mail.data).expect("MIME");
        assert_eq!(parsed.subject(), Some("Senate hearing on the ICC"));
        let n: String = to
            .trim_start_matches("reader")
            .split('@')
            .next()
            .unwrap()
            .to_owned();
        let text = parsed.body_text(0).unwrap();
        let html = parsed.body_html(0).unwrap();
        if to == "reader7@example.org" {
            assert!(
                html.contains("&lt;b&gt;Bold&lt;&#x2F;b&gt; &amp; Co")
                    || html.contains("&lt;b&gt;Bold&lt;/b&gt; &amp; Co"),
                "{html}"
            );
            assert!(!html.contains("<b>Bold</b>"));
            assert!(
                text.contains("Hello <b>Bold</b> & Co,"),
                "text is not HTML-escaped"
            );
        } else {
            assert!(text.contains(&format!("Hello Reader {n},")), "{text}");
        }
        assert!(text.contains("Senate hearing on the ICC (Reuters, 2026-11-20)"));
        assert!(html.contains("<em>three</em>"), "intro Markdown rendered");
        assert!(text.contains(&app.settings.mail.postal_address));
        let unsubscribe = parsed
            .header_raw("List-Unsubscribe")
            .unwrap()
            .trim()
            .to_owned();
        assert!(
            unsubscribe.starts_with(&format!("<{base}/unsubscribe/")) && unsubscribe.ends_with('>'),
            "{unsubscribe}"
        );
        let unsubscribe_url = unsubscribe.trim_matches(['<', '>']);
        assert!(text.contains(unsubscribe_url), "visible unsubscribe link");
        assert_eq!(
            parsed.header_raw("List-Unsubscribe-Post").unwrap().trim(),
            "List-Unsubscribe=One-Click"
        );
        assert_eq!(
            parsed.header_raw("List-Id").unwrap().trim(),
            "\"US & ICC Updates\" <us-icc-updates.news.example.org>"
        );
        assert_eq!(
            parsed.header_raw("Feedback-ID").unwrap().trim(),
            format!("{update_simple}:us-icc-updates:update:news.example.org")
        );
        assert_eq!(
            parsed.message_id().unwrap(),
            format!(
                "{}@news.example.org",
                newsletter::domain::message_id::update_local(
                    app.settings.security.secret_key.expose().as_bytes(),
                    id.parse().unwrap(),
                    ids[to].parse().unwrap()
                )
            ),
            "Message-ID is deterministic per (update, subscriber)"
        );
        assert!(parsed.date().is_some());
    }
    let view = app.update_view(&token, &id).await;
    assert_eq!(view["counts"]["sent"], 1000);
    assert_eq!(view["status"], "sent");
    assert!(
        app.smtp.max_concurrent_connections() <= 8,
        "the pool size bounds connections"
    );
    assert!(
        app.smtp.connections_accepted() <= 16,
        "connections are kept open and reused"
    );
}

#[tokio::test]
async fn a_test_send_mails_one_address_and_leaves_the_ledger_alone() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.seed_confirmed(3, "example.org").await;
    let id = app.create_update(&token, "Draft for review").await;

    let response = app
        .api(
            Method::POST,
            &format!("/api/v1/updates/{id}/test"),
            &token,
            Some(json!({"to": "editor@example.org"})),
        )
        .await;

    assert_eq!(response.status(), 202);
    let mails = app.smtp.wait_for(1, WAIT).await;
    assert_eq!(mails[0].rcpt_to, ["editor@example.org"]);
    app.wait_for_queue_to_drain().await;
    assert_eq!(app.smtp.count(), 1);
    let view = app.update_view(&token, &id).await;
    assert_eq!(view["status"], "draft");
    assert_eq!(view["counts"]["sent"], 0);
}

#[tokio::test]
async fn pause_holds_the_queue_resume_drains_it_and_cancel_skips_the_rest() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.seed_confirmed(20, "example.org").await;
    app.smtp.stop().await;
    let port = app.smtp.port();
    let id = app.create_update(&token, "Pausable").await;

    app.send_now(&token, &id).await;
    app.wait_for_update_status(&id, "sending").await;
    let paused = app
        .api(
            Method::POST,
            &format!("/api/v1/updates/{id}/pause"),
            &token,
            None,
        )
        .await;
    assert_eq!(
        paused.json::<serde_json::Value>().await.unwrap()["status"],
        "paused"
    );
    app.wait_for_no_mail_in_flight(&id).await;
    let relay = crate::smtp_server::TestSmtp::start_on(port).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(relay.count(), 0, "nothing goes out while paused");

    let resumed = app
        .api(
            Method::POST,
            &format!("/api/v1/updates/{id}/resume"),
            &token,
            None,
        )
        .await;
    assert_eq!(
        resumed.json::<serde_json::Value>().await.unwrap()["status"],
        "sending"
    );
    relay.wait_for(20, WAIT).await;
    app.wait_for_update_status(&id, "sent").await;

    let second = app.create_update(&token, "Cancelled").await;
    relay.stop().await;
    app.send_now(&token, &second).await;
    app.wait_for_update_status(&second, "sending").await;
    app.wait_for_delivery_rows(&second, 20).await;
    let cancelled = app
        .api(
            Method::POST,
            &format!("/api/v1/updates/{second}/cancel"),
            &token,
            None,
        )
        .await;
    assert_eq!(
        cancelled.json::<serde_json::Value>().await.unwrap()["status"],
        "cancelled"
    );
    let again = app
        .api(
            Method::POST,
            &format!("/api/v1/updates/{second}/resume"),
            &token,
            None,
        )
        .await;
    assert_eq!(again.status(), 409, "a cancelled update cannot resume");
    app.wait_for_no_mail_in_flight(&second).await;
    let relay = crate::smtp_server::TestSmtp::start_on(port).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(relay.count(), 0, "nothing of a cancelled update goes out");
    let statuses = app.delivery_statuses(&second).await;
    assert!(
        statuses.len() == 20 && statuses.iter().all(|(_, s, _)| s == "skipped"),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn a_schedule_found_far_in_the_past_waits_for_staff_to_resume_it() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.seed_confirmed(2, "example.org").await;
    let id = app.create_update(&token, "Missed").await;
    sqlx::query("UPDATE updates SET status = 'scheduled', scheduled_at = now() - interval '7 hours' WHERE id = $1::uuid")
        .bind(&id)
        .execute(&app.pool)
        .await
        .unwrap();

    app.wait_for_update_status(&id, "paused").await;
    let view = app.update_view(&token, &id).await;
    assert!(view["status_reason"].as_str().unwrap().contains("resume"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.smtp.count(), 0);

    app.api(
        Method::POST,
        &format!("/api/v1/updates/{id}/resume"),
        &token,
        None,
    )
    .await;
    app.smtp.wait_for(2, WAIT).await;
    app.wait_for_update_status(&id, "sent").await;
}

#[tokio::test]
async fn scheduling_for_a_time_sends_then_and_not_before() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.seed_confirmed(1, "example.org").await;
    let id = app.create_update(&token, "Later").await;
    let at = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();

    let response = app
        .api(
            Method::POST,
            &format!("/api/v1/updates/{id}/schedule"),
            &token,
            Some(json!({"at": at})),
        )
        .await;

    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["status"],
        "scheduled"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.smtp.count(), 0, "not before its time");
    app.smtp.wait_for(1, WAIT).await;
    let bad = app
        .api(
            Method::POST,
            &format!("/api/v1/updates/{id}/schedule"),
            &token,
            Some(json!({"at": "tomorrow"})),
        )
        .await;
    assert_eq!(bad.status(), 422);
}

#[tokio::test]
async fn with_dkim_configured_every_mail_is_signed_over_both_list_unsubscribe_headers() {
    use base64::Engine;
    let key_file = std::env::temp_dir().join(format!("dkim-{}.key", uuid::Uuid::new_v4()));
    let secret: [u8; 32] = rand::random();
    std::fs::write(
        &key_file,
        base64::engine::general_purpose::STANDARD.encode(secret),
    )
    .unwrap();
    let app = spawn_app_with(&[
        ("mail.dkim.selector", "news".into()),
        ("mail.dkim.domain", "example.org".into()),
        (
            "mail.dkim.private_key_file",
            key_file.to_str().unwrap().into(),
        ),
        ("mail.dkim.algorithm", "ed25519".into()),
        // one-click (List-Unsubscribe-Post) is offered only with https links
        ("server.base_url", "https://news.example.org".into()),
    ])
    .await;
    let token = app.api_token().await;
    app.seed_confirmed(2, "example.org").await;
    let id = app.create_update(&token, "Signed").await;

    app.send_now(&token, &id).await;
    let mails = app.smtp.wait_for(2, WAIT).await;
    let _ = std::fs::remove_file(&key_file);

    for mail in mails {
        let parsed = mail_parser::MessageParser::default()
            .parse(&mail.data)
            .unwrap();
        let signature: String = parsed
            .header_raw("DKIM-Signature")
            .expect("signed")
            .split_whitespace()
            .collect();
        assert!(signature.contains("a=ed25519-sha256"), "{signature}");
        assert!(
            signature.contains("d=example.org") && signature.contains("s=news"),
            "{signature}"
        );
        let signed = signature
            .split(';')
            .find_map(|f| f.trim().strip_prefix("h="))
            .unwrap()
            .to_lowercase();
        let signed: Vec<&str> = signed.split(':').collect();
        for header in [
            "from",
            "subject",
            "message-id",
            "list-unsubscribe",
            "list-unsubscribe-post",
        ] {
            assert!(signed.contains(&header), "{header} not signed: {signed:?}");
        }
    }
}

#[tokio::test]
async fn staff_manage_lists_through_the_api() {
    let app = spawn_app().await;
    let token = app.api_token().await;

    let created = app
        .api(Method::POST, "/api/v1/lists", &token, Some(json!({"slug": "texas-alliance", "name": "Texas Alliance", "state": "tx", "welcome": true})))
        .await;
    assert_eq!(created.status(), 201);
    let list: serde_json::Value = created.json().await.unwrap();
    assert_eq!(
        (
            list["us_state"].as_str(),
            list["public"].as_bool(),
            list["welcome"].as_bool()
        ),
        (Some("TX"), Some(true), Some(true))
    );
    let again = app
        .api(
            Method::POST,
            "/api/v1/lists",
            &token,
            Some(json!({"slug": "texas-alliance", "name": "Again"})),
        )
        .await;
    assert_eq!(again.status(), 409);
    let bad = app
        .api(
            Method::POST,
            "/api/v1/lists",
            &token,
            Some(json!({"slug": "Bad Slug", "name": ""})),
        )
        .await;
    assert_eq!(bad.status(), 422);

    let changed = app
        .api(
            Method::PUT,
            "/api/v1/lists/texas-alliance",
            &token,
            Some(json!({"name": "Texas ICC Alliance", "public": false})),
        )
        .await;
    assert_eq!(changed.status(), 200);
    let all: serde_json::Value = app
        .api(Method::GET, "/api/v1/lists", &token, None)
        .await
        .json()
        .await
        .unwrap();
    let slugs: Vec<&str> = all["lists"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["slug"].as_str().unwrap())
        .collect();
    assert_eq!(
        slugs,
        ["new-york-alliance", "texas-alliance", "us-icc-updates"]
    );
    assert!(
        !app.get("/")
            .await
            .text()
            .await
            .unwrap()
            .contains("Texas ICC Alliance"),
        "a private list is not on the form"
    );
    assert_eq!(
        app.api(Method::GET, "/api/v1/lists/nope", &token, None)
            .await
            .status(),
        404
    );
}
