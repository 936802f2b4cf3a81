//! Command-line arguments (clap structs only; behaviour lives in `crate::commands`).

mod cache;
mod check;
mod plan;
mod run;
mod watch;

use clap::{ArgAction, Parser, Subcommand};

pub use cache::{
    CacheArgs, CacheClearArgs, CacheCommand, CacheGcArgs, CacheOptions, CacheStatsArgs,
};
pub use check::CheckArgs;
pub use plan::{PlanArgs, PlanFormat};
pub use run::RunArgs;
pub use watch::WatchArgs;

const AFTER_HELP: &str = "\
Examples:
  nbmemo run analysis.ipynb               run the cells whose inputs changed, in parallel
  nbmemo plan analysis.ipynb              show the dependency graph of a notebook
  nbmemo plan notebook.py --format json   the same, as JSON for scripts
  nbmemo plan analysis.ipynb --format dot | dot -Tsvg > graph.svg
  nbmemo check notebooks/ --junit report.xml   run every notebook of a folder, for CI
  nbmemo watch analysis.ipynb             re-run what changed on every save
  nbmemo cache stats                      what the cache holds; `cache gc` bounds it

Environment:
  NBMEMO_LOG   log filter (for example `nbmemo=debug`); overrides -v";

/// Run Python notebooks like a build: every cell is a memoized build step.
#[derive(Debug, Parser)]
#[command(name = "nbmemo", version, about, long_about = None, after_help = AFTER_HELP)]
#[command(propagate_version = true, arg_required_else_help = true)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,

    /// Global options.
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// Options every command accepts.
#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(global = true, short, long, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Print only errors.
    #[arg(global = true, short, long)]
    pub quiet: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run notebooks: only invalidated cells execute, independent cells in parallel.
    #[command(after_help = run::AFTER_HELP)]
    Run(RunArgs),
    /// Show a notebook's dependency graph: what each cell reads, writes and waits for.
    #[command(after_help = plan::AFTER_HELP)]
    Plan(PlanArgs),
    /// Run every notebook under paths, for CI and pre-commit: all failures, JUnit and JSON reports.
    #[command(after_help = check::AFTER_HELP)]
    Check(CheckArgs),
    /// Run notebooks, then again on every save: only the cells the change invalidated.
    #[command(after_help = watch::AFTER_HELP)]
    Watch(WatchArgs),
    /// Inspect and bound the cache: `stats`, `gc`, `clear`.
    #[command(after_help = cache::AFTER_HELP)]
    Cache(CacheArgs),
}
