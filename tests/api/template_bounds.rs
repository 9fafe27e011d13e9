//! Templates staff write cannot take the service down (issue 26): a generated corpus of
//! recursive, nested, deep and huge templates is thrown at every door that compiles one (the
//! admin preview, its HTML frame and save, `PUT /api/v1/templates/{name}`, a digest's intro)
//! while a thread of its own asks `/health` throughout; and templates must show what their kind
//! of mail carries.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use newsletter::domain::StaffRole;
use reqwest::Method;
use serde_json::{json, Value};

use crate::admin::{signed_in, spawn_staff_app, Browser};
use crate::helpers::TestApp;

/// The slowest `/health` answer the issue allows, beyond what the probe itself took to reach
/// a server that answers at once (on a busy machine the probe's own thread may wait for a
/// core).
const HEALTH_WITHIN: Duration = Duration::from_secs(1);

/// One template of the corpus: what it is, its parts (`None`: the shipped part), and a piece
/// of the reason the answer must give.
struct Case {
    what: String,
    subject: Option<String>,
    text: Option<String>,
    html: Option<String>,
    reason: &'static str,
}

fn case(what: impl Into<String>, reason: &'static str) -> Case {
    Case {
        what: what.into(),
        subject: None,
        text: None,
        html: None,
        reason,
    }
}

impl Case {
    fn subject(self, source: impl Into<String>) -> Self {
        Self {
            subject: Some(source.into()),
            ..self
        }
    }

    fn text(self, source: impl Into<String>) -> Self {
        Self {
            text: Some(source.into()),
            ..self
        }
    }

    fn html(self, source: impl Into<String>) -> Self {
        Self {
            html: Some(source.into()),
            ..self
        }
    }
}

/// `n` inline partials `p0`…, each naming the next `fan_out` times, the last holding `leaf`:
/// `fan_out^n` copies of `leaf`.
fn fan_out(n: usize, fan_out: usize, leaf: &str) -> String {
    let mut source: String = (0..n)
        .map(|i| {
            format!(
                "{{{{#*inline \"p{i}\"}}}}{}{{{{/inline}}}}",
                format!("{{{{> p{}}}}}", i + 1).repeat(fan_out)
            )
        })
        .collect();
    source.push_str(&format!(
        "{{{{#*inline \"p{n}\"}}}}{leaf}{{{{/inline}}}}{{{{> p0}}}}"
    ));
    source
}

/// The corpus: every way we know to make handlebars recurse, nest or blow up, in sizes.
fn corpus() -> Vec<Case> {
    let mut cases = Vec::new();
    // The issue's template, then cycles of growing length, through blocks and loops.
    cases.push(
        case("an inline partial including itself", "include each other")
            .html(r#"{{#*inline "r"}}x{{> r}}{{/inline}}{{> r}}"#),
    );
    for n in [2, 5, 30] {
        let mut source: String = (0..n)
            .map(|i| {
                format!(
                    "{{{{#*inline \"c{i}\"}}}}{{{{#each news_items}}}}{{{{#if title}}}}{{{{> c{}}}}}{{{{/if}}}}{{{{/each}}}}{{{{/inline}}}}",
                    (i + 1) % n
                )
            })
            .collect();
        source.push_str("{{> c0}}");
        cases.push(
            case(
                format!("a cycle of {n} inline partials"),
                "include each other",
            )
            .text(source),
        );
    }
    cases.push(
        case(
            "subject and text including each other",
            "include each other",
        )
        .subject("{{> update/body.txt}}")
        .text("{{> update/subject.txt}}"),
    );
    cases.push(
        case("a part including itself", "include each other").html("<p>{{> update/body.html}}</p>"),
    );
    // Fan-out that writes: the issue's 100 MB in 112 s, and more. Whichever limit comes first
    // (the output's, or the time's where each partial writes little).
    for (depth, width, leaf) in [(8, 10, "xxxxxxxxxx"), (6, 30, "<&\"'>"), (4, 200, "yy")] {
        cases.push(
            case(
                format!("inline partials {depth} deep with a fan-out of {width}"),
                "(templates.max_",
            )
            .html(fan_out(depth, width, leaf)),
        );
    }
    // Fan-out that writes nothing: only the clock stops it.
    cases.push(
        case(
            "inline partials 9 deep with a fan-out of 10 writing nothing",
            "templates.max_render_ms",
        )
        .text(fan_out(9, 10, "{{!-- nothing --}}")),
    );
    // Depth: blocks, sub-expressions, partial chains, and text only the parser's stack sees.
    for n in [33, 1_000, 5_000] {
        cases.push(
            case(format!("{n} nested blocks"), "levels deep").html(format!(
                "{}x{}",
                "{{#if subject}}".repeat(n),
                "{{/if}}".repeat(n)
            )),
        );
    }
    for n in [33, 3_000] {
        cases.push(
            case(format!("{n} nested sub-expressions"), "levels deep").text(format!(
                "{{{{#if {}subject{}}}}}x{{{{/if}}}}",
                "(not ".repeat(n),
                ")".repeat(n)
            )),
        );
    }
    let mut chain: String = (0..40)
        .map(|i| {
            format!(
                "{{{{#*inline \"l{i}\"}}}}-{{{{> l{}}}}}{{{{/inline}}}}",
                i + 1
            )
        })
        .collect();
    chain.push_str("{{#*inline \"l40\"}}.{{/inline}}{{> l0}}");
    cases.push(case("a chain of 40 partials", "levels deep").text(chain));
    for (what, text) in [
        (
            "20,000 open brackets",
            format!("{{{{lookup {}", "[".repeat(20_000)),
        ),
        (
            "5,000 open braces",
            format!("{{{{lookup {}", "{\"a\":".repeat(5_000)),
        ),
        ("5,000 unclosed blocks", "{{#if subject}}".repeat(5_000)),
    ] {
        cases.push(case(what, "line").html(text));
    }
    // Partials the check cannot follow.
    cases.push(
        case("a partial named by the data", "written out").text("{{> (lookup this \"subject\")}}"),
    );
    cases.push(case("an unknown partial", "no such partial").text("{{> welcome/body.txt}}"));
    cases.push(
        case("a partial block", "partial blocks")
            .html("{{#> update/body.txt}}fallback{{/update/body.txt}}"),
    );
    cases.push(
        case("an inline partial named by the data", "in quotes")
            .text("{{#*inline subject}}x{{/inline}}"),
    );
    cases
}

/// A mail template body for the API and the forms: the case's parts over the shipped ones.
fn parts(case: &Case, shipped: &Value) -> [(&'static str, String); 3] {
    let part = |given: &Option<String>, name: &str| {
        given
            .clone()
            .unwrap_or_else(|| shipped[name].as_str().unwrap().to_owned())
    };
    [
        ("subject", part(&case.subject, "subject")),
        ("text", part(&case.text, "text")),
        ("html", part(&case.html, "html")),
    ]
}

/// A server that answers every request at once, on a thread of its own: what a probe costs
/// when the server is not the slow part.
fn instant_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        }
    });
    address
}

/// `GET /health` over a plain blocking socket: the status line and how long the answer took.
fn probe(address: &str) -> (String, Duration) {
    let started = Instant::now();
    let answer = (|| -> std::io::Result<String> {
        let mut stream = TcpStream::connect(address)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.write_all(
            format!("GET /health HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\n\r\n")
                .as_bytes(),
        )?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer.lines().next().unwrap_or_default().to_owned())
    })()
    .unwrap_or_else(|e| format!("no answer: {e}"));
    (answer, started.elapsed())
}

/// Asks `/health` every 50 ms until `stop`; each time also the instant server, and keeps the
/// worst excess of the first over the second, and any answer other than 200.
struct HealthWatch {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(Duration, Duration, Vec<String>, usize)>,
}

impl HealthWatch {
    fn start(app: &TestApp) -> Self {
        let address = app.address.trim_start_matches("http://").to_owned();
        let control = instant_server();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let (mut worst, mut worst_raw, mut bad, mut probes) =
                (Duration::ZERO, Duration::ZERO, Vec::new(), 0);
            while !stopped.load(Ordering::Relaxed) {
                let (_, own) = probe(&control);
                let (status, took) = probe(&address);
                probes += 1;
                worst = worst.max(took.saturating_sub(own));
                worst_raw = worst_raw.max(took);
                if !status.starts_with("HTTP/1.1 200") {
                    bad.push(status);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            (worst, worst_raw, bad, probes)
        });
        Self { stop, thread }
    }

    /// The worst excess, the worst raw time, the bad answers and the number of probes.
    fn finish(self) -> (Duration, Duration, Vec<String>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// The part of an answer that gives the reason: the admin pages' error, the API's errors.
fn reason_in(body: &str) -> String {
    let from = ["No preview:", "Not saved:", "\"errors\""]
        .iter()
        .find_map(|m| body.find(m))
        .unwrap_or(0);
    body[from..].chars().take(300).collect()
}

/// The answer to one door, as (status, body).
async fn throw(
    app: &TestApp,
    browser: &mut Browser<'_>,
    token: &str,
    door: &str,
    fields: &[(&'static str, String)],
) -> (u16, String) {
    let response = if door == "api" {
        let body: serde_json::Map<String, Value> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        app.api(
            Method::PUT,
            "/api/v1/templates/update",
            token,
            Some(Value::Object(body)),
        )
        .await
    } else {
        let form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        browser.post(door, &form).await
    };
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn recursive_nested_and_huge_templates_are_refused_at_every_door_while_health_answers() {
    let app = spawn_staff_app(&[]).await;
    let mut admin = signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    let token = app.api_token().await;
    let shipped: Value = app
        .api(Method::GET, "/api/v1/templates/update", &token, None)
        .await
        .json()
        .await
        .unwrap();
    let doors = [
        "/admin/templates/update/preview",
        "/admin/templates/update/preview-frame",
        "/admin/templates/update",
        "api",
    ];
    let watch = HealthWatch::start(&app);
    let started = Instant::now();
    let mut failures = Vec::new();
    for case in corpus() {
        let fields = parts(&case, &shipped);
        for door in doors {
            let (status, body) = throw(&app, &mut admin, &token, door, &fields).await;
            let refused = (400..500).contains(&status) && body.contains(case.reason);
            if !refused {
                failures.push(format!(
                    "{} at {door}: {status} {}",
                    case.what,
                    reason_in(&body)
                ));
            }
        }
    }
    // A digest's intro is a template staff write too.
    let digest = json!({
        "name": "Weekly digest", "lists": ["us-icc-updates"],
        "intro": r#"{{#*inline "r"}}x{{> r}}{{/inline}}{{> r}}"#,
        "recurrence": {"frequency": "weekly", "weekdays": ["monday"], "time": "09:00"},
        "time_zone": "America/New_York", "mode": "review",
    });
    let answer = app
        .api(Method::POST, "/api/v1/digests", &token, Some(digest))
        .await;
    let status = answer.status().as_u16();
    let body: Value = answer.json().await.unwrap();
    if status != 422
        || !body["errors"]["intro"]
            .as_str()
            .unwrap_or_default()
            .contains("include each other")
    {
        failures.push(format!("a recursive digest intro: {status} {body}"));
    }
    let took = started.elapsed();
    let (worst, worst_raw, bad, probes) = watch.finish();
    eprintln!(
        "/health: slowest {worst_raw:?}, {worst:?} beyond an instant server; {probes} probes \
         over {took:?}"
    );

    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(probes > 0 && bad.is_empty(), "/health answered {bad:?}");
    assert!(
        worst < HEALTH_WITHIN,
        "/health took up to {worst:?} more than an instant server ({worst_raw:?} in all, \
         {probes} probes over {took:?})"
    );
    // Still whole: the shipped template previews and a marked copy saves.
    let fields = parts(&case("the shipped template", ""), &shipped);
    let (status, _) = throw(&app, &mut admin, &token, "api", &fields).await;
    assert_eq!(status, 200);
    let versions: i64 = sqlx::query_scalar("SELECT count(*) FROM mail_template_versions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(versions, 1, "nothing of the corpus was saved");
}

#[tokio::test]
async fn a_template_that_leaves_out_what_its_mail_must_carry_is_refused_naming_it() {
    let app = spawn_staff_app(&[]).await;
    let mut admin = signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    let token = app.api_token().await;
    let current = |name: &'static str| {
        let app = &app;
        let token = &token;
        async move {
            app.api(
                Method::GET,
                &format!("/api/v1/templates/{name}"),
                token,
                None,
            )
            .await
            .json::<Value>()
            .await
            .unwrap()
        }
    };
    let put = |name: &'static str, body: Value| {
        let app = &app;
        let token = &token;
        async move {
            let r = app
                .api(
                    Method::PUT,
                    &format!("/api/v1/templates/{name}"),
                    token,
                    Some(body),
                )
                .await;
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };

    // An update without the unsubscribe link in its text and without the postal address in HTML.
    let update = current("update").await;
    let mut body =
        json!({"subject": update["subject"], "text": update["text"], "html": update["html"]});
    body["text"] = json!(update["text"]
        .as_str()
        .unwrap()
        .replace("{{unsubscribe_url}}", ""));
    let (status, answer) = put("update", body.clone()).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(
        answer["errors"]["text"],
        "must show the unsubscribe link ({{unsubscribe_url}})"
    );
    body["text"] = update["text"].clone();
    body["html"] = json!(update["html"]
        .as_str()
        .unwrap()
        .replace("{{postal_address}}", "1 Sample Street"));
    let (status, answer) = put("update", body.clone()).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(
        answer["errors"]["html"],
        "must show the postal address ({{postal_address}})"
    );
    // Text that looks like the sample's values is not the field.
    body["html"] = json!("{{subject}} https://example.org/unsubscribe/sample- https://example.org/manage/sample- 1 Sample Street");
    let (status, answer) = put("update", body).await;
    assert_eq!(status, 422, "{answer}");
    let why = answer["errors"]["html"].as_str().unwrap();
    assert!(
        why.contains("unsubscribe link")
            && why.contains("preferences link")
            && why.contains("postal address"),
        "{why}"
    );

    // A confirmation without its link; a welcome without the preferences link.
    let confirmation = current("confirmation").await;
    let (status, answer) = put(
        "confirmation",
        json!({"subject": confirmation["subject"], "text": confirmation["text"],
               "html": "<p>Please confirm.</p>"}),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(
        answer["errors"]["html"],
        "must show the confirmation link ({{confirm_url}})"
    );
    let welcome = current("welcome").await;
    let (status, answer) = put(
        "welcome",
        json!({"subject": welcome["subject"], "text": "Welcome!", "html": welcome["html"]}),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(
        answer["errors"]["text"],
        "must show the preferences link ({{manage_url}})"
    );

    // The admin area gives the same answer, for a preview and for a save.
    let text = update["text"]
        .as_str()
        .unwrap()
        .replace("{{manage_url}}", "");
    for door in ["/admin/templates/update/preview", "/admin/templates/update"] {
        let page = admin
            .post(
                door,
                &[
                    ("subject", update["subject"].as_str().unwrap()),
                    ("text", &text),
                    ("html", update["html"].as_str().unwrap()),
                ],
            )
            .await;
        assert_eq!(page.status(), 422, "{door}");
        let html = page.text().await.unwrap();
        assert!(
            html.contains("text: must show the preferences link"),
            "{door}: {html}"
        );
    }
    let saved: i64 = sqlx::query_scalar("SELECT count(*) FROM mail_template_versions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(saved, 0);

    // Shown some other way than the shipped template does: a condition, a loop, unescaped.
    let shown = json!({
        "subject": update["subject"], "text": update["text"],
        "html": "{{#if manage_url}}<a href=\"{{manage_url}}\">Preferences</a>{{/if}} \
                 <a href=\"{{{unsubscribe_url}}}\">Unsubscribe</a> \
                 {{#each news_items}}{{#if @first}}{{@root.postal_address}}{{/if}}{{/each}}",
    });
    let (status, answer) = put("update", shown).await;
    assert_eq!(status, 200, "{answer}");
}
