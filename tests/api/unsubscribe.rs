use std::time::Duration;

use crate::helpers::spawn_app;

const WAIT: Duration = Duration::from_secs(30);

/// The List-Unsubscribe URL of a received mail, as a path on the app.
fn unsubscribe_path(app: &crate::helpers::TestApp, raw: &[u8]) -> String {
    let parsed = mail_parser::MessageParser::default().parse(raw).unwrap();
    let header = parsed
        .header_raw("List-Unsubscribe")
        .unwrap()
        .trim()
        .trim_matches(['<', '>'])
        .to_owned();
    header
        .strip_prefix(app.settings.server.base_url.as_str())
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_one_click_post_a_mail_client_sends_unsubscribes_and_answers_200() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.seed_confirmed(1, "example.org").await;
    let id = app.create_update(&token, "First").await;
    app.send_now(&token, &id).await;
    let mail = app.smtp.wait_for(1, WAIT).await.remove(0);
    let path = unsubscribe_path(&app, &mail.data);

    let page = app.get(&path).await;
    assert_eq!(page.status(), 200);
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("Unsubscribe from everything"));
    assert_eq!(
        app.subscriber_status("reader0@example.org")
            .await
            .as_deref(),
        Some("confirmed"),
        "GET changes nothing"
    );

    let one_click = app.post_form(&path, "List-Unsubscribe=One-Click").await;
    assert_eq!(one_click.status(), 200, "200, never a redirect");
    assert!(one_click.headers().get("location").is_none());
    assert_eq!(
        app.subscriber_status("reader0@example.org")
            .await
            .as_deref(),
        Some("unsubscribed")
    );
    let again = app.post_form(&path, "List-Unsubscribe=One-Click").await;
    assert_eq!(again.status(), 200, "idempotent");
    let events: Vec<(String, String)> =
        sqlx::query_as("SELECT kind, source FROM consent_events WHERE kind = 'unsubscribe'")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(events, [("unsubscribe".to_owned(), "one_click".to_owned())]);
}

#[tokio::test]
async fn a_forged_or_altered_unsubscribe_link_gets_a_clear_page_and_changes_nothing() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.seed_confirmed(1, "example.org").await;
    let id = app.create_update(&token, "First").await;
    app.send_now(&token, &id).await;
    let path = unsubscribe_path(&app, &app.smtp.wait_for(1, WAIT).await[0].data);
    let token_part = path.trim_start_matches("/unsubscribe/").to_owned();
    let mut altered = token_part.clone().into_bytes();
    altered[30] = if altered[30] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();

    for bad in [
        altered.as_str(),
        "short",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let response = app
            .post_form(&format!("/unsubscribe/{bad}"), "List-Unsubscribe=One-Click")
            .await;
        assert_eq!(response.status(), 404, "{bad}");
        assert!(response.text().await.unwrap().contains("not valid"));
    }
    assert_eq!(
        app.subscriber_status("reader0@example.org")
            .await
            .as_deref(),
        Some("confirmed")
    );
}

#[tokio::test]
async fn an_unsubscribe_between_two_sends_of_one_update_stops_the_second() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.seed_confirmed(2, "example.org").await;
    // A first update gives reader1 the link they will use.
    let first = app.create_update(&token, "First").await;
    app.send_now(&token, &first).await;
    let mails = app.smtp.wait_for(2, WAIT).await;
    let reader1 = mails
        .iter()
        .find(|m| m.rcpt_to[0] == "reader1@example.org")
        .unwrap();
    let path = unsubscribe_path(&app, &reader1.data);
    app.wait_for_update_status(&first, "sent").await;

    // The second update starts while the relay is down: both rows are queued, then deferred.
    let port = app.smtp.port();
    app.smtp.stop().await;
    let second = app.create_update(&token, "Second").await;
    app.send_now(&token, &second).await;
    // Both were recipients when it started: their rows are written as they are claimed.
    app.wait_for_delivery_rows(&second, 2).await;

    assert_eq!(
        app.post_form(&path, "List-Unsubscribe=One-Click")
            .await
            .status(),
        200
    );
    // A mail already claimed when the unsubscribe landed may still go out; the next may not.
    app.wait_for_no_mail_in_flight(&second).await;
    let relay = crate::smtp_server::TestSmtp::start_on(port).await.unwrap();
    app.wait_for_update_status(&second, "sent").await;

    let got: Vec<String> = relay
        .messages()
        .iter()
        .map(|m| m.rcpt_to[0].clone())
        .collect();
    assert_eq!(got, ["reader0@example.org"]);
    let statuses = app.delivery_statuses(&second).await;
    assert_eq!(statuses[1].0, "reader1@example.org");
    assert_eq!(statuses[1].1, "skipped");
}

#[tokio::test]
async fn link_pages_are_rate_limited_per_ip_but_one_click_posts_are_not() {
    use newsletter::domain::subscriber_link::{sign, LinkPurpose};
    let app = crate::helpers::spawn_app_with(&[("links.per_ip_per_minute", 2.into())]).await;
    let people = app.seed_confirmed(1, "example.org").await;
    let secret = crate::helpers::SECRET_KEY.as_bytes();
    let manage = format!(
        "/manage/{}",
        sign(secret, LinkPurpose::Manage, people[0].0, 1).as_str()
    );
    let unsubscribe = format!(
        "/unsubscribe/{}",
        sign(secret, LinkPurpose::Unsubscribe, people[0].0, 1).as_str()
    );

    assert_eq!(app.get(&manage).await.status(), 200);
    assert_eq!(app.get(&unsubscribe).await.status(), 200);
    let limited = app.get(&manage).await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(
        app.get("/subscriptions/confirm?token=x").await.status(),
        429
    );

    let one_click = app
        .post_form(&unsubscribe, "List-Unsubscribe=One-Click")
        .await;
    assert_eq!(one_click.status(), 200);
    assert_eq!(
        app.subscriber_status("reader0@example.org")
            .await
            .as_deref(),
        Some("unsubscribed")
    );
}

#[tokio::test]
async fn a_one_click_post_for_an_erased_person_succeeds_with_nothing_left_to_do() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.seed_confirmed(1, "example.org").await;
    let id = app.create_update(&token, "First").await;
    app.send_now(&token, &id).await;
    let path = unsubscribe_path(&app, &app.smtp.wait_for(1, WAIT).await[0].data);
    sqlx::query("DELETE FROM subscribers")
        .execute(&app.pool)
        .await
        .unwrap();

    let one_click = app.post_form(&path, "List-Unsubscribe=One-Click").await;

    assert_eq!(
        one_click.status(),
        200,
        "RFC 8058: nothing left to do is success"
    );
    let forged = newsletter::domain::subscriber_link::sign(
        b"not the service's secret key, long enough",
        newsletter::domain::subscriber_link::LinkPurpose::Unsubscribe,
        uuid::Uuid::new_v4(),
        1,
    );
    let forged = app
        .post_form(
            &format!("/unsubscribe/{}", forged.as_str()),
            "List-Unsubscribe=One-Click",
        )
        .await;
    assert_eq!(
        forged.status(),
        404,
        "a link we never signed is still refused"
    );
}
