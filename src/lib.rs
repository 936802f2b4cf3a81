//! nbmemo runs Python notebooks like a build.
//!
//! Every code cell is a build step. The data path runs one way: notebook file →
//! [`notebook`] (cells) → [`analysis`] (per-cell reads and writes) → [`graph`] (dependencies,
//! waves) → keys → executor → store → [`report`]. The [`db`] module holds the salsa database
//! that ties the pure steps together incrementally; [`commands`] drive them. See
//! `ARCHITECTURE.md` for the code map and the invariants.

pub mod analysis;
pub mod api;
pub mod cli;
pub mod commands;
pub mod db;
pub mod discover;
pub mod env_vars;
pub mod environment;
pub mod exec;
pub mod files;
pub mod graph;
pub mod hash;
pub mod key;
pub mod notebook;
pub mod project;
pub mod report;
pub mod store;

use cli::{Cli, Command};
use commands::ExitStatus;
use report::Printer;

/// Runs the command line `cli` and returns how it ended.
pub fn run(cli: &Cli) -> ExitStatus {
    let printer = Printer::new(cli.global.quiet);
    match &cli.command {
        Command::Plan(args) => commands::plan::plan(args, &printer),
        Command::Run(args) => commands::run::run(args, &printer),
        Command::Check(args) => commands::check::check(args, &printer),
        Command::Watch(args) => commands::watch::watch(args, &printer),
        Command::Cache(args) => commands::cache::cache(args, &printer),
    }
}
