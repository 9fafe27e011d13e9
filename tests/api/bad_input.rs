//! Every bad input gets its documented 4xx, leaves the database unchanged and sends nothing.

use std::time::Duration;

use crate::helpers::spawn_app;

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

fn cases() -> Vec<(&'static str, &'static str, Vec<u8>, u16)> {
    let long_local = format!("email={}%40example.org", "a".repeat(65));
    let long_address = format!("email=a%40{}.org", "b".repeat(250));
    let long_name = format!("email=a%40example.org&name={}", "n".repeat(101));
    let many_lists = format!(
        "email=a%40example.org{}",
        (0..51).map(|i| format!("&lists=l{i}")).collect::<String>()
    );
    let huge_form = format!("email=a%40example.org&name={}", "x".repeat(17 * 1024));
    let huge_json = format!(
        r#"{{"email": "a@example.org", "name": "{}"}}"#,
        "x".repeat(17 * 1024)
    );
    vec![
        ("empty email", FORM, b"email=".to_vec(), 422),
        ("no email field", FORM, b"name=Ann".to_vec(), 422),
        ("no @", FORM, b"email=plainaddress".to_vec(), 422),
        (
            "no dot in domain",
            FORM,
            b"email=a%40localhost".to_vec(),
            422,
        ),
        ("two @", FORM, b"email=a%40%40example.org".to_vec(), 422),
        (
            "space in domain",
            FORM,
            b"email=a%40exa+mple.org".to_vec(),
            422,
        ),
        (
            "CRLF header injection in email",
            FORM,
            b"email=a%40example.org%0D%0ABcc%3A+x%40example.org".to_vec(),
            422,
        ),
        (
            "display name in email",
            FORM,
            b"email=Ann+%3Ca%40example.org%3E".to_vec(),
            422,
        ),
        (
            "IP literal domain",
            FORM,
            b"email=a%40%5B127.0.0.1%5D".to_vec(),
            422,
        ),
        (
            "non-ASCII local part",
            FORM,
            "email=%C3%BC%40example.org".as_bytes().to_vec(),
            422,
        ),
        (
            "SQL in email",
            FORM,
            b"email=%27%3B+DROP+TABLE+subscribers%3B+--%40example.org".to_vec(),
            422,
        ),
        ("local part over 64", FORM, long_local.into_bytes(), 422),
        ("address over 254", FORM, long_address.into_bytes(), 422),
        ("name over 100", FORM, long_name.into_bytes(), 422),
        (
            "newline in name",
            FORM,
            b"email=a%40example.org&name=Ann%0D%0ABcc%3A+x".to_vec(),
            422,
        ),
        (
            "NUL in name",
            FORM,
            b"email=a%40example.org&name=A%00n".to_vec(),
            422,
        ),
        (
            "unknown list",
            FORM,
            b"email=a%40example.org&lists=no-such-list".to_vec(),
            422,
        ),
        (
            "malformed list slug",
            FORM,
            b"email=a%40example.org&lists=Bad+List%27".to_vec(),
            422,
        ),
        ("more than 50 lists", FORM, many_lists.into_bytes(), 422),
        (
            "invalid UTF-8 in form",
            FORM,
            b"email=%FF%FE%40example.org".to_vec(),
            422,
        ),
        ("form body over 16 KiB", FORM, huge_form.into_bytes(), 413),
        (
            "text/plain",
            "text/plain",
            b"email=a%40example.org".to_vec(),
            415,
        ),
        (
            "multipart",
            "multipart/form-data; boundary=x",
            b"--x--".to_vec(),
            415,
        ),
        (
            "no content type",
            "",
            b"email=a%40example.org".to_vec(),
            415,
        ),
        (
            "broken JSON",
            JSON,
            br#"{"email": "a@example.org""#.to_vec(),
            400,
        ),
        (
            "invalid UTF-8 JSON",
            JSON,
            b"{\"email\": \"\xff@example.org\"}".to_vec(),
            400,
        ),
        ("JSON array", JSON, b"[1, 2]".to_vec(), 422),
        ("JSON null", JSON, b"null".to_vec(), 422),
        ("email as number", JSON, br#"{"email": 42}"#.to_vec(), 422),
        (
            "name as object",
            JSON,
            br#"{"email": "a@example.org", "name": {"x": 1}}"#.to_vec(),
            422,
        ),
        (
            "lists as string",
            JSON,
            br#"{"email": "a@example.org", "lists": "us-icc-updates"}"#.to_vec(),
            422,
        ),
        (
            "lists of numbers",
            JSON,
            br#"{"email": "a@example.org", "lists": [1]}"#.to_vec(),
            422,
        ),
        (
            "JSON email with CRLF",
            JSON,
            br#"{"email": "a@example.org\r\nBcc: b@example.org"}"#.to_vec(),
            422,
        ),
        (
            "JSON RTL override in email",
            JSON,
            "{\"email\": \"a\u{202e}@example.org\"}".as_bytes().to_vec(),
            422,
        ),
        ("JSON body over 16 KiB", JSON, huge_json.into_bytes(), 413),
    ]
}

#[tokio::test]
async fn every_bad_signup_gets_its_documented_4xx_and_changes_nothing() {
    let app = spawn_app().await;
    let cases = cases();
    assert!(cases.len() >= 25);

    for (what, content_type, body, expected) in cases {
        let mut request = app.http.post(app.url("/subscriptions")).body(body);
        if !content_type.is_empty() {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(status, expected, "{what}: got {status} {text}");
        assert!(!text.is_empty(), "{what}: the error says something");
        if content_type == JSON && expected == 422 {
            let body: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert!(
                body["errors"].as_object().is_some_and(|e| !e.is_empty()),
                "{what}: {text}"
            );
        }
        assert_eq!(
            app.row_counts().await,
            (0, 0, 0, 0),
            "{what}: the database changed"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.smtp.count(), 0, "a bad input sent mail");
}

#[tokio::test]
async fn an_invalid_form_is_shown_again_with_the_values_kept_and_a_message_per_field() {
    let app = spawn_app().await;

    let response = app
        .post_form(
            "/subscriptions",
            "email=not-an-address&name=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        )
        .await;

    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(html.contains(r#"value="not-an-address""#));
    assert!(html.contains(r#"id="email-error""#));
    assert!(
        !html.contains("<script>alert(1)</script>"),
        "the name is escaped"
    );
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
}
