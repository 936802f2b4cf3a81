//! The `nbmemo` binary: the command line of [`nbmemo::api::main_with_args`] (argument parsing,
//! logging, running, the exit code), which the Python package's console script shares.

use std::process::ExitCode;

// Analysis, the graph and the JSON reports allocate many small objects: mimalloc is faster at
// that than glibc's allocator (the binary only; the Python extension keeps the interpreter's).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    ExitCode::from(nbmemo::api::main_with_args(std::env::args_os(), None))
}
