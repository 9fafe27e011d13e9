//! `GET/POST /admin/login`, `POST /admin/logout`, and `GET/POST /admin/setup` (the first
//! admin, with the setup code `serve` prints, while no account exists: `/admin` and the login
//! page lead there). Before a session exists, these forms' CSRF tokens are tied to a random
//! cookie of their own.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use std::net::IpAddr;

use uuid::Uuid;

use super::{
    cookie, cookie_name, csrf_for, form_fields, same, session_token, set_cookie, AdminError,
    Pending, PendingForm, SESSION_COOKIE,
};
use crate::app::AppState;
use crate::domain::Token;
use crate::ops::second_factor::{self, SecondFactorError};
use crate::ops::staff::{self, LoginError, SetupError, SignInMethod, Stage};
use crate::routes::client::Origin;

const LOGIN_COOKIE: &str = "newsletter_login";
/// A random id a browser keeps for a long time, so that a sign-in from a browser a member has
/// not used before is told to them (only its SHA-256 is stored, per member).
const DEVICE_COOKIE: &str = "newsletter_device";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/login", get(form).post(log_in))
        .route("/admin/logout", post(log_out))
        .route("/admin/setup", get(setup_form).post(set_up))
        .route(
            super::SECOND_FACTOR_PAGE,
            get(second_factor_form).post(second_factor),
        )
}

fn login_token(state: &AppState, headers: &HeaderMap) -> Option<Token> {
    cookie(headers, &cookie_name(state, LOGIN_COOKIE)).and_then(|v| Token::parse(v).ok())
}

/// The login page, with a fresh login cookie when the browser has none.
fn login_page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    email: &str,
    error: Option<&str>,
) -> Response {
    let passkeys = crate::ops::passkeys::available(&state.settings).is_ok();
    let oidc = state.oidc.as_ref().map(|o| o.button_label());
    let data = json!({
        "email": email,
        "error": error,
        "oidc": oidc,
        "passkeys": passkeys,
        "passkey_script": passkeys,
    });
    pre_session_page(state, headers, status, "login", data)
}

/// A page of a form sent before any session (`login`, `setup`), its CSRF token made for
/// `page` from the login cookie, with a fresh cookie when the browser has none.
fn pre_session_page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    page: &str,
    mut data: serde_json::Value,
) -> Response {
    let (token, fresh) = match login_token(state, headers) {
        Some(t) => (t, false),
        None => (Token::generate(), true),
    };
    data["csrf_token"] = csrf_for(state, &format!("{page}-csrf"), token.as_str()).into();
    let mut response = state.admin_pages.page(status, page, data);
    if fresh {
        response.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(state, LOGIN_COOKIE, Some(token.as_str())),
        );
    }
    response
}

/// The login page; someone already signed in goes to the dashboard, and everyone to the setup
/// page while no account exists.
async fn form(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AdminError> {
    if staff::needs_setup(&state.pool).await? {
        return Ok(Redirect::to("/admin/setup").into_response());
    }
    if let Some(session) = session_token(&state, &headers) {
        if let Some(live) = staff::session(&state.pool, &state.settings.admin, &session).await? {
            return Ok(Redirect::to(super::page_of(live.stage)).into_response());
        }
    }
    Ok(login_page(&state, &headers, StatusCode::OK, "", None))
}

async fn log_in(
    State(state): State<AppState>,
    Origin(origin): Origin,
    request: Request,
) -> Result<Response, AdminError> {
    let (parts, fields) = pre_session_form(&state, "login", request).await?;
    let headers = &parts.headers;
    let email = fields.text("email");
    let settings = state.logins.settings();
    let result = staff::log_in(
        &state.pool,
        &state.logins,
        &email,
        &fields.text("password"),
        origin.ip,
    )
    .await;
    match result {
        Ok(staff_id) => {
            finish_sign_in(
                &state,
                headers,
                origin.ip,
                staff_id,
                SignInMethod::Password,
                false,
            )
            .await
        }
        Err(LoginError::Wrong) => Ok(login_page(
            &state,
            headers,
            StatusCode::UNAUTHORIZED,
            &email,
            Some("The e-mail address or the password is wrong."),
        )),
        Err(LoginError::Throttled) => {
            let minutes = settings.login_window.as_secs().div_ceil(60);
            Ok(too_many(
                &state,
                headers,
                &email,
                &format!("Too many failed logins. Try again in {minutes} minutes."),
                settings.login_window,
            ))
        }
        Err(LoginError::Busy) => Ok(too_many(
            &state,
            headers,
            &email,
            "Too many logins at once. Try again in a moment.",
            staff::LOGIN_WAIT,
        )),
        Err(LoginError::Internal(e)) => Err(AdminError::Internal(e)),
    }
}

/// Finishes a sign-in whose first factor checked out (`both_factors`: the method counted as
/// two): starts the session (`ops::staff::sign_in`: audited, a notice mail for a new device),
/// gives the browser the session's cookie and its device cookie, and sends it to the dashboard,
/// or to the second factor or enrolment when the session owes one.
pub(super) async fn finish_sign_in(
    state: &AppState,
    headers: &HeaderMap,
    ip: Option<IpAddr>,
    staff_id: Uuid,
    method: SignInMethod,
    both_factors: bool,
) -> Result<Response, AdminError> {
    let previous = session_token(state, headers);
    let device =
        cookie(headers, &cookie_name(state, DEVICE_COOKIE)).and_then(|v| Token::parse(v).ok());
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let client = staff::Client {
        ip,
        user_agent,
        device: device.as_ref(),
    };
    let signed = staff::sign_in(
        &state.pool,
        &state.settings,
        staff_id,
        method,
        both_factors,
        &client,
        previous.as_ref(),
    )
    .await?;
    let mut response = Redirect::to(super::page_of(signed.stage)).into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(state, SESSION_COOKIE, Some(signed.session.0.as_str())),
    );
    headers.append(
        header::SET_COOKIE,
        super::set_lasting_cookie(state, DEVICE_COOKIE, signed.device.as_str()),
    );
    Ok(response)
}

/// A form sent before any session, from the page `page`: its fields once its origin and CSRF
/// token (tied to the login cookie) checked out, else `403`.
pub(super) async fn pre_session_form(
    state: &AppState,
    page: &str,
    request: Request,
) -> Result<(axum::http::request::Parts, super::Fields), AdminError> {
    let (parts, fields) = form_fields(request, state).await?;
    let purpose = format!("{page}-csrf");
    let csrf_ok = login_token(state, &parts.headers).is_some_and(|t| {
        fields
            .get("csrf_token")
            .is_some_and(|given| same(given, &csrf_for(state, &purpose, t.as_str())))
    });
    if !csrf_ok {
        return Err(AdminError::Forbidden(format!(
            "The {page} form has expired. Go back, reload the page and try again."
        )));
    }
    Ok((parts, fields))
}

/// The setup page while no account exists; afterwards, the login page.
async fn setup_form(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, AdminError> {
    if !staff::needs_setup(&state.pool).await? {
        return Ok(Redirect::to("/admin/login").into_response());
    }
    let data = json!({ "code": "", "email": "" });
    Ok(pre_session_page(
        &state,
        &headers,
        StatusCode::OK,
        "setup",
        data,
    ))
}

/// Creates the first admin (`ops::staff::set_up`) and signs them in.
async fn set_up(
    State(state): State<AppState>,
    Origin(origin): Origin,
    request: Request,
) -> Result<Response, AdminError> {
    let (parts, fields) = pre_session_form(&state, "setup", request).await?;
    let headers = &parts.headers;
    let (code, email) = (fields.text("code"), fields.text("email"));
    let result = staff::set_up(
        &state.pool,
        &state.logins,
        &code,
        &email,
        &fields.text("password"),
        origin.ip,
    )
    .await;
    let again = |status: StatusCode, field: &str, error: String| {
        let data = json!({ "code": code, "email": email, "field": field, "error": error });
        pre_session_page(&state, headers, status, "setup", data)
    };
    match result {
        Ok(staff_id) => {
            finish_sign_in(
                &state,
                headers,
                origin.ip,
                staff_id,
                SignInMethod::Setup,
                false,
            )
            .await
        }
        Err(SetupError::SetUpAlready) => Ok(Redirect::to("/admin/login").into_response()),
        Err(e @ SetupError::WrongCode) => Ok(again(
            StatusCode::UNPROCESSABLE_ENTITY,
            "code",
            format!("{}.", capitalized(&e)),
        )),
        Err(SetupError::Invalid(field, why)) => {
            Ok(again(StatusCode::UNPROCESSABLE_ENTITY, field, why))
        }
        Err(SetupError::Login(LoginError::Throttled)) => {
            let wait = state.logins.settings().login_window;
            let minutes = wait.as_secs().div_ceil(60);
            let error = format!("Too many wrong setup codes. Try again in {minutes} minutes.");
            let mut response = again(StatusCode::TOO_MANY_REQUESTS, "code", error);
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(wait.as_secs().max(1)),
            );
            Ok(response)
        }
        Err(SetupError::Login(LoginError::Busy)) => {
            let error = "Too many sign-ins at once. Try again in a moment.".to_owned();
            let mut response = again(StatusCode::TOO_MANY_REQUESTS, "", error);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(1));
            Ok(response)
        }
        Err(SetupError::Login(e)) => Err(AdminError::Internal(e.into())),
    }
}

fn capitalized(e: &impl std::fmt::Display) -> String {
    let text = e.to_string();
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The login page with `message`, answered 429 with `Retry-After: wait` (whole seconds, at
/// least one).
fn too_many(
    state: &AppState,
    headers: &HeaderMap,
    email: &str,
    message: &str,
    wait: std::time::Duration,
) -> Response {
    let mut response = login_page(
        state,
        headers,
        StatusCode::TOO_MANY_REQUESTS,
        email,
        Some(message),
    );
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(wait.as_secs().max(1)),
    );
    response
}

async fn log_out(State(state): State<AppState>, form: PendingForm) -> Result<Response, AdminError> {
    staff::log_out(&state.pool, &form.staff.session).await?;
    let mut response = Redirect::to("/admin/login").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(&state, SESSION_COOKIE, None));
    Ok(response)
}

/// The second step of a sign-in: a code from the member's authenticator app or a recovery
/// code (or their passkey). A session that owes nothing goes on to the dashboard.
async fn second_factor_form(
    State(state): State<AppState>,
    Pending(staff): Pending,
) -> Result<Response, AdminError> {
    match staff.stage {
        Stage::SecondFactor => second_factor_page(&state, &staff, StatusCode::OK, None).await,
        other => Ok(Redirect::to(super::page_of(other)).into_response()),
    }
}

async fn second_factor_page(
    state: &AppState,
    staff: &super::CurrentStaff,
    status: StatusCode,
    error: Option<&str>,
) -> Result<Response, AdminError> {
    let passkey = staff.has_passkey && crate::ops::passkeys::available(&state.settings).is_ok();
    let data = json!({
        "title": "Second factor",
        "error": error,
        "totp": staff.member.totp_enrolled_at.is_some(),
        "passkey": passkey,
        "passkey_script": passkey,
    });
    Ok(super::staff_page(
        state,
        staff,
        status,
        "second_factor",
        data,
    ))
}

async fn second_factor(
    State(state): State<AppState>,
    Origin(origin): Origin,
    form: PendingForm,
) -> Result<Response, AdminError> {
    let staff = &form.staff;
    if staff.stage != Stage::SecondFactor {
        return Ok(Redirect::to("/admin").into_response());
    }
    let result = second_factor::verify(
        &state.pool,
        &state.settings,
        &state.logins,
        &staff.member,
        &form.fields.text("code"),
        origin.ip,
        &staff.session,
    )
    .await;
    match result {
        Ok(renewed) => Ok(super::with_session(
            &state,
            Redirect::to("/admin").into_response(),
            &renewed,
        )),
        Err(SecondFactorError::WrongCode) => {
            second_factor_page(
                &state,
                staff,
                StatusCode::UNAUTHORIZED,
                Some("That code is not right, or was used already. Type the code your app shows now, or a recovery code."),
            )
            .await
        }
        Err(SecondFactorError::Throttled) => {
            let wait = state.logins.settings().login_window;
            let minutes = wait.as_secs().div_ceil(60);
            let text = format!("Too many wrong codes. Try again in {minutes} minutes.");
            let mut response =
                second_factor_page(&state, staff, StatusCode::TOO_MANY_REQUESTS, Some(&text))
                    .await?;
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(wait.as_secs().max(1)),
            );
            Ok(response)
        }
        Err(SecondFactorError::Staff(e)) => Err(super::staff::staff_error(e)),
    }
}
