//! The `nbmemo` binary: the command line of [`nbmemo::api::main_with_args`] (argument parsing,
//! logging, running, the exit code), which the Python package's console script shares.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(nbmemo::api::main_with_args(std::env::args_os(), None))
}
