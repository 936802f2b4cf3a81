//! The one place that writes to stdout and stderr.
//!
//! A closed stdout (`nbmemo plan nb.ipynb | head`) is not an error: the write reports
//! [`Closed`] and the command ends quietly with status 0, as ripgrep and ruff do.
//!
//! The library API ([`crate::api`]) uses a *capturing* printer: errors and diagnostics are kept
//! (to become the message of the error it returns) instead of printed; warnings still print.

use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};

/// stdout was closed by the reader (a broken pipe).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

/// Writes data to stdout and messages to stderr.
#[derive(Debug, Clone, Default)]
pub struct Printer {
    quiet: bool,
    /// When set, errors and diagnostics are kept here instead of printed.
    captured: Option<Arc<Mutex<Vec<String>>>>,
}

impl Printer {
    /// A printer; `quiet` silences warnings and notes (errors always print).
    pub fn new(quiet: bool) -> Self {
        Printer {
            quiet,
            captured: None,
        }
    }

    /// A quiet printer that keeps errors and diagnostics (see [`Printer::captured`]) instead of
    /// printing them; warnings still go to stderr.
    pub fn capturing() -> Self {
        Printer {
            quiet: true,
            captured: Some(Arc::default()),
        }
    }

    /// The errors (without the `error: ` prefix) and diagnostics a capturing printer kept, in
    /// order.
    pub fn captured(&self) -> Vec<String> {
        self.captured.as_ref().map_or_else(Vec::new, |captured| {
            captured
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        })
    }

    /// Keeps `text` when capturing; returns whether it did.
    fn capture(&self, text: &str) -> bool {
        let Some(captured) = &self.captured else {
            return false;
        };
        captured
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(text.trim_end().to_owned());
        true
    }

    /// Whether warnings and notes are silenced.
    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    /// Writes `data` to stdout.
    ///
    /// # Errors
    /// [`Closed`] when stdout is a closed pipe. Other write errors are reported on stderr and
    /// also end the output.
    pub fn stdout(&self, data: &str) -> Result<(), Closed> {
        let mut out = io::stdout().lock();
        match out.write_all(data.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Err(Closed),
            Err(err) => {
                self.error(&format!("failed to write to stdout: {err}"));
                Err(Closed)
            }
        }
    }

    /// Writes an error message to stderr (`error: …`).
    pub fn error(&self, message: &str) {
        if self.capture(message) {
            return;
        }
        Self::stderr(&format!("error: {message}\n"));
    }

    /// Writes a warning to stderr unless quiet (a capturing printer always writes it).
    pub fn warning(&self, message: &str) {
        if !self.quiet || self.captured.is_some() {
            Self::stderr(&format!("warning: {message}\n"));
        }
    }

    /// Writes a status line to stderr unless quiet (`watch`: what it waits for, what changed).
    pub fn status(&self, message: &str) {
        if !self.quiet {
            Self::stderr(&format!("{message}\n"));
        }
    }

    /// Writes preformatted text to stderr (diagnostics with their snippets).
    pub fn diagnostic(&self, text: &str) {
        if self.capture(text) {
            return;
        }
        Self::stderr(text);
    }

    fn stderr(text: &str) {
        let mut err = io::stderr().lock();
        // Nothing sensible is left to do when stderr itself fails.
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
    }
}
