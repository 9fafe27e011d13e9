//! Headers receivers judge a sender by: the From name, the EHLO name.

use std::time::Duration;

use crate::helpers::{spawn_app, spawn_app_with};

const WAIT: Duration = Duration::from_secs(10);

fn header<'a>(data: &'a str, name: &str) -> Option<&'a str> {
    data.split("\r\n\r\n")
        .next()
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

#[tokio::test]
async fn the_default_from_name_goes_out_as_a_quoted_string_not_base64() {
    let app = spawn_app().await;
    app.signup("reader@example.com").await;
    let mail = &app.smtp.wait_for(1, WAIT).await[0];
    let data = String::from_utf8_lossy(&mail.data);
    assert_eq!(
        header(&data, "From"),
        Some("\"US & ICC Updates\" <updates@example.org>"),
        "{data}"
    );
    assert_eq!(mail.mail_from, "updates@example.org");
}

#[tokio::test]
async fn the_relay_is_greeted_with_the_host_of_base_url_unless_helo_name_is_set() {
    let app = spawn_app_with(&[("server.base_url", "https://news.example.org".into())]).await;
    let token = app.api_token().await;
    app.seed_confirmed(1, "example.com").await;
    let id = app.create_update(&token, "Hello").await;
    app.send_now(&token, &id).await;
    assert_eq!(app.smtp.wait_for(1, WAIT).await[0].helo, "news.example.org");

    let app = spawn_app_with(&[("smtp.helo_name", "MX1.Example.org".into())]).await;
    app.signup("reader@example.com").await;
    assert_eq!(app.smtp.wait_for(1, WAIT).await[0].helo, "mx1.example.org");
}

#[tokio::test]
async fn a_test_mails_unsubscribe_link_answers_and_changes_nothing() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let id = app.create_update(&token, "Draft").await;
    let sent = app
        .api(
            reqwest::Method::POST,
            &format!("/api/v1/updates/{id}/test"),
            &token,
            Some(serde_json::json!({"to": "editor@example.org"})),
        )
        .await;
    assert!(sent.status().is_success(), "{}", sent.status());
    let mail = &app.smtp.wait_for(1, WAIT).await[0];
    let data = String::from_utf8_lossy(&mail.data);
    let url = header(&data, "List-Unsubscribe")
        .unwrap()
        .trim_matches(['<', '>']);
    let path = url
        .strip_prefix(app.settings.server.base_url.as_str())
        .unwrap();

    let page = app.get(path).await;
    assert_eq!(page.status(), 200, "it answered 404");
    assert!(page.text().await.unwrap().contains("test mail"));
    let one_click = app.post_form(path, "List-Unsubscribe=One-Click").await;
    assert_eq!(one_click.status(), 200);
}
