//! `GET /` (the sign-up form), `POST /subscriptions` (form or JSON) and the pending page.
//! The answer to a valid sign-up is the same whatever the address's state, and no mail is sent
//! inside the request: the confirmation is queued for the worker.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::client::Origin;
use super::form::{Arity, FormFields};
use super::AppError;
use crate::app::AppState;
use crate::domain::{FieldErrors, SignupInput, SignupSource};
use crate::ops::{lists, signups};

/// Name of the hidden field that only bots fill in.
pub const HONEYPOT_FIELD: &str = "website";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(form_page))
        .route("/subscriptions", axum::routing::post(subscribe))
        .route("/subscriptions/pending", get(pending_page))
}

async fn form_page(State(state): State<AppState>) -> Result<Response, AppError> {
    render_form(
        &state,
        StatusCode::OK,
        &SignupInput::default(),
        &FieldErrors::new(),
        false,
    )
    .await
}

async fn pending_page(State(state): State<AppState>) -> Response {
    state.pages.page(StatusCode::OK, "pending", json!({}))
}

async fn render_form(
    state: &AppState,
    status: StatusCode,
    input: &SignupInput,
    errors: &FieldErrors,
    submitted: bool,
) -> Result<Response, AppError> {
    let lists = lists::public_lists(&state.pool).await?;
    let lists: Vec<Value> = lists
        .iter()
        .map(|l| {
            let checked = if submitted {
                input.lists.contains(&l.slug)
            } else {
                l.is_default
            };
            json!({ "slug": l.slug, "name": l.name, "description": l.description, "checked": checked })
        })
        .collect();
    let signup = &state.settings.signup;
    Ok(state.pages.page(
        status,
        "index",
        json!({
            "lists": lists,
            "values": { "email": input.email, "name": input.name },
            "states": state_options(&input.state),
            "errors": errors,
            "has_errors": !errors.is_empty(),
            "consent_text": signup.consent_text,
            "remembers_activity": state.settings.engagement.remember_last_activity,
            "honeypot_field": HONEYPOT_FIELD,
        }),
    ))
}

/// The state picker's options, with `selected` marked.
pub fn state_options(selected: &str) -> Vec<Value> {
    crate::domain::US_STATES
        .iter()
        .map(|(code, name)| json!({ "code": code, "name": name, "selected": selected.eq_ignore_ascii_case(code) }))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Form,
    Json,
}

fn format_of(headers: &HeaderMap) -> Option<Format> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let mime = value.split(';').next()?.trim().to_ascii_lowercase();
    match mime.as_str() {
        "application/x-www-form-urlencoded" => Some(Format::Form),
        "application/json" => Some(Format::Json),
        _ => None,
    }
}

async fn subscribe(
    State(state): State<AppState>,
    Origin(origin): Origin,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    // Valid sign-ups are answered at the same moment whatever the address's state.
    let answer_at = tokio::time::Instant::now() + state.settings.signup.min_answer;
    let format = format_of(&headers);
    if let Err(wait) = state.signup_limiter.check(origin.ip) {
        let seconds = wait.as_secs() + 1;
        let mut response = problem(
            format,
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too many sign-ups from your network. Please try again in {seconds} seconds."),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        return Ok(response);
    }
    let Some(format) = format else {
        return Ok(problem(
            None,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Send application/x-www-form-urlencoded or application/json.",
        ));
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let limit = state.settings.server.max_body_bytes;
            return Ok(problem(
                Some(format),
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("The request body is larger than the limit of {limit} bytes."),
            ));
        }
        Err(rejection) => {
            return Ok(problem(
                Some(format),
                StatusCode::BAD_REQUEST,
                &rejection.body_text(),
            ))
        }
    };
    let input = match format {
        Format::Form => form_input(&body).map_err(JsonProblem::Fields),
        Format::Json => json_input(&body),
    };
    let input = match input {
        Ok(input) => input,
        Err(JsonProblem::Syntax(message)) => {
            return Ok(problem(Some(format), StatusCode::BAD_REQUEST, &message));
        }
        Err(JsonProblem::Fields(errors)) => {
            return invalid(&state, format, &SignupInput::default(), &errors).await
        }
    };
    if input.is_bot() {
        tracing::info!("honeypot filled: answered as a success, nothing stored");
        tokio::time::sleep_until(answer_at).await;
        return Ok(accepted(format));
    }
    let request = match input.parse() {
        Ok(request) => request,
        Err(errors) => return invalid(&state, format, &input, &errors).await,
    };
    let lists = match lists::resolve_public(&state.pool, &request.lists, request.state).await? {
        Ok(lists) => lists,
        Err(problem) => {
            let errors =
                FieldErrors::from([("lists", problem.message("There is no public list called"))]);
            return invalid(&state, format, &input, &errors).await;
        }
    };
    let source = match format {
        Format::Form => SignupSource::Form,
        Format::Json => SignupSource::Api,
    };
    let outcome = signups::record(
        &state.signups,
        &state.settings,
        &request,
        &lists,
        source,
        &origin,
    )
    .await?;
    tracing::info!(
        ?outcome,
        domain = request.email.domain(),
        "sign-up recorded"
    );
    tokio::time::sleep_until(answer_at).await;
    Ok(accepted(format))
}

fn accepted(format: Format) -> Response {
    match format {
        Format::Form => Redirect::to("/subscriptions/pending").into_response(),
        Format::Json => {
            (StatusCode::ACCEPTED, Json(json!({ "status": "pending" }))).into_response()
        }
    }
}

async fn invalid(
    state: &AppState,
    format: Format,
    input: &SignupInput,
    errors: &FieldErrors,
) -> Result<Response, AppError> {
    match format {
        Format::Form => {
            render_form(state, StatusCode::UNPROCESSABLE_ENTITY, input, errors, true).await
        }
        Format::Json => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "errors": errors })),
        )
            .into_response()),
    }
}

/// A 4xx answer in the caller's format: JSON `{"error": ...}` or a short page (plain text when
/// the format is unknown).
fn problem(format: Option<Format>, status: StatusCode, message: &str) -> Response {
    match format {
        Some(Format::Json) | None => (status, Json(json!({ "error": message }))).into_response(),
        Some(Format::Form) => (status, message.to_owned()).into_response(),
    }
}

/// The sign-up form's fields (`lists[]` is what some form builders send for `lists`).
const FORM_FIELDS: &[(&str, Arity)] = &[
    ("email", Arity::One),
    ("name", Arity::One),
    ("lists", Arity::Many),
    ("lists[]", Arity::Many),
    ("state", Arity::One),
    (HONEYPOT_FIELD, Arity::One),
];

fn form_input(body: &[u8]) -> Result<SignupInput, FieldErrors> {
    let f = FormFields::parse(body, FORM_FIELDS)?;
    let mut lists = f.many("lists");
    lists.extend(f.many("lists[]"));
    Ok(SignupInput {
        email: f.one("email"),
        name: f.one("name"),
        lists,
        state: f.one("state"),
        honeypot: f.one(HONEYPOT_FIELD),
    })
}

enum JsonProblem {
    Syntax(String),
    Fields(FieldErrors),
}

fn json_input(body: &[u8]) -> Result<SignupInput, JsonProblem> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| JsonProblem::Syntax(format!("The body is not valid JSON: {e}")))?;
    let Value::Object(object) = value else {
        return Err(JsonProblem::Fields(FieldErrors::from([(
            "body",
            "Expected a JSON object such as {\"email\": \"...\"}.".to_owned(),
        )])));
    };
    let mut errors = FieldErrors::new();
    let mut text = |field: &'static str| match object.get(field) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            errors.insert(field, format!("`{field}` must be a string."));
            String::new()
        }
    };
    let email = text("email");
    let name = text("name");
    let honeypot = text(HONEYPOT_FIELD);
    let state = text("state");
    let lists = match object.get("lists") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_owned))
            .collect(),
        Some(_) => {
            errors.insert(
                "lists",
                "`lists` must be an array of list names.".to_owned(),
            );
            Vec::new()
        }
    };
    if !errors.is_empty() {
        return Err(JsonProblem::Fields(errors));
    }
    Ok(SignupInput {
        email,
        name,
        lists,
        state,
        honeypot,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_repeat_for_lists() {
        let i = form_input(b"email=a%40example.org&name=Ann+Lee&lists=x&lists=y&website=").unwrap();
        assert_eq!(i.email, "a@example.org");
        assert_eq!(i.name, "Ann Lee");
        assert_eq!(i.lists, ["x", "y"]);
        assert!(!i.is_bot());
    }

    #[test]
    fn json_with_wrong_types_names_each_field() {
        let Err(JsonProblem::Fields(errors)) = json_input(br#"{"email": 5, "lists": "x"}"#) else {
            panic!("expected field errors");
        };
        assert_eq!(
            errors.keys().copied().collect::<Vec<_>>(),
            ["email", "lists"]
        );
    }

    #[test]
    fn broken_json_is_a_syntax_problem() {
        assert!(matches!(
            json_input(b"{\"email\":"),
            Err(JsonProblem::Syntax(_))
        ));
    }
}
