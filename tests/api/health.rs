use crate::helpers::{spawn_app, test_settings};
use newsletter::app::Application;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn health_is_ok_when_the_database_answers() {
    let app = spawn_app().await;
    let response = app.get("/health").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"status": "ok"})
    );
}

#[tokio::test]
async fn health_is_503_and_signup_is_503_not_500_when_the_database_is_down() {
    // Port 9 (discard) has no PostgreSQL on this machine.
    let settings = test_settings(
        "postgres://postgres@127.0.0.1:9/none",
        "smtp://127.0.0.1:9",
        &[("database.acquire_timeout_seconds", 2.into())],
    );
    let app = Application::build(settings, false).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run_until(shutdown.clone()));
    let http = reqwest::Client::new();

    let health = http.get(format!("{base}/health")).send().await.unwrap();
    let signup = http
        .post(format!("{base}/subscriptions"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=a%40example.org")
        .send()
        .await
        .unwrap();

    assert_eq!(health.status(), 503);
    assert_eq!(signup.status(), 503);
    assert!(signup.headers().contains_key("retry-after"));
    shutdown.cancel();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn pages_carry_security_headers_and_unknown_paths_get_a_404_page() {
    let app = spawn_app().await;
    let response = app.get("/no/such/page").await;
    assert_eq!(response.status(), 404);
    let headers = response.headers();
    assert!(headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert!(response.text().await.unwrap().contains("Page not found"));
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_read_the_ledger() {
    let app = spawn_app().await;
    app.signup("m@example.org").await;
    app.smtp
        .wait_for(1, std::time::Duration::from_secs(10))
        .await;
    app.wait_for_queue_to_drain().await;

    let response = app.get("/metrics").await;

    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = response.text().await.unwrap();
    for line in [
        "newsletter_http_requests_total{route=\"/subscriptions\",method=\"POST\",status=\"303\"} 1",
        "newsletter_deliveries{kind=\"confirmation\",status=\"sent\"} 1",
        "newsletter_consent_events{kind=\"signup\"} 1",
        "newsletter_subscribers{status=\"pending\"} 1",
        "newsletter_queue_depth 0",
        "newsletter_http_request_duration_seconds_count{route=\"/subscriptions\"} 1",
    ] {
        assert!(text.contains(line), "missing {line}:\n{text}");
    }
}

#[tokio::test]
async fn with_a_metrics_token_metrics_need_it() {
    let app = crate::helpers::spawn_app_with(&[("metrics.token", "metrics-secret".into())]).await;
    assert_eq!(app.get("/metrics").await.status(), 403);
    let with = app
        .http
        .get(app.url("/metrics"))
        .bearer_auth("metrics-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(with.status(), 200);
    let wrong = app
        .http
        .get(app.url("/metrics"))
        .bearer_auth("metrics-secreT")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
}

#[tokio::test]
async fn made_up_methods_and_paths_add_no_series_to_the_metrics() {
    let app = spawn_app().await;
    let series = |text: &str| text.lines().filter(|l| !l.starts_with('#')).count();
    let poke = |i: usize| {
        let method =
            reqwest::Method::from_bytes(format!("X{i}{}", "Y".repeat(i % 50)).as_bytes()).unwrap();
        app.http
            .request(
                method,
                app.url(&format!("/no/such/{i}/{}", uuid::Uuid::new_v4())),
            )
            .send()
    };
    for i in 0..20 {
        poke(i).await.unwrap();
    }
    app.get("/metrics").await; // its own series, counted from the next scrape on
    let before = app.get("/metrics").await.text().await.unwrap();
    for i in 20..400 {
        poke(i).await.unwrap();
    }
    let after = app.get("/metrics").await.text().await.unwrap();
    assert_eq!(series(&before), series(&after), "{after}");
    assert!(
        after.contains("route=\"unmatched\",method=\"OTHER\""),
        "{after}"
    );
    assert!(!after.contains("X399") && !after.contains("/no/such"));
}
