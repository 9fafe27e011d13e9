//! `/api/v1/updates`: create, change, schedule, send, pause, resume, cancel, test, inspect.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Digest;
use uuid::Uuid;

use super::{ApiClient, ApiError, ApiJson};
use crate::app::AppState;
use crate::domain::UpdateInput;
use crate::ops::updates::{self, UpdateError};
use crate::ops::Actor;
use crate::store::idempotency::{self, Claim};
use crate::store::updates::Action;

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

/// A keyed claim left unanswered this long was abandoned by a process that died.
const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// Runs `work` once per Idempotency-Key (when one is given) and replays its answer after; the
/// same key with another request (`method`, `path`, `body`) is refused with 422.
///
/// The keyed part (claiming the key, the work, recording its answer) runs in its own task: a
/// client that disconnects mid-request drops this handler, not that task, so the key always
/// ends answered (or released, when the work failed) and a retry gets the answer instead of
/// "still running" forever.
async fn once<F>(
    state: &AppState,
    client: &ApiClient,
    headers: &HeaderMap,
    (scope, request): (&str, &[u8]),
    work: F,
) -> Result<Response, ApiError>
where
    F: std::future::Future<Output = Result<(StatusCode, Value), ApiError>> + Send + 'static,
{
    let Some(key) = idempotency_key(headers)? else {
        let (status, body) = work.await?;
        return Ok((status, Json(body)).into_response());
    };
    let hash: [u8; 32] = sha2::Sha256::digest(request).into();
    let (pool, token, scope) = (state.pool.clone(), client.token_id, scope.to_owned());
    let keyed = tokio::spawn(async move {
        let internal = |e: sqlx::Error| ApiError::Internal(e.into());
        match idempotency::claim(&pool, token, &key, &scope, &hash, ABANDONED_AFTER)
            .await
            .map_err(internal)?
        {
            Claim::Done(status, body) => {
                Ok((StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body))
            }
            Claim::InProgress => Err(ApiError::Status(
                StatusCode::CONFLICT,
                "A request with this Idempotency-Key is still running.".into(),
            )),
            Claim::Mismatch => Err(ApiError::Status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "This Idempotency-Key was used for a different request: use a new key.".into(),
            )),
            Claim::Fresh => {
                let result = work.await;
                let recorded = match &result {
                    Ok((status, body)) => {
                        idempotency::store(&pool, token, &key, &scope, status.as_u16(), body).await
                    }
                    Err(_) => idempotency::release(&pool, token, &key, &scope).await,
                };
                if let Err(e) = &recorded {
                    tracing::error!(error = ?e, "recording an idempotent answer failed");
                }
                recorded.map_err(internal)?;
                result
            }
        }
    });
    let (status, body) = keyed
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("keyed request panicked: {e}")))??;
    Ok((status, Json(body)).into_response())
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
    let request = serde_json::to_vec(&input).map_err(|e| ApiError::Internal(e.into()))?;
    let (pool, templates) = (state.pool.clone(), state.mail_templates.cached());
    let settings = state.settings.clone();
    once(
        &state,
        &client,
        &headers,
        ("create", &request),
        async move {
            let view = updates::create(&pool, &templates, &settings.mail, &input).await?;
            Ok((StatusCode::CREATED, to_json(&view)?))
        },
    )
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
    let view = updates::patch(
        &state.pool,
        &state.mail_templates.cached(),
        &state.settings.mail,
        update_id(&id)?,
        patch,
    )
    .await?;
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
    let scope = format!("send:{id}");
    let (pool, settings) = (state.pool.clone(), state.settings.clone());
    let actor = Actor::ApiToken(client.token_id);
    once(&state, &client, &headers, (&scope, b""), async move {
        let view = updates::act(&pool, &settings, &actor, id, Action::SendNow).await?;
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
