//! The notebook model and its two readers: Jupyter `.ipynb` files (nbformat 3 and 4) and
//! jupytext "percent" `.py` scripts (`# %%` cells).
//!
//! Reading is pure apart from [`read_notebook`]: [`parse_notebook`] takes the file's bytes, so
//! a salsa query can call it on a file-content input. The format comes from the extension.
//! An `.ipynb` notebook keeps its whole JSON document (upgraded to nbformat 4 when it was
//! nbformat 3), so that a later write-back can change only outputs and execution counts and
//! leave every other field, and the key order, as it was.

mod cell;
mod error;
mod ipynb;
mod percent;
mod percent_options;
#[cfg(test)]
mod tests;
mod text;
pub mod write;

use std::path::{Path, PathBuf};

pub use cell::{Cell, CellKind};
pub use error::{Location, NotebookError};

/// A parsed notebook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notebook {
    /// The path as the caller gave it.
    pub path: PathBuf,
    /// Which format the file is in.
    pub format: NotebookFormat,
    /// All cells (code, markdown and raw), in order; `cells[i].index == i`.
    pub cells: Vec<Cell>,
    /// For `.ipynb`: the whole document (after an nbformat 3 to 4 upgrade), key order
    /// preserved. `None` for percent `.py` files.
    pub document: Option<serde_json::Value>,
}

/// The file format of a notebook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotebookFormat {
    /// A Jupyter `.ipynb` JSON notebook.
    Ipynb {
        /// Major version of `document` (4, also after an upgrade from 3).
        nbformat: u64,
        /// Minor version of `document` (0 after an upgrade from 3).
        nbformat_minor: u64,
        /// `Some(3)` when the file was nbformat 3 and was upgraded on read.
        upgraded_from: Option<u64>,
    },
    /// A jupytext percent script (`# %%` cell markers).
    Percent,
}

impl Notebook {
    /// The code cells, in order.
    pub fn code_cells(&self) -> impl Iterator<Item = &Cell> {
        self.cells.iter().filter(|cell| cell.kind == CellKind::Code)
    }
}

/// Python truthiness of a JSON value, for the `x or default` idioms of `nbformat` and
/// jupytext that the readers reproduce.
fn python_truthy(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => false,
        serde_json::Value::Bool(flag) => *flag,
        serde_json::Value::Number(number) => number.as_f64().is_some_and(|float| float != 0.0),
        serde_json::Value::String(text) => !text.is_empty(),
        serde_json::Value::Array(items) => !items.is_empty(),
        serde_json::Value::Object(map) => !map.is_empty(),
    }
}

/// Parses a notebook from its bytes; the format comes from the extension of `path`:
/// `.ipynb` is a JSON notebook, `.py` a jupytext percent script (ASCII case is ignored).
///
/// # Errors
///
/// Any other extension, and any file that is not a readable notebook of its format; see
/// [`NotebookError`].
pub fn parse_notebook(path: &Path, bytes: &[u8]) -> Result<Notebook, NotebookError> {
    let extension = path.extension().and_then(|ext| ext.to_str()).unwrap_or("");
    if extension.eq_ignore_ascii_case("ipynb") {
        ipynb::parse(path, bytes)
    } else if extension.eq_ignore_ascii_case("py") {
        percent::parse(path, bytes)
    } else {
        Err(NotebookError::UnknownExtension {
            path: path.to_path_buf(),
        })
    }
}

/// Reads the file at `path`, then parses it with [`parse_notebook`].
///
/// # Errors
///
/// An I/O error, or any error of [`parse_notebook`]. The extension is checked before the file
/// is read.
pub fn read_notebook(path: &Path) -> Result<Notebook, NotebookError> {
    let extension = path.extension().and_then(|ext| ext.to_str()).unwrap_or("");
    if !(extension.eq_ignore_ascii_case("ipynb") || extension.eq_ignore_ascii_case("py")) {
        return Err(NotebookError::UnknownExtension {
            path: path.to_path_buf(),
        });
    }
    let bytes = fs_err::read(path).map_err(|err| NotebookError::Io {
        path: path.to_path_buf(),
        message: io_message(path, &err),
    })?;
    parse_notebook(path, &bytes)
}

/// The operating system's message of an `fs-err` error, without the context and path that
/// `fs-err` adds (the notebook error already names the file), such as
/// "No such file or directory (os error 2)".
fn io_message(path: &Path, err: &std::io::Error) -> String {
    // With fs-err's `expose_original_error` feature the OS error is the source; without it,
    // the message reads "failed to open file `PATH`: MESSAGE".
    if let Some(source) = err.get_ref().and_then(std::error::Error::source) {
        return source.to_string();
    }
    let full = err.to_string();
    match full.split_once(&format!("`{}`: ", path.display())) {
        Some((_, message)) => message.to_owned(),
        None => full,
    }
}
