//! Admin pages: every `templates/admin/*.html.hbs`, with the `partials/` layout, compiled once
//! and rendered with empty data at start-up. HTML escaping is on for every value.

use anyhow::Context;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use handlebars::Handlebars;
use serde_json::{json, Value};

use crate::template_files::TemplateFiles;

/// `{{when value}}`: a time from the page's data (RFC 3339, as times are serialized) in the
/// reader's time zone (`me.time_zone` at the data's root, an IANA name; UTC without one), to
/// the minute and with the zone named: `2026-12-07 09:30 EST`. Nothing for a missing value;
/// anything that is not a time as it is.
fn when(
    h: &handlebars::Helper,
    _: &Handlebars,
    ctx: &handlebars::Context,
    _: &mut handlebars::RenderContext,
    out: &mut dyn handlebars::Output,
) -> handlebars::HelperResult {
    let Some(value) = h.param(0).map(|p| p.value()) else {
        return Ok(());
    };
    let Some(raw) = value.as_str() else {
        if !value.is_null() {
            out.write(&handlebars::html_escape(&value.to_string()))?;
        }
        return Ok(());
    };
    let zone: chrono_tz::Tz = ctx.data()["me"]["time_zone"]
        .as_str()
        .and_then(|z| z.parse().ok())
        .unwrap_or(chrono_tz::UTC);
    match chrono::DateTime::parse_from_rfc3339(raw) {
        Ok(at) => out.write(&local_minute(at.with_timezone(&zone))),
        Err(_) => out.write(&handlebars::html_escape(raw)),
    }?;
    Ok(())
}

/// `2026-12-07 09:30 EST`: to the minute, with the zone's abbreviation (or its offset where the
/// zone has no letters for it).
pub fn local_minute(at: chrono::DateTime<chrono_tz::Tz>) -> String {
    at.format("%Y-%m-%d %H:%M %Z").to_string()
}

pub struct AdminPages {
    registry: Handlebars<'static>,
    site_name: String,
}

/// The page names (`*.html.hbs`, suffix removed) of the files in `folder`.
fn templates_in(files: &TemplateFiles, folder: &str) -> anyhow::Result<Vec<String>> {
    Ok(files
        .list(folder, false)?
        .iter()
        .filter_map(|n| n.strip_suffix(".html.hbs"))
        .map(str::to_owned)
        .collect())
}

impl AdminPages {
    /// Compiles every admin page and partial from `files` and renders each with empty data.
    ///
    /// # Errors
    /// One does not compile or render; the error names it.
    pub fn load(files: &TemplateFiles, site_name: &str) -> anyhow::Result<Self> {
        let mut registry = Handlebars::new();
        registry.register_helper("when", Box::new(when));
        for name in templates_in(files, "admin/partials")? {
            let path = format!("admin/partials/{name}.html.hbs");
            registry
                .register_partial(&name, files.read(&path)?)
                .with_context(|| format!("compiling {path}"))?;
        }
        let pages = templates_in(files, "admin")?;
        for name in &pages {
            let path = format!("admin/{name}.html.hbs");
            registry
                .register_template_string(name, files.read(&path)?)
                .with_context(|| format!("compiling admin page {path}"))?;
        }
        let loaded = Self {
            registry,
            site_name: site_name.to_owned(),
        };
        for name in &pages {
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
