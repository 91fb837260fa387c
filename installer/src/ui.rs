//! What the user sees: informational lines (silenced by `-q`), warnings
//! (always), and progress bars (only on a terminal, never with `-q`).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Clone, Copy, Default)]
pub struct Ui {
    pub quiet: bool,
}

impl Ui {
    pub fn new(quiet: bool) -> Ui {
        Ui { quiet }
    }

    /// A line of normal output (stdout), unless `--quiet`.
    pub fn info(&self, line: impl AsRef<str>) {
        if !self.quiet {
            crate::output::out_line(line.as_ref());
        }
    }

    /// A warning: printed even with `--quiet`, on stderr.
    pub fn warn(&self, line: impl AsRef<str>) {
        crate::output::err_line(&format!("installer: warning: {}", line.as_ref()));
    }

    /// Whether progress bars are drawn: stderr is a terminal, no `-q`.
    pub fn shows_progress(&self) -> bool {
        !self.quiet && std::io::stderr().is_terminal()
    }

    /// A progress bar over `len` steps; hidden unless stderr is a terminal.
    pub fn progress(&self, len: u64, what: &str) -> ProgressBar {
        if !self.shows_progress() {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len);
        if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len}") {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_string());
        bar
    }

    /// A progress bar over `len` bytes (copying, verifying an image), with
    /// sizes and rate; hidden unless stderr is a terminal.
    pub fn progress_bytes(&self, len: u64, what: &str) -> ProgressBar {
        if !self.shows_progress() {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_string());
        bar
    }
}
