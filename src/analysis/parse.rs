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
    if let Some(offset) = too_deeply_nested(source) {
        // CPython refuses it too; and a parser recursing that deep could run out of stack.
        let index = LineIndex::from_source_text(source);
        let offset = TextSize::try_from(offset).unwrap_or_default();
        return ParsedCell {
            suite: Vec::new(),
            errors: vec![position(
                &index,
                source,
                offset,
                "too many nested parentheses".to_string(),
            )],
            display_suppressed: false,
        };
    }
    let Some(parsed) = parse_guarded(source) else {
        return ParsedCell {
            suite: Vec::new(),
            errors: vec![SyntaxError {
                line: 1,
                column: 1,
                message: "the parser cannot read this cell (an internal parser error)".to_string(),
            }],
            display_suppressed: false,
        };
    };
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

thread_local! {
    /// Set while this thread runs the parser: a panic there is reported as a syntax error.
    static PARSING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Parses in notebook mode; `None` if the parser panics (fuzzing found inputs that reach an
/// `unreachable!` in ruff_python_parser 0.0.10, such as a cell magic in expression position).
/// The panic is not printed: the cell gets a syntax error instead.
fn parse_guarded(source: &str) -> Option<ruff_python_parser::Parsed<ruff_python_ast::ModModule>> {
    static QUIET_HOOK: std::sync::Once = std::sync::Once::new();
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !PARSING.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
    PARSING.with(|parsing| parsing.set(true));
    let parsed = std::panic::catch_unwind(|| parse_unchecked_source(source, PySourceType::Ipynb));
    PARSING.with(|parsing| parsing.set(false));
    parsed.ok()
}

/// CPython's tokenizer refuses more than 200 nested brackets (`MAXLEVEL`).
const MAX_NESTING: usize = 200;

/// The byte offset of the first bracket nested deeper than [`MAX_NESTING`], outside strings
/// and comments (a quick scan before parsing, so that hostile input cannot exhaust the stack).
fn too_deeply_nested(source: &str) -> Option<usize> {
    let bytes = source.as_bytes();
    let mut depth = 0usize;
    let mut idx = 0;
    while idx < bytes.len() {
        match bytes[idx] {
            b'#' => {
                while idx < bytes.len() && bytes[idx] != b'\n' {
                    idx += 1;
                }
                continue;
            }
            quote @ (b'\'' | b'"') => {
                let triple = bytes.get(idx..idx + 3) == Some(&[quote, quote, quote][..]);
                idx += if triple { 3 } else { 1 };
                while idx < bytes.len() {
                    match bytes[idx] {
                        b'\\' => idx += 2,
                        b'\n' if !triple => break,
                        byte if byte == quote => {
                            if !triple {
                                idx += 1;
                                break;
                            }
                            if bytes.get(idx..idx + 3) == Some(&[quote, quote, quote][..]) {
                                idx += 3;
                                break;
                            }
                            idx += 1;
                        }
                        _ => idx += 1,
                    }
                }
                continue;
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some(idx);
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        idx += 1;
    }
    None
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
