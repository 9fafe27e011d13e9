//! The process's logs: text (for a person) or JSON (for a collector), by `log.format`, to
//! standard output.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber. Safe to call more than once (later calls do nothing).
/// Text logs are coloured only on a terminal, and never when `NO_COLOR` is set to anything
/// but the empty string (<https://no-color.org>): journald, a file or a pipe get plain lines.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_new(&settings.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let colour = coloured(
        std::io::stdout().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(colour);
    let _ = match settings.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Whether text logs carry colour codes: on a terminal, unless `NO_COLOR` holds something.
fn coloured(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::coloured;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_and_never_under_no_color() {
        assert!(coloured(true, None));
        assert!(
            coloured(true, Some(OsStr::new(""))),
            "an empty NO_COLOR is unset"
        );
        assert!(!coloured(true, Some(OsStr::new("1"))));
        assert!(!coloured(false, None), "journald, a file, a pipe");
    }
}
