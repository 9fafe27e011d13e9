//! Arbitrary bytes at every public form and every API body (proptest): never a 5xx, never a
//! dropped connection (a panic), and API errors in the documented shape (`{"error": ...}`).

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, TestApp, SECRET_KEY};
use newsletter::domain::subscriber_link::{sign, LinkPurpose};

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

/// Field names the forms and bodies have, so values reach the parsers behind them.
const FIELDS: &[&str] = &[
    "email",
    "name",
    "lists",
    "lists[]",
    "state",
    "website",
    "token",
    "action",
    "topics",
    "List-Unsubscribe",
    "subject",
    "preheader",
    "intro",
    "news_items",
    "template",
    "from",
    "reply_to",
    "slug",
    "description",
    "public",
    "welcome",
    "to",
    "at",
    "title",
    "url",
];

/// A form body: known or random field names, values of arbitrary bytes (NUL and invalid UTF-8
/// included), percent-encoded or raw.
fn form_body() -> impl Strategy<Value = Vec<u8>> {
    let name = prop_oneof![
        proptest::sample::select(FIELDS).prop_map(|f| f.as_bytes().to_vec()),
        proptest::collection::vec(any::<u8>(), 0..12),
    ];
    let value = proptest::collection::vec(any::<u8>(), 0..40);
    let pair = (name, value, any::<bool>()).prop_map(|(n, v, escape)| {
        let mut out = n;
        out.push(b'=');
        if escape {
            for b in v {
                out.extend_from_slice(format!("%{b:02X}").as_bytes());
            }
        } else {
            out.extend(v);
        }
        out
    });
    prop_oneof![
        proptest::collection::vec(pair, 0..8).prop_map(|pairs| pairs.join(&b'&')),
        proptest::collection::vec(any::<u8>(), 0..200),
    ]
}

/// A JSON value with hostile strings (NUL, controls, long) and wrong types.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,30}|[\\x00-\\x1f a]{0,10}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((proptest::sample::select(FIELDS), inner), 0..6).prop_map(
                |fields| Value::Object(
                    fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
                )
            ),
        ]
    })
}

/// A JSON body: a valid one with one field made hostile, a hostile value, or arbitrary bytes.
fn json_body(valid: Value) -> impl Strategy<Value = Vec<u8>> {
    let mutated = (proptest::sample::select(FIELDS), json_value()).prop_map(move |(field, v)| {
        let mut body = valid.clone();
        body[field] = v;
        serde_json::to_vec(&body).unwrap()
    });
    prop_oneof![
        3 => mutated,
        1 => json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => proptest::collection::vec(any::<u8>(), 0..200),
    ]
}

/// A valid form with one more field of arbitrary bytes, or an arbitrary form.
fn form_with(valid: &'static str) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => form_body().prop_map(move |extra| [valid.as_bytes(), b"&", &extra].concat()),
        1 => form_body(),
    ]
}

struct Target {
    method: Method,
    path: String,
    /// A valid body that the strategies make hostile: a form or a JSON value.
    valid: Valid,
    api: bool,
}

enum Valid {
    Form(&'static str),
    Json(Value),
}

async fn targets(app: &TestApp, token: &str) -> Vec<Target> {
    let person = app.seed_confirmed(1, "example.org").await[0].0;
    let link = |purpose| {
        sign(SECRET_KEY.as_bytes(), purpose, person, 1)
            .as_str()
            .to_owned()
    };
    let update = app.create_update(token, "Fuzzed").await;
    let form = |path: String, valid| Target {
        method: Method::POST,
        path,
        valid: Valid::Form(valid),
        api: false,
    };
    let api = |method: Method, path: String, valid: Value| Target {
        method,
        path,
        valid: Valid::Json(valid),
        api: true,
    };
    let list = json!({"slug": "fuzz-list", "name": "Fuzz", "description": "d", "public": true});
    vec![
        form(
            "/subscriptions".into(),
            "email=a%40example.org&lists=us-icc-updates",
        ),
        Target {
            method: Method::POST,
            path: "/subscriptions".into(),
            valid: Valid::Json(json!({"email": "a@example.org", "lists": ["us-icc-updates"]})),
            api: false,
        },
        form("/subscriptions/confirm".into(), "token=abc"),
        form(
            format!("/unsubscribe/{}", link(LinkPurpose::Unsubscribe)),
            "action=lists&lists=us-icc-updates",
        ),
        form(
            format!("/manage/{}", link(LinkPurpose::Manage)),
            "action=save&name=Fuzz&lists=us-icc-updates",
        ),
        api(
            Method::POST,
            "/api/v1/updates".into(),
            json!({"subject": "S", "lists": ["us-icc-updates"], "news_items": [{"title": "T"}]}),
        ),
        api(
            Method::PATCH,
            format!("/api/v1/updates/{update}"),
            json!({"subject": "S"}),
        ),
        api(
            Method::POST,
            format!("/api/v1/updates/{update}/schedule"),
            json!({"at": "2030-01-01T00:00:00Z"}),
        ),
        api(
            Method::POST,
            format!("/api/v1/updates/{update}/test"),
            json!({"to": "a@example.org"}),
        ),
        api(Method::POST, "/api/v1/lists".into(), list.clone()),
        api(Method::PUT, "/api/v1/lists/us-icc-updates".into(), list),
        api(
            Method::POST,
            "/api/v1/feeds".into(),
            json!({"url": "https://feeds.invalid/f.xml", "topic": "court", "approve": false}),
        ),
        api(
            Method::POST,
            "/api/v1/digests".into(),
            json!({"name": "D", "lists": ["us-icc-updates"], "intro": "{{count}}", "mode": "review",
                   "recurrence": {"frequency": "weekly", "weekdays": ["monday"], "time": "09:00"},
                   "time_zone": "America/New_York"}),
        ),
        api(
            Method::PUT,
            format!("/api/v1/updates/{update}/archive"),
            json!({"in_archive": false}),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbitrary_bytes_at_every_form_and_api_body_never_get_a_5xx() {
    let app = spawn_app_with(&[
        ("signup.per_ip_per_minute", 1_000_000.into()),
        ("links.per_ip_per_minute", 1_000_000.into()),
        ("signup.min_answer_ms", 0.into()),
    ])
    .await;
    let token = app.api_token().await;
    let targets = targets(&app, &token).await;
    let handle = tokio::runtime::Handle::current();
    let cases = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(64);
    for target in &targets {
        let (body, content_type) = match &target.valid {
            Valid::Form(valid) => (form_with(valid).boxed(), FORM),
            Valid::Json(valid) => (json_body(valid.clone()).boxed(), JSON),
        };
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        let result = tokio::task::block_in_place(|| {
            runner.run(&body, |bytes| {
                let (status, text, content_type) = handle.block_on(async {
                    let response = app
                        .http
                        .request(target.method.clone(), app.url(&target.path))
                        .bearer_auth(&token)
                        .header("content-type", content_type)
                        .body(bytes.clone())
                        .send()
                        .await
                        .expect("the connection held (no panic)");
                    let status = response.status().as_u16();
                    let content_type = response
                        .headers()
                        .get("content-type")
                        .map(|v| v.to_str().unwrap_or("").to_owned())
                        .unwrap_or_default();
                    (
                        status,
                        response.text().await.unwrap_or_default(),
                        content_type,
                    )
                });
                prop_assert!(
                    status < 500,
                    "{} {}: {} {}",
                    target.method,
                    target.path,
                    status,
                    text
                );
                if target.api && status >= 400 {
                    prop_assert!(
                        content_type.starts_with(JSON),
                        "{}: {}",
                        target.path,
                        content_type
                    );
                    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    prop_assert!(body["error"].is_string(), "{}: {}", target.path, text);
                }
                Ok(())
            })
        });
        if let Err(e) = result {
            panic!("{} {}: {e}", target.method, target.path);
        }
    }
}
