//! Passkeys (WebAuthn Level 2, by `webauthn-rs`): a member registers several, each with a
//! name, lists and removes them; a passkey signs in alone (a discoverable credential, with user
//! verification: it counts as both factors) or serves as the second factor after a password.
//!
//! The relying party id is the host of `server.base_url`; passkeys are offered only over https,
//! or on `localhost` (browsers treat it as secure; an IP address cannot be a relying party id).
//! A ceremony's state stays on the server (`webauthn_ceremonies`, five minutes, used once), found
//! by the SHA-256 of a random id the page sends back.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, DiscoverableKey, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
};
use webauthn_rs::{Webauthn, WebauthnBuilder};

use super::staff::{self as staff_ops, Logins, SessionId, StaffError, StaffMember};
use super::{audit, Actor};
use crate::config::Settings;
use crate::domain::{EmailAddress, Token};
use crate::store::passkeys as store;

/// How long a ceremony (the browser asking the authenticator) may take.
pub const CEREMONY: Duration = Duration::from_secs(5 * 60);
/// Longest passkey name, in characters.
pub const MAX_NAME_CHARS: usize = 60;
/// Most passkeys one account may have.
pub const MAX_PER_MEMBER: usize = 20;
/// Largest credential (JSON from the browser) read, in bytes.
pub const MAX_CREDENTIAL_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    /// Passkeys cannot work at this address (why).
    #[error("{0}")]
    Unavailable(String),
    /// The browser's answer does not prove what it must (expired, forged, another site's, an
    /// unknown passkey): the caller must not tell which.
    #[error("the passkey was not accepted")]
    Refused,
    /// A field is not acceptable (why).
    #[error("{0}")]
    Invalid(String),
    #[error("too many failed sign-ins; try again later")]
    Throttled,
    #[error(transparent)]
    Staff(#[from] StaffError),
}

staff_ops::internal_through_staff_error!(PasskeyError);

impl From<staff_ops::LoginError> for PasskeyError {
    fn from(e: staff_ops::LoginError) -> Self {
        match e {
            staff_ops::LoginError::Internal(e) => Self::Staff(e.into()),
            _ => Self::Throttled,
        }
    }
}

/// Whether passkeys work at `server.base_url`: `Err` says why not.
pub fn available(settings: &Settings) -> Result<(), String> {
    let base = &settings.server.base_url;
    let host = base.host();
    if host.parse::<IpAddr>().is_ok() || host.starts_with('[') {
        return Err(format!(
            "Passkeys need the service at a domain name: server.base_url names the address {host}."
        ));
    }
    if !base.is_https() && host != "localhost" {
        return Err(
            "Passkeys need the service on https (server.base_url starts with http://).".into(),
        );
    }
    Ok(())
}

fn webauthn(settings: &Settings) -> Result<Webauthn, PasskeyError> {
    available(settings).map_err(PasskeyError::Unavailable)?;
    let origin = url::Url::parse(settings.server.base_url.origin())
        .map_err(|e| PasskeyError::Unavailable(format!("server.base_url: {e}")))?;
    let rp_id = settings.server.base_url.host().to_owned();
    let name = settings
        .mail
        .from
        .name
        .clone()
        .unwrap_or_else(|| "newsletter".into());
    WebauthnBuilder::new(&rp_id, &origin)
        .and_then(|b| b.rp_name(&name).build())
        .map_err(|e| PasskeyError::Unavailable(format!("passkeys at {origin}: {e}")))
}

fn ceremony_hash(id: &str) -> Option<[u8; 32]> {
    Token::parse(id).ok().map(|t| t.hash().0)
}

async fn save<T: serde::Serialize>(
    pool: &PgPool,
    staff_id: Option<Uuid>,
    kind: &str,
    state: &T,
) -> Result<String, PasskeyError> {
    let id = Token::generate();
    let state = serde_json::to_value(state).map_err(anyhow::Error::from)?;
    store::save_ceremony(pool, &id.hash().0, staff_id, kind, &state, CEREMONY).await?;
    Ok(id.as_str().to_owned())
}

async fn take<T: serde::de::DeserializeOwned>(
    pool: &PgPool,
    ceremony: &str,
    kind: &str,
) -> Result<(Option<Uuid>, T), PasskeyError> {
    let hash = ceremony_hash(ceremony).ok_or(PasskeyError::Refused)?;
    let (staff_id, state) = store::take_ceremony(pool, &hash, kind, CEREMONY)
        .await?
        .ok_or(PasskeyError::Refused)?;
    let state = serde_json::from_value(state).map_err(anyhow::Error::from)?;
    Ok((staff_id, state))
}

fn parse_credential<T: serde::de::DeserializeOwned>(raw: &str) -> Result<T, PasskeyError> {
    if raw.len() > MAX_CREDENTIAL_BYTES {
        return Err(PasskeyError::Invalid(format!(
            "credential: more than {MAX_CREDENTIAL_BYTES} bytes"
        )));
    }
    serde_json::from_str(raw).map_err(|_| PasskeyError::Refused)
}

fn passkeys_of(stored: &[store::StoredPasskey]) -> Vec<Passkey> {
    stored
        .iter()
        .filter_map(|p| serde_json::from_value(p.credential.clone()).ok())
        .collect()
}

/// The browser's answer to a ceremony: the ceremony's id and the credential (JSON, as
/// `static/admin-passkeys.js` encodes it: binary fields in base64url).
pub struct Answer<'a> {
    pub ceremony: &'a str,
    pub credential: &'a str,
}

/// A ceremony's options for the browser (`navigator.credentials.create`/`get`'s `publicKey`,
/// binary fields in base64url) and the id to send back with its answer.
pub struct Ceremony {
    pub options: Value,
    pub id: String,
}

/// Starts registering a passkey for the acting member (a discoverable credential with user
/// verification; the member's other passkeys are excluded).
pub async fn begin_registration(
    pool: &PgPool,
    settings: &Settings,
    actor: &Actor,
    member: &StaffMember,
    session: &Token,
) -> Result<Ceremony, PasskeyError> {
    let webauthn = webauthn(settings)?;
    let staff_id = staff_ops::own_account(actor)?;
    staff_ops::require_recent_sign_in(pool, session).await?;
    let existing = store::of_member(pool, staff_id).await?;
    if existing.len() >= MAX_PER_MEMBER {
        return Err(PasskeyError::Invalid(format!(
            "You have {MAX_PER_MEMBER} passkeys, the most an account may have: remove one first."
        )));
    }
    let exclude = passkeys_of(&existing)
        .iter()
        .map(|p| p.cred_id().clone())
        .collect::<Vec<_>>();
    let (options, state) = webauthn
        .start_passkey_registration(staff_id, &member.email, &member.email, Some(exclude))
        .map_err(|e| anyhow::anyhow!("starting a passkey registration: {e}"))?;
    let mut options = serde_json::to_value(options.public_key).map_err(anyhow::Error::from)?;
    // A passkey that signs in alone must be discoverable (a "resident key"); webauthn-rs asks
    // for none, and its finishing step does not depend on it.
    options["authenticatorSelection"]["residentKey"] = "required".into();
    options["authenticatorSelection"]["requireResidentKey"] = true.into();
    let id = save::<PasskeyRegistration>(pool, Some(staff_id), "register", &state).await?;
    Ok(Ceremony { options, id })
}

/// Finishes a registration: the passkey, named `name`, is the member's from now on; this session
/// counts as having given a second factor (the authenticator verified the person) and goes on
/// under a new id (returned, for the cookie). Only within [`staff_ops::RECENT_SIGN_IN`] of the
/// session's sign-in. Audited (`passkey-add`); the member is told by mail.
pub async fn finish_registration(
    pool: &PgPool,
    settings: &Settings,
    actor: &Actor,
    answer: &Answer<'_>,
    name: &str,
    session: &Token,
) -> Result<SessionId, PasskeyError> {
    let staff_id = staff_ops::own_account(actor)?;
    staff_ops::require_recent_sign_in(pool, session).await?;
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || crate::domain::text::check_line("name", name).is_err()
    {
        return Err(PasskeyError::Invalid(format!(
            "name: a passkey's name has 1 to {MAX_NAME_CHARS} characters, on one line (e.g. \"Work laptop\")."
        )));
    }
    let webauthn = webauthn(settings)?;
    let credential: RegisterPublicKeyCredential = parse_credential(answer.credential)?;
    let (owner, state) = take::<PasskeyRegistration>(pool, answer.ceremony, "register").await?;
    if owner != Some(staff_id) {
        return Err(PasskeyError::Refused);
    }
    let passkey = webauthn
        .finish_passkey_registration(&credential, &state)
        .map_err(|e| {
            tracing::info!(error = %e, "a passkey registration was refused");
            PasskeyError::Refused
        })?;
    let stored = serde_json::to_value(&passkey).map_err(anyhow::Error::from)?;
    let mut tx = pool.begin().await?;
    if !store::insert(
        &mut *tx,
        staff_id,
        name,
        passkey.cred_id().as_ref(),
        &stored,
    )
    .await?
    {
        return Err(PasskeyError::Invalid(
            "This passkey is registered already.".into(),
        ));
    }
    let renewed = staff_ops::gain_second_factor(&mut *tx, session).await?;
    audit::record(
        &mut *tx,
        actor,
        "passkey-add",
        None,
        json!({ "name": name }),
    )
    .await?;
    tx.commit().await?;
    if let Actor::Staff { email, .. } = actor {
        let what = format!("A passkey named \"{name}\" was added");
        staff_ops::notify_account_change(pool, settings, email, &what).await?;
    }
    Ok(renewed)
}

/// A passkey as the account page lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PasskeyInfo {
    pub id: Uuid,
    pub name: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The acting member's passkeys.
pub async fn list(pool: &PgPool, actor: &Actor) -> Result<Vec<PasskeyInfo>, StaffError> {
    let staff_id = staff_ops::own_account(actor)?;
    Ok(store::of_member(pool, staff_id)
        .await?
        .into_iter()
        .map(|p| PasskeyInfo {
            id: p.id,
            name: p.name,
            created_at: p.created_at,
            last_used_at: p.last_used_at,
        })
        .collect())
}

/// Removes one of the acting member's passkeys. Audited (`passkey-remove`); the member is told
/// by mail.
pub async fn remove(
    pool: &PgPool,
    settings: &Settings,
    actor: &Actor,
    id: Uuid,
) -> Result<(), StaffError> {
    let staff_id = staff_ops::own_account(actor)?;
    let mut tx = pool.begin().await?;
    let Some(name) = store::remove(&mut *tx, staff_id, id).await? else {
        return Err(StaffError::NotFound(
            "that passkey (it was removed already)".into(),
        ));
    };
    audit::record(
        &mut *tx,
        actor,
        "passkey-remove",
        None,
        json!({ "name": name }),
    )
    .await?;
    tx.commit().await?;
    if let Actor::Staff { email, .. } = actor {
        let what = format!("The passkey named \"{name}\" was removed");
        staff_ops::notify_account_change(pool, settings, email, &what).await?;
    }
    Ok(())
}

/// Starts a sign-in with a passkey alone: the browser offers the passkeys it holds for this
/// site.
pub async fn begin_sign_in(pool: &PgPool, settings: &Settings) -> Result<Ceremony, PasskeyError> {
    let webauthn = webauthn(settings)?;
    let (options, state) = webauthn
        .start_discoverable_authentication()
        .map_err(|e| anyhow::anyhow!("starting a passkey sign-in: {e}"))?;
    let id = save::<DiscoverableAuthentication>(pool, None, "authenticate", &state).await?;
    Ok(Ceremony {
        options: serde_json::to_value(options.public_key).map_err(anyhow::Error::from)?,
        id,
    })
}

/// The pseudo account failed passkey sign-ins are counted under: only the client's count
/// throttles them (a shared count would let anyone lock passkeys for all).
const PASSKEY_ATTEMPTS: &str = "passkey@passkey.invalid";

/// Finishes a sign-in with a passkey alone: the member whose passkey it is, the passkey's
/// use noted. Failures count against the client (`admin.login_failures_per_ip`) and are
/// audited (`sign-in-refused`).
pub async fn finish_sign_in(
    pool: &PgPool,
    settings: &Settings,
    logins: &Logins,
    answer: &Answer<'_>,
    ip: Option<IpAddr>,
) -> Result<Uuid, PasskeyError> {
    let webauthn = webauthn(settings)?;
    let pseudo = EmailAddress::parse(PASSKEY_ATTEMPTS).map_err(|e| anyhow::anyhow!(e))?;
    let attempt = staff_ops::attempt_by_client(pool, logins, &pseudo, ip).await?;
    let result = async {
        let credential: PublicKeyCredential = parse_credential(answer.credential)?;
        let (_, state) =
            take::<DiscoverableAuthentication>(pool, answer.ceremony, "authenticate").await?;
        let (user, credential_id) = webauthn
            .identify_discoverable_authentication(&credential)
            .map_err(|_| PasskeyError::Refused)?;
        let stored = store::by_credential_id(pool, credential_id)
            .await?
            .filter(|p| p.staff_id == user)
            .ok_or(PasskeyError::Refused)?;
        let mut passkey: Passkey =
            serde_json::from_value(stored.credential.clone()).map_err(anyhow::Error::from)?;
        let key = DiscoverableKey::from(&passkey);
        let outcome = webauthn
            .finish_discoverable_authentication(&credential, state, &[key])
            .map_err(|_| PasskeyError::Refused)?;
        passkey.update_credential(&outcome);
        let updated = serde_json::to_value(&passkey).map_err(anyhow::Error::from)?;
        store::used(pool, stored.id, &updated).await?;
        Ok::<_, PasskeyError>(stored.staff_id)
    }
    .await;
    match result {
        Ok(staff_id) => {
            staff_ops::succeeded(pool, attempt).await?;
            Ok(staff_id)
        }
        Err(e @ PasskeyError::Refused) => {
            refused(pool, ip).await?;
            Err(e)
        }
        Err(e) => Err(e),
    }
}

async fn refused(pool: &PgPool, ip: Option<IpAddr>) -> anyhow::Result<()> {
    tracing::info!("a passkey sign-in was refused");
    let entry = crate::store::audit::NewEntry {
        actor: "unknown",
        staff_id: None,
        action: "sign-in-refused",
        subject: None,
        detail: json!({ "method": "passkey", "ip": ip }),
    };
    crate::store::audit::append(pool, entry).await?;
    Ok(())
}

/// Starts a passkey as the second step of `member`'s sign-in (their passkeys only).
pub async fn begin_second_factor(
    pool: &PgPool,
    settings: &Settings,
    member: &StaffMember,
) -> Result<Ceremony, PasskeyError> {
    let webauthn = webauthn(settings)?;
    let passkeys = passkeys_of(&store::of_member(pool, member.id).await?);
    if passkeys.is_empty() {
        return Err(PasskeyError::Invalid("You have no passkey.".into()));
    }
    let (options, state) = webauthn
        .start_passkey_authentication(&passkeys)
        .map_err(|e| anyhow::anyhow!("starting a passkey check: {e}"))?;
    let id = save::<PasskeyAuthentication>(pool, Some(member.id), "authenticate", &state).await?;
    Ok(Ceremony {
        options: serde_json::to_value(options.public_key).map_err(anyhow::Error::from)?,
        id,
    })
}

/// Finishes a passkey as the second step of `member`'s sign-in, whose session is `session`: it
/// goes on under a new id (returned, for the cookie). Throttled and audited as a wrong code is.
pub async fn finish_second_factor(
    pool: &PgPool,
    settings: &Settings,
    logins: &Logins,
    member: &StaffMember,
    answer: &Answer<'_>,
    ip: Option<IpAddr>,
    session: &Token,
) -> Result<SessionId, PasskeyError> {
    let webauthn = webauthn(settings)?;
    let email = EmailAddress::parse(&member.email).map_err(|e| anyhow::anyhow!(e))?;
    let actor = Actor::Staff {
        id: member.id,
        role: member.role,
        email: member.email.clone(),
    };
    let attempt = staff_ops::attempt(pool, logins, &email, ip).await?;
    let result = async {
        let credential: PublicKeyCredential = parse_credential(answer.credential)?;
        let (owner, state) =
            take::<PasskeyAuthentication>(pool, answer.ceremony, "authenticate").await?;
        if owner != Some(member.id) {
            return Err(PasskeyError::Refused);
        }
        let outcome = webauthn
            .finish_passkey_authentication(&credential, &state)
            .map_err(|_| PasskeyError::Refused)?;
        let stored = store::by_credential_id(pool, outcome.cred_id().as_ref())
            .await?
            .filter(|p| p.staff_id == member.id)
            .ok_or(PasskeyError::Refused)?;
        let mut passkey: Passkey =
            serde_json::from_value(stored.credential.clone()).map_err(anyhow::Error::from)?;
        passkey.update_credential(&outcome);
        let updated = serde_json::to_value(&passkey).map_err(anyhow::Error::from)?;
        store::used(pool, stored.id, &updated).await?;
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            staff_ops::succeeded(pool, attempt).await?;
            let renewed = staff_ops::gain_second_factor(pool, session).await?;
            audit::record(
                pool,
                &actor,
                "second-factor",
                None,
                json!({ "method": "passkey", "ip": ip }),
            )
            .await?;
            Ok(renewed)
        }
        Err(e @ PasskeyError::Refused) => {
            audit::record(
                pool,
                &actor,
                "second-factor-failed",
                None,
                json!({ "method": "passkey", "ip": ip }),
            )
            .await?;
            Err(e)
        }
        Err(e) => Err(e),
    }
}
