//! `nbmemo._native`: the pyo3 extension module of the Python package (abi3, CPython >= 3.9).
//!
//! A thin layer over [`nbmemo::api`]: the Python half (`python/nbmemo/`) wraps these functions
//! with defaults and docs. The engine runs in this process, with the GIL released; Ctrl-C
//! during `run` stops the workers (as in the command line) and raises `KeyboardInterrupt`.

#![deny(unsafe_code)]

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    nbmemo,
    NbmemoError,
    PyException,
    "nbmemo could not do its job: the notebook cannot be read, the cache cannot be opened, the \
     interpreter cannot be started. The message is the one `nbmemo` prints after `error: `."
);

/// How often a waiting call looks for Ctrl-C (Python's signal handlers run in its main thread,
/// only when asked while the GIL is released).
const SIGNAL_POLL: Duration = Duration::from_millis(100);

/// Runs `work` on a thread of its own with the GIL released, looking for Python signals while
/// it runs: on `KeyboardInterrupt` (or any exception a signal handler raises), nbmemo's workers
/// are killed, the work ends (its running cells failed, nothing of them cached), and the
/// exception is returned.
fn detached<T: Send>(py: Python<'_>, work: impl FnOnce() -> T + Send) -> PyResult<T> {
    py.detach(|| {
        std::thread::scope(|scope| {
            let (sender, receiver) = mpsc::channel();
            let handle = scope.spawn(move || {
                let _ = sender.send(work());
            });
            let mut signalled: Option<PyErr> = None;
            loop {
                match receiver.recv_timeout(SIGNAL_POLL) {
                    Ok(value) => {
                        return match signalled {
                            Some(err) => {
                                nbmemo::api::clear_interrupt();
                                Err(err)
                            }
                            None => Ok(value),
                        };
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        if signalled.is_none()
                            && let Err(err) = Python::attach(|py| py.check_signals())
                        {
                            nbmemo::api::interrupt();
                            signalled = Some(err);
                        }
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        // The work panicked: hand the panic on (pyo3 raises `PanicException`).
                        nbmemo::api::clear_interrupt();
                        match handle.join() {
                            Err(payload) => std::panic::resume_unwind(payload),
                            Ok(()) => {
                                return Err(PyException::new_err("nbmemo ended without a result"));
                            }
                        }
                    }
                }
            }
        })
    })
}

/// The `nbmemo` command line, in this process: `argv` as `sys.argv` (the program name first);
/// returns the exit status. `fallback_python` is the workers' interpreter when neither
/// `--python` nor `$VIRTUAL_ENV` names one. Installs nbmemo's Ctrl-C handler: for a console
/// script that exits right after.
#[pyfunction]
#[pyo3(signature = (argv, fallback_python=None))]
fn main(py: Python<'_>, argv: Vec<OsString>, fallback_python: Option<PathBuf>) -> u8 {
    py.detach(|| nbmemo::api::main_with_args(argv, fallback_python.as_deref()))
}

/// Runs a notebook (`nbmemo run --json`) and returns its JSON object as a `dict`.
#[pyfunction]
#[pyo3(signature = (path, jobs=None, force=false, timeout=None, python=None, fallback_python=None, cache_dir=None))]
#[allow(clippy::too_many_arguments)] // Python keyword arguments
fn run(
    py: Python<'_>,
    path: PathBuf,
    jobs: Option<usize>,
    force: bool,
    timeout: Option<f64>,
    python: Option<PathBuf>,
    fallback_python: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
) -> PyResult<Py<PyAny>> {
    let request = nbmemo::api::RunRequest {
        jobs,
        force,
        timeout,
        python,
        fallback_python,
        cache_dir,
    };
    let value = detached(py, move || nbmemo::api::run(&path, &request))?
        .map_err(|err| NbmemoError::new_err(err.message))?;
    to_python(py, &value)
}

/// A notebook's plan (`nbmemo plan --format json`) as a `dict`.
#[pyfunction]
#[pyo3(signature = (path, python=None, fallback_python=None, cache_dir=None))]
fn plan(
    py: Python<'_>,
    path: PathBuf,
    python: Option<PathBuf>,
    fallback_python: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
) -> PyResult<Py<PyAny>> {
    let value = detached(py, move || {
        nbmemo::api::plan(&path, python, fallback_python.as_deref(), cache_dir)
    })?
    .map_err(|err| NbmemoError::new_err(err.message))?;
    to_python(py, &value)
}

/// Whether `nbmemo check` takes the file for a notebook: `.ipynb`, or `.py` with a `# %%` line.
#[pyfunction]
fn is_notebook(path: PathBuf) -> bool {
    nbmemo::api::is_notebook(&path)
}

/// A JSON value as Python objects, through the `json` module (the objects are small).
fn to_python(py: Python<'_>, value: &serde_json::Value) -> PyResult<Py<PyAny>> {
    let text = serde_json::to_string(value)
        .map_err(|err| PyException::new_err(format!("cannot encode the result: {err}")))?;
    Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
}

/// The extension module.
#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add("__version__", nbmemo::api::VERSION)?;
    module.add("NbmemoError", module.py().get_type::<NbmemoError>())?;
    module.add_function(wrap_pyfunction!(main, module)?)?;
    module.add_function(wrap_pyfunction!(run, module)?)?;
    module.add_function(wrap_pyfunction!(plan, module)?)?;
    module.add_function(wrap_pyfunction!(is_notebook, module)?)?;
    Ok(())
}
