//! `nbmemo plan`: read a notebook, analyse it, print its dependency graph.

use tracing::instrument;

use crate::cli::{PlanArgs, PlanFormat};
use crate::db::{
    Database, NotebookFile, cell_analysis, code_cells, notebook_graph, parsed_notebook,
};
use crate::notebook::CellKind;
use crate::report::Printer;
use crate::report::plan::{Plan, PlanCell};

use super::ExitStatus;

/// Runs `nbmemo plan`.
#[instrument(skip_all, fields(notebook = %args.notebook.display()))]
pub fn plan(args: &PlanArgs, printer: &Printer) -> ExitStatus {
    let contents = match std::fs::read(&args.notebook) {
        Ok(contents) => contents,
        Err(err) => {
            printer.error(&format!(
                "failed to read `{}`: {err}",
                args.notebook.display()
            ));
            return ExitStatus::Error;
        }
    };
    let db = Database::default();
    let file = NotebookFile::new(&db, args.notebook.clone(), contents);
    let notebook = match parsed_notebook(&db, file) {
        Ok(notebook) => notebook,
        Err(err) => {
            printer.error(&err.to_string());
            return ExitStatus::Error;
        }
    };
    let sources = code_cells(&db, file);
    let cells: Vec<PlanCell<'_>> = notebook
        .cells
        .iter()
        .filter(|cell| cell.kind == CellKind::Code)
        .zip(sources)
        .map(|(cell, &source)| PlanCell {
            source_index: cell.index,
            source: &cell.source,
            analysis: cell_analysis(&db, source),
        })
        .collect();
    let graph = notebook_graph(&db, file);
    let plan = Plan {
        path: &args.notebook,
        cells: &cells,
        graph,
    };
    let output = match args.format {
        PlanFormat::Text => plan.to_text(),
        PlanFormat::Json => {
            let mut json = serde_json::to_string_pretty(&plan.to_json()).unwrap_or_default();
            json.push('\n');
            json
        }
        PlanFormat::Dot => plan.to_dot(),
    };
    if printer.stdout(&output).is_err() {
        return ExitStatus::Success;
    }
    let diagnostics = plan.diagnostics();
    for diagnostic in &diagnostics {
        printer.diagnostic(&diagnostic.render(&args.notebook, cells[diagnostic.cell].source));
    }
    if diagnostics.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Error
    }
}
