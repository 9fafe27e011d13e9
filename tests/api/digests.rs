//! Digest schedules: each occurrence builds an update from the approved news items added since
//! the previous digest; `send` sends it, `review` leaves a draft and mails staff, an empty
//! occurrence is skipped with its reason, and one found long after its time is held.

use std::time::Duration;

use newsletter::domain::StaffRole;
use reqwest::Method;
use serde_json::{json, Value};

use crate::admin::add_staff;
use crate::helpers::{spawn_app_with, TestApp};

fn digest(mode: &str) -> Value {
    json!({
        "name": "Weekly digest",
        "lists": ["us-icc-updates"],
        "intro": "This week: {{count}} items ({{date}}).",
        "recurrence": {"frequency": "weekly", "weekdays": ["monday"], "time": "09:00"},
        "time_zone": "America/New_York",
        "mode": mode,
    })
}

async fn create_digest(app: &TestApp, token: &str, body: Value) -> Value {
    let response = app
        .api(Method::POST, "/api/v1/digests", token, Some(body))
        .await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

async fn add_news(app: &TestApp, token: &str, title: &str) -> String {
    let response = app
        .api(
            Method::POST,
            "/api/v1/news",
            token,
            Some(json!({"title": title, "url": "https://example.org/n", "topic": "court"})),
        )
        .await;
    assert_eq!(response.status(), 201);
    response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Moves the schedule's next occurrence to `ago` before now, as if that much time had passed.
async fn due_since(app: &TestApp, id: &str, ago: &str) {
    sqlx::query("UPDATE digests SET next_at = now() - $2::interval WHERE id = $1::uuid")
        .bind(id)
        .bind(ago)
        .execute(&app.pool)
        .await
        .unwrap();
}

/// Waits until the schedule has `n` finished occurrences; returns them, newest first.
async fn wait_runs(app: &TestApp, token: &str, id: &str, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let view: Value = app
            .api(Method::GET, &format!("/api/v1/digests/{id}"), token, None)
            .await
            .json()
            .await
            .unwrap();
        let runs = view["runs"].as_array().unwrap().clone();
        if runs.len() >= n && runs.iter().all(|r| r["outcome"] != "building") {
            return runs;
        }
        assert!(tokio::time::Instant::now() < deadline, "{view:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until every past occurrence of the schedule has fired and finished; returns the
/// occurrences, newest first.
async fn wait_caught_up(app: &TestApp, token: &str, id: &str) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let view: Value = app
            .api(Method::GET, &format!("/api/v1/digests/{id}"), token, None)
            .await
            .json()
            .await
            .unwrap();
        let runs = view["runs"].as_array().unwrap().clone();
        let next =
            chrono::DateTime::parse_from_rfc3339(view["next_occurrences"][0].as_str().unwrap())
                .unwrap();
        if !runs.is_empty()
            && runs.iter().all(|r| r["outcome"] != "building")
            && next > chrono::Utc::now()
        {
            return runs;
        }
        assert!(tokio::time::Instant::now() < deadline, "{view:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_empty_week_is_skipped_with_its_reason_and_the_schedule_moves_on() {
    let app = spawn_app_with(&[]).await;
    let token = app.api_token().await;
    let created = create_digest(&app, &token, digest("send")).await;
    let id = created["id"].as_str().unwrap();
    let next: Vec<&str> = created["next_occurrences_local"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(next.len(), 5);
    assert!(next.iter().all(|t| t.contains(" 09:00 E")), "{next:?}");
    due_since(&app, id, "1 minute").await;

    let runs = wait_runs(&app, &token, id, 1).await;

    assert_eq!(runs[0]["outcome"], "skipped");
    assert_eq!(
        runs[0]["reason"],
        "no approved news items were added since the previous digest"
    );
    assert!(runs[0]["update_id"].is_null());
    let updates: i64 = sqlx::query_scalar("SELECT count(*) FROM updates")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(updates, 0);
    let view: Value = app
        .api(Method::GET, &format!("/api/v1/digests/{id}"), &token, None)
        .await
        .json()
        .await
        .unwrap();
    let next = view["next_occurrences"][0].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(next).unwrap() > chrono::Utc::now(),
        "{next}"
    );
}

#[tokio::test]
async fn review_leaves_a_draft_of_the_approved_items_and_mails_staff_a_notice() {
    let app = spawn_app_with(&[]).await;
    add_staff(&app, "editor@example.org", StaffRole::Editor).await;
    app.seed_confirmed(2, "example.com").await;
    let token = app.api_token().await;
    add_news(&app, &token, "Approved by staff").await;
    // Not one of the digest's topics.
    let other = app
        .api(
            Method::POST,
            "/api/v1/news",
            &token,
            Some(json!({"title": "About Congress", "topic": "congress"})),
        )
        .await;
    assert_eq!(other.status(), 201);
    // An entry awaiting review is not in a digest until approved.
    sqlx::query(
        "INSERT INTO news (id, title, added_by, status) VALUES (gen_random_uuid(), 'Unreviewed', 'feed', 'awaiting_review')",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let mut court_only = digest("review");
    court_only["topics"] = json!(["court"]);
    let created = create_digest(&app, &token, court_only).await;
    let id = created["id"].as_str().unwrap();
    due_since(&app, id, "1 minute").await;

    let runs = wait_runs(&app, &token, id, 1).await;

    assert_eq!(runs[0]["outcome"], "review", "{runs:#?}");
    let update_id = runs[0]["update_id"].as_str().unwrap();
    let update = app.update_view(&token, update_id).await;
    assert_eq!(update["status"], "draft");
    assert!(update["subject"]
        .as_str()
        .unwrap()
        .starts_with("Weekly digest: "));
    let titles: Vec<&str> = update["news_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Approved by staff"]);
    assert!(update["intro"]
        .as_str()
        .unwrap()
        .starts_with("This week: 1 items ("));
    let mails = app.smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mails[0].rcpt_to, ["editor@example.org"]);
    // The notice links to the draft's page in the staff area, which answers.
    let notice = mail_parser::MessageParser::default()
        .parse(&mails[0].data)
        .unwrap();
    assert!(notice.subject().unwrap().starts_with("Digest to review: "));
    let text = notice.body_text(0).unwrap().into_owned();
    let link = format!(
        "{}/admin/updates/{update_id}",
        app.settings.server.base_url.as_str()
    );
    assert!(text.contains(&link), "{text}");
    let mut editor = crate::admin::Browser::new(&app);
    assert_eq!(
        editor
            .try_log_in("editor@example.org", crate::admin::PASSWORD)
            .await
            .status(),
        303
    );
    let page = editor.get(&format!("/admin/updates/{update_id}")).await;
    assert_eq!(page.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.smtp.count(), 1, "no subscriber gets a draft");
}

#[tokio::test]
async fn send_mode_sends_each_digest_with_the_items_approved_since_the_previous_one() {
    let app = spawn_app_with(&[]).await;
    app.seed_confirmed(3, "example.com").await;
    let token = app.api_token().await;
    add_news(&app, &token, "First week's news").await;
    let created = create_digest(&app, &token, digest("send")).await;
    let id = created["id"].as_str().unwrap();
    due_since(&app, id, "1 minute").await;

    let runs = wait_runs(&app, &token, id, 1).await;
    assert_eq!(runs[0]["outcome"], "sent", "{runs:#?}");
    let first = runs[0]["update_id"].as_str().unwrap().to_owned();
    app.wait_for_update_status(&first, "sent").await;
    assert_eq!(app.smtp.wait_for(3, Duration::from_secs(10)).await.len(), 3);

    add_news(&app, &token, "Second week's news").await;
    due_since(&app, id, "1 minute").await;
    let runs = wait_runs(&app, &token, id, 2).await;
    assert_eq!(runs[0]["outcome"], "sent", "{runs:#?}");
    let second = runs[0]["update_id"].as_str().unwrap();
    app.wait_for_update_status(second, "sent").await;
    let update = app.update_view(&token, second).await;
    let titles: Vec<&str> = update["news_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Second week's news"]);
    assert_eq!(app.smtp.wait_for(6, Duration::from_secs(10)).await.len(), 6);
}

#[tokio::test]
async fn an_occurrence_found_long_after_its_time_is_held_as_a_draft_not_sent_late() {
    let app = spawn_app_with(&[]).await;
    app.seed_confirmed(2, "example.com").await;
    let token = app.api_token().await;
    add_news(&app, &token, "News from before the outage").await;
    let created = create_digest(&app, &token, digest("send")).await;
    let id = created["id"].as_str().unwrap();
    // The service was down for two days (sending.stale_after_hours is 6).
    due_since(&app, id, "2 days").await;

    let runs = wait_caught_up(&app, &token, id).await;

    // The oldest is the occurrence missed; a later one also missed (today is Monday or
    // Tuesday) has nothing left to carry.
    let missed = runs.last().unwrap();
    assert_eq!(missed["outcome"], "held", "{runs:#?}");
    assert!(runs[..runs.len() - 1]
        .iter()
        .all(|r| r["outcome"] == "skipped"));
    assert!(
        missed["reason"]
            .as_str()
            .unwrap()
            .contains("passed while the service was down"),
        "{runs:#?}"
    );
    let update = app
        .update_view(&token, missed["update_id"].as_str().unwrap())
        .await;
    assert_eq!(update["status"], "draft");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.smtp.count(), 0, "nothing sent late");
}

#[tokio::test]
async fn the_digests_api_checks_its_input_and_answers_errors_in_json() {
    let app = spawn_app_with(&[]).await;
    let token = app.api_token().await;
    let mut bad = digest("send");
    bad["lists"] = json!(["no-such-list"]);
    bad["recurrence"]["weekdays"] = json!(["funday"]);
    bad["time_zone"] = json!("Mars/Base");
    bad["mode"] = json!("later");
    bad["intro"] = json!("{{unknown}}");
    bad["template"] = json!("confirmation");
    let response = app
        .api(Method::POST, "/api/v1/digests", &token, Some(bad))
        .await;
    assert_eq!(response.status(), 422);
    let errors: Value = response.json().await.unwrap();
    for field in ["lists", "time_zone", "mode", "intro", "template"] {
        assert!(errors["errors"][field].is_string(), "{field}: {errors}");
    }

    let created = create_digest(&app, &token, digest("review")).await;
    let id = created["id"].as_str().unwrap();
    let patched: Value = app
        .api(
            Method::PATCH,
            &format!("/api/v1/digests/{id}"),
            &token,
            Some(
                json!({"recurrence": {"frequency": "monthly", "day": 1, "time": "07:30"},
                        "time_zone": "Europe/Paris"}),
            ),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        patched["describes"],
        "monthly on day 1 at 07:30 Europe/Paris"
    );
    assert_eq!(patched["name"], "Weekly digest");
    assert!(patched["next_occurrences_local"][0]
        .as_str()
        .unwrap()
        .contains("-01 07:30 CE"));
    let listed: Value = app
        .api(Method::GET, "/api/v1/digests", &token, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["digests"].as_array().unwrap().len(), 1);
    let gone = app
        .api(
            Method::DELETE,
            &format!("/api/v1/digests/{id}"),
            &token,
            None,
        )
        .await;
    assert_eq!(gone.status(), 204);
    let again = app
        .api(Method::GET, &format!("/api/v1/digests/{id}"), &token, None)
        .await;
    assert_eq!(again.status(), 404);
    assert_eq!(
        again.json::<Value>().await.unwrap()["error"],
        "No such digest schedule."
    );
}

#[tokio::test]
async fn an_occurrence_left_building_by_a_dead_worker_is_marked_failed_with_its_reason() {
    let app = spawn_app_with(&[]).await;
    let token = app.api_token().await;
    let created = create_digest(&app, &token, digest("send")).await;
    let id = created["id"].as_str().unwrap();
    // A worker fired this occurrence eleven minutes ago and died before building it.
    sqlx::query(
        "INSERT INTO digest_runs (digest_id, due_at, fired_at, outcome)
         VALUES ($1::uuid, now() - interval '11 minutes', now() - interval '11 minutes', 'building')",
    )
    .bind(id)
    .execute(&app.pool)
    .await
    .unwrap();

    let runs = wait_runs(&app, &token, id, 1).await;

    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["outcome"], "failed");
    assert!(runs[0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("interrupted while its update was being built"));
}

#[tokio::test]
async fn a_sending_digest_follows_the_update_rules_postal_address_and_two_person_approval() {
    for (overrides, outcome, reason) in [
        (
            vec![("mail.postal_address", "".into())],
            "failed",
            "left as a draft: mail.postal_address is empty",
        ),
        (
            vec![
                ("sending.require_approval", true.into()),
                ("sending.approval_threshold", 0.into()),
            ],
            "sent",
            "waiting for a second admin's approval",
        ),
    ] {
        let app = spawn_app_with(&overrides).await;
        app.seed_confirmed(1, "example.com").await;
        let token = app.api_token().await;
        add_news(&app, &token, "Some news").await;
        let created = create_digest(&app, &token, digest("send")).await;
        let id = created["id"].as_str().unwrap();
        due_since(&app, id, "1 minute").await;

        let runs = wait_runs(&app, &token, id, 1).await;

        assert_eq!(runs[0]["outcome"], outcome, "{runs:#?}");
        assert!(
            runs[0]["reason"].as_str().unwrap().starts_with(reason),
            "{runs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(app.smtp.count(), 0, "nothing sent");
    }
}
