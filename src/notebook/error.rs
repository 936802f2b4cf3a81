//! Errors raised while reading a notebook file.
//!
//! Every message names the file, and the cell or worksheet where that helps.
//! Cells are numbered from 0, in the order of `Notebook::cells` (for an nbformat 3 notebook:
//! after its worksheets were concatenated), which is also `Cell::index`.
//! Errors are plain data (`Clone`, `Eq`), so they can be the result of a salsa query:
//! I/O errors keep their message, not the `io::Error`.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where in a notebook a structural problem was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Location {
    /// The notebook's top-level object.
    Notebook,
    /// An nbformat 3 worksheet, by its 0-based position in `worksheets`.
    Worksheet(usize),
    /// A cell, by its 0-based position in `Notebook::cells`.
    Cell(usize),
}

impl Location {
    /// What the JSON object at this location is called in messages.
    fn noun(self) -> &'static str {
        match self {
            Self::Notebook => "the notebook",
            Self::Worksheet(_) => "the worksheet",
            Self::Cell(_) => "the cell",
        }
    }
}

/// Formats as the suffix that follows the file name: empty, `, cell 3` or `, worksheet 0`.
impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Notebook => Ok(()),
            Self::Worksheet(worksheet_idx) => write!(f, ", worksheet {worksheet_idx}"),
            Self::Cell(cell_idx) => write!(f, ", cell {cell_idx}"),
        }
    }
}

/// A notebook that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotebookError {
    /// The file could not be read.
    #[error("failed to read `{path}`: {message}")]
    Io {
        /// The notebook's path.
        path: PathBuf,
        /// The operating system's message.
        message: String,
    },
    /// The extension is neither `.ipynb` nor `.py`.
    #[error(
        "`{path}` is not a notebook: expected a `.ipynb` file or a jupytext percent `.py` file"
    )]
    UnknownExtension {
        /// The notebook's path.
        path: PathBuf,
    },
    /// An `.ipynb` file that is empty or holds only whitespace.
    #[error("`{path}` is empty")]
    Empty {
        /// The notebook's path.
        path: PathBuf,
    },
    /// An `.ipynb` file that holds binary data (a NUL byte), such as an image.
    #[error("`{path}` is a binary file, not a JSON notebook (NUL byte at byte {offset})")]
    Binary {
        /// The notebook's path.
        path: PathBuf,
        /// Offset of the first NUL byte in the file.
        offset: usize,
    },
    /// The file is not UTF-8.
    #[error("`{path}` is not valid UTF-8 (byte {offset})")]
    NotUtf8 {
        /// The notebook's path.
        path: PathBuf,
        /// Offset of the first byte that is not part of a valid UTF-8 sequence.
        offset: usize,
    },
    /// An `.ipynb` file that does not parse as JSON.
    #[error("`{path}` is not valid JSON: {message} at line {line}, column {column}")]
    InvalidJson {
        /// The notebook's path.
        path: PathBuf,
        /// `serde_json`'s description, without its position.
        message: String,
        /// 1-based line.
        line: usize,
        /// 1-based column (0 when the error is at the end of the file).
        column: usize,
    },
    /// The `nbformat` field is missing or is not an integer.
    #[error(
        "`{path}` does not say which nbformat it uses: `nbformat` {problem} (supported: 3 and 4)"
    )]
    InvalidNbformat {
        /// The notebook's path.
        path: PathBuf,
        /// `is missing`, or `must be an integer, found a string`.
        problem: String,
    },
    /// A major nbformat version other than 3 or 4.
    #[error("`{path}` uses nbformat {version}, which nbmemo does not read (supported: 3 and 4)")]
    UnsupportedNbformat {
        /// The notebook's path.
        path: PathBuf,
        /// The major version found, as written in the file.
        version: String,
    },
    /// A JSON value that should be an object is not: the notebook, a worksheet or a cell.
    #[error("`{path}`{at}: {noun} must be a JSON object, found {found}", noun = at.noun())]
    NotAnObject {
        /// The notebook's path.
        path: PathBuf,
        /// Which value.
        at: Location,
        /// What was found instead, such as `an array`.
        found: String,
    },
    /// A required field is missing.
    #[error("`{path}`{at}: `{field}` is missing")]
    MissingField {
        /// The notebook's path.
        path: PathBuf,
        /// The object the field is missing from.
        at: Location,
        /// The field's name.
        field: String,
    },
    /// A field holds a value of the wrong type.
    #[error("`{path}`{at}: `{field}` must be {expected}, found {found}")]
    WrongType {
        /// The notebook's path.
        path: PathBuf,
        /// The object holding the field.
        at: Location,
        /// The field's name.
        field: String,
        /// What the field must hold, such as `a string or a list of strings`.
        expected: String,
        /// What it holds, such as `a number`.
        found: String,
    },
    /// A cell whose `cell_type` is not `code`, `markdown` or `raw`.
    #[error(
        "`{path}`, cell {cell}: unknown cell_type `{cell_type}` (expected `code`, `markdown` or `raw`)"
    )]
    UnknownCellType {
        /// The notebook's path.
        path: PathBuf,
        /// 0-based index of the cell in `Notebook::cells`.
        cell: usize,
        /// The `cell_type` found.
        cell_type: String,
    },
}

impl NotebookError {
    /// The path of the notebook this error is about.
    #[must_use]
    pub fn path(&self) -> &Path {
        match self {
            Self::Io { path, .. }
            | Self::UnknownExtension { path }
            | Self::Empty { path }
            | Self::Binary { path, .. }
            | Self::NotUtf8 { path, .. }
            | Self::InvalidJson { path, .. }
            | Self::InvalidNbformat { path, .. }
            | Self::UnsupportedNbformat { path, .. }
            | Self::NotAnObject { path, .. }
            | Self::MissingField { path, .. }
            | Self::WrongType { path, .. }
            | Self::UnknownCellType { path, .. } => path,
        }
    }
}

/// Describes a JSON value's type for messages: `null`, `a boolean`, `a number`, `a string`,
/// `an array` or `an object`.
pub(super) fn json_type_name(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
