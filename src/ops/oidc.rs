//! Single sign-on for the staff area through an OpenID Provider (`[oidc]`).
//!
//! The authorization code flow with PKCE (S256), `state` and `nonce`, through the
//! `openidconnect` crate, which reads the provider's discovery document and keys and checks the
//! ID token: its signature, issuer, audience, expiry and nonce. The rules here: a sign-in on its
//! way is kept only as hashes (the SHA-256 of its `state` and of a random cookie that ties it to
//! the browser that started it; the nonce and the PKCE verifier are derived from the state with
//! `security.secret_key`), serves once and lives [`PENDING_FOR`]; the e-mail address the
//! provider gives (`oidc.email_claim`) is trusted only when the provider says it verified it,
//! and only in `oidc.allowed_domains`, spelt as a password login spells it
//! (`domain::EmailAddress`); an address with no staff account gets one with
//! `oidc.default_role` when that is set, else it is refused; and the provider's `amr` decides
//! whether the sign-in counts as both factors ([`both_factors`]). Every refusal is audited
//! (`sign-in-refused`, with `"method": "oidc"` and the reason, without tokens); the session, its
//! `sign-in` entry and the second factor's rule are `staff::sign_in`'s, as for every method.
//! Refusals count as failed logins from the client's IP (`admin.login_failures_per_ip` in
//! `admin.login_window_minutes`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, TokenResponse,
};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use super::staff::{self as staff_ops, LoginError, Logins};
use crate::config::{OidcSettings, Secret, Settings};
use crate::domain::{EmailAddress, NewPassword, StaffRole, Token};
use crate::limits::IpRateLimiter;
use crate::store::audit::NewEntry;
use crate::store::{oidc as store, staff as staff_store};

/// How long a sign-in may take at the provider.
pub const PENDING_FOR: Duration = Duration::from_secs(600);
/// How long the provider's discovery document and keys are used before they are read again
/// (a provider rotates its signing keys).
const READ_AGAIN_AFTER: Duration = Duration::from_secs(3600);
/// The longest wait for the provider (discovery, keys, token endpoint).
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
/// Sign-ins one client may start in a minute.
const STARTS_PER_MINUTE: u32 = 30;
/// The account name refused sign-ins are counted under (only the client's IP count throttles).
const FAILURES_ACCOUNT: &str = "single-sign-on@oidc.invalid";
/// Who the audit log names when a refused sign-in gave no address.
const UNKNOWN_ACTOR: &str = "single sign-on";

type ProviderClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Whether the provider's `amr` (RFC 8176) says the member proved two factors: `mfa`, or a
/// knowledge factor (`pwd`, `pin`, `kba`) with a possession factor (`otp`, `hwk`, `swk`, `sms`,
/// `sc`). No `amr`, or one factor: false, and the service's own second factor applies.
pub fn both_factors(amr: &[String]) -> bool {
    let any = |methods: &[&str]| amr.iter().any(|m| methods.contains(&m.as_str()));
    any(&["mfa"]) || (any(&["pwd", "pin", "kba"]) && any(&["otp", "hwk", "swk", "sms", "sc"]))
}

/// Why a sign-in through the provider was refused: its audit `reason` and what the page says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The provider answered with an error (`error=access_denied`, ...).
    ProviderError,
    /// No sign-in on its way has this `state` (never started here, used already, or forged).
    UnknownState,
    /// Started more than [`PENDING_FOR`] ago.
    Expired,
    /// Started in another browser (its cookie is missing or another).
    OtherBrowser,
    /// The callback's `iss` is not the configured issuer.
    WrongIssuer,
    /// The callback has no `code`.
    NoCode,
    /// The token endpoint refused the code.
    CodeRefused,
    NoIdToken,
    /// The ID token's signature does not verify with the provider's keys.
    BadSignature,
    /// The ID token's nonce is not this sign-in's.
    WrongNonce,
    /// Issuer, audience, expiry or another check of the ID token failed.
    BadIdToken,
    /// No address in `oidc.email_claim`, or not an address.
    NoEmail,
    /// The provider does not say it verified the address.
    EmailUnverified,
    DomainNotAllowed,
    /// No staff account, and `oidc.default_role` is "".
    UnknownMember,
}

impl Reason {
    /// As the audit log records it.
    pub fn code(self) -> &'static str {
        match self {
            Self::ProviderError => "provider-error",
            Self::UnknownState => "unknown-state",
            Self::Expired => "expired",
            Self::OtherBrowser => "other-browser",
            Self::WrongIssuer => "wrong-issuer",
            Self::NoCode => "no-code",
            Self::CodeRefused => "code-refused",
            Self::NoIdToken => "no-id-token",
            Self::BadSignature => "bad-signature",
            Self::WrongNonce => "wrong-nonce",
            Self::BadIdToken => "bad-id-token",
            Self::NoEmail => "no-email",
            Self::EmailUnverified => "email-unverified",
            Self::DomainNotAllowed => "domain-not-allowed",
            Self::UnknownMember => "unknown-member",
        }
    }

    /// Whether the person is known and not let in (`403`), rather than the sign-in being broken
    /// or forged on its way (`400`).
    pub fn is_forbidden(self) -> bool {
        matches!(
            self,
            Self::EmailUnverified | Self::DomainNotAllowed | Self::UnknownMember
        )
    }
}

/// A refused sign-in.
#[derive(Debug)]
pub struct Refusal {
    pub reason: Reason,
    /// The address the provider gave, once known (canonical).
    email: Option<String>,
    /// What the audit log adds: the provider's error code, which check of the ID token failed.
    detail: Option<String>,
}

impl Refusal {
    fn new(reason: Reason) -> Self {
        Self {
            reason,
            email: None,
            detail: None,
        }
    }
    fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
    fn of(mut self, email: &str) -> Self {
        self.email = Some(email.to_owned());
        self
    }

    /// What the page tells the person, in plain words.
    pub fn message(&self) -> String {
        let again = "Go back to the login page and start again.";
        let address = self.email.as_deref().unwrap_or("this address");
        match self.reason {
            Reason::ProviderError => format!(
                "The sign-in provider did not sign you in ({}). {again}",
                self.detail.as_deref().unwrap_or("no reason given")
            ),
            Reason::UnknownState | Reason::OtherBrowser | Reason::NoCode => format!(
                "This sign-in was not started in this browser, or it was used already. {again}"
            ),
            Reason::Expired => format!("This sign-in took more than 10 minutes. {again}"),
            Reason::WrongIssuer
            | Reason::CodeRefused
            | Reason::NoIdToken
            | Reason::BadSignature
            | Reason::WrongNonce
            | Reason::BadIdToken => format!(
                "The answer from the sign-in provider could not be verified, so it was not trusted. {again}"
            ),
            Reason::NoEmail => {
                "The sign-in provider did not give an e-mail address for your account, so you cannot sign in this way.".to_owned()
            }
            Reason::EmailUnverified => format!(
                "The sign-in provider does not say that {address} is verified, so it cannot sign in here."
            ),
            Reason::DomainNotAllowed => format!(
                "Addresses at {} may not sign in here.",
                address.rsplit_once('@').map_or(address, |(_, d)| d)
            ),
            Reason::UnknownMember => format!(
                "There is no staff account for {address}. An admin of this service adds staff on the Staff page."
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("sign-in refused: {}", .0.reason.code())]
    Refused(Refusal),
    /// The service waits for its first admin (`/admin/setup`).
    #[error("the first admin is not set up yet")]
    SetUpFirst,
    /// The provider cannot be reached, or its discovery document cannot be read.
    #[error("the sign-in provider cannot be reached")]
    Unavailable,
    /// Too many sign-ins started, or refused, from this client: try again after this long.
    #[error("too many sign-ins")]
    Throttled(Duration),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for OidcError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

impl From<Refusal> for OidcError {
    fn from(r: Refusal) -> Self {
        Self::Refused(r)
    }
}

/// A sign-in leaving for the provider: send the browser to `url`, holding `browser` in a cookie
/// for the callback.
pub struct Start {
    pub url: String,
    pub browser: Token,
}

/// What the provider sent back to the callback, as given (the first of each parameter).
#[derive(Debug, Default)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
}

/// A member of staff the provider vouched for.
#[derive(Debug)]
pub struct SignedIn {
    pub staff_id: Uuid,
    pub email: String,
    /// The provider's `amr` says two factors ([`both_factors`]).
    pub both_factors: bool,
}

/// What the verified ID token says.
struct Identity {
    email: EmailAddress,
    both_factors: bool,
}

/// The service's client of its OpenID Provider, one per process.
pub struct SingleSignOn {
    settings: OidcSettings,
    secret_key: Secret,
    redirect: RedirectUrl,
    http: reqwest::Client,
    /// The client made from the discovery document, and when it was read; `None` until a read
    /// succeeds.
    provider: tokio::sync::Mutex<Option<(Arc<ProviderClient>, Instant)>>,
    starts: IpRateLimiter,
}

impl SingleSignOn {
    /// `None` when `[oidc]` is not enabled.
    pub fn new(settings: &Settings) -> anyhow::Result<Option<Self>> {
        let Some(oidc) = &settings.oidc else {
            return Ok(None);
        };
        let redirect =
            RedirectUrl::new(settings.server.base_url.join("/admin/login/oidc/callback"))
                .context("the redirect URI made from server.base_url")?;
        // Never follow a redirect: every URL we call comes from the discovery document.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIMEOUT)
            .build()
            .context("building the HTTP client for the OpenID Provider")?;
        Ok(Some(Self {
            settings: oidc.clone(),
            secret_key: settings.security.secret_key.clone(),
            redirect,
            http,
            provider: tokio::sync::Mutex::new(None),
            starts: IpRateLimiter::per_minute(STARTS_PER_MINUTE, settings.server.ipv6_limit_prefix),
        }))
    }

    /// The login page's button.
    pub fn button_label(&self) -> &str {
        &self.settings.button_label
    }

    /// Reads the discovery document at start. A provider that cannot be reached is logged, and
    /// read again at the first sign-in.
    pub async fn read_at_start(&self) {
        if self.client().await.is_ok() {
            tracing::info!(issuer = %self.settings.issuer, "OpenID Provider discovered");
        }
    }

    /// The client, from the discovery document read at most [`READ_AGAIN_AFTER`] ago (read
    /// now when there is none or it is older; an older one is kept while the provider cannot be
    /// reached).
    async fn client(&self) -> Result<Arc<ProviderClient>, OidcError> {
        let mut cached = self.provider.lock().await;
        if let Some((client, read_at)) = cached.as_ref() {
            if read_at.elapsed() < READ_AGAIN_AFTER {
                return Ok(Arc::clone(client));
            }
        }
        match self.discover().await {
            Ok(client) => {
                let client = Arc::new(client);
                *cached = Some((Arc::clone(&client), Instant::now()));
                Ok(client)
            }
            Err(e) => {
                tracing::warn!(
                    issuer = %self.settings.issuer,
                    error = format!("{e:#}"),
                    "reading the OpenID Provider's discovery document failed; trying again at the next sign-in"
                );
                match cached.as_mut() {
                    Some((client, read_at)) => {
                        *read_at = Instant::now();
                        Ok(Arc::clone(client))
                    }
                    None => Err(OidcError::Unavailable),
                }
            }
        }
    }

    async fn discover(&self) -> anyhow::Result<ProviderClient> {
        let issuer = IssuerUrl::new(self.settings.issuer.clone()).context("oidc.issuer")?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .context("reading the discovery document and keys")?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.settings.client_id.clone()),
            Some(ClientSecret::new(
                self.settings.client_secret.expose().to_owned(),
            )),
        )
        .set_redirect_uri(self.redirect.clone()))
    }

    /// The nonce and PKCE verifier of the sign-in with `state`: derived, never stored.
    fn secrets_of(&self, state: &str) -> (Nonce, PkceCodeVerifier) {
        let key = self.secret_key.expose().as_bytes();
        let nonce = Token::derive(key, "oidc-nonce", state);
        let verifier = Token::derive(key, "oidc-pkce-verifier", state);
        (
            Nonce::new(nonce.as_str().to_owned()),
            PkceCodeVerifier::new(verifier.as_str().to_owned()),
        )
    }

    /// Starts a sign-in: where to send the browser, and the cookie it must bring back.
    pub async fn start(&self, pool: &PgPool, ip: Option<IpAddr>) -> Result<Start, OidcError> {
        self.starts.check(ip).map_err(OidcError::Throttled)?;
        if !staff_store::any(pool).await? {
            return Err(OidcError::SetUpFirst);
        }
        let client = self.client().await?;
        let state = Token::generate();
        let browser = Token::generate();
        let (nonce, verifier) = self.secrets_of(state.as_str());
        let state_value = state.as_str().to_owned();
        let (url, _, _) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || CsrfToken::new(state_value),
                move || nonce,
            )
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(PkceCodeChallenge::from_code_verifier_sha256(&verifier))
            .url();
        store::insert_pending(pool, &state.hash(), &browser.hash(), PENDING_FOR).await?;
        Ok(Start {
            url: url.to_string(),
            browser,
        })
    }

    /// Finishes a sign-in from the provider's answer and the browser's cookie: the member, or
    /// why not (audited, and counted as a failed login from `ip`).
    pub async fn finish(
        &self,
        pool: &PgPool,
        logins: &Logins,
        callback: Callback,
        browser: Option<&str>,
        ip: Option<IpAddr>,
    ) -> Result<SignedIn, OidcError> {
        // Counted as a failure from the client before it is checked, as every sign-in is, and
        // forgotten again unless it is refused.
        let failures = EmailAddress::parse(FAILURES_ACCOUNT).map_err(|e| anyhow::anyhow!(e))?;
        let attempt = staff_ops::attempt_by_client(pool, logins, &failures, ip)
            .await
            .map_err(|e| match e {
                LoginError::Internal(e) => OidcError::Internal(e),
                _ => OidcError::Throttled(logins.settings().login_window),
            })?;
        let outcome = match self.verify(pool, callback, browser).await {
            Ok(identity) => self.admit(pool, identity).await,
            Err(e) => Err(e),
        };
        if !matches!(outcome, Err(OidcError::Refused(_))) {
            staff_ops::succeeded(pool, attempt)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
        }
        if let Err(OidcError::Refused(refusal)) = &outcome {
            tracing::info!(reason = refusal.reason.code(), "single sign-on refused");
            let entry = NewEntry {
                actor: refusal.email.as_deref().unwrap_or(UNKNOWN_ACTOR),
                staff_id: None,
                action: "sign-in-refused",
                subject: None,
                detail: json!({
                    "method": "oidc",
                    "reason": refusal.reason.code(),
                    "detail": refusal.detail,
                    "ip": ip,
                }),
            };
            crate::store::audit::append(pool, entry).await?;
        }
        outcome
    }

    /// The identity in the provider's answer, once every check passed.
    async fn verify(
        &self,
        pool: &PgPool,
        callback: Callback,
        browser: Option<&str>,
    ) -> Result<Identity, OidcError> {
        // The state is taken first, whatever else the answer says: it serves once.
        let state = callback
            .state
            .as_deref()
            .and_then(|s| Token::parse(s).ok())
            .ok_or_else(|| Refusal::new(Reason::UnknownState))?;
        let pending = store::take_pending(pool, &state.hash(), PENDING_FOR).await?;
        if let Some(error) = &callback.error {
            let code: String = error
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect();
            return Err(Refusal::new(Reason::ProviderError).detail(code).into());
        }
        let pending = pending.ok_or_else(|| Refusal::new(Reason::UnknownState))?;
        if !pending.fresh {
            return Err(Refusal::new(Reason::Expired).into());
        }
        let same_browser = browser
            .and_then(|b| Token::parse(b).ok())
            .is_some_and(|b| b.hash() == pending.browser);
        if !same_browser {
            return Err(Refusal::new(Reason::OtherBrowser).into());
        }
        // RFC 9207: a provider that names itself must be ours (a mix-up of providers).
        if callback
            .iss
            .as_deref()
            .is_some_and(|iss| iss != self.settings.issuer)
        {
            return Err(Refusal::new(Reason::WrongIssuer).into());
        }
        let code = callback.code.ok_or_else(|| Refusal::new(Reason::NoCode))?;
        let client = self.client().await?;
        let (nonce, verifier) = self.secrets_of(state.as_str());
        let answer = client
            .exchange_code(AuthorizationCode::new(code))
            .context("the provider's discovery document names no token endpoint")?
            .set_pkce_verifier(verifier)
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(r) => Refusal::new(Reason::CodeRefused)
                    .detail(r.error().to_string())
                    .into(),
                RequestTokenError::Request(e) => {
                    tracing::warn!(error = %e, "the OpenID Provider's token endpoint cannot be reached");
                    OidcError::Unavailable
                }
                RequestTokenError::Parse(..) | RequestTokenError::Other(_) => {
                    Refusal::new(Reason::CodeRefused)
                        .detail("unreadable answer")
                        .into()
                }
            })?;
        let id_token = answer
            .id_token()
            .ok_or_else(|| Refusal::new(Reason::NoIdToken))?;
        id_token
            .claims(&client.id_token_verifier(), &nonce)
            .map_err(|e| match e {
                ClaimsVerificationError::SignatureVerification(_) => {
                    Refusal::new(Reason::BadSignature)
                }
                ClaimsVerificationError::InvalidNonce(_) => Refusal::new(Reason::WrongNonce),
                other => Refusal::new(Reason::BadIdToken).detail(check_of(&other)),
            })?;
        // The token's claims as signed: its signature checked out over exactly these bytes.
        let payload = id_token
            .to_string()
            .split('.')
            .nth(1)
            .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
            .and_then(|p| serde_json::from_slice::<Value>(&p).ok())
            .ok_or_else(|| Refusal::new(Reason::BadIdToken).detail("unreadable claims"))?;
        let raw = payload
            .get(&self.settings.email_claim)
            .and_then(Value::as_str)
            .ok_or_else(|| Refusal::new(Reason::NoEmail))?;
        let email = EmailAddress::parse(raw)
            .map_err(|_| Refusal::new(Reason::NoEmail).detail("not an e-mail address"))?;
        let canonical = email.canonical();
        let verified = ["email_verified", "xms_edov"]
            .iter()
            .any(|claim| is_true(payload.get(*claim)));
        if !verified {
            return Err(Refusal::new(Reason::EmailUnverified).of(canonical).into());
        }
        let domains = &self.settings.allowed_domains;
        if !domains.is_empty() && !domains.iter().any(|d| d == email.domain()) {
            return Err(Refusal::new(Reason::DomainNotAllowed).of(canonical).into());
        }
        let amr: Vec<String> = payload
            .get("amr")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Identity {
            both_factors: both_factors(&amr),
            email,
        })
    }

    /// The member with the identity's address, made with `oidc.default_role` at their first
    /// sign-in when that is set.
    async fn admit(&self, pool: &PgPool, identity: Identity) -> Result<SignedIn, OidcError> {
        let email = &identity.email;
        let canonical = email.canonical();
        let staff_id = match staff_store::credentials(pool, email).await? {
            Some((id, _)) => id,
            None => {
                let role = self
                    .settings
                    .default_role
                    .ok_or_else(|| Refusal::new(Reason::UnknownMember).of(canonical))?;
                match self.add_member(pool, email, role).await? {
                    Some(id) => id,
                    // Made meanwhile by another sign-in.
                    None => staff_store::credentials(pool, email)
                        .await?
                        .map(|(id, _)| id)
                        .ok_or_else(|| Refusal::new(Reason::UnknownMember).of(canonical))?,
                }
            }
        };
        tracing::info!(%staff_id, both_factors = identity.both_factors, "staff vouched for by the OpenID Provider");
        Ok(SignedIn {
            staff_id,
            email: canonical.to_owned(),
            both_factors: identity.both_factors,
        })
    }

    /// Adds a member with `role` and a random password nobody knows (they sign in through the
    /// provider; an admin can give them a password), audited as `staff-add` by single sign-on.
    /// `None` when the address has an account already.
    async fn add_member(
        &self,
        pool: &PgPool,
        email: &EmailAddress,
        role: StaffRole,
    ) -> anyhow::Result<Option<Uuid>> {
        let hash = tokio::task::spawn_blocking(|| NewPassword::generate().hash())
            .await
            .context("hashing a random password")?;
        let mut tx = pool.begin().await?;
        let Some(id) = staff_store::insert(&mut *tx, email, role, &hash).await? else {
            return Ok(None);
        };
        let entry = NewEntry {
            actor: email.canonical(),
            staff_id: Some(id),
            action: "staff-add",
            subject: Some(email.canonical()),
            detail: json!({ "role": role.as_str(), "by": "single sign-on" }),
        };
        crate::store::audit::append(&mut *tx, entry).await?;
        tx.commit().await?;
        tracing::info!(staff_id = %id, role = role.as_str(), "staff account made at its first single sign-on");
        Ok(Some(id))
    }
}

/// A claim that says yes: `true`, or `"true"` as some providers write it.
fn is_true(claim: Option<&Value>) -> bool {
    matches!(claim, Some(Value::Bool(true))) || claim.and_then(Value::as_str) == Some("true")
}

/// Which check of the ID token failed, for the audit log (not the crate's message, which may
/// quote the token).
fn check_of(e: &ClaimsVerificationError) -> &'static str {
    match e {
        ClaimsVerificationError::Expired(_) => "expired",
        ClaimsVerificationError::InvalidAudience(_) => "audience",
        ClaimsVerificationError::InvalidIssuer(_) => "issuer",
        ClaimsVerificationError::InvalidAuthContext(_) => "acr",
        ClaimsVerificationError::InvalidAuthTime(_) => "auth_time",
        ClaimsVerificationError::InvalidSubject(_) => "subject",
        ClaimsVerificationError::Unsupported(_) => "unsupported",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amr(methods: &[&str]) -> Vec<String> {
        methods.iter().map(|m| (*m).to_owned()).collect()
    }

    #[test]
    fn mfa_alone_is_both_factors() {
        assert!(both_factors(&amr(&["mfa"])));
        assert!(both_factors(&amr(&["pwd", "mfa"])));
    }

    #[test]
    fn a_knowledge_factor_with_a_possession_factor_is_both() {
        for knowledge in ["pwd", "pin", "kba"] {
            for possession in ["otp", "hwk", "swk", "sms", "sc"] {
                assert!(
                    both_factors(&amr(&[possession, knowledge])),
                    "{knowledge} + {possession}"
                );
            }
        }
    }

    #[test]
    fn one_factor_or_none_is_not_both() {
        for methods in [
            &[][..],
            &["pwd"],
            &["otp"],
            &["pwd", "pin"],
            &["hwk", "sc"],
            &["fpt", "face"],
            &["MFA"],
            &["user"],
        ] {
            assert!(!both_factors(&amr(methods)), "{methods:?}");
        }
    }

    #[test]
    fn every_refusal_has_a_message_without_placeholders() {
        let refusal = |reason| Refusal::new(reason).of("ann@evil-example.org");
        assert!(refusal(Reason::DomainNotAllowed)
            .message()
            .contains("at evil-example.org"));
        assert!(refusal(Reason::UnknownMember)
            .message()
            .contains("ann@evil-example.org"));
        assert!(Refusal::new(Reason::ProviderError)
            .detail("access_denied")
            .message()
            .contains("(access_denied)"));
    }
}
