//! Hostile input at the edge (issue 15): text PostgreSQL and mail cannot hold, stray and
//! ambiguous form posts, foreign origins, header spellings. Each answer is a 4xx that names
//! the field, never a 5xx, and nothing changes.

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{spawn_app, TestApp, SECRET_KEY};
use newsletter::domain::subscriber_link::{sign, LinkPurpose};

fn manage_path(id: Uuid) -> String {
    let token = sign(SECRET_KEY.as_bytes(), LinkPurpose::Manage, id, 1);
    format!("/manage/{}", token.as_str())
}

async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn nul_characters_in_api_bodies_paths_and_queries_get_4xx_naming_the_field() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let cases = [
        (
            "/api/v1/lists",
            json!({"slug": "ny-alliance", "name": "NY", "description": "a\u{0}b"}),
            "description",
        ),
        (
            "/api/v1/updates",
            json!({"subject": "S", "intro": "x\u{0}", "lists": ["us-icc-updates"]}),
            "intro",
        ),
        (
            "/api/v1/updates",
            json!({"subject": "S", "lists": ["us-icc-updates"],
                   "news_items": [{"title": "ok"}, {"title": "t\u{0}"}]}),
            "news_items[1].title",
        ),
    ];
    for (path, body, field) in cases {
        let (status, body) = json_of(app.api(Method::POST, path, &token, Some(body)).await).await;
        assert_eq!(status, 422, "{path}: {body}");
        assert!(
            body["errors"][field].as_str().unwrap().contains("NUL"),
            "{body}"
        );
    }
    let (status, _) = json_of(
        app.api(Method::GET, "/api/v1/lists/a%00b", &token, None)
            .await,
    )
    .await;
    assert_eq!(status, 404);
    let id = app.create_update(&token, "Query").await;
    let (status, body) = json_of(
        app.api(
            Method::GET,
            &format!("/api/v1/updates/{id}/deliveries?status=fail%00ed"),
            &token,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["errors"]["status"].is_string()),
        (422, true),
        "{body}"
    );
    let page = app.get("/subscriptions/confirm?token=a%00b").await;
    assert_eq!(page.status(), 422);
    assert_eq!(app.get("/manage/a%00b").await.status(), 404);
    let lists: i64 = sqlx::query_scalar("SELECT count(*) FROM lists WHERE slug = 'ny-alliance'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(lists, 0);
}

#[tokio::test]
async fn every_api_error_is_json_an_unknown_route_included() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let (status, body) = json_of(
        app.api(Method::GET, "/api/v1/no/such/route", &token, None)
            .await,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].is_string());
    let (status, _) = json_of(app.api(Method::DELETE, "/api/v1/lists", &token, None).await).await;
    assert_eq!(status, 405);
    let (status, _) = json_of(
        app.api(Method::GET, "/api/v1/updates/not-a-uuid", &token, None)
            .await,
    )
    .await;
    assert!(status == 404 || status == 400, "{status}");
}

#[tokio::test]
async fn a_lower_case_bearer_scheme_is_accepted() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let response = app
        .http
        .get(app.url("/api/v1/lists"))
        .header("authorization", format!("bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_form_field_given_twice_is_refused_by_name_and_nothing_is_stored() {
    let app = spawn_app().await;
    let response = app
        .post_form(
            "/subscriptions",
            "email=one%40example.org&email=two%40example.org",
        )
        .await;
    assert_eq!(response.status(), 422);
    assert!(response.text().await.unwrap().contains("more than once"));
    let form_nul = app
        .post_form("/subscriptions", "email=a%40example.org&name=A%00B")
        .await;
    assert_eq!(form_nul.status(), 422);
    let (subscribers, deliveries, _, _) = app.row_counts().await;
    assert_eq!((subscribers, deliveries), (0, 0));
}

/// One confirmed subscriber of the default list named "Reader 0"; their id.
async fn reader(app: &TestApp) -> Uuid {
    app.seed_confirmed(1, "example.org").await[0].0
}

async fn profile(app: &TestApp, id: Uuid) -> (String, Option<String>, Vec<String>) {
    let (status, name): (String, Option<String>) =
        sqlx::query_as("SELECT status, name FROM subscribers WHERE id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let lists: Vec<String> = sqlx::query_scalar(
        "SELECT l.slug FROM subscriptions s JOIN lists l ON l.id = s.list_id
         WHERE s.subscriber_id = $1 AND s.status = 'confirmed' ORDER BY 1",
    )
    .bind(id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    (status, name, lists)
}

#[tokio::test]
async fn a_manage_post_without_a_known_action_changes_nothing() {
    let app = spawn_app().await;
    let id = reader(&app).await;
    let before = profile(&app, id).await;
    for body in ["", "action=", "action=delete-everything", "name=&lists="] {
        let response = app.post_form(&manage_path(id), body).await;
        assert_eq!(response.status(), 400, "{body:?}");
        assert_eq!(profile(&app, id).await, before, "{body:?}");
    }
    let nul = app
        .post_form(&manage_path(id), "action=save&lists=us-icc-updates%00")
        .await;
    assert_eq!(nul.status(), 422);
    assert_eq!(profile(&app, id).await, before);
}

#[tokio::test]
async fn saving_preferences_with_no_list_left_unsubscribes_with_a_consent_event() {
    let app = spawn_app().await;
    let id = reader(&app).await;
    let response = app
        .post_form(&manage_path(id), "action=save&name=Reader")
        .await;
    assert_eq!(response.status(), 200);
    let (status, _, lists) = profile(&app, id).await;
    assert_eq!((status.as_str(), lists.len()), ("unsubscribed", 0));
    let events: Vec<String> =
        sqlx::query_scalar("SELECT kind FROM consent_events WHERE subscriber_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(events, ["preferences", "unsubscribe"]);
}

#[tokio::test]
async fn a_manage_form_posted_from_another_site_is_refused() {
    let app = spawn_app().await;
    let id = reader(&app).await;
    let before = profile(&app, id).await;
    for (header, value) in [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let response = app
            .http
            .post(app.url(&manage_path(id)))
            .header("content-type", "application/x-www-form-urlencoded")
            .header(header, value)
            .body("action=unsubscribe")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{header}");
    }
    assert_eq!(profile(&app, id).await, before);
    let own = app
        .http
        .post(app.url(&manage_path(id)))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", app.settings.server.base_url.origin())
        .body("action=unsubscribe")
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    assert_eq!(profile(&app, id).await.0, "unsubscribed");
}

async fn create_keyed(app: &TestApp, token: &str, key: &str, subject: &str) -> reqwest::Response {
    app.http
        .post(app.url("/api/v1/updates"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&json!({"subject": subject, "lists": ["us-icc-updates"]}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_idempotency_key_reused_for_another_body_is_refused() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let first = create_keyed(&app, &token, "k-1", "First").await;
    assert_eq!(first.status(), 201);
    let id = first.json::<Value>().await.unwrap()["id"].clone();
    let again = create_keyed(&app, &token, "k-1", "First").await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.json::<Value>().await.unwrap()["id"], id, "replayed");
    let (status, body) = json_of(create_keyed(&app, &token, "k-1", "Second").await).await;
    assert_eq!(status, 422, "{body}");
    let updates: i64 = sqlx::query_scalar("SELECT count(*) FROM updates")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(updates, 1);
}

#[tokio::test]
async fn a_keyed_request_whose_client_went_away_still_finishes() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    // Hold the updates table, so the create waits inside the request.
    let mut lock = app.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE updates IN EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let gone = {
        let (http, url, token) = (app.http.clone(), app.url("/api/v1/updates"), token.clone());
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .header("idempotency-key", "k-gone")
                .json(&json!({"subject": "Gone", "lists": ["us-icc-updates"]}))
                .send()
                .await
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'
               AND query LIKE 'INSERT INTO updates %'",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the create never waited"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    gone.abort(); // the client disconnects mid-request
    let _ = gone.await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    lock.rollback().await.unwrap();

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let retry = loop {
        let retry = create_keyed(&app, &token, "k-gone", "Gone").await;
        if retry.status() != 409 {
            break retry;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the key stayed \"still running\""
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(retry.status(), 201);
    let updates: i64 = sqlx::query_scalar("SELECT count(*) FROM updates")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(updates, 1, "created once");
}

#[tokio::test]
async fn one_ipv6_host_cannot_escape_the_signup_limit_by_changing_address_in_its_slash_64() {
    let app = crate::helpers::spawn_app_with(&[
        ("server.trust_forwarded_for", true.into()),
        ("signup.per_ip_per_minute", 2.into()),
    ])
    .await;
    let from = |ip: &'static str, n: usize| {
        app.http
            .post(app.url("/subscriptions"))
            .header("x-forwarded-for", ip)
            .json(&json!({ "email": format!("v6-{n}@example.org") }))
            .send()
    };
    let mut statuses = Vec::new();
    for (n, ip) in ["2001:db8:5:6::1", "2001:db8:5:6::2", "2001:db8:5:6:a:b:c:d"]
        .into_iter()
        .enumerate()
    {
        statuses.push(from(ip, n).await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [202, 202, 429]);
    assert_eq!(from("2001:db8:5:7::1", 9).await.unwrap().status(), 202);
}

/// Whether the server closed `stream` (end of file or reset) within `within`.
async fn closed_within(stream: &mut tokio::net::TcpStream, within: std::time::Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {} // an answer (408 or 400): wait for the close after it
        }
    }
}

async fn connect(app: &TestApp) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap()
}

#[tokio::test]
async fn slow_and_silent_clients_are_cut_off() {
    use tokio::io::AsyncWriteExt;
    let app = crate::helpers::spawn_app_with(&[
        ("server.header_read_timeout_seconds", 1.into()),
        ("server.body_read_timeout_seconds", 1.into()),
    ])
    .await;
    let limit = std::time::Duration::from_secs(15);

    let mut silent = connect(&app).await;
    assert!(closed_within(&mut silent, limit).await, "a silent client");

    let mut dribbling = connect(&app).await;
    let dribble = async {
        for byte in b"GET /health HTTP/1.1\r\nHost: x\r\n" {
            if dribbling.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    };
    dribble.await;
    assert!(
        closed_within(&mut dribbling, limit).await,
        "a header a byte at a time"
    );

    let mut slow_body = connect(&app).await;
    slow_body
        .write_all(
            b"POST /subscriptions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        )
        .await
        .unwrap();
    assert!(
        closed_within(&mut slow_body, limit).await,
        "a body that never ends"
    );

    // A well-behaved client is still served.
    assert_eq!(app.get("/health").await.status(), 200);
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_place() {
    use tokio::io::AsyncWriteExt;
    let app = crate::helpers::spawn_app_with(&[("server.max_connections", 2.into())]).await;
    let held = [connect(&app).await, connect(&app).await];
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut third = connect(&app).await; // accepted by the kernel, not yet served
    third
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let waiting = async {
        use tokio::io::AsyncReadExt;
        let mut answer = Vec::new();
        third.read_to_end(&mut answer).await.map(|_| answer)
    };
    tokio::pin!(waiting);
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(500), &mut waiting)
            .await
            .is_err(),
        "served while both places were held"
    );
    drop(held);
    let answer = tokio::time::timeout(std::time::Duration::from_secs(15), waiting)
        .await
        .expect("served once a place was free")
        .unwrap();
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn a_signup_is_answered_at_the_same_moment_whatever_the_address_state() {
    // The floor is set far above the work (a few ms), so every state answers at the floor;
    // a slow machine can only make the work longer, never the floor shorter.
    const FLOOR: std::time::Duration = std::time::Duration::from_millis(400);
    let app = crate::helpers::spawn_app_with(&[("signup.min_answer_ms", 400.into())]).await;
    app.seed_confirmed(1, "example.org").await;
    app.signup("pending@example.org").await;
    for email in [
        "new@example.org",
        "pending@example.org",
        "reader0@example.org",
    ] {
        let started = std::time::Instant::now();
        let response = app.signup(email).await;
        let took = started.elapsed();
        assert_eq!(response.status(), 303);
        assert!(took >= FLOOR, "{email} answered after {took:?}");
    }
}

#[tokio::test]
async fn the_unsubscribe_page_refuses_foreign_posts_and_unknown_actions_but_one_click_is_open() {
    let app = spawn_app().await;
    let id = reader(&app).await;
    let token = sign(SECRET_KEY.as_bytes(), LinkPurpose::Unsubscribe, id, 1);
    let path = format!("/unsubscribe/{}", token.as_str());
    let post = |body: &'static str, origin: Option<&'static str>| {
        let mut request = app
            .http
            .post(app.url(&path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    let foreign = post("action=all", Some("https://evil.example"))
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
    assert_eq!(post("action=explode", None).await.unwrap().status(), 400);
    assert_eq!(
        post("action=all&action=lists", None)
            .await
            .unwrap()
            .status(),
        422
    );
    assert_eq!(profile(&app, id).await.0, "confirmed", "nothing changed");
    let one_click = post(
        "List-Unsubscribe=One-Click",
        Some("https://mail.provider.example"),
    )
    .await
    .unwrap();
    assert_eq!(one_click.status(), 200);
    assert_eq!(profile(&app, id).await.0, "unsubscribed");
}

#[tokio::test]
async fn a_confirm_post_with_the_token_twice_is_refused_by_name() {
    let app = spawn_app().await;
    let response = app
        .post_form("/subscriptions/confirm", "token=abc&token=def")
        .await;
    assert_eq!(response.status(), 422);
    assert!(response.text().await.unwrap().contains("more than once"));
}

#[tokio::test]
async fn a_confirmation_mail_carries_no_text_the_requester_typed() {
    let app = spawn_app().await;
    let name = "URGENT your account is locked verify at https://evil.example/login";
    let response = app
        .post_form(
            "/subscriptions",
            &format!(
                "email=victim%40example.org&name={}",
                crate::helpers::urlencode(name)
            ),
        )
        .await;
    assert_eq!(response.status(), 303);
    let mail = app
        .smtp
        .wait_for(1, std::time::Duration::from_secs(10))
        .await
        .remove(0);
    let parsed = mail_parser::MessageParser::default()
        .parse(&mail.data)
        .unwrap();
    let mut seen = String::from_utf8_lossy(&mail.data).into_owned();
    seen.push_str(&parsed.body_text(0).unwrap_or_default());
    seen.push_str(&parsed.body_html(0).unwrap_or_default());
    for word in ["URGENT", "evil.example", "locked"] {
        assert!(!seen.contains(word), "{word} reached the mail");
    }
    // The name is kept for later mails, once the address is confirmed.
    let stored: Option<String> = sqlx::query_scalar("SELECT name FROM subscribers")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored.as_deref(), Some(name));
}
