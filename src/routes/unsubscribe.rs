//! `GET /unsubscribe/{token}` shows a choice and changes nothing; `POST /unsubscribe/{token}`
//! unsubscribes, from the page's form (this update's lists, or everything) or as an RFC 8058
//! one-click POST from a mail client (body `List-Unsubscribe=One-Click`, no cookies, no CSRF
//! token: everything, answered 200, never a redirect, also when the person was erased and there
//! is nothing left to do). The page then offers to come back.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::client::Origin;
use super::form::{Arity, FormFields};
use super::links::{self, invalid_link};
use super::same_origin;
use super::AppError;
use crate::app::AppState;
use crate::domain::subscriber_link::LinkPurpose;
use crate::ops::{engagement, preferences};

pub fn router() -> Router<AppState> {
    Router::new().route("/unsubscribe/{token}", get(show).post(unsubscribe))
}

#[derive(Deserialize)]
struct FromUpdate {
    update: Option<Uuid>,
}

async fn show(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    query: Result<Query<FromUpdate>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AppError> {
    let Some((_, token)) = links::verified(&state, &raw, LinkPurpose::Unsubscribe).await? else {
        if links::of_a_test_mail(&state, &raw, LinkPurpose::Unsubscribe) {
            return Ok(links::test_mail_page(&state));
        }
        return Ok(invalid_link(&state));
    };
    let query_update = query.ok().and_then(|q| q.0.update);
    let update_lists = match query_update {
        Some(update) => preferences::update_lists(&state.pool, update).await?,
        None => Vec::new(),
    };
    let lists: Vec<_> = update_lists
        .iter()
        .map(|(slug, name)| json!({ "slug": slug, "name": name }))
        .collect();
    let update = query_update.filter(|_| !lists.is_empty());
    Ok(state.pages.page(
        StatusCode::OK,
        "unsubscribe",
        json!({ "token": token.as_str(), "lists": lists, "update": update }),
    ))
}

fn one_click_done() -> Response {
    (StatusCode::OK, "Unsubscribed.").into_response()
}

const FORM_FIELDS: &[(&str, Arity)] = &[
    ("List-Unsubscribe", Arity::One),
    ("action", Arity::One),
    ("lists", Arity::Many),
];

async fn unsubscribe(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    query: Result<Query<FromUpdate>, axum::extract::rejection::QueryRejection>,
    Origin(origin): Origin,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let form = match FormFields::parse(&body, FORM_FIELDS) {
        Ok(form) => form,
        Err(errors) => {
            let text = errors.values().cloned().collect::<Vec<_>>().join(" ");
            return Ok(state.pages.message(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Nothing was changed",
                &text,
            ));
        }
    };
    let one_click = form.one("List-Unsubscribe") == "One-Click";
    let (action, lists) = (form.one("action"), form.many("lists"));
    // The one-click POST must work from any origin (RFC 8058); the page's own forms must not.
    if !one_click && !same_origin::allowed(&headers, state.settings.server.base_url.origin()) {
        return Ok(links::cross_site(&state));
    }
    let Some((id, token)) = links::verified(&state, &raw, LinkPurpose::Unsubscribe).await? else {
        // RFC 8058 clients expect success when there is nothing left to do: the person was
        // erased, and their genuine link has no one left to unsubscribe.
        if one_click && links::for_a_gone_subscriber(&state, &raw, LinkPurpose::Unsubscribe).await?
        {
            return Ok(one_click_done());
        }
        if links::of_a_test_mail(&state, &raw, LinkPurpose::Unsubscribe) {
            return Ok(if one_click {
                one_click_done()
            } else {
                links::test_mail_page(&state)
            });
        }
        return Ok(invalid_link(&state));
    };
    // The update whose link this is (its footer's and List-Unsubscribe's carry `?update=`):
    // an unsubscribe through it is counted for its report.
    let through = query.ok().and_then(|q| q.0.update);
    if one_click {
        let changed = preferences::unsubscribe_all(&state.pool, id, "one_click", &origin).await?;
        if changed {
            tracing::info!("unsubscribed by one-click");
        }
        count_through(&state, through.filter(|_| changed), id).await?;
        return Ok(one_click_done());
    }
    match action.as_str() {
        "resubscribe" => return links::resubscribe(&state, id, &origin).await,
        "lists" if !lists.is_empty() => {
            let changed =
                preferences::unsubscribe_lists(&state.pool, id, &lists, "link", &origin).await?;
            count_through(&state, through.filter(|_| changed), id).await?;
        }
        // An unsubscribe link posted with no choice means what it says: everything.
        "lists" | "all" | "" => {
            let changed = preferences::unsubscribe_all(&state.pool, id, "link", &origin).await?;
            count_through(&state, through.filter(|_| changed), id).await?;
        }
        _ => return Ok(state.pages.message(
            StatusCode::BAD_REQUEST,
            "Nothing was changed",
            "This request did not say what to do. Please use the buttons on the unsubscribe page.",
        )),
    }
    tracing::info!("unsubscribed from the page");
    Ok(state.pages.page(
        StatusCode::OK,
        "unsubscribed",
        json!({ "token": token.as_str() }),
    ))
}

/// Counts an unsubscribe through update `through`'s link, if the link named one.
async fn count_through(state: &AppState, through: Option<Uuid>, id: Uuid) -> Result<(), AppError> {
    if let Some(update) = through {
        engagement::unsubscribed_through(&state.pool, update, id).await?;
    }
    Ok(())
}
