//! The shipped templates (`templates/email`, `templates/web`, `templates/admin` with their
//! partials), compiled into the binary so it runs from any directory. `templates.dir`, when
//! set, is an override for local edits: a file there takes precedence over the shipped one of
//! the same path, and a folder there adds to the shipped ones.

use std::path::{Path, PathBuf};

use anyhow::Context;
use include_dir::{include_dir, Dir};

static SHIPPED: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates");

/// Where templates are read from: the shipped set, overlaid by an optional directory.
#[derive(Debug, Clone, Default)]
pub struct TemplateFiles {
    dir: Option<PathBuf>,
}

impl TemplateFiles {
    /// The shipped templates only.
    pub fn shipped() -> Self {
        Self::default()
    }

    /// The shipped templates, overlaid by `dir` (`templates.dir`) when it is set.
    pub fn with_override(dir: Option<&Path>) -> Self {
        Self {
            dir: dir.map(Path::to_path_buf),
        }
    }

    /// The text of `path` (relative to the templates root, `/`-separated, e.g.
    /// `email/update/body.html.hbs`): the override's file when there is one, else the shipped.
    ///
    /// # Errors
    /// Neither has the file, the override's cannot be read, or the text is not UTF-8; the
    /// error names the path.
    pub fn read(&self, path: &str) -> anyhow::Result<String> {
        if let Some(dir) = &self.dir {
            let local = dir.join(path);
            if local.is_file() {
                return std::fs::read_to_string(&local)
                    .with_context(|| format!("reading {}", local.display()));
            }
        }
        let file = SHIPPED
            .get_file(path)
            .with_context(|| format!("template {path} is missing"))?;
        file.contents_utf8()
            .map(str::to_owned)
            .with_context(|| format!("template {path} is not UTF-8"))
    }

    /// The names of the files (`folders == false`) or folders directly in `path`, shipped and
    /// overriding together, sorted, each once. A folder neither has gives an empty list.
    ///
    /// # Errors
    /// The override's folder exists but cannot be read.
    pub fn list(&self, path: &str, folders: bool) -> anyhow::Result<Vec<String>> {
        let mut names: Vec<String> = Vec::new();
        if let Some(shipped) = SHIPPED.get_dir(path) {
            let entries: Vec<&Path> = if folders {
                shipped.dirs().map(Dir::path).collect()
            } else {
                shipped.files().map(include_dir::File::path).collect()
            };
            names.extend(
                entries
                    .into_iter()
                    .filter_map(|p| p.file_name()?.to_str().map(str::to_owned)),
            );
        }
        if let Some(dir) = &self.dir {
            let local = dir.join(path);
            if local.is_dir() {
                for entry in std::fs::read_dir(&local)
                    .with_context(|| format!("reading {}", local.display()))?
                {
                    let entry = entry.with_context(|| format!("reading {}", local.display()))?;
                    if entry.path().is_dir() == folders {
                        if let Ok(name) = entry.file_name().into_string() {
                            names.push(name);
                        }
                    }
                }
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_set_holds_every_kind_of_template() {
        let files = TemplateFiles::shipped();
        assert!(files.read("email/update/body.html.hbs").is_ok());
        assert!(files.read("web/partials/header.html.hbs").is_ok());
        assert!(files.read("admin/partials/layout.html.hbs").is_ok());
        assert!(files
            .list("email", true)
            .unwrap()
            .contains(&"update".to_owned()));
        assert!(files.read("email/nothing/here.hbs").is_err());
    }

    #[test]
    fn a_file_in_the_override_takes_precedence_and_a_folder_adds() {
        let dir = std::env::temp_dir().join(format!("newsletter-files-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("email/special")).unwrap();
        std::fs::create_dir_all(dir.join("email/update")).unwrap();
        std::fs::write(
            dir.join("email/update/subject.txt.hbs"),
            "Local {{subject}}",
        )
        .unwrap();
        let files = TemplateFiles::with_override(Some(&dir));
        let subject = files.read("email/update/subject.txt.hbs").unwrap();
        let html = files.read("email/update/body.html.hbs");
        let folders = files.list("email", true).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(subject, "Local {{subject}}");
        assert!(html.is_ok(), "the other parts stay the shipped ones");
        assert!(folders.contains(&"special".to_owned()) && folders.contains(&"welcome".to_owned()));
    }
}
