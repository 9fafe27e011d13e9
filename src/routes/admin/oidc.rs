//! Single sign-on through the OpenID Provider: `GET /admin/login/oidc` starts a sign-in (to
//! the provider, with a cookie of its own that ties the sign-in to this browser) and
//! `GET /admin/login/oidc/callback` is where the provider sends the browser back. Every check
//! and the audit are `ops::oidc`'s; a refusal is a page with a plain message (`400` when the
//! answer is broken or forged on its way, `403` when the person may not sign in).

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use super::login::finish_sign_in;
use super::{cookie, cookie_name, set_cookie, AdminError};
use crate::app::AppState;
use crate::ops::oidc::{Callback, OidcError};
use crate::ops::staff::SignInMethod;
use crate::routes::client::Origin;

const OIDC_COOKIE: &str = "newsletter_oidc";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/login/oidc", get(start))
        .route("/admin/login/oidc/callback", get(callback))
}

/// To the provider's sign-in page (`404` when single sign-on is off).
async fn start(
    State(state): State<AppState>,
    Origin(origin): Origin,
) -> Result<Response, AdminError> {
    let Some(oidc) = &state.oidc else {
        return Err(AdminError::NotFound);
    };
    match oidc.start(&state.pool, origin.ip).await {
        Ok(start) => {
            let mut response = Redirect::to(&start.url).into_response();
            response.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(&state, OIDC_COOKIE, Some(start.browser.as_str())),
            );
            Ok(response)
        }
        Err(OidcError::SetUpFirst) => Ok(Redirect::to("/admin/setup").into_response()),
        Err(e) => Err(refused(e)),
    }
}

/// Back from the provider: signed in, or a page that says why not.
async fn callback(
    State(state): State<AppState>,
    Origin(origin): Origin,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, AdminError> {
    let Some(oidc) = &state.oidc else {
        return Err(AdminError::NotFound);
    };
    let browser = cookie(&headers, &cookie_name(&state, OIDC_COOKIE));
    let answer = callback_of(query.as_deref().unwrap_or_default());
    match oidc
        .finish(&state.pool, &state.logins, answer, browser, origin.ip)
        .await
    {
        Ok(member) => {
            let mut response = finish_sign_in(
                &state,
                &headers,
                origin.ip,
                member.staff_id,
                SignInMethod::Oidc,
                member.both_factors,
            )
            .await?;
            response
                .headers_mut()
                .append(header::SET_COOKIE, set_cookie(&state, OIDC_COOKIE, None));
            Ok(response)
        }
        Err(e) => Err(refused(e)),
    }
}

/// The callback's parameters, the first of each name.
fn callback_of(query: &str) -> Callback {
    let mut answer = Callback::default();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let slot = match name.as_ref() {
            "code" => &mut answer.code,
            "state" => &mut answer.state,
            "iss" => &mut answer.iss,
            "error" => &mut answer.error,
            _ => continue,
        };
        slot.get_or_insert_with(|| value.into_owned());
    }
    answer
}

fn refused(e: OidcError) -> AdminError {
    match e {
        OidcError::Refused(refusal) => {
            let status = if refusal.reason.is_forbidden() {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::BAD_REQUEST
            };
            AdminError::Status(status, refusal.message())
        }
        OidcError::SetUpFirst => AdminError::Forbidden(
            "This service has no admin yet: the first one is set up at /admin/setup.".into(),
        ),
        OidcError::Unavailable => AdminError::Status(
            StatusCode::SERVICE_UNAVAILABLE,
            "The sign-in provider cannot be reached now. Try again in a moment, or log in with your password.".into(),
        ),
        OidcError::Throttled(wait) => AdminError::TooMany(
            format!(
                "Too many sign-ins from your network. Try again in {} minutes.",
                wait.as_secs().div_ceil(60).max(1)
            ),
            wait.as_secs().max(1),
        ),
        OidcError::Internal(e) => AdminError::Internal(e),
    }
}
