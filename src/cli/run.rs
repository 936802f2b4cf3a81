//! Arguments of `nbmemo run`.

use std::path::PathBuf;

pub(super) const AFTER_HELP: &str = "\
Only cells whose inputs changed run; cells that don't depend on each other run at the same
time in separate Python processes. A cell's result is looked up by the hash of its normalized
code, of the values it reads and of the Python environment; a run where nothing changed
replays everything from the cache without starting Python.

Output: one line per code cell as it finishes (ran in T / cached / failed / skipped, and why it
ran), then a summary. With --json, exactly one JSON object on stdout (a stable interface;
fields are only ever added):
  {\"notebook\": \"<path>\",
   \"cells\": [{\"index\": 0, \"status\": \"ran|cached|failed|skipped\", \"stdout\": \"...\",
              \"stderr\": \"...\", \"started_at\": 0.01, \"finished_at\": 0.52, \"reason\": \"...\"}],
   \"summary\": {\"ran\": 1, \"cached\": 0, \"failed\": 0, \"skipped\": 0, \"wall_s\": 0.6}}
`index` is the 0-based position among code cells; `stdout` is the cell's printed output
(replayed for cached cells); `started_at`/`finished_at` are seconds since the run started (null
when the cell did not execute). Extra fields: `first_line`, `duration_s`, `key`, `error`
({ename, evalue, traceback}), `outputs` (nbformat outputs), `mutated`, `unpicklable`;
`summary.saved_s`. With several notebooks, --json prints an array of such objects.

The cache lives in `.nbmemo/` at the project root (the nearest folder above the notebook with
`.git` or `pyproject.toml`, else the notebook's folder); --cache-dir or NBMEMO_CACHE_DIR
override it. Workers run `--python`, else `$VIRTUAL_ENV/bin/python`, else `python3`; they need
`cloudpickle` installed there.

Exit status: 0 when every cell succeeded, 1 when a cell failed, 2 on a tool error.

Examples:
  nbmemo run analysis.ipynb                 run what changed
  nbmemo run analysis.ipynb -j 1            one cell at a time
  nbmemo run analysis.ipynb --inplace       also write outputs into the notebook
  nbmemo run notebook.py --json | jq .summary";

/// Arguments of `nbmemo run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Notebooks: `.ipynb` files or jupytext percent `.py` files.
    #[arg(value_name = "NOTEBOOK", required = true)]
    pub notebooks: Vec<PathBuf>,

    /// How many cells may run at once [default: the number of cores].
    #[arg(short, long, value_name = "N")]
    pub jobs: Option<usize>,

    /// Ignore cached results: run every cell.
    #[arg(long)]
    pub force: bool,

    /// Write outputs and execution counts into the `.ipynb`, as `jupyter nbconvert --execute --inplace` does.
    #[arg(long)]
    pub inplace: bool,

    /// Print one JSON object on stdout instead of the per-cell lines.
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

    /// The Python interpreter for the workers.
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,

    /// Where the cache lives [default: `.nbmemo` at the project root].
    #[arg(long, value_name = "DIR", env = "NBMEMO_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}
