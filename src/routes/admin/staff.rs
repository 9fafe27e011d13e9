//! `/admin/staff`: admins list, add and remove staff accounts (as `newsletter staff` does). The
//! rules (admins only, never oneself, never the last admin) are in `ops::staff`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use axum::response::IntoResponse;
use base64::Engine;

use super::{staff_page, AdminError, AdminForm, CurrentStaff, Pending, PendingForm};
use crate::app::AppState;
use crate::domain::NewPassword;
use crate::ops::second_factor::{self, SecondFactorError};
use crate::ops::staff::{self, LoginError, PasswordChangeError, StaffError, Stage};
use crate::routes::client::Origin;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/staff", get(list).post(add))
        .route("/admin/staff/remove", post(remove))
        .route("/admin/staff/reset-2fa", post(reset_second_factor))
        .route("/admin/account", get(account))
        .route("/admin/account/time-zone", post(account_time_zone))
        .route("/admin/account/password", post(change_password))
        .route("/admin/account/sessions/end", post(end_session))
        .route(
            "/admin/account/sessions/end-others",
            post(end_other_sessions),
        )
        .route(super::ENROL_PAGE, get(two_factor).post(confirm_totp))
        .route("/admin/account/two-factor/remove", post(remove_totp))
        .route("/admin/account/recovery-codes", post(new_recovery_codes))
}

/// What the account page shows beside the member: errors by form (`zone`, `password`).
#[derive(Default)]
struct AccountForm<'a> {
    zone: Option<&'a str>,
    zone_error: Option<String>,
    password_error: Option<String>,
}

/// Your account: who you are, the time zone staff pages show times in, your second factors,
/// your sessions (each can be ended) and your password.
async fn account_page(
    state: &AppState,
    staff: &CurrentStaff,
    status: StatusCode,
    form: AccountForm<'_>,
) -> Result<Response, AdminError> {
    let zones: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|z| z.name()).collect();
    let sessions: Vec<_> = staff::sessions(
        &state.pool,
        &state.settings.admin,
        staff.member.id,
        &staff.session,
    )
    .await?
    .into_iter()
    .map(|(session, device)| json!({ "session": session, "device": device }))
    .collect();
    let actor = staff.actor();
    let recovery_left = second_factor::recovery_codes_left(&state.pool, &actor)
        .await
        .map_err(staff_error)?;
    let passkeys = crate::ops::passkeys::list(&state.pool, &actor)
        .await
        .map_err(staff_error)?;
    let unavailable = crate::ops::passkeys::available(&state.settings).err();
    Ok(staff_page(
        state,
        staff,
        status,
        "account",
        json!({
            "title": "Your account",
            "zone": form.zone.or(staff.member.time_zone.as_deref()).unwrap_or(""),
            "default_zone": state.settings.server.time_zone.name(),
            "zones": zones,
            "error": form.zone_error,
            "password_error": form.password_error,
            "totp_enrolled_at": staff.member.totp_enrolled_at,
            "recovery_left": recovery_left,
            "sessions": sessions,
            "others": sessions.len() > 1,
            "passkeys": passkeys,
            "passkeys_unavailable": unavailable,
            "passkey_script": unavailable.is_none(),
        }),
    ))
}

async fn account(
    State(state): State<AppState>,
    staff: CurrentStaff,
) -> Result<Response, AdminError> {
    account_page(&state, &staff, StatusCode::OK, AccountForm::default()).await
}

async fn change_password(
    State(state): State<AppState>,
    Origin(origin): Origin,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let staff = &form.staff;
    let new = form.fields.text("new_password");
    if new != form.fields.text("new_password_again") {
        let error = "The two new passwords differ: type the same one twice.".to_owned();
        let page = AccountForm {
            password_error: Some(error),
            ..Default::default()
        };
        return account_page(&state, staff, StatusCode::UNPROCESSABLE_ENTITY, page).await;
    }
    let result = staff::change_password(
        &state.pool,
        &state.logins,
        &staff.actor(),
        &form.fields.text("current_password"),
        &new,
        origin.ip,
        &staff.session,
    )
    .await;
    let (status, error) = match result {
        Ok(()) => return Ok(super::done("/admin/account", "password-changed")),
        Err(PasswordChangeError::WrongCurrent) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "Your current password is not right.".to_owned(),
        ),
        Err(PasswordChangeError::Invalid(why)) => (StatusCode::UNPROCESSABLE_ENTITY, why),
        Err(PasswordChangeError::Login(LoginError::Internal(e))) => return Err(e.into()),
        Err(PasswordChangeError::Login(_)) => (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many wrong passwords. Try again later.".to_owned(),
        ),
        Err(PasswordChangeError::Staff(e)) => return Err(staff_error(e)),
    };
    let page = AccountForm {
        password_error: Some(error),
        ..Default::default()
    };
    account_page(&state, staff, status, page).await
}

async fn end_session(
    State(state): State<AppState>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let id = form
        .fields
        .text("session")
        .trim()
        .parse::<uuid::Uuid>()
        .map_err(|_| {
            AdminError::Status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "session: not a session of the list".into(),
            )
        })?;
    staff::end_session(&state.pool, &form.staff.actor(), id)
        .await
        .map_err(staff_error)?;
    if id == form.staff.session_id {
        return Ok(axum::response::Redirect::to("/admin/login").into_response());
    }
    Ok(super::done("/admin/account", "session-ended"))
}

async fn end_other_sessions(
    State(state): State<AppState>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    staff::end_other_sessions(&state.pool, &form.staff.actor(), &form.staff.session)
        .await
        .map_err(staff_error)?;
    Ok(super::done("/admin/account", "sessions-ended"))
}

/// The authenticator app: enrolment (QR code, secret, a code to confirm) when the member has
/// none, else what they have and the forms to replace the recovery codes or remove the app.
/// Reached by a session signed in all the way, or by one that must enrol first.
async fn two_factor(
    State(state): State<AppState>,
    Pending(staff): Pending,
) -> Result<Response, AdminError> {
    if staff.stage == Stage::SecondFactor {
        return Ok(axum::response::Redirect::to(super::SECOND_FACTOR_PAGE).into_response());
    }
    two_factor_page(&state, &staff, StatusCode::OK, None).await
}

async fn two_factor_page(
    state: &AppState,
    staff: &CurrentStaff,
    status: StatusCode,
    error: Option<String>,
) -> Result<Response, AdminError> {
    let actor = staff.actor();
    let unavailable = crate::ops::passkeys::available(&state.settings).err();
    let must_enrol = staff.stage == Stage::Enrol;
    let mut data = json!({
        "title": "Two-factor sign-in",
        "error": error,
        "must_enrol": must_enrol,
        "enrolled_at": staff.member.totp_enrolled_at,
        "passkeys_unavailable": unavailable,
        "passkey_script": must_enrol && unavailable.is_none(),
    });
    if staff.member.totp_enrolled_at.is_some() {
        data["recovery_left"] = second_factor::recovery_codes_left(&state.pool, &actor)
            .await
            .map_err(staff_error)?
            .into();
    } else {
        let enrolment =
            second_factor::enrolment(&state.pool, &state.settings, &actor, &staff.member)
                .await
                .map_err(staff_error)?;
        let qr = base64::engine::general_purpose::STANDARD.encode(enrolment.qr_svg);
        data["qr"] = format!("data:image/svg+xml;base64,{qr}").into();
        data["secret"] = spaced(&enrolment.secret).into();
        data["uri"] = enrolment.uri.into();
    }
    Ok(staff_page(state, staff, status, "two_factor", data))
}

/// A secret in groups of four, easier to type.
fn spaced(secret: &str) -> String {
    secret
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect::<Vec<_>>()
        .join(" ")
}

async fn confirm_totp(
    State(state): State<AppState>,
    Origin(origin): Origin,
    form: PendingForm,
) -> Result<Response, AdminError> {
    let staff = &form.staff;
    if staff.stage == Stage::SecondFactor {
        return Err(AdminError::Forbidden(
            "Give your second factor first.".into(),
        ));
    }
    let result = second_factor::confirm_totp(
        &state.pool,
        &state.settings,
        &state.logins,
        &staff.actor(),
        &form.fields.text("code"),
        origin.ip,
        &staff.session,
    )
    .await;
    match result {
        Ok((codes, renewed)) => {
            let page = recovery_codes_page(&state, &staff.renewed(&renewed), &codes, true);
            Ok(super::with_session(&state, page, &renewed))
        }
        Err(SecondFactorError::WrongCode) => {
            let error = "That code is not the one the app shows now: check the app lists this account, and type its current code.".to_owned();
            two_factor_page(&state, staff, StatusCode::UNPROCESSABLE_ENTITY, Some(error)).await
        }
        Err(SecondFactorError::Throttled) => Err(AdminError::TooMany(
            "Too many wrong codes. Try again later.".into(),
            state.logins.settings().login_window.as_secs().max(1),
        )),
        Err(SecondFactorError::Staff(StaffError::Refused(why))) => {
            two_factor_page(&state, staff, StatusCode::CONFLICT, Some(why)).await
        }
        Err(SecondFactorError::Staff(e)) => Err(staff_error(e)),
    }
}

/// The recovery codes, shown once (`enrolled`: just after enrolment), to a session signed in
/// all the way (after enrolment: the renewed one).
fn recovery_codes_page(
    state: &AppState,
    staff: &CurrentStaff,
    codes: &[crate::domain::second_factor::RecoveryCode],
    enrolled: bool,
) -> Response {
    let codes: Vec<String> = codes.iter().map(|c| c.display()).collect();
    staff_page(
        state,
        staff,
        StatusCode::OK,
        "recovery_codes",
        json!({ "title": "Recovery codes", "codes": codes, "enrolled": enrolled }),
    )
}

async fn remove_totp(
    State(state): State<AppState>,
    Origin(origin): Origin,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let staff = &form.staff;
    let result = second_factor::remove_totp(
        &state.pool,
        &state.settings,
        &state.logins,
        &staff.actor(),
        &form.fields.text("password"),
        origin.ip,
    )
    .await;
    match result {
        Ok(()) => Ok(super::done("/admin/account", "totp-removed")),
        Err(SecondFactorError::WrongCode) => {
            let error = "Your password is not right: the app stays.".to_owned();
            two_factor_page(&state, staff, StatusCode::UNPROCESSABLE_ENTITY, Some(error)).await
        }
        Err(SecondFactorError::Throttled) => Err(AdminError::TooMany(
            "Too many wrong passwords. Try again later.".into(),
            state.logins.settings().login_window.as_secs().max(1),
        )),
        Err(SecondFactorError::Staff(e)) => Err(staff_error(e)),
    }
}

async fn new_recovery_codes(
    State(state): State<AppState>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let staff = &form.staff;
    let codes = second_factor::new_recovery_codes(
        &state.pool,
        &state.settings,
        &staff.actor(),
        &staff.member,
        &staff.session,
    )
    .await
    .map_err(staff_error)?;
    Ok(recovery_codes_page(&state, staff, &codes, false))
}

/// An admin removes another member's second factors (a lost phone); their sessions end.
async fn reset_second_factor(
    State(state): State<AppState>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let email = form.fields.text("email");
    let reset = second_factor::reset(&state.pool, &state.settings, &form.staff.actor(), &email)
        .await
        .map_err(staff_error)?;
    let told = reset.told(email.trim());
    list_page(&state, &form.staff, StatusCode::OK, Some(told), None).await
}

async fn account_time_zone(
    State(state): State<AppState>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let zone = form.fields.text("time_zone");
    match staff::set_time_zone(&state.pool, &form.staff.actor(), &zone).await {
        Ok(()) => Ok(super::done("/admin/account", "account-saved")),
        Err(StaffError::Invalid(why)) => {
            let page = AccountForm {
                zone: Some(&zone),
                zone_error: Some(why),
                ..Default::default()
            };
            account_page(&state, &form.staff, StatusCode::UNPROCESSABLE_ENTITY, page).await
        }
        Err(e) => Err(staff_error(e)),
    }
}

async fn list_page(
    state: &AppState,
    staff: &CurrentStaff,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Result<Response, AdminError> {
    let members = staff::list(&state.pool, &staff.actor())
        .await
        .map_err(staff_error)?;
    Ok(staff_page(
        state,
        staff,
        status,
        "staff",
        json!({ "title": "Staff", "members": members, "notice": notice, "error": error }),
    ))
}

pub(super) fn staff_error(e: StaffError) -> AdminError {
    match e {
        StaffError::Forbidden(e) => AdminError::Forbidden(e.0),
        StaffError::Internal(e) => AdminError::Internal(e),
        other => AdminError::Status(StatusCode::UNPROCESSABLE_ENTITY, other.to_string()),
    }
}

async fn list(State(state): State<AppState>, staff: CurrentStaff) -> Result<Response, AdminError> {
    list_page(&state, &staff, StatusCode::OK, None, None).await
}

/// Adds an account with a generated password, shown once on the page.
async fn add(State(state): State<AppState>, form: AdminForm) -> Result<Response, AdminError> {
    let email = form.fields.text("email");
    let password = NewPassword::generate();
    let shown = password.expose().to_owned();
    let role = form.fields.text("role");
    match staff::add(&state.pool, &form.staff.actor(), &email, &role, password).await {
        Ok(role) => {
            let notice = format!(
                "{email} can now log in as {} with the password {shown} (shown once: pass it on safely).",
                role.as_str()
            );
            list_page(&state, &form.staff, StatusCode::OK, Some(notice), None).await
        }
        Err(e @ (StaffError::Forbidden(_) | StaffError::Internal(_))) => Err(staff_error(e)),
        Err(e) => {
            list_page(
                &state,
                &form.staff,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(e.to_string()),
            )
            .await
        }
    }
}

async fn remove(State(state): State<AppState>, form: AdminForm) -> Result<Response, AdminError> {
    let email = form.fields.text("email");
    staff::remove(&state.pool, &form.staff.actor(), &email)
        .await
        .map_err(staff_error)?;
    list_page(
        &state,
        &form.staff,
        StatusCode::OK,
        Some(format!("{} was removed.", email.trim())),
        None,
    )
    .await
}
