//! The one place that talks to `ruff_python_parser`.
//!
//! The parser crates are internal crates of ruff with no semver promise, so every use of them
//! that is not plain AST walking sits here: parsing a cell in notebook mode (so `%magic` and
//! `!cmd` parse), turning byte offsets into cell-relative line and column, and regenerating
//! normalized source text from the tree.

use ruff_python_ast::token::TokenKind;
use ruff_python_ast::{PySourceType, Stmt};
use ruff_python_codegen::{Generator, Indentation};
use ruff_python_parser::parse_unchecked_source;
use ruff_source_file::{LineEnding, LineIndex};
use ruff_text_size::TextSize;

/// A syntax error inside one cell, positioned relative to the cell (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SyntaxError {
    /// 1-based line within the cell.
    pub line: usize,
    /// 1-based column (in characters) within the line.
    pub column: usize,
    /// The parser's message.
    pub message: String,
}

/// A parsed cell: its statements, its syntax errors, and the display-suppression flag.
pub(crate) struct ParsedCell {
    pub(crate) suite: Vec<Stmt>,
    pub(crate) errors: Vec<SyntaxError>,
    /// The cell ends with `;`, which makes Jupyter drop the value of the last expression.
    pub(crate) display_suppressed: bool,
}

/// Parses one cell's source in notebook mode, recovering from errors.
///
/// Syntax that is valid for some Python version is accepted (the parser's version-specific
/// "unsupported syntax" checks are not reported): the user's interpreter is the judge of that
/// when the cell runs.
pub(crate) fn parse_cell(source: &str) -> ParsedCell {
    let parsed = parse_unchecked_source(source, PySourceType::Ipynb);
    let errors = if parsed.has_syntax_errors() {
        let index = LineIndex::from_source_text(source);
        let mut errors: Vec<SyntaxError> = parsed
            .errors()
            .iter()
            .map(|err| position(&index, source, err.location.start(), err.error.to_string()))
            .collect();
        errors.sort_by_key(|err| (err.line, err.column));
        errors.dedup();
        errors
    } else {
        Vec::new()
    };
    let display_suppressed = parsed
        .tokens()
        .iter()
        .rev()
        .find(|token| {
            !token.kind().is_trivia()
                && !matches!(
                    token.kind(),
                    TokenKind::Newline | TokenKind::Dedent | TokenKind::EndOfFile
                )
        })
        .is_some_and(|token| token.kind() == TokenKind::Semi);
    ParsedCell {
        suite: parsed.into_suite().into_iter().collect(),
        errors,
        display_suppressed,
    }
}

fn position(index: &LineIndex, source: &str, offset: TextSize, message: String) -> SyntaxError {
    let location = index.line_column(offset, source);
    SyntaxError {
        line: location.line.get(),
        column: location.column.get(),
        message,
    }
}

/// Regenerates source text from statements: no comments, no blank lines, one canonical layout.
///
/// This is the normalized form of a cell's code: two cells that differ only in comments,
/// blank lines or layout inside brackets regenerate to the same text.
pub(crate) fn normalized_text(suite: &[Stmt]) -> String {
    let indentation = Indentation::new("    ".to_string());
    let mut out = String::new();
    for stmt in suite {
        out.push_str(&Generator::new(&indentation, LineEnding::Lf).stmt(stmt));
        out.push('\n');
    }
    out
}
