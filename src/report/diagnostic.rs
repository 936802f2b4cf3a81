//! Problems found in a notebook's cells, positioned relative to the cell ("cell 3, line 2"),
//! rendered with the offending line, as ruff renders notebook diagnostics.

use std::fmt::Write as _;
use std::path::Path;

/// A problem in one code cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The 0-based index of the cell among the notebook's code cells.
    pub cell: usize,
    /// 1-based line within the cell.
    pub line: usize,
    /// 1-based column within the line.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl Diagnostic {
    /// Renders the diagnostic for stderr: a headline naming the file, cell, line and column,
    /// then the source line with a caret under the column.
    pub fn render(&self, path: &Path, cell_source: &str) -> String {
        let mut out = format!(
            "error: syntax error in `{}`, cell {}, line {}, column {}: {}\n",
            path.display(),
            self.cell,
            self.line,
            self.column,
            lowercase_first(&self.message)
        );
        if let Some(text) = cell_source.lines().nth(self.line.saturating_sub(1)) {
            let gutter = self.line.to_string().len();
            let caret_offset: usize = text
                .chars()
                .take(self.column.saturating_sub(1))
                .map(|ch| if ch == '\t' { 4 } else { 1 })
                .sum();
            let shown = text.replace('\t', "    ");
            let _ = writeln!(out, "{:gutter$} |", "");
            let _ = writeln!(out, "{} | {shown}", self.line);
            let _ = writeln!(out, "{:gutter$} | {:caret_offset$}^", "", "");
        }
        out
    }
}

fn lowercase_first(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) if !message.starts_with("EOF") => first.to_lowercase().chain(chars).collect(),
        _ => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_file_cell_line_column_and_caret() {
        let diagnostic = Diagnostic {
            cell: 3,
            line: 2,
            column: 5,
            message: "Expected an expression".into(),
        };
        let text = diagnostic.render(Path::new("nb.ipynb"), "x = 1\ny = (\n");
        assert_eq!(
            text,
            "error: syntax error in `nb.ipynb`, cell 3, line 2, column 5: expected an expression\n  |\n2 | y = (\n  |     ^\n"
        );
    }
}
