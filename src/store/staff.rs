//! Staff accounts, their sessions (only the SHA-256 of a session id is stored) and failed
//! logins (for throttling).

use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, Row};
use uuid::Uuid;

use super::seconds;
use crate::domain::{EmailAddress, StaffRole, TokenHash};

#[derive(Debug, Clone, serde::Serialize)]
pub struct StaffMember {
    pub id: Uuid,
    pub email: String,
    pub role: StaffRole,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
    /// The IANA time zone the member reads staff pages in; `None`: `server.time_zone`.
    pub time_zone: Option<String>,
    /// When the member confirmed a TOTP app; `None`: no TOTP.
    pub totp_enrolled_at: Option<DateTime<Utc>>,
}

fn member(r: &sqlx::postgres::PgRow) -> StaffMember {
    StaffMember {
        id: r.get("id"),
        email: r.get("email"),
        role: StaffRole::parse(r.get("role")).unwrap_or(StaffRole::Editor),
        created_at: r.get("created_at"),
        last_login_at: r.get("last_login_at"),
        time_zone: r.get("time_zone"),
        totp_enrolled_at: r.get("totp_enrolled_at"),
    }
}

/// Adds an account under the canonical spelling of its address (the one sign-ins, sessions
/// and the audit log name it by); no setup code works after it. `Ok(None)` when the address
/// already has one.
pub async fn insert(
    db: impl PgExecutor<'_>,
    email: &EmailAddress,
    role: StaffRole,
    password_hash: &str,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "WITH setup_over AS (DELETE FROM setup_codes)
         INSERT INTO staff (id, email, email_normalized, role, password_hash)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (email_normalized) DO NOTHING RETURNING id",
    )
    .bind(Uuid::new_v4())
    .bind(email.canonical())
    .bind(email.canonical())
    .bind(role.as_str())
    .bind(password_hash)
    .fetch_optional(db)
    .await
}

/// Sets the time zone member `id` reads staff pages in (`None`: the service's). The one it
/// had before.
pub async fn set_time_zone(
    db: impl PgExecutor<'_>,
    id: Uuid,
    zone: Option<&str>,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "UPDATE staff s SET time_zone = $2 FROM (SELECT time_zone FROM staff WHERE id = $1) old
         WHERE s.id = $1 RETURNING old.time_zone",
    )
    .bind(id)
    .bind(zone)
    .fetch_optional(db)
    .await
    .map(Option::flatten)
}

/// Whether any staff account exists.
pub async fn any(db: impl PgExecutor<'_>) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM staff)")
        .fetch_one(db)
        .await
}

/// Keeps the SHA-256 of a setup code while no account exists; `false` once one does.
pub async fn add_setup_code(db: impl PgExecutor<'_>, hash: &[u8; 32]) -> sqlx::Result<bool> {
    let kept: Option<bool> = sqlx::query_scalar(
        "INSERT INTO setup_codes (hash) SELECT $1 WHERE NOT EXISTS (SELECT 1 FROM staff)
         ON CONFLICT (hash) DO NOTHING RETURNING true",
    )
    .bind(hash.as_slice())
    .fetch_optional(db)
    .await?;
    Ok(kept.is_some())
}

/// Whether `hash` is a live setup code: one kept while no account exists yet.
pub async fn setup_code_is_live(db: impl PgExecutor<'_>, hash: &[u8; 32]) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM setup_codes WHERE hash = $1)
                AND NOT EXISTS (SELECT 1 FROM staff)",
    )
    .bind(hash.as_slice())
    .fetch_one(db)
    .await
}

/// What [`create_first_admin`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstAdmin {
    Created(Uuid),
    /// An account exists: setup is over.
    SetUpAlready,
    /// No live setup code has this hash.
    WrongCode,
}

/// Creates the first account, an admin, when `code_hash` is a live setup code and no account
/// exists, and deletes every setup code; one transaction at a time (an advisory lock), so two
/// people racing with the code make one admin.
pub async fn create_first_admin(
    conn: &mut sqlx::PgConnection,
    code_hash: &[u8; 32],
    email: &EmailAddress,
    password_hash: &str,
) -> sqlx::Result<FirstAdmin> {
    let mut tx = sqlx::Connection::begin(conn).await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('newsletter: first admin'))")
        .execute(&mut *tx)
        .await?;
    if any(&mut *tx).await? {
        return Ok(FirstAdmin::SetUpAlready);
    }
    let used = sqlx::query("DELETE FROM setup_codes WHERE hash = $1")
        .bind(code_hash.as_slice())
        .execute(&mut *tx)
        .await?;
    if used.rows_affected() == 0 {
        return Ok(FirstAdmin::WrongCode);
    }
    let Some(id) = insert(&mut *tx, email, StaffRole::Admin, password_hash).await? else {
        return Ok(FirstAdmin::SetUpAlready);
    };
    sqlx::query("DELETE FROM setup_codes")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(FirstAdmin::Created(id))
}

/// Sets a new password and ends every session of the account. `false`: no such account.
pub async fn set_password(
    db: impl PgExecutor<'_>,
    email: &EmailAddress,
    password_hash: &str,
) -> sqlx::Result<bool> {
    let n = sqlx::query(
        "WITH s AS (UPDATE staff SET password_hash = $2 WHERE email_normalized = $1 RETURNING id)
         , gone AS (DELETE FROM staff_sessions WHERE staff_id IN (SELECT id FROM s))
         SELECT 1 FROM s",
    )
    .bind(email.canonical())
    .bind(password_hash)
    .fetch_all(db)
    .await?
    .len();
    Ok(n == 1)
}

pub async fn list(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<StaffMember>> {
    Ok(sqlx::query("SELECT * FROM staff ORDER BY email_normalized")
        .fetch_all(db)
        .await?
        .iter()
        .map(member)
        .collect())
}

/// A member as the staff list shows them: with their passkeys and the wrong second-factor codes
/// (or refused passkeys) of the last 7 days, from the audit log.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ListedMember {
    #[serde(flatten)]
    pub member: StaffMember,
    pub passkeys: i64,
    pub second_factor_failures: i64,
}

pub async fn listing(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<ListedMember>> {
    Ok(sqlx::query(
        "SELECT s.*,
                (SELECT count(*) FROM staff_passkeys p WHERE p.staff_id = s.id) AS passkeys,
                (SELECT count(*) FROM audit_log a
                 WHERE a.staff_id = s.id AND a.action = 'second-factor-failed'
                   AND a.at > now() - interval '7 days') AS second_factor_failures
         FROM staff s ORDER BY s.email_normalized",
    )
    .fetch_all(db)
    .await?
    .iter()
    .map(|r| ListedMember {
        member: member(r),
        passkeys: r.get("passkeys"),
        second_factor_failures: r.get("second_factor_failures"),
    })
    .collect())
}

/// What became of a removal.
pub enum Removal {
    NotFound,
    /// The account is the one asking.
    Oneself,
    /// The account is the only admin.
    LastAdmin,
    Removed(StaffMember),
}

/// Removes the account with this canonical address (its sessions go with it), unless it is
/// `asking`'s own or the last admin's. Locks the admins' rows first, so that concurrent removals
/// count the admins one after the other.
pub async fn remove(
    tx: &mut sqlx::PgConnection,
    email: &EmailAddress,
    asking: Option<Uuid>,
) -> sqlx::Result<Removal> {
    let admins: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM staff WHERE role = 'admin' ORDER BY id FOR UPDATE")
            .fetch_all(&mut *tx)
            .await?;
    let Some(target) = sqlx::query("SELECT * FROM staff WHERE email_normalized = $1 FOR UPDATE")
        .bind(email.canonical())
        .fetch_optional(&mut *tx)
        .await?
        .as_ref()
        .map(member)
    else {
        return Ok(Removal::NotFound);
    };
    if Some(target.id) == asking {
        return Ok(Removal::Oneself);
    }
    if target.role == StaffRole::Admin && admins.len() <= 1 {
        return Ok(Removal::LastAdmin);
    }
    sqlx::query("DELETE FROM staff WHERE id = $1")
        .bind(target.id)
        .execute(&mut *tx)
        .await?;
    Ok(Removal::Removed(target))
}

/// The account's id and password hash, for a login.
pub async fn credentials(
    db: impl PgExecutor<'_>,
    email: &EmailAddress,
) -> sqlx::Result<Option<(Uuid, String)>> {
    sqlx::query_as("SELECT id, password_hash FROM staff WHERE email_normalized = $1")
        .bind(email.canonical())
        .fetch_optional(db)
        .await
}

/// Failed logins within `window` for this account and from this client (its key:
/// `domain::client_key`), the caller's own attempt included once it is recorded.
pub async fn recent_failures(
    db: impl PgExecutor<'_>,
    email: &EmailAddress,
    ip: Option<IpAddr>,
    window: Duration,
) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE email_normalized = $1),
                count(*) FILTER (WHERE ip = $2::inet)
         FROM staff_login_failures
         WHERE at > now() - make_interval(secs => $3) AND (email_normalized = $1 OR ip = $2::inet)",
    )
    .bind(email.canonical())
    .bind(ip.map(|ip| ip.to_string()))
    .bind(seconds(window))
    .fetch_one(db)
    .await
}

/// Records a login attempt as a failure, before its password is checked (so that attempts
/// made at once count each other), and forgets failures older than `window`. Its id, for
/// [`forget_attempt`].
pub async fn record_attempt(
    db: impl PgExecutor<'_>,
    email: &EmailAddress,
    client: Option<IpAddr>,
    window: Duration,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "WITH old AS (DELETE FROM staff_login_failures WHERE at < now() - make_interval(secs => $3))
         INSERT INTO staff_login_failures (email_normalized, ip) VALUES ($1, $2::inet)
         RETURNING id",
    )
    .bind(email.canonical())
    .bind(client.map(|ip| ip.to_string()))
    .bind(seconds(window))
    .fetch_one(db)
    .await
}

/// Removes a recorded attempt that was not a failure: the right password, or refused before
/// its password was checked.
pub async fn forget_attempt(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM staff_login_failures WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// How a session began, as [`start_session`] records it.
pub struct NewSession<'a> {
    pub staff_id: Uuid,
    pub id_hash: &'a TokenHash,
    /// `password`, `passkey`, `oidc` or `setup`.
    pub method: &'a str,
    /// Whether the sign-in gave a second factor already (a passkey, a provider that says so).
    pub second_factor: bool,
    pub ip: Option<IpAddr>,
    /// The browser's `User-Agent`, cut to 512 bytes.
    pub user_agent: Option<&'a str>,
}

/// Starts a session, ending `previous` (the id is rotated at login) and every session idle
/// longer than `idle`, and notes the login. The session's public id (the account page's).
pub async fn start_session(
    db: impl PgExecutor<'_>,
    new: &NewSession<'_>,
    previous: Option<&TokenHash>,
    idle: Duration,
) -> sqlx::Result<Uuid> {
    sqlx::query_scalar(
        "WITH gone AS (DELETE FROM staff_sessions
                       WHERE id_hash = $3 OR last_seen_at < now() - make_interval(secs => $4))
         , seen AS (UPDATE staff SET last_login_at = now() WHERE id = $1)
         INSERT INTO staff_sessions (id_hash, staff_id, method, second_factor_at, ip, user_agent)
         VALUES ($2, $1, $5, CASE WHEN $6 THEN now() END, $7::inet, $8)
         RETURNING id",
    )
    .bind(new.staff_id)
    .bind(new.id_hash.0.as_slice())
    .bind(previous.map(|h| h.0.to_vec()))
    .bind(seconds(idle))
    .bind(new.method)
    .bind(new.second_factor)
    .bind(new.ip.map(|ip| ip.to_string()))
    .bind(new.user_agent.map(|ua| cut(ua, 512)))
    .fetch_one(db)
    .await
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A live session and its member.
#[derive(Debug, Clone)]
pub struct LiveSession {
    pub member: StaffMember,
    /// The session's public id.
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    /// When the session gave a second factor; `None`: not yet.
    pub second_factor_at: Option<DateTime<Utc>>,
    /// Whether the member has a passkey.
    pub has_passkey: bool,
}

/// The member of a live session (used within `idle`), marking it used now.
pub async fn touch_session(
    db: impl PgExecutor<'_>,
    id_hash: &TokenHash,
    idle: Duration,
) -> sqlx::Result<Option<LiveSession>> {
    Ok(sqlx::query(
        "WITH s AS (UPDATE staff_sessions SET last_seen_at = now()
                    WHERE id_hash = $1 AND last_seen_at > now() - make_interval(secs => $2)
                    RETURNING staff_id, id AS session_id, created_at AS session_created_at,
                              second_factor_at)
         SELECT st.*, s.session_id, s.session_created_at, s.second_factor_at,
                EXISTS (SELECT 1 FROM staff_passkeys p WHERE p.staff_id = st.id) AS has_passkey
         FROM s JOIN staff st ON st.id = s.staff_id",
    )
    .bind(id_hash.0.as_slice())
    .bind(seconds(idle))
    .fetch_optional(db)
    .await?
    .as_ref()
    .map(|r| LiveSession {
        member: member(r),
        id: r.get("session_id"),
        created_at: r.get("session_created_at"),
        second_factor_at: r.get("second_factor_at"),
        has_passkey: r.get("has_passkey"),
    }))
}

/// The session `old` gave its second factor now: it goes on under the id `new` (a cookie
/// seen before this moment opens nothing more than it did). `false`: no such session.
pub async fn gain_second_factor(
    db: impl PgExecutor<'_>,
    old: &TokenHash,
    new: &TokenHash,
) -> sqlx::Result<bool> {
    Ok(sqlx::query(
        "UPDATE staff_sessions SET id_hash = $2, second_factor_at = now() WHERE id_hash = $1",
    )
    .bind(old.0.as_slice())
    .bind(new.0.as_slice())
    .execute(db)
    .await?
    .rows_affected()
        == 1)
}

/// When the session last proved who it is (its sign-in, or its second factor if later).
pub async fn proved_at(
    db: impl PgExecutor<'_>,
    id_hash: &TokenHash,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar(
        "SELECT greatest(created_at, coalesce(second_factor_at, created_at))
         FROM staff_sessions WHERE id_hash = $1",
    )
    .bind(id_hash.0.as_slice())
    .fetch_optional(db)
    .await
}

/// A session as the account page lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionInfo {
    pub id: Uuid,
    pub method: String,
    pub second_factor: bool,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// Whether it is the session asking.
    pub current: bool,
}

/// The live sessions of `staff_id` (used within `idle`), the most recently used first.
pub async fn sessions(
    db: impl PgExecutor<'_>,
    staff_id: Uuid,
    current: &TokenHash,
    idle: Duration,
) -> sqlx::Result<Vec<SessionInfo>> {
    Ok(sqlx::query(
        "SELECT id, method, second_factor_at IS NOT NULL AS second_factor, host(ip) AS ip,
                user_agent, created_at, last_seen_at, id_hash = $2 AS current
         FROM staff_sessions
         WHERE staff_id = $1 AND last_seen_at > now() - make_interval(secs => $3)
         ORDER BY last_seen_at DESC, created_at DESC",
    )
    .bind(staff_id)
    .bind(current.0.as_slice())
    .bind(seconds(idle))
    .fetch_all(db)
    .await?
    .iter()
    .map(|r| SessionInfo {
        id: r.get("id"),
        method: r.get("method"),
        second_factor: r.get("second_factor"),
        ip: r.get("ip"),
        user_agent: r.get("user_agent"),
        created_at: r.get("created_at"),
        last_seen_at: r.get("last_seen_at"),
        current: r.get("current"),
    })
    .collect())
}

/// Ends the session `id` of `staff_id`; `false`: no such session of theirs.
pub async fn end_session_of(
    db: impl PgExecutor<'_>,
    staff_id: Uuid,
    id: Uuid,
) -> sqlx::Result<bool> {
    Ok(
        sqlx::query("DELETE FROM staff_sessions WHERE staff_id = $1 AND id = $2")
            .bind(staff_id)
            .bind(id)
            .execute(db)
            .await?
            .rows_affected()
            == 1,
    )
}

/// Ends every session of `staff_id` but `keep` (none: all of them). How many ended.
pub async fn end_sessions_but(
    db: impl PgExecutor<'_>,
    staff_id: Uuid,
    keep: Option<&TokenHash>,
) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "DELETE FROM staff_sessions WHERE staff_id = $1 AND id_hash IS DISTINCT FROM $2",
    )
    .bind(staff_id)
    .bind(keep.map(|h| h.0.to_vec()))
    .execute(db)
    .await?
    .rows_affected())
}

/// Remembers device `hash` for `staff_id`; `true` when it was not known before.
pub async fn remember_device(
    db: impl PgExecutor<'_>,
    staff_id: Uuid,
    hash: &TokenHash,
) -> sqlx::Result<bool> {
    Ok(sqlx::query(
        "INSERT INTO staff_devices (staff_id, hash) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(staff_id)
    .bind(hash.0.as_slice())
    .execute(db)
    .await?
    .rows_affected()
        == 1)
}

/// Sets the password of `staff_id` and ends its other sessions (all but `keep`).
pub async fn set_own_password(
    db: impl PgExecutor<'_>,
    staff_id: Uuid,
    password_hash: &str,
    keep: &TokenHash,
) -> sqlx::Result<()> {
    sqlx::query(
        "WITH s AS (UPDATE staff SET password_hash = $2 WHERE id = $1)
         DELETE FROM staff_sessions WHERE staff_id = $1 AND id_hash <> $3",
    )
    .bind(staff_id)
    .bind(password_hash)
    .bind(keep.0.as_slice())
    .execute(db)
    .await?;
    Ok(())
}

/// The account with this id: its canonical address and password hash.
pub async fn credentials_of(
    db: impl PgExecutor<'_>,
    staff_id: Uuid,
) -> sqlx::Result<Option<(String, String)>> {
    sqlx::query_as("SELECT email, password_hash FROM staff WHERE id = $1")
        .bind(staff_id)
        .fetch_optional(db)
        .await
}

pub async fn end_session(db: impl PgExecutor<'_>, id_hash: &TokenHash) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM staff_sessions WHERE id_hash = $1")
        .bind(id_hash.0.as_slice())
        .execute(db)
        .await?;
    Ok(())
}

/// Claims the key of a staff-area form; `false` when it was used before (a double submit).
pub async fn claim_form_key(
    db: impl PgExecutor<'_>,
    key: &str,
    staff_id: Uuid,
) -> sqlx::Result<bool> {
    Ok(sqlx::query(
        "INSERT INTO staff_form_keys (key, staff_id) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
    )
    .bind(key)
    .bind(staff_id)
    .execute(db)
    .await?
    .rows_affected()
        == 1)
}

/// Frees a form key whose action failed, so the same form can be sent again.
pub async fn release_form_key(db: impl PgExecutor<'_>, key: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM staff_form_keys WHERE key = $1")
        .bind(key)
        .execute(db)
        .await?;
    Ok(())
}

/// When `staff_id` last signed in; `None`: never (or no such account).
pub async fn last_login(
    db: impl PgExecutor<'_>,
    staff_id: Uuid,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    Ok(
        sqlx::query_scalar("SELECT last_login_at FROM staff WHERE id = $1")
            .bind(staff_id)
            .fetch_optional(db)
            .await?
            .flatten(),
    )
}
