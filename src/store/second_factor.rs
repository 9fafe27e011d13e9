//! Staff second factors: the sealed TOTP secret (confirmed and pending), the last accepted time
//! step, recovery codes (SHA-256 only), and a reset that removes them all.

use std::time::Duration;

use sqlx::PgExecutor;
use uuid::Uuid;

use super::seconds;

/// Keeps `sealed` as the member's pending TOTP secret (shown for enrolment, not confirmed).
pub async fn set_pending_totp(
    db: impl PgExecutor<'_>,
    staff_id: Uuid,
    sealed: &str,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE staff SET totp_pending_secret = $2, totp_pending_at = now() WHERE id = $1")
        .bind(staff_id)
        .bind(sealed)
        .execute(db)
        .await?;
    Ok(())
}

/// The pending TOTP secret, if one was made within `max_age`.
pub async fn pending_totp(
    db: impl PgExecutor<'_>,
    staff_id: Uuid,
    max_age: Duration,
) -> sqlx::Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT totp_pending_secret FROM staff
         WHERE id = $1 AND totp_pending_at > now() - make_interval(secs => $2)",
    )
    .bind(staff_id)
    .bind(seconds(max_age))
    .fetch_optional(db)
    .await?
    .flatten())
}

/// Makes the pending secret `sealed` the member's TOTP secret, its code of `step` used, and
/// replaces the recovery codes with `recovery` (hashes). `false` when the pending secret is no
/// longer `sealed` (another enrolment replaced it meanwhile).
pub async fn confirm_totp(
    tx: &mut sqlx::PgConnection,
    staff_id: Uuid,
    sealed: &str,
    step: i64,
    recovery: &[[u8; 32]],
) -> sqlx::Result<bool> {
    let confirmed = sqlx::query(
        "UPDATE staff SET totp_secret = totp_pending_secret, totp_enrolled_at = now(),
                          totp_last_step = $3, totp_pending_secret = NULL, totp_pending_at = NULL
         WHERE id = $1 AND totp_pending_secret = $2",
    )
    .bind(staff_id)
    .bind(sealed)
    .bind(step)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if confirmed {
        replace_recovery_codes(tx, staff_id, recovery).await?;
    }
    Ok(confirmed)
}

/// The member's sealed TOTP secret, if they have one.
pub async fn totp_secret(db: impl PgExecutor<'_>, staff_id: Uuid) -> sqlx::Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT totp_secret FROM staff WHERE id = $1")
            .bind(staff_id)
            .fetch_optional(db)
            .await?
            .flatten(),
    )
}

/// Takes time step `step` as the member's last used one, if it is later than the last: `false`
/// when it is not (the code was used already, or a later one was).
pub async fn claim_totp_step(
    db: impl PgExecutor<'_>,
    staff_id: Uuid,
    step: i64,
) -> sqlx::Result<bool> {
    Ok(sqlx::query(
        "UPDATE staff SET totp_last_step = $2
         WHERE id = $1 AND totp_secret IS NOT NULL
           AND (totp_last_step IS NULL OR totp_last_step < $2)",
    )
    .bind(staff_id)
    .bind(step)
    .execute(db)
    .await?
    .rows_affected()
        == 1)
}

/// Replaces every recovery code of the member with `hashes`.
pub async fn replace_recovery_codes(
    tx: &mut sqlx::PgConnection,
    staff_id: Uuid,
    hashes: &[[u8; 32]],
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM staff_recovery_codes WHERE staff_id = $1")
        .bind(staff_id)
        .execute(&mut *tx)
        .await?;
    let hashes: Vec<Vec<u8>> = hashes.iter().map(|h| h.to_vec()).collect();
    sqlx::query("INSERT INTO staff_recovery_codes (staff_id, hash) SELECT $1, unnest($2::bytea[])")
        .bind(staff_id)
        .bind(hashes)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Uses the recovery code with this hash: `true` when it was the member's and unused (it is
/// used from now on).
pub async fn use_recovery_code(
    db: impl PgExecutor<'_>,
    staff_id: Uuid,
    hash: &[u8; 32],
) -> sqlx::Result<bool> {
    Ok(sqlx::query(
        "UPDATE staff_recovery_codes SET used_at = now()
         WHERE staff_id = $1 AND hash = $2 AND used_at IS NULL",
    )
    .bind(staff_id)
    .bind(hash.as_slice())
    .execute(db)
    .await?
    .rows_affected()
        == 1)
}

/// Unused recovery codes of the member.
pub async fn recovery_codes_left(db: impl PgExecutor<'_>, staff_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM staff_recovery_codes WHERE staff_id = $1 AND used_at IS NULL",
    )
    .bind(staff_id)
    .fetch_one(db)
    .await
}

/// Removes the member's TOTP (confirmed and pending) and their recovery codes. `false`: they
/// had no TOTP.
pub async fn remove_totp(tx: &mut sqlx::PgConnection, staff_id: Uuid) -> sqlx::Result<bool> {
    let had = sqlx::query(
        "UPDATE staff SET totp_secret = NULL, totp_enrolled_at = NULL, totp_last_step = NULL,
                          totp_pending_secret = NULL, totp_pending_at = NULL
         WHERE id = $1 AND totp_secret IS NOT NULL",
    )
    .bind(staff_id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    sqlx::query("DELETE FROM staff_recovery_codes WHERE staff_id = $1")
        .bind(staff_id)
        .execute(&mut *tx)
        .await?;
    Ok(had)
}

/// What [`reset`] removed.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Reset {
    pub totp: bool,
    pub passkeys: i64,
    pub sessions: i64,
}

impl Reset {
    /// What was done, in a sentence for a person (`email`: whose).
    pub fn told(&self, email: &str) -> String {
        let sessions = match self.sessions {
            1 => "their 1 session ended".to_owned(),
            n => format!("their {n} sessions ended"),
        };
        if !self.totp && self.passkeys == 0 {
            return format!("{email} had no second factor to remove; {sessions}.");
        }
        let mut removed = Vec::new();
        if self.totp {
            removed.push("the authenticator app and its recovery codes".to_owned());
        }
        match self.passkeys {
            0 => {}
            1 => removed.push("1 passkey".into()),
            n => removed.push(format!("{n} passkeys")),
        }
        format!(
            "Removed from {email}: {}; {sessions}. They sign in with their password and set up a second factor again.",
            removed.join(" and ")
        )
    }
}

/// Removes every second factor of the member (TOTP, recovery codes, passkeys) and ends all
/// their sessions.
pub async fn reset(tx: &mut sqlx::PgConnection, staff_id: Uuid) -> sqlx::Result<Reset> {
    let totp = remove_totp(tx, staff_id).await?;
    let passkeys = sqlx::query("DELETE FROM staff_passkeys WHERE staff_id = $1")
        .bind(staff_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let sessions = sqlx::query("DELETE FROM staff_sessions WHERE staff_id = $1")
        .bind(staff_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    Ok(Reset {
        totp,
        passkeys: passkeys as i64,
        sessions: sessions as i64,
    })
}
