use std::time::Duration;

use crate::helpers::{confirmation_link, spawn_app};

const WAIT: Duration = Duration::from_secs(10);

fn path_of(link: &str, app: &crate::helpers::TestApp) -> String {
    let base = app.settings.server.base_url.as_str();
    link.strip_prefix(base)
        .expect("links start with server.base_url")
        .to_owned()
}

fn token_of(link: &str) -> String {
    link.split("token=").nth(1).unwrap().to_owned()
}

#[tokio::test]
async fn the_confirmation_mail_is_valid_mime_and_its_link_confirms_after_a_button_press() {
    let app = spawn_app().await;
    app.post_form("/subscriptions", "email=cara%40example.org&name=Cara")
        .await;
    let mail = app.smtp.wait_for(1, WAIT).await.remove(0);

    let parsed = mail_parser::MessageParser::default()
        .parse(&mail.data)
        .unwrap();
    assert_eq!(parsed.subject(), Some("Please confirm your subscription"));
    let html = parsed.body_html(0).unwrap().replace("&#x3D;", "=");
    assert!(
        html.contains(&format!("href=\"{}", confirmation_link(&mail.data))),
        "{html}"
    );
    assert!(parsed.message_id().unwrap().contains('@'));
    assert!(parsed.date().is_some());
    let to = parsed.to().unwrap().first().unwrap();
    assert_eq!(to.address(), Some("cara@example.org"));
    assert_eq!(to.name(), None, "no text the requester typed");
    let link = confirmation_link(&mail.data);
    assert!(link.starts_with(app.settings.server.base_url.as_str()));

    let page = app.get(&path_of(&link, &app)).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<button type="submit">Confirm</button>"#));
    assert_eq!(
        app.subscriber_status("cara@example.org").await.as_deref(),
        Some("pending"),
        "GET changes nothing"
    );

    let confirmed = app
        .post_form(
            "/subscriptions/confirm",
            &format!("token={}", token_of(&link)),
        )
        .await;
    assert_eq!(confirmed.status(), 200);
    let first_page = confirmed.text().await.unwrap();
    assert!(first_page.contains("You are subscribed"));
    assert_eq!(
        app.subscriber_status("cara@example.org").await.as_deref(),
        Some("confirmed")
    );
    let list_status: String = sqlx::query_scalar("SELECT status FROM subscriptions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(list_status, "confirmed");
    let kinds: Vec<String> = sqlx::query_scalar("SELECT kind FROM consent_events ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(kinds, ["signup", "confirm"]);

    let again = app
        .post_form(
            "/subscriptions/confirm",
            &format!("token={}", token_of(&link)),
        )
        .await;
    assert_eq!(again.status(), 200);
    assert_eq!(
        again.text().await.unwrap(),
        first_page,
        "confirming twice shows the same page"
    );
    let confirms: i64 =
        sqlx::query_scalar("SELECT count(*) FROM consent_events WHERE kind = 'confirm'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(confirms, 1);
}

#[tokio::test]
async fn an_expired_link_is_refused_with_a_page_that_links_back_to_the_form() {
    let app = spawn_app().await;
    app.signup("late@example.org").await;
    let link = confirmation_link(&app.smtp.wait_for(1, WAIT).await[0].data);
    sqlx::query("UPDATE confirmation_tokens SET expires_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();

    let get = app.get(&path_of(&link, &app)).await;
    assert_eq!(get.status(), 410);
    let post = app
        .post_form(
            "/subscriptions/confirm",
            &format!("token={}", token_of(&link)),
        )
        .await;
    assert_eq!(post.status(), 410);
    let html = post.text().await.unwrap();
    assert!(html.contains("expired") && html.contains(r#"href="/""#));
    assert_eq!(
        app.subscriber_status("late@example.org").await.as_deref(),
        Some("pending")
    );
}

#[tokio::test]
async fn unknown_altered_or_missing_tokens_get_a_4xx_page_and_change_nothing() {
    let app = spawn_app().await;
    app.signup("real@example.org").await;
    let link = confirmation_link(&app.smtp.wait_for(1, WAIT).await[0].data);
    let token = token_of(&link);
    let mut altered = token.clone().into_bytes();
    altered[10] = if altered[10] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();

    for query in [
        format!("token={altered}"),
        format!("token={}", &token[..20]),
        "token=".into(),
        "token=%00%0d%0a".into(),
        "token=' OR 1=1 --".replace(' ', "%20"),
        "nothing=1".into(),
    ] {
        let get = app.get(&format!("/subscriptions/confirm?{query}")).await;
        // a NUL in a query is refused before routing, naming the parameter
        let refused = if query.contains("%00") { 422 } else { 404 };
        assert_eq!(get.status(), refused, "GET {query}");
        let post = app.post_form("/subscriptions/confirm", &query).await;
        assert_eq!(post.status(), refused, "POST {query}");
        assert!(post.text().await.unwrap().contains("not valid"));
    }
    assert_eq!(
        app.subscriber_status("real@example.org").await.as_deref(),
        Some("pending")
    );
}

#[tokio::test]
async fn confirming_an_unsubscribed_person_again_needs_the_new_link() {
    let app = spawn_app().await;
    app.signup("back@example.org").await;
    let first = confirmation_link(&app.smtp.wait_for(1, WAIT).await[0].data);
    app.post_form(
        "/subscriptions/confirm",
        &format!("token={}", token_of(&first)),
    )
    .await;
    sqlx::query("UPDATE subscribers SET status = 'unsubscribed', last_confirmation_at = NULL")
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE subscriptions SET status = 'unsubscribed'")
        .execute(&app.pool)
        .await
        .unwrap();

    app.signup("back@example.org").await;
    let mails = app.smtp.wait_for(2, WAIT).await;
    assert_eq!(
        app.subscriber_status("back@example.org").await.as_deref(),
        Some("unsubscribed"),
        "signing up alone changes nothing"
    );
    let second = confirmation_link(&mails[1].data);
    app.post_form(
        "/subscriptions/confirm",
        &format!("token={}", token_of(&second)),
    )
    .await;

    assert_eq!(
        app.subscriber_status("back@example.org").await.as_deref(),
        Some("confirmed")
    );
    let list_status: String = sqlx::query_scalar("SELECT status FROM subscriptions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(list_status, "confirmed");
}

#[tokio::test]
async fn after_an_unsubscribe_the_old_confirmation_link_says_so_and_does_not_resubscribe() {
    let app = spawn_app().await;
    app.signup("left@example.org").await;
    let link = confirmation_link(&app.smtp.wait_for(1, WAIT).await[0].data);
    let body = format!("token={}", token_of(&link));
    app.post_form("/subscriptions/confirm", &body).await;
    let id: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM subscribers WHERE email = 'left@example.org'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let unsubscribe = newsletter::domain::subscriber_link::sign(
        crate::helpers::SECRET_KEY.as_bytes(),
        newsletter::domain::subscriber_link::LinkPurpose::Unsubscribe,
        id,
        1,
    );
    let one_click = app
        .post_form(
            &format!("/unsubscribe/{}", unsubscribe.as_str()),
            "List-Unsubscribe=One-Click",
        )
        .await;
    assert_eq!(one_click.status(), 200);

    let shown = app.get(&path_of(&link, &app)).await;
    let posted = app.post_form("/subscriptions/confirm", &body).await;

    for (how, answer) in [("GET", shown), ("POST", posted)] {
        assert_eq!(answer.status(), 200, "{how}");
        let page = answer.text().await.unwrap();
        assert!(!page.contains("You are subscribed"), "{how}: {page}");
        assert!(page.contains("You have unsubscribed"), "{how}: {page}");
        assert!(page.contains("sign up again"), "{how}: {page}");
        assert!(page.contains(r#"href="/""#), "{how}: a link to sign up");
    }
    assert_eq!(
        app.subscriber_status("left@example.org").await.as_deref(),
        Some("unsubscribed"),
        "the old link does not bring them back"
    );
    let confirmed_lists: i64 =
        sqlx::query_scalar("SELECT count(*) FROM subscriptions WHERE status <> 'unsubscribed'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(confirmed_lists, 0);
}
