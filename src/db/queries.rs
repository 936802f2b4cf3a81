//! Tracked queries: parse the notebook, intern each code cell's text, analyse it, build the graph.

use crate::analysis::{CellAnalysis, analyze_cell};
use crate::graph::Graph;
use crate::notebook::{CellKind, Notebook, NotebookError, parse_notebook};

use super::{Db, NotebookFile};

/// The text of one code cell. Interned, so equal texts (anywhere, in any notebook) share one
/// analysis.
#[salsa::interned(debug)]
pub struct CellSource<'db> {
    /// The cell's source.
    #[returns(ref)]
    pub text: String,
}

/// The notebook, parsed from the file's bytes.
#[salsa::tracked(returns(ref))]
pub fn parsed_notebook(db: &dyn Db, file: NotebookFile) -> Result<Notebook, NotebookError> {
    parse_notebook(file.path(db), file.contents(db))
}

/// The code cells of the notebook, in order (empty when the notebook does not parse).
#[salsa::tracked(returns(ref))]
pub fn code_cells(db: &dyn Db, file: NotebookFile) -> Vec<CellSource<'_>> {
    match parsed_notebook(db, file) {
        Ok(notebook) => notebook
            .cells
            .iter()
            .filter(|cell| cell.kind == CellKind::Code)
            .map(|cell| CellSource::new(db, cell.source.clone()))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The analysis of one code cell.
#[salsa::tracked(returns(ref))]
pub fn cell_analysis<'db>(db: &'db dyn Db, cell: CellSource<'db>) -> CellAnalysis {
    analyze_cell(cell.text(db))
}

/// The dependency graph of the notebook's code cells.
#[salsa::tracked(returns(ref))]
pub fn notebook_graph(db: &dyn Db, file: NotebookFile) -> Graph {
    let analyses: Vec<&CellAnalysis> = code_cells(db, file)
        .iter()
        .map(|&cell| cell_analysis(db, cell))
        .collect();
    let refuted = file.refuted(db).iter().cloned().collect();
    let learned = file.learned(db).iter().cloned().collect();
    let files = file.files(db).iter().cloned().collect();
    Graph::build_refined(&analyses, &refuted, &learned, &files)
}
