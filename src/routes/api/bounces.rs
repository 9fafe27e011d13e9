//! `/api/v1/bounces`: bounce and complaint reports received after sending, for staff to read.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Always, ApiClient, ApiError, BadQuery};
use crate::app::AppState;
use crate::ops::bounces::{self, Filter, ReportView};
use crate::ops::updates::MAX_PAGE;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct BounceQuery {
    /// Only the reports about this update's mails.
    update: Option<Uuid>,
    /// Only the reports that matched no mail.
    #[serde(default)]
    unmatched: bool,
    /// Reports with an id above this one (the previous page's `next_after`).
    #[serde(default)]
    after: i64,
    /// Reports per page, 1 to 1,000 (default 100; values outside are brought into range).
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
struct Reports {
    reports: Vec<ReportView>,
    /// Give this as `after` for the next page; null on the last page.
    next_after: Option<i64>,
}

/// `GET /api/v1/bounces?update=ID | ?unmatched=true [&after=0&limit=100]`: reports oldest
/// first, each with its kind, source, status code, detail, the mail it matched and its raw
/// text (cut to `bounce.max_report_bytes`); `next_after` pages on. `limit` 1 to 1,000.
#[utoipa::path(
    get,
    path = "/bounces",
    tag = "bounces",
    params(BounceQuery),
    responses((status = 200, description = "One page of reports.", body = Reports),
        Always, BadQuery)
)]
async fn list(
    State(state): State<AppState>,
    _: ApiClient,
    query: Result<Query<BounceQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Reports>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::Status(StatusCode::BAD_REQUEST, e.body_text()))?;
    let filter = match (q.update, q.unmatched) {
        (Some(_), true) => {
            return Err(ApiError::Status(
                StatusCode::BAD_REQUEST,
                "Ask for `update` or `unmatched`, not both.".into(),
            ))
        }
        (Some(id), false) => Filter::Update(id),
        (None, true) => Filter::Unmatched,
        (None, false) => Filter::All,
    };
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let rows = bounces::list(&state.pool, &filter, q.after, limit)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let next_after = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    Ok(Json(Reports {
        reports: rows,
        next_after,
    }))
}
