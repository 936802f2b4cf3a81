//! Arguments of `nbmemo plan`.

use std::path::PathBuf;

use clap::ValueEnum;

pub(super) const AFTER_HELP: &str = "\
Output:
  text  one line per code cell: index, wave, the cells it depends on, reads → writes;
        then the number of waves and the critical path.
  json  one object (a stable interface; fields are only ever added):
          {\"notebook\": \"<path>\",
           \"cells\": [{\"index\": 0, \"reads\": [\"x\"], \"writes\": [\"y\"], \"may_mutate\": [\"z\"],
                      \"depends_on\": [0], \"wave\": 0, \"barrier\": false, \"diagnostics\": []}],
           \"waves\": 3, \"critical_path\": 3}
        `index` is the 0-based position among the notebook's code cells; `depends_on` lists such
        indices. Extra fields: `source_index` (position among all cells), `first_line`,
        `barrier_reasons`, `inputs` (name → providing cells), `critical_path_cells`, and, when
        the cache can tell (a previous run with the same interpreter), `cache` (\"cached\" or
        \"would run\") and `reason` (why it would run); both null otherwise.
        A diagnostic is {\"cell\": 3, \"line\": 2, \"column\": 5, \"message\": \"...\"}.
  dot   a Graphviz digraph; edges are labelled with the names they carry.

Exit status: 0 when the notebook was analysed without problems, 2 when it could not be read
or a cell has a syntax error (the plan is still printed; the errors go to stderr).

Examples:
  nbmemo plan examples/quickstart.ipynb
  nbmemo plan examples/percent.py --format json | jq '.cells[] | select(.wave == 0) | .index'";

/// Arguments of `nbmemo plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The notebook: a `.ipynb` file or a jupytext percent `.py` file.
    #[arg(value_name = "NOTEBOOK")]
    pub notebook: PathBuf,

    /// Output format.
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,

    /// The Python interpreter whose cached results to consult (as for `run`).
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,

    /// Where the cache lives [default: `.nbmemo` at the project root].
    #[arg(long, value_name = "DIR", env = "NBMEMO_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}

/// How `plan` prints the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// A table for people.
    Text,
    /// One JSON object for scripts.
    Json,
    /// A Graphviz digraph.
    Dot,
}
