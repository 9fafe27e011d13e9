//! `/admin/news`: the news desk (editors and admins): list with filters, add, edit, delete.

use super::done;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{staff_page, AdminError, AdminForm, CurrentStaff, Fields};
use crate::app::AppState;
use crate::domain::{FieldErrors, NewsItemInput};
use crate::ops::news::{self, NewsError, NewsFilter};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/news", get(list).post(add))
        .route("/admin/news/{id}", get(edit_form).post(save))
        .route("/admin/news/{id}/delete", post(delete))
        .route("/admin/news/{id}/approve", post(approve))
}

impl From<NewsError> for AdminError {
    fn from(e: NewsError) -> Self {
        match e {
            NewsError::NotFound => AdminError::NotFound,
            NewsError::Invalid(errors) => AdminError::Status(
                StatusCode::UNPROCESSABLE_ENTITY,
                errors.into_values().collect::<Vec<_>>().join(" "),
            ),
            NewsError::Forbidden(e) => AdminError::Forbidden(e.0),
            NewsError::Internal(e) => AdminError::Internal(e),
        }
    }
}

pub(super) fn news_id(raw: &str) -> Result<Uuid, AdminError> {
    raw.parse().map_err(|_| AdminError::NotFound)
}

fn input_from(fields: &Fields) -> NewsItemInput {
    let optional = |name: &str| fields.get(name).map(str::to_owned);
    NewsItemInput {
        title: fields.text("title"),
        summary: fields.text("summary"),
        source: fields.text("source"),
        url: optional("url"),
        published_on: optional("published_on"),
        topic: optional("topic"),
        news_id: None,
    }
}

/// The configured topics, each marked when it is `chosen`.
fn topics(state: &AppState, chosen: Option<&str>) -> serde_json::Value {
    state
        .settings
        .preferences
        .topics
        .iter()
        .map(|(slug, label)| json!({ "slug": slug, "label": label, "selected": chosen == Some(slug.as_str()) }))
        .collect()
}

#[derive(Deserialize, Default)]
struct ListQuery {
    topic: Option<String>,
    unsent: Option<String>,
    review: Option<String>,
}

async fn list_page(
    state: &AppState,
    staff: &CurrentStaff,
    q: &ListQuery,
    status: StatusCode,
    errors: Option<FieldErrors>,
    values: serde_json::Value,
) -> Result<Response, AdminError> {
    let filter = NewsFilter {
        topic: q.topic.clone().filter(|t| !t.is_empty()),
        unsent_only: q.unsent.is_some(),
        awaiting_review_only: q.review.is_some(),
    };
    let items = news::list(&state.pool, &filter).await?;
    Ok(staff_page(
        state,
        staff,
        status,
        "news",
        json!({
            "title": "News desk",
            "items": items,
            "filter_topics": topics(state, filter.topic.as_deref()),
            "topics": topics(state, values["topic"].as_str()),
            "unsent": filter.unsent_only,
            "review": filter.awaiting_review_only,
            "errors": errors,
            "values": values,
        }),
    ))
}

async fn list(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Query(q): Query<ListQuery>,
) -> Result<Response, AdminError> {
    list_page(&state, &staff, &q, StatusCode::OK, None, json!({})).await
}

async fn add(State(state): State<AppState>, form: AdminForm) -> Result<Response, AdminError> {
    let input = input_from(&form.fields);
    match news::add(&state.pool, &form.staff.actor(), &input).await {
        Ok(_) => Ok(done("/admin/news", "news-added")),
        Err(NewsError::Invalid(errors)) => {
            let values = serde_json::to_value(&input).map_err(anyhow::Error::from)?;
            list_page(
                &state,
                &form.staff,
                &ListQuery::default(),
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(errors),
                values,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

fn edit_page(
    state: &AppState,
    staff: &CurrentStaff,
    id: Uuid,
    status: StatusCode,
    values: &NewsItemInput,
    errors: Option<FieldErrors>,
) -> Response {
    staff_page(
        state,
        staff,
        status,
        "news_edit",
        json!({
            "title": "Edit a news item",
            "id": id,
            "values": values,
            "topics": topics(state, values.topic.as_deref()),
            "errors": errors,
        }),
    )
}

async fn edit_form(
    State(state): State<AppState>,
    staff: CurrentStaff,
    Path(id): Path<String>,
) -> Result<Response, AdminError> {
    let record = news::get(&state.pool, news_id(&id)?).await?;
    Ok(edit_page(
        &state,
        &staff,
        record.id,
        StatusCode::OK,
        &record.as_input(),
        None,
    ))
}

async fn save(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    let id = news_id(&id)?;
    let input = input_from(&form.fields);
    match news::edit(&state.pool, &form.staff.actor(), id, &input).await {
        Ok(_) => Ok(done("/admin/news", "news-saved")),
        Err(NewsError::Invalid(errors)) => Ok(edit_page(
            &state,
            &form.staff,
            id,
            StatusCode::UNPROCESSABLE_ENTITY,
            &input,
            Some(errors),
        )),
        Err(e) => Err(e.into()),
    }
}

async fn approve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    news::approve(&state.pool, &form.staff.actor(), news_id(&id)?).await?;
    Ok(done("/admin/news?review=1", "news-approved"))
}

async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: AdminForm,
) -> Result<Response, AdminError> {
    news::delete(&state.pool, &form.staff.actor(), news_id(&id)?).await?;
    Ok(done("/admin/news", "news-deleted"))
}
