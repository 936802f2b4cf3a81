//! The executor: Python worker processes and the scheduler that runs cells on them.
//!
//! Workers are long-lived processes of the user's own interpreter (`--python`, else
//! `$VIRTUAL_ENV/bin/python`, else `python3` on `PATH`) running the embedded runner
//! (`python/runner.py`), speaking the framed protocol of `PROTOCOL.md`. The [`pool`] keeps one
//! thread per worker slot and starts a worker only when a cell must really run, so a run where
//! everything is cached starts no Python at all. The [`scheduler`] decides, as cells finish,
//! which cells can start, replays cached ones from the store and sends the rest to the pool.

pub mod interrupt;
pub mod pool;
pub mod protocol;
pub mod scheduler;
pub mod worker;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use pool::{Completion, Job, Pool};
pub use worker::Worker;

/// Executor errors. A worker crash or timeout fails one cell; the others are tool errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The interpreter could not be started.
    #[error("failed to start the Python interpreter `{}`: {source}", python.display())]
    Spawn {
        /// The interpreter.
        python: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The interpreter started but cannot import cloudpickle.
    #[error(
        "the Python interpreter `{}` cannot import `cloudpickle`, which nbmemo's workers need{}\n  help: install it into that environment: `{} -m pip install cloudpickle`",
        python.display(),
        if detail.is_empty() { String::new() } else { format!(" ({detail})") },
        python.display()
    )]
    NoCloudpickle {
        /// The interpreter.
        python: PathBuf,
        /// The import error.
        detail: String,
    },
    /// The worker did not greet properly.
    #[error("the Python worker (`{}`) failed to start: {detail}", python.display())]
    Handshake {
        /// The interpreter.
        python: PathBuf,
        /// What happened.
        detail: String,
    },
    /// The worker died while running a cell.
    #[error("{0}")]
    Crashed(String),
    /// The cell ran past its timeout; the worker was killed.
    #[error("the cell ran longer than the timeout of {}s; its worker was stopped", .0.as_secs_f64())]
    Timeout(Duration),
    /// The worker sent something unreadable.
    #[error("protocol error talking to the worker: {0}")]
    Protocol(String),
}

impl Error {
    /// Whether the error belongs to one cell (the run goes on) rather than to the tool.
    pub fn is_cell_fault(&self) -> bool {
        matches!(
            self,
            Error::Crashed(_) | Error::Timeout(_) | Error::Protocol(_)
        )
    }
}

/// Which interpreter runs the workers: `--python`, else the active virtualenv, else `python3`.
pub fn resolve_python(flag: Option<&Path>) -> PathBuf {
    if let Some(python) = flag {
        return python.to_path_buf();
    }
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV").filter(|venv| !venv.is_empty()) {
        let candidate = Path::new(&venv).join("bin").join("python");
        if candidate.exists() {
            return candidate;
        }
    }
    PathBuf::from("python3")
}
