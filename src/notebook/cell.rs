//! One notebook cell, as both readers (`.ipynb` and percent `.py`) produce it.

/// What a cell holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CellKind {
    /// Python code: the only kind nbmemo executes.
    Code,
    /// Markdown text.
    Markdown,
    /// Raw text, passed through untouched.
    Raw,
}

impl CellKind {
    /// The nbformat `cell_type` string: `code`, `markdown` or `raw`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Code => "code",
            Self::Markdown => "markdown",
            Self::Raw => "raw",
        }
    }
}

/// A cell of a notebook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// Code, markdown or raw.
    pub kind: CellKind,
    /// The cell's text. For `.ipynb`, a list of strings is joined as is; for percent `.py`
    /// files, lines are joined with `\n` and there is no trailing newline.
    pub source: String,
    /// The `.ipynb` cell id (nbformat 4.5 and later), if present.
    pub id: Option<String>,
    /// The `.ipynb` cell metadata, or for a percent `.py` cell the options on its marker line
    /// (`key="value"` pairs, a JSON object, `title`, `cell_depth`), as jupytext reads them.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Percent `.py` only: the title written after `# %%`, if any.
    pub title: Option<String>,
    /// 1-based line where the cell starts: for percent `.py`, its `# %%` marker line, or the
    /// first line of text that comes before any marker. 0 when unknown (`.ipynb`).
    pub line: usize,
    /// 1-based line of the first line of `source` in the file; 0 when unknown (`.ipynb`).
    /// For percent code cells, line `k` (0-based) of `source` is line `source_line + k` of the
    /// file, which maps a traceback's cell-relative line number back to the file.
    pub source_line: usize,
    /// Position of the cell in `Notebook::cells` (0-based).
    pub index: usize,
}

impl Cell {
    /// The strings in the `tags` metadata list; other values in the list are skipped.
    pub fn tags(&self) -> Vec<&str> {
        match self.metadata.get("tags") {
            Some(serde_json::Value::Array(tags)) => {
                tags.iter().filter_map(serde_json::Value::as_str).collect()
            }
            _ => Vec::new(),
        }
    }

    /// Whether this is a code cell.
    #[must_use]
    pub fn is_code(&self) -> bool {
        self.kind == CellKind::Code
    }
}
