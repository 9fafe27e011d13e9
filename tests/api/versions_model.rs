//! A model test of what goes out: random sequences of staff actions (edit content, edit audience,
//! preview, test, request approval, approve, schedule, unschedule, send, pause, resume) by random
//! staff of both roles, against the real service and SMTP server. After each sequence: every
//! mail a reader got carries exactly the version that was last released before the update
//! started (approved, with the two-person rule on; confirmed at send, with it off), nobody got it
//! twice, an editor was refused every admin's action, and no mail (test mails included)
//! reached the person who complained. Failures shrink to the shortest sequence and are kept in
//! `proptest-regressions/update_versions.txt`.
//!
//! Cases: `NEWSLETTER_MODEL_CASES` (default 10); each runs on a fresh database.

use std::collections::BTreeSet;
use std::time::Duration;

use newsletter::domain::StaffRole;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use toml::Value;

use crate::admin::updates::{compose, hidden};
use crate::admin::{signed_in, spawn_staff_app, Browser};
use crate::helpers::TestApp;
use crate::versions::status;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Ana,
    Bo,
    Ed,
}

#[derive(Debug, Clone, Copy)]
enum Step {
    EditContent(Who),
    EditAudience(Who),
    Preview(Who),
    Test(Who, bool),
    RequestApproval(Who),
    Approve(Who),
    Schedule(Who),
    Unschedule(Who),
    Send(Who),
    Pause(Who),
    Resume(Who),
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![Just(Who::Ana), Just(Who::Bo), Just(Who::Ed)]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => who().prop_map(Step::EditContent),
        1 => who().prop_map(Step::EditAudience),
        1 => who().prop_map(Step::Preview),
        1 => (who(), any::<bool>()).prop_map(|(w, s)| Step::Test(w, s)),
        1 => who().prop_map(Step::RequestApproval),
        3 => who().prop_map(Step::Approve),
        1 => who().prop_map(Step::Schedule),
        1 => who().prop_map(Step::Unschedule),
        3 => who().prop_map(Step::Send),
        1 => who().prop_map(Step::Pause),
        1 => who().prop_map(Step::Resume),
    ]
}

const LISTS: [&[&str]; 2] = [
    &["us-icc-updates"],
    &["new-york-alliance", "us-icc-updates"],
];
const COMPLAINED: &str = "reader2@example.org";

/// What the test knows: each version's subject, the lists now, what was released and approved.
struct Model {
    subjects: Vec<String>,
    audience: usize,
    released: Option<i32>,
    approved: BTreeSet<i32>,
    started: Option<i32>,
}

impl Model {
    fn version(&self) -> i32 {
        self.subjects.len() as i32
    }
}

async fn started(app: &TestApp, id: &str) -> bool {
    sqlx::query_scalar("SELECT started_at IS NOT NULL FROM updates WHERE id = $1::uuid")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// Where a staff form sent the browser (`done=` of the update's page), or the status.
fn outcome(r: &reqwest::Response) -> String {
    match r.headers().get("location") {
        Some(l) => l.to_str().unwrap().to_owned(),
        None => r.status().as_u16().to_string(),
    }
}

async fn run(approval: bool, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let rule: Vec<(&str, Value)> = if approval {
        vec![
            ("sending.require_approval", Value::Boolean(true)),
            ("sending.approval_threshold", 1.into()),
        ]
    } else {
        Vec::new()
    };
    let app = spawn_staff_app(&rule).await;
    app.seed_confirmed(3, "example.org").await;
    sqlx::query("UPDATE subscribers SET status = 'complained' WHERE email = $1")
        .bind(COMPLAINED)
        .execute(&app.pool)
        .await
        .unwrap();
    let mut ana = signed_in(&app, "ana@example.org", StaffRole::Admin).await;
    let mut bo = signed_in(&app, "bo@example.org", StaffRole::Admin).await;
    let mut ed = signed_in(&app, "ed@example.org", StaffRole::Editor).await;
    let id = compose(&mut ana, "Version 1", &[]).await;
    let mut model = Model {
        subjects: vec!["Version 1".into()],
        audience: 0,
        released: None,
        approved: BTreeSet::new(),
        started: None,
    };
    for step in &steps {
        let before = status(&app, &id).await;
        let browser: &mut Browser = match step {
            Step::EditContent(w)
            | Step::EditAudience(w)
            | Step::Preview(w)
            | Step::Test(w, _)
            | Step::RequestApproval(w)
            | Step::Approve(w)
            | Step::Schedule(w)
            | Step::Unschedule(w)
            | Step::Send(w)
            | Step::Pause(w)
            | Step::Resume(w) => match w {
                Who::Ana => &mut ana,
                Who::Bo => &mut bo,
                Who::Ed => &mut ed,
            },
        };
        let editor = matches!(
            step,
            Step::Approve(Who::Ed)
                | Step::Schedule(Who::Ed)
                | Step::Send(Who::Ed)
                | Step::Pause(Who::Ed)
                | Step::Resume(Who::Ed)
        );
        let path = |action: &str| format!("/admin/updates/{id}/{action}");
        let version = model.version().to_string();
        let r = match step {
            Step::EditContent(_) | Step::EditAudience(_) => {
                let audience = match step {
                    Step::EditAudience(_) => 1 - model.audience,
                    _ => model.audience,
                };
                let subject = format!("Version {}", model.version() + 1);
                let mut fields = vec![("subject", subject.as_str())];
                fields.extend(LISTS[audience].iter().map(|l| ("lists", *l)));
                let r = browser.post(&format!("/admin/updates/{id}"), &fields).await;
                if before == "draft" {
                    prop_assert_eq!(r.status(), 303, "a draft is edited");
                    model.subjects.push(subject);
                    model.audience = audience;
                } else {
                    prop_assert_eq!(r.status(), 409, "{} is frozen", before);
                }
                r
            }
            Step::Preview(_) => {
                let r = browser
                    .get(&format!("{}?format=text", path("preview")))
                    .await;
                let text = r.text().await.unwrap();
                let current = &model.subjects[model.subjects.len() - 1];
                prop_assert!(
                    text.contains(current.as_str()),
                    "the preview shows {}",
                    current
                );
                continue;
            }
            Step::Test(_, suppressed) => {
                let to = if *suppressed {
                    COMPLAINED
                } else {
                    "staff@example.org"
                };
                let r = browser.post(&path("test"), &[("to", to)]).await;
                prop_assert_eq!(r.status(), if *suppressed { 422 } else { 303 });
                r
            }
            Step::RequestApproval(_) => {
                browser
                    .post(&path("request-approval"), &[("version", &version)])
                    .await
            }
            Step::Approve(_) => {
                browser
                    .post(&path("approve"), &[("version", &version)])
                    .await
            }
            Step::Schedule(_) => {
                let fields = [
                    ("at", "2030-01-01T09:00"),
                    ("time_zone", "America/New_York"),
                    ("version", version.as_str()),
                ];
                browser.post(&path("schedule"), &fields).await
            }
            Step::Unschedule(_) => browser.post(&path("unschedule"), &[]).await,
            Step::Send(_) => {
                let page = browser
                    .get(&format!("{}?action=send", path("confirm")))
                    .await;
                if editor {
                    prop_assert_eq!(page.status(), 403);
                    let key = newsletter::domain::Token::generate().as_str().to_owned();
                    browser
                        .post(
                            &path("send"),
                            &[("idempotency_key", &key), ("version", &version)],
                        )
                        .await
                } else {
                    let page = page.text().await.unwrap();
                    let fields = [
                        ("idempotency_key", hidden(&page, "idempotency_key")),
                        ("version", hidden(&page, "version")),
                    ];
                    let fields: Vec<(&str, &str)> =
                        fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    browser.post(&path("send"), &fields).await
                }
            }
            Step::Pause(_) => browser.post(&path("pause"), &[]).await,
            Step::Resume(_) => browser.post(&path("resume"), &[]).await,
        };
        prop_assert!(
            r.status().as_u16() < 500,
            "{:?} answered {}",
            step,
            r.status()
        );
        if editor {
            prop_assert_eq!(r.status(), 403, "an editor may not {:?}", step);
        }
        let done = outcome(&r);
        let after = status(&app, &id).await;
        // What an admin's action released to go out (at once or at its time).
        let released = match step {
            Step::Approve(_) => done.ends_with("done=approved"),
            Step::Send(_) => done.ends_with("done=sent"),
            Step::Schedule(_) => done.ends_with("done=scheduled"),
            Step::Resume(_) => done.ends_with("done=resumed") && model.started.is_none(),
            _ => false,
        };
        if released {
            if let Step::Approve(_) = step {
                model.approved.insert(model.version());
            }
            model.released = Some(model.version());
        }
        // Started (it may be paused already: the worker can start it during any step).
        if model.started.is_none() && started(&app, &id).await {
            prop_assert!(model.released.is_some(), "it started without a release");
            model.started = model.released;
        }
        if after == "draft" {
            model.released = None;
        }
    }

    // Let what was released for now go out.
    let due: bool = sqlx::query_scalar(
        "SELECT status = 'sending' OR (status = 'scheduled' AND scheduled_at <= now())
         FROM updates WHERE id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    if due {
        app.wait_for_update_status_within(&id, "sent", Duration::from_secs(60))
            .await;
        if model.started.is_none() {
            model.started = model.released;
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent_version: Option<i32> =
        sqlx::query_scalar("SELECT sent_version FROM updates WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    prop_assert_eq!(sent_version, model.started, "the version that went out");
    if approval {
        if let Some(v) = model.started {
            prop_assert!(
                model.approved.contains(&v),
                "version {} went out unapproved",
                v
            );
        }
    }
    let parser = mail_parser::MessageParser::default();
    let mut readers = Vec::new();
    for mail in app.smtp.messages() {
        let to = mail.rcpt_to[0].clone();
        prop_assert!(to != COMPLAINED, "a mail reached the person who complained");
        let parsed = parser.parse(&mail.data).unwrap();
        let subject = parsed.subject().unwrap_or_default().to_owned();
        if to.starts_with("reader") {
            let v = model
                .started
                .expect("a reader got mail of an update that never started");
            prop_assert_eq!(&subject, &model.subjects[v as usize - 1]);
            readers.push(to);
        } else if !subject.starts_with("Waiting for your approval") {
            prop_assert!(subject.starts_with("[Test] "), "{}", subject);
        }
    }
    let n = readers.len();
    readers.sort();
    readers.dedup();
    prop_assert_eq!(n, readers.len(), "nobody got it twice");
    if model.started.is_some() && status(&app, &id).await == "sent" {
        prop_assert_eq!(n, 2, "both readers got it");
    }
    app.stop().await;
    Ok(())
}

#[test]
fn every_mail_delivered_carries_the_version_last_released_by_the_rules() {
    let cases = std::env::var("NEWSLETTER_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let config = Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/update_versions.txt",
        ))),
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let strategy = (any::<bool>(), proptest::collection::vec(step(), 1..10));
    let result = runner.run(&strategy, |(approval, steps)| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(run(approval, steps))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
