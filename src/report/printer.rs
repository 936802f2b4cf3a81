//! The one place that writes to stdout and stderr.
//!
//! A closed stdout (`nbmemo plan nb.ipynb | head`) is not an error: the write reports
//! [`Closed`] and the command ends quietly with status 0, as ripgrep and ruff do.

use std::io::{self, Write};

/// stdout was closed by the reader (a broken pipe).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

/// Writes data to stdout and messages to stderr.
#[derive(Debug, Clone, Copy, Default)]
pub struct Printer {
    quiet: bool,
}

impl Printer {
    /// A printer; `quiet` silences warnings and notes (errors always print).
    pub fn new(quiet: bool) -> Self {
        Printer { quiet }
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
        Self::stderr(&format!("error: {message}\n"));
    }

    /// Writes a warning to stderr unless quiet.
    pub fn warning(&self, message: &str) {
        if !self.quiet {
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
        Self::stderr(text);
    }

    fn stderr(text: &str) {
        let mut err = io::stderr().lock();
        // Nothing sensible is left to do when stderr itself fails.
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
    }
}
