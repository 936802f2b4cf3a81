//! Static analysis of one code cell: what it reads, writes and may mutate, whether it is a
//! barrier, its syntax errors, and the hash of its normalized code.
//!
//! The analysis of a cell depends on the cell's source text alone (no notebook context), so the
//! salsa database memoizes it per distinct cell text: editing one cell re-analyses only that
//! cell. Resolving names across cells (which earlier cell a read comes from, what a called
//! function touches) is the graph's job (`crate::graph`).

mod magics;
mod parse;
pub mod probes;
mod symbols;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

pub use parse::SyntaxError;
pub use symbols::{ANONYMOUS, FunctionSummary, SoftUse};

use crate::hash::ContentHash;

/// A sorted set of Python names.
pub type NameSet = BTreeSet<String>;

/// Why a cell cannot be analysed, which makes it a barrier: it reads and writes every name and
/// runs alone, in notebook order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Barrier {
    /// `exec(…)`, `eval(…)`, `globals()`, `locals()`, `vars()`, or a function that uses them.
    DynamicCall(String),
    /// `from module import *`.
    StarImport(String),
    /// A shell escape, `!cmd`.
    Shell(String),
    /// A line magic outside the allow-list, such as `%run`.
    Magic(String),
    /// A cell magic whose body is not Python, such as `%%bash`.
    CellMagic(String),
    /// The cell does not parse; it will fail when run.
    SyntaxError,
    /// IPython's input/output history (`_`, `Out`, `_3`), which no cell binds.
    History(String),
}

impl fmt::Display for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Barrier::DynamicCall(call) => write!(f, "calls `{call}`"),
            Barrier::StarImport(module) => write!(f, "star import `from {module} import *`"),
            Barrier::Shell(command) => write!(f, "shell escape `!{command}`"),
            Barrier::Magic(magic) => write!(f, "magic `{magic}`"),
            Barrier::CellMagic(magic) => write!(f, "cell magic `%%{magic}`"),
            Barrier::SyntaxError => f.write_str("syntax error"),
            Barrier::History(name) => write!(f, "uses IPython's output history `{name}`"),
        }
    }
}

/// Everything nbmemo knows about one code cell from its text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CellAnalysis {
    /// Names loaded before the cell (definitely) binds them: values from earlier cells.
    pub reads: NameSet,
    /// Names the cell binds or deletes on some path.
    pub writes: NameSet,
    /// Names bound on every path through the cell (a subset of `writes`).
    pub definite_writes: NameSet,
    /// Names the cell deletes (`del x`, an `except … as x` handler).
    pub deletes: NameSet,
    /// Names read from earlier cells whose value the cell may change in place.
    pub may_mutate: NameSet,
    /// Names bound by `import` statements.
    pub imports: NameSet,
    /// Functions and classes the cell defines, by name, with what their bodies touch when
    /// called. Anonymous lambdas are summarised together under [`ANONYMOUS`].
    pub functions: BTreeMap<String, FunctionSummary>,
    /// `(bound, source)` pairs of plain aliasing statements (`b = a`, `c = obj.attr`, a loop
    /// variable and its iterable): after the cell, the two names may share an object.
    pub aliases: BTreeSet<(String, String)>,
    /// May-mutate candidates that are only called (`f(x)` makes `f` one): the graph drops them
    /// when the function is plainly defined and holds no state.
    pub called_only: NameSet,
    /// May-mutate candidates every use of which is soft (read-only pandas or numpy methods,
    /// arguments of library functions), with what the graph and the worker need to know.
    pub soft_mutations: BTreeMap<String, SoftUse>,
    /// Top-level packages the cell imports at module level (`import numpy as np` → `numpy`).
    pub imported_packages: NameSet,
    /// Why the cell is a barrier; empty when it is not.
    pub barriers: Vec<Barrier>,
    /// Every syntax error, in order.
    pub syntax_errors: Vec<SyntaxError>,
    /// blake3 of the normalized code: comments, blank lines and layout do not change it.
    pub code_hash: ContentHash,
    /// The cell ends with `;`: Jupyter shows no value for its last expression.
    pub display_suppressed: bool,
}

impl CellAnalysis {
    /// Whether the cell is a barrier (unanalysable, or failing to parse).
    pub fn is_barrier(&self) -> bool {
        !self.barriers.is_empty()
    }
}

/// Version tag of the normalized-code encoding; part of the hash input.
const NORMALIZED_CODE_TAG: &[u8] = b"nbmemo normalized code 1\n";

/// Analyses the source of one code cell.
pub fn analyze_cell(source: &str) -> CellAnalysis {
    if let Some(magic) = magics::cell_magic(source) {
        if !magic.runs_python() {
            return barrier_cell(source, Barrier::CellMagic(magic.name.clone()), Vec::new());
        }
        let mut analysis = analyze_python(&magic.body, &magic.binds(), magic.body_line_offset);
        let header = format!("%%{} {}\n", magic.name, magic.args);
        analysis.code_hash = hash_code(header.as_bytes(), &analysis.code_hash.0);
        return analysis;
    }
    analyze_python(source, &[], 0)
}

fn analyze_python(source: &str, extra_stores: &[String], line_offset: usize) -> CellAnalysis {
    let parsed = parse::parse_cell(source);
    if !parsed.errors.is_empty() {
        let errors = parsed
            .errors
            .into_iter()
            .map(|err| SyntaxError {
                line: err.line + line_offset,
                ..err
            })
            .collect();
        return barrier_cell(source, Barrier::SyntaxError, errors);
    }
    let symbols = symbols::analyze_module(&parsed.suite, extra_stores);
    let normalized = parse::normalized_text(&parsed.suite);
    let flag: &[u8] = if parsed.display_suppressed { b";" } else { b"" };
    CellAnalysis {
        reads: symbols.reads,
        writes: symbols.writes,
        definite_writes: symbols.definite,
        deletes: symbols.deletes,
        may_mutate: symbols.may_mutate,
        imports: symbols.imports,
        functions: symbols.functions,
        aliases: symbols.aliases,
        called_only: symbols.called_only,
        soft_mutations: symbols.soft,
        imported_packages: symbols.packages,
        barriers: dedup(symbols.barriers),
        syntax_errors: Vec::new(),
        code_hash: hash_code(flag, normalized.as_bytes()),
        display_suppressed: parsed.display_suppressed,
    }
}

/// A cell nbmemo cannot analyse: it reads and writes everything (the graph's job), and its
/// code hash is the hash of its raw text.
fn barrier_cell(source: &str, barrier: Barrier, syntax_errors: Vec<SyntaxError>) -> CellAnalysis {
    CellAnalysis {
        reads: NameSet::new(),
        writes: NameSet::new(),
        definite_writes: NameSet::new(),
        deletes: NameSet::new(),
        may_mutate: NameSet::new(),
        imports: NameSet::new(),
        functions: BTreeMap::new(),
        aliases: BTreeSet::new(),
        called_only: NameSet::new(),
        soft_mutations: BTreeMap::new(),
        imported_packages: NameSet::new(),
        barriers: vec![barrier],
        syntax_errors,
        code_hash: hash_code(b"raw\n", source.as_bytes()),
        display_suppressed: false,
    }
}

fn hash_code(prefix: &[u8], body: &[u8]) -> ContentHash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(NORMALIZED_CODE_TAG);
    hasher.update(&(prefix.len() as u64).to_le_bytes());
    hasher.update(prefix);
    hasher.update(&(body.len() as u64).to_le_bytes());
    hasher.update(body);
    hasher.finalize().into()
}

fn dedup(mut barriers: Vec<Barrier>) -> Vec<Barrier> {
    let mut seen = BTreeSet::new();
    barriers.retain(|barrier| seen.insert(barrier.clone()));
    barriers
}

#[cfg(test)]
mod tests;
