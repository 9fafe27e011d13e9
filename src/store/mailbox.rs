//! Claims on the messages of a bounce mailbox, so that any number of pollers process each
//! message once: a claim is leased, and marked done once the message is recorded and moved or
//! flagged.

use std::time::Duration;

use sqlx::PgExecutor;

use super::seconds;

/// Claims message `uid` of `mailbox` (under its UIDVALIDITY) for `lease`: true when this
/// poller may process it (never claimed, or a claim that ran out and is not done).
pub async fn claim(
    db: impl PgExecutor<'_>,
    mailbox: &str,
    uid_validity: i64,
    uid: u32,
    lease: Duration,
) -> sqlx::Result<bool> {
    let claimed: Option<i32> = sqlx::query_scalar(
        "INSERT INTO mailbox_claims (mailbox, uid_validity, uid, claimed_until)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4))
         ON CONFLICT (mailbox, uid_validity, uid) DO UPDATE SET claimed_until = excluded.claimed_until
         WHERE mailbox_claims.done_at IS NULL AND mailbox_claims.claimed_until < now()
         RETURNING 1",
    )
    .bind(mailbox)
    .bind(uid_validity)
    .bind(i64::from(uid))
    .bind(seconds(lease))
    .fetch_optional(db)
    .await?;
    Ok(claimed.is_some())
}

/// The message is recorded and moved or flagged: no poller takes it again.
pub async fn done(
    db: impl PgExecutor<'_>,
    mailbox: &str,
    uid_validity: i64,
    uid: u32,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE mailbox_claims SET done_at = now()
         WHERE mailbox = $1 AND uid_validity = $2 AND uid = $3",
    )
    .bind(mailbox)
    .bind(uid_validity)
    .bind(i64::from(uid))
    .execute(db)
    .await?;
    Ok(())
}

/// Processing failed: the next poll may take the message again.
pub async fn release(
    db: impl PgExecutor<'_>,
    mailbox: &str,
    uid_validity: i64,
    uid: u32,
) -> sqlx::Result<()> {
    sqlx::query(
        "DELETE FROM mailbox_claims
         WHERE mailbox = $1 AND uid_validity = $2 AND uid = $3 AND done_at IS NULL",
    )
    .bind(mailbox)
    .bind(uid_validity)
    .bind(i64::from(uid))
    .execute(db)
    .await?;
    Ok(())
}

/// Forgets claims done more than `older_than` ago (their messages were moved or flagged, so no
/// poll finds them again). Returns how many.
pub async fn purge_done(db: impl PgExecutor<'_>, older_than: Duration) -> sqlx::Result<u64> {
    let done =
        sqlx::query("DELETE FROM mailbox_claims WHERE done_at < now() - make_interval(secs => $1)")
            .bind(seconds(older_than))
            .execute(db)
            .await?;
    Ok(done.rows_affected())
}
