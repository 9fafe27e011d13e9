//! `/admin/look`: the look of the mails without HTML (a logo, the brand colour, the footer in
//! Markdown, social links). Every member of staff sees it; only an admin changes it. The rules
//! are in `ops::look`; raw template editing stays at `/admin/templates`.

use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use super::{check_origin, same, staff_page, AdminError, AdminForm, CurrentStaff, Fields};
use crate::app::AppState;
use crate::domain::look::{
    SocialLink, MAX_FOOTER_CHARS, MAX_LOGO_BYTES, MAX_SOCIAL_LINKS, SOCIAL_FIELDS,
};
use crate::domain::{FieldErrors, LookInput};
use crate::ops::look::{self, LookError, LookView};

/// Largest upload the logo form reads: a file somewhat too large is read and refused by
/// `ops::look` with its size; past this, the answer is `413` naming the logo all the same.
const MAX_UPLOAD_BYTES: usize = 4 * MAX_LOGO_BYTES;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/look", get(show).post(save))
        .route(
            "/admin/look/logo",
            post(upload).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
        )
        .route("/admin/look/logo/remove", post(remove))
}

/// What the form shows besides the look in use: what was sent back, and why it was refused.
#[derive(Default)]
struct Sent {
    input: Option<LookInput>,
    errors: FieldErrors,
}

fn rows(social: &[(String, String)]) -> Vec<serde_json::Value> {
    SOCIAL_FIELDS
        .iter()
        .enumerate()
        .map(|(i, (label_field, url_field))| {
            let (label, url) = social.get(i).cloned().unwrap_or_default();
            json!({
                "n": i + 1,
                "label_field": label_field, "label": label,
                "url_field": url_field, "url": url,
            })
        })
        .collect()
}

fn as_input(view: &LookView) -> LookInput {
    LookInput {
        colour: view.colour.clone(),
        footer: view.footer.clone(),
        social: view
            .social
            .iter()
            .map(|SocialLink { label, url }| (label.clone(), url.clone()))
            .collect(),
    }
}

async fn page(
    state: &AppState,
    staff: &CurrentStaff,
    status: StatusCode,
    sent: Sent,
) -> Result<Response, AdminError> {
    let current = look::current(&state.pool).await.map_err(AdminError::from)?;
    let input = sent.input.unwrap_or_else(|| as_input(&current));
    let mut rows = rows(&input.social);
    for row in &mut rows {
        for (field, key) in [("label_field", "label_error"), ("url_field", "url_error")] {
            if let Some(error) = row[field].as_str().and_then(|f| sent.errors.get(f)) {
                row[key] = error.clone().into();
            }
        }
    }
    Ok(staff_page(
        state,
        staff,
        status,
        "look",
        json!({
            "title": "Look of the mails",
            "look": current,
            "colour": input.colour,
            "footer": input.footer,
            "social": rows,
            "errors": sent.errors,
            "has_errors": !sent.errors.is_empty(),
            "max_footer": MAX_FOOTER_CHARS,
            "max_social": MAX_SOCIAL_LINKS,
            "max_logo_kib": MAX_LOGO_BYTES / 1024,
        }),
    ))
}

impl From<LookError> for AdminError {
    fn from(e: LookError) -> Self {
        match e {
            LookError::Forbidden(text) => AdminError::Forbidden(text),
            LookError::Invalid(errors) => AdminError::Status(
                StatusCode::UNPROCESSABLE_ENTITY,
                errors.into_values().collect::<Vec<_>>().join(" "),
            ),
            LookError::Internal(e) => AdminError::Internal(e),
        }
    }
}

async fn show(State(state): State<AppState>, staff: CurrentStaff) -> Result<Response, AdminError> {
    page(&state, &staff, StatusCode::OK, Sent::default()).await
}

fn input_from(fields: &Fields) -> LookInput {
    LookInput {
        colour: fields.text("colour"),
        footer: fields.text("footer"),
        social: SOCIAL_FIELDS
            .iter()
            .map(|(label, url)| (fields.text(label), fields.text(url)))
            .collect(),
    }
}

/// The answer to a change: back to the page, or the page again with what was refused.
async fn answered(
    state: &AppState,
    staff: &CurrentStaff,
    result: Result<LookView, LookError>,
    input: Option<LookInput>,
) -> Result<Response, AdminError> {
    match result {
        Ok(_) => Ok(super::done("/admin/look", "look-saved")),
        Err(LookError::Invalid(errors)) => {
            let sent = Sent { input, errors };
            page(state, staff, StatusCode::UNPROCESSABLE_ENTITY, sent).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn save(State(state): State<AppState>, form: AdminForm) -> Result<Response, AdminError> {
    let input = input_from(&form.fields);
    let result = look::save(&state.pool, &form.staff.actor(), &input).await;
    answered(&state, &form.staff, result, Some(input)).await
}

/// The logo form (multipart): the session's CSRF token must be among its fields, as for
/// every form.
async fn upload(
    State(state): State<AppState>,
    staff: CurrentStaff,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Result<Response, AdminError> {
    check_origin(&state, &headers)?;
    let bad = |e: axum::extract::multipart::MultipartError| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => AdminError::Status(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "logo: the file is larger than {} KiB.",
                MAX_LOGO_BYTES / 1024
            ),
        ),
        status => AdminError::Status(status, e.body_text()),
    };
    let (mut csrf, mut file) = (String::new(), Vec::new());
    while let Some(field) = multipart.next_field().await.map_err(bad)? {
        match field.name().unwrap_or("") {
            "logo" => file = field.bytes().await.map_err(bad)?.to_vec(),
            "csrf_token" => csrf = field.text().await.map_err(bad)?,
            _ => {}
        }
    }
    if !same(&csrf, &staff.csrf_token(&state)) {
        return Err(AdminError::Forbidden(
            "The form has expired or did not come from this site. Go back, reload the page and try again.".into(),
        ));
    }
    let result = look::set_logo(&state.pool, &staff.actor(), file).await;
    answered(&state, &staff, result, None).await
}

async fn remove(State(state): State<AppState>, form: AdminForm) -> Result<Response, AdminError> {
    let result = look::remove_logo(&state.pool, &form.staff.actor()).await;
    answered(&state, &form.staff, result, None).await
}
