//! The text part of an update: Markdown rendered to plain text, the preview line first.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::helpers::spawn_app;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn the_text_part_holds_no_markdown_and_starts_with_the_preheader_not_the_subject() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.seed_confirmed(1, "example.com").await;
    let created = app
        .api(
            Method::POST,
            "/api/v1/updates",
            &token,
            Some(json!({
                "subject": "Hearing this week", "preheader": "Three things happened",
                "lists": ["us-icc-updates"],
                "intro": "Dear reader, **three** things _happened_: see [the report](https://example.org/r_(1)).\n\n\
                          ![A chart of the vote](https://example.org/chart.png)"
            })),
        )
        .await;
    assert_eq!(created.status(), 201);
    let id = created.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.send_now(&token, &id).await;
    let mail = &app.smtp.wait_for(1, WAIT).await[0];
    let parsed = mail_parser::MessageParser::default()
        .parse(&mail.data)
        .unwrap();
    let text =
        crate::helpers::unrewritten(&app, &parsed.body_text(0).unwrap().replace("\r\n", "\n"))
            .await;

    assert!(
        text.starts_with("Three things happened\n\n"),
        "the preview is the preheader, then a blank line: {text}"
    );
    assert!(!text.contains("Hearing this week"), "{text}");
    assert!(
        text.contains(
            "Dear reader, three things happened: see the report <https://example.org/r_(1)>."
        ),
        "{text}"
    );
    assert!(text.contains("\nA chart of the vote\n"), "{text}");
    for syntax in ["**", "_happened_", "](", "![", "chart.png"] {
        assert!(!text.contains(syntax), "{syntax:?} left in {text}");
    }
}
