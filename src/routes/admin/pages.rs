//! Admin pages: every `templates/admin/*.html.hbs`, with the `partials/` layout, compiled once
//! and rendered with empty data at start-up. HTML escaping is on for every value.

use std::path::Path;

use anyhow::Context;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use handlebars::Handlebars;
use serde_json::{json, Value};

pub struct AdminPages {
    registry: Handlebars<'static>,
    site_name: String,
}

fn templates_in(dir: &Path) -> anyhow::Result<Vec<(String, std::path::PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".html.hbs"));
        if let Some(name) = name {
            found.push((name.to_owned(), path.clone()));
        }
    }
    found.sort();
    Ok(found)
}

impl AdminPages {
    pub fn load(dir: &Path, site_name: &str) -> anyhow::Result<Self> {
        let mut registry = Handlebars::new();
        let admin = dir.join("admin");
        for (name, path) in templates_in(&admin.join("partials"))? {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            registry
                .register_partial(&name, text)
                .with_context(|| format!("compiling {}", path.display()))?;
        }
        let pages = templates_in(&admin)?;
        for (name, path) in &pages {
            registry
                .register_template_file(name, path)
                .with_context(|| format!("loading admin page {}", path.display()))?;
        }
        let loaded = Self {
            registry,
            site_name: site_name.to_owned(),
        };
        for (name, _) in &pages {
            loaded
                .render(name, json!({}))
                .with_context(|| format!("rendering admin page {name} at start-up"))?;
        }
        Ok(loaded)
    }

    fn render(&self, name: &str, mut data: Value) -> anyhow::Result<String> {
        if let Value::Object(map) = &mut data {
            map.insert("site_name".into(), Value::String(self.site_name.clone()));
        }
        self.registry
            .render(name, &data)
            .with_context(|| format!("rendering admin page {name}"))
    }

    pub fn page(&self, status: StatusCode, name: &str, data: Value) -> Response {
        match self.render(name, data) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => crate::routes::AppError(e).into_response(),
        }
    }

    pub fn message(&self, status: StatusCode, title: &str, text: &str) -> Response {
        self.page(status, "message", json!({ "title": title, "text": text }))
    }
}
