//! `POST /webhooks/{ses,postmark,sendgrid,mailgun}`: sending providers' bounce, complaint and
//! delivery events. Each call is checked with the provider's signature or credentials first
//! (`bounce::providers`), its signed time against `webhooks.max_age_seconds`; a call that
//! fails the check is answered `401` and nothing is recorded. A provider whose keys are not
//! configured answers `404`. A call's events are recorded together (`bounce::record_call`);
//! a call or event seen before is answered `200 {"recorded": 0}` and changes nothing; a
//! database failure answers `503` so the provider retries.

use std::sync::Arc;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use crate::app::AppState;
use crate::bounce::providers::{
    self, Call, Freshness, SendgridKey, SignatureError, SnsCall, SnsCertificate,
};
use crate::bounce::{self, Source};
use crate::config::WebhookSettings;

/// Largest webhook body (a SendGrid batch of a thousand events fits).
const MAX_WEBHOOK_BODY: usize = 4 * 1024 * 1024;

/// The providers' keys, parsed once at start-up.
#[derive(Default)]
pub struct WebhookKeys {
    /// The SNS signing certificate and the one topic accepted.
    ses: Option<(SnsCertificate, String)>,
    sendgrid: Option<SendgridKey>,
}

impl WebhookKeys {
    /// Parses the configured keys; an error names the key.
    pub fn from_settings(settings: &WebhookSettings) -> anyhow::Result<Self> {
        Ok(Self {
            ses: settings
                .ses_certificate_pem
                .as_deref()
                .map(SnsCertificate::from_pem)
                .transpose()
                .map_err(anyhow::Error::msg)
                .context("webhooks.ses_certificate_file")?
                .zip(settings.ses_topic_arn.clone()),
            sendgrid: settings
                .sendgrid_public_key
                .as_deref()
                .map(SendgridKey::from_base64)
                .transpose()
                .map_err(anyhow::Error::msg)
                .context("webhooks.sendgrid_public_key")?,
        })
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks/ses", post(ses))
        .route("/webhooks/postmark", post(postmark))
        .route("/webhooks/sendgrid", post(sendgrid))
        .route("/webhooks/mailgun", post(mailgun))
        .layer(DefaultBodyLimit::max(MAX_WEBHOOK_BODY))
}

fn answer(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn not_configured() -> Response {
    answer(
        StatusCode::NOT_FOUND,
        "This provider's webhook is not configured.",
    )
}

fn refused(source: Source, e: SignatureError) -> Response {
    tracing::warn!(source = source.as_str(), reason = %e, "webhook call refused; nothing recorded");
    answer(StatusCode::UNAUTHORIZED, &e.to_string())
}

/// Records the events of a call whose signature or credentials were checked.
async fn record(state: &AppState, source: Source, call: Call) -> Response {
    match bounce::record_call(
        &state.pool,
        &state.settings,
        source,
        call.token.as_deref(),
        &call.events,
    )
    .await
    {
        Ok(recorded) => (StatusCode::OK, Json(json!({ "recorded": recorded }))).into_response(),
        Err(e) => {
            tracing::error!(source = source.as_str(), error = %format!("{e:#}"), "recording a webhook call failed; the provider will retry");
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "Could not record the events; try again.",
            )
        }
    }
}

fn freshness(state: &AppState) -> Freshness {
    Freshness {
        now: chrono::Utc::now(),
        max_age: state.settings.webhooks.max_age,
    }
}

async fn ses(State(state): State<AppState>, body: Bytes) -> Response {
    let Some((certificate, topic)) = state.webhooks.ses.as_ref() else {
        return not_configured();
    };
    match providers::ses(&body, certificate, topic, freshness(&state)) {
        Err(e) => refused(Source::Ses, e),
        Ok(SnsCall::SubscriptionConfirmation { subscribe_url }) => {
            tracing::warn!(%subscribe_url, "SNS subscription to confirm: open this URL once to start receiving SES events");
            (StatusCode::OK, Json(json!({ "recorded": 0 }))).into_response()
        }
        Ok(SnsCall::Notification(call)) => record(&state, Source::Ses, call).await,
        Ok(SnsCall::Other) => (StatusCode::OK, Json(json!({ "recorded": 0 }))).into_response(),
    }
}

async fn postmark(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some((user, password)) = state.settings.webhooks.postmark.as_ref() else {
        return not_configured();
    };
    let authorization = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Err(e) = providers::postmark_authorized(authorization, user, password.expose()) {
        let mut response = refused(Source::Postmark, e);
        response.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Basic realm=\"webhooks\""),
        );
        return response;
    }
    let call = Call {
        token: None,
        events: providers::postmark(&body),
    };
    record(&state, Source::Postmark, call).await
}

async fn sendgrid(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(key) = state.webhooks.sendgrid.as_ref() else {
        return not_configured();
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let token = match providers::sendgrid_verified(
        &body,
        header("x-twilio-email-event-webhook-signature"),
        header("x-twilio-email-event-webhook-timestamp"),
        key,
        freshness(&state),
    ) {
        Ok(token) => token,
        Err(e) => return refused(Source::Sendgrid, e),
    };
    let call = Call {
        token: Some(token),
        events: providers::sendgrid(&body),
    };
    record(&state, Source::Sendgrid, call).await
}

async fn mailgun(State(state): State<AppState>, body: Bytes) -> Response {
    let Some(key) = state.settings.webhooks.mailgun_signing_key.as_ref() else {
        return not_configured();
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return refused(Source::Mailgun, SignatureError::Missing);
    };
    let token = match providers::mailgun_verified(&value, key.expose(), freshness(&state)) {
        Ok(token) => token,
        Err(e) => return refused(Source::Mailgun, e),
    };
    let call = Call {
        token: Some(token),
        events: providers::mailgun(&value),
    };
    record(&state, Source::Mailgun, call).await
}

/// The keys in an `Arc` for `AppState`.
pub fn keys(settings: &WebhookSettings) -> anyhow::Result<Arc<WebhookKeys>> {
    WebhookKeys::from_settings(settings).map(Arc::new)
}
