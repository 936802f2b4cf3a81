//! `nbmemo plan`: read a notebook, analyse it, print its dependency graph.

use tracing::instrument;

use crate::cli::{PlanArgs, PlanFormat};
use crate::db::{Database, cell_analysis, code_cells, notebook_graph, parsed_notebook};
use crate::environment::{Environment, InterpreterCache};
use crate::exec::resolve_python;
use crate::exec::scheduler::{CellSpec, predict};
use crate::notebook::CellKind;
use crate::project;
use crate::report::Printer;
use crate::report::plan::{Plan, PlanCell};
use crate::store::Store;
use std::path::Path;
use std::time::Duration;

use super::{ExitStatus, notebook_input};

/// Runs `nbmemo plan`.
#[instrument(skip_all, fields(notebook = %args.notebook.display()))]
pub fn plan(args: &PlanArgs, printer: &Printer) -> ExitStatus {
    let printed = with_plan(
        &args.notebook,
        args.python.as_deref(),
        args.cache_dir.as_deref(),
        printer,
        |plan| {
            let output = match args.format {
                PlanFormat::Text => plan.to_text(),
                PlanFormat::Json => {
                    let mut json =
                        serde_json::to_string_pretty(&plan.to_json()).unwrap_or_default();
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
                printer.diagnostic(
                    &diagnostic.render(&args.notebook, plan.cells[diagnostic.cell].source),
                );
            }
            if diagnostics.is_empty() {
                ExitStatus::Success
            } else {
                ExitStatus::Error
            }
        },
    );
    printed.unwrap_or_else(|status| status)
}

/// Reads and analyses the notebook at `path`, asks the cache (when a previous run left one)
/// whether each cell would run, and hands the plan to `use_plan` (`plan` prints it; the library
/// API returns its JSON).
///
/// # Errors
///
/// The notebook cannot be read: the error is printed and its exit status returned.
pub(crate) fn with_plan<R>(
    path: &Path,
    python: Option<&Path>,
    cache_dir: Option<&Path>,
    printer: &Printer,
    use_plan: impl FnOnce(&Plan<'_>) -> R,
) -> Result<R, ExitStatus> {
    let contents = match std::fs::read(path) {
        Ok(contents) => contents,
        Err(err) => {
            printer.error(&format!("failed to read `{}`: {err}", path.display()));
            return Err(ExitStatus::Error);
        }
    };
    let cache = open_cache(path, python, cache_dir);
    let previous = cache.as_ref().and_then(|(store, _)| {
        store
            .get_notebook_state(&project::notebook_id(path))
            .ok()
            .flatten()
    });
    let db = Database::default();
    let file = notebook_input(&db, path.to_path_buf(), contents, previous.as_ref());
    let notebook = match parsed_notebook(&db, file) {
        Ok(notebook) => notebook,
        Err(err) => {
            printer.error(&err.to_string());
            return Err(ExitStatus::Error);
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
    let predictions = cache.as_ref().and_then(|(store, env)| {
        let env = env.as_ref()?;
        let code: Vec<&crate::notebook::Cell> = notebook
            .cells
            .iter()
            .filter(|cell| cell.kind == CellKind::Code)
            .collect();
        let specs: Vec<CellSpec<'_>> = cells
            .iter()
            .zip(&code)
            .map(|(cell, notebook_cell)| CellSpec {
                source: cell.source,
                analysis: cell.analysis,
                always: crate::commands::run::is_always(notebook_cell),
                skip: crate::commands::run::is_skip(notebook_cell),
            })
            .collect();
        let root = project::project_root(path);
        let root = std::fs::canonicalize(&root).unwrap_or(root);
        Some(predict(graph, &specs, store, env, previous.as_ref(), &root))
    });
    let plan = Plan {
        path,
        cells: &cells,
        graph,
        predictions: predictions.as_deref(),
    };
    Ok(use_plan(&plan))
}

/// The store and the environment, when a previous run left them: the store holds what the
/// last run learned (refining the graph); with the environment, `plan` also says whether a run
/// would replay or run each cell, without starting Python.
fn open_cache(
    path: &Path,
    python: Option<&Path>,
    cache_dir: Option<&Path>,
) -> Option<(Store, Option<Environment>)> {
    let cache_dir = project::cache_dir(path, cache_dir);
    if !cache_dir.exists() {
        return None;
    }
    let python = resolve_python(python);
    let env = InterpreterCache::load(&cache_dir).lookup(&python);
    match Store::open(&cache_dir, Duration::from_secs(5)) {
        Ok(store) => Some((store, env)),
        Err(err) => {
            tracing::warn!("cannot read the cache: {err}");
            None
        }
    }
}
