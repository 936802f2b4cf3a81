//! The entry points for code that embeds nbmemo: the `nbmemo` binary and the Python package.
//!
//! [`main_with_args`] is the whole command line as a function: `src/main.rs` calls it with the
//! process arguments, and the Python package's `nbmemo` console script calls it in-process
//! (through the extension module) with `sys.argv`, so both are the same program.
//!
//! [`run`] and [`plan`] are the library API behind `nbmemo.run` and `nbmemo.plan`: they return
//! the JSON object `nbmemo run --json` and `nbmemo plan --format json` print, and print nothing
//! but warnings; an error the command line would print (`error: failed to read …`) becomes an
//! [`Error`] with that message.
//!
//! The workers need a Python interpreter. The command line takes `--python`, else
//! `$VIRTUAL_ENV/bin/python`, else `python3`; an embedder inside a Python process passes its own
//! interpreter (`sys.executable`) as the fallback that replaces `python3`, so that a package
//! installed in a virtualenv runs that virtualenv's Python even when it is not activated.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use clap::Parser;
use serde_json::Value;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};
use crate::commands::ExitStatus;
use crate::commands::run::{RunSettings, memory_limit, run_notebooks};
use crate::env_vars::{NBMEMO_CACHE_DIR, NBMEMO_LOG, NBMEMO_MEMORY_LIMIT};
use crate::exec::resolve_python;
use crate::report::Printer;

/// nbmemo's version (the `nbmemo` crate's), as `nbmemo --version` prints it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The last resort of [`resolve_python`]: what an embedder's fallback replaces.
const LAST_RESORT_PYTHON: &str = "python3";

/// The stack of the thread nbmemo runs on: deeply nested (machine-written) code recurses in
/// the parser and the analysis. Reserved address space, touched only as deep as an input needs.
pub const STACK_SIZE: usize = 1024 * 1024 * 1024;

/// Runs `work` on a thread with a [`STACK_SIZE`] stack (on this thread when none can be
/// started) and returns its result; a panic in `work` goes on in the caller.
fn on_large_stack<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    let slot = Mutex::new(Some(work));
    let run = || {
        let work = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
        work.map(|work| work())
    };
    let ran = std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name("nbmemo".to_owned())
            .stack_size(STACK_SIZE)
            .spawn_scoped(scope, run)
            .ok()?;
        Some(
            thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
        )
    });
    // Not run when the thread could not be started: run it here.
    ran.flatten()
        .or_else(run)
        .expect("the work runs exactly once")
}

/// Runs the command line `args` (the program name first, as `std::env::args_os` gives it) and
/// returns the process exit code: 0 ok, 1 a cell failed, 2 a tool error or a usage error, 130
/// interrupted.
///
/// Runs on a thread of its own with a [`STACK_SIZE`] stack. Sets up logging (`-v`,
/// `NBMEMO_LOG`) and nbmemo's Ctrl-C handler, so call it only where the process is nbmemo's: a
/// binary's `main`, or a console script that exits right after.
/// `fallback_python` replaces `python3` as the workers' interpreter when neither `--python` nor
/// `$VIRTUAL_ENV` names one.
pub fn main_with_args<I, T>(args: I, fallback_python: Option<&Path>) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    // A panic was already reported by the panic hook; 101 is Rust's exit status for it.
    std::panic::catch_unwind(|| on_large_stack(|| command_line(args, fallback_python)))
        .unwrap_or(101)
}

/// [`main_with_args`] on the thread with the large stack.
fn command_line(args: Vec<OsString>, fallback_python: Option<&Path>) -> u8 {
    let mut cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help and version to stdout (exit 0) and usage errors to stderr (2).
            let _ = err.print();
            return if err.use_stderr() { 2 } else { 0 };
        }
    };
    if let Some(fallback) = fallback_python {
        #[allow(unreachable_patterns)] // commands without a `--python` option
        let python = match &mut cli.command {
            Command::Run(args) => Some(&mut args.python),
            Command::Plan(args) => Some(&mut args.python),
            Command::Check(args) => Some(&mut args.python),
            Command::Watch(args) => Some(&mut args.python),
            _ => None,
        };
        if let Some(python) = python {
            *python = python_or(python.take(), Some(fallback));
        }
    }
    init_logging(cli.global.verbose, cli.global.quiet);
    crate::exec::interrupt::install();
    let status = crate::run(&cli);
    if crate::exec::interrupt::interrupted() {
        return 130; // 128 + SIGINT, as shells report it
    }
    status.code()
}

/// Logs go to stderr. `NBMEMO_LOG` wins over `-v`; the default shows warnings only.
fn init_logging(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "nbmemo=info",
        (false, 2) => "nbmemo=debug",
        (false, _) => "nbmemo=trace",
    };
    let filter = std::env::var(NBMEMO_LOG)
        .ok()
        .and_then(|value| EnvFilter::try_new(value).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    // A second call (the library API called again, or after the command line) keeps the first.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// The interpreter to hand the engine: `explicit`, else the one `$VIRTUAL_ENV` names (left for
/// [`resolve_python`] to find: `None`), else `fallback`.
fn python_or(explicit: Option<PathBuf>, fallback: Option<&Path>) -> Option<PathBuf> {
    explicit.or_else(|| {
        let resolved = resolve_python(None);
        if resolved.as_os_str() == LAST_RESORT_PYTHON {
            fallback.map(Path::to_path_buf)
        } else {
            None
        }
    })
}

/// `explicit`, else `$NBMEMO_CACHE_DIR` (the command line reads it through clap).
fn cache_dir_or_env(explicit: Option<PathBuf>) -> Option<PathBuf> {
    explicit.or_else(|| {
        std::env::var_os(NBMEMO_CACHE_DIR)
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
    })
}

/// What the library API could not do, with the message the command line prints after
/// `error: ` (several, one per line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    /// The message.
    pub message: String,
}

impl Error {
    /// The errors a capturing printer kept, or `fallback` when it kept none.
    fn from_printer(printer: &Printer, fallback: &str) -> Error {
        let captured = printer.captured();
        let message = if captured.is_empty() {
            fallback.to_owned()
        } else {
            captured.join("\n")
        };
        Error { message }
    }
}

/// How [`run`] runs a notebook: the options of `nbmemo run` that make sense for a library.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// How many cells may run at once (`-j`; default: the number of cores).
    pub jobs: Option<usize>,
    /// Ignore the cache (`--force`).
    pub force: bool,
    /// Per-cell timeout in seconds (`--timeout`).
    pub timeout: Option<f64>,
    /// The workers' interpreter (`--python`); else `$VIRTUAL_ENV/bin/python`, else
    /// `fallback_python`, else `python3`.
    pub python: Option<PathBuf>,
    /// The interpreter used when neither `python` nor `$VIRTUAL_ENV` names one (the embedding
    /// Python's `sys.executable`).
    pub fallback_python: Option<PathBuf>,
    /// Where the cache lives (`--cache-dir`); else `$NBMEMO_CACHE_DIR`, else `.nbmemo` at the
    /// project root.
    pub cache_dir: Option<PathBuf>,
}

/// Runs the notebook at `path` as `nbmemo run --json` does and returns the object it prints.
/// Prints nothing but warnings (to stderr); a cell that fails is in the object, not an error.
/// Logging is set up on first use (warnings; `NBMEMO_LOG` overrides).
///
/// # Errors
///
/// What makes `nbmemo run` exit with status 2: the notebook cannot be read, the cache cannot be
/// opened, the interpreter cannot be started.
pub fn run(path: &Path, request: &RunRequest) -> Result<Value, Error> {
    init_logging(0, false);
    // The memory cap of the command line's `--memory-limit`, from its environment variable.
    let memory_limit = memory_limit(std::env::var(NBMEMO_MEMORY_LIMIT).ok().as_deref())
        .map_err(|message| Error { message })?;
    let settings = RunSettings {
        force: request.force,
        jobs: request.jobs,
        timeout: request.timeout,
        memory_limit,
        python: python_or(request.python.clone(), request.fallback_python.as_deref()),
        cache_dir: cache_dir_or_env(request.cache_dir.clone()),
        json: true,
        ..RunSettings::default()
    };
    let printer = Printer::capturing();
    let (status, reports) =
        on_large_stack(|| run_notebooks(&[path.to_path_buf()], &settings, &printer));
    match (status, reports.into_iter().next()) {
        (ExitStatus::Error, _) | (_, None) => Err(Error::from_printer(
            &printer,
            &format!("failed to run `{}`", path.display()),
        )),
        (_, Some(report)) => Ok(report),
    }
}

/// The object `nbmemo plan --format json` prints for the notebook at `path`. Cells with syntax
/// errors are not an error here: their `diagnostics` say what is wrong, as the command line
/// prints the plan before them.
///
/// `python`, `fallback_python` and `cache_dir` choose the cache to consult as for [`run`].
///
/// # Errors
///
/// The notebook cannot be read or parsed.
pub fn plan(
    path: &Path,
    python: Option<PathBuf>,
    fallback_python: Option<&Path>,
    cache_dir: Option<PathBuf>,
) -> Result<Value, Error> {
    init_logging(0, false);
    let printer = Printer::capturing();
    let python = python_or(python, fallback_python);
    let cache_dir = cache_dir_or_env(cache_dir);
    on_large_stack(|| {
        crate::commands::plan::with_plan(
            path,
            python.as_deref(),
            cache_dir.as_deref(),
            &printer,
            |plan| plan.to_json(),
        )
    })
    .map_err(|_| Error::from_printer(&printer, &format!("failed to plan `{}`", path.display())))
}

/// Whether `nbmemo check` would take the file at `path` for a notebook when named on its
/// command line: an `.ipynb` file, or a `.py` file with a `# %%` marker line.
pub fn is_notebook(path: &Path) -> bool {
    crate::discover::find_notebooks(&[path.to_path_buf()], &[], crate::discover::Kinds::All)
        .is_ok_and(|found| !found.notebooks.is_empty())
}

/// Marks the process interrupted and kills every live worker: an embedder that owns the signal
/// (Python) calls this when Ctrl-C arrives during [`run`]; the run then ends quickly, its
/// running cells failed as interrupted (never cached). Call [`clear_interrupt`] once it has
/// returned.
pub fn interrupt() {
    crate::exec::interrupt::interrupt();
}

/// Forgets an interrupt, so that the next [`run`] runs.
pub fn clear_interrupt() {
    crate::exec::interrupt::clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_python_wins() {
        let explicit = Some(PathBuf::from("/opt/py/bin/python"));
        assert_eq!(
            python_or(explicit.clone(), Some(Path::new("/usr/bin/python3.9"))),
            explicit
        );
    }

    #[test]
    fn missing_notebook_is_the_cli_message() {
        let err = plan(Path::new("/nonexistent/nb.ipynb"), None, None, None)
            .expect_err("a missing notebook is an error");
        assert!(
            err.message
                .starts_with("failed to read `/nonexistent/nb.ipynb`: "),
            "{}",
            err.message
        );
    }

    #[test]
    fn plan_returns_the_json_object() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("nb.py");
        std::fs::write(&path, "# %%\nx = 1\n# %%\ny = x + 1\n").expect("write");
        let value = plan(&path, None, None, Some(dir.path().join("cache"))).expect("plan");
        assert_eq!(value["cells"][1]["depends_on"], serde_json::json!([0]));
        assert_eq!(value["waves"], 2);
        assert!(is_notebook(&path));
        let plain = dir.path().join("module.py");
        std::fs::write(&plain, "x = 1\n").expect("write");
        assert!(!is_notebook(&plain));
    }
}
