//! What each subcommand does, from parsed arguments to an exit status.

pub mod cache;
pub mod check;
pub mod plan;
pub mod run;
pub mod watch;

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

/// The salsa input of a notebook read from disk, with what its previous run learned: refuted
/// may-mutate candidates, what the cells change beyond what the analysis sees (`(code hash,
/// name)`: library-state probes, values reached through shared objects, confirmed candidates),
/// and what the cells did to files.
pub(crate) fn notebook_input(
    db: &crate::db::Database,
    path: std::path::PathBuf,
    contents: Vec<u8>,
    previous: Option<&crate::store::NotebookState>,
) -> crate::db::NotebookFile {
    let refuted = previous
        .map(|state| state.refuted.clone())
        .unwrap_or_default();
    let learned = previous
        .map(|state| state.confirmed.clone())
        .unwrap_or_default();
    let files = previous.map(learned_files).unwrap_or_default();
    crate::db::NotebookFile::new(db, path, contents, refuted, learned, files)
}

/// What a run saw each cell's code do to files, as the graph takes it.
pub(crate) fn learned_files(
    state: &crate::store::NotebookState,
) -> Vec<(crate::hash::ContentHash, crate::files::FileAccess)> {
    state
        .files
        .iter()
        .map(|used| {
            let access = crate::files::FileAccess {
                read: used.read.clone(),
                written: used.written.clone(),
            };
            (used.code_hash, access)
        })
        .collect()
}
