//! Passkeys in the staff area (`static/admin-passkeys.js` drives the browser's WebAuthn calls):
//! registering one from the account page (or from enrolment), removing one, signing in with a
//! passkey alone from the login page, and a passkey as the second step of a sign-in. The
//! ceremonies answer JSON: `{"options", "ceremony"}` to begin, `{"redirect"}` once done, and
//! `{"error"}` with a 4xx when refused. The rules are in `ops::passkeys`.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::post;
use axum::Router;
use serde_json::json;

use super::{AdminError, AdminForm, PendingForm};
use crate::app::AppState;
use crate::ops::passkeys::{self, Ceremony, PasskeyError};
use crate::ops::staff::{SignInMethod, StaffError, Stage};
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

/// A ceremony's answer: JSON, never a page.
fn reply(result: Result<serde_json::Value, PasskeyError>) -> Response {
    match result {
        Ok(body) => Json(body).into_response(),
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
                PasskeyError::Refused => {
                    "The passkey was not accepted. Try again, or use another way to sign in."
                        .to_owned()
                }
                other => capitalized(&other.to_string()),
            };
            (status, Json(json!({ "error": text }))).into_response()
        }
    }
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn begun(ceremony: Ceremony) -> serde_json::Value {
    json!({ "options": ceremony.options, "ceremony": ceremony.id })
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

async fn register_begin(State(state): State<AppState>, form: PendingForm) -> Response {
    let result = async {
        may_enrol(&form)?;
        let staff = &form.staff;
        passkeys::begin_registration(&state.pool, &state.settings, &staff.actor(), &staff.member)
            .await
            .map(begun)
    }
    .await;
    reply(result)
}

async fn register_finish(State(state): State<AppState>, form: PendingForm) -> Response {
    let result = async {
        may_enrol(&form)?;
        let staff = &form.staff;
        let answer = passkeys::Answer {
            ceremony: &form.fields.text("ceremony"),
            credential: &form.fields.text("credential"),
        };
        passkeys::finish_registration(
            &state.pool,
            &state.settings,
            &staff.actor(),
            &answer,
            &form.fields.text("name"),
            &staff.session,
        )
        .await?;
        Ok(json!({ "redirect": "/admin/account?done=passkey-added" }))
    }
    .await;
    reply(result)
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
    passkeys::remove(&state.pool, &form.staff.actor(), id)
        .await
        .map_err(super::staff::staff_error)?;
    Ok(super::done("/admin/account", "passkey-removed"))
}

async fn sign_in_begin(State(state): State<AppState>, request: Request) -> Response {
    if let Err(e) = super::login::pre_session_form(&state, "login", request).await {
        return e.into_response();
    }
    reply(
        passkeys::begin_sign_in(&state.pool, &state.settings)
            .await
            .map(begun),
    )
}

/// Signs in with a passkey alone (it counts as both factors): the session's cookies, and where
/// to go, as JSON.
async fn sign_in_finish(
    State(state): State<AppState>,
    Origin(origin): Origin,
    request: Request,
) -> Result<Response, AdminError> {
    let (parts, fields) = super::login::pre_session_form(&state, "login", request).await?;
    let answer = passkeys::Answer {
        ceremony: &fields.text("ceremony"),
        credential: &fields.text("credential"),
    };
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
        Err(e) => return Ok(reply(Err(e))),
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

async fn second_factor_begin(State(state): State<AppState>, form: PendingForm) -> Response {
    let result = async {
        owes_second_factor(&form)?;
        passkeys::begin_second_factor(&state.pool, &state.settings, &form.staff.member)
            .await
            .map(begun)
    }
    .await;
    reply(result)
}

async fn second_factor_finish(
    State(state): State<AppState>,
    Origin(origin): Origin,
    form: PendingForm,
) -> Response {
    let result = async {
        owes_second_factor(&form)?;
        let staff = &form.staff;
        let answer = passkeys::Answer {
            ceremony: &form.fields.text("ceremony"),
            credential: &form.fields.text("credential"),
        };
        passkeys::finish_second_factor(
            &state.pool,
            &state.settings,
            &state.logins,
            &staff.member,
            &answer,
            origin.ip,
            &staff.session,
        )
        .await?;
        Ok(json!({ "redirect": "/admin" }))
    }
    .await;
    reply(result)
}
