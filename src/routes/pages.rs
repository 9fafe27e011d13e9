//! Web pages: `templates/web/*.html.hbs` with the `partials/` header and footer, compiled once.
//! HTML escaping is on for every value.

use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use handlebars::Handlebars;
use serde_json::{json, Value};

use crate::app::AppState;
use crate::template_files::TemplateFiles;

const PAGES: &[&str] = &[
    "index",
    "pending",
    "confirm",
    "confirmed",
    "message",
    "unsubscribe",
    "unsubscribed",
    "manage",
    "erase",
    "archive",
    "archived_update",
    "still_reading",
];
const PARTIALS: &[&str] = &["header", "footer"];

pub struct Pages {
    registry: Handlebars<'static>,
    site_name: String,
}

impl Pages {
    /// Compiles the pages from `files` and renders each with empty data.
    ///
    /// # Errors
    /// A page or partial is missing, does not compile or does not render; the error names it.
    pub fn load(files: &TemplateFiles, site_name: &str) -> anyhow::Result<Self> {
        let mut registry = Handlebars::new();
        for name in PARTIALS {
            let path = format!("web/partials/{name}.html.hbs");
            registry
                .register_partial(name, files.read(&path)?)
                .with_context(|| format!("compiling {path}"))?;
        }
        for name in PAGES {
            let path = format!("web/{name}.html.hbs");
            registry
                .register_template_string(name, files.read(&path)?)
                .with_context(|| format!("compiling page template {path}"))?;
        }
        let pages = Self {
            registry,
            site_name: site_name.to_owned(),
        };
        for name in PAGES {
            pages
                .render(name, json!({}))
                .with_context(|| format!("rendering page {name} at start-up"))?;
        }
        Ok(pages)
    }

    fn render(&self, name: &str, mut data: Value) -> anyhow::Result<String> {
        if let Value::Object(map) = &mut data {
            map.insert("site_name".into(), Value::String(self.site_name.clone()));
        }
        self.registry
            .render(name, &data)
            .with_context(|| format!("rendering page {name}"))
    }

    pub fn page(&self, status: StatusCode, name: &str, data: Value) -> Response {
        match self.render(name, data) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => super::AppError(e).into_response(),
        }
    }

    /// A short page with a title, a sentence and a link back to the sign-up form.
    pub fn message(&self, status: StatusCode, title: &str, text: &str) -> Response {
        self.page(status, "message", json!({ "title": title, "text": text }))
    }
}

pub async fn not_found(State(state): State<AppState>) -> Response {
    state.pages.message(
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is nothing at this address.",
    )
}
