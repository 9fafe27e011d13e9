//! Subscribers in bulk from the staff area's search: the people ticked or everyone matching,
//! added to a list, removed, unsubscribed, erased (the count typed), exported; one audit entry
//! each, the one-person rules kept, admins only.

use newsletter::domain::StaffRole;
use uuid::Uuid;

use super::{signed_in, spawn_staff_app, Browser};
use crate::helpers::TestApp;

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&app.pool).await.unwrap()
}

async fn on_list(app: &TestApp, id: Uuid, slug: &str) -> Option<String> {
    sqlx::query_scalar(
        "SELECT x.status FROM subscriptions x JOIN lists l ON l.id = x.list_id
         WHERE x.subscriber_id = $1 AND l.slug = $2",
    )
    .bind(id)
    .bind(slug)
    .fetch_optional(&app.pool)
    .await
    .unwrap()
}

async fn bulk(browser: &mut Browser<'_>, fields: &[(&str, &str)]) -> reqwest::Response {
    browser.post("/admin/subscribers/bulk", fields).await
}

#[tokio::test]
async fn an_admin_adds_the_people_ticked_to_a_list_and_the_one_person_rules_hold() {
    let app = spawn_staff_app(&[]).await;
    sqlx::query("INSERT INTO lists (slug, name, description) VALUES ('ny', 'New York', 'NY')")
        .execute(&app.pool)
        .await
        .unwrap();
    let people = app.seed_confirmed(4, "example.org").await;
    let (pending, left) = (people[2].0, people[3].0);
    sqlx::query("UPDATE subscribers SET status = 'pending' WHERE id = $1")
        .bind(pending)
        .execute(&app.pool)
        .await
        .unwrap();
    // reader3 left New York themselves once.
    sqlx::query(
        "INSERT INTO subscriptions (subscriber_id, list_id, status)
         SELECT $1, id, 'unsubscribed' FROM lists WHERE slug = 'ny'",
    )
    .bind(left)
    .execute(&app.pool)
    .await
    .unwrap();
    let mut ed = signed_in(&app, "ed@example.org", StaffRole::Editor).await;
    let ids: Vec<String> = people.iter().map(|p| p.0.to_string()).collect();
    let mut fields = vec![("action", "add_to_list"), ("target_list", "ny")];
    fields.extend(ids.iter().map(|id| ("ids", id.as_str())));
    let r = bulk(&mut ed, &fields).await;
    let s = r.status();
    assert_eq!(s, 403, "an editor: {}", r.text().await.unwrap());
    assert_eq!(on_list(&app, people[0].0, "ny").await, None);

    let mut ad = signed_in(&app, "ad@example.org", StaffRole::Admin).await;
    let page = ad
        .get("/admin/subscribers?query=reader")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"bulk\"") && page.contains("name=\"ids\""));
    let r = bulk(&mut ad, &fields).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("Of 4 people: 2 people added to ny"), "{page}");
    assert!(page.contains("1 person not confirmed"), "{page}");
    assert!(
        page.contains("1 person left that list themselves"),
        "{page}"
    );
    assert_eq!(
        on_list(&app, people[0].0, "ny").await.as_deref(),
        Some("confirmed")
    );
    assert_eq!(
        on_list(&app, people[1].0, "ny").await.as_deref(),
        Some("confirmed")
    );
    assert_eq!(
        on_list(&app, pending, "ny").await,
        None,
        "pending: not joined"
    );
    assert_eq!(
        on_list(&app, left, "ny").await.as_deref(),
        Some("unsubscribed"),
        "who left stays out"
    );
    let entries: Vec<(String, serde_json::Value)> =
        sqlx::query_as("SELECT action, detail FROM audit_log WHERE action LIKE 'bulk-%'")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(entries.len(), 1, "one entry for the action");
    assert_eq!(entries[0].0, "bulk-add-to-list");
    assert_eq!(entries[0].1["changed"], 2);
    assert_eq!(entries[0].1["selected"], 4);

    // Removing them again: off the list, each with their other lists kept.
    let r = bulk(
        &mut ad,
        &[
            ("action", "remove_from_list"),
            ("target_list", "ny"),
            ("ids", &ids[0]),
        ],
    )
    .await;
    assert!(r.text().await.unwrap().contains("1 person removed from ny"));
    assert_eq!(
        on_list(&app, people[0].0, "ny").await.as_deref(),
        Some("unsubscribed")
    );
    assert_eq!(
        on_list(&app, people[0].0, "us-icc-updates")
            .await
            .as_deref(),
        Some("confirmed")
    );

    // The people ticked, exported: exactly those rows.
    let r = bulk(
        &mut ad,
        &[("action", "export"), ("ids", &ids[1]), ("ids", &ids[0])],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = r.text().await.unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.contains(&people[0].1) && csv.contains(&people[1].1));
}

#[tokio::test]
async fn everyone_matching_is_unsubscribed_or_erased_only_with_the_count_typed() {
    let app = spawn_staff_app(&[]).await;
    let readers = app.seed_confirmed(5, "example.org").await;
    let others = app.seed_confirmed_from(10, 2, "example.net").await;
    let mut ad = signed_in(&app, "ad@example.org", StaffRole::Admin).await;
    let matching = [("scope", "matching"), ("query", "example.org")];

    let mut fields = matching.to_vec();
    fields.push(("action", "unsubscribe"));
    let r = bulk(&mut ad, &fields).await;
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Of 5 people: 5 people unsubscribed"));
    for (_, email) in &readers {
        assert_eq!(
            app.subscriber_status(email).await.as_deref(),
            Some("unsubscribed")
        );
    }
    for (_, email) in &others {
        assert_eq!(
            app.subscriber_status(email).await.as_deref(),
            Some("confirmed")
        );
    }

    // Erase: the number must be typed, counted now.
    let mut fields = matching.to_vec();
    fields.extend([("action", "erase"), ("confirm_count", "4")]);
    let r = bulk(&mut ad, &fields).await;
    assert_eq!(r.status(), 422);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("type the number of people it is for: 5"));
    assert_eq!(count(&app, "SELECT count(*) FROM subscribers").await, 7);
    let mut fields = matching.to_vec();
    fields.extend([("action", "erase"), ("confirm_count", "5")]);
    let r = bulk(&mut ad, &fields).await;
    assert!(r.text().await.unwrap().contains("5 people erased"));
    assert_eq!(count(&app, "SELECT count(*) FROM subscribers").await, 2);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM suppressions WHERE reason = 'erased'"
        )
        .await,
        5
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM audit_log WHERE action IN ('bulk-unsubscribe', 'bulk-erase')"
        )
        .await,
        2
    );

    // Nothing chosen, or a list nobody has: told which field, nothing done.
    let r = bulk(&mut ad, &[("action", "unsubscribe")]).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("Tick the people"));
    let r = bulk(&mut ad, &[("action", "shred")]).await;
    assert_eq!(r.status(), 422);
}
