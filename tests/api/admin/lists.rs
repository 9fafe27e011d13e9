//! Lists in the staff area: admins add, edit, archive and reopen them; editors see them.

use newsletter::domain::StaffRole;

use super::{signed_in, spawn_staff_app};

#[tokio::test]
async fn an_admin_adds_a_private_state_list_and_edits_it_and_an_editor_may_not() {
    let app = spawn_staff_app(&[]).await;
    let mut admin = signed_in(&app, "ad@example.org", StaffRole::Admin).await;
    let r = admin
        .post(
            "/admin/lists",
            &[
                ("slug", "ohio-alliance"),
                ("name", "Ohio Alliance"),
                ("state", "OH"),
                ("description", "Local news"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let (public, state): (bool, Option<String>) =
        sqlx::query_as("SELECT is_public, us_state FROM lists WHERE slug = 'ohio-alliance'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        (public, state.as_deref()),
        (false, Some("OH")),
        "unticked: private"
    );

    let again = admin
        .post(
            "/admin/lists",
            &[("slug", "ohio-alliance"), ("name", "Again")],
        )
        .await;
    assert_eq!(again.status(), 422);
    assert!(again.text().await.unwrap().contains("exists already"));
    let bad = admin
        .post("/admin/lists", &[("slug", "Not A Slug"), ("name", "X")])
        .await;
    assert_eq!(bad.status(), 422);

    let r = admin
        .post(
            "/admin/lists/ohio-alliance",
            &[("name", "Ohio"), ("public", "1"), ("state", "")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let (name, public, state): (String, bool, Option<String>) =
        sqlx::query_as("SELECT name, is_public, us_state FROM lists WHERE slug = 'ohio-alliance'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((name.as_str(), public, state), ("Ohio", true, None));

    let mut editor = signed_in(&app, "ed@example.org", StaffRole::Editor).await;
    let page = editor.get("/admin/lists").await.text().await.unwrap();
    assert!(page.contains("Ohio") && !page.contains("id=\"add-list\""));
    let r = editor
        .post("/admin/lists", &[("slug", "sneaky"), ("name", "Sneaky")])
        .await;
    assert_eq!(r.status(), 403);
    let r = editor
        .post("/admin/lists/ohio-alliance", &[("name", "Renamed")])
        .await;
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn an_admin_archives_and_reopens_a_list_keeping_its_count_and_an_editor_may_not() {
    let app = spawn_staff_app(&[]).await;
    app.seed_confirmed(3, "example.org").await;
    let mut editor = signed_in(&app, "ed@example.org", StaffRole::Editor).await;
    let r = editor
        .post("/admin/lists/us-icc-updates/archive", &[])
        .await;
    assert_eq!(r.status(), 403);
    let page = editor
        .get("/admin/lists/us-icc-updates")
        .await
        .text()
        .await
        .unwrap();
    assert!(!page.contains("id=\"archive-list\""));

    let mut admin = signed_in(&app, "ad@example.org", StaffRole::Admin).await;
    let r = admin.post("/admin/lists/us-icc-updates/archive", &[]).await;
    assert_eq!(r.status(), 303);
    let page = admin.get("/admin/lists").await.text().await.unwrap();
    assert!(page.contains("archived 20"), "the date it was archived");
    assert!(page.contains(">3</a>"), "confirmed count kept");
    let page = admin
        .get("/admin/lists/us-icc-updates")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"unarchive-list\""));
    let r = admin
        .post("/admin/lists/us-icc-updates/unarchive", &[])
        .await;
    assert_eq!(r.status(), 303);
    assert!(admin
        .get("/admin/lists")
        .await
        .text()
        .await
        .unwrap()
        .contains(">open<"));
    let audited: Vec<(String, String)> = sqlx::query_as(
        "SELECT actor, action FROM audit_log WHERE subject = 'us-icc-updates' ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        audited,
        [
            ("ad@example.org".to_owned(), "list-archive".to_owned()),
            ("ad@example.org".to_owned(), "list-unarchive".to_owned())
        ]
    );
}

#[tokio::test]
async fn the_archive_and_template_forms_refuse_a_post_without_the_csrf_token_or_from_another_origin(
) {
    let app = spawn_staff_app(&[]).await;
    let mut admin = signed_in(&app, "ad@example.org", StaffRole::Admin).await;
    let base = app.settings.server.base_url.as_str().to_owned();
    let csrf = admin.csrf().await;
    let parts = [
        ("subject", "Forged"),
        ("text", "Forged"),
        ("html", "<p>Forged</p>"),
    ];
    for (path, fields) in [
        ("/admin/lists/us-icc-updates/archive", &[][..]),
        ("/admin/lists/us-icc-updates/unarchive", &[][..]),
        ("/admin/templates/update", &parts[..]),
        ("/admin/templates/update/preview", &parts[..]),
        ("/admin/templates/update/preview-frame", &parts[..]),
        ("/admin/templates/update/revert", &[("default", "yes")][..]),
    ] {
        let missing = admin.post_with(path, fields, Some(&base)).await;
        assert_eq!(missing.status(), 403, "{path} without the token");
        let mut with_token = vec![("csrf_token", csrf.as_str())];
        with_token.extend_from_slice(fields);
        let foreign = admin
            .post_with(path, &with_token, Some("http://127.0.0.1:1"))
            .await;
        assert_eq!(foreign.status(), 403, "{path} from another origin");
    }
    let archived: bool = sqlx::query_scalar(
        "SELECT archived_at IS NOT NULL FROM lists WHERE slug = 'us-icc-updates'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(!archived, "the list is still open");
    let versions: i64 = sqlx::query_scalar("SELECT count(*) FROM mail_template_versions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(versions, 0, "no template version was saved");
}
