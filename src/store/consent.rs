use sqlx::PgExecutor;
use uuid::Uuid;

pub use crate::domain::RequestOrigin;

pub struct ConsentEvent<'a> {
    pub subscriber_id: Uuid,
    pub kind: &'static str,
    pub source: &'static str,
    pub origin: &'a RequestOrigin,
    /// The wording and version shown, for sign-ups.
    pub consent: Option<(&'a str, &'a str)>,
    pub lists: &'a [String],
}

pub async fn record(db: impl PgExecutor<'_>, e: ConsentEvent<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO consent_events
             (subscriber_id, kind, source, ip, user_agent, consent_text, consent_version, lists)
         VALUES ($1, $2, $3, $4::inet, $5, $6, $7, $8)",
    )
    .bind(e.subscriber_id)
    .bind(e.kind)
    .bind(e.source)
    .bind(e.origin.ip.map(|ip| ip.to_string()))
    .bind(e.origin.user_agent.as_deref())
    .bind(e.consent.map(|c| c.0))
    .bind(e.consent.map(|c| c.1))
    .bind(e.lists)
    .execute(db)
    .await?;
    Ok(())
}
