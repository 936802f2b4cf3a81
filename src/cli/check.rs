//! Arguments of `nbmemo check`.

use std::path::PathBuf;

pub(super) const AFTER_HELP: &str = "\
Finds the notebooks under PATHS (`.ipynb` files, and `.py` files with a `# %%` marker line;
.gitignore files and --exclude globs are honoured, hidden folders, .ipynb_checkpoints, .nbmemo
and virtual environments are skipped) and runs them all through the cache, in one pool of
workers: cells of different notebooks run in parallel too, and only cells whose inputs changed
run again. A file named directly is always checked (a `.py` file still needs a `# %%` marker).

Output: one line per notebook (its cells: cached, ran, failed, skipped, and the time), then every
failure with its notebook, cell, line and traceback. -q prints only the failures.

--junit FILE writes a JUnit XML report (a <testsuite> per notebook, a <testcase> per code cell,
<failure> with the traceback, <skipped> after an upstream failure, the cache status as a
property); --json FILE writes the `nbmemo run --json` object of every notebook, in one array.

--outputs-fresh executes nothing and starts no Python: for each `.ipynb`, it fails when a code
cell's stored outputs were not written by `nbmemo run --inplace` for its current code (the
record `--inplace` leaves in the cell's metadata), or, when the cache knows the values the cell
reads, for its current inputs. This is the pre-commit check \"you changed the code but did not
re-run it\".

Exit status: 0 when every cell succeeded (or every output is fresh), 1 when a cell failed (or
an output is stale), 2 on a tool error (a path that does not exist, an unreadable notebook). No
notebook under PATHS is a warning with status 0, as with ruff.

Examples:
  nbmemo check                                  every notebook under the current folder
  nbmemo check notebooks/ --junit report.xml    for CI: a JUnit report, only changes re-run
  nbmemo check . --exclude 'drafts/' --exclude '*_scratch.ipynb'
  nbmemo check --outputs-fresh notebooks/       are the committed outputs current?";

/// Arguments of `nbmemo check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Notebooks, or folders to search for notebooks [default: the current folder].
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Leave out files and folders matching this gitignore-style glob (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,

    /// Write a JUnit XML report to FILE.
    #[arg(long, value_name = "FILE", conflicts_with = "outputs_fresh")]
    pub junit: Option<PathBuf>,

    /// Write the JSON report of every notebook (an array of `nbmemo run --json` objects) to FILE.
    #[arg(long, value_name = "FILE", conflicts_with = "outputs_fresh")]
    pub json: Option<PathBuf>,

    /// Execute nothing: fail when the outputs stored in `.ipynb` files are not those of the current code.
    #[arg(long)]
    pub outputs_fresh: bool,

    /// How many cells may run at once [default: the number of cores].
    #[arg(short, long, value_name = "N")]
    pub jobs: Option<usize>,

    /// Ignore cached results: run every cell.
    #[arg(long, conflicts_with = "outputs_fresh")]
    pub force: bool,

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
