//! `/api/v1/templates/{name}`: the mail templates, their saved versions, saving and reverting.
//! The rules (who may change, what compiles) are in `ops::templates`.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ApiClient, ApiError, ApiJson};
use crate::app::AppState;
use crate::mail::MailSource;
use crate::ops::templates::{self, RevertTo, TemplateView};
use crate::ops::Actor;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/templates/{name}", get(show).put(save))
        .route("/templates/{name}/versions", get(versions))
        .route("/templates/{name}/versions/{version}", get(version))
        .route("/templates/{name}/revert", post(revert))
}

/// A template's version: its three parts, who saved it and when (both `null` and `version`
/// `null` for the shipped template never saved); `is_default`: the parts are the shipped ones.
#[derive(Debug, Serialize)]
pub struct TemplateBody {
    pub name: String,
    pub version: Option<i32>,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub is_default: bool,
    pub reverted_from: Option<i32>,
    pub saved_by: Option<String>,
    pub saved_at: Option<DateTime<Utc>>,
}

impl From<TemplateView> for TemplateBody {
    fn from(v: TemplateView) -> Self {
        Self {
            name: v.name,
            version: v.version,
            subject: v.subject,
            text: v.text,
            html: v.html,
            is_default: v.is_default,
            reverted_from: v.reverted_from,
            saved_by: v.saved_by,
            saved_at: v.saved_at,
        }
    }
}

/// `PUT` body: the three parts as handlebars source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateInput {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Saved versions, newest first.
#[derive(Debug, Serialize)]
pub struct VersionList {
    pub versions: Vec<TemplateBody>,
}

/// `POST …/revert` body: `{"version": n}` or `{"default": true}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevertInput {
    pub version: Option<i32>,
    #[serde(default)]
    pub default: bool,
}

async fn show(
    State(state): State<AppState>,
    _: ApiClient,
    Path(name): Path<String>,
) -> Result<Json<TemplateBody>, ApiError> {
    let view = templates::current(&state.pool, &state.mail_templates, &name).await?;
    Ok(Json(view.into()))
}

async fn save(
    State(state): State<AppState>,
    client: ApiClient,
    Path(name): Path<String>,
    ApiJson(input): ApiJson<TemplateInput>,
) -> Result<Json<TemplateBody>, ApiError> {
    let source = MailSource {
        subject: input.subject,
        text: input.text,
        html: input.html,
    };
    let actor = Actor::ApiToken(client.token_id);
    let view = templates::save(&state.pool, &state.mail_templates, &actor, &name, &source).await?;
    Ok(Json(view.into()))
}

async fn versions(
    State(state): State<AppState>,
    _: ApiClient,
    Path(name): Path<String>,
) -> Result<Json<VersionList>, ApiError> {
    let versions = templates::versions(&state.pool, &state.mail_templates, &name).await?;
    Ok(Json(VersionList {
        versions: versions.into_iter().map(TemplateBody::from).collect(),
    }))
}

async fn version(
    State(state): State<AppState>,
    _: ApiClient,
    Path((name, version)): Path<(String, i32)>,
) -> Result<Json<TemplateBody>, ApiError> {
    let view = templates::version(&state.pool, &state.mail_templates, &name, version).await?;
    Ok(Json(view.into()))
}

async fn revert(
    State(state): State<AppState>,
    client: ApiClient,
    Path(name): Path<String>,
    ApiJson(input): ApiJson<RevertInput>,
) -> Result<Json<TemplateBody>, ApiError> {
    let to = match (input.version, input.default) {
        (Some(n), false) => RevertTo::Version(n),
        (None, true) => RevertTo::Default,
        _ => {
            return Err(ApiError::Fields(std::collections::BTreeMap::from([(
                "version".to_owned(),
                "Give either `version` or `\"default\": true`.".to_owned(),
            )])))
        }
    };
    let actor = Actor::ApiToken(client.token_id);
    let view = templates::revert(&state.pool, &state.mail_templates, &actor, &name, to).await?;
    Ok(Json(view.into()))
}
