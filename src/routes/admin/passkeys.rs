//! Passkeys in the staff area (`static/admin-passkeys.js` drives the browser's WebAuthn calls):
//! registering one from the account page (or from enrolment), removing one, signing in with a
//! passkey alone from the login page, and a passkey as the second step of a sign-in. The
//! ceremonies answer JSON: `{"options", "ceremony"}` to begin, `{"redirect"}` once done, and
//! `{"error"}` with a 4xx when refused. The rules are in `ops::passkeys`.

use axum::extract::{FromRequest, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::post;
use axum::Router;
use serde_json::json;

use super::{AdminError, AdminForm, Fields, PendingForm};
use crate::app::AppState;
use crate::ops::passkeys::{self, Ceremony, PasskeyError};
use crate::ops::staff::{SessionId, SignInMethod, StaffError, Stage};
use crate::routes::client::Origin;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/account/passkeys/begin", post(register_begin))
        .route("/admin/account/passkeys/finish", post(register_finish))
        .route("/admin/account/passkeys/remove", post(remove))
        .route("/admin/login/passkey/begin", post(sign_in_begin))
        .route("/admin/login/passkey/finish", post(sign_in_finish))
        .route(
            "/admin/login/passkey/second-factor/begin",
            post(second_factor_begin),
        )
        .route(
            "/admin/login/passkey/second-factor/finish",
            post(second_factor_finish),
        )
}

/// A ceremony's answer: JSON, never a page (`refused`: what a refused answer is told, in the
/// words of this ceremony), with the session's new cookie when it was renewed.
fn reply(
    state: &AppState,
    result: Result<(serde_json::Value, Option<SessionId>), PasskeyError>,
    refused: &str,
) -> Response {
    match result {
        Ok((body, renewed)) => {
            let response = Json(body).into_response();
            match renewed {
                Some(session) => super::with_session(state, response, &session),
                None => response,
            }
        }
        Err(e) => {
            let status = match &e {
                PasskeyError::Unavailable(_) => StatusCode::CONFLICT,
                PasskeyError::Refused => StatusCode::UNAUTHORIZED,
                PasskeyError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
                PasskeyError::Throttled => StatusCode::TOO_MANY_REQUESTS,
                PasskeyError::Staff(StaffError::Internal(e)) => {
                    return AdminError::Internal(anyhow::anyhow!("{e:#}")).into_response()
                }
                PasskeyError::Staff(StaffError::Forbidden(_)) => StatusCode::FORBIDDEN,
                PasskeyError::Staff(_) => StatusCode::UNPROCESSABLE_ENTITY,
            };
            let text = match e {
                PasskeyError::Refused => refused.to_owned(),
                other => capitalized(&other.to_string()),
            };
            error(status, &text)
        }
    }
}

fn error(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({ "error": text }))).into_response()
}

/// A form the door refused (no session, a wrong CSRF token, a field it cannot read), answered
/// in JSON like the ceremonies' own refusals, so the page can say why.
fn refused_form(e: AdminError) -> Response {
    match e {
        AdminError::SignIn => error(StatusCode::FORBIDDEN, "Log in first."),
        AdminError::Forbidden(text) => error(StatusCode::FORBIDDEN, &text),
        AdminError::Status(status, text) => error(status, &text),
        AdminError::TooMany(text, _) => error(StatusCode::TOO_MANY_REQUESTS, &text),
        AdminError::NotFound => error(StatusCode::NOT_FOUND, "There is nothing at this address."),
        other @ (AdminError::Redirect(_) | AdminError::Internal(_)) => other.into_response(),
    }
}

/// [`PendingForm`] for a ceremony: refused in JSON ([`refused_form`]).
struct CeremonyForm(PendingForm);

impl FromRequest<AppState> for CeremonyForm {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        PendingForm::from_request(request, state)
            .await
            .map(Self)
            .map_err(refused_form)
    }
}

/// What a refused sign-in is told.
const SIGN_IN_REFUSED: &str =
    "The passkey was not accepted. Try again, or use another way to sign in.";
/// What a refused registration is told.
const REGISTRATION_REFUSED: &str =
    "The passkey was not added: the browser's answer did not check out. Try again, or use another passkey or an authenticator app.";

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn begun(ceremony: Ceremony) -> (serde_json::Value, Option<SessionId>) {
    (
        json!({ "options": ceremony.options, "ceremony": ceremony.id }),
        None,
    )
}

/// The browser's answer to a ceremony, from its form (`ceremony`, `credential`).
fn answer_of(fields: &Fields) -> passkeys::Answer<'_> {
    passkeys::Answer {
        ceremony: fields.get("ceremony").unwrap_or_default(),
        credential: fields.get("credential").unwrap_or_default(),
    }
}

/// Only a session signed in all the way, or one that must enrol, adds a passkey (a session
/// that owes its second factor must give it first).
fn may_enrol(form: &PendingForm) -> Result<(), PasskeyError> {
    if form.staff.stage == Stage::SecondFactor {
        return Err(PasskeyError::Staff(StaffError::Refused(
            "Give your second factor first.".into(),
        )));
    }
    Ok(())
}

async fn register_begin(
    State(state): State<AppState>,
    CeremonyForm(form): CeremonyForm,
) -> Response {
    let result = async {
        may_enrol(&form)?;
        let staff = &form.staff;
        passkeys::begin_registration(
            &state.pool,
            &state.settings,
            &staff.actor(),
            &staff.member,
            &staff.session,
        )
        .await
        .map(begun)
    }
    .await;
    reply(&state, result, REGISTRATION_REFUSED)
}

async fn register_finish(
    State(state): State<AppState>,
    CeremonyForm(form): CeremonyForm,
) -> Response {
    let result = async {
        may_enrol(&form)?;
        let staff = &form.staff;
        let answer = answer_of(&form.fields);
        let renewed = passkeys::finish_registration(
            &state.pool,
            &state.settings,
            &staff.actor(),
            &answer,
            &form.fields.text("name"),
            &staff.session,
        )
        .await?;
        let next = json!({ "redirect": "/admin/account?done=passkey-added" });
        Ok((next, Some(renewed)))
    }
    .await;
    reply(&state, result, REGISTRATION_REFUSED)
}

async fn remove(State(state): State<AppState>, form: AdminForm) -> Result<Response, AdminError> {
    let id = form
        .fields
        .text("passkey")
        .trim()
        .parse::<uuid::Uuid>()
        .map_err(|_| {
            AdminError::Status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "passkey: not one of your passkeys".into(),
            )
        })?;
    passkeys::remove(&state.pool, &state.settings, &form.staff.actor(), id)
        .await
        .map_err(super::staff::staff_error)?;
    Ok(super::done("/admin/account", "passkey-removed"))
}

async fn sign_in_begin(State(state): State<AppState>, request: Request) -> Response {
    if let Err(e) = super::login::pre_session_form(&state, "login", request).await {
        return refused_form(e);
    }
    let begun = passkeys::begin_sign_in(&state.pool, &state.settings)
        .await
        .map(begun);
    reply(&state, begun, SIGN_IN_REFUSED)
}

/// Signs in with a passkey alone (it counts as both factors): the session's cookies, and where
/// to go, as JSON.
async fn sign_in_finish(
    State(state): State<AppState>,
    Origin(origin): Origin,
    request: Request,
) -> Result<Response, AdminError> {
    let (parts, fields) = match super::login::pre_session_form(&state, "login", request).await {
        Ok(form) => form,
        Err(e) => return Ok(refused_form(e)),
    };
    let answer = answer_of(&fields);
    let verified = passkeys::finish_sign_in(
        &state.pool,
        &state.settings,
        &state.logins,
        &answer,
        origin.ip,
    )
    .await;
    let staff_id = match verified {
        Ok(id) => id,
        Err(e) => return Ok(reply(&state, Err(e), SIGN_IN_REFUSED)),
    };
    let redirect = super::login::finish_sign_in(
        &state,
        &parts.headers,
        origin.ip,
        staff_id,
        SignInMethod::Passkey,
        true,
    )
    .await?;
    // The same cookies, and the redirect's target as JSON for the page's script.
    let to = redirect
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("/admin")
        .to_owned();
    let mut response = Json(json!({ "redirect": to })).into_response();
    for cookie in redirect.headers().get_all(header::SET_COOKIE) {
        response
            .headers_mut()
            .append(header::SET_COOKIE, cookie.clone());
    }
    Ok(response)
}

fn owes_second_factor(form: &PendingForm) -> Result<(), PasskeyError> {
    if form.staff.stage != Stage::SecondFactor {
        return Err(PasskeyError::Staff(StaffError::Refused(
            "This session owes no second factor.".into(),
        )));
    }
    Ok(())
}

async fn second_factor_begin(
    State(state): State<AppState>,
    CeremonyForm(form): CeremonyForm,
) -> Response {
    let result = async {
        owes_second_factor(&form)?;
        passkeys::begin_second_factor(&state.pool, &state.settings, &form.staff.member)
            .await
            .map(begun)
    }
    .await;
    reply(&state, result, SIGN_IN_REFUSED)
}

async fn second_factor_finish(
    State(state): State<AppState>,
    Origin(origin): Origin,
    CeremonyForm(form): CeremonyForm,
) -> Response {
    let result = async {
        owes_second_factor(&form)?;
        let staff = &form.staff;
        let answer = answer_of(&form.fields);
        let renewed = passkeys::finish_second_factor(
            &state.pool,
            &state.settings,
            &state.logins,
            &staff.member,
            &answer,
            origin.ip,
            &staff.session,
        )
        .await?;
        Ok((json!({ "redirect": "/admin" }), Some(renewed)))
    }
    .await;
    reply(&state, result, SIGN_IN_REFUSED)
}
