//! List hygiene (`[hygiene]`, opt-in): a confirmed subscriber inactive for
//! `hygiene.inactive_days` who was sent at least `hygiene.min_updates` updates since is asked
//! once per inactive spell whether they still want the updates (a notice mail whose button
//! opens `/still-reading/{token}`, a page with a POST form); without an answer or any other
//! activity within `hygiene.grace_days` they become `lapsed`: not mailed, not suppressed,
//! confirmed again by any activity (`store::subscribers::mark_active`) or a new sign-up. Runs
//! in the worker's housekeeping; nothing happens while `hygiene.enabled` is false.

use serde::Serialize;
use sqlx::PgPool;

use super::Actor;
use crate::config::Settings;
use crate::domain::subscriber_link::{self, LinkPurpose};
use crate::store::hygiene as store;

/// Most people one run asks (the rest are asked at the next runs).
pub const ASK_PER_RUN: i64 = 1000;
/// The question's subject.
pub const SUBJECT: &str = "Do you still want these updates?";

/// What one run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RunCounts {
    pub asked: u64,
    pub lapsed: u64,
}

/// One housekeeping run, in one transaction: ask who is due, lapse who did not answer in time,
/// and (when it asked or lapsed anyone) its audit entry with the counts. Nothing while
/// `hygiene.enabled` is false.
///
/// Errors: the database.
pub async fn run(pool: &PgPool, settings: &Settings) -> anyhow::Result<RunCounts> {
    let h = &settings.hygiene;
    if !h.enabled || !settings.engagement.remember_last_activity {
        return Ok(RunCounts::default());
    }
    let days = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    let mut tx = pool.begin().await?;
    let asked = store::ask(
        &mut tx,
        days(h.inactive_days),
        days(h.min_updates),
        ASK_PER_RUN,
    )
    .await?;
    let secret = settings.security.secret_key.expose().as_bytes();
    let postal = &settings.mail.postal_address;
    let questions: Vec<(uuid::Uuid, serde_json::Value)> = asked
        .iter()
        .map(|p| {
            let token = subscriber_link::sign(secret, LinkPurpose::Activity, p.id, p.link_version);
            let url = settings
                .server
                .base_url
                .join(&format!("/still-reading/{}", token.as_str()));
            let links = crate::mail::Links::for_id(settings, p.id, p.link_version);
            let text = format!(
                "You have not followed a link in our updates for a while. Do you still want \
                 them? Press the button to keep receiving them. If we hear nothing from you \
                 within {} days of this mail, we stop sending them (you can sign up again at \
                 any time). To stop them now: {} . {postal}",
                h.grace_days, links.unsubscribe
            );
            let payload = serde_json::json!({
                "to": p.email, "subject": SUBJECT, "text": text,
                "action": "Yes, keep sending them", "url": url,
            });
            (p.id, payload)
        })
        .collect();
    store::queue_question(&mut tx, &questions).await?;
    let lapsed = store::lapse(&mut *tx, days(h.grace_days)).await?;
    let counts = RunCounts {
        asked: asked.len() as u64,
        lapsed,
    };
    if counts != RunCounts::default() {
        tracing::info!(counts.asked, counts.lapsed, "list hygiene ran");
        super::audit::record(
            &mut *tx,
            &Actor::Scheduler,
            "hygiene",
            None,
            serde_json::json!({
                "asked": counts.asked, "lapsed": counts.lapsed,
                "inactive_days": h.inactive_days, "min_updates": h.min_updates,
                "grace_days": h.grace_days,
            }),
        )
        .await?;
    }
    // The questions, their mails, the lapses and the audit entry: all or nothing.
    tx.commit().await?;
    Ok(counts)
}

/// What the settings would do, for the admin page: who would be asked now with the configured
/// `inactive_days` and with a few others, who waits for an answer, who is lapsed.
#[derive(Debug, Serialize)]
pub struct Preview {
    pub enabled: bool,
    pub remember_last_activity: bool,
    pub inactive_days: u32,
    pub min_updates: u32,
    pub grace_days: u32,
    /// (inactive days, people who would be asked now), the configured value first.
    pub would_ask: Vec<(u32, i64)>,
    pub waiting: i64,
    pub lapsed: i64,
}

/// Errors: the database.
pub async fn preview(pool: &PgPool, settings: &Settings) -> anyhow::Result<Preview> {
    let h = &settings.hygiene;
    let mut days = vec![h.inactive_days];
    for d in [90, 180, 365] {
        if !days.contains(&d) {
            days.push(d);
        }
    }
    let mut would_ask = Vec::new();
    for d in days {
        let n = store::would_ask(
            pool,
            i32::try_from(d).unwrap_or(i32::MAX),
            i32::try_from(h.min_updates).unwrap_or(i32::MAX),
        )
        .await?;
        would_ask.push((d, n));
    }
    let (waiting, lapsed) = store::standing(pool).await?;
    Ok(Preview {
        enabled: h.enabled,
        remember_last_activity: settings.engagement.remember_last_activity,
        inactive_days: h.inactive_days,
        min_updates: h.min_updates,
        grace_days: h.grace_days,
        would_ask,
        waiting,
        lapsed,
    })
}

/// `subscriber` answered "Yes, keep sending them": their questions are answered, a lapsed
/// person is confirmed again, and (with `engagement.remember_last_activity`) it is their last
/// activity. Returns whether they are confirmed now (an unsubscribed person stays so).
///
/// Errors: the database.
pub async fn answer(
    pool: &PgPool,
    settings: &Settings,
    subscriber: uuid::Uuid,
) -> anyhow::Result<bool> {
    let confirmed = store::answer(pool, subscriber).await?;
    super::engagement::note_activity(pool, settings, subscriber).await?;
    Ok(confirmed)
}
