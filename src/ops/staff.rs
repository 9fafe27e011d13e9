//! Staff accounts and sign-in: add, reset a password, list, remove; log in (throttled per
//! account and per client, the same answer and about the same time for an unknown account and
//! a wrong password, at most `admin.max_concurrent_logins` password checks at once); sessions.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use sqlx::PgPool;
use tokio::sync::Semaphore;

use super::roles::{self, Forbidden, Operation};
use super::{audit, Actor};

use crate::config::{AdminSettings, Settings};
use crate::domain::{
    client_key, dummy_hash, verify_password, EmailAddress, NewPassword, SetupCode, StaffRole, Token,
};
use crate::store::audit::NewEntry;
use crate::store::staff as store;

pub use crate::store::staff::{claim_form_key, release_form_key, StaffMember};

#[derive(Debug, thiserror::Error)]
pub enum StaffError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} already has a staff account")]
    Exists(String),
    #[error("there is no staff account for {0}")]
    NotFound(String),
    /// Not done, to keep someone able to sign in (oneself, the last admin).
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for StaffError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown account or wrong password: the caller must not tell which.
    #[error("the e-mail address or the password is wrong")]
    Wrong,
    #[error("too many failed logins; try again later")]
    Throttled,
    /// Every place for a password check stayed taken for [`LOGIN_WAIT`].
    #[error("too many logins at once; try again in a moment")]
    Busy,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for LoginError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

fn address(raw: &str) -> Result<EmailAddress, StaffError> {
    EmailAddress::parse(raw).map_err(StaffError::Invalid)
}

async fn hash(password: NewPassword) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || password.hash())
        .await
        .context("hashing the password")
}

/// Adds an account with `role` (`admin` or `editor`): admins only, audited.
pub async fn add(
    pool: &PgPool,
    actor: &Actor,
    email: &str,
    role: &str,
    password: NewPassword,
) -> Result<StaffRole, StaffError> {
    roles::authorize(actor, Operation::StaffManage)?;
    let role = StaffRole::parse(role).map_err(StaffError::Invalid)?;
    let email = address(email)?;
    let hash = hash(password).await?;
    match store::insert(pool, &email, role, &hash).await? {
        Some(_) => {
            let detail = serde_json::json!({ "role": role.as_str() });
            audit::record(pool, actor, "staff-add", Some(email.canonical()), detail).await?;
            Ok(role)
        }
        None => Err(StaffError::Exists(email.as_str().to_owned())),
    }
}

/// Sets a new password; every session of the account ends. Admins only, audited.
pub async fn reset_password(
    pool: &PgPool,
    actor: &Actor,
    email: &str,
    password: NewPassword,
) -> Result<(), StaffError> {
    roles::authorize(actor, Operation::StaffManage)?;
    let email = address(email)?;
    let hash = hash(password).await?;
    if store::set_password(pool, &email, &hash).await? {
        audit::record(
            pool,
            actor,
            "staff-password",
            Some(email.canonical()),
            json!({}),
        )
        .await?;
        Ok(())
    } else {
        Err(StaffError::NotFound(email.as_str().to_owned()))
    }
}

/// Sets the time zone the acting member reads staff pages in: an IANA name
/// (`America/New_York`), or blank for the service's `server.time_zone`. One's own account
/// only (a staff session); audited with the change.
pub async fn set_time_zone(pool: &PgPool, actor: &Actor, raw: &str) -> Result<(), StaffError> {
    let Actor::Staff { id, .. } = actor else {
        return Err(StaffError::Refused(
            "Only a member of staff, signed in, sets their own time zone.".into(),
        ));
    };
    let zone = match raw.trim() {
        "" => None,
        name => Some(
            name.parse::<chrono_tz::Tz>()
                .map_err(|_| {
                    StaffError::Invalid(format!(
                        "\"{}\" is not a time zone: use an IANA name such as America/New_York, or leave it blank for the service's.",
                        name.chars().take(80).collect::<String>()
                    ))
                })?
                .name()
                .to_owned(),
        ),
    };
    let mut tx = pool.begin().await?;
    let before = store::set_time_zone(&mut *tx, *id, zone.as_deref()).await?;
    let detail = json!({ "changed": { "time_zone": { "from": before, "to": zone } } });
    audit::record(&mut *tx, actor, "account-time-zone", None, detail).await?;
    tx.commit().await?;
    Ok(())
}

/// Every account: admins only.
pub async fn list(pool: &PgPool, actor: &Actor) -> Result<Vec<StaffMember>, StaffError> {
    roles::authorize(actor, Operation::StaffManage)?;
    Ok(store::list(pool).await?)
}

/// Removes an account (its sessions end): admins only, audited. The address is matched in its
/// canonical form, as at login: no spelling of one's own address removes oneself, and the last
/// admin stays (checked under a lock on the admins, so two admins removing each other at once
/// cannot both succeed).
pub async fn remove(pool: &PgPool, actor: &Actor, email: &str) -> Result<(), StaffError> {
    roles::authorize(actor, Operation::StaffManage)?;
    let email = address(email)?;
    let mut tx = pool.begin().await?;
    let removed = match store::remove(&mut tx, &email, actor.staff_id()).await? {
        store::Removal::NotFound => return Err(StaffError::NotFound(email.as_str().to_owned())),
        store::Removal::Oneself => {
            return Err(StaffError::Refused(
                "You cannot remove your own account.".into(),
            ))
        }
        store::Removal::LastAdmin => {
            return Err(StaffError::Refused(
                "This is the last admin: add another admin before removing this one.".into(),
            ))
        }
        store::Removal::Removed(member) => member,
    };
    let detail = json!({ "role": removed.role.as_str() });
    audit::record(
        &mut *tx,
        actor,
        "staff-remove",
        Some(&removed.email),
        detail,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A new session id: given to the browser once; only its hash is stored.
pub struct SessionId(pub Token);

/// How long a login waits for one of the `admin.max_concurrent_logins` places before it is
/// answered [`LoginError::Busy`].
pub const LOGIN_WAIT: Duration = Duration::from_secs(1);

/// The logins of one process: their rules (`admin.*`, `server.ipv6_limit_prefix`) and the
/// places for password checks (`admin.max_concurrent_logins`; each check holds 19 MiB of
/// argon2 memory, which goes back to the system when it ends: `app::return_large_allocations`).
pub struct Logins {
    settings: AdminSettings,
    ipv6_prefix: u8,
    places: Arc<Semaphore>,
}

impl Logins {
    pub fn new(settings: &Settings) -> Self {
        Self {
            settings: settings.admin.clone(),
            ipv6_prefix: settings.server.ipv6_limit_prefix,
            places: Arc::new(Semaphore::new(settings.admin.max_concurrent_logins)),
        }
    }

    /// The login settings these logins follow.
    pub fn settings(&self) -> &AdminSettings {
        &self.settings
    }
}

/// Checks a login, holding one of the places for password checks from before its first
/// statement to the end of its hash (none free within [`LOGIN_WAIT`]: `Busy`). The attempt is
/// recorded as a failure first and the failures counted after, so attempts made at once count
/// each other and at most `admin.login_failures_per_account` passwords of one account (and
/// `admin.login_failures_per_ip` from one client, an IPv6 client by its network) are checked in
/// a window; one over the limit is forgotten again and `Throttled`, before any password work.
/// An unknown or malformed address is verified against a dummy hash, so it costs what a wrong
/// password costs and gets the same error.
pub async fn log_in(
    pool: &PgPool,
    logins: &Logins,
    email: &str,
    password: &str,
    ip: Option<IpAddr>,
    previous_session: Option<&Token>,
) -> Result<SessionId, LoginError> {
    let settings = &logins.settings;
    // A malformed address is still throttled by IP and costs one hash.
    let parsed = EmailAddress::parse(email)
        .or_else(|_| EmailAddress::parse("nobody@invalid.invalid"))
        .map_err(|e| anyhow::anyhow!(e))?;
    let client = ip.map(|ip| client_key(ip, logins.ipv6_prefix));
    let place = tokio::time::timeout(LOGIN_WAIT, Arc::clone(&logins.places).acquire_owned())
        .await
        .map_err(|_| LoginError::Busy)?
        .context("waiting for a place to check a password")?;
    let attempt = store::record_attempt(pool, &parsed, client, settings.login_window).await?;
    let (by_account, by_ip) =
        store::recent_failures(pool, &parsed, client, settings.login_window).await?;
    if by_account > i64::from(settings.login_failures_per_account)
        || by_ip > i64::from(settings.login_failures_per_ip)
    {
        store::forget_attempt(pool, attempt).await?;
        tracing::warn!(by_account, by_ip, "staff login throttled");
        return Err(LoginError::Throttled);
    }
    let found = store::credentials(pool, &parsed).await?;
    let stored = found.as_ref().map(|(_, h)| h.clone());
    let password = password.to_owned();
    // The place goes with the hash: a request dropped meanwhile does not free it before the
    // hash is done.
    let matches = tokio::task::spawn_blocking(move || {
        let stored = stored.unwrap_or_else(|| dummy_hash().to_owned());
        let matches = verify_password(&stored, &password);
        drop(place);
        matches
    })
    .await
    .context("verifying the password")?;
    match found {
        Some((staff_id, _)) if matches => {
            store::forget_attempt(pool, attempt).await?;
            let id = Token::generate();
            store::start_session(
                pool,
                staff_id,
                &id.hash(),
                previous_session.map(Token::hash).as_ref(),
                settings.session_idle,
            )
            .await?;
            tracing::info!(%staff_id, "staff login");
            let entry = NewEntry {
                actor: parsed.canonical(),
                staff_id: Some(staff_id),
                action: "sign-in",
                subject: None,
                detail: json!({ "ip": ip }),
            };
            crate::store::audit::append(pool, entry).await?;
            Ok(SessionId(id))
        }
        _ => {
            tracing::info!("failed staff login");
            Err(LoginError::Wrong)
        }
    }
}

/// Whether the service still waits for its first account (`/admin/setup`).
pub async fn needs_setup(pool: &PgPool) -> anyhow::Result<bool> {
    Ok(!store::any(pool).await?)
}

/// While no staff account exists: a new one-time setup code for `serve`'s start banner (only
/// its SHA-256 is kept; every code made so far works until the first account exists). `None`
/// once one does.
pub async fn setup_code(pool: &PgPool) -> anyhow::Result<Option<SetupCode>> {
    let code = SetupCode::generate();
    Ok(store::add_setup_code(pool, &code.hash())
        .await?
        .then_some(code))
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// An account exists: sign in instead.
    #[error("this service has its first admin already: sign in")]
    SetUpAlready,
    #[error("the setup code is wrong (it is printed by `newsletter serve` when it starts)")]
    WrongCode,
    /// A field is not acceptable: (`email` or `password`, why).
    #[error("{1}")]
    Invalid(&'static str, String),
    #[error(transparent)]
    Login(#[from] LoginError),
}

impl From<sqlx::Error> for SetupError {
    fn from(e: sqlx::Error) -> Self {
        Self::Login(e.into())
    }
}

impl From<anyhow::Error> for SetupError {
    fn from(e: anyhow::Error) -> Self {
        Self::Login(e.into())
    }
}

/// Creates the first admin with a setup code from `serve`'s banner and signs them in. Wrong
/// codes count as failed logins from the client (`admin.login_failures_per_ip` in
/// `admin.login_window`, an IPv6 client by its network), checked before the code; the
/// password is hashed in one of the login places, after the code checked out. Audited
/// (`staff-add` and `sign-in`, by the new admin).
pub async fn set_up(
    pool: &PgPool,
    logins: &Logins,
    code: &str,
    email: &str,
    password: &str,
    ip: Option<IpAddr>,
) -> Result<SessionId, SetupError> {
    if !needs_setup(pool).await? {
        return Err(SetupError::SetUpAlready);
    }
    let email = EmailAddress::parse(email).map_err(|e| SetupError::Invalid("email", e))?;
    let password = NewPassword::parse(password).map_err(|e| SetupError::Invalid("password", e))?;
    let settings = &logins.settings;
    let client = ip.map(|ip| client_key(ip, logins.ipv6_prefix));
    // Every attempt is kept as a failure of this pseudo account until it succeeds; only the
    // client's count throttles (anyone could run up a shared count and lock setup for all).
    let setup = EmailAddress::parse("setup@setup.invalid").map_err(|e| anyhow::anyhow!(e))?;
    let attempt = store::record_attempt(pool, &setup, client, settings.login_window).await?;
    let (_, by_ip) = store::recent_failures(pool, &setup, client, settings.login_window).await?;
    if by_ip > i64::from(settings.login_failures_per_ip) {
        store::forget_attempt(pool, attempt).await?;
        return Err(LoginError::Throttled.into());
    }
    let code = SetupCode::parse(code).ok_or(SetupError::WrongCode)?;
    if !store::setup_code_is_live(pool, &code.hash()).await? {
        return Err(if needs_setup(pool).await? {
            SetupError::WrongCode
        } else {
            SetupError::SetUpAlready
        });
    }
    let place = tokio::time::timeout(LOGIN_WAIT, Arc::clone(&logins.places).acquire_owned())
        .await
        .map_err(|_| LoginError::Busy)?
        .context("waiting for a place to hash a password")?;
    let hash = tokio::task::spawn_blocking(move || {
        let hash = password.hash();
        drop(place);
        hash
    })
    .await
    .context("hashing the password")?;
    let mut conn = pool.acquire().await?;
    let id = match store::create_first_admin(&mut conn, &code.hash(), &email, &hash).await? {
        store::FirstAdmin::Created(id) => id,
        store::FirstAdmin::SetUpAlready => return Err(SetupError::SetUpAlready),
        store::FirstAdmin::WrongCode => return Err(SetupError::WrongCode),
    };
    drop(conn);
    store::forget_attempt(pool, attempt).await?;
    let session = Token::generate();
    store::start_session(pool, id, &session.hash(), None, settings.session_idle).await?;
    for (action, detail) in [
        ("staff-add", json!({ "role": "admin", "by": "setup code" })),
        ("sign-in", json!({ "ip": ip })),
    ] {
        let entry = NewEntry {
            actor: email.canonical(),
            staff_id: Some(id),
            action,
            subject: (action == "staff-add").then_some(email.canonical()),
            detail,
        };
        crate::store::audit::append(pool, entry).await?;
    }
    tracing::info!(staff_id = %id, "first admin created with the setup code");
    Ok(SessionId(session))
}

/// The member of staff behind a session id still in use (not idle longer than the setting).
pub async fn session(
    pool: &PgPool,
    settings: &AdminSettings,
    id: &Token,
) -> anyhow::Result<Option<StaffMember>> {
    Ok(store::touch_session(pool, &id.hash(), settings.session_idle).await?)
}

pub async fn log_out(pool: &PgPool, id: &Token) -> anyhow::Result<()> {
    Ok(store::end_session(pool, &id.hash()).await?)
}
