//! What each subcommand does, from parsed arguments to an exit status.

pub mod check;
pub mod plan;
pub mod run;

/// How a command ended; `main` maps it to the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything went well (0).
    Success,
    /// A cell failed (1).
    Failure,
    /// nbmemo itself could not do its job: unreadable notebook, syntax error, bad arguments (2).
    Error,
}

impl ExitStatus {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Error => 2,
        }
    }
}

/// What a notebook's previous runs learned the cells change beyond what the analysis sees:
/// `(code hash, name)` pairs (library-state probes, values reached through shared objects, and
/// confirmed may-mutate candidates).
pub(crate) fn learned_probes(
    state: &crate::store::NotebookState,
) -> Vec<(crate::hash::ContentHash, String)> {
    state.confirmed.clone()
}
