//! `GET/POST /admin/login`, `POST /admin/logout`. Before a session exists, the login form's
//! CSRF token is tied to a random cookie of its own.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use super::{
    cookie, cookie_name, csrf_for, form_fields, same, session_token, set_cookie, AdminError,
    AdminForm, SESSION_COOKIE,
};
use crate::app::AppState;
use crate::domain::Token;
use crate::ops::staff::{self, LoginError};
use crate::routes::client::Origin;

const LOGIN_COOKIE: &str = "newsletter_login";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/login", get(form).post(log_in))
        .route("/admin/logout", post(log_out))
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
    let (token, fresh) = match login_token(state, headers) {
        Some(t) => (t, false),
        None => (Token::generate(), true),
    };
    let mut response = state.admin_pages.page(
        status,
        "login",
        json!({
            "csrf_token": csrf_for(state, "login-csrf", token.as_str()),
            "email": email,
            "error": error,
        }),
    );
    if fresh {
        response.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(state, LOGIN_COOKIE, Some(token.as_str())),
        );
    }
    response
}

/// The login page; someone already signed in goes to the dashboard.
async fn form(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AdminError> {
    if let Some(session) = session_token(&state, &headers) {
        if staff::session(&state.pool, &state.settings.admin, &session)
            .await?
            .is_some()
        {
            return Ok(Redirect::to("/admin").into_response());
        }
    }
    Ok(login_page(&state, &headers, StatusCode::OK, "", None))
}

async fn log_in(
    State(state): State<AppState>,
    Origin(origin): Origin,
    request: Request,
) -> Result<Response, AdminError> {
    let (parts, fields) = form_fields(request, &state).await?;
    let headers = &parts.headers;
    let csrf_ok = login_token(&state, headers).is_some_and(|t| {
        fields
            .get("csrf_token")
            .is_some_and(|given| same(given, &csrf_for(&state, "login-csrf", t.as_str())))
    });
    if !csrf_ok {
        return Err(AdminError::Forbidden(
            "The login form has expired. Go back, reload the page and try again.".into(),
        ));
    }
    let email = fields.text("email");
    let previous = session_token(&state, headers);
    let settings = state.logins.settings();
    let result = staff::log_in(
        &state.pool,
        &state.logins,
        &email,
        &fields.text("password"),
        origin.ip,
        previous.as_ref(),
    )
    .await;
    match result {
        Ok(session) => {
            let mut response = Redirect::to("/admin").into_response();
            response.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(&state, SESSION_COOKIE, Some(session.0.as_str())),
            );
            Ok(response)
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

async fn log_out(State(state): State<AppState>, form: AdminForm) -> Result<Response, AdminError> {
    staff::log_out(&state.pool, &form.staff.session).await?;
    let mut response = Redirect::to("/admin/login").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(&state, SESSION_COOKIE, None));
    Ok(response)
}
