//! `/api/v1/updates`: create, change, schedule, send, unschedule, pause, resume, cancel, test,
//! inspect.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Digest;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{
    Always, ApiClient, ApiError, ApiJson, BadQuery, ErrorBody, JsonBody, MaybeJson, NotFound,
};
use crate::app::AppState;
use crate::domain::UpdateInput;
use crate::ops::idempotency::{self, Claim};
use crate::ops::updates::{self, Action, DeliveryRow, UpdateError, UpdateView};

/// Longest Idempotency-Key accepted.
const MAX_IDEMPOTENCY_KEY: usize = 200;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(show, change))
        .routes(routes!(schedule))
        .routes(routes!(send_now))
        .routes(routes!(unschedule))
        .routes(routes!(pause))
        .routes(routes!(resume))
        .routes(routes!(cancel))
        .routes(routes!(test))
        .routes(routes!(deliveries))
        .routes(routes!(retry_failed))
        .routes(routes!(report))
        .routes(routes!(check_links))
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

/// Creates a draft update. Texts are bounded (subject and preheader 200 characters, intro
/// 20,000, at most 50 news items and 50 lists); links are http(s) or mailto. With an
/// `Idempotency-Key`, a repeat of the same request answers as the first did.
#[utoipa::path(
    post,
    path = "/updates",
    tag = "updates",
    params(IdempotencyKey),
    request_body = UpdateInput,
    responses(
        (status = 201, description = "The draft.", body = UpdateView),
        (status = 409, description = "A request with this Idempotency-Key is still running.",
            body = ErrorBody),
        Always, JsonBody
    )
)]
async fn create(
    State(state): State<AppState>,
    client: ApiClient,
    headers: HeaderMap,
    ApiJson(input): ApiJson<UpdateInput>,
) -> Result<Response, ApiError> {
    let request = serde_json::to_vec(&input).map_err(|e| ApiError::Internal(e.into()))?;
    let (pool, templates) = (state.pool.clone(), state.mail_templates.cached());
    let settings = state.settings.clone();
    let actor = client.actor();
    once(
        &state,
        &client,
        &headers,
        ("create", &request),
        async move {
            let view = updates::create(&pool, &templates, &settings.mail, &actor, &input).await?;
            Ok((StatusCode::CREATED, to_json(&view)?))
        },
    )
    .await
}

/// One update with its delivery counts.
#[utoipa::path(
    get,
    path = "/updates/{id}",
    tag = "updates",
    params(UpdateId),
    responses((status = 200, description = "The update.", body = UpdateView), Always, NotFound)
)]
async fn show(
    State(state): State<AppState>,
    _: ApiClient,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let view = updates::view(&state.pool, update_id(&id)?).await?;
    Ok(Json(to_json(&view)?))
}

/// Changes a draft: the fields given replace the update's, absent ones stay; a change makes a
/// new `version`. A scheduled, approved or waiting update is frozen (409): unschedule it first.
#[utoipa::path(
    patch,
    path = "/updates/{id}",
    tag = "updates",
    params(UpdateId),
    request_body = UpdateInput,
    responses(
        (status = 200, description = "The changed update.", body = UpdateView),
        (status = 409, description = "The update is no longer a draft (unschedule it first).",
            body = ErrorBody),
        Always, JsonBody, NotFound
    )
)]
async fn change(
    State(state): State<AppState>,
    client: ApiClient,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<UpdateInput>,
) -> Result<Json<Value>, ApiError> {
    let view = updates::patch(
        &state.pool,
        &state.mail_templates.cached(),
        &state.settings.mail,
        &client.actor(),
        update_id(&id)?,
        patch,
    )
    .await?;
    Ok(Json(to_json(&view)?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ScheduleBody {
    /// When to send, RFC 3339 with an offset (`2026-12-24T09:00:00-05:00`).
    at: String,
    /// The update's version this schedule is for (`version` of `GET /updates/{id}`); when
    /// given and the update has changed since, it is refused (409).
    #[serde(default)]
    version: Option<i32>,
}

/// The optional body of a send.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SendBody {
    /// The update's version this send is for; when given and the update has changed since, the
    /// send is refused (409).
    #[serde(default)]
    version: Option<i32>,
}

/// The path parameter naming an update.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct UpdateId {
    /// The update's id.
    id: Uuid,
}

/// An optional `Idempotency-Key` header.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct IdempotencyKey {
    /// 1 to 200 visible characters; the same key with the same request replays the first
    /// answer, with another request it is refused (422).
    #[param(rename = "Idempotency-Key")]
    idempotency_key: Option<String>,
}

/// Schedules an update (admin rights). An update waiting for a second admin's approval
/// answers with status `awaiting_approval`.
#[utoipa::path(
    post,
    path = "/updates/{id}/schedule",
    security(("api_token" = ["send"])),
    tag = "updates",
    params(UpdateId),
    request_body = ScheduleBody,
    responses(
        (status = 200, description = "The scheduled update.", body = UpdateView),
        (status = 409, description = "The update cannot be scheduled in its state, or it is \
            no longer at the version given.", body = ErrorBody),
        Always, JsonBody, NotFound
    )
)]
async fn schedule(
    State(state): State<AppState>,
    client: ApiClient,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ScheduleBody>,
) -> Result<Json<Value>, ApiError> {
    let at = updates::parse_time(&body.at)?;
    act(&state, &client, &id, Action::Schedule(at), body.version).await
}

/// Sends an update now (admin rights; refused without `mail.postal_address`). The body is
/// optional: `{"version": N}` sends only if the update is still at version N (else 409). With
/// an `Idempotency-Key`, a repeat answers as the first did.
#[utoipa::path(
    post,
    path = "/updates/{id}/send",
    security(("api_token" = ["send"])),
    tag = "updates",
    params(UpdateId, IdempotencyKey),
    request_body = SendBody,
    responses(
        (status = 400, description = "A malformed Idempotency-Key.", body = ErrorBody),
        (status = 200, description = "The update.", body = UpdateView),
        (status = 409, description = "Not possible in the update's state, or it is no longer \
            at the version given.", body = ErrorBody),
        (status = 422, description = "Refused (e.g. no postal address is configured).",
            body = ErrorBody),
        Always, NotFound
    )
)]
async fn send_now(
    State(state): State<AppState>,
    client: ApiClient,
    headers: HeaderMap,
    Path(id): Path<String>,
    MaybeJson(body): MaybeJson<SendBody>,
) -> Result<Response, ApiError> {
    let id = update_id(&id)?;
    let scope = format!("send:{id}");
    let version = body.and_then(|b| b.version);
    let request = version.map(|v| v.to_string()).unwrap_or_default();
    let (pool, settings) = (state.pool.clone(), state.settings.clone());
    let actor = client.actor();
    once(
        &state,
        &client,
        &headers,
        (&scope, request.as_bytes()),
        async move {
            let view = updates::act(&pool, &settings, &actor, id, Action::SendNow, version).await?;
            Ok((StatusCode::OK, to_json(&view)?))
        },
    )
    .await
}

/// Takes an update back to draft (from scheduled, awaiting approval, or paused before it
/// started) so that it can be changed; any approval is void.
#[utoipa::path(
    post,
    path = "/updates/{id}/unschedule",
    security(("api_token" = ["send"])),
    tag = "updates",
    params(UpdateId),
    responses(
        (status = 200, description = "The update, a draft again.", body = UpdateView),
        (status = 409, description = "Not possible in the update's state.", body = ErrorBody),
        Always, NotFound
    )
)]
async fn unschedule(
    State(state): State<AppState>,
    client: ApiClient,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    act(&state, &client, &id, Action::Unschedule, None).await
}

async fn act(
    state: &AppState,
    client: &ApiClient,
    id: &str,
    action: Action,
    version: Option<i32>,
) -> Result<Json<Value>, ApiError> {
    let actor = client.actor();
    let id = update_id(id)?;
    let view = updates::act(&state.pool, &state.settings, &actor, id, action, version).await?;
    Ok(Json(to_json(&view)?))
}

/// Pauses a sending update; mails already handed to the relay stay sent.
#[utoipa::path(
    post,
    path = "/updates/{id}/pause",
    security(("api_token" = ["send"])),
    tag = "updates",
    params(UpdateId),
    responses(
        (status = 200, description = "The update.", body = UpdateView),
        (status = 409, description = "Not possible in the update's state.", body = ErrorBody),
        (status = 422, description = "Refused (e.g. no postal address is configured).",
            body = ErrorBody),
        Always, NotFound
    )
)]
async fn pause(
    State(state): State<AppState>,
    client: ApiClient,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    act(&state, &client, &id, Action::Pause, None).await
}

/// Resumes a paused update.
#[utoipa::path(
    post,
    path = "/updates/{id}/resume",
    security(("api_token" = ["send"])),
    tag = "updates",
    params(UpdateId),
    responses(
        (status = 200, description = "The update.", body = UpdateView),
        (status = 409, description = "Not possible in the update's state.", body = ErrorBody),
        (status = 422, description = "Refused (e.g. no postal address is configured).",
            body = ErrorBody),
        Always, NotFound
    )
)]
async fn resume(
    State(state): State<AppState>,
    client: ApiClient,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    act(&state, &client, &id, Action::Resume, None).await
}

/// Cancels an update; mails not yet sent are skipped.
#[utoipa::path(
    post,
    path = "/updates/{id}/cancel",
    security(("api_token" = ["send"])),
    tag = "updates",
    params(UpdateId),
    responses(
        (status = 200, description = "The update.", body = UpdateView),
        (status = 409, description = "Not possible in the update's state.", body = ErrorBody),
        (status = 422, description = "Refused (e.g. no postal address is configured).",
            body = ErrorBody),
        Always, NotFound
    )
)]
async fn cancel(
    State(state): State<AppState>,
    client: ApiClient,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    act(&state, &client, &id, Action::Cancel, None).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TestBody {
    /// The address to send the test mail to.
    to: String,
}

#[derive(Serialize, ToSchema)]
struct Queued {
    /// Always `queued`.
    status: &'static str,
}

/// Queues a test mail of the update's current version to one address, its subject marked
/// `[Test]`: never to a suppressed address or one whose subscriber unsubscribed, bounced or
/// complained (422), at most `sending.test_mails_per_hour` per token (429 with Retry-After).
#[utoipa::path(
    post,
    path = "/updates/{id}/test",
    tag = "updates",
    params(UpdateId),
    request_body = TestBody,
    responses(
        (status = 202, description = "The test mail is queued.", body = Queued),
        (status = 429, description = "Past the hourly limit of test mails.", body = ErrorBody),
        Always, JsonBody, NotFound
    )
)]
async fn test(
    State(state): State<AppState>,
    client: ApiClient,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TestBody>,
) -> Result<Response, ApiError> {
    let actor = client.actor();
    updates::send_test(
        &state.pool,
        &state.settings,
        &actor,
        update_id(&id)?,
        &body.to,
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(Queued { status: "queued" })).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DeliveryQuery {
    /// Only rows of this status: `queued`, `sending`, `deferred`, `sent`, `failed` or
    /// `skipped`.
    status: Option<String>,
    /// Rows with an id above this one (the previous page's `next_after`).
    #[serde(default)]
    after: i64,
    /// Rows per page, 1 to 1,000 (default 100; values outside are brought into range).
    limit: Option<i64>,
}

/// One page of an update's delivery ledger.
#[derive(Serialize, ToSchema)]
struct DeliveryPage {
    deliveries: Vec<DeliveryRow>,
    /// Give this as `after` for the next page; null on the last page.
    next_after: Option<i64>,
}

/// The update's deliveries in id order, a page at a time, each with its attempts and the
/// relay's last reply.
#[utoipa::path(
    get,
    path = "/updates/{id}/deliveries",
    tag = "updates",
    params(UpdateId, DeliveryQuery),
    responses(
        (status = 200, description = "One page of deliveries.", body = DeliveryPage),
        (status = 422, description = "An unknown `status`.", body = ErrorBody),
        Always, BadQuery, NotFound
    )
)]
async fn deliveries(
    State(state): State<AppState>,
    _: ApiClient,
    Path(id): Path<String>,
    query: Result<Query<DeliveryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DeliveryPage>, ApiError> {
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
    Ok(Json(DeliveryPage {
        deliveries: rows,
        next_after,
    }))
}

#[derive(Serialize, ToSchema)]
struct Requeued {
    /// How many failed deliveries went back into the queue.
    requeued: u64,
}

/// Puts the update's failed deliveries back into the queue (admin rights).
#[utoipa::path(
    post,
    path = "/updates/{id}/retry-failed",
    security(("api_token" = ["send"])),
    tag = "updates",
    params(UpdateId),
    responses(
        (status = 200, description = "How many were requeued.", body = Requeued),
        (status = 409, description = "Not possible in the update's state.", body = ErrorBody),
        Always, NotFound
    )
)]
async fn retry_failed(
    State(state): State<AppState>,
    client: ApiClient,
    Path(id): Path<String>,
) -> Result<Json<Requeued>, ApiError> {
    let actor = client.actor();
    let requeued = updates::retry_failed(&state.pool, &actor, update_id(&id)?).await?;
    Ok(Json(Requeued { requeued }))
}

/// The update's report: every recipient counted by outcome (`sent + failed + skipped + queued
/// = recipients`), mail that bounced later, complaints, unsubscribes through its own links,
/// clicks per link (`engagement.count_clicks`), by mailbox provider with the complaint rate,
/// and failed or deferred mail grouped by the relay's reply code with what it means. Counts
/// only: nothing in it names a person.
#[utoipa::path(
    get,
    path = "/updates/{id}/report",
    tag = "updates",
    params(UpdateId),
    responses(
        (status = 200, description = "The report.", body = crate::ops::engagement::UpdateReport),
        Always, NotFound
    )
)]
async fn report(
    State(state): State<AppState>,
    _: ApiClient,
    Path(id): Path<String>,
) -> Result<Json<crate::ops::engagement::UpdateReport>, ApiError> {
    crate::ops::engagement::report(&state.pool, update_id(&id)?)
        .await
        .map_err(ApiError::Internal)?
        .map(Json)
        .ok_or(ApiError::Update(UpdateError::NotFound))
}

/// "Check links": fetches each http(s) link of the update (intro and news items, at most 100)
/// that has no result younger than an hour, through the guarded client (http(s) only, no
/// internal address unless `feeds.allow_private_addresses`, `feeds.timeout_seconds`, at most
/// 60 s in all), and answers every link's result: `failed` (with the final status and why),
/// `ok`, `unchecked`. Nothing fetches an update's links unless asked.
#[utoipa::path(
    post,
    path = "/updates/{id}/check-links",
    tag = "updates",
    params(UpdateId),
    responses(
        (status = 200, description = "Each link's result.", body = crate::ops::link_check::LinkReport),
        Always, NotFound
    )
)]
async fn check_links(
    State(state): State<AppState>,
    client: ApiClient,
    Path(id): Path<String>,
) -> Result<Json<crate::ops::link_check::LinkReport>, ApiError> {
    let actor = client.actor();
    let report =
        crate::ops::link_check::check(&state.pool, &state.settings, &actor, update_id(&id)?)
            .await?;
    Ok(Json(report))
}
