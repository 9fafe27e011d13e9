//! `GET /manage/{token}` shows and `POST /manage/{token}` changes a subscriber's preferences:
//! name, state, lists, topics; and offers to unsubscribe from everything, download every datum
//! stored about them (JSON), or delete it all (after a confirming button).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use uuid::Uuid;

use super::client::Origin;
use super::form::{Arity, FormFields};
use super::links::{self, invalid_link};
use super::same_origin;
use super::signup::state_options;
use super::AppError;
use crate::app::AppState;
use crate::domain::subscriber_link::LinkPurpose;
use crate::domain::{FieldErrors, SubscriberName, Token, UsState};
use crate::ops::preferences::{self, Changes, Profile};

pub fn router() -> Router<AppState> {
    Router::new().route("/manage/{token}", get(show).post(change))
}

async fn show(
    State(state): State<AppState>,
    method: axum::http::Method,
    Path(raw): Path<String>,
) -> Result<Response, AppError> {
    let Some((id, token)) = links::verified(&state, &raw, LinkPurpose::Manage).await? else {
        return Ok(not_verified(&state, &raw));
    };
    // A HEAD (a link checker's, a mail scanner's probe) is not a visit.
    if method != axum::http::Method::HEAD {
        crate::ops::engagement::note_activity(&state.pool, &state.settings, id).await?;
    }
    page(
        &state,
        id,
        &token,
        StatusCode::OK,
        &FieldErrors::new(),
        None,
    )
    .await
}

/// The answer to a link that names no subscriber: a test mail's link (signed for nobody) is
/// told apart from a broken one, and nothing is shown or changed.
fn not_verified(state: &AppState, raw: &str) -> Response {
    if links::of_a_test_mail(state, raw, LinkPurpose::Manage) {
        return state.pages.message(
            StatusCode::OK,
            "This was a test mail",
            "This link came in a test mail of an update. In the update itself it opens the reader's preferences; a test mail has no reader, so there are no preferences to show and nothing was changed.",
        );
    }
    invalid_link(state)
}

async fn page(
    state: &AppState,
    id: Uuid,
    token: &Token,
    status: StatusCode,
    errors: &FieldErrors,
    saved: Option<&str>,
) -> Result<Response, AppError> {
    page_with(state, id, token, status, errors, saved, None).await
}

/// The page; with `submitted`, a form refused, its name, state and topics shown as they were
/// sent (not as stored), for the person to correct.
async fn page_with(
    state: &AppState,
    id: Uuid,
    token: &Token,
    status: StatusCode,
    errors: &FieldErrors,
    saved: Option<&str>,
    submitted: Option<&Form>,
) -> Result<Response, AppError> {
    let Some(mut profile) = preferences::profile(&state.pool, id).await? else {
        return Ok(invalid_link(state));
    };
    if let Some(f) = submitted {
        profile.name = Some(f.name.clone());
        profile.us_state = Some(f.state.clone());
        profile.topics = Some(f.topics.clone());
    }
    Ok(state.pages.page(
        status,
        "manage",
        view(state, &profile, token, errors, saved),
    ))
}

fn view(
    state: &AppState,
    p: &Profile,
    token: &Token,
    errors: &FieldErrors,
    saved: Option<&str>,
) -> Value {
    let topics: Vec<Value> = state
        .settings
        .preferences
        .topics
        .iter()
        .map(|(slug, label)| {
            let checked = p.topics.as_ref().is_none_or(|chosen| chosen.contains(slug));
            json!({ "slug": slug, "label": label, "checked": checked })
        })
        .collect();
    json!({
        "token": token.as_str(),
        "email": p.email,
        "name": p.name,
        "states": state_options(p.us_state.as_deref().unwrap_or("")),
        "confirmed": p.status == "confirmed",
        "status": p.status,
        "lists": p.lists,
        "topics": topics,
        "errors": errors,
        "has_errors": !errors.is_empty(),
        "saved": saved,
        "remembers_activity": state.settings.engagement.remember_last_activity,
    })
}

/// The form as posted.
#[derive(Default)]
struct Form {
    action: String,
    name: String,
    state: String,
    lists: Vec<String>,
    topics: Vec<String>,
}

const FORM_FIELDS: &[(&str, Arity)] = &[
    ("action", Arity::One),
    ("name", Arity::One),
    ("state", Arity::One),
    ("lists", Arity::Many),
    ("topics", Arity::Many),
];

fn form(body: &[u8]) -> Result<Form, FieldErrors> {
    let f = FormFields::parse(body, FORM_FIELDS)?;
    Ok(Form {
        action: f.one("action"),
        name: f.one("name"),
        state: f.one("state"),
        lists: f.many("lists"),
        topics: f.many("topics"),
    })
}

async fn change(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Origin(origin): Origin,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    if !same_origin::allowed(&headers, state.settings.server.base_url.origin()) {
        return Ok(links::cross_site(&state));
    }
    let Some((id, token)) = links::verified(&state, &raw, LinkPurpose::Manage).await? else {
        return Ok(not_verified(&state, &raw));
    };
    let f = match form(&body) {
        Ok(f) => f,
        Err(errors) => {
            return page(
                &state,
                id,
                &token,
                StatusCode::UNPROCESSABLE_ENTITY,
                &errors,
                None,
            )
            .await
        }
    };
    match f.action.as_str() {
        "unsubscribe" => {
            preferences::unsubscribe_all(&state.pool, id, "link", &origin).await?;
            page(
                &state,
                id,
                &token,
                StatusCode::OK,
                &FieldErrors::new(),
                Some("You are unsubscribed from everything."),
            )
            .await
        }
        "resubscribe" => links::resubscribe(&state, id, &origin).await,
        "export" => {
            let Some(data) = preferences::export(&state.pool, id).await? else {
                return Ok(invalid_link(&state));
            };
            let body = serde_json::to_string_pretty(&data).map_err(anyhow::Error::from)?;
            Ok((
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"my-data.json\"",
                    ),
                ],
                body,
            )
                .into_response())
        }
        "erase" => {
            Ok(state
                .pages
                .page(StatusCode::OK, "erase", json!({ "token": token.as_str() })))
        }
        "erase-confirmed" => {
            preferences::erase(&state.pool, id).await?;
            tracing::info!("subscriber erased on request");
            Ok(state.pages.message(
                StatusCode::OK,
                "Your data is deleted",
                "Everything we held about you is gone. We keep only a one-way hash of your address, so that nobody can add it again without your own confirmation.",
            ))
        }
        "save" => save(&state, id, &token, f, &origin).await,
        _ => Ok(state.pages.message(
            StatusCode::BAD_REQUEST,
            "Nothing was changed",
            "This request did not say what to do. Please use the buttons on your preferences page.",
        )),
    }
}

async fn save(
    state: &AppState,
    id: Uuid,
    token: &Token,
    f: Form,
    origin: &crate::domain::RequestOrigin,
) -> Result<Response, AppError> {
    let mut errors = FieldErrors::new();
    let name = SubscriberName::parse(&f.name)
        .map_err(|e| errors.insert("name", e))
        .ok()
        .flatten();
    let us_state = UsState::parse(&f.state)
        .map_err(|e| errors.insert("state", e))
        .ok()
        .flatten();
    let known = &state.settings.preferences.topics;
    if let Some(unknown) = f
        .topics
        .iter()
        .find(|t| !known.iter().any(|(slug, _)| slug == *t))
    {
        errors.insert("topics", format!("There is no topic {unknown:?}."));
    }
    if !errors.is_empty() {
        return page_with(
            state,
            id,
            token,
            StatusCode::UNPROCESSABLE_ENTITY,
            &errors,
            None,
            Some(&f),
        )
        .await;
    }
    let Some(profile) = preferences::profile(&state.pool, id).await? else {
        return Ok(invalid_link(state));
    };
    // Every topic ticked (or none offered) means "all", which also covers topics added later.
    let topics = (f.topics.len() < known.len()).then_some(f.topics);
    let lists = (profile.status == "confirmed").then_some(f.lists);
    preferences::save(
        &state.pool,
        id,
        Changes {
            name: name.as_ref().map(SubscriberName::as_str),
            us_state: us_state.map(UsState::code),
            topics,
            lists,
        },
        origin,
    )
    .await?;
    page(
        state,
        id,
        token,
        StatusCode::OK,
        &FieldErrors::new(),
        Some("Your preferences are saved."),
    )
    .await
}
