//! The `nbmemo` binary: parse arguments, set up logging, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use nbmemo::cli::Cli;
use nbmemo::env_vars::NBMEMO_LOG;
use tracing_subscriber::EnvFilter;

/// The stack of the thread nbmemo runs on: deeply nested (machine-written) code recurses in
/// the parser and the analysis. Reserved address space, touched only as deep as an input needs.
const STACK_SIZE: usize = 1024 * 1024 * 1024;

fn main() -> ExitCode {
    std::thread::Builder::new()
        .name("nbmemo".to_string())
        .stack_size(STACK_SIZE)
        .spawn(run)
        .map_or_else(
            |_| run(),
            |thread| thread.join().unwrap_or(ExitCode::from(101)),
        )
}

fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help and version to stdout (exit 0) and usage errors to stderr (2).
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { 2 } else { 0 });
        }
    };
    init_logging(cli.global.verbose, cli.global.quiet);
    nbmemo::exec::interrupt::install();
    let status = nbmemo::run(&cli);
    if nbmemo::exec::interrupt::interrupted() {
        return ExitCode::from(130); // 128 + SIGINT, as shells report it
    }
    ExitCode::from(status.code())
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
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
