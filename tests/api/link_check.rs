//! "Check links" (issue 29, item 4): an update's links fetched only when staff ask, through the
//! feed fetcher's guarded client, each URL at most once an hour; a dead link is listed on the
//! confirmation page (and by the API and the command line); nothing on loopback or a private
//! network is fetched unless `feeds.allow_private_addresses`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use newsletter::domain::StaffRole;
use reqwest::Method;
use serde_json::{json, Value};

use crate::admin::{signed_in, spawn_staff_app};
use crate::helpers::TestApp;

type Hits = Arc<Mutex<HashMap<String, usize>>>;

/// A site on loopback: `/ok` 200, `/dead` 404, `/moved` 302 to `/ok`, `/moved-dead` 302 to
/// `/dead`, `/slow` 200 after 3 s; it counts every request by path.
async fn site() -> (String, Hits) {
    async fn serve(State(hits): State<Hits>, Path(path): Path<String>) -> axum::response::Response {
        *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
        match path.as_str() {
            "ok" => (StatusCode::OK, "fine").into_response(),
            "moved" => (StatusCode::FOUND, [(header::LOCATION, "/ok")]).into_response(),
            "moved-dead" => (StatusCode::FOUND, [(header::LOCATION, "/dead")]).into_response(),
            "slow" => {
                tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                (StatusCode::OK, "late but fine").into_response()
            }
            _ => (StatusCode::NOT_FOUND, "gone").into_response(),
        }
    }
    let hits = Hits::default();
    let app = Router::new()
        .route("/{path}", get(serve))
        .with_state(hits.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, hits)
}

/// `POST /api/v1/updates/{id}/check-links`: (status, JSON answer).
async fn check_by_api(app: &TestApp, token: &str, id: &str) -> (u16, Value) {
    let r = app
        .api(
            Method::POST,
            &format!("/api/v1/updates/{id}/check-links"),
            token,
            None,
        )
        .await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn total(hits: &Hits) -> usize {
    hits.lock().unwrap().values().sum()
}

/// A draft linking to `links` (the first two in the intro, the rest as news items).
async fn draft(app: &TestApp, token: &str, links: &[String]) -> String {
    let intro = links
        .iter()
        .take(2)
        .map(|l| format!("See [this]({l})."))
        .collect::<Vec<_>>()
        .join(" ");
    let items: Vec<Value> = links
        .iter()
        .skip(2)
        .map(|l| json!({"title": "An item", "url": l}))
        .collect();
    app.create_update_from(
        token,
        json!({"subject": "Links to check", "lists": ["us-icc-updates"],
               "intro": intro, "news_items": items}),
    )
    .await
}

#[tokio::test]
async fn a_dead_link_is_listed_on_the_confirmation_page_and_each_link_is_fetched_once_an_hour() {
    let app = spawn_staff_app(&[("feeds.allow_private_addresses", true.into())]).await;
    app.seed_confirmed(1, "example.org").await;
    let (base, hits) = site().await;
    let token = app.api_token().await;
    let links = [
        format!("{base}/ok"),
        format!("{base}/dead"),
        format!("{base}/moved"),
        format!("{base}/moved-dead"),
    ];
    let id = draft(&app, &token, &links).await;
    let mut staff = signed_in(&app, "ed@example.org", StaffRole::Admin).await;

    // Nothing is fetched until someone asks: not the draft's page, its preview, a test mail.
    let confirm = format!("/admin/updates/{id}/confirm?action=send");
    let page = staff.get(&confirm).await.text().await.unwrap();
    assert!(page.contains("id=\"check-links\""), "{page}");
    assert!(!page.contains("id=\"links-failed\""));
    staff.get(&format!("/admin/updates/{id}")).await;
    staff
        .get(&format!("/admin/updates/{id}/preview?format=html"))
        .await;
    let test = staff
        .post(
            &format!("/admin/updates/{id}/test"),
            &[("to", "ed@example.org")],
        )
        .await;
    assert_eq!(test.status(), 303);
    app.smtp
        .wait_for(1, std::time::Duration::from_secs(20))
        .await;
    assert_eq!(total(&hits), 0, "fetched before anyone asked");

    // Without the CSRF token, from another site, with a NUL in a field, or from a read-only
    // API token: refused with a 4xx, nothing fetched.
    let check = format!("/admin/updates/{id}/check-links");
    let own = app.settings.server.base_url.as_str().to_owned();
    let no_csrf = staff.post_with(&check, &[("back", "")], Some(&own)).await;
    assert_eq!(no_csrf.status(), 403);
    let csrf = staff.csrf().await;
    let foreign = staff
        .post_with(
            &check,
            &[("csrf_token", &csrf), ("back", "")],
            Some("https://evil.example"),
        )
        .await;
    assert_eq!(foreign.status(), 403);
    let nul = staff.post(&check, &[("back", "a\u{0}b")]).await;
    assert!(nul.status().is_client_error(), "{}", nul.status());
    let reader = app.api_token_of("read").await;
    let r = app
        .api(
            Method::POST,
            &format!("/api/v1/updates/{id}/check-links"),
            &reader,
            None,
        )
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(total(&hits), 0, "nothing fetched by a refused request");
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'check-links'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(audited, 0, "no check ran");

    // "Check links" on the confirmation page: back to it, the dead links listed.
    let r = staff
        .post(
            &format!("/admin/updates/{id}/check-links"),
            &[("back", &format!("{confirm}&at=&time_zone="))],
        )
        .await;
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!("/admin/updates/{id}/confirm?")),
        "{location}"
    );
    let page = staff.get(&location).await.text().await.unwrap();
    let failed = &page[page
        .find("id=\"links-failed\"")
        .expect("a table of failures")..];
    let failed = &failed[..failed.find("</table>").unwrap()];
    assert!(failed.contains(&format!("{base}/dead")), "{failed}");
    assert!(failed.contains(&format!("{base}/moved-dead")), "{failed}");
    assert!(failed.contains("404"), "{failed}");
    assert!(!failed.contains(&format!("{base}/ok<")), "{failed}");
    assert!(!failed.contains(&format!("{base}/moved<")), "{failed}");
    assert!(page.contains("2 of 4 links failed"), "{page}");
    let first = hits.lock().unwrap().clone();
    assert_eq!(
        first.get("ok"),
        Some(&2),
        "once itself, once through /moved: {first:?}"
    );
    assert_eq!(first.get("dead"), Some(&2), "{first:?}");

    // Again within the hour, from the page, the API and the command line: nothing fetched.
    staff
        .post(&format!("/admin/updates/{id}/check-links"), &[("back", "")])
        .await;
    let (status, report) = check_by_api(&app, &token, &id).await;
    assert_eq!(status, 200);
    assert_eq!(report["links"].as_array().unwrap().len(), 4);
    let failed: Vec<&str> = report["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["url"].as_str().unwrap())
        .collect();
    assert_eq!(failed, [links[1].as_str(), links[3].as_str()]);
    assert_eq!(report["failed"][0]["status"], 404);
    let out = crate::cli::newsletter()
        .args(["update", "check-links", &id])
        .env("NEWSLETTER__DATABASE__URL", app.database_url())
        .env("NEWSLETTER__FEEDS__ALLOW_PRIVATE_ADDRESSES", "true")
        .output()
        .unwrap();
    assert!(!out.status.success(), "a failed link fails the command");
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(
        printed.contains(&format!("failed\t{base}/dead\t404")),
        "{printed}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 of 4 links failed"));
    assert_eq!(
        *hits.lock().unwrap(),
        first,
        "nothing fetched again within the hour"
    );

    // An hour later it is fetched again.
    sqlx::query("UPDATE link_checks SET checked_at = checked_at - interval '61 minutes'")
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(check_by_api(&app, &token, &id).await.0, 200);
    assert_eq!(hits.lock().unwrap().get("dead"), Some(&4));

    // A `back` that is not one of this update's two pages goes to the update's page.
    let scripted = format!("/admin/updates/{id}/confirm?action=send&x=<script>");
    for back in [
        "https://evil.example/",
        "//evil.example/",
        "/admin/staff",
        scripted.as_str(),
    ] {
        let r = staff
            .post(
                &format!("/admin/updates/{id}/check-links"),
                &[("back", back)],
            )
            .await;
        let location = r.headers()["location"].to_str().unwrap();
        assert!(
            location.starts_with(&format!("/admin/updates/{id}?")),
            "{back}: {location}"
        );
    }
}

#[tokio::test]
async fn the_checker_never_fetches_a_loopback_or_private_address() {
    // The suite's apps allow private addresses (their feeds are on loopback); not this one.
    let app = spawn_staff_app(&[("feeds.allow_private_addresses", false.into())]).await;
    let (base, hits) = site().await;
    let port = base.rsplit(':').next().unwrap();
    let token = app.api_token().await;
    let links = [
        format!("{base}/ok"),
        format!("http://localhost:{port}/ok"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://[::1]:9/".to_owned(),
        "http://10.0.0.1/".to_owned(),
    ];
    let id = draft(&app, &token, &links).await;
    let (status, report) = check_by_api(&app, &token, &id).await;
    assert_eq!(status, 200);
    assert_eq!(report["failed"].as_array().unwrap().len(), 5, "{report}");
    for failed in report["failed"].as_array().unwrap() {
        let why = failed["error"].as_str().unwrap();
        assert!(why.contains("internal address"), "{failed}");
        assert!(failed["status"].is_null());
    }
    assert_eq!(total(&hits), 0, "the loopback site was never asked");
    // No such update: 404, nothing fetched.
    let nobody = uuid::Uuid::new_v4().to_string();
    assert_eq!(check_by_api(&app, &token, &nobody).await.0, 404);
}

/// A caller that gives up (a closed browser, a proxy's timeout) does not leave the links
/// claimed as "being checked": the check finishes and records real results. A claim left by a
/// check that died (a killed process) is taken over once stale; one under way now is shown as
/// not checked yet, never as a failure.
#[tokio::test]
async fn a_check_whose_caller_goes_away_finishes_and_a_dead_checks_claim_is_taken_over() {
    let app = spawn_staff_app(&[("feeds.allow_private_addresses", true.into())]).await;
    let (base, hits) = site().await;
    let token = app.api_token().await;
    let links = [format!("{base}/slow"), format!("{base}/ok")];
    let id = draft(&app, &token, &links).await;
    let impatient = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(500))
        .build()
        .unwrap();
    let gave_up = impatient
        .post(app.url(&format!("/api/v1/updates/{id}/check-links")))
        .bearer_auth(&token)
        .send()
        .await;
    assert!(gave_up.is_err(), "the caller went away before the answer");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, report) = check_by_api(&app, &token, &id).await;
        if report["ok"].as_array().unwrap().len() == 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{report}");
        assert!(report["failed"].as_array().unwrap().is_empty(), "{report}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(hits.lock().unwrap().get("slow"), Some(&1));

    // A claim as a killed check leaves it: fresh, it is "not checked yet"; stale, taken over.
    let other = draft(&app, &token, &[format!("{base}/dead")]).await;
    sqlx::query("INSERT INTO link_checks (url, status, error) VALUES ($1, NULL, 'being checked')")
        .bind(format!("{base}/dead"))
        .execute(&app.pool)
        .await
        .unwrap();
    let (_, report) = check_by_api(&app, &token, &other).await;
    assert!(report["failed"].as_array().unwrap().is_empty(), "{report}");
    assert_eq!(report["unchecked"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(hits.lock().unwrap().get("dead"), None);
    sqlx::query("UPDATE link_checks SET checked_at = now() - interval '3 minutes' WHERE error = 'being checked'")
        .execute(&app.pool)
        .await
        .unwrap();
    let (_, report) = check_by_api(&app, &token, &other).await;
    assert_eq!(report["failed"][0]["status"], 404, "{report}");
    assert_eq!(hits.lock().unwrap().get("dead"), Some(&1));
}
