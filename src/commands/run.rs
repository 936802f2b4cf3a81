//! `nbmemo run`: read a notebook, plan it, run what changed through the cache, report.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::instrument;

use crate::cli::RunArgs;
use crate::db::{
    Database, NotebookFile, cell_analysis, code_cells, notebook_graph, parsed_notebook,
};
use crate::environment::{Environment, InterpreterCache};
use crate::exec::scheduler::{CellOutcome, CellSpec, CellStatus, RunOptions, Scheduler, trace_of};
use crate::exec::{Worker, resolve_python};
use crate::hash::ContentHash;
use crate::notebook::write::{CellResult, render_with_results, write_atomically};
use crate::notebook::{CellKind, NotebookFormat};
use crate::project;
use crate::report::Printer;
use crate::report::run::{RunReporter, Summary, failures, to_json};
use crate::store::{NotebookState, Store};

use super::{ExitStatus, learned_probes};

/// How long a run waits for another nbmemo process to release the cache.
const STORE_WAIT: Duration = Duration::from_secs(600);

/// Runs `nbmemo run`.
pub fn run(args: &RunArgs, printer: &Printer) -> ExitStatus {
    let mut status = ExitStatus::Success;
    let mut reports = Vec::new();
    for notebook in &args.notebooks {
        let (notebook_status, report) = run_notebook(notebook, args, printer);
        if let Some(report) = report {
            reports.push(report);
        }
        status = worst(status, notebook_status);
    }
    if args.json {
        let value = if reports.len() == 1 {
            reports.pop().unwrap_or(Value::Null)
        } else {
            Value::Array(reports)
        };
        let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
        text.push('\n');
        let _ = printer.stdout(&text);
    }
    status
}

fn worst(a: ExitStatus, b: ExitStatus) -> ExitStatus {
    match (a, b) {
        (ExitStatus::Error, _) | (_, ExitStatus::Error) => ExitStatus::Error,
        (ExitStatus::Failure, _) | (_, ExitStatus::Failure) => ExitStatus::Failure,
        _ => ExitStatus::Success,
    }
}

#[instrument(skip_all, fields(notebook = %path.display()))]
fn run_notebook(path: &Path, args: &RunArgs, printer: &Printer) -> (ExitStatus, Option<Value>) {
    let start = Instant::now();
    let contents = match std::fs::read(path) {
        Ok(contents) => contents,
        Err(err) => {
            printer.error(&format!("failed to read `{}`: {err}", path.display()));
            return (ExitStatus::Error, None);
        }
    };
    let cache_dir = project::cache_dir(path, args.cache_dir.as_deref());
    let store = match open_store(&cache_dir, printer) {
        Ok(store) => store,
        Err(message) => {
            printer.error(&message);
            return (ExitStatus::Error, None);
        }
    };
    let notebook_id = project::notebook_id(path);
    let previous = store.get_notebook_state(&notebook_id).ok().flatten();
    let refuted = previous
        .as_ref()
        .map(|state| state.refuted.clone())
        .unwrap_or_default();
    let learned = previous.as_ref().map(learned_probes).unwrap_or_default();
    let db = Database::default();
    let file = NotebookFile::new(&db, path.to_path_buf(), contents, refuted, learned);
    let notebook = match parsed_notebook(&db, file) {
        Ok(notebook) => notebook,
        Err(err) => {
            printer.error(&err.to_string());
            return (ExitStatus::Error, None);
        }
    };
    let code: Vec<_> = notebook
        .cells
        .iter()
        .filter(|cell| cell.kind == CellKind::Code)
        .collect();
    let specs: Vec<CellSpec<'_>> = code
        .iter()
        .zip(code_cells(&db, file))
        .map(|(cell, &source)| CellSpec {
            source: &cell.source,
            analysis: cell_analysis(&db, source),
            always: is_always(cell),
        })
        .collect();
    let graph = notebook_graph(&db, file);
    let sources: Vec<&str> = specs.iter().map(|spec| spec.source).collect();

    let python = resolve_python(args.python.as_deref());
    let mut interpreters = InterpreterCache::load(&cache_dir);
    let (env, first_worker) = match environment(&python, &mut interpreters, specs.is_empty()) {
        Ok(found) => found,
        Err(message) => {
            printer.error(&message);
            return (ExitStatus::Error, None);
        }
    };
    let cwd = std::path::absolute(path)
        .ok()
        .and_then(|absolute| absolute.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| std::path::PathBuf::from("."));
    let options = RunOptions {
        force: args.force,
        timeout: args
            .timeout
            .filter(|seconds| *seconds > 0.0)
            .map(Duration::from_secs_f64),
        cwd,
        jobs: args.jobs.unwrap_or_else(default_jobs).max(1),
        python: python.clone(),
    };
    let env_fingerprint = env.fingerprint;
    let scheduler = Scheduler::new(
        graph,
        &specs,
        &store,
        env,
        options,
        first_worker,
        previous.as_ref(),
    );
    let mut reporter = RunReporter::new(
        printer,
        sources.clone(),
        !args.json && !printer.is_quiet(),
        args.show_output,
    );
    let outcomes = match scheduler.run(&mut reporter) {
        Ok(outcomes) => outcomes,
        Err(err) => {
            printer.error(&err.to_string());
            return (ExitStatus::Error, None);
        }
    };
    let refinement = refine(graph, &specs, &outcomes, previous.as_ref());
    let state = NotebookState {
        cell_keys: outcomes.iter().map(|outcome| outcome.key).collect(),
        traces: specs
            .iter()
            .zip(&outcomes)
            .map(|(spec, outcome)| trace_of(&spec.analysis.code_hash, &env_fingerprint, outcome))
            .collect(),
        refuted: refinement.0,
        confirmed: refinement.1,
        updated_unix_s: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |time| time.as_secs()),
    };
    if let Err(err) = store
        .put_notebook_state(&notebook_id, &state)
        .and_then(|()| store.flush())
    {
        printer.warning(&format!("failed to save the run in the cache: {err}"));
    }

    let mut status = if outcomes
        .iter()
        .any(|outcome| outcome.status == CellStatus::Failed)
    {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    };
    if args.inplace
        && let Err(message) = write_back(notebook, &outcomes)
    {
        printer.error(&message);
        status = ExitStatus::Error;
    }
    let summary = Summary::of(&outcomes, start.elapsed().as_secs_f64());
    if args.json {
        return (status, Some(to_json(path, &sources, &outcomes, &summary)));
    }
    let failed = failures(path, &sources, &outcomes);
    if !failed.is_empty() {
        printer.diagnostic(&failed);
    }
    if !printer.is_quiet() {
        let _ = printer.stdout(&summary.line(path));
    }
    (status, None)
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// A cell tagged `nbmemo: always` (metadata tag, or a `# nbmemo: always` comment line).
pub(crate) fn is_always(cell: &crate::notebook::Cell) -> bool {
    cell.tags().iter().any(|tag| {
        matches!(
            tag.trim(),
            "nbmemo: always" | "nbmemo:always" | "nbmemo-always"
        )
    }) || cell.source.lines().any(|line| {
        let line = line.trim();
        line.strip_prefix('#').is_some_and(|rest| {
            let rest = rest.trim();
            rest == "nbmemo: always" || rest == "nbmemo:always"
        })
    })
}

fn open_store(cache_dir: &Path, printer: &Printer) -> Result<Store, String> {
    match Store::open(cache_dir, Duration::ZERO) {
        Ok(store) => Ok(store),
        Err(crate::store::Error::Busy { pid, .. }) => {
            printer.warning(&format!(
                "the cache `{}` is in use by another nbmemo process (pid {pid}); waiting for it",
                cache_dir.display()
            ));
            Store::open(cache_dir, STORE_WAIT).map_err(|err| err.to_string())
        }
        Err(err) => Err(err.to_string()),
    }
}

/// The environment fingerprint: remembered, or learned from a fresh worker (which the run then
/// uses). A notebook without code cells needs none.
fn environment(
    python: &Path,
    interpreters: &mut InterpreterCache,
    no_code: bool,
) -> Result<(Environment, Option<Worker>), String> {
    if let Some(env) = interpreters.lookup(python) {
        return Ok((env, None));
    }
    if no_code {
        return Ok((
            Environment {
                fingerprint: ContentHash([0; 32]),
                description: String::new(),
            },
            None,
        ));
    }
    let worker = Worker::spawn(python).map_err(|err| err.to_string())?;
    let env = interpreters.remember(python, &worker.hello);
    tracing::info!("environment: {}", env.description);
    Ok((env, Some(worker)))
}

/// `--inplace`: outputs and execution counts into the `.ipynb`, atomically (temp file and
/// rename), numbered 1, 2, … in cell order as a top-to-bottom execution numbers them.
fn write_back(
    notebook: &crate::notebook::Notebook,
    outcomes: &[CellOutcome],
) -> Result<(), String> {
    if !matches!(notebook.format, NotebookFormat::Ipynb { .. }) {
        return Err(format!(
            "`--inplace` writes outputs into `.ipynb` notebooks; `{}` is a percent script, which has no outputs",
            notebook.path.display()
        ));
    }
    let mut results: Vec<Option<CellResult>> = vec![None; notebook.cells.len()];
    let mut count = 0u64;
    let code_positions = notebook
        .cells
        .iter()
        .filter(|cell| cell.kind == CellKind::Code)
        .map(|cell| cell.index);
    for (position, outcome) in code_positions.zip(outcomes) {
        if outcome.status == CellStatus::Skipped {
            continue;
        }
        count += 1;
        let outputs = outcome
            .outputs
            .iter()
            .map(|output| {
                let mut output = output.clone();
                if output.get("output_type").and_then(Value::as_str) == Some("execute_result") {
                    output["execution_count"] = Value::from(count);
                }
                output
            })
            .collect();
        if let Some(slot) = results.get_mut(position) {
            *slot = Some(CellResult {
                outputs,
                execution_count: Some(count),
            });
        }
    }
    let contents = render_with_results(notebook, &results).map_err(|err| err.to_string())?;
    write_atomically(&notebook.path, contents.as_bytes())
        .map_err(|err| format!("failed to write `{}`: {err}", notebook.path.display()))
}

/// A may-mutate candidate of some code: `(code hash, name)`.
type Candidate = (ContentHash, String);

/// What this run learned about may-mutate candidates: `(refuted, confirmed)` as `(code hash,
/// name)` pairs. A cell that did not execute or replay keeps what the previous run knew.
fn refine(
    graph: &crate::graph::Graph,
    specs: &[CellSpec<'_>],
    outcomes: &[CellOutcome],
    previous: Option<&NotebookState>,
) -> (Vec<Candidate>, Vec<Candidate>) {
    let mut refuted = std::collections::BTreeSet::new();
    let mut confirmed = std::collections::BTreeSet::new();
    let mut learned = std::collections::BTreeSet::new();
    for ((node, spec), outcome) in graph.cells.iter().zip(specs).zip(outcomes) {
        if !matches!(outcome.status, CellStatus::Ran | CellStatus::Cached) {
            continue;
        }
        let code = spec.analysis.code_hash;
        learned.insert(code);
        for probe in &outcome.learned {
            confirmed.insert((code, probe.clone()));
        }
        let supplied: std::collections::BTreeSet<&str> = outcome
            .inputs
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        for name in node.may_mutate.iter().chain(&node.refuted) {
            if !supplied.contains(name.as_str()) {
                continue;
            }
            if outcome.mutated.contains(name) {
                confirmed.insert((code, name.clone()));
            } else {
                refuted.insert((code, name.clone()));
            }
        }
    }
    if let Some(previous) = previous {
        for pair in &previous.refuted {
            if !learned.contains(&pair.0) {
                refuted.insert(pair.clone());
            }
        }
        for pair in &previous.confirmed {
            // Library state a code was seen touching stays known (replays don't re-observe it).
            if !learned.contains(&pair.0) || crate::analysis::probes::is_probe(&pair.1) {
                confirmed.insert(pair.clone());
            }
        }
    }
    // Confirmed anywhere beats refuted elsewhere: the same code may mutate.
    refuted.retain(|pair| !confirmed.contains(pair));
    (
        refuted.into_iter().collect(),
        confirmed.into_iter().collect(),
    )
}
