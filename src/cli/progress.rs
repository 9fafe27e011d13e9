//! Progress of a long command (`newsletter import`) on standard error: a bar (indicatif) when
//! stderr is a terminal, else one plain line per step, `progress DONE/TOTAL rows`, which logs
//! and scripts can read (no control characters, no redrawing).

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressStyle};

pub enum Progress {
    Bar(ProgressBar),
    Lines { total: u64, last: Option<u64> },
}

impl Progress {
    /// Starts showing progress towards `total` rows.
    pub fn start(total: u64) -> Self {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total);
            if let Ok(style) = ProgressStyle::with_template(
                "{bar:40} {pos}/{len} rows, {elapsed} elapsed, about {eta} left",
            ) {
                bar.set_style(style);
            }
            Self::Bar(bar)
        } else {
            Self::Lines { total, last: None }
        }
    }

    /// `done` rows of the total are handled; a line is written only when that changed.
    pub fn set(&mut self, done: u64) {
        match self {
            Self::Bar(bar) => bar.set_position(done),
            Self::Lines { total, last } => {
                if *last != Some(done) {
                    *last = Some(done);
                    let _ = writeln!(std::io::stderr(), "progress {done}/{total} rows");
                }
            }
        }
    }

    /// Ends the display (the bar is cleared; the lines end with the last step).
    pub fn finish(self) {
        if let Self::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}
