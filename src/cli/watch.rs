//! Arguments of `nbmemo watch`.

use std::path::PathBuf;

pub(super) const AFTER_HELP: &str = "\
Runs the notebooks once, then again on every save, running only the cells the change
invalidated (the same lines as `nbmemo run`; cached cells are not listed after the first run).
Files the cells read (`data.csv`) are watched too. Workers stay warm between saves.

Editors that save by writing a temporary file and renaming it (vim, VS Code, JetBrains), a
file deleted and created again, and several quick saves in a row all count as one change
(--debounce). A save with the same content runs nothing.

A save that arrives while cells run: no further cell starts; the running ones finish and are
cached (their results are right for the code they ran); then the saved version runs, which
replays whatever is still valid.

A syntax error in the saved notebook is shown (cell, line, column) and the watcher goes on.
Ctrl-C stops the running cells (nothing of them is cached) and ends with status 130.

With --json, one line per completed run on stdout: the object `nbmemo run --json` prints (an
array with several notebooks), on one line; a stable interface for editors and scripts.

Examples:
  nbmemo watch analysis.ipynb
  nbmemo watch notebook.py --show-output
  nbmemo watch analysis.ipynb --json | jq -c .summary";

/// Arguments of `nbmemo watch`.
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// Notebooks: `.ipynb` files or jupytext percent `.py` files.
    #[arg(value_name = "NOTEBOOK", required = true)]
    pub notebooks: Vec<PathBuf>,

    /// How many cells may run at once [default: the number of cores].
    #[arg(short, long, value_name = "N")]
    pub jobs: Option<usize>,

    /// Print one JSON line per run on stdout instead of the per-cell lines.
    #[arg(long)]
    pub json: bool,

    /// Also print each cell's output under its line.
    #[arg(long)]
    pub show_output: bool,

    /// Stop a cell that runs longer than this many seconds (its worker is killed).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,

    /// Cap each worker's memory (its address space) at SIZE, such as 2GiB or 500MB: a cell that
    /// needs more fails with a MemoryError, which is reported and never cached.
    #[arg(long, value_name = "SIZE", env = "NBMEMO_MEMORY_LIMIT")]
    pub memory_limit: Option<String>,

    /// Wait this long after a change for more changes before running [default: 50].
    #[arg(long, value_name = "MS", default_value_t = 50)]
    pub debounce: u64,

    /// Poll the files every MS milliseconds instead of using the system's file events (for
    /// network and container file systems that send none).
    #[arg(long, value_name = "MS", num_args = 0..=1, default_missing_value = "200")]
    pub poll: Option<u64>,

    /// The Python interpreter for the workers.
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,

    /// Where the cache lives [default: `.nbmemo` at the project root].
    #[arg(long, value_name = "DIR", env = "NBMEMO_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}
