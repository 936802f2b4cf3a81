//! The scheduler: runs a notebook's cells in dependency order, in parallel, through the cache.
//!
//! A cell becomes *ready* when every cell it depends on has finished. Then its inputs are
//! resolved to concrete values: for each name it reads, the most recent of its (transitive)
//! dependencies that produced that name. Their artifact hashes complete the cell's key; a key
//! found in the store is replayed without Python, otherwise the cell goes to a worker slot.
//! When a run finishes, what it produced is stored (artifacts first, then the record), so a
//! later run with the same key replays it.
//!
//! Failures: a Python exception fails its cell (and is cached: it is deterministic); a crash,
//! a timeout or a protocol error fails the cell and is never cached. Cells depending on a
//! failed or skipped cell are skipped; the others go on.

use std::path::PathBuf;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustc_hash::FxHashMap;

use crate::analysis::{CellAnalysis, probes};
use crate::environment::Environment;
use crate::files::{self, Conflict, FileAccess, FileHasher};
use crate::graph::Graph;
use crate::hash::ContentHash;
use crate::key::{cell_key, resident_hash};
use crate::store::{
    CellRecord, CellTrace, ErrorInfo, NotebookState, RecordStatus, Store, Unpicklable, ValueGroup,
};

use super::pool::{Completion, Job, Pool};
use super::protocol::{ExecRequest, ExecResult, InputGroup};
use super::{Error, Worker};

/// One code cell as the scheduler needs it.
#[derive(Debug, Clone, Copy)]
pub struct CellSpec<'a> {
    /// The cell's source.
    pub source: &'a str,
    /// Its analysis.
    pub analysis: &'a CellAnalysis,
    /// Tagged to run every time.
    pub always: bool,
    /// Tagged never to run.
    pub skip: bool,
}

/// Options of a run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Ignore cached results.
    pub force: bool,
    /// Per-cell timeout.
    pub timeout: Option<Duration>,
    /// How many cells may run at once.
    pub jobs: usize,
    /// The interpreter.
    pub python: PathBuf,
    /// Each worker's address space in bytes (`--memory-limit`), when capped.
    pub memory_limit: Option<u64>,
}

/// How a cell ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellStatus {
    /// Executed in this run.
    Ran,
    /// Replayed from the store.
    Cached,
    /// Raised, crashed or timed out.
    Failed,
    /// Not run because a cell it depends on failed.
    Skipped,
}

impl CellStatus {
    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            CellStatus::Ran => "ran",
            CellStatus::Cached => "cached",
            CellStatus::Failed => "failed",
            CellStatus::Skipped => "skipped",
        }
    }
}

/// What happened to one cell.
#[derive(Debug, Clone)]
pub struct CellOutcome {
    /// Ran, cached, failed or skipped.
    pub status: CellStatus,
    /// Why it ran, why it failed, or why it was skipped.
    pub reason: String,
    /// Printed output (replayed for cached cells).
    pub stdout: String,
    /// Error output.
    pub stderr: String,
    /// nbformat outputs.
    pub outputs: Vec<serde_json::Value>,
    /// The exception, if the cell raised.
    pub error: Option<ErrorInfo>,
    /// Seconds since the run started, when the cell executed.
    pub started_at: Option<f64>,
    /// Seconds since the run started, when the cell finished executing.
    pub finished_at: Option<f64>,
    /// How long the cell took when it last executed (for cached cells: time saved).
    pub duration_s: f64,
    /// The cell's key, when its inputs could be resolved.
    pub key: Option<ContentHash>,
    /// The values it read: name and artifact hash.
    pub inputs: Vec<(String, ContentHash)>,
    /// Every value its worker was given (the inputs and the names sharing their groups); for a
    /// cached cell, its inputs.
    pub given: Vec<(String, ContentHash)>,
    /// Candidates whose mutation the run confirmed.
    pub mutated: Vec<String>,
    /// Values that could not be pickled: name and type.
    pub unpicklable: Vec<(String, String)>,
    /// Library state (probes) the run saw the cell change although no static rule named it.
    pub learned: Vec<String>,
    /// The files it read, with their content hashes (part of its key).
    pub files: Vec<(String, ContentHash)>,
    /// What it did to files (for cached cells: what its record says).
    pub file_access: FileAccess,
}

impl CellOutcome {
    /// The outcome a stored (or just stored) record describes; no execution times.
    fn of_record(
        record: CellRecord,
        status: CellStatus,
        reason: String,
        key: ContentHash,
        inputs: Vec<(String, ContentHash)>,
    ) -> Self {
        let file_access = access_of_record(&record);
        CellOutcome {
            files: record.files_read,
            file_access,
            status,
            reason,
            unpicklable: record
                .unpicklable
                .iter()
                .map(|value| (value.name.clone(), value.type_name.clone()))
                .collect(),
            stdout: record.stdout,
            stderr: record.stderr,
            outputs: record.outputs,
            error: record.error,
            started_at: None,
            finished_at: None,
            duration_s: record.duration_s,
            key: Some(key),
            given: inputs.clone(),
            inputs,
            mutated: record.mutated,
            learned: Vec::new(),
        }
    }

    fn skipped(reason: String) -> Self {
        CellOutcome {
            status: CellStatus::Skipped,
            reason,
            stdout: String::new(),
            stderr: String::new(),
            outputs: Vec::new(),
            error: None,
            started_at: None,
            finished_at: None,
            duration_s: 0.0,
            key: None,
            inputs: Vec::new(),
            given: Vec::new(),
            mutated: Vec::new(),
            unpicklable: Vec::new(),
            learned: Vec::new(),
            files: Vec::new(),
            file_access: FileAccess::default(),
        }
    }
}

/// What a record says its cell did to files.
fn access_of_record(record: &CellRecord) -> FileAccess {
    FileAccess {
        read: record
            .files_read
            .iter()
            .map(|(path, _)| path.clone())
            .collect(),
        written: record
            .files_written
            .iter()
            .map(|output| output.path.clone())
            .collect(),
    }
}

/// Receives each cell's outcome as soon as it is known.
pub trait Observer {
    /// Cell `index` (among the code cells of notebook `unit`) is done.
    fn cell_finished(&mut self, unit: usize, index: usize, outcome: &CellOutcome);
    /// Cell `index` of notebook `unit` was sent to a worker.
    fn cell_started(&mut self, _unit: usize, _index: usize) {}
}

/// One notebook of a run: its graph, its code cells, where its cells run, and what its
/// previous run knew. A run may hold several; they share the workers and the store.
#[derive(Clone, Copy)]
pub struct Unit<'a> {
    /// The dependency graph of the notebook's code cells.
    pub graph: &'a Graph,
    /// The code cells, in order.
    pub cells: &'a [CellSpec<'a>],
    /// The cells' working directory (the notebook's folder).
    pub cwd: &'a std::path::Path,
    /// The project root: files under it are traced as inputs and outputs.
    pub root: &'a std::path::Path,
    /// The notebook's previous run, to explain why a cell runs.
    pub previous: Option<&'a NotebookState>,
}

/// Errors that stop a whole run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The workers could not be started.
    #[error(transparent)]
    Exec(#[from] Error),
    /// The store failed (I/O).
    #[error(transparent)]
    Store(#[from] crate::store::Error),
}

/// A value as a later cell receives it.
#[derive(Debug, Clone)]
enum Emitted {
    /// A pickle in the store (a group blob: names sharing objects share one artifact).
    Artifact(ContentHash),
    /// A value kept in a worker's memory.
    Resident {
        producer: usize,
        slot: usize,
        generation: u64,
        id: String,
        stand_in: ContentHash,
        type_name: String,
    },
    /// Unbound by the cell.
    Deleted,
}

/// Packages an idle worker imports ahead when a notebook imports them (dependencies first): data
/// libraries whose values cells pass around, slow to import, with no import-time effect on what
/// a cell computes or prints.
const PRELOADED_PACKAGES: &[&str] = &["numpy", "pandas", "pyarrow", "polars", "scipy", "sklearn"];

enum State {
    Waiting,
    Ready {
        key: ContentHash,
        reason: String,
    },
    Running {
        key: ContentHash,
        inputs: Vec<(String, Emitted)>,
        reason: String,
        /// An input changed while it ran (a refuted candidate turned out mutated): its result
        /// is stored but the cell runs again.
        stale: bool,
    },
    Finished,
}

/// Runs the cells of one or more notebooks. Cells are numbered globally: the cells of the
/// first notebook, then those of the second, and so on (notebooks never depend on each other).
pub struct Scheduler<'a> {
    graph: Graph,
    cells: Vec<CellSpec<'a>>,
    units: Vec<Unit<'a>>,
    /// For each global cell: its notebook and its index there.
    place: Vec<(usize, usize)>,
    store: &'a Store,
    env: Environment,
    options: RunOptions,
    pool: Option<Pool>,
    /// Workers started before the pool (one to learn the environment, maybe more alongside it),
    /// handed to the first slots.
    started_workers: Vec<Worker>,
    state: Vec<State>,
    outcomes: Vec<Option<CellOutcome>>,
    emitted: Vec<FxHashMap<String, Emitted>>,
    /// Transitive dependencies of each cell, latest first.
    ancestors: Vec<Vec<usize>>,
    busy: Vec<bool>,
    generation: Vec<u64>,
    /// (producer, reader) pairs already re-run to rebuild a resident value.
    rebuilds: Vec<(usize, usize)>,
    /// The names of artifacts made in this run whose values are long lists or tuples of
    /// atoms, as their worker found: passed on with them (`InputGroup::columns`).
    columns: FxHashMap<ContentHash, Vec<String>>,
    /// Dependencies learned while running: a refuted candidate that turned out mutated.
    extra_deps: Vec<Vec<usize>>,
    /// Probes a cell turned out to use though the graph did not give it them.
    dynamic_reads: Vec<Vec<String>>,
    /// Probes each cell turned out to change though no rule named them.
    learned: Vec<Vec<String>>,
    /// File content hashes, remembered for the run.
    hasher: FileHasher,
    /// What each finished cell did to files, and when (seconds since the start; a replay is
    /// an instant).
    access: Vec<Option<(FileAccess, f64, f64)>>,
    /// Set from outside to start no more cells (watch: the notebook changed).
    stop: Option<Arc<std::sync::atomic::AtomicBool>>,
    start: Instant,
}

impl<'a> Scheduler<'a> {
    /// A scheduler for the cells of `units`.
    pub fn new(
        units: &[Unit<'a>],
        store: &'a Store,
        env: Environment,
        options: RunOptions,
        started_workers: Vec<Worker>,
    ) -> Self {
        let graphs: Vec<&Graph> = units.iter().map(|unit| unit.graph).collect();
        let graph = Graph::concat(&graphs);
        let cells: Vec<CellSpec<'a>> = units
            .iter()
            .flat_map(|unit| unit.cells.iter().copied())
            .collect();
        let place: Vec<(usize, usize)> = units
            .iter()
            .enumerate()
            .flat_map(|(unit, spec)| (0..spec.cells.len()).map(move |local| (unit, local)))
            .collect();
        let n_cells = cells.len();
        let ancestors = ancestors(&graph);
        let slots = options.jobs.max(1);
        Scheduler {
            graph,
            cells,
            units: units.to_vec(),
            place,
            store,
            env,
            options,
            pool: None,
            started_workers,
            state: (0..n_cells).map(|_| State::Waiting).collect(),
            outcomes: vec![None; n_cells],
            emitted: vec![FxHashMap::default(); n_cells],
            ancestors,
            busy: vec![false; slots],
            generation: vec![0; slots],
            rebuilds: Vec::new(),
            columns: FxHashMap::default(),
            extra_deps: vec![Vec::new(); n_cells],
            dynamic_reads: vec![Vec::new(); n_cells],
            learned: vec![Vec::new(); n_cells],
            hasher: FileHasher::default(),
            access: vec![None; n_cells],
            stop: None,
            start: Instant::now(),
        }
    }

    /// Runs on `pool` (warm workers from an earlier run of the same interpreter and `jobs`).
    pub fn with_pool(mut self, pool: Pool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// Starts no more cells once `stop` is set (running ones finish and are stored).
    pub fn with_stop(mut self, stop: Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.stop = Some(stop);
        self
    }

    /// Whether to start no more cells: interrupted, or stopped from outside.
    fn stopped(&self) -> bool {
        super::interrupt::interrupted()
            || self
                .stop
                .as_ref()
                .is_some_and(|stop| stop.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// Runs every cell and returns their outcomes, per notebook, in cell order.
    pub fn run(self, observer: &mut dyn Observer) -> Result<Vec<Vec<CellOutcome>>, RunError> {
        self.run_keeping_pool(observer)
            .map(|(outcomes, _)| outcomes)
    }

    /// [`Scheduler::run`], also handing back the pool (its workers stay warm for another run).
    pub fn run_keeping_pool(
        mut self,
        observer: &mut dyn Observer,
    ) -> Result<(Vec<Vec<CellOutcome>>, Option<Pool>), RunError> {
        // Results are stored by a second thread while cells run: a large value is compressed
        // and written while its readers already run (they get it from memory).
        let store = self.store;
        let (wake, woken) = mpsc::channel::<()>();
        let ran = std::thread::scope(|scope| {
            scope.spawn(move || {
                while woken.recv().is_ok() {
                    if let Err(err) = store.write_pending() {
                        tracing::warn!("failed to cache a value: {err}");
                    }
                }
            });
            let ran = self.schedule(observer, &wake);
            drop(wake);
            ran
        });
        ran?;
        if let Err(err) = self.store.flush() {
            tracing::warn!("failed to flush the cache: {err}");
        }
        let pool = self.pool.take();
        let outcomes: Vec<CellOutcome> = self
            .outcomes
            .into_iter()
            .map(|outcome| outcome.unwrap_or_else(|| CellOutcome::skipped(String::new())))
            .collect();
        let mut per_unit: Vec<Vec<CellOutcome>> = self
            .units
            .iter()
            .map(|unit| Vec::with_capacity(unit.cells.len()))
            .collect();
        for ((unit, _), outcome) in self.place.iter().zip(outcomes) {
            per_unit[*unit].push(outcome);
        }
        Ok((per_unit, pool))
    }

    /// Settles, dispatches and completes cells until every one is finished; `wake` asks the
    /// storing thread to write what results left pending.
    fn schedule(
        &mut self,
        observer: &mut dyn Observer,
        wake: &mpsc::Sender<()>,
    ) -> Result<(), RunError> {
        loop {
            self.settle(observer)?;
            // A rebuild makes an earlier cell ready again: dispatch until nothing changes.
            while self.dispatch(observer) {}
            if !self.busy.iter().any(|&busy| busy) {
                // Nothing runs and nothing more could be settled: either all is done, or the
                // remaining cells wait on something that will never come (a bug): fail them.
                let stuck: Vec<usize> = (0..self.cells.len())
                    .filter(|&idx| !matches!(self.state[idx], State::Finished))
                    .collect();
                let why = if super::interrupt::interrupted() {
                    "interrupted"
                } else if self.stopped() {
                    "not started: the notebook changed"
                } else {
                    "could not be scheduled"
                };
                for idx in stuck {
                    let outcome = CellOutcome::skipped(why.to_string());
                    self.finish(idx, outcome, observer);
                }
                break;
            }
            let Some(pool) = self.pool.as_ref() else {
                break;
            };
            // The results stored last are written while the cells just dispatched run.
            let _ = wake.send(());
            let Ok(completion) = pool.completions.recv() else {
                break;
            };
            self.complete(completion, observer)?;
        }
        Ok(())
    }

    /// Moves waiting cells whose dependencies are all finished to skipped, cached or ready.
    fn settle(&mut self, observer: &mut dyn Observer) -> Result<(), RunError> {
        for idx in 0..self.cells.len() {
            if !matches!(self.state[idx], State::Waiting) {
                continue;
            }
            let deps: Vec<usize> = self.graph.cells[idx]
                .depends_on
                .keys()
                .copied()
                .chain(self.extra_deps[idx].iter().copied())
                .collect();
            if deps
                .iter()
                .any(|&dep| !matches!(self.state[dep], State::Finished))
            {
                continue;
            }
            let failed_dep = deps.iter().copied().find(|&dep| {
                self.outcomes[dep].as_ref().is_some_and(|outcome| {
                    matches!(outcome.status, CellStatus::Failed | CellStatus::Skipped)
                })
            });
            if let Some(dep) = failed_dep {
                let why = match self.outcomes[dep].as_ref().map(|outcome| outcome.status) {
                    Some(CellStatus::Failed) => format!("cell {} failed", self.place[dep].1),
                    _ => format!("cell {} was skipped", self.place[dep].1),
                };
                self.finish(idx, CellOutcome::skipped(why), observer);
                continue;
            }
            if self.cells[idx].skip {
                let outcome = CellOutcome::skipped("tagged `nbmemo: skip`".to_string());
                self.finish(idx, outcome, observer);
                continue;
            }
            let inputs = self.resolve(idx);
            let pairs: Vec<(&str, ContentHash)> = inputs
                .iter()
                .filter_map(|(name, emitted)| match emitted {
                    Emitted::Artifact(hash) => Some((name.as_str(), *hash)),
                    Emitted::Resident { stand_in, .. } => Some((name.as_str(), *stand_in)),
                    Emitted::Deleted => None,
                })
                .collect();
            let code = self.cells[idx].analysis.code_hash;
            let key = cell_key(&self.env.fingerprint, &code, &pairs, &[]);
            let owned_pairs: Vec<(String, ContentHash)> = pairs
                .iter()
                .map(|(name, hash)| ((*name).to_string(), *hash))
                .collect();
            let root = self.units[self.place[idx].0].root;
            let reason = if self.options.force {
                "forced (--force)".to_string()
            } else if self.cells[idx].always {
                "tagged `nbmemo: always`".to_string()
            } else {
                let found = lookup(
                    self.store,
                    &self.hasher,
                    root,
                    &self.env.fingerprint,
                    &code,
                    &pairs,
                )?;
                match found {
                    Some(hit) => {
                        self.replay(idx, hit, owned_pairs, observer);
                        continue;
                    }
                    None => {
                        let previous = self.units[self.place[idx].0].previous;
                        explain(
                            previous,
                            self.place[idx].1,
                            &code,
                            &self.env,
                            &owned_pairs,
                            &files_now(previous, self.place[idx].1, &self.hasher, root),
                        )
                    }
                }
            };
            self.state[idx] = State::Ready { key, reason };
        }
        Ok(())
    }

    /// For each name cell `idx` reads, the value it gets: from the latest dependency that
    /// produced (or deleted) the name.
    fn resolve(&self, idx: usize) -> Vec<(String, Emitted)> {
        let mut inputs = Vec::new();
        for name in self.graph.cells[idx]
            .reads
            .iter()
            .chain(&self.dynamic_reads[idx])
        {
            for &ancestor in &self.ancestors[idx] {
                if let Some(emitted) = self.emitted[ancestor].get(name) {
                    inputs.push((name.clone(), emitted.clone()));
                    break;
                }
            }
        }
        inputs
    }

    /// The inputs as the worker gets them: every name of a stored group whose current value is
    /// that group (so objects shared with a name the cell changes are changed and saved with
    /// it: a numpy view and its base), oldest producer first (so a class's newest state, from
    /// a later cell, is unpickled last and wins).
    fn resolve_for_job(&self, idx: usize) -> Vec<(String, Emitted)> {
        let mut inputs: Vec<(usize, String, Emitted)> = Vec::new();
        let mut names: rustc_hash::FxHashSet<String> = rustc_hash::FxHashSet::default();
        let lookup = |name: &str| {
            self.ancestors[idx].iter().find_map(|&ancestor| {
                self.emitted[ancestor]
                    .get(name)
                    .map(|emitted| (ancestor, emitted.clone()))
            })
        };
        for name in self.graph.cells[idx]
            .reads
            .iter()
            .chain(&self.dynamic_reads[idx])
        {
            if let Some((producer, emitted)) = lookup(name) {
                names.insert(name.clone());
                inputs.push((producer, name.clone(), emitted));
            }
        }
        let mut members = Vec::new();
        for (producer, _, emitted) in &inputs {
            let Emitted::Artifact(hash) = emitted else {
                continue;
            };
            for (member, value) in &self.emitted[*producer] {
                let same_group = matches!(value, Emitted::Artifact(other) if other == hash);
                if !same_group || names.contains(member) {
                    continue;
                }
                let current = lookup(member);
                if matches!(&current, Some((_, Emitted::Artifact(other))) if other == hash) {
                    members.push((*producer, member.clone(), value.clone()));
                }
            }
        }
        for member in members {
            if names.insert(member.1.clone()) {
                inputs.push(member);
            }
        }
        inputs.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        inputs
            .into_iter()
            .map(|(_, name, emitted)| (name, emitted))
            .collect()
    }

    fn replay(
        &mut self,
        idx: usize,
        hit: Hit,
        inputs: Vec<(String, ContentHash)>,
        observer: &mut dyn Observer,
    ) {
        let Hit { key, record, files } = hit;
        self.emitted[idx] = emitted_of_record(&record, &key, idx);
        // A replay teaches what a run would: values it changed that the graph did not expect.
        let as_emitted: Vec<(String, Emitted)> = inputs
            .iter()
            .map(|(name, hash)| (name.clone(), Emitted::Artifact(*hash)))
            .collect();
        if self.learn_mutations(idx, &as_emitted) {
            self.emitted[idx].clear();
            self.state[idx] = State::Waiting;
            return;
        }
        // The files it wrote, back where they are missing or different.
        let (unit, local) = self.place[idx];
        let root = self.units[unit].root;
        for warning in files::restore_outputs(root, &record.files_written, self.store, &self.hasher)
        {
            tracing::warn!("cell {local}: {warning}");
        }
        let failed = record.status == RecordStatus::Error;
        let (status, reason) = if failed {
            (CellStatus::Failed, "raised (cached result)".to_string())
        } else {
            (CellStatus::Cached, String::new())
        };
        let mut outcome = CellOutcome::of_record(record, status, reason, key, inputs);
        outcome.files = files;
        let now = self.start.elapsed().as_secs_f64();
        self.access[idx] = Some((outcome.file_access.clone(), now, now));
        self.finish(idx, outcome, observer);
        self.check_files(idx);
    }

    /// Sends ready cells to idle slots, lowest index first. Returns whether a producer was
    /// made ready again (to rebuild a value), so another pass may dispatch it.
    fn dispatch(&mut self, observer: &mut dyn Observer) -> bool {
        let mut again = false;
        if self.stopped() {
            return false; // interrupted, or the notebook changed (watch): start nothing more
        }
        for idx in 0..self.cells.len() {
            if !matches!(self.state[idx], State::Ready { .. }) {
                continue;
            }
            let State::Ready { key, reason, .. } =
                std::mem::replace(&mut self.state[idx], State::Waiting)
            else {
                continue;
            };
            // Resolve again: a producer re-run since may have rebuilt resident values.
            let inputs = self.resolve_for_job(idx);
            // Values kept in one worker's memory pin the cell to that worker. A value whose
            // worker is gone (or that was replayed from the cache) is rebuilt by running its
            // producer again.
            let mut pinned: Option<(usize, u64)> = None;
            let mut rebuild: Option<(usize, String, String)> = None;
            for (name, emitted) in &inputs {
                if let Emitted::Resident {
                    producer,
                    slot,
                    generation,
                    type_name,
                    ..
                } = emitted
                {
                    let here = (*slot, *generation);
                    let live = self.generation.get(*slot) == Some(generation);
                    if !live || pinned.is_some_and(|pin| pin != here) {
                        rebuild = rebuild.or(Some((*producer, name.clone(), type_name.clone())));
                    }
                    pinned = Some(here);
                }
            }
            if let Some((producer, name, type_name)) = rebuild {
                if !matches!(self.state[producer], State::Finished) {
                    // The producer is being rebuilt: wait for it.
                    self.state[idx] = State::Ready { key, reason };
                    continue;
                }
                if self.rebuilds.contains(&(producer, idx)) {
                    let outcome = CellOutcome {
                        status: CellStatus::Failed,
                        reason: format!(
                            "`{name}` holds a `{type_name}`, which cannot be pickled, and could not be rebuilt in one worker"
                        ),
                        key: Some(key),
                        ..CellOutcome::skipped(String::new())
                    };
                    self.finish(idx, outcome, observer);
                    continue;
                }
                self.rebuilds.push((producer, idx));
                {
                    again = true;
                    let producer_key = self.outcomes[producer]
                        .as_ref()
                        .and_then(|outcome| outcome.key)
                        .unwrap_or(key);
                    self.state[producer] = State::Ready {
                        key: producer_key,
                        reason: format!(
                            "re-run to rebuild `{name}`: a `{type_name}` cannot be cached"
                        ),
                    };
                }
                self.state[idx] = State::Ready { key, reason };
                continue;
            }
            let slot = match pinned {
                Some((slot, _)) => (!self.busy[slot]).then_some(slot),
                None => self.busy.iter().position(|&busy| !busy),
            };
            let Some(slot) = slot else {
                self.state[idx] = State::Ready { key, reason };
                continue;
            };
            match self.job(idx, &inputs) {
                Ok(job) => {
                    self.ensure_pool();
                    if let Some(pool) = self.pool.as_ref() {
                        pool.submit(slot, job);
                    }
                    self.busy[slot] = true;
                    observer.cell_started(self.place[idx].0, self.place[idx].1);
                    self.state[idx] = State::Running {
                        key,
                        inputs,
                        reason,
                        stale: false,
                    };
                }
                Err(message) => {
                    let outcome = CellOutcome {
                        status: CellStatus::Failed,
                        reason: message,
                        key: Some(key),
                        ..CellOutcome::skipped(String::new())
                    };
                    self.finish(idx, outcome, observer);
                }
            }
        }
        again
    }

    fn ensure_pool(&mut self) {
        if self.pool.is_none() {
            let pool = Pool::new(
                self.options.python.clone(),
                self.options.memory_limit,
                self.busy.len(),
                std::mem::take(&mut self.started_workers),
            );
            // Cells are about to run: start as many workers as may be needed at once, in
            // parallel, rather than each when its first cell arrives.
            let pending = self
                .state
                .iter()
                .filter(|state| matches!(state, State::Waiting | State::Ready { .. }))
                .count();
            // Workers that wait for their first cell import the heavy data libraries the
            // notebooks import meanwhile, instead of when unpickling that cell's inputs.
            let mut preload: Vec<String> = self
                .cells
                .iter()
                .flat_map(|cell| cell.analysis.imported_packages.iter())
                .filter(|package| PRELOADED_PACKAGES.contains(&package.as_str()))
                .cloned()
                .collect();
            preload.sort_unstable_by_key(|package| {
                PRELOADED_PACKAGES.iter().position(|known| known == package)
            });
            preload.dedup();
            pool.warm(pending.min(self.busy.len()), &preload);
            self.pool = Some(pool);
        }
    }

    /// Builds the request for cell `idx`: its input groups and their pickles.
    fn job(&self, idx: usize, inputs: &[(String, Emitted)]) -> Result<Job, String> {
        let node = &self.graph.cells[idx];
        let mut groups: Vec<InputGroup> = Vec::new();
        let mut blobs: Vec<Arc<Vec<u8>>> = Vec::new();
        let mut blob_of: FxHashMap<ContentHash, usize> = FxHashMap::default();
        let mut resident_of: FxHashMap<String, usize> = FxHashMap::default();
        for (name, emitted) in inputs {
            match emitted {
                Emitted::Artifact(hash) => {
                    if let Some(&group) = blob_of.get(hash) {
                        groups[group].names.push(name.clone());
                        continue;
                    }
                    let bytes = match self.store.get_artifact_shared(hash) {
                        Ok(Some(bytes)) => bytes,
                        Ok(None) => {
                            return Err(format!(
                                "the cached value of `{name}` is missing or damaged; run again to recompute it"
                            ));
                        }
                        Err(err) => {
                            return Err(format!(
                                "failed to read the cached value of `{name}`: {err}"
                            ));
                        }
                    };
                    blobs.push(bytes);
                    blob_of.insert(*hash, groups.len());
                    groups.push(InputGroup {
                        names: vec![name.clone()],
                        blob: Some(blobs.len() - 1),
                        resident: None,
                        columns: self.columns.get(hash).cloned().unwrap_or_default(),
                    });
                }
                Emitted::Resident { id, .. } => {
                    if let Some(&group) = resident_of.get(id) {
                        groups[group].names.push(name.clone());
                        continue;
                    }
                    resident_of.insert(id.clone(), groups.len());
                    groups.push(InputGroup {
                        names: vec![name.clone()],
                        blob: None,
                        resident: Some(id.clone()),
                        columns: Vec::new(),
                    });
                }
                Emitted::Deleted => {}
            }
        }
        let supplied: Vec<&String> = inputs
            .iter()
            .filter(|(_, emitted)| !matches!(emitted, Emitted::Deleted))
            .map(|(name, _)| name)
            .collect();
        let candidates: Vec<String> = node
            .may_mutate
            .iter()
            .chain(&node.refuted)
            .filter(|name| supplied.contains(name))
            .cloned()
            .collect();
        let unchecked = node
            .unchecked
            .iter()
            .filter(|(name, _)| candidates.contains(name))
            .map(|(name, roots)| (name.clone(), roots.iter().cloned().collect()))
            .collect();
        let writes = (!node.is_barrier()).then(|| node.writes.iter().cloned().collect());
        let request = ExecRequest {
            kind: "exec",
            cell: idx,
            code: self.cells[idx].source.to_string(),
            filename: format!("<cell {}>", self.place[idx].1),
            cwd: self.units[self.place[idx].0].cwd.display().to_string(),
            inputs: groups,
            candidates,
            unchecked,
            writes,
            display_suppressed: self.cells[idx].analysis.display_suppressed,
            root: Some(self.units[self.place[idx].0].root.display().to_string()),
            store: Some(self.store.root().display().to_string()),
        };
        Ok(Job {
            cell: idx,
            request,
            blobs,
            timeout: self.options.timeout,
        })
    }

    /// Handles a finished job: stores what it produced and records its outcome.
    fn complete(
        &mut self,
        completion: Completion,
        observer: &mut dyn Observer,
    ) -> Result<(), RunError> {
        let idx = completion.cell;
        self.busy[completion.slot] = false;
        self.generation[completion.slot] = completion.generation;
        let State::Running {
            key,
            inputs,
            reason,
            stale,
        } = std::mem::replace(&mut self.state[idx], State::Waiting)
        else {
            return Ok(());
        };
        let started_at = completion.started.duration_since(self.start).as_secs_f64();
        let finished_at = completion.finished.duration_since(self.start).as_secs_f64();
        let node = &self.graph.cells[idx];
        let pairs: Vec<(String, ContentHash)> = inputs
            .iter()
            .filter(|(name, _)| node.reads.contains(name) || self.dynamic_reads[idx].contains(name))
            .filter_map(|(name, emitted)| match emitted {
                Emitted::Artifact(hash) => Some((name.clone(), *hash)),
                Emitted::Resident { stand_in, .. } => Some((name.clone(), *stand_in)),
                Emitted::Deleted => None,
            })
            .collect();
        let (result, blobs) = match completion.outcome {
            Ok(result) => result,
            Err(err) if err.is_cell_fault() => {
                // Crashes and timeouts are transient: reported, never cached.
                let reason = if super::interrupt::interrupted() {
                    "interrupted".to_string()
                } else {
                    err.to_string()
                };
                let outcome = CellOutcome {
                    status: CellStatus::Failed,
                    reason,
                    started_at: Some(started_at),
                    finished_at: Some(finished_at),
                    duration_s: finished_at - started_at,
                    key: Some(key),
                    inputs: pairs,
                    ..CellOutcome::skipped(String::new())
                };
                self.finish(idx, outcome, observer);
                return Ok(());
            }
            Err(err) => return Err(err.into()),
        };
        // Files: what it read completes its key (the second step); what it wrote is stored.
        let root = self.units[self.place[idx].0].root;
        let report = result.files.clone().unwrap_or_default();
        let access = FileAccess::new(&report.read, &report.listed, &report.written);
        self.hasher.forget(root, &access.written);
        let file_inputs = self.hasher.hashes(root, &access.read);
        let code = self.cells[idx].analysis.code_hash;
        let value_refs: Vec<(&str, ContentHash)> = pairs
            .iter()
            .map(|(name, hash)| (name.as_str(), *hash))
            .collect();
        let file_refs: Vec<(&str, ContentHash)> = file_inputs
            .iter()
            .map(|(path, hash)| (path.as_str(), *hash))
            .collect();
        let first_key = cell_key(&self.env.fingerprint, &code, &value_refs, &[]);
        let key = cell_key(&self.env.fingerprint, &code, &value_refs, &file_refs);
        let mut record = self.record(
            &result,
            blobs,
            completion.slot,
            completion.generation,
            idx,
            &key,
        )?;
        record.files_read.clone_from(&file_inputs);
        record.files_written = files::capture_outputs(root, &access.written, self.store)?;
        if !result.cacheable {
            // Out of memory under NBMEMO_MEMORY_LIMIT: the machine's limit, reported only.
            let outcome = CellOutcome {
                status: CellStatus::Failed,
                reason: "ran out of memory (--memory-limit, NBMEMO_MEMORY_LIMIT); not cached"
                    .to_string(),
                started_at: Some(started_at),
                finished_at: Some(finished_at),
                ..CellOutcome::of_record(record, CellStatus::Failed, String::new(), key, pairs)
            };
            self.finish(idx, outcome, observer);
            return Ok(());
        }
        if let Err(err) = self.store.put_record(&key, &record) {
            tracing::warn!("failed to cache cell {idx}: {err}");
        }
        if !access.read.is_empty()
            && let Err(err) = self.store.put_manifest(&first_key, &access.read)
        {
            tracing::warn!("failed to cache the files cell {idx} read: {err}");
        }
        if stale {
            // The result is right for its inputs (and now cached), but an input changed.
            self.emitted[idx].clear();
            return Ok(());
        }
        if self.learn_mutations(idx, &inputs) {
            // It ran with library state the graph did not give it: run it again with it.
            self.emitted[idx].clear();
            self.state[idx] = State::Waiting;
            return Ok(());
        }
        let failed = result.is_error();
        let (status, reason) = if failed {
            let raised = result.error.as_ref().map_or_else(
                || "raised".to_string(),
                |err| format!("{}: {}", err.ename, err.evalue),
            );
            (CellStatus::Failed, raised)
        } else {
            (CellStatus::Ran, reason)
        };
        let given = inputs
            .iter()
            .filter_map(|(name, emitted)| match emitted {
                Emitted::Artifact(hash) => Some((name.clone(), *hash)),
                Emitted::Resident { stand_in, .. } => Some((name.clone(), *stand_in)),
                Emitted::Deleted => None,
            })
            .collect();
        let outcome = CellOutcome {
            started_at: Some(started_at),
            finished_at: Some(finished_at),
            file_access: access.clone(),
            given,
            ..CellOutcome::of_record(record, status, reason, key, pairs)
        };
        self.access[idx] = Some((access, started_at, finished_at));
        self.finish(idx, outcome, observer);
        self.check_files(idx);
        Ok(())
    }

    /// Cells the graph left unordered may still touch the same files (the static rules and
    /// what earlier runs saw are not complete). When cell `idx` and another cell of its
    /// notebook touched a path in an order-dependent way and the later one started before the
    /// earlier one ended, the cell that may have seen the wrong content runs again, after the
    /// other, and its record is dropped: the later cell when the earlier wrote the path, the
    /// earlier cell when the later one overwrote what it read.
    fn check_files(&mut self, idx: usize) {
        if self.access[idx]
            .as_ref()
            .is_none_or(|(access, _, _)| access.is_empty())
        {
            return;
        }
        let unit = self.place[idx].0;
        let others: Vec<usize> = (0..self.cells.len())
            .filter(|&other| other != idx && self.place[other].0 == unit)
            .collect();
        for other in others {
            let (early, late) = (other.min(idx), other.max(idx));
            if self.ancestors[late].contains(&early) {
                continue;
            }
            let (Some((early_access, _, early_end)), Some((late_access, late_start, _))) =
                (&self.access[early], &self.access[late])
            else {
                continue;
            };
            if late_start >= early_end {
                continue;
            }
            let suspect = match early_access.conflict(late_access) {
                None => continue,
                Some(Conflict::Follows(path)) => {
                    tracing::info!(
                        "cell {} touched `{path}` while cell {} (earlier) was writing it: it runs again after it",
                        self.place[late].1,
                        self.place[early].1
                    );
                    self.add_dependencies(late, &[early]);
                    late
                }
                Some(Conflict::Overwrote(path)) => {
                    tracing::info!(
                        "cell {} overwrote `{path}` while cell {} (earlier) was reading it: that one runs again",
                        self.place[late].1,
                        self.place[early].1
                    );
                    early
                }
            };
            let ran = self.outcomes[suspect]
                .as_ref()
                .filter(|outcome| outcome.status != CellStatus::Cached)
                .and_then(|outcome| outcome.key);
            if let Some(key) = ran
                && let Err(err) = self.store.remove_record(&key)
            {
                tracing::warn!("failed to drop a cached result: {err}");
            }
            self.access[suspect] = None;
            self.invalidate(suspect);
            if suspect == idx {
                return;
            }
        }
    }

    /// Stores a result's artifacts and builds its record; fills in what the cell emitted.
    fn record(
        &mut self,
        result: &ExecResult,
        blobs: Vec<Vec<u8>>,
        slot: usize,
        generation: u64,
        idx: usize,
        key: &ContentHash,
    ) -> Result<CellRecord, RunError> {
        let mut values = Vec::new();
        let mut emitted = FxHashMap::default();
        let mut blobs: Vec<Option<Vec<u8>>> = blobs.into_iter().map(Some).collect();
        if !result.is_error() {
            for group in &result.values {
                let Some(bytes) = blobs.get_mut(group.blob).and_then(Option::take) else {
                    continue;
                };
                let artifact = self.store.put_artifact_later(Arc::new(bytes));
                if !group.columns.is_empty() {
                    self.columns.insert(artifact, group.columns.clone());
                }
                for name in &group.names {
                    emitted.insert(name.clone(), Emitted::Artifact(artifact));
                }
                values.push(ValueGroup {
                    names: group.names.clone(),
                    artifact,
                });
            }
            for name in &result.deleted {
                emitted.insert(name.clone(), Emitted::Deleted);
            }
            for value in &result.unpicklable {
                emitted.insert(
                    value.name.clone(),
                    Emitted::Resident {
                        producer: idx,
                        slot,
                        generation,
                        id: value.resident.clone(),
                        stand_in: resident_hash(key, &value.name),
                        type_name: value.type_name.clone(),
                    },
                );
            }
        }
        self.emitted[idx] = emitted;
        let created_unix_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |time| time.as_secs());
        Ok(CellRecord {
            status: if result.is_error() {
                RecordStatus::Error
            } else {
                RecordStatus::Ok
            },
            stdout: result.stdout.clone(),
            stderr: result.stderr.clone(),
            outputs: result.outputs.clone(),
            error: result.error.as_ref().map(|err| ErrorInfo {
                ename: err.ename.clone(),
                evalue: err.evalue.clone(),
                traceback: err.traceback.clone(),
                line: err.line,
            }),
            values,
            deleted: result.deleted.clone(),
            mutated: result.mutated.clone(),
            unpicklable: result
                .unpicklable
                .iter()
                .map(|value| Unpicklable {
                    name: value.name.clone(),
                    type_name: value.type_name.clone(),
                })
                .collect(),
            duration_s: result.duration_s,
            created_unix_s,
            files_read: Vec::new(),
            files_written: Vec::new(),
        })
    }

    /// A value changed that the graph did not expect this cell to change: a candidate a
    /// previous run refuted (so it ordered nothing), or a name sharing an object with one the
    /// cell changed. Every later reader of the name now depends on this cell, and those that
    /// already ran, or are running, on the old value run again (with everything downstream).
    /// Returns whether the cell itself must run again: it changed library state (a probe) that
    /// an earlier cell had set, without having been given that state.
    fn learn_mutations(&mut self, idx: usize, inputs: &[(String, Emitted)]) -> bool {
        let node = &self.graph.cells[idx];
        let surprises: Vec<String> = self.emitted[idx]
            .iter()
            .filter(|(name, _)| {
                !node.writes.contains(*name)
                    && !node.may_mutate.contains(*name)
                    && !self.dynamic_reads[idx].contains(*name)
            })
            .filter(|(name, emitted)| {
                let before = inputs
                    .iter()
                    .find(|(input, _)| input == *name)
                    .map(|(_, value)| value);
                match (before, emitted) {
                    (Some(Emitted::Artifact(old)), Emitted::Artifact(new)) => old != new,
                    // A probe the cell was not given but changed.
                    (None, _) => probes::is_probe(name),
                    _ => true,
                }
            })
            .map(|(name, _)| name.clone())
            .collect();
        if surprises.is_empty() {
            return false;
        }
        let mut rerun_self = false;
        for name in &surprises {
            if !self.learned[idx].contains(name) {
                self.learned[idx].push(name.clone());
            }
        }
        for probe in surprises.iter().filter(|name| probes::is_probe(name)) {
            if inputs.iter().any(|(name, _)| name == probe) {
                continue;
            }
            // Which earlier cells may have set it: the cell should have started from that.
            let setters: Vec<usize> = (0..idx)
                .filter(|&earlier| {
                    let node = &self.graph.cells[earlier];
                    node.is_barrier()
                        || node.writes.contains(probe)
                        || self.learned[earlier].contains(probe)
                })
                .collect();
            if setters.is_empty() {
                continue;
            }
            tracing::info!(
                "cell {idx} used `{probe}` set by an earlier cell: it runs again with it"
            );
            self.dynamic_reads[idx].push(probe.clone());
            self.add_dependencies(idx, &setters);
            rerun_self = true;
        }
        let unit = self.place[idx].0;
        for reader in idx + 1..self.cells.len() {
            if self.place[reader].0 != unit {
                break;
            }
            let node = &self.graph.cells[reader];
            let reads_it = surprises
                .iter()
                .any(|name| node.reads.contains(name) || self.dynamic_reads[reader].contains(name));
            // An ambient setting (options, styles, the working directory…) shapes every later
            // cell; a generator, the later cells that draw from it. The graph gave them no
            // such read (no earlier cell was known to change it): they get it now.
            let new_reads: Vec<String> = surprises
                .iter()
                .filter(|name| {
                    probes::is_probe(name)
                        && !node.reads.contains(*name)
                        && !self.dynamic_reads[reader].contains(*name)
                        && (probes::AMBIENT.contains(&name.as_str()) || node.writes.contains(*name))
                })
                .cloned()
                .collect();
            let gets_new = !new_reads.is_empty();
            self.dynamic_reads[reader].extend(new_reads);
            if (!reads_it && !gets_new) || self.ancestors[reader].contains(&idx) {
                continue;
            }
            tracing::info!(
                "cell {idx} changed a value cell {reader} read: cell {reader} runs again"
            );
            self.add_dependencies(reader, &[idx]);
            self.invalidate(reader);
        }
        rerun_self
    }

    /// Makes `cell` wait for `deps` (and see their values) from now on.
    fn add_dependencies(&mut self, cell: usize, deps: &[usize]) {
        let mut merged: Vec<usize> = self.ancestors[cell].clone();
        for &dep in deps {
            self.extra_deps[cell].push(dep);
            merged.push(dep);
            merged.extend(self.ancestors[dep].iter().copied());
        }
        merged.sort_unstable_by(|a, b| b.cmp(a));
        merged.dedup();
        self.ancestors[cell] = merged;
    }

    /// Makes a cell (and what consumed its outputs) wait to be evaluated again.
    fn invalidate(&mut self, idx: usize) {
        match &mut self.state[idx] {
            State::Waiting => return,
            State::Running { stale, .. } => *stale = true,
            State::Ready { .. } | State::Finished => self.state[idx] = State::Waiting,
        }
        self.emitted[idx].clear();
        self.access[idx] = None;
        for later in idx + 1..self.cells.len() {
            if self.ancestors[later].contains(&idx) {
                self.invalidate(later);
            }
        }
    }

    fn finish(&mut self, idx: usize, mut outcome: CellOutcome, observer: &mut dyn Observer) {
        outcome.learned.clone_from(&self.learned[idx]);
        observer.cell_finished(self.place[idx].0, self.place[idx].1, &outcome);
        self.outcomes[idx] = Some(outcome);
        self.state[idx] = State::Finished;
    }
}

/// Why a cell whose key is not in the store must run, from what the previous run recorded.
///
/// `files_now` holds the current hashes of the files the previous run of the cell read.
pub fn explain(
    previous: Option<&NotebookState>,
    idx: usize,
    code: &ContentHash,
    env: &Environment,
    inputs: &[(String, ContentHash)],
    files_now: &[(String, ContentHash)],
) -> String {
    let Some(previous) = previous else {
        return "no previous run".to_string();
    };
    let trace = previous.traces.get(idx).and_then(Option::as_ref);
    let Some(trace) = trace.filter(|trace| trace.code_hash == *code) else {
        let moved = previous
            .traces
            .iter()
            .flatten()
            .any(|trace| trace.code_hash == *code);
        return if moved {
            "cell moved".to_string()
        } else if trace.is_some() || previous.traces.len() > idx {
            "code changed".to_string()
        } else {
            "new cell".to_string()
        };
    };
    if trace.env != env.fingerprint {
        return env.changes_since(&previous.distributions);
    }
    let before: FxHashMap<&str, &ContentHash> = trace
        .inputs
        .iter()
        .map(|(name, hash)| (name.as_str(), hash))
        .collect();
    let now: FxHashMap<&str, &ContentHash> = inputs
        .iter()
        .map(|(name, hash)| (name.as_str(), hash))
        .collect();
    let mut changed: Vec<&str> = now
        .iter()
        .filter(|(name, hash)| before.get(*name).is_some_and(|old| old != *hash))
        .map(|(name, _)| *name)
        .collect();
    let mut added: Vec<&str> = now
        .keys()
        .filter(|name| !before.contains_key(*name))
        .copied()
        .collect();
    let mut removed: Vec<&str> = before
        .keys()
        .filter(|name| !now.contains_key(*name))
        .copied()
        .collect();
    changed.sort_unstable();
    added.sort_unstable();
    removed.sort_unstable();
    let quote = |names: &[&str]| {
        names
            .iter()
            .map(|name| format!("`{name}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut parts = Vec::new();
    if !changed.is_empty() {
        parts.push(format!("input {} changed", quote(&changed)));
    }
    if !added.is_empty() {
        parts.push(format!("now reads {}", quote(&added)));
    }
    if !removed.is_empty() {
        parts.push(format!("no longer reads {}", quote(&removed)));
    }
    let mut files_changed: Vec<&str> = trace
        .files
        .iter()
        .filter(|(path, hash)| {
            files_now
                .iter()
                .any(|(now_path, now_hash)| now_path == path && now_hash != hash)
        })
        .map(|(path, _)| path.as_str())
        .collect();
    files_changed.sort_unstable();
    if !files_changed.is_empty() {
        let (folders, plain): (Vec<&str>, Vec<&str>) =
            files_changed.iter().partition(|path| path.ends_with('/'));
        if !plain.is_empty() {
            let noun = if plain.len() == 1 { "file" } else { "files" };
            parts.push(format!("{noun} {} changed", quote(&plain)));
        }
        if !folders.is_empty() {
            let noun = if folders.len() == 1 {
                "folder"
            } else {
                "folders"
            };
            parts.push(format!("{noun} {} changed", quote(&folders)));
        }
    }
    if parts.is_empty() {
        "no cached result".to_string()
    } else {
        parts.join("; ")
    }
}

/// The trace of a cell's inputs, to explain the next run.
pub fn trace_of(code: &ContentHash, env: &ContentHash, outcome: &CellOutcome) -> Option<CellTrace> {
    outcome.key.map(|_| CellTrace {
        code_hash: *code,
        env: *env,
        inputs: outcome.inputs.clone(),
        files: outcome.files.clone(),
    })
}

/// The current hashes of the files the previous run of cell `idx` read.
pub fn files_now(
    previous: Option<&NotebookState>,
    idx: usize,
    hasher: &FileHasher,
    root: &std::path::Path,
) -> Vec<(String, ContentHash)> {
    let Some(trace) = previous
        .and_then(|state| state.traces.get(idx))
        .and_then(Option::as_ref)
    else {
        return Vec::new();
    };
    let paths: Vec<String> = trace.files.iter().map(|(path, _)| path.clone()).collect();
    hasher.hashes(root, &paths)
}

/// A cell found in the store: the key it was found under, its record, and the files (with
/// their current hashes) that completed the key.
pub struct Hit {
    /// The key.
    pub key: ContentHash,
    /// The record.
    pub record: CellRecord,
    /// The files read.
    pub files: Vec<(String, ContentHash)>,
}

/// Looks a cell up in two steps (cache-format "Cell key"): its key without files finds a
/// record of a run that read none, or the lists of files its runs read; the current hashes of
/// each list complete a key to look up. A record whose artifacts are not all stored is a miss.
pub fn lookup(
    store: &Store,
    hasher: &FileHasher,
    root: &std::path::Path,
    env: &ContentHash,
    code: &ContentHash,
    values: &[(&str, ContentHash)],
) -> Result<Option<Hit>, crate::store::Error> {
    let first_key = cell_key(env, code, values, &[]);
    if let Some(record) = replayable(store, &first_key)?
        && record.files_read.is_empty()
    {
        return Ok(Some(Hit {
            key: first_key,
            record,
            files: Vec::new(),
        }));
    }
    for list in store.get_manifest(&first_key)? {
        let files = hasher.hashes(root, &list);
        let refs: Vec<(&str, ContentHash)> = files
            .iter()
            .map(|(path, hash)| (path.as_str(), *hash))
            .collect();
        let key = cell_key(env, code, values, &refs);
        if let Some(record) = replayable(store, &key)? {
            return Ok(Some(Hit { key, record, files }));
        }
    }
    Ok(None)
}

/// The stored record for `key`, if every artifact it refers to is still there.
fn replayable(store: &Store, key: &ContentHash) -> Result<Option<CellRecord>, crate::store::Error> {
    let Some(record) = store.get_record(key)? else {
        return Ok(None);
    };
    for artifact in record.artifacts() {
        if !store.has_artifact(&artifact)? {
            return Ok(None);
        }
    }
    Ok(Some(record))
}

/// What a stored record makes available to later cells.
fn emitted_of_record(
    record: &CellRecord,
    key: &ContentHash,
    producer: usize,
) -> FxHashMap<String, Emitted> {
    let mut emitted = FxHashMap::default();
    if record.status == RecordStatus::Error {
        return emitted;
    }
    for group in &record.values {
        for name in &group.names {
            emitted.insert(name.clone(), Emitted::Artifact(group.artifact));
        }
    }
    for name in &record.deleted {
        emitted.insert(name.clone(), Emitted::Deleted);
    }
    for value in &record.unpicklable {
        // No worker holds it: a reader that must run cannot get it.
        emitted.insert(
            value.name.clone(),
            Emitted::Resident {
                producer,
                slot: usize::MAX,
                generation: u64::MAX,
                id: String::new(),
                stand_in: resident_hash(key, &value.name),
                type_name: value.type_name.clone(),
            },
        );
    }
    emitted
}

/// Transitive dependencies of each cell, latest first.
fn ancestors(graph: &Graph) -> Vec<Vec<usize>> {
    let n_cells = graph.cells.len();
    let words = n_cells.div_ceil(64);
    let mut sets: Vec<Vec<u64>> = Vec::with_capacity(n_cells);
    for node in &graph.cells {
        let mut set = vec![0u64; words];
        for &dep in node.depends_on.keys() {
            set[dep / 64] |= 1 << (dep % 64);
            for (word, dep_word) in set.iter_mut().zip(&sets[dep]) {
                *word |= dep_word;
            }
        }
        sets.push(set);
    }
    sets.into_iter()
        .map(|set| {
            (0..n_cells)
                .rev()
                .filter(|&idx| set[idx / 64] & (1 << (idx % 64)) != 0)
                .collect()
        })
        .collect()
}

/// Stores records under the keys the next run will derive, after a run that learned something.
///
/// What a run learns (a mutation through a shared object, a probe a library changed) gives some
/// cells more inputs in the next run's `graph`, so their keys change although nothing else did.
/// A cell's record stays valid under its new key when every value of that key is one its worker
/// was given (a name sharing a group with an input, say): it is stored under the new key too,
/// so the next run replays it instead of starting Python. Walks the cells as the next run
/// would, from this run's records; returns how many records were carried over.
pub fn carry_over(
    graph: &Graph,
    cells: &[CellSpec<'_>],
    outcomes: &[CellOutcome],
    store: &Store,
    env: &ContentHash,
) -> usize {
    let ancestors = ancestors(graph);
    let n_cells = cells.len().min(outcomes.len()).min(graph.cells.len());
    let mut emitted: Vec<FxHashMap<String, Emitted>> = vec![FxHashMap::default(); n_cells];
    let mut unknown = vec![false; n_cells];
    let mut carried = 0;
    for idx in 0..n_cells {
        let outcome = &outcomes[idx];
        let record = outcome.key.and_then(|key| {
            store
                .get_record(&key)
                .ok()
                .flatten()
                .map(|record| (key, record))
        });
        let Some((key, record)) = record else {
            unknown[idx] = true;
            continue;
        };
        if ancestors[idx].iter().any(|&ancestor| unknown[ancestor]) {
            unknown[idx] = true;
            continue;
        }
        let mut pairs: Vec<(&str, ContentHash)> = Vec::new();
        for name in &graph.cells[idx].reads {
            for &ancestor in &ancestors[idx] {
                if let Some(value) = emitted[ancestor].get(name) {
                    match value {
                        Emitted::Artifact(hash) => pairs.push((name, *hash)),
                        Emitted::Resident { stand_in, .. } => pairs.push((name, *stand_in)),
                        Emitted::Deleted => {}
                    }
                    break;
                }
            }
        }
        let files: Vec<(&str, ContentHash)> = outcome
            .files
            .iter()
            .map(|(path, hash)| (path.as_str(), *hash))
            .collect();
        let code = &cells[idx].analysis.code_hash;
        let new_key = cell_key(env, code, &pairs, &files);
        if new_key != key {
            let had = |(name, hash): &(&str, ContentHash)| {
                outcome
                    .given
                    .iter()
                    .any(|(given, value)| given == name && value == hash)
            };
            if !pairs.iter().all(had) || store.put_record(&new_key, &record).is_err() {
                unknown[idx] = true;
                continue;
            }
            if !files.is_empty() {
                let first_key = cell_key(env, code, &pairs, &[]);
                let paths: Vec<String> =
                    outcome.files.iter().map(|(path, _)| path.clone()).collect();
                let _ = store.put_manifest(&first_key, &paths);
            }
            carried += 1;
        }
        emitted[idx] = emitted_of_record(&record, &new_key, idx);
    }
    carried
}

/// What a run would do with a cell, predicted from the store without executing anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prediction {
    /// Its key is in the store: it would be replayed.
    Cached,
    /// It would run, and why.
    WouldRun(String),
    /// It would not run, and why (a `nbmemo: skip` tag, or a skipped dependency).
    Skipped(String),
}

/// Predicts, for every cell, whether a run would replay it or run it (`nbmemo plan`). A cell
/// downstream of one that would run is predicted to run too (early cutoff may still spare it).
pub fn predict(
    graph: &Graph,
    cells: &[CellSpec<'_>],
    store: &Store,
    env: &Environment,
    previous: Option<&NotebookState>,
    root: &std::path::Path,
) -> Vec<Prediction> {
    let ancestors = ancestors(graph);
    let hasher = FileHasher::default();
    let mut emitted: Vec<FxHashMap<String, Option<Emitted>>> =
        vec![FxHashMap::default(); cells.len()];
    let mut predictions = Vec::with_capacity(cells.len());
    for idx in 0..cells.len() {
        let node = &graph.cells[idx];
        if cells[idx].skip {
            predictions.push(Prediction::Skipped("tagged `nbmemo: skip`".to_string()));
            continue;
        }
        let skipped_dep = node
            .depends_on
            .keys()
            .copied()
            .find(|&dep| matches!(predictions.get(dep), Some(Prediction::Skipped(_))));
        if let Some(dep) = skipped_dep {
            predictions.push(Prediction::Skipped(format!("cell {dep} is skipped")));
            continue;
        }
        let mut pairs: Vec<(&str, ContentHash)> = Vec::new();
        let mut unknown: Option<usize> = None;
        for name in &node.reads {
            for &ancestor in &ancestors[idx] {
                if let Some(value) = emitted[ancestor].get(name) {
                    match value {
                        Some(Emitted::Artifact(hash)) => pairs.push((name, *hash)),
                        Some(Emitted::Resident { stand_in, .. }) => pairs.push((name, *stand_in)),
                        Some(Emitted::Deleted) => {}
                        None => unknown = unknown.or(Some(ancestor)),
                    }
                    break;
                }
            }
        }
        let code = &cells[idx].analysis.code_hash;
        let record = if unknown.is_none() && !cells[idx].always {
            lookup(store, &hasher, root, &env.fingerprint, code, &pairs)
                .ok()
                .flatten()
                .map(|hit| (hit.key, hit.record))
        } else {
            None
        };
        match record {
            Some((key, record)) => {
                emitted[idx] = emitted_of_record(&record, &key, idx)
                    .into_iter()
                    .map(|(name, value)| (name, Some(value)))
                    .collect();
                predictions.push(Prediction::Cached);
            }
            None => {
                let barrier_reads = node.is_barrier().then_some(&node.reads);
                for name in node
                    .writes
                    .iter()
                    .chain(&node.may_mutate)
                    .chain(barrier_reads.into_iter().flatten())
                {
                    emitted[idx].insert(name.clone(), None);
                }
                let reason = if cells[idx].always {
                    "tagged `nbmemo: always`".to_string()
                } else if let Some(upstream) = unknown {
                    format!("cell {upstream} runs first")
                } else {
                    let owned: Vec<(String, ContentHash)> = pairs
                        .iter()
                        .map(|(name, hash)| ((*name).to_string(), *hash))
                        .collect();
                    let files = files_now(previous, idx, &hasher, root);
                    explain(previous, idx, code, env, &owned, &files)
                };
                predictions.push(Prediction::WouldRun(reason));
            }
        }
    }
    predictions
}
