//! Second factors of staff accounts: TOTP enrolment (confirmed with a code before it takes
//! effect), recovery codes (ten, shown once, stored hashed, each good once), the second step
//! of a sign-in, removal, and an admin's reset of another member's second factors.
//!
//! A second-factor code is throttled as a password is (`staff::attempt`: the same counts per
//! account and per client), and a TOTP code works once: its time step must be later than the
//! last one accepted for the account.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::roles::{self, Operation};
use super::staff::{self as staff_ops, Logins, SessionId, StaffError, StaffMember};
use super::{audit, Actor};
use crate::config::Settings;
use crate::domain::second_factor::{RecoveryCode, SealingKey, TotpSecret, RECOVERY_CODES};
use crate::domain::{EmailAddress, Token};
use crate::store::second_factor as store;
use crate::store::staff as staff_store;

pub use crate::store::second_factor::Reset;

/// How long a secret shown for enrolment waits for its confirming code.
pub const PENDING_TOTP: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, thiserror::Error)]
pub enum SecondFactorError {
    /// The code is none of the member's (or used already): the caller must not tell which.
    #[error("that code is not right, or was used already")]
    WrongCode,
    #[error("too many wrong codes; try again later")]
    Throttled,
    #[error(transparent)]
    Staff(#[from] StaffError),
}

staff_ops::internal_through_staff_error!(SecondFactorError);

impl From<staff_ops::LoginError> for SecondFactorError {
    fn from(e: staff_ops::LoginError) -> Self {
        match e {
            staff_ops::LoginError::Throttled | staff_ops::LoginError::Busy => Self::Throttled,
            staff_ops::LoginError::Wrong => Self::WrongCode,
            staff_ops::LoginError::Internal(e) => Self::Staff(e.into()),
        }
    }
}

fn sealing_key(settings: &Settings) -> SealingKey {
    SealingKey::derive(settings.security.secret_key.expose().as_bytes())
}

/// What the enrolment page shows: the secret as text, the `otpauth://` URI, its QR code (SVG).
pub struct Enrolment {
    pub secret: String,
    pub uri: String,
    pub qr_svg: String,
}

/// The TOTP secret for the acting member to enrol: the one shown before if it is younger than
/// [`PENDING_TOTP`], else a new one. Refused when they have TOTP already.
pub async fn enrolment(
    pool: &PgPool,
    settings: &Settings,
    actor: &Actor,
    member: &StaffMember,
) -> Result<Enrolment, StaffError> {
    let staff_id = staff_ops::own_account(actor)?;
    if member.totp_enrolled_at.is_some() {
        return Err(StaffError::Refused(
            "You have an authenticator app already: remove it first to enrol another.".into(),
        ));
    }
    let key = sealing_key(settings);
    let pending = store::pending_totp(pool, staff_id, PENDING_TOTP)
        .await?
        .and_then(|sealed| TotpSecret::open(&sealed, &key, staff_id));
    let secret = match pending {
        Some(secret) => secret,
        None => {
            let secret = TotpSecret::generate();
            store::set_pending_totp(pool, staff_id, &secret.seal(&key, staff_id)).await?;
            secret
        }
    };
    let issuer = issuer(settings);
    Ok(Enrolment {
        secret: secret.base32(),
        uri: secret.otpauth_uri(&issuer, &member.email),
        qr_svg: secret.qr_svg(&issuer, &member.email),
    })
}

/// The name an authenticator app lists the account under: the sender's name and the host.
fn issuer(settings: &Settings) -> String {
    let name = settings.mail.from.name.as_deref().unwrap_or("newsletter");
    format!("{name} ({})", settings.server.base_url.host())
}

/// Confirms the pending TOTP secret with a code from the app: from then on it is the member's
/// second factor, this session counts as having given it, and ten recovery codes are made
/// and returned (to be shown once) with the session's new id (it changes as it gains its second
/// factor). Only within [`staff_ops::RECENT_SIGN_IN`] of the session's sign-in. Audited
/// (`second-factor-enrol`), and the member is told by mail. Wrong codes are throttled as
/// passwords are.
pub async fn confirm_totp(
    pool: &PgPool,
    settings: &Settings,
    logins: &Logins,
    actor: &Actor,
    code: &str,
    ip: Option<IpAddr>,
    session: &Token,
) -> Result<(Vec<RecoveryCode>, SessionId), SecondFactorError> {
    let staff_id = staff_ops::own_account(actor)?;
    staff_ops::require_recent_sign_in(pool, session).await?;
    let key = sealing_key(settings);
    let email = email_of(actor)?;
    let attempt = staff_ops::attempt(pool, logins, &email, ip).await?;
    let Some(sealed) = store::pending_totp(pool, staff_id, PENDING_TOTP).await? else {
        return Err(StaffError::Refused(
            "The code shown for enrolment has expired: open the page again for a new one.".into(),
        )
        .into());
    };
    let secret = TotpSecret::open(&sealed, &key, staff_id).ok_or_else(|| {
        StaffError::Refused("The enrolment expired: open the page again for a new one.".into())
    })?;
    let Some(step) = secret.step_of(code, unix_now()) else {
        failed(pool, actor, "totp-enrol", ip).await?;
        return Err(SecondFactorError::WrongCode);
    };
    let codes: Vec<RecoveryCode> = (0..RECOVERY_CODES)
        .map(|_| RecoveryCode::generate())
        .collect();
    let hashes: Vec<[u8; 32]> = codes.iter().map(RecoveryCode::hash).collect();
    let mut tx = pool.begin().await?;
    if !store::confirm_totp(&mut tx, staff_id, &sealed, step as i64, &hashes).await? {
        return Err(StaffError::Refused(
            "Another enrolment replaced this one: open the page again.".into(),
        )
        .into());
    }
    let renewed = staff_ops::gain_second_factor(&mut *tx, session).await?;
    audit::record(
        &mut *tx,
        actor,
        "second-factor-enrol",
        None,
        json!({ "method": "totp" }),
    )
    .await?;
    tx.commit().await?;
    staff_ops::succeeded(pool, attempt).await?;
    let what = "An authenticator app was set up as the second factor";
    staff_ops::notify_account_change(pool, settings, email.as_str(), what).await?;
    Ok((codes, renewed))
}

/// Makes ten new recovery codes for the acting member (the old ones stop working) and returns
/// them, to be shown once. Only with TOTP enrolled, and within [`staff_ops::RECENT_SIGN_IN`] of
/// the session's sign-in. Audited, and the member is told by mail.
pub async fn new_recovery_codes(
    pool: &PgPool,
    settings: &Settings,
    actor: &Actor,
    member: &StaffMember,
    session: &Token,
) -> Result<Vec<RecoveryCode>, StaffError> {
    let staff_id = staff_ops::own_account(actor)?;
    staff_ops::require_recent_sign_in(pool, session).await?;
    if member.totp_enrolled_at.is_none() {
        return Err(StaffError::Refused(
            "Recovery codes go with an authenticator app: enrol one first.".into(),
        ));
    }
    let codes: Vec<RecoveryCode> = (0..RECOVERY_CODES)
        .map(|_| RecoveryCode::generate())
        .collect();
    let hashes: Vec<[u8; 32]> = codes.iter().map(RecoveryCode::hash).collect();
    let mut tx = pool.begin().await?;
    store::replace_recovery_codes(&mut tx, staff_id, &hashes).await?;
    audit::record(&mut *tx, actor, "recovery-codes-new", None, json!({})).await?;
    tx.commit().await?;
    let what = "New recovery codes were made (the old ones no longer work)";
    staff_ops::notify_account_change(pool, settings, &member.email, what).await?;
    Ok(codes)
}

/// Unused recovery codes of the acting member.
pub async fn recovery_codes_left(pool: &PgPool, actor: &Actor) -> Result<i64, StaffError> {
    Ok(store::recovery_codes_left(pool, staff_ops::own_account(actor)?).await?)
}

/// Removes the acting member's TOTP and recovery codes, after checking their password
/// (throttled as a login is). Audited (`second-factor-remove`); the member is told by mail.
pub async fn remove_totp(
    pool: &PgPool,
    settings: &Settings,
    logins: &Logins,
    actor: &Actor,
    password: &str,
    ip: Option<IpAddr>,
) -> Result<(), SecondFactorError> {
    let staff_id = staff_ops::own_account(actor)?;
    let email = email_of(actor)?;
    match staff_ops::log_in(pool, logins, email.as_str(), password, ip).await {
        Ok(id) if id == staff_id => {}
        Ok(_) => return Err(SecondFactorError::WrongCode),
        Err(e) => return Err(e.into()),
    }
    let mut tx = pool.begin().await?;
    if !store::remove_totp(&mut tx, staff_id).await? {
        return Err(StaffError::Refused("You have no authenticator app to remove.".into()).into());
    }
    audit::record(
        &mut *tx,
        actor,
        "second-factor-remove",
        None,
        json!({ "method": "totp" }),
    )
    .await?;
    tx.commit().await?;
    let what = "The authenticator app and its recovery codes were removed";
    staff_ops::notify_account_change(pool, settings, email.as_str(), what).await?;
    Ok(())
}

/// The second step of a sign-in: a TOTP code (six digits) or a recovery code from `member`,
/// whose session `session` gave its first factor. Right: the session is signed in all the way
/// under a new id (returned, for the cookie) and the attempt is forgotten; a TOTP code's step is
/// used up, a recovery code is used up.
/// Throttled with the password's counts; every wrong code is audited
/// (`second-factor-failed`, with the failures so far in the window).
pub async fn verify(
    pool: &PgPool,
    settings: &Settings,
    logins: &Logins,
    member: &StaffMember,
    code: &str,
    ip: Option<IpAddr>,
    session: &Token,
) -> Result<SessionId, SecondFactorError> {
    let email = EmailAddress::parse(&member.email).map_err(|e| anyhow::anyhow!(e))?;
    let actor = Actor::Staff {
        id: member.id,
        role: member.role,
        email: member.email.clone(),
    };
    let attempt = staff_ops::attempt(pool, logins, &email, ip).await?;
    let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let (method, right) = if digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit()) {
        (
            "totp",
            totp_matches(pool, settings, member.id, &digits).await?,
        )
    } else {
        let right = match RecoveryCode::parse(code) {
            Some(code) => store::use_recovery_code(pool, member.id, &code.hash()).await?,
            None => false,
        };
        ("recovery-code", right)
    };
    if !right {
        failed(pool, &actor, method, ip).await?;
        return Err(SecondFactorError::WrongCode);
    }
    staff_ops::succeeded(pool, attempt).await?;
    let renewed = staff_ops::gain_second_factor(pool, session).await?;
    let left = store::recovery_codes_left(pool, member.id).await?;
    audit::record(
        pool,
        &actor,
        "second-factor",
        None,
        json!({ "method": method, "ip": ip, "recovery_codes_left": left }),
    )
    .await?;
    Ok(renewed)
}

/// Whether `code` is the member's TOTP code of a step within the skew and later than the last
/// one used (taking that step when it is).
async fn totp_matches(
    pool: &PgPool,
    settings: &Settings,
    staff_id: Uuid,
    code: &str,
) -> anyhow::Result<bool> {
    let Some(sealed) = store::totp_secret(pool, staff_id).await? else {
        return Ok(false);
    };
    let Some(secret) = TotpSecret::open(&sealed, &sealing_key(settings), staff_id) else {
        tracing::warn!(%staff_id, "a TOTP secret does not open: was security.secret_key changed?");
        return Ok(false);
    };
    match secret.step_of(code, unix_now()) {
        Some(step) => Ok(store::claim_totp_step(pool, staff_id, step as i64).await?),
        None => Ok(false),
    }
}

/// Records a wrong second-factor code as an audit entry (`second-factor-failed`): the staff
/// page counts them per member.
async fn failed(
    pool: &PgPool,
    actor: &Actor,
    method: &str,
    ip: Option<IpAddr>,
) -> anyhow::Result<()> {
    tracing::info!(method, "wrong second-factor code");
    audit::record(
        pool,
        actor,
        "second-factor-failed",
        None,
        json!({ "method": method, "ip": ip }),
    )
    .await?;
    Ok(())
}

/// Removes every second factor of the member at `email` (TOTP, recovery codes, passkeys) and
/// ends their sessions, so they sign in with their password and enrol again: for a member who
/// lost their phone. Admins only (and `newsletter staff reset-2fa`); not one's own, which the
/// account page removes. Audited (`staff-2fa-reset`, also when there was nothing to remove: the
/// sessions still end); the member is told by mail when something was removed.
pub async fn reset(
    pool: &PgPool,
    settings: &Settings,
    actor: &Actor,
    email: &str,
) -> Result<Reset, StaffError> {
    roles::authorize(actor, Operation::StaffManage)?;
    let email = EmailAddress::parse(email).map_err(StaffError::Invalid)?;
    let Some((staff_id, _)) = staff_store::credentials(pool, &email).await? else {
        return Err(StaffError::NotFound(email.as_str().to_owned()));
    };
    if actor.staff_id() == Some(staff_id) {
        return Err(StaffError::Refused(
            "Your own second factors are removed on your account page.".into(),
        ));
    }
    let mut tx = pool.begin().await?;
    let reset = store::reset(&mut tx, staff_id).await?;
    audit::record(
        &mut *tx,
        actor,
        "staff-2fa-reset",
        Some(email.canonical()),
        json!(reset),
    )
    .await?;
    tx.commit().await?;
    if reset.totp || reset.passkeys > 0 {
        let what = "An admin removed your authenticator app, recovery codes and passkeys \
                    (sign in with your password and set up a second factor again)";
        staff_ops::notify_account_change(pool, settings, email.canonical(), what).await?;
    }
    Ok(reset)
}

fn email_of(actor: &Actor) -> Result<EmailAddress, StaffError> {
    match actor {
        Actor::Staff { email, .. } => {
            EmailAddress::parse(email).map_err(|e| StaffError::Internal(anyhow::anyhow!(e)))
        }
        _ => Err(StaffError::Refused(
            "Only a member of staff, signed in, acts on their own account.".into(),
        )),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
