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
            // A long line (machine-written code) is shown as a window around the column.
            let chars: Vec<char> = text.chars().collect();
            let column = self.column.saturating_sub(1).min(chars.len());
            let start = column.saturating_sub(WINDOW / 2);
            let end = (start + WINDOW).min(chars.len());
            let mut window: String = chars[start..end].iter().collect();
            let mut caret_offset: usize = chars[start..column]
                .iter()
                .map(|&ch| if ch == '\t' { 4 } else { 1 })
                .sum();
            if start > 0 {
                window.insert(0, '…');
                caret_offset += 1;
            }
            if end < chars.len() {
                window.push('…');
            }
            let shown = window.replace('\t', "    ");
            let _ = writeln!(out, "{:gutter$} |", "");
            let _ = writeln!(out, "{} | {shown}", self.line);
            let _ = writeln!(out, "{:gutter$} | {:caret_offset$}^", "", "");
        }
        out
    }
}

/// How many characters of a source line a diagnostic shows at most.
const WINDOW: usize = 100;

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

    #[test]
    fn long_lines_are_shown_around_the_column() {
        let line = format!("x = {}1{}", "(".repeat(300), ")".repeat(300));
        let diagnostic = Diagnostic {
            cell: 0,
            line: 1,
            column: 205,
            message: "too many nested parentheses".into(),
        };
        let text = diagnostic.render(Path::new("nb.py"), &line);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[2].chars().count() < 110, "{text}");
        assert!(lines[2].starts_with("1 | …((("), "{text}");
        assert!(lines[2].ends_with("(…"), "{text}");
        let caret = lines[3].chars().position(|c| c == '^').expect("caret");
        assert_eq!(lines[2].chars().nth(caret), Some('('), "{text}");
    }
}
