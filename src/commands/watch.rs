//! `nbmemo watch`: run, then run again on every save, only what changed.
//!
//! One [`Session`] lives for the whole watch: the store stays open, the salsa database keeps
//! its memos (an edit re-analyses only the edited cells), the workers stay warm. The notebooks'
//! folders, and the folders of the files their cells read, are watched (not the files: editors
//! that save by writing a temporary file and renaming it replace the file). A debounced batch
//! of events counts as a change when the content of a watched file (or the names in a listed
//! folder) differs from what the last run used; a save with the same bytes runs nothing.
//!
//! Policy for a change during a run: the scheduler starts no further cell, the running ones
//! finish and are stored (their results are right for the code they ran), then the saved
//! version runs, replaying what is still valid.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify_debouncer_full::notify::{self, PollWatcher, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache};
use serde_json::Value;

use crate::cli::WatchArgs;
use crate::exec::interrupt;
use crate::files;
use crate::hash::ContentHash;
use crate::report::Printer;
use crate::report::run::to_json;

use super::ExitStatus;
use super::run::{Finished, RunSettings, Session, report};

/// What wakes the watch loop.
enum Wake {
    /// A watched file changed.
    Changed,
    /// Ctrl-C.
    Interrupt,
}

/// What the last run used, to tell a real change from an event with nothing new.
#[derive(Default)]
struct Snapshot {
    /// Files (notebooks, files cells read) and their content hash.
    files: HashMap<PathBuf, ContentHash>,
    /// Folders cells listed, and the hash of their names.
    listings: HashMap<PathBuf, ContentHash>,
}

impl Snapshot {
    /// Whether any of `paths` (from file events) now differs from the snapshot.
    fn changed(&self, paths: &[PathBuf]) -> Option<PathBuf> {
        for path in paths {
            if let Some(hash) = self.files.get(path)
                && files::file_hash(path) != *hash
            {
                return Some(path.clone());
            }
            let listed = path.parent().and_then(|dir| {
                self.listings
                    .get(dir)
                    .map(|hash| (dir.to_path_buf(), *hash))
            });
            if let Some((dir, hash)) = listed
                && files::listing_hash(&dir) != hash
            {
                return Some(dir);
            }
        }
        None
    }

    /// The first watched file or folder whose content differs from the snapshot.
    fn any_changed(&self) -> Option<PathBuf> {
        let paths: Vec<PathBuf> = self.files.keys().cloned().collect();
        if let Some(path) = self.changed(&paths) {
            return Some(path);
        }
        self.listings
            .iter()
            .find(|(dir, hash)| files::listing_hash(dir) != **hash)
            .map(|(dir, _)| dir.clone())
    }
}

/// The file watcher: the system's events, or polling.
enum Watcher {
    Native(Debouncer<RecommendedWatcher, RecommendedCache>),
    Poll(Debouncer<PollWatcher, RecommendedCache>),
}

impl Watcher {
    fn watch(&mut self, dir: &Path) -> Result<(), notify::Error> {
        match self {
            Watcher::Native(debouncer) => debouncer.watch(dir, RecursiveMode::NonRecursive),
            Watcher::Poll(debouncer) => debouncer.watch(dir, RecursiveMode::NonRecursive),
        }
    }
}

/// Runs `nbmemo watch`.
pub fn watch(args: &WatchArgs, printer: &Printer) -> ExitStatus {
    let Ok(memory_limit) = super::run::memory_limit_arg(args.memory_limit.as_deref(), printer)
    else {
        return ExitStatus::Error;
    };
    let mut settings = RunSettings {
        force: false,
        jobs: args.jobs,
        timeout: args.timeout,
        memory_limit,
        python: args.python.clone(),
        cache_dir: args.cache_dir.clone(),
        inplace: false,
        json: args.json,
        show_output: args.show_output,
        hide_cached: false,
    };
    let Some(first) = args.notebooks.first() else {
        return ExitStatus::Success;
    };
    let mut session = match Session::open(first, &settings, printer) {
        Ok(session) => session,
        Err(status) => return status,
    };

    let (wake, woken) = mpsc::channel::<Wake>();
    let (interrupts, interrupted) = mpsc::channel::<()>();
    interrupt::listen(interrupts);
    {
        let wake = wake.clone();
        std::thread::spawn(move || {
            if interrupted.recv().is_ok() {
                let _ = wake.send(Wake::Interrupt);
            }
        });
    }
    let snapshot = Arc::new(Mutex::new(Snapshot::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut watcher = match start_watcher(args, &snapshot, &stop, wake) {
        Ok(watcher) => watcher,
        Err(err) => {
            printer.error(&format!(
                "cannot watch files: {err}; try `--poll` on file systems without file events"
            ));
            return ExitStatus::Error;
        }
    };
    let mut watched: HashSet<PathBuf> = HashSet::new();
    let notebooks: Vec<PathBuf> = args
        .notebooks
        .iter()
        .map(|path| std::path::absolute(path).unwrap_or_else(|_| path.clone()))
        .collect();

    let mut status = ExitStatus::Success;
    // `resume`: the last run stopped early (a change arrived during it),
    // so the next one runs even if the notebooks are back to what that run read.
    let (mut resume, mut first) = (false, true);
    loop {
        if interrupt::interrupted() {
            break;
        }
        {
            // An empty notebook is an editor caught between truncating and writing it; a
            // batch of events that changed nothing (the same bytes saved) runs nothing.
            let changed = first || resume || lock(&snapshot).any_changed().is_some();
            if settle(&notebooks) && changed {
                {
                    // Under the lock the event handler compares with: an event that comes
                    // now sees what this run reads, and only a real change stops the run.
                    let mut snapshot = lock(&snapshot);
                    for notebook in &notebooks {
                        snapshot
                            .files
                            .insert(notebook.clone(), files::file_hash(notebook));
                    }
                    stop.store(false, Ordering::SeqCst);
                }
                for notebook in &notebooks {
                    if let Some(dir) = notebook.parent() {
                        watch_dir(&mut watcher, &mut watched, dir);
                    }
                }
                let (run_status, finished) =
                    session.execute(&args.notebooks, &settings, printer, Some(stop.clone()));
                status = run_status;
                if interrupt::interrupted() {
                    break;
                }
                print_run(&finished, &settings, printer, args.notebooks.len());
                settings.hide_cached = true;
                first = false;
                track_inputs(&finished, &snapshot, &mut watcher, &mut watched);
                resume = stop.load(Ordering::SeqCst);
                if resume {
                    printer.status("changed while running: running the saved version");
                    continue;
                }
                // A file a cell read may have changed between its read and now.
                if let Some(path) = lock(&snapshot).any_changed() {
                    printer.status(&format!("{} changed: running", shown(&path)));
                    continue;
                }
                printer.status(&format!(
                    "watching {} (Ctrl-C to stop)",
                    args.notebooks
                        .iter()
                        .map(|path| path.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        match wait(&woken) {
            Wake::Interrupt => break,
            Wake::Changed => {
                if let Some(path) = lock(&snapshot).any_changed() {
                    printer.status(&format!("{} changed: running", shown(&path)));
                }
            }
        }
    }
    if let Err(err) = session.store().flush() {
        printer.warning(&format!("failed to save the cache: {err}"));
    }
    session.drop_workers();
    status
}

/// Whether the notebooks can be run: an empty one is an editor caught between truncating and
/// writing it, so wait for its content a moment (up to a second); `false` if it stays empty.
fn settle(notebooks: &[PathBuf]) -> bool {
    let empty = || {
        notebooks
            .iter()
            .any(|path| std::fs::metadata(path).is_ok_and(|meta| meta.len() == 0))
    };
    for _ in 0..40 {
        if !empty() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    !empty()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn shown(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}

/// Blocks until a change or an interrupt; coalesces changes already queued.
fn wait(woken: &Receiver<Wake>) -> Wake {
    let Ok(first) = woken.recv() else {
        return Wake::Interrupt;
    };
    let mut wake = first;
    while let Ok(next) = woken.try_recv() {
        if matches!(next, Wake::Interrupt) {
            wake = Wake::Interrupt;
        }
    }
    wake
}

fn start_watcher(
    args: &WatchArgs,
    snapshot: &Arc<Mutex<Snapshot>>,
    stop: &Arc<AtomicBool>,
    wake: mpsc::Sender<Wake>,
) -> Result<Watcher, notify::Error> {
    let snapshot = Arc::clone(snapshot);
    let stop = Arc::clone(stop);
    let handler = move |result: DebounceEventResult| {
        let events = match result {
            Ok(events) => events,
            Err(errors) => {
                for err in errors {
                    tracing::warn!("file watching: {err}");
                }
                return;
            }
        };
        let paths: Vec<PathBuf> = events
            .iter()
            .flat_map(|event| event.event.paths.iter().cloned())
            .collect();
        if lock(&snapshot).changed(&paths).is_some() {
            // Cells not started yet would run on the old version: start none.
            stop.store(true, Ordering::SeqCst);
            let _ = wake.send(Wake::Changed);
        }
    };
    let debounce = Duration::from_millis(args.debounce.max(1));
    match args.poll {
        None => notify_debouncer_full::new_debouncer(debounce, None, handler).map(Watcher::Native),
        Some(interval) => {
            let config = notify::Config::default()
                .with_poll_interval(Duration::from_millis(interval.max(10)))
                .with_compare_contents(true);
            notify_debouncer_full::new_debouncer_opt::<_, PollWatcher, RecommendedCache>(
                debounce,
                None,
                handler,
                RecommendedCache::new(),
                config,
            )
            .map(Watcher::Poll)
        }
    }
}

fn watch_dir(watcher: &mut Watcher, watched: &mut HashSet<PathBuf>, dir: &Path) {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if watched.contains(dir) {
        return;
    }
    match watcher.watch(dir) {
        Ok(()) => {
            watched.insert(dir.to_path_buf());
        }
        Err(err) => tracing::debug!("cannot watch `{}`: {err}", dir.display()),
    }
}

/// Watches the files the cells read (their folders), with the hashes the run used.
fn track_inputs(
    finished: &[Finished],
    snapshot: &Arc<Mutex<Snapshot>>,
    watcher: &mut Watcher,
    watched: &mut HashSet<PathBuf>,
) {
    let mut dirs = Vec::new();
    {
        let mut snapshot = lock(snapshot);
        snapshot.listings.clear();
        for run in finished {
            for outcome in &run.outcomes {
                for (path, hash) in &outcome.files {
                    match path.strip_suffix('/') {
                        Some(dir) => {
                            let dir = run.root.join(dir);
                            snapshot.listings.insert(dir.clone(), *hash);
                            dirs.push(dir);
                        }
                        None => {
                            let file = run.root.join(path);
                            if let Some(parent) = file.parent() {
                                dirs.push(parent.to_path_buf());
                            }
                            snapshot.files.insert(file, *hash);
                        }
                    }
                }
            }
        }
    }
    for dir in dirs {
        watch_dir(watcher, watched, &dir);
    }
}

/// Per-cell lines were streamed; now the failures and summary, or one JSON line.
fn print_run(finished: &[Finished], settings: &RunSettings, printer: &Printer, notebooks: usize) {
    if !settings.json {
        report(finished, settings, printer);
        return;
    }
    let reports: Vec<Value> = finished
        .iter()
        .map(|run| {
            let sources: Vec<&str> = run.sources.iter().map(String::as_str).collect();
            to_json(&run.path, &sources, &run.outcomes, &run.summary)
        })
        .collect();
    if reports.is_empty() {
        return; // nothing ran (an unreadable notebook, reported on stderr)
    }
    let value = if notebooks == 1 {
        reports.into_iter().next().unwrap_or(Value::Null)
    } else {
        Value::Array(reports)
    };
    let mut line = serde_json::to_string(&value).unwrap_or_default();
    line.push('\n');
    let _ = printer.stdout(&line);
}
