//! API tokens as staff expect: made with a scope and an optional expiry (the command line and
//! `/admin/tokens`), listed without their secrets, revoked; a revoked or expired token gets
//! `401` like an unknown one, and a token made before scopes keeps an admin's rights.

use newsletter::domain::{StaffRole, Token};
use reqwest::Method;
use serde_json::json;

use crate::admin::{signed_in, spawn_staff_app};
use crate::helpers::{spawn_app, TestApp};

async fn status(app: &TestApp, token: &str) -> u16 {
    app.api(Method::GET, "/api/v1/lists", token, None)
        .await
        .status()
        .as_u16()
}

/// `newsletter api-token ARGS` against the app's database: (success, stdout, stderr).
fn api_token(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let out = crate::cli::newsletter()
        .env("DATABASE_URL", app.database_url())
        .arg("api-token")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn audit(app: &TestApp) -> Vec<(String, String, Option<String>)> {
    sqlx::query_as("SELECT actor, action, subject FROM audit_log ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_cli_makes_a_scoped_token_lists_it_without_its_secret_and_revokes_it() {
    let app = spawn_app().await;

    let (ok, _, err) = api_token(&app, &["create", "--name", "CI", "--scope", "admin"]);
    assert!(!ok && err.contains("--scope"), "{err}");
    let (ok, secret, err) = api_token(
        &app,
        &[
            "create",
            "--name",
            "CI deploys",
            "--scope",
            "write",
            "--expires-days",
            "30",
        ],
    );
    assert!(ok, "{err}");
    let secret = secret.trim().to_owned();
    assert_eq!(status(&app, &secret).await, 200);
    let (id, expires): (String, chrono::DateTime<chrono::Utc>) =
        sqlx::query_as("SELECT id::text, expires_at FROM api_tokens WHERE name = 'CI deploys'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let days = (expires - chrono::Utc::now()).num_hours() as f64 / 24.0;
    assert!((29.9..=30.0).contains(&days), "expires in {days} days");

    let (ok, list, err) = api_token(&app, &["list"]);
    assert!(ok, "{err}");
    let row = list
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{id} in {list}"));
    let cells: Vec<&str> = row.split('\t').collect();
    assert_eq!(
        (cells[1], cells[2], cells[6]),
        ("CI deploys", "write", "live"),
        "{row}"
    );
    assert_ne!(cells[4], "never", "its use is noted: {row}");
    assert!(!list.contains(&secret), "never a secret: {list}");

    let (ok, _, err) = api_token(&app, &["revoke", &id]);
    assert!(ok, "{err}");
    assert_eq!(status(&app, &secret).await, 401, "revoked");
    let (_, list, _) = api_token(&app, &["list"]);
    assert!(list.contains(&format!("{id}\tCI deploys\twrite")) && list.contains("\trevoked"));
    let (ok, _, err) = api_token(&app, &["revoke", &uuid::Uuid::new_v4().to_string()]);
    assert!(!ok && err.contains("no such API token"), "{err}");

    let trail: Vec<_> = audit(&app)
        .await
        .into_iter()
        .filter(|(_, action, _)| action.starts_with("token-"))
        .collect();
    let by_cli = |action: &str| {
        (
            "command line".to_owned(),
            action.to_owned(),
            Some(id.clone()),
        )
    };
    assert_eq!(trail, [by_cli("token-create"), by_cli("token-revoke")]);
}

#[tokio::test]
async fn an_expired_token_is_refused_like_an_unknown_one() {
    let app = spawn_app().await;
    let (ok, secret, err) = api_token(&app, &["create", "--name", "Short", "--expires-days", "1"]);
    assert!(ok, "{err}");
    let secret = secret.trim();
    assert_eq!(status(&app, secret).await, 200);

    sqlx::query("UPDATE api_tokens SET expires_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();

    let refused = app.api(Method::GET, "/api/v1/lists", secret, None).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["www-authenticate"], "Bearer");
    let (_, list, _) = api_token(&app, &["list"]);
    assert!(list.contains("\texpired"), "{list}");
}

#[tokio::test]
async fn a_token_made_before_scopes_keeps_an_admins_rights_and_its_use_is_noted_once_a_minute() {
    let app = spawn_app().await;
    // As `newsletter api-token create` stored a token before scopes and expiry existed.
    let token = Token::generate();
    sqlx::query("INSERT INTO api_tokens (id, name, token_hash) VALUES ($1, 'old', $2)")
        .bind(uuid::Uuid::new_v4())
        .bind(token.hash().0.as_slice())
        .execute(&app.pool)
        .await
        .unwrap();
    let old = token.as_str();

    let update = app.create_update(old, "Sent with an old token").await;
    let send = format!("/api/v1/updates/{update}/send");
    assert_eq!(app.api(Method::POST, &send, old, None).await.status(), 200);

    let last_used = || async {
        sqlx::query_scalar::<_, chrono::DateTime<chrono::Utc>>(
            "SELECT last_used_at FROM api_tokens WHERE name = 'old'",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap()
    };
    let first = last_used().await;
    assert_eq!(status(&app, old).await, 200);
    assert_eq!(
        last_used().await,
        first,
        "not written again within the minute"
    );
    sqlx::query("UPDATE api_tokens SET last_used_at = now() - interval '61 seconds'")
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(status(&app, old).await, 200);
    assert!(last_used().await > first, "noted again after a minute");
}

#[tokio::test]
async fn an_admin_makes_a_token_on_the_tokens_page_sees_its_secret_once_and_revokes_it() {
    let app = spawn_staff_app(&[]).await;
    let mut admin = signed_in(&app, "ad@example.org", StaffRole::Admin).await;

    let refused = admin
        .post("/admin/tokens", &[("name", ""), ("scope", "send")])
        .await;
    assert_eq!(refused.status(), 422);
    let page = refused.text().await.unwrap();
    assert!(page.contains("1 to 100 characters"), "{page}");
    assert!(
        page.contains("<option value=\"send\" selected>"),
        "the choice is kept"
    );
    // A form posted without its scope gets no default, least of all the widest. (Before, it
    // made a `send` token.)
    let unscoped = admin.post("/admin/tokens", &[("name", "Unscoped")]).await;
    assert_eq!(unscoped.status(), 422);
    assert!(unscoped.text().await.unwrap().contains("Choose a scope"));
    let made: i64 = sqlx::query_scalar("SELECT count(*) FROM api_tokens WHERE name = 'Unscoped'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(made, 0);

    let made = admin
        .post(
            "/admin/tokens",
            &[
                ("name", "Newsroom"),
                ("scope", "write"),
                ("expires_days", "7"),
            ],
        )
        .await;
    assert_eq!(made.status(), 200);
    let page = made.text().await.unwrap();
    let marker = "<code id=\"token-secret\">";
    let start = page.find(marker).expect("the secret is shown") + marker.len();
    let secret = page[start..start + page[start..].find('<').unwrap()].to_owned();
    assert_eq!(secret.len(), 43, "{secret}");

    let draft = json!({ "subject": "By the newsroom", "lists": ["us-icc-updates"] });
    let r = app
        .api(Method::POST, "/api/v1/updates", &secret, Some(draft))
        .await;
    assert_eq!(r.status(), 201, "a write token composes");
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let send = format!("/api/v1/updates/{id}/send");
    let r = app.api(Method::POST, &send, &secret, None).await;
    assert_eq!(r.status(), 403, "and does not send");

    let page = admin.get("/admin/tokens").await.text().await.unwrap();
    assert!(!page.contains(&secret), "shown once only");
    let table = &page[page.find("id=\"tokens\"").unwrap()..];
    for cell in [
        "<td>Newsroom</td>",
        "<td>write</td>",
        "<td>ad@example.org</td>",
    ] {
        assert!(table.contains(cell), "{cell} in {table}");
    }
    assert!(
        !table.contains("<td>never</td><td>never</td>"),
        "used, and expiring"
    );

    let token_id: String = sqlx::query_scalar("SELECT id::text FROM api_tokens")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let revoked = admin
        .post(&format!("/admin/tokens/{token_id}/revoke"), &[])
        .await;
    assert_eq!(revoked.status(), 303);
    assert_eq!(status(&app, &secret).await, 401);
    let page = admin.get("/admin/tokens").await.text().await.unwrap();
    assert!(
        page.contains("<td>revoked</td>") && !page.contains("Revoke Newsroom"),
        "{page}"
    );
    let actions: Vec<String> = audit(&app).await.into_iter().map(|(_, a, _)| a).collect();
    assert!(
        actions.ends_with(&[
            "token-create".into(),
            "update-create".into(),
            "token-revoke".into()
        ]),
        "{actions:?}"
    );
}
