//! Salsa inputs: what the driver reads from disk and hands to the pure queries.

use std::path::PathBuf;

use crate::files::FileAccess;
use crate::hash::ContentHash;

/// A notebook file as read from disk. The driver sets `contents` again when the file changes.
#[salsa::input(debug)]
pub struct NotebookFile {
    /// The path as the user gave it (used in messages).
    #[returns(ref)]
    pub path: PathBuf,
    /// The raw bytes; decoding errors are reported by [`super::parsed_notebook`].
    #[returns(ref)]
    pub contents: Vec<u8>,
    /// `(cell code hash, name)`: may-mutate candidates the last run refuted (from the store).
    #[returns(ref)]
    pub refuted: Vec<(ContentHash, String)>,
    /// `(cell code hash, probe)`: library state the last run saw a cell touch.
    #[returns(ref)]
    pub learned: Vec<(ContentHash, String)>,
    /// `(cell code hash, access)`: what the last run saw each cell's code do to files.
    #[returns(ref)]
    pub files: Vec<(ContentHash, FileAccess)>,
}
