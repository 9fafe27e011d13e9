//! Importing in the staff area: a file upload, the job's page with its progress, and the bad
//! row's real line number, on the page and in the CSV download; the list of recent jobs.

use std::time::{Duration, Instant};

use newsletter::domain::StaffRole;
use reqwest::header::{CONTENT_TYPE, COOKIE, ORIGIN};

use super::{signed_in, spawn_staff_app, Browser};

const BOUNDARY: &str = "----newsletter-test-boundary";

/// A multipart/form-data body as a browser sends the import form.
fn multipart(fields: &[(&str, &str)], file: &str) -> String {
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"event.csv\"\r\nContent-Type: text/csv\r\n\r\n{file}\r\n--{BOUNDARY}--\r\n"
    ));
    body
}

/// Sends the import form with `fields` (the CSRF token among them, or not) and `file`.
pub(crate) async fn upload(
    browser: &mut Browser<'_>,
    fields: &[(&str, &str)],
    file: &str,
) -> reqwest::Response {
    let app = browser.app;
    app.http
        .post(app.url("/admin/imports"))
        .header(COOKIE, browser.cookies.join("; "))
        .header(ORIGIN, app.settings.server.base_url.as_str())
        .header(
            CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(multipart(fields, file))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_admin_uploads_a_file_with_one_bad_row_and_sees_its_line_number() {
    let app = spawn_staff_app(&[]).await;
    let mut admin = signed_in(&app, "ad@example.org", StaffRole::Admin).await;
    let file =
        "name;email\r\nAna;ana@example.org\r\n\r\nBo;not-an-address\r\nCy;cy@example.org\r\n";

    let forged = upload(
        &mut admin,
        &[("source", "Town hall"), ("csrf_token", "nope")],
        file,
    )
    .await;
    assert_eq!(forged.status(), 403);
    let csrf = admin.csrf().await;
    let r = upload(
        &mut admin,
        &[
            ("csrf_token", &csrf),
            ("lists", "new-york-alliance"),
            ("mode", "confirmed"),
            ("source", "Town hall, 12 Nov"),
        ],
        file,
    )
    .await;
    assert_eq!(r.status(), 303);
    let page = r.headers()["location"].to_str().unwrap().to_owned();

    let started = Instant::now();
    let html = loop {
        let html = admin.get(&page).await.text().await.unwrap();
        if html.contains("(done)") {
            break html;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{html}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(html.contains("<dd id=\"imported\">2</dd>"), "{html}");
    assert!(
        html.contains("<tr><td>4</td><td>email</td>"),
        "line 4 of the file: {html}"
    );
    let csv = admin
        .get(&format!("{page}/errors.csv"))
        .await
        .text()
        .await
        .unwrap();
    assert!(csv.starts_with("line,field,message\n4,email,"), "{csv}");
    let on_list: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM subscriptions x JOIN lists l ON l.id = x.list_id
         WHERE l.slug = 'new-york-alliance' AND x.status = 'confirmed'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(on_list, 2);
    let audited: String = sqlx::query_scalar("SELECT actor FROM audit_log WHERE action = 'import'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(audited, "ad@example.org");

    let list = admin.get("/admin/imports").await.text().await.unwrap();
    let row = list
        .split("<tr>")
        .find(|row| row.contains(&format!("href=\"{page}\"")))
        .unwrap_or_else(|| panic!("the job links to its page: {list}"));
    for cell in [
        "<td>ad@example.org</td>",
        "<td>new-york-alliance </td>",
        "<td>confirmed</td>",
        "<td>done</td>",
        "<td>3</td><td>2</td><td>1</td>",
    ] {
        assert!(row.contains(cell), "{cell} in {row}");
    }
}

/// Uploads `file` with nothing ticked and waits for the job's page to say it is done.
async fn import_and_wait(admin: &mut Browser<'_>, file: &str, lists: &[&str]) -> (String, String) {
    let csrf = admin.csrf().await;
    let mut fields = vec![
        ("csrf_token", csrf.as_str()),
        ("mode", "confirmed"),
        ("source", "Town hall"),
    ];
    fields.extend(lists.iter().map(|l| ("lists", *l)));
    let r = upload(admin, &fields, file).await;
    assert_eq!(r.status(), 303);
    let page = r.headers()["location"].to_str().unwrap().to_owned();
    let started = Instant::now();
    loop {
        let html = admin.get(&page).await.text().await.unwrap();
        if html.contains("(done)") {
            return (page, html);
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{html}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn confirmed_on(app: &crate::helpers::TestApp, slug: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM subscriptions x JOIN lists l ON l.id = x.list_id
         WHERE l.slug = $1 AND x.status = 'confirmed'",
    )
    .bind(slug)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

/// Issue 27: New York rows imported without their alliance, and a re-import that added them
/// whose page said "0 new, 0 refused".
#[tokio::test]
async fn a_state_column_adds_the_alliance_and_the_page_counts_everyone_added() {
    let app = spawn_staff_app(&[]).await;
    let mut admin = signed_in(&app, "ad@example.org", StaffRole::Admin).await;
    let (_, html) = import_and_wait(
        &mut admin,
        "email,name,state\nana@example.org,Ana,NY\nbo@example.org,Bo,ny\ncy@example.org,Cy,\n",
        &[],
    )
    .await;
    assert!(html.contains("<dd id=\"imported\">3</dd>"), "{html}");
    assert!(
        html.contains("Town hall"),
        "the consent source is shown: {html}"
    );
    assert_eq!(confirmed_on(&app, "new-york-alliance").await, 2);
    assert_eq!(confirmed_on(&app, "us-icc-updates").await, 3);

    // The same people again, with a private list ticked: all three are added to it.
    sqlx::query("INSERT INTO lists (slug, name, is_public) VALUES ('donors', 'Donors', false)")
        .execute(&app.pool)
        .await
        .unwrap();
    let (page, html) = import_and_wait(
        &mut admin,
        "email\nana@example.org\nbo@example.org\ncy@example.org\ncy@example.org\nnot-an-address\n",
        &["donors"],
    )
    .await;
    for (id, count) in [
        ("imported", 0),
        ("added", 3),
        ("already", 0),
        ("duplicates", 1),
        ("suppressed", 0),
        ("refused", 1),
    ] {
        assert!(
            html.contains(&format!("<dd id=\"{id}\">{count}")),
            "{id} {count}: {html}"
        );
    }
    assert_eq!(confirmed_on(&app, "donors").await, 3);
    assert!(
        html.contains(&format!("href=\"{page}/refused.csv\"")),
        "{html}"
    );
    let refused = admin
        .get(&format!("{page}/refused.csv"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        refused.starts_with("email,error\nnot-an-address,"),
        "{refused}"
    );
}
