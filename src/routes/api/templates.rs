//! `/api/v1/templates/{name}`: the mail templates, their saved versions, saving and reverting.
//! The rules (who may change, what compiles) are in `ops::templates`.

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Always, ApiClient, ApiError, ApiJson, ErrorBody, JsonBody, NotFound};
use crate::app::AppState;
use crate::mail::MailSource;
use crate::ops::templates::{self, RevertTo, TemplateView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(show, save))
        .routes(routes!(versions))
        .routes(routes!(version))
        .routes(routes!(revert))
}

/// The path parameter naming a template.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct Name {
    /// The template's name: `update` (and any other update template), `confirmation`,
    /// `welcome` or `notice`.
    name: String,
}

/// The path parameters naming one saved version.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct NameAndVersion {
    /// The template's name.
    name: String,
    /// The version number (1 for the first saved version).
    version: i32,
}

/// `PUT` body: the three parts as handlebars source.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateInput {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Saved versions, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionList {
    pub versions: Vec<TemplateView>,
}

/// `POST …/revert` body: `{"version": n}` or `{"default": true}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevertInput {
    pub version: Option<i32>,
    #[serde(default)]
    pub default: bool,
}

/// The template in use: the newest saved version, or the shipped one.
#[utoipa::path(
    get,
    path = "/templates/{name}",
    tag = "templates",
    params(Name),
    responses((status = 200, description = "The template in use.", body = TemplateView), Always, NotFound)
)]
async fn show(
    State(state): State<AppState>,
    _: ApiClient,
    Path(name): Path<String>,
) -> Result<Json<TemplateView>, ApiError> {
    let view = templates::current(&state.pool, &state.mail_templates, &name).await?;
    Ok(Json(view))
}

/// Saves a new version, in use at once by every process; only if each part compiles, its
/// partials are bounded (named, known, no cycle, nesting at most 32 levels), it renders with
/// sample data within `templates.max_output_bytes` and `templates.max_render_ms`, and it shows
/// what its kind of mail must show (an update: the unsubscribe and preferences links and the
/// postal address in text and HTML); else 422 naming the part and why (with line and column
/// where handlebars gives them). Each part at most 200,000 bytes.
#[utoipa::path(
    put,
    path = "/templates/{name}",
    security(("api_token" = ["send"])),
    tag = "templates",
    params(Name),
    request_body = TemplateInput,
    responses(
        (status = 200, description = "The saved version, now in use.", body = TemplateView),
        Always, JsonBody, NotFound
    )
)]
async fn save(
    State(state): State<AppState>,
    client: ApiClient,
    Path(name): Path<String>,
    ApiJson(input): ApiJson<TemplateInput>,
) -> Result<Json<TemplateView>, ApiError> {
    let source = MailSource {
        subject: input.subject,
        text: input.text,
        html: input.html,
    };
    let actor = client.actor();
    let view = templates::save(&state.pool, &state.mail_templates, &actor, &name, &source).await?;
    Ok(Json(view))
}

/// Every saved version, newest first.
#[utoipa::path(
    get,
    path = "/templates/{name}/versions",
    tag = "templates",
    params(Name),
    responses((status = 200, description = "The saved versions.", body = VersionList), Always, NotFound)
)]
async fn versions(
    State(state): State<AppState>,
    _: ApiClient,
    Path(name): Path<String>,
) -> Result<Json<VersionList>, ApiError> {
    let versions = templates::versions(&state.pool, &state.mail_templates, &name).await?;
    Ok(Json(VersionList { versions }))
}

/// One saved version.
#[utoipa::path(
    get,
    path = "/templates/{name}/versions/{version}",
    tag = "templates",
    params(NameAndVersion),
    responses(
        (status = 200, description = "The version.", body = TemplateView),
        (status = 400, description = "The version is not a number.", body = ErrorBody),
        Always, NotFound
    )
)]
async fn version(
    State(state): State<AppState>,
    _: ApiClient,
    Path((name, version)): Path<(String, i32)>,
) -> Result<Json<TemplateView>, ApiError> {
    let view = templates::version(&state.pool, &state.mail_templates, &name, version).await?;
    Ok(Json(view))
}

/// Reverts to a saved version (`{"version": n}`) or to the shipped template
/// (`{"default": true}`): a new version with that content, in use at once.
#[utoipa::path(
    post,
    path = "/templates/{name}/revert",
    security(("api_token" = ["send"])),
    tag = "templates",
    params(Name),
    request_body = RevertInput,
    responses(
        (status = 200, description = "The new version, now in use.", body = TemplateView),
        Always, JsonBody, NotFound
    )
)]
async fn revert(
    State(state): State<AppState>,
    client: ApiClient,
    Path(name): Path<String>,
    ApiJson(input): ApiJson<RevertInput>,
) -> Result<Json<TemplateView>, ApiError> {
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
    let actor = client.actor();
    let view = templates::revert(&state.pool, &state.mail_templates, &actor, &name, to).await?;
    Ok(Json(view))
}
