//! The progress bar of `run`: on stderr, only when stderr is a terminal, never under `-q`, `-v`,
//! `--json`, `NBMEMO_NO_PROGRESS` or in CI logs (`CI` set). Lines printed while it shows go
//! through [`Progress::suspend`] so they don't tear it.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::env_vars::NBMEMO_NO_PROGRESS;

/// A progress bar, or nothing.
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar over `total` cells when the conditions allow one.
    pub fn new(total: usize, allowed: bool) -> Progress {
        let wanted = allowed
            && std::io::stderr().is_terminal()
            && std::env::var_os(NBMEMO_NO_PROGRESS).is_none()
            && std::env::var_os("CI").is_none();
        if !wanted || total == 0 {
            return Progress { bar: None };
        }
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        let color = std::env::var_os("NO_COLOR").is_none();
        let template = if color {
            "{spinner:.cyan} {pos}/{len} cells [{bar:30.cyan/blue}] {elapsed} {msg}"
        } else {
            "{spinner} {pos}/{len} cells [{bar:30}] {elapsed} {msg}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(Duration::from_millis(100));
        Progress { bar: Some(bar) }
    }

    /// One more cell done.
    pub fn inc(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    /// Shows which cells are running.
    pub fn message(&self, text: String) {
        if let Some(bar) = &self.bar {
            bar.set_message(text);
        }
    }

    /// Runs `print` with the bar hidden.
    pub fn suspend(&self, print: impl FnOnce()) {
        match &self.bar {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
