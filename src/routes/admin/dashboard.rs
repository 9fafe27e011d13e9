//! `GET /admin`: subscribers by status and by list, sign-ups and unsubscribes per day for the
//! last 90 days (an SVG chart), and the last updates with their progress.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::json;

use super::{chart, staff_page, AdminError, CurrentStaff};
use crate::app::AppState;
use crate::ops::{feeds, lists, subscribers, updates};

/// Days the chart covers.
const CHART_DAYS: i32 = 90;
/// Updates listed.
const LAST_UPDATES: i64 = 10;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin", get(dashboard))
}

async fn dashboard(
    State(state): State<AppState>,
    staff: CurrentStaff,
) -> Result<Response, AdminError> {
    let pool = &state.pool;
    let internal = |e: sqlx::Error| AdminError::Internal(e.into());
    let by_status = subscribers::subscribers_by_status(pool)
        .await
        .map_err(internal)?;
    let lists = lists::all(pool).await?;
    let zone = state.settings.server.time_zone.name();
    let days = subscribers::daily_signups_and_unsubscribes(pool, CHART_DAYS, zone)
        .await
        .map_err(internal)?;
    let updates = updates::recent(pool, LAST_UPDATES)
        .await
        .map_err(internal)?;
    let (awaiting_review, failing_feeds) =
        feeds::needing_attention(pool).await.map_err(internal)?;
    let budget: Vec<_> = crate::ops::engagement::complaint_budget(pool)
        .await?
        .iter()
        .map(super::updates::provider_row)
        .collect();
    let busy_days: Vec<_> = days
        .iter()
        .filter(|(_, s, u)| *s > 0 || *u > 0)
        .map(|(d, s, u)| json!({ "day": d, "signups": s, "unsubscribes": u }))
        .collect();
    Ok(staff_page(
        &state,
        &staff,
        StatusCode::OK,
        "dashboard",
        json!({
            "title": "Dashboard",
            "zone": zone,
            "by_status": by_status.iter().map(|(s, n)| json!({ "status": s, "count": n })).collect::<Vec<_>>(),
            "lists": lists,
            "chart": chart::daily_svg(&days),
            "busy_days": busy_days,
            "updates": updates,
            "awaiting_review": awaiting_review,
            "failing_feeds": failing_feeds,
            "budget": budget,
            "budget_days": crate::ops::engagement::BUDGET_DAYS,
        }),
    ))
}
