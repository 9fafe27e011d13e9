//! Importing subscribers whose consent staff attest to. Erased (suppressed), unsubscribed,
//! bounced and complained addresses are refused: only their own double opt-in brings them back.

use anyhow::Context;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::consent::{self, ConsentEvent, RequestOrigin};
use super::preferences::address_hash;
use crate::domain::{EmailAddress, SubscriberName, UsState};

pub struct ImportRow {
    pub line: usize,
    pub email: EmailAddress,
    pub name: Option<SubscriberName>,
    pub state: Option<UsState>,
}

#[derive(Debug, Default)]
pub struct ImportReport {
    pub imported: usize,
    pub already_subscribed: usize,
    /// (line, why)
    pub refused: Vec<(usize, String)>,
}

/// Imports `rows` onto `lists` in one transaction.
pub async fn import(
    pool: &PgPool,
    rows: &[ImportRow],
    lists: &[(Uuid, String)],
    note: &str,
) -> anyhow::Result<ImportReport> {
    let mut report = ImportReport::default();
    let list_ids: Vec<Uuid> = lists.iter().map(|(id, _)| *id).collect();
    let slugs: Vec<String> = lists.iter().map(|(_, s)| s.clone()).collect();
    let origin = RequestOrigin::default();
    let mut tx = pool.begin().await.context("starting the import")?;
    for row in rows {
        let suppressed: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM suppressions WHERE email_hash = $1)")
                .bind(address_hash(row.email.normalized()).as_slice())
                .fetch_one(&mut *tx)
                .await?;
        if suppressed {
            report.refused.push((
                row.line,
                "suppressed: this address was erased on request".into(),
            ));
            continue;
        }
        let existing = sqlx::query(
            "SELECT id, status FROM subscribers WHERE email_normalized = $1 FOR UPDATE",
        )
        .bind(row.email.normalized())
        .fetch_optional(&mut *tx)
        .await?;
        let id = match existing {
            Some(r) => {
                let status: String = r.get("status");
                if matches!(status.as_str(), "unsubscribed" | "bounced" | "complained") {
                    report
                        .refused
                        .push((row.line, format!("suppressed: the address is {status}")));
                    continue;
                }
                let id: Uuid = r.get("id");
                if status == "pending" {
                    sqlx::query("UPDATE subscribers SET status = 'confirmed', confirmed_at = now(), updated_at = now() WHERE id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                } else {
                    report.already_subscribed += 1;
                }
                id
            }
            None => {
                let id = Uuid::new_v4();
                sqlx::query(
                    "INSERT INTO subscribers (id, email, email_normalized, name, us_state, status, confirmed_at)
                     VALUES ($1, $2, $3, $4, $5, 'confirmed', now())",
                )
                .bind(id)
                .bind(row.email.as_str())
                .bind(row.email.normalized())
                .bind(row.name.as_ref().map(SubscriberName::as_str))
                .bind(row.state.map(UsState::code))
                .execute(&mut *tx)
                .await?;
                report.imported += 1;
                id
            }
        };
        sqlx::query(
            "INSERT INTO subscriptions (subscriber_id, list_id, status) SELECT $1, unnest($2::uuid[]), 'confirmed'
             ON CONFLICT (subscriber_id, list_id) DO UPDATE SET status = 'confirmed', updated_at = now()
                 WHERE subscriptions.status = 'pending'",
        )
        .bind(id)
        .bind(&list_ids)
        .execute(&mut *tx)
        .await?;
        consent::record(
            &mut *tx,
            ConsentEvent {
                subscriber_id: id,
                kind: "signup",
                source: "import",
                origin: &origin,
                consent: Some((note, "import")),
                lists: &slugs,
            },
        )
        .await?;
    }
    tx.commit().await.context("committing the import")?;
    Ok(report)
}
