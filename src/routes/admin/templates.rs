//! `/admin/templates`: the mail templates with their current version; the editor of one (its
//! three parts, a preview with sample data, save, its versions with a revert each, revert to
//! the shipped default). Every member of staff reads and previews; only an admin saves or
//! reverts. The rules are in `ops::templates`.

use super::done;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use super::{staff_page, AdminError, AdminForm, CurrentStaff, Fields};
use crate::app::AppState;
use crate::mail::{MailSource, RenderedMail};
use crate::ops::templates::{self, RevertTo, TemplateOpError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/templates", get(list))
        .route("/admin/templates/{name}", get(edit).post(save))
        .route("/admin/templates/{name}/preview", post(preview))
        .route(
            "/admin/templates/{name}/preview-frame",
            get(frame_current).post(frame_preview),
        )
        .route("/admin/templates/{name}/revert", post(revert))
}

impl From<TemplateOpError> for AdminError {
    fn from(e: TemplateOpError) -> Self {
        match e {
            TemplateOpError::NotFound | TemplateOpError::NoVersion => AdminError::NotFound,
            TemplateOpError::Forbidden => AdminError::Forbidden(e.to_string()),
            TemplateOpError::Invalid(e) => {
                AdminError::Status(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
            }
            TemplateOpError::Internal(e) => AdminError::Internal(e),
        }
    }
}

async fn list(State(state): State<AppState>, staff: CurrentStaff) -> Result<Response, AdminError> {
    let all = templates::all(&state.pool, &state.mail_templates).await?;
    Ok(staff_page(
        &state,
        &staff,
        StatusCode::OK,
        "templates",
        json!({ "title": "Mail templates", "templates": all }),
    ))
}

/// What the editor shows besides the saved versions: the parts in the textareas (the current
/// version, or what was just sent back), an error naming a part, a preview.
struct Editor {
    source: Option<MailSource>,
    error: Option<String>,
    preview: Option<RenderedMail>,
}

async fn editor_page(
    state: &AppState,
    staff: &CurrentStaff,
    name: &str,
    status: StatusCode,
    editor: Editor,
) -> Result<Response, AdminError> {
    let current = templates::current(&state.pool, &state.mail_templates, name).await?;
    let versions = templates::versions(&state.pool, &state.mail_templates, name).await?;
    let source = editor.source.unwrap_or_else(|| MailSource {
        subject: current.subject.clone(),
        text: current.text.clone(),
        html: current.html.clone(),
    });
    Ok(staff_page(
        state,
        staff,
        status,
        "template_edit",
        json!({
            "title": format!("Mail template {name}"),
            "name": name,
            "current": current,
            "versions": versions,
            "subject": source.subject, "text": source.text, "html": source.html,
            "error": editor.error,
            "preview": editor.preview.map(|p| json!({ "subject": p.subject, "text": p.text })),
        }),
    ))
}

async fn edit(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path(name): Path<String>,
) -> Result<Response, AdminError> {
    let editor = Editor {
        source: None,
        error: None,
        preview: None,
    };
    editor_page(&state, &staff, &name, StatusCode::OK, editor).await
}

fn source_from(fields: &Fields) -> MailSource {
    MailSource {
        subject: fields.text("subject"),
        text: fields.text("text"),
        html: fields.text("html"),
    }
}

async fn save(
    State(state): State<AppState>,
    Path(name): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let admin = form.admin()?;
    let source = source_from(&form.fields);
    let actor = admin.0.actor();
    match templates::save(&state.pool, &state.mail_templates, &actor, &name, &source).await {
        Ok(_) => Ok(done(&format!("/admin/templates/{name}"), "template-saved")),
        Err(TemplateOpError::Invalid(e)) => {
            let editor = Editor {
                source: Some(source),
                error: Some(format!("Not saved: {e}")),
                preview: None,
            };
            editor_page(
                &state,
                &admin.0,
                &name,
                StatusCode::UNPROCESSABLE_ENTITY,
                editor,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

/// The parts sent back rendered with sample data, saving nothing.
async fn preview(
    State(state): State<AppState>,
    Path(name): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let source = source_from(&form.fields);
    let (status, editor) = match templates::preview(&state.mail_templates, &name, &source).await {
        Ok(rendered) => (
            StatusCode::OK,
            Editor {
                source: Some(source),
                error: None,
                preview: Some(rendered),
            },
        ),
        Err(TemplateOpError::Invalid(e)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Editor {
                source: Some(source),
                error: Some(format!("No preview: {e}")),
                preview: None,
            },
        ),
        Err(e) => return Err(e.into()),
    };
    editor_page(&state, &form.staff, &name, status, editor).await
}

/// The HTML part of the template in use, rendered with sample data, for the editor's frame.
async fn frame_current(
    State(state): State<AppState>,
    _staff: CurrentStaff,
    Path(name): Path<String>,
) -> Result<Response, AdminError> {
    let current = templates::current(&state.pool, &state.mail_templates, &name).await?;
    let source = MailSource {
        subject: current.subject,
        text: current.text,
        html: current.html,
    };
    frame(templates::preview(&state.mail_templates, &name, &source).await)
}

/// The HTML part of the parts sent (not saved), rendered with sample data, for the editor's
/// frame (the form's "Preview the HTML mail" button targets it).
async fn frame_preview(
    State(state): State<AppState>,
    Path(name): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let source = source_from(&form.fields);
    frame(templates::preview(&state.mail_templates, &name, &source).await)
}

/// The rendered HTML part, or why there is none, under the mail frame's own policy (so the
/// mail's inline styles apply, as they do in the update preview).
fn frame(rendered: Result<RenderedMail, TemplateOpError>) -> Result<Response, AdminError> {
    let response = match rendered {
        Ok(mail) => Html(mail.html).into_response(),
        Err(TemplateOpError::Invalid(e)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("No preview: {e}"),
        )
            .into_response(),
        Err(e) => return Err(e.into()),
    };
    Ok(super::updates::in_mail_frame(response))
}

async fn revert(
    State(state): State<AppState>,
    Path(name): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let admin = form.admin()?;
    let to = if form.fields.get("default").is_some() {
        RevertTo::Default
    } else {
        let version = form
            .fields
            .text("version")
            .trim()
            .parse::<i32>()
            .map_err(|_| {
                AdminError::Status(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "version: a version number is needed.".into(),
                )
            })?;
        RevertTo::Version(version)
    };
    let actor = admin.0.actor();
    templates::revert(&state.pool, &state.mail_templates, &actor, &name, to).await?;
    Ok(done(
        &format!("/admin/templates/{name}"),
        "template-reverted",
    ))
}
