//! Staff accounts and sign-in: add, reset a password, list, remove; log in (throttled per
//! account and per IP, the same answer and about the same time for an unknown account and a
//! wrong password); sessions.

use std::net::IpAddr;

use anyhow::Context;
use serde_json::json;
use sqlx::PgPool;

use super::roles::{self, Forbidden, Operation};
use super::{audit, Actor};

use crate::config::AdminSettings;
use crate::domain::{dummy_hash, verify_password, EmailAddress, NewPassword, StaffRole, Token};
use crate::store::audit::NewEntry;
use crate::store::staff::{self as store, StaffMember};

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
            audit::record(pool, actor, "staff-add", Some(email.as_str()), detail).await?;
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
            Some(email.as_str()),
            json!({}),
        )
        .await?;
        Ok(())
    } else {
        Err(StaffError::NotFound(email.as_str().to_owned()))
    }
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

/// Checks a login. Throttled (before any password work) once the account or the IP has had too
/// many failures in the window. An unknown or malformed address is verified against a dummy
/// hash, so it costs what a wrong password costs and gets the same error.
pub async fn log_in(
    pool: &PgPool,
    settings: &AdminSettings,
    email: &str,
    password: &str,
    ip: Option<IpAddr>,
    previous_session: Option<&Token>,
) -> Result<SessionId, LoginError> {
    // A malformed address is still throttled by IP and costs one hash.
    let parsed = EmailAddress::parse(email)
        .or_else(|_| EmailAddress::parse("nobody@invalid.invalid"))
        .map_err(|e| anyhow::anyhow!(e))?;
    let (by_account, by_ip) =
        store::recent_failures(pool, &parsed, ip, settings.login_window).await?;
    if by_account >= i64::from(settings.login_failures_per_account)
        || by_ip >= i64::from(settings.login_failures_per_ip)
    {
        tracing::warn!(by_account, by_ip, "staff login throttled");
        return Err(LoginError::Throttled);
    }
    let found = store::credentials(pool, &parsed).await?;
    let stored = found
        .as_ref()
        .map_or_else(|| dummy_hash().to_owned(), |(_, h)| h.clone());
    let password = password.to_owned();
    let matches = tokio::task::spawn_blocking(move || verify_password(&stored, &password))
        .await
        .context("verifying the password")?;
    match found {
        Some((staff_id, _)) if matches => {
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
            store::record_failure(pool, &parsed, ip, settings.login_window).await?;
            Err(LoginError::Wrong)
        }
    }
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
