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
use uuid::Uuid;

use super::roles::{self, Forbidden, Operation};
use super::{audit, Actor};

use crate::config::{AdminSettings, Settings};
use crate::domain::{
    client_key, dummy_hash, verify_password, EmailAddress, NewPassword, SetupCode, StaffRole, Token,
};
use crate::store::audit::NewEntry;
use crate::store::staff as store;

pub use crate::store::staff::{claim_form_key, release_form_key, ListedMember, StaffMember};

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

/// Every account, with its passkeys and recent wrong second-factor codes: admins only.
pub async fn list(pool: &PgPool, actor: &Actor) -> Result<Vec<ListedMember>, StaffError> {
    roles::authorize(actor, Operation::StaffManage)?;
    Ok(store::listing(pool).await?)
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
/// password costs and gets the same error. The account's id when the password is right: the
/// session is [`sign_in`]'s.
pub async fn log_in(
    pool: &PgPool,
    logins: &Logins,
    email: &str,
    password: &str,
    ip: Option<IpAddr>,
) -> Result<Uuid, LoginError> {
    // A malformed address is still throttled by IP and costs one hash.
    let parsed = EmailAddress::parse(email)
        .or_else(|_| EmailAddress::parse("nobody@invalid.invalid"))
        .map_err(|e| anyhow::anyhow!(e))?;
    let place = tokio::time::timeout(LOGIN_WAIT, Arc::clone(&logins.places).acquire_owned())
        .await
        .map_err(|_| LoginError::Busy)?
        .context("waiting for a place to check a password")?;
    let attempt = attempt(pool, logins, &parsed, ip).await?;
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
            succeeded(pool, attempt).await?;
            Ok(staff_id)
        }
        _ => {
            tracing::info!("failed staff login");
            Err(LoginError::Wrong)
        }
    }
}

/// Records an attempt to prove who one is (a password, a second factor) for `email` from `ip`
/// as a failure, then counts: over `admin.login_failures_per_account` for the account or
/// `admin.login_failures_per_ip` for the client (an IPv6 client by its network) within
/// `admin.login_window`, the attempt is forgotten again and `Throttled`. Else its id, for
/// [`succeeded`] once it turns out right.
pub(super) async fn attempt(
    pool: &PgPool,
    logins: &Logins,
    email: &EmailAddress,
    ip: Option<IpAddr>,
) -> Result<i64, LoginError> {
    counted_attempt(pool, logins, email, ip, true).await
}

/// [`attempt`] for a pseudo account (a setup code, a passkey not yet known): only the client's
/// count throttles, since anyone could run up a shared count and lock everyone out.
pub(super) async fn attempt_by_client(
    pool: &PgPool,
    logins: &Logins,
    pseudo: &EmailAddress,
    ip: Option<IpAddr>,
) -> Result<i64, LoginError> {
    counted_attempt(pool, logins, pseudo, ip, false).await
}

async fn counted_attempt(
    pool: &PgPool,
    logins: &Logins,
    email: &EmailAddress,
    ip: Option<IpAddr>,
    by_account_too: bool,
) -> Result<i64, LoginError> {
    let settings = &logins.settings;
    let client = ip.map(|ip| client_key(ip, logins.ipv6_prefix));
    let attempt = store::record_attempt(pool, email, client, settings.login_window).await?;
    let (by_account, by_ip) =
        store::recent_failures(pool, email, client, settings.login_window).await?;
    if (by_account_too && by_account > i64::from(settings.login_failures_per_account))
        || by_ip > i64::from(settings.login_failures_per_ip)
    {
        store::forget_attempt(pool, attempt).await?;
        tracing::warn!(by_account, by_ip, "staff sign-in throttled");
        return Err(LoginError::Throttled);
    }
    Ok(attempt)
}

/// Forgets an [`attempt`] that was right.
pub(super) async fn succeeded(pool: &PgPool, attempt: i64) -> Result<(), LoginError> {
    Ok(store::forget_attempt(pool, attempt).await?)
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
/// (`staff-add`, by the new admin). The new admin's id: the session is [`sign_in`]'s.
pub async fn set_up(
    pool: &PgPool,
    logins: &Logins,
    code: &str,
    email: &str,
    password: &str,
    ip: Option<IpAddr>,
) -> Result<Uuid, SetupError> {
    if !needs_setup(pool).await? {
        return Err(SetupError::SetUpAlready);
    }
    let email = EmailAddress::parse(email).map_err(|e| SetupError::Invalid("email", e))?;
    let password = NewPassword::parse(password).map_err(|e| SetupError::Invalid("password", e))?;
    // Every attempt is kept as a failure of this pseudo account until it succeeds.
    let setup = EmailAddress::parse("setup@setup.invalid").map_err(|e| anyhow::anyhow!(e))?;
    let attempt = attempt_by_client(pool, logins, &setup, ip).await?;
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
    let entry = NewEntry {
        actor: email.canonical(),
        staff_id: Some(id),
        action: "staff-add",
        subject: Some(email.canonical()),
        detail: json!({ "role": "admin", "by": "setup code" }),
    };
    crate::store::audit::append(pool, entry).await?;
    tracing::info!(staff_id = %id, "first admin created with the setup code");
    Ok(id)
}

/// How a sign-in gave its first factor (the sessions list shows it; the audit log names it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInMethod {
    Password,
    Passkey,
    Oidc,
    /// The first admin, made with the setup code.
    Setup,
}

impl SignInMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Passkey => "passkey",
            Self::Oidc => "oidc",
            Self::Setup => "setup",
        }
    }
}

/// The browser signing in: its address, its `User-Agent`, and the device cookie it holds.
pub struct Client<'a> {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<&'a str>,
    pub device: Option<&'a Token>,
}

/// Where a session stands: whether it may use the staff area yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Signed in: the staff area is open.
    SignedIn,
    /// The member has a second factor and this session has not given it yet.
    SecondFactor,
    /// The member must have a second factor (`admin.require_second_factor`) and has none: only
    /// enrolment is open.
    Enrol,
}

/// How long a session may stay at [`Stage::SecondFactor`] or [`Stage::Enrol`] before it ends.
pub const PENDING_SESSION: Duration = Duration::from_secs(15 * 60);

/// A session that began: its id (for the cookie), where it stands, and the device id the
/// browser should keep (a new one when it had none).
pub struct SignedIn {
    pub session: SessionId,
    pub stage: Stage,
    pub device: Token,
}

/// Starts a session for `staff_id` after its first factor checked out (`both_factors`: the
/// method counted as two, e.g. a passkey), ending `previous`. Audited (`sign-in`, with the
/// method and address). A sign-in from a device (browser) the member has not signed in from
/// before sends them a notice mail, unless it is their first sign-in ever.
pub async fn sign_in(
    pool: &PgPool,
    settings: &Settings,
    staff_id: Uuid,
    method: SignInMethod,
    both_factors: bool,
    client: &Client<'_>,
    previous: Option<&Token>,
) -> anyhow::Result<SignedIn> {
    let id = Token::generate();
    let new = store::NewSession {
        staff_id,
        id_hash: &id.hash(),
        method: method.as_str(),
        second_factor: both_factors,
        ip: client.ip,
        user_agent: client.user_agent,
    };
    let first_ever = store::last_login(pool, staff_id).await?.is_none();
    store::start_session(
        pool,
        &new,
        previous.map(Token::hash).as_ref(),
        settings.admin.session_idle,
    )
    .await?;
    let live = store::touch_session(pool, &id.hash(), settings.admin.session_idle)
        .await?
        .context("the session just started")?;
    let member = &live.member;
    let device = client.device.cloned().unwrap_or_else(Token::generate);
    let new_device = store::remember_device(pool, staff_id, &device.hash()).await?;
    if new_device && !first_ever {
        notify_new_device(pool, settings, member, method, client).await?;
    }
    tracing::info!(%staff_id, method = method.as_str(), "staff sign-in");
    let entry = NewEntry {
        actor: &member.email,
        staff_id: Some(staff_id),
        action: "sign-in",
        subject: None,
        detail: json!({
            "method": method.as_str(),
            "ip": client.ip,
            "second_factor": both_factors,
            "new_device": new_device,
        }),
    };
    crate::store::audit::append(pool, entry).await?;
    Ok(SignedIn {
        session: SessionId(id),
        stage: stage(&settings.admin, &live),
        device,
    })
}

/// Tells a member by mail that their account was signed in to from a new device.
async fn notify_new_device(
    pool: &PgPool,
    settings: &Settings,
    member: &StaffMember,
    method: SignInMethod,
    client: &Client<'_>,
) -> anyhow::Result<()> {
    let device = client
        .user_agent
        .map(crate::domain::describe_user_agent)
        .unwrap_or_else(|| "Unknown browser".into());
    let ip = client
        .ip
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "an unknown address".into());
    let method = match method {
        SignInMethod::Password | SignInMethod::Setup => "password",
        SignInMethod::Passkey => "passkey",
        SignInMethod::Oidc => "single sign-on",
    };
    let text = format!(
        "Your staff account {} was signed in to from a device not seen before: {device}, from \
         {ip}, by {method}, at {} UTC. If this was you, there is nothing to do. If it was not, \
         end that session on your account page, change your password, and tell an admin.",
        member.email,
        chrono::Utc::now().format("%Y-%m-%d %H:%M"),
    );
    notify(
        pool,
        settings,
        &member.email,
        NEW_SIGN_IN,
        &text,
        "Review your sessions",
    )
    .await
}

/// The subject of the mail about a sign-in from a new device.
const NEW_SIGN_IN: &str = "New sign-in to your staff account";
/// The subject of the mail about a second factor added or removed.
const ACCOUNT_CHANGED: &str = "Your staff account's sign-in changed";
/// Notice mails of one subject a member gets in an hour at most; beyond, the audit log alone
/// keeps what happened (a flood of sign-ins must not become a flood of mail).
pub const NOTICES_PER_HOUR: i64 = 5;

/// Queues a notice to a member with a link to their account page, unless
/// [`NOTICES_PER_HOUR`] of that subject went to them in the last hour.
async fn notify(
    pool: &PgPool,
    settings: &Settings,
    to: &str,
    subject: &str,
    text: &str,
    action: &str,
) -> anyhow::Result<()> {
    let hour = Duration::from_secs(3600);
    if crate::store::updates::recent_notices(pool, to, subject, hour).await? >= NOTICES_PER_HOUR {
        tracing::warn!(
            subject,
            "a staff notice not sent: the hourly cap is reached"
        );
        return Ok(());
    }
    let url = settings.server.base_url.join("/admin/account");
    crate::store::updates::queue_notice(pool, to, subject, text, action, &url).await?;
    Ok(())
}

/// Tells a member by mail that a way to sign in to their account was added or removed
/// (`what`: "A passkey named "Phone" was added"), so a change they did not make is seen.
pub(super) async fn notify_account_change(
    pool: &PgPool,
    settings: &Settings,
    email: &str,
    what: &str,
) -> anyhow::Result<()> {
    let text = format!(
        "{what} to your staff account {email}, at {} UTC. If this was you, there is nothing to \
         do. If it was not, someone is in your account: end its other sessions and check its \
         passkeys on your account page, change your password, and tell an admin.",
        chrono::Utc::now().format("%Y-%m-%d %H:%M"),
    );
    notify(
        pool,
        settings,
        email,
        ACCOUNT_CHANGED,
        &text,
        "Review your account",
    )
    .await
}

/// How recent a sign-in must be for a session to add a way to sign in (a passkey, an
/// authenticator app) or make new recovery codes: a session taken over later cannot make
/// itself permanent.
pub const RECENT_SIGN_IN: Duration = Duration::from_secs(15 * 60);

/// Refuses unless session `session` proved who it is (signed in, or gave its second factor)
/// within [`RECENT_SIGN_IN`].
pub(super) async fn require_recent_sign_in(
    pool: &PgPool,
    session: &Token,
) -> Result<(), StaffError> {
    let proved = store::proved_at(pool, &session.hash()).await?;
    let recent = proved.is_some_and(|at| {
        (chrono::Utc::now() - at)
            .to_std()
            .is_ok_and(|age| age <= RECENT_SIGN_IN)
    });
    if recent {
        Ok(())
    } else {
        Err(StaffError::Refused(format!(
            "For your safety this needs a recent sign-in: log out, sign in again, and do it within {} minutes.",
            RECENT_SIGN_IN.as_secs() / 60
        )))
    }
}

/// Session `session` gave its second factor now: it goes on under a new id (returned, for
/// the cookie), so an id seen before this moment opens no more than it did.
pub(super) async fn gain_second_factor(
    db: impl sqlx::PgExecutor<'_>,
    session: &Token,
) -> anyhow::Result<SessionId> {
    let new = Token::generate();
    if !store::gain_second_factor(db, &session.hash(), &new.hash()).await? {
        anyhow::bail!("the session ended meanwhile");
    }
    Ok(SessionId(new))
}

/// Where a live session stands under `settings.require_second_factor`.
pub fn stage(settings: &AdminSettings, live: &store::LiveSession) -> Stage {
    let has_factor = live.member.totp_enrolled_at.is_some() || live.has_passkey;
    if live.second_factor_at.is_some() {
        Stage::SignedIn
    } else if has_factor {
        Stage::SecondFactor
    } else if settings.require_second_factor.applies_to(live.member.role) {
        Stage::Enrol
    } else {
        Stage::SignedIn
    }
}

/// A live session: its member, its public id, and where it stands.
#[derive(Debug, Clone)]
pub struct Session {
    pub member: StaffMember,
    pub id: Uuid,
    pub stage: Stage,
    /// Whether the member has a passkey.
    pub has_passkey: bool,
}

/// The session behind a session id still in use (not idle longer than `admin.session_idle`;
/// one not signed in all the way, not older than [`PENDING_SESSION`]).
pub async fn session(
    pool: &PgPool,
    settings: &AdminSettings,
    id: &Token,
) -> anyhow::Result<Option<Session>> {
    let Some(live) = store::touch_session(pool, &id.hash(), settings.session_idle).await? else {
        return Ok(None);
    };
    let stage = stage(settings, &live);
    let age = (chrono::Utc::now() - live.created_at)
        .to_std()
        .unwrap_or_default();
    if stage != Stage::SignedIn && age > PENDING_SESSION {
        store::end_session(pool, &id.hash()).await?;
        return Ok(None);
    }
    Ok(Some(Session {
        member: live.member,
        id: live.id,
        stage,
        has_passkey: live.has_passkey,
    }))
}

pub async fn log_out(pool: &PgPool, id: &Token) -> anyhow::Result<()> {
    Ok(store::end_session(pool, &id.hash()).await?)
}

/// The acting member's live sessions, the most recently used first (`current`: the session
/// asking), each with the device read from its `User-Agent`.
pub async fn sessions(
    pool: &PgPool,
    settings: &AdminSettings,
    staff_id: Uuid,
    current: &Token,
) -> anyhow::Result<Vec<(store::SessionInfo, String)>> {
    Ok(
        store::sessions(pool, staff_id, &current.hash(), settings.session_idle)
            .await?
            .into_iter()
            .map(|s| {
                let device = s
                    .user_agent
                    .as_deref()
                    .map(crate::domain::describe_user_agent)
                    .unwrap_or_else(|| "Unknown device".into());
                (s, device)
            })
            .collect(),
    )
}

/// Ends one of the acting member's own sessions (`session`: its public id). Audited.
pub async fn end_session(pool: &PgPool, actor: &Actor, session: Uuid) -> Result<(), StaffError> {
    let staff_id = own_account(actor)?;
    if !store::end_session_of(pool, staff_id, session).await? {
        return Err(StaffError::NotFound(
            "that session (it has ended already)".into(),
        ));
    }
    audit::record(
        pool,
        actor,
        "session-end",
        None,
        json!({ "session": session }),
    )
    .await?;
    Ok(())
}

/// Ends every session of the acting member but `current`. How many ended. Audited.
pub async fn end_other_sessions(
    pool: &PgPool,
    actor: &Actor,
    current: &Token,
) -> Result<u64, StaffError> {
    let staff_id = own_account(actor)?;
    let ended = store::end_sessions_but(pool, staff_id, Some(&current.hash())).await?;
    audit::record(
        pool,
        actor,
        "sessions-end-others",
        None,
        json!({ "ended": ended }),
    )
    .await?;
    Ok(ended)
}

/// The acting member's account id: only a member of staff, signed in, acts on their own.
pub(super) fn own_account(actor: &Actor) -> Result<Uuid, StaffError> {
    actor.staff_id().ok_or_else(|| {
        StaffError::Refused("Only a member of staff, signed in, acts on their own account.".into())
    })
}

/// Changes the acting member's own password, after checking the current one (throttled as a
/// login is); every other session of theirs ends. Audited (`password-change`).
pub async fn change_password(
    pool: &PgPool,
    logins: &Logins,
    actor: &Actor,
    current: &str,
    new: &str,
    ip: Option<IpAddr>,
    session: &Token,
) -> Result<(), PasswordChangeError> {
    let staff_id = own_account(actor)?;
    let new = NewPassword::parse(new).map_err(PasswordChangeError::Invalid)?;
    if new.expose() == current {
        return Err(PasswordChangeError::Invalid(
            "The new password is the one you have: choose another.".into(),
        ));
    }
    let (email, _) = store::credentials_of(pool, staff_id)
        .await?
        .ok_or_else(|| StaffError::NotFound("your account".into()))?;
    match log_in(pool, logins, &email, current, ip).await {
        Ok(id) if id == staff_id => {}
        Ok(_) | Err(LoginError::Wrong) => return Err(PasswordChangeError::WrongCurrent),
        Err(e) => return Err(PasswordChangeError::Login(e)),
    }
    let hash = hash(new).await?;
    store::set_own_password(pool, staff_id, &hash, &session.hash()).await?;
    audit::record(pool, actor, "password-change", None, json!({})).await?;
    Ok(())
}

/// `From<sqlx::Error>` and `From<anyhow::Error>` for an error enum of sign-in whose
/// `Staff(StaffError)` variant carries what went wrong inside (`StaffError::Internal`).
macro_rules! internal_through_staff_error {
    ($error:ty) => {
        impl From<sqlx::Error> for $error {
            fn from(e: sqlx::Error) -> Self {
                Self::Staff(e.into())
            }
        }

        impl From<anyhow::Error> for $error {
            fn from(e: anyhow::Error) -> Self {
                Self::Staff(e.into())
            }
        }
    };
}
pub(crate) use internal_through_staff_error;

internal_through_staff_error!(PasswordChangeError);

/// Why a password change was not made.
#[derive(Debug, thiserror::Error)]
pub enum PasswordChangeError {
    #[error("the current password is wrong")]
    WrongCurrent,
    /// The new password is not acceptable (why).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Login(LoginError),
    #[error(transparent)]
    Staff(#[from] StaffError),
}
