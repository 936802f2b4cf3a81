//! `nbmemo run`: read a notebook, plan it, run what changed through the cache, report.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::instrument;

use crate::cli::RunArgs;
use crate::db::{Database, cell_analysis, code_cells, notebook_graph, parsed_notebook};
use crate::environment::{Environment, InterpreterCache};
use crate::exec::scheduler::{
    CellOutcome, CellSpec, CellStatus, RunOptions, Scheduler, Unit, carry_over, trace_of,
};
use crate::exec::{Worker, resolve_python};
use crate::graph::Graph;
use crate::hash::ContentHash;
use crate::notebook::write::{CellResult, render_with_results, write_atomically};
use crate::notebook::{CellKind, Notebook, NotebookFormat};
use crate::project;
use crate::report::Printer;
use crate::report::run::{RunReporter, Summary, failures, to_json};
use crate::store::{
    FileUse, NotebookRun, NotebookState, RECENT_RUNS_MAX, RecentRun, RunSummary, Store,
};

use super::{ExitStatus, notebook_input};

/// How long a run waits for another nbmemo process to release the cache.
const STORE_WAIT: Duration = Duration::from_secs(600);

/// Runs `nbmemo run`.
pub fn run(args: &RunArgs, printer: &Printer) -> ExitStatus {
    let Ok(memory_limit) = memory_limit_arg(args.memory_limit.as_deref(), printer) else {
        return ExitStatus::Error;
    };
    let options = RunSettings {
        force: args.force,
        jobs: args.jobs,
        timeout: args.timeout,
        memory_limit,
        python: args.python.clone(),
        cache_dir: args.cache_dir.clone(),
        inplace: args.inplace,
        json: args.json,
        show_output: args.show_output,
        hide_cached: false,
    };
    let (status, reports) = run_notebooks(&args.notebooks, &options, printer);
    if args.json {
        let value = if args.notebooks.len() == 1 {
            reports.into_iter().next().unwrap_or(Value::Null)
        } else {
            Value::Array(reports)
        };
        let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
        text.push('\n');
        let _ = printer.stdout(&text);
    }
    status
}

/// `--memory-limit` (or `NBMEMO_MEMORY_LIMIT`) in bytes; `0` means no limit.
pub(crate) fn memory_limit(text: Option<&str>) -> Result<Option<u64>, String> {
    let Some(text) = text.filter(|text| !text.trim().is_empty()) else {
        return Ok(None);
    };
    let bytes = super::cache::parse_size(text)
        .map_err(|err| format!("invalid --memory-limit (or NBMEMO_MEMORY_LIMIT): {err}"))?;
    Ok((bytes > 0).then_some(bytes))
}

/// [`memory_limit`] for a command: an unreadable size is reported as an error.
pub(crate) fn memory_limit_arg(text: Option<&str>, printer: &Printer) -> Result<Option<u64>, ()> {
    memory_limit(text).map_err(|message| printer.error(&message))
}

/// What a run of several notebooks needs to know (`run` and `check` share it).
#[derive(Debug, Clone, Default)]
pub(crate) struct RunSettings {
    pub(crate) force: bool,
    pub(crate) jobs: Option<usize>,
    pub(crate) timeout: Option<f64>,
    /// `--memory-limit`, in bytes.
    pub(crate) memory_limit: Option<u64>,
    pub(crate) python: Option<PathBuf>,
    pub(crate) cache_dir: Option<PathBuf>,
    pub(crate) inplace: bool,
    pub(crate) json: bool,
    pub(crate) show_output: bool,
    /// List no line for cached cells (`watch` after its first run).
    pub(crate) hide_cached: bool,
}

/// One notebook, read and analysed, ready to run.
pub(crate) struct Prepared<'db> {
    pub(crate) path: PathBuf,
    pub(crate) notebook: &'db Notebook,
    pub(crate) specs: Vec<CellSpec<'db>>,
    pub(crate) graph: &'db Graph,
    cwd: PathBuf,
    /// The project root (real path): files under it are traced.
    root: PathBuf,
    notebook_id: String,
    previous: Option<NotebookState>,
}

impl Prepared<'_> {
    /// The sources of the code cells.
    pub(crate) fn sources(&self) -> Vec<&str> {
        self.specs.iter().map(|spec| spec.source).collect()
    }
}

/// The result of running one notebook.
pub(crate) struct Finished {
    /// The notebook's path.
    pub(crate) path: PathBuf,
    /// Its project root (real path): cells' file paths are relative to it.
    pub(crate) root: PathBuf,
    /// The code cells' sources.
    pub(crate) sources: Vec<String>,
    /// What happened to each code cell.
    pub(crate) outcomes: Vec<CellOutcome>,
    /// Ran, cached, failed, skipped.
    pub(crate) summary: Summary,
}

fn worst(a: ExitStatus, b: ExitStatus) -> ExitStatus {
    match (a, b) {
        (ExitStatus::Error, _) | (_, ExitStatus::Error) => ExitStatus::Error,
        (ExitStatus::Failure, _) | (_, ExitStatus::Failure) => ExitStatus::Failure,
        _ => ExitStatus::Success,
    }
}

/// Runs notebooks together (one worker pool, one store) and reports each. Returns the exit
/// status and, with `settings.json`, the `run --json` object of each notebook.
pub(crate) fn run_notebooks(
    paths: &[PathBuf],
    settings: &RunSettings,
    printer: &Printer,
) -> (ExitStatus, Vec<Value>) {
    let (status, finished) = execute(paths, settings, printer);
    (status, report(&finished, settings, printer))
}

/// Prints each notebook's failures and summary line, or, with `settings.json`, returns the
/// `run --json` object of each.
pub(crate) fn report(
    finished: &[Finished],
    settings: &RunSettings,
    printer: &Printer,
) -> Vec<Value> {
    let mut reports = Vec::new();
    for run in finished {
        let sources: Vec<&str> = run.sources.iter().map(String::as_str).collect();
        if settings.json {
            reports.push(to_json(&run.path, &sources, &run.outcomes, &run.summary));
            continue;
        }
        let failed = failures(&run.path, &sources, &run.outcomes);
        if !failed.is_empty() {
            printer.diagnostic(&failed);
        }
        if !printer.is_quiet() {
            let _ = printer.stdout(&run.summary.line(&run.path));
        }
    }
    reports
}

/// Reads, analyses and runs the notebooks; saves what the run learned; writes back with
/// `--inplace`. Notebooks that cannot be read are reported and left out (status 2).
#[instrument(skip_all, fields(notebooks = paths.len()))]
pub(crate) fn execute(
    paths: &[PathBuf],
    settings: &RunSettings,
    printer: &Printer,
) -> (ExitStatus, Vec<Finished>) {
    let Some(first) = paths.first() else {
        return (ExitStatus::Success, Vec::new());
    };
    match Session::open(first, settings, printer) {
        Ok(mut session) => session.execute(paths, settings, printer, None),
        Err(status) => (status, Vec::new()),
    }
}

/// What outlives one run in `watch`: the store (held), the salsa database (so an edit
/// re-analyses only the edited cells), the remembered interpreters and the warm workers.
pub(crate) struct Session {
    cache_dir: PathBuf,
    store: Store,
    db: Database,
    inputs: std::collections::HashMap<PathBuf, crate::db::NotebookFile>,
    interpreters: Option<InterpreterCache>,
    pool: Option<crate::exec::Pool>,
}

impl Session {
    /// Opens the store of the project of `first` (waiting for another process that holds it).
    pub(crate) fn open(
        first: &Path,
        settings: &RunSettings,
        printer: &Printer,
    ) -> Result<Session, ExitStatus> {
        let cache_dir = project::cache_dir(first, settings.cache_dir.as_deref());
        let store = open_store(&cache_dir, printer).map_err(|message| {
            printer.error(&message);
            ExitStatus::Error
        })?;
        Ok(Session {
            cache_dir,
            store,
            db: Database::default(),
            inputs: std::collections::HashMap::new(),
            interpreters: None,
            pool: None,
        })
    }

    /// The store.
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Forgets the warm workers (they are stopped).
    pub(crate) fn drop_workers(&mut self) {
        self.pool = None;
    }

    /// Reads, analyses and runs the notebooks, as [`execute`] does; with `stop`, starts no
    /// more cells once it is set (the running ones finish). Workers stay warm for the next call.
    pub(crate) fn execute(
        &mut self,
        paths: &[PathBuf],
        settings: &RunSettings,
        printer: &Printer,
        stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    ) -> (ExitStatus, Vec<Finished>) {
        let (status, finished, pool) = execute_in(self, paths, settings, printer, stop);
        self.pool = pool;
        (status, finished)
    }
}

fn execute_in(
    session: &mut Session,
    paths: &[PathBuf],
    settings: &RunSettings,
    printer: &Printer,
    stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
) -> (ExitStatus, Vec<Finished>, Option<crate::exec::Pool>) {
    let start = Instant::now();
    let mut status = ExitStatus::Success;
    let cache_dir = session.cache_dir.clone();

    // Read every notebook into the salsa database (an input already there is updated: salsa
    // then re-analyses only the cells whose text changed).
    let mut read = Vec::new();
    for path in paths {
        let contents = match std::fs::read(path) {
            Ok(contents) => contents,
            Err(err) => {
                printer.error(&format!("failed to read `{}`: {err}", path.display()));
                status = ExitStatus::Error;
                continue;
            }
        };
        let notebook_id = project::notebook_id(path);
        let previous = session
            .store
            .get_notebook_state(&notebook_id)
            .ok()
            .flatten();
        read.push((path.clone(), contents, notebook_id, previous));
    }
    let mut files = Vec::new();
    for (path, contents, notebook_id, previous) in read {
        let file = match session.inputs.get(&path) {
            Some(&file) => {
                update_input(&mut session.db, file, contents, previous.as_ref());
                file
            }
            None => {
                let file = notebook_input(&session.db, path.clone(), contents, previous.as_ref());
                session.inputs.insert(path.clone(), file);
                file
            }
        };
        files.push((path, file, notebook_id, previous));
    }
    let db = &session.db;
    let store = &session.store;
    let mut prepared: Vec<Prepared<'_>> = Vec::new();
    for (path, file, notebook_id, previous) in files {
        let notebook = match parsed_notebook(db, file) {
            Ok(notebook) => notebook,
            Err(err) => {
                printer.error(&err.to_string());
                status = ExitStatus::Error;
                continue;
            }
        };
        let code: Vec<_> = notebook
            .cells
            .iter()
            .filter(|cell| cell.kind == CellKind::Code)
            .collect();
        let specs: Vec<CellSpec<'_>> = code
            .iter()
            .zip(code_cells(db, file))
            .map(|(cell, &source)| CellSpec {
                source: &cell.source,
                analysis: cell_analysis(db, source),
                always: is_always(cell),
                skip: is_skip(cell),
            })
            .collect();
        let cwd = std::path::absolute(&path)
            .ok()
            .and_then(|absolute| absolute.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."));
        let root = project::project_root(&path);
        let root = std::fs::canonicalize(&root).unwrap_or(root);
        prepared.push(Prepared {
            graph: notebook_graph(db, file),
            path,
            notebook,
            specs,
            cwd,
            root,
            notebook_id,
            previous,
        });
    }
    if prepared.is_empty() {
        return (status, Vec::new(), None);
    }

    let python = resolve_python(settings.python.as_deref());
    let interpreters = session
        .interpreters
        .get_or_insert_with(|| InterpreterCache::load(&cache_dir));
    let no_code = prepared.iter().all(|notebook| notebook.specs.is_empty());
    let jobs = settings.jobs.unwrap_or_else(default_jobs).max(1);
    // Workers worth starting alongside the one that learns the environment: as many as cells
    // may run at once, up to `-j` and the cores (a new interpreter runs every cell anyway).
    let graphs: Vec<&Graph> = prepared.iter().map(|notebook| notebook.graph).collect();
    let alongside = Graph::widest_wave(&graphs)
        .min(jobs)
        .min(default_jobs())
        .saturating_sub(1);
    let (env, started_workers) = match environment(
        &python,
        settings.memory_limit,
        interpreters,
        no_code,
        alongside,
    ) {
        Ok(found) => found,
        Err(message) => {
            printer.error(&message);
            return (ExitStatus::Error, Vec::new(), None);
        }
    };
    let env_fingerprint = env.fingerprint;
    let env_distributions = env.distributions.clone();
    let options = RunOptions {
        force: settings.force,
        timeout: settings
            .timeout
            .filter(|seconds| *seconds > 0.0)
            .map(Duration::from_secs_f64),
        jobs,
        python: python.clone(),
        memory_limit: settings.memory_limit,
    };
    let units: Vec<Unit<'_>> = prepared
        .iter()
        .map(|notebook| Unit {
            graph: notebook.graph,
            cells: &notebook.specs,
            cwd: &notebook.cwd,
            root: &notebook.root,
            previous: notebook.previous.as_ref(),
        })
        .collect();
    let mut scheduler = Scheduler::new(&units, store, env, options, started_workers);
    if let Some(pool) = session.pool.take() {
        scheduler = scheduler.with_pool(pool);
    }
    if let Some(stop) = stop {
        scheduler = scheduler.with_stop(stop);
    }
    let labels: Vec<(PathBuf, Vec<&str>)> = prepared
        .iter()
        .map(|notebook| (notebook.path.clone(), notebook.sources()))
        .collect();
    let mut reporter = RunReporter::new(
        printer,
        labels,
        !settings.json && !printer.is_quiet(),
        settings.show_output,
    )
    .hiding_cached(settings.hide_cached);
    let (all_outcomes, pool) = match scheduler.run_keeping_pool(&mut reporter) {
        Ok(outcomes) => outcomes,
        Err(err) => {
            printer.error(&err.to_string());
            return (ExitStatus::Error, Vec::new(), None);
        }
    };
    drop(reporter);

    let wall_s = start.elapsed().as_secs_f64();
    let mut finished = Vec::new();
    let mut run_summary = RunSummary::default();
    // The scheduler's writes are the cells' keys, which the states list anyway.
    store.take_written_keys();
    for (notebook, outcomes) in prepared.iter().zip(all_outcomes) {
        let refinement = refine(
            notebook.graph,
            &notebook.specs,
            &outcomes,
            notebook.previous.as_ref(),
        );
        let state = NotebookState {
            cell_keys: outcomes.iter().map(|outcome| outcome.key).collect(),
            traces: notebook
                .specs
                .iter()
                .zip(&outcomes)
                .map(|(spec, outcome)| {
                    trace_of(&spec.analysis.code_hash, &env_fingerprint, outcome)
                })
                .collect(),
            refuted: refinement.0,
            confirmed: refinement.1,
            files: file_uses(&notebook.specs, &outcomes),
            distributions: env_distributions.clone(),
            updated_unix_s: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |time| time.as_secs()),
            recent_runs: Vec::new(),
        };
        // What the run learned changes some cells' inputs in the next run's graph: their
        // records go under the keys that run will derive, when still valid there.
        let next_graph = next_run_graph(&notebook.specs, &state);
        if next_graph
            .cells
            .iter()
            .zip(&notebook.graph.cells)
            .any(|(next, now)| next.reads != now.reads)
        {
            let carried = carry_over(
                &next_graph,
                &notebook.specs,
                &outcomes,
                store,
                &env_fingerprint,
            );
            tracing::debug!("{carried} records carried over to the next run's keys");
        }
        let mut state = state;
        let manifests = record_manifests(&state);
        if let Err(err) = store.put_record_manifests(&manifests) {
            tracing::warn!("failed to save the cache's manifest index: {err}");
        }
        // What the next runs need: this run's records and manifests, and those carried over.
        let mut needed: Vec<ContentHash> = state.cell_keys.iter().flatten().copied().collect();
        needed.extend(manifests.iter().map(|(_, first_key)| *first_key));
        needed.extend(store.take_written_keys());
        state.recent_runs = recent_runs(notebook.previous.as_ref(), needed, state.updated_unix_s);
        // An interrupted run says little about the notebook: the last complete one stays.
        if !crate::exec::interrupt::interrupted()
            && let Err(err) = store.put_notebook_state(&notebook.notebook_id, &state)
        {
            printer.warning(&format!("failed to save the run in the cache: {err}"));
        }
        if outcomes
            .iter()
            .any(|outcome| outcome.status == CellStatus::Failed)
        {
            status = worst(status, ExitStatus::Failure);
        }
        if settings.inplace
            && let Err(message) = write_back(notebook.notebook, &notebook.specs, &outcomes)
        {
            printer.error(&message);
            status = ExitStatus::Error;
        }
        let summary = Summary::of(&outcomes, wall_s);
        run_summary.notebooks.push(NotebookRun {
            notebook: notebook.notebook_id.clone(),
            cached: summary.cached as u64,
            ran: summary.ran as u64,
            failed: summary.failed as u64,
            skipped: summary.skipped as u64,
        });
        finished.push(Finished {
            path: notebook.path.clone(),
            root: notebook.root.clone(),
            sources: notebook.sources().into_iter().map(str::to_string).collect(),
            summary,
            outcomes,
        });
    }
    run_summary.wall_s = wall_s;
    run_summary.unix_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |time| time.as_secs());
    if !crate::exec::interrupt::interrupted()
        && let Err(err) = store.record_run(&run_summary)
    {
        tracing::warn!("failed to record the run in the cache: {err}");
    }
    if let Err(err) = store.flush() {
        printer.warning(&format!("failed to save the cache: {err}"));
    }
    let project_root = prepared[0].root.clone();
    drop(prepared);
    if !crate::exec::interrupt::interrupted() {
        super::cache::collect_if_over_bound(&mut session.store, &project_root, printer);
    }
    (status, finished, pool)
}

/// `(record key, first-step key)` of each cell of the run that read files: the manifest that
/// finds the record (cache-format "Cell key").
fn record_manifests(state: &NotebookState) -> Vec<(ContentHash, ContentHash)> {
    state
        .cell_keys
        .iter()
        .zip(&state.traces)
        .filter_map(|(key, trace)| {
            let (key, trace) = (key.as_ref()?, trace.as_ref()?);
            if trace.files.is_empty() {
                return None;
            }
            let inputs: Vec<(&str, ContentHash)> = trace
                .inputs
                .iter()
                .map(|(name, hash)| (name.as_str(), *hash))
                .collect();
            let first_key = crate::key::cell_key(&trace.env, &trace.code_hash, &inputs, &[]);
            Some((*key, first_key))
        })
        .collect()
}

/// The notebook's `recent_runs` after a run that needed `needed`: this run first, then the
/// previous ones; a run that needed what the one before it did counts once.
fn recent_runs(
    previous: Option<&NotebookState>,
    mut needed: Vec<ContentHash>,
    unix_s: u64,
) -> Vec<RecentRun> {
    needed.sort_unstable();
    needed.dedup();
    let mut runs = vec![RecentRun {
        unix_s,
        keys: needed,
    }];
    let earlier = previous.map_or(&[][..], |state| state.recent_runs.as_slice());
    let skip = usize::from(earlier.first().is_some_and(|run| run.keys == runs[0].keys));
    runs.extend(earlier.iter().skip(skip).cloned());
    runs.truncate(RECENT_RUNS_MAX);
    runs
}

/// Updates a notebook's salsa input with new bytes and what the last run learned; unchanged
/// fields are left alone, so salsa keeps every memo they feed.
fn update_input(
    db: &mut Database,
    file: crate::db::NotebookFile,
    contents: Vec<u8>,
    previous: Option<&NotebookState>,
) {
    use salsa::Setter as _;
    if *file.contents(db) != contents {
        file.set_contents(db).to(contents);
    }
    let refuted = previous
        .map(|state| state.refuted.clone())
        .unwrap_or_default();
    if *file.refuted(db) != refuted {
        file.set_refuted(db).to(refuted);
    }
    let learned = previous
        .map(|state| state.confirmed.clone())
        .unwrap_or_default();
    if *file.learned(db) != learned {
        file.set_learned(db).to(learned);
    }
    let files = previous.map(super::learned_files).unwrap_or_default();
    if *file.files(db) != files {
        file.set_files(db).to(files);
    }
}

/// The graph the next run will build: this notebook with what `state` learned.
fn next_run_graph(specs: &[CellSpec<'_>], state: &NotebookState) -> crate::graph::Graph {
    let analyses: Vec<&crate::analysis::CellAnalysis> =
        specs.iter().map(|spec| spec.analysis).collect();
    let refuted = state.refuted.iter().cloned().collect();
    let learned = state.confirmed.iter().cloned().collect();
    let files = super::learned_files(state).into_iter().collect();
    crate::graph::Graph::build_refined(&analyses, &refuted, &learned, &files)
}

/// What the run saw each cell's code do to files (one entry per distinct code that ran or
/// replayed), for the next run's graph.
fn file_uses(specs: &[CellSpec<'_>], outcomes: &[CellOutcome]) -> Vec<FileUse> {
    let mut uses: Vec<FileUse> = Vec::new();
    for (spec, outcome) in specs.iter().zip(outcomes) {
        let completed = match outcome.status {
            CellStatus::Ran | CellStatus::Cached => true,
            // A Python exception, not a crash (which reports no file access).
            CellStatus::Failed => outcome.error.is_some(),
            CellStatus::Skipped => false,
        };
        if outcome.key.is_none() || !completed {
            continue;
        }
        let code_hash = spec.analysis.code_hash;
        if uses.iter().any(|used| used.code_hash == code_hash) {
            continue;
        }
        uses.push(FileUse {
            code_hash,
            read: outcome.file_access.read.clone(),
            written: outcome.file_access.written.clone(),
        });
    }
    uses
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// A cell tagged `nbmemo: always` (metadata tag, or a `# nbmemo: always` comment line).
pub(crate) fn is_always(cell: &crate::notebook::Cell) -> bool {
    tagged(cell, "always")
}

/// A cell tagged `nbmemo: skip` (metadata tag, or a `# nbmemo: skip` comment line).
pub(crate) fn is_skip(cell: &crate::notebook::Cell) -> bool {
    tagged(cell, "skip")
}

/// Whether the cell carries `nbmemo: WORD` as a metadata tag (also `nbmemo:WORD`,
/// `nbmemo-WORD`) or as a comment line of its own.
fn tagged(cell: &crate::notebook::Cell, word: &str) -> bool {
    let matches = |text: &str| {
        let text = text.trim();
        text.strip_prefix("nbmemo")
            .and_then(|rest| rest.strip_prefix(':').or_else(|| rest.strip_prefix('-')))
            .is_some_and(|rest| rest.trim() == word)
    };
    cell.tags().iter().any(|tag| matches(tag))
        || cell
            .source
            .lines()
            .any(|line| line.trim().strip_prefix('#').is_some_and(matches))
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
    memory_limit: Option<u64>,
    interpreters: &mut InterpreterCache,
    no_code: bool,
    alongside: usize,
) -> Result<(Environment, Vec<Worker>), String> {
    if let Some(env) = interpreters.lookup(python) {
        return Ok((env, Vec::new()));
    }
    if no_code {
        return Ok((
            Environment {
                fingerprint: ContentHash([0; 32]),
                description: String::new(),
                distributions: Vec::new(),
            },
            Vec::new(),
        ));
    }
    // An interpreter not seen before: every cell runs. The workers that will run cells side
    // by side start now, together with the one whose hello tells the environment, instead of
    // one after the other. One that fails to start is left for the pool to start (and report)
    // again.
    let (first, others) = std::thread::scope(|scope| {
        let others: Vec<_> = (0..alongside)
            .map(|_| scope.spawn(|| Worker::spawn(python, memory_limit).ok()))
            .collect();
        let first = Worker::spawn(python, memory_limit);
        let others: Vec<Worker> = others
            .into_iter()
            .filter_map(|handle| handle.join().ok().flatten())
            .collect();
        (first, others)
    });
    let worker = first.map_err(|err| err.to_string())?;
    let env = interpreters.remember(python, &worker.hello);
    tracing::info!("environment: {}", env.description);
    let mut workers = vec![worker];
    workers.extend(others);
    Ok((env, workers))
}

/// `--inplace`: outputs and execution counts into the `.ipynb`, atomically (temp file and
/// rename), numbered 1, 2, … in cell order as a top-to-bottom execution numbers them.
///
/// Each code cell that gets outputs also gets, in its metadata, the record `nbmemo check
/// --outputs-fresh` compares with the current code: `"nbmemo": {"code": "<normalized code
/// hash>", "key": "<cell key>"}` (hex). A cell without a result (skipped) loses its record.
fn write_back(
    notebook: &crate::notebook::Notebook,
    specs: &[CellSpec<'_>],
    outcomes: &[CellOutcome],
) -> Result<(), String> {
    if !matches!(notebook.format, NotebookFormat::Ipynb { .. }) {
        return Err(format!(
            "`--inplace` writes outputs into `.ipynb` notebooks; `{}` is a percent script, which has no outputs",
            notebook.path.display()
        ));
    }
    let mut results: Vec<Option<CellResult>> = vec![None; notebook.cells.len()];
    let mut records: Vec<Option<Value>> = vec![None; notebook.cells.len()];
    let mut count = 0u64;
    let code_positions = notebook
        .cells
        .iter()
        .filter(|cell| cell.kind == CellKind::Code)
        .map(|cell| cell.index);
    for ((position, outcome), spec) in code_positions.zip(outcomes).zip(specs) {
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
        if let (Some(slot), Some(key)) = (records.get_mut(position), outcome.key) {
            *slot = Some(serde_json::json!({
                "code": spec.analysis.code_hash.to_string(),
                "key": key.to_string(),
            }));
        }
    }
    let mut recorded = notebook.clone();
    if let Some(Value::Array(cells)) = recorded
        .document
        .as_mut()
        .and_then(|document| document.get_mut("cells"))
    {
        for (cell, record) in cells.iter_mut().zip(&records) {
            if cell.get("cell_type").and_then(Value::as_str) != Some("code") {
                continue;
            }
            let Some(map) = cell.as_object_mut() else {
                continue;
            };
            let metadata = map
                .entry("metadata")
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
            if let Some(metadata) = metadata.as_object_mut() {
                match record {
                    Some(record) => {
                        metadata.insert("nbmemo".to_owned(), record.clone());
                    }
                    None => {
                        metadata.shift_remove("nbmemo");
                    }
                }
            }
        }
    }
    let contents = render_with_results(&recorded, &results).map_err(|err| err.to_string())?;
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
        // What a code was seen changing stays known (a replay need not observe it again),
        // as long as the code is still in the notebook.
        let present: std::collections::BTreeSet<ContentHash> =
            specs.iter().map(|spec| spec.analysis.code_hash).collect();
        for pair in &previous.confirmed {
            if present.contains(&pair.0) {
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
