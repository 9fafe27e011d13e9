//! The staff area under `/admin`: server-rendered pages (`templates/admin/`), no inline script.
//!
//! The doors into it are here: [`CurrentStaff`] (a live session; GETs without one are sent to
//! the login page) and [`AdminForm`] (a state-changing POST: a session, a valid `csrf_token`
//! field and, when the browser sends one, an `Origin` equal to `server.base_url`'s; else 403 and
//! nothing changes). Handlers call `ops::`, as the API and the CLI do; rules live there, not
//! here: who may do what is `ops::roles`, checked by each operation before anything else.

mod assets;
mod audit;
mod chart;
mod dashboard;
mod feeds;
mod imports;
mod lists;
mod login;
mod look;
mod news;
mod oidc;
mod pages;
mod passkeys;
mod staff;
mod subscribers;
mod templates;
mod tokens;
mod updates;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Router;

use crate::app::AppState;
use crate::domain::Token;
use crate::ops::staff::{StaffMember, Stage};
use crate::ops::Actor;

pub use pages::AdminPages;

/// Largest admin form body (an update with a long intro fits).
const MAX_FORM_BYTES: usize = 256 * 1024;

/// Admin pages run no inline script and cannot be framed; the preview route sets its own.
/// `connect-src 'self'`: the passkey script's requests to the service's own ceremonies.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-src 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .merge(login::router())
        .merge(oidc::router())
        .merge(dashboard::router())
        .merge(news::router())
        .merge(feeds::router())
        .merge(updates::router())
        .merge(staff::router())
        .merge(passkeys::router())
        .merge(subscribers::router())
        .merge(lists::router())
        .merge(templates::router())
        .merge(look::router())
        .merge(tokens::router())
        .merge(imports::router())
        .merge(audit::router())
        .merge(assets::router())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            pages_and_headers,
        ))
}

/// Renders [`AdminError`]s as pages and adds the admin security headers (a route that sets its
/// own CSP, the preview, keeps it).
async fn pages_and_headers(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    if let Some(error) = response.extensions_mut().remove::<ErrorPage>() {
        let retry_after = response.headers_mut().remove(header::RETRY_AFTER);
        response = state
            .admin_pages
            .message(response.status(), &error.title, &error.text);
        if let Some(value) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    response
}

/// What went wrong, as the staff area answers it (a page rendered by the admin middleware).
#[derive(Debug)]
pub enum AdminError {
    /// No live session: a GET goes to the login page.
    SignIn,
    /// A GET that must go elsewhere first (the second factor, enrolment).
    Redirect(&'static str),
    Forbidden(String),
    NotFound,
    Status(StatusCode, String),
    /// `429` with `Retry-After` (seconds).
    TooMany(String, u64),
    Internal(anyhow::Error),
}

#[derive(Clone)]
struct ErrorPage {
    title: String,
    text: String,
}

impl From<anyhow::Error> for AdminError {
    fn from(e: anyhow::Error) -> Self {
        Self::Internal(e)
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let retry_after = match &self {
            AdminError::TooMany(_, seconds) => Some(*seconds),
            _ => None,
        };
        let (status, title, text) = match self {
            AdminError::SignIn => return Redirect::to("/admin/login").into_response(),
            AdminError::Redirect(to) => return Redirect::to(to).into_response(),
            AdminError::Forbidden(text) => (StatusCode::FORBIDDEN, "Not allowed", text),
            AdminError::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing at this address.".into(),
            ),
            AdminError::Status(status, text) => (status, "Not done", text),
            AdminError::TooMany(text, _) => (StatusCode::TOO_MANY_REQUESTS, "Not now", text),
            AdminError::Internal(e) => return super::AppError(e).into_response(),
        };
        let mut response = status.into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(ErrorPage {
            title: title.into(),
            text,
        });
        response
    }
}

/// The value of cookie `name` in the request, if any.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A cookie name: with the `__Host-` prefix (which browsers accept only with `Secure`, `Path=/`
/// and no domain) when the service is on https.
fn cookie_name(state: &AppState, base: &str) -> String {
    if state.settings.server.base_url.is_https() {
        format!("__Host-{base}")
    } else {
        base.to_owned()
    }
}

/// `Set-Cookie` for `value` (an empty value with `Max-Age=0` removes the cookie).
fn set_cookie(state: &AppState, base: &str, value: Option<&str>) -> HeaderValue {
    match value {
        Some(v) => cookie_header(state, base, v, None),
        None => cookie_header(state, base, "", Some(0)),
    }
}

/// `Set-Cookie` for a cookie kept 400 days (the most browsers keep one), as [`set_cookie`]'s.
fn set_lasting_cookie(state: &AppState, base: &str, value: &str) -> HeaderValue {
    cookie_header(state, base, value, Some(400 * 24 * 3600))
}

/// `Set-Cookie` for cookie `base` (its name per [`cookie_name`]): `Path=/`, `HttpOnly`,
/// `SameSite=Lax`, `Secure` on https, and `Max-Age` (seconds) when given; else it lasts the
/// browser's session.
fn cookie_header(state: &AppState, base: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
    let secure = if state.settings.server.base_url.is_https() {
        "; Secure"
    } else {
        ""
    };
    let expiry = max_age
        .map(|s| format!("; Max-Age={s}"))
        .unwrap_or_default();
    HeaderValue::try_from(format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax{secure}{expiry}",
        cookie_name(state, base)
    ))
    .expect("cookie values are base64url")
}

/// `response` with the session cookie set to `session` (a session renewed).
fn with_session(
    state: &AppState,
    mut response: Response,
    session: &crate::ops::staff::SessionId,
) -> Response {
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(state, SESSION_COOKIE, Some(session.0.as_str())),
    );
    response
}

const SESSION_COOKIE: &str = "newsletter_staff";

/// The session id the browser holds, if it has the shape we issue.
fn session_token(state: &AppState, headers: &HeaderMap) -> Option<Token> {
    cookie(headers, &cookie_name(state, SESSION_COOKIE)).and_then(|v| Token::parse(v).ok())
}

/// What a member of staff just did, told on the page they land on: a redirect after a change
/// carries `?done=KEY` ([`done`]), and the page shows the message of that key. Only these
/// messages: a link cannot put words of its own on our pages.
const NOTICES: &[(&str, &str)] = &[
    ("account-saved", "Your settings are saved."),
    ("archive-changed", "The archive setting is saved."),
    ("links-checked", "Every link that was checked answered."),
    ("links-failed", "Some links failed: see Links below."),
    ("created", "The draft is saved. Preview it below, send yourself a test, then send or schedule it."),
    ("digest-saved", "The digest schedule is saved."),
    ("digest-changed", "The digest schedule is changed."),
    ("digest-removed", "The digest schedule is removed."),
    ("feed-added", "The feed is followed; its items arrive on the news desk at its next poll."),
    ("feed-changed", "The feed is changed."),
    ("feed-removed", "The feed is removed; the items it brought stay on the news desk."),
    ("passkey-added", "The passkey is added: sign in with it alone, or use it as your second factor."),
    ("passkey-removed", "The passkey is removed."),
    ("password-changed", "Your password is changed; your other sessions have ended."),
    ("session-ended", "The session has ended."),
    ("sessions-ended", "Your other sessions have ended."),
    ("totp-removed", "The authenticator app is removed, and its recovery codes with it."),
    ("look-saved", "The look is saved: the next update, test mail and preview use it."),
    ("list-added", "The list is created."),
    ("list-saved", "The list is saved."),
    ("list-archived", "The list is archived."),
    ("list-reopened", "The list is open again."),
    ("news-added", "The news item is on the desk."),
    ("news-saved", "The news item is saved."),
    ("news-approved", "The news item is approved: updates and digests may carry it."),
    ("news-deleted", "The news item is deleted; a feed will not bring it back."),
    ("subscriber-saved", "The subscriber is saved."),
    ("subscriber-unsubscribed", "The subscriber is unsubscribed from every list."),
    ("subscriber-erased", "The subscriber was erased. Only a hash of the address stays, on the suppression list."),
    ("template-saved", "The template is saved: the next mails use it."),
    ("template-reverted", "The template is reverted."),
    ("token-revoked", "The API token is revoked: it no longer works."),
    ("saved", "The draft was saved."),
    ("test", "The test mail is queued; it arrives in a moment, its subject marked [Test]."),
    ("sent", "Sending has started."),
    ("awaiting", "The update waits for an admin to approve it; the admins who may were sent a notice."),
    ("unscheduled", "The update is a draft again: any approval is void, and it must be confirmed (and approved where the rule asks) again."),
    ("frozen", "This update is not a draft: unschedule it first to edit it."),
    ("used", "That form was used already; nothing more was done. The update's status is below."),
    ("scheduled", "The update is scheduled."),
    ("paused", "The update is paused."),
    ("resumed", "The update goes out again."),
    ("cancelled", "The update was cancelled."),
    ("approved", "Approved: the update goes out at its time."),
    ("retried", "The failed mails are queued again."),
];

/// A redirect to `path` after a change, telling the page to show the notice `key` (one of
/// [`NOTICES`]).
fn done(path: &str, key: &str) -> Response {
    debug_assert!(NOTICES.iter().any(|(k, _)| *k == key), "no notice {key}");
    let joint = if path.contains('?') { '&' } else { '?' };
    axum::response::Redirect::to(&format!("{path}{joint}done={key}")).into_response()
}

/// The notice a request's `done` query parameter names, if it names one.
fn notice_of(parts: &Parts) -> Option<&'static str> {
    let query = parts.uri.query()?;
    let key = form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "done")?
        .1;
    NOTICES
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, message)| *message)
}

/// A member of staff with a live session, signed in all the way ([`Stage::SignedIn`]); the
/// [`Pending`] door also lets in a session that still owes its second factor or enrolment.
pub struct CurrentStaff {
    pub member: StaffMember,
    session: Token,
    /// The session's public id (the account page's list names sessions by it).
    pub session_id: uuid::Uuid,
    pub stage: Stage,
    /// Whether the member has a passkey (read with the session).
    pub has_passkey: bool,
    /// The notice of the action that led here (`?done=`).
    notice: Option<&'static str>,
}

impl CurrentStaff {
    pub fn actor(&self) -> Actor {
        Actor::Staff {
            id: self.member.id,
            role: self.member.role,
            email: self.member.email.clone(),
        }
    }

    /// A copy without the notice, for a page shown in place of a redirect.
    pub fn without_notice(&self) -> Self {
        Self {
            member: self.member.clone(),
            session: self.session.clone(),
            session_id: self.session_id,
            stage: self.stage,
            has_passkey: self.has_passkey,
            notice: None,
        }
    }

    /// This member's session as it goes on after gaining its second factor: under the new
    /// id (so the page's CSRF tokens are the new session's), signed in all the way.
    pub fn renewed(&self, session: &crate::ops::staff::SessionId) -> Self {
        Self {
            session: session.0.clone(),
            stage: Stage::SignedIn,
            ..self.without_notice()
        }
    }

    /// The time zone this member reads times in: their setting, else `server.time_zone`.
    pub fn time_zone(&self, state: &AppState) -> chrono_tz::Tz {
        self.member
            .time_zone
            .as_deref()
            .and_then(|z| z.parse().ok())
            .unwrap_or(state.settings.server.time_zone)
    }

    /// The CSRF token of this session: derived from the session id with the secret key, so
    /// nothing more is stored and it changes with every login.
    pub fn csrf_token(&self, state: &AppState) -> String {
        csrf_for(state, "admin-csrf", self.session.as_str())
    }
}

fn csrf_for(state: &AppState, purpose: &str, value: &str) -> String {
    let secret = state.settings.security.secret_key.expose().as_bytes();
    Token::derive(secret, purpose, value).as_str().to_owned()
}

/// Equality that takes the same time wherever the first difference is.
fn same(a: &str, b: &str) -> bool {
    crate::domain::constant_time_eq(a.as_bytes(), b.as_bytes())
}

impl FromRequestParts<AppState> for CurrentStaff {
    type Rejection = AdminError;

    /// A session signed in all the way. One that owes its second factor (or enrolment) is sent
    /// to that page on a GET, and refused `403` on anything else.
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Pending(staff) = Pending::from_request_parts(parts, state).await?;
        let get = parts.method == Method::GET || parts.method == Method::HEAD;
        match staff.stage {
            Stage::SignedIn => Ok(staff),
            stage if get => Err(AdminError::Redirect(page_of(stage))),
            Stage::SecondFactor | Stage::Enrol => Err(AdminError::Forbidden(
                "Give your second factor first (sign in again if the page has expired).".into(),
            )),
        }
    }
}

/// The page a session at `stage` belongs on: the dashboard, the second factor, or enrolment.
fn page_of(stage: Stage) -> &'static str {
    match stage {
        Stage::SignedIn => "/admin",
        Stage::SecondFactor => SECOND_FACTOR_PAGE,
        Stage::Enrol => ENROL_PAGE,
    }
}

/// Where a session that owes its second factor is sent.
pub const SECOND_FACTOR_PAGE: &str = "/admin/login/second-factor";
/// Where a member who must enrol a second factor is sent.
pub const ENROL_PAGE: &str = "/admin/account/two-factor";

/// A member of staff with a live session at any [`Stage`]: for the pages a session reaches
/// before it is signed in all the way (the second factor, enrolment, logout), which check the
/// stage themselves.
pub struct Pending(pub CurrentStaff);

impl FromRequestParts<AppState> for Pending {
    type Rejection = AdminError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let refuse = || {
            if parts.method == Method::GET || parts.method == Method::HEAD {
                AdminError::SignIn
            } else {
                AdminError::Forbidden("Log in first.".into())
            }
        };
        let Some(session) = session_token(state, &parts.headers) else {
            return Err(refuse());
        };
        match crate::ops::staff::session(&state.pool, &state.settings.admin, &session).await? {
            Some(live) => Ok(Pending(CurrentStaff {
                member: live.member,
                session,
                session_id: live.id,
                stage: live.stage,
                has_passkey: live.has_passkey,
                notice: notice_of(parts),
            })),
            None => Err(refuse()),
        }
    }
}

/// An admin with a live session, from [`AdminForm::admin`]: for the few forms whose door reads
/// input (a version number) before the operation can check the role itself.
pub struct AdminOnly(pub CurrentStaff);

/// The fields of a urlencoded form, in order; repeated names kept.
#[derive(Debug, Default)]
pub struct Fields(Vec<(String, String)>);

/// The staff forms' fields that hold several values; every other field holds one.
const REPEATABLE: &[&str] = &["lists", "news_item_ids", "ids"];

impl Fields {
    /// NUL characters and repeated single-valued fields are refused by name (`422`), as on
    /// every public form (`routes::form`).
    fn parse(body: &[u8]) -> Result<Self, AdminError> {
        super::form::FormFields::parse_any(body, REPEATABLE)
            .map(Self)
            .map_err(|message| AdminError::Status(StatusCode::UNPROCESSABLE_ENTITY, message))
    }
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// The field, or "" when absent.
    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().to_owned()
    }
    /// Every value of a repeated field, in order, blanks left out.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// Refuses a request whose `Origin` is not the service's own (a browser sends it on every
/// cross-site POST).
fn check_origin(state: &AppState, headers: &HeaderMap) -> Result<(), AdminError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    if origin.to_str().ok() == Some(state.settings.server.base_url.origin()) {
        Ok(())
    } else {
        Err(AdminError::Forbidden(
            "This form was sent from another site.".into(),
        ))
    }
}

async fn form_fields(req: Request, state: &AppState) -> Result<(Parts, Fields), AdminError> {
    let (parts, body) = req.into_parts();
    check_origin(state, &parts.headers)?;
    let body = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
        .await
        .map_err(|r| AdminError::Status(r.status(), r.body_text()))?;
    Ok((parts, Fields::parse(&body)?))
}

/// A state-changing form from a member of staff: a live session signed in all the way, the
/// session's CSRF token in `csrf_token`, and no foreign `Origin`.
pub struct AdminForm {
    pub staff: CurrentStaff,
    pub fields: Fields,
}

impl FromRequest<AppState> for AdminForm {
    type Rejection = AdminError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let PendingForm { staff, fields } = PendingForm::from_request(req, state).await?;
        if staff.stage != Stage::SignedIn {
            return Err(AdminError::Forbidden(
                "Give your second factor first (sign in again if the page has expired).".into(),
            ));
        }
        Ok(Self { staff, fields })
    }
}

/// [`AdminForm`] from a session at any [`Stage`] (logout, the second factor, enrolment).
pub struct PendingForm {
    pub staff: CurrentStaff,
    pub fields: Fields,
}

impl FromRequest<AppState> for PendingForm {
    type Rejection = AdminError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, fields) = form_fields(req, state).await?;
        let Pending(staff) = Pending::from_request_parts(&mut parts, state).await?;
        let expected = staff.csrf_token(state);
        if !fields
            .get("csrf_token")
            .is_some_and(|given| same(given, &expected))
        {
            return Err(AdminError::Forbidden(
                "The form has expired or did not come from this site. Go back, reload the page and try again.".into(),
            ));
        }
        Ok(Self { staff, fields })
    }
}

impl AdminForm {
    /// The sender, if an admin (an editor gets 403).
    pub fn admin(&self) -> Result<AdminOnly, AdminError> {
        if self.staff.actor().is_admin() {
            Ok(AdminOnly(self.staff.without_notice()))
        } else {
            Err(AdminError::Forbidden("Only an admin may do this.".into()))
        }
    }
}

/// A page for a signed-in member of staff: the layout shows who they are and a logout button,
/// and every form gets the session's CSRF token.
fn staff_page(
    state: &AppState,
    staff: &CurrentStaff,
    status: StatusCode,
    name: &str,
    mut data: serde_json::Value,
) -> Response {
    if let serde_json::Value::Object(map) = &mut data {
        map.insert(
            "me".into(),
            serde_json::json!({
                "email": staff.member.email,
                "role": staff.member.role.as_str(),
                "is_admin": staff.actor().is_admin(),
                "signed_in": staff.stage == Stage::SignedIn,
                "time_zone": staff.time_zone(state).name(),
            }),
        );
        map.insert("csrf_token".into(), staff.csrf_token(state).into());
        if let Some(notice) = staff.notice {
            let told = map.entry("notice").or_insert(serde_json::Value::Null);
            if told.is_null() {
                *told = notice.into();
            }
        }
    }
    state.admin_pages.page(status, name, data)
}
