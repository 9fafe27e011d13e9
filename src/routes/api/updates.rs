//! `/api/v1/updates`: create, change, schedule, send, pause, resume, cancel, test, inspect.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{ApiClient, ApiError, ApiJson};
use crate::app::AppState;
use crate::domain::UpdateInput;
use crate::ops::Actor;
use crate::store::idempotency::{self, Claim};
use crate::store::updates::Action;
use crate::updates::{self, UpdateError};

/// Longest Idempotency-Key accepted.
const MAX_IDEMPOTENCY_KEY: usize = 200;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/updates", post(create))
        .route("/updates/{id}", get(show).patch(change))
        .route("/updates/{id}/schedule", post(schedule))
        .route("/updates/{id}/send", post(send_now))
        .route("/updates/{id}/pause", post(pause))
        .route("/updates/{id}/resume", post(resume))
        .route("/updates/{id}/cancel", post(cancel))
        .route("/updates/{id}/test", post(test))
        .route("/updates/{id}/deliveries", get(deliveries))
        .route("/updates/{id}/retry-failed", post(retry_failed))
}

fn update_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::Update(UpdateError::NotFound))
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(k) if !k.trim().is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY => {
            Ok(Some(k.trim().to_owned()))
        }
        _ => Err(ApiError::Status(
            StatusCode::BAD_REQUEST,
            format!("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible characters."),
        )),
    }
}

/// Runs `work` once per Idempotency-Key (when one is given) and replays its answer after.
async fn once<F>(
    state: &AppState,
    client: &ApiClient,
    headers: &HeaderMap,
    scope: &str,
    work: F,
) -> Result<Response, ApiError>
where
    F: std::future::Future<Output = Result<(StatusCode, Value), ApiError>>,
{
    let Some(key) = idempotency_key(headers)? else {
        let (status, body) = work.await?;
        return Ok((status, Json(body)).into_response());
    };
    let internal = |e: sqlx::Error| ApiError::Internal(e.into());
    match idempotency::claim(&state.pool, client.token_id, &key, scope)
        .await
        .map_err(internal)?
    {
        Claim::Done(status, body) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            Ok((status, Json(body)).into_response())
        }
        Claim::InProgress => Err(ApiError::Status(
            StatusCode::CONFLICT,
            "A request with this Idempotency-Key is still running.".into(),
        )),
        Claim::Fresh => match work.await {
            Ok((status, body)) => {
                idempotency::store(
                    &state.pool,
                    client.token_id,
                    &key,
                    scope,
                    status.as_u16(),
                    &body,
                )
                .await
                .map_err(internal)?;
                Ok((status, Json(body)).into_response())
            }
            Err(e) => {
                idempotency::release(&state.pool, client.token_id, &key, scope)
                    .await
                    .map_err(internal)?;
                Err(e)
            }
        },
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError::Internal(e.into()))
}

async fn create(
    State(state): State<AppState>,
    client: ApiClient,
    headers: HeaderMap,
    ApiJson(input): ApiJson<UpdateInput>,
) -> Result<Response, ApiError> {
    once(&state, &client, &headers, "create", async {
        let view = updates::create(&state.pool, &state.mail_templates, &input).await?;
        Ok((StatusCode::CREATED, to_json(&view)?))
    })
    .await
}

async fn show(
    State(state): State<AppState>,
    _: ApiClient,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let view = updates::view(&state.pool, update_id(&id)?).await?;
    Ok(Json(to_json(&view)?))
}

async fn change(
    State(state): State<AppState>,
    _: ApiClient,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<UpdateInput>,
) -> Result<Json<Value>, ApiError> {
    let view = updates::patch(&state.pool, &state.mail_templates, update_id(&id)?, patch).await?;
    Ok(Json(to_json(&view)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleBody {
    at: String,
}

async fn schedule(
    State(state): State<AppState>,
    client: ApiClient,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ScheduleBody>,
) -> Result<Json<Value>, ApiError> {
    let at = updates::parse_time(&body.at)?;
    act(&state, &client, &id, Action::Schedule(at)).await
}

async fn send_now(
    State(state): State<AppState>,
    client: ApiClient,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = update_id(&id)?;
    once(&state, &client, &headers, &format!("send:{id}"), async {
        let actor = Actor::ApiToken(client.token_id);
        let view = updates::act(&state.pool, &state.settings, &actor, id, Action::SendNow).await?;
        Ok((StatusCode::OK, to_json(&view)?))
    })
    .await
}

async fn act(
    state: &AppState,
    client: &ApiClient,
    id: &str,
    action: Action,
) -> Result<Json<Value>, ApiError> {
    let actor = Actor::ApiToken(client.token_id);
    let view = updates::act(&state.pool, &state.settings, &actor, update_id(id)?, action).await?;
    Ok(Json(to_json(&view)?))
}

async fn pause(
    State(state): State<AppState>,
    client: ApiClient,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    act(&state, &client, &id, Action::Pause).await
}

async fn resume(
    State(state): State<AppState>,
    client: ApiClient,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    act(&state, &client, &id, Action::Resume).await
}

async fn cancel(
    State(state): State<AppState>,
    client: ApiClient,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    act(&state, &client, &id, Action::Cancel).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestBody {
    to: String,
}

async fn test(
    State(state): State<AppState>,
    _: ApiClient,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TestBody>,
) -> Result<Response, ApiError> {
    updates::send_test(&state.pool, update_id(&id)?, &body.to).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "status": "queued" }))).into_response())
}

#[derive(Deserialize)]
struct DeliveryQuery {
    status: Option<String>,
    #[serde(default)]
    after: i64,
    limit: Option<i64>,
}

async fn deliveries(
    State(state): State<AppState>,
    _: ApiClient,
    Path(id): Path<String>,
    query: Result<Query<DeliveryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::Status(StatusCode::BAD_REQUEST, e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    let rows = updates::deliveries(
        &state.pool,
        update_id(&id)?,
        q.status.as_deref(),
        q.after,
        limit,
    )
    .await?;
    let next_after = (rows.len() as i64 == limit.clamp(1, updates::MAX_PAGE))
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    Ok(Json(
        json!({ "deliveries": rows, "next_after": next_after }),
    ))
}

async fn retry_failed(
    State(state): State<AppState>,
    client: ApiClient,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let actor = Actor::ApiToken(client.token_id);
    let requeued = updates::retry_failed(&state.pool, &actor, update_id(&id)?).await?;
    Ok(Json(json!({ "requeued": requeued })))
}
