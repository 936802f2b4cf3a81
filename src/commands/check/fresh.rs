//! `nbmemo check --outputs-fresh`: are the outputs stored in `.ipynb` files those of the
//! current code? Nothing executes and no Python starts.
//!
//! `nbmemo run --inplace` records in each code cell's metadata the normalized code hash and the
//! key of the result it wrote: `"nbmemo": {"code": "<hex>", "key": "<hex>"}`. A code cell with
//! outputs or an execution count is stale when:
//! - it has no such record: its outputs were written by something else (Jupyter, nbconvert),
//!   so nbmemo cannot vouch for them (strict on purpose: the hook's promise is that committed
//!   outputs are current);
//! - its recorded code hash differs from the current one: its code changed (a comment or
//!   blank-line edit does not count, as for the cache);
//! - when the store and the environment that wrote the outputs are known: the key a run would
//!   give it now differs from the recorded one, that is, the values it reads changed (an
//!   upstream cell was edited and re-run without `--inplace`, say), and a run has stored a
//!   result under the new key (so the derivation here agreed with the scheduler's).
//!
//! The keys are derived as the scheduler derives them (`exec::scheduler::predict`): walking the
//! cells in order, each name read resolves to the latest dependency that produced it, as
//! recorded in the store under that dependency's current key. The environment is part of every
//! key, so the one that wrote the outputs is found among those the store knows (the current
//! interpreter's and those of the notebook's last run): the environment changing is not a
//! reason to call outputs stale. When no known environment reproduces any recorded key, or an
//! input cannot be resolved (its producer's result is not in the store), the key comparison is
//! skipped for that notebook or cell and only the code is compared.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::cli::CheckArgs;
use crate::db::{Database, cell_analysis, code_cells, notebook_graph, parsed_notebook};
use crate::environment::InterpreterCache;
use crate::exec::resolve_python;
use crate::exec::scheduler::lookup;
use crate::graph::Graph;
use crate::hash::ContentHash;
use crate::key::{cell_key, resident_hash};
use crate::notebook::{CellKind, NotebookFormat};
use crate::project;
use crate::report::Printer;
use crate::report::plan::first_line;
use crate::store::{NotebookState, RecordStatus, Store};

use super::super::{ExitStatus, notebook_input};

/// Why a cell's stored outputs are not those of its current code.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stale {
    /// Outputs without an `nbmemo` record.
    Unrecorded,
    /// A record that is not `{"code": hex, "key": hex}`.
    BadRecord,
    /// The normalized code changed.
    CodeChanged,
    /// The values it reads changed; the upstream cells whose results changed.
    InputsChanged(Vec<usize>),
}

/// What `--inplace` recorded in a cell's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    code: ContentHash,
    key: ContentHash,
}

/// A code cell as the check sees it.
struct CheckedCell {
    /// Outputs or an execution count are stored.
    has_outputs: bool,
    /// The record, `Err(())` when malformed, `Ok(None)` when absent.
    record: Result<Option<Record>, ()>,
}

/// Checks the notebooks (`.ipynb` only); reports every stale cell.
pub(super) fn check_outputs(
    notebooks: &[PathBuf],
    args: &CheckArgs,
    printer: &Printer,
) -> ExitStatus {
    let mut status = ExitStatus::Success;
    let cache = notebooks.first().and_then(|first| open_cache(first, args));
    let db = Database::default();
    let mut stale_notebooks = Vec::new();
    let mut n_stale = 0usize;
    let mut report = String::new();
    for path in notebooks {
        let contents = match std::fs::read(path) {
            Ok(contents) => contents,
            Err(err) => {
                printer.error(&format!("failed to read `{}`: {err}", path.display()));
                status = ExitStatus::Error;
                continue;
            }
        };
        let previous = cache.as_ref().and_then(|cache| {
            cache
                .store
                .get_notebook_state(&project::notebook_id(path))
                .ok()
                .flatten()
        });
        let file = notebook_input(&db, path.clone(), contents, previous.as_ref());
        let notebook = match parsed_notebook(&db, file) {
            Ok(notebook) => notebook,
            Err(err) => {
                printer.error(&err.to_string());
                status = ExitStatus::Error;
                continue;
            }
        };
        if !matches!(notebook.format, NotebookFormat::Ipynb { .. }) {
            continue;
        }
        let code: Vec<&crate::notebook::Cell> = notebook
            .cells
            .iter()
            .filter(|cell| cell.kind == CellKind::Code)
            .collect();
        let code_hashes: Vec<ContentHash> = code_cells(&db, file)
            .iter()
            .map(|&source| cell_analysis(&db, source).code_hash)
            .collect();
        let document_cells = notebook
            .document
            .as_ref()
            .and_then(|document| document.get("cells"))
            .and_then(Value::as_array);
        let cells: Vec<CheckedCell> = code
            .iter()
            .map(|cell| {
                let stored = document_cells.and_then(|cells| cells.get(cell.index));
                CheckedCell {
                    has_outputs: stored.is_some_and(has_outputs),
                    record: parse_record(cell.metadata.get("nbmemo")),
                }
            })
            .collect();
        let keys = cache.as_ref().and_then(|cache| {
            current_keys(
                notebook_graph(&db, file),
                &code_hashes,
                &cells,
                &cache.store,
                &cache.environments(previous.as_ref()),
                &project::project_root(path),
            )
        });
        let stale = staleness(&cells, &code_hashes, keys.as_ref());
        if stale.is_empty() {
            continue;
        }
        stale_notebooks.push(path.clone());
        n_stale += stale.len();
        for (index, why) in &stale {
            let source = code.get(*index).map_or("", |cell| cell.source.as_str());
            let _ = writeln!(
                report,
                "error: `{}`, cell {index} ({}): {}",
                path.display(),
                shorten(first_line(source), 40),
                describe(why)
            );
        }
    }
    if n_stale > 0 {
        let shown: Vec<String> = stale_notebooks
            .iter()
            .map(|path| path.display().to_string())
            .collect();
        let _ = writeln!(
            report,
            "hint: refresh the outputs with `nbmemo run --inplace {}`, or clear them",
            shown.join(" ")
        );
        printer.diagnostic(&report);
        status = worst(status, ExitStatus::Failure);
    }
    if !printer.is_quiet() {
        let checked = notebooks.len();
        let noun = if checked == 1 {
            "notebook"
        } else {
            "notebooks"
        };
        let line = if n_stale == 0 {
            format!("{checked} {noun} checked: outputs fresh\n")
        } else {
            format!(
                "{checked} {noun} checked: {n_stale} stale {} in {} {}\n",
                if n_stale == 1 { "cell" } else { "cells" },
                stale_notebooks.len(),
                if stale_notebooks.len() == 1 {
                    "notebook"
                } else {
                    "notebooks"
                }
            )
        };
        let _ = printer.stdout(&line);
    }
    status
}

fn describe(why: &Stale) -> String {
    match why {
        Stale::Unrecorded => {
            "outputs not written by `nbmemo run --inplace` (no `nbmemo` record in the cell metadata)"
                .to_owned()
        }
        Stale::BadRecord => "its `nbmemo` metadata record is malformed".to_owned(),
        Stale::CodeChanged => "code changed since its outputs were written".to_owned(),
        Stale::InputsChanged(upstream) if upstream.is_empty() => {
            "the values it reads changed since its outputs were written".to_owned()
        }
        Stale::InputsChanged(upstream) => {
            let cells: Vec<String> = upstream.iter().map(ToString::to_string).collect();
            format!(
                "the values it reads changed since its outputs were written (from cell {})",
                cells.join(", ")
            )
        }
    }
}

/// Every stale cell, in order.
fn staleness(
    cells: &[CheckedCell],
    code_hashes: &[ContentHash],
    keys: Option<&CurrentKeys>,
) -> Vec<(usize, Stale)> {
    let mut stale = Vec::new();
    for (index, (cell, code)) in cells.iter().zip(code_hashes).enumerate() {
        if !cell.has_outputs {
            continue;
        }
        let record = match cell.record {
            Ok(Some(record)) => record,
            Ok(None) => {
                stale.push((index, Stale::Unrecorded));
                continue;
            }
            Err(()) => {
                stale.push((index, Stale::BadRecord));
                continue;
            }
        };
        if record.code != *code {
            stale.push((index, Stale::CodeChanged));
            continue;
        }
        let Some(keys) = keys else {
            continue;
        };
        // Only a key the store holds a result for is trusted: a run derived the same key, so
        // this copy of the derivation agrees with the scheduler's.
        match keys.keys.get(index) {
            Some(Some(key)) if *key != record.key && keys.stored[index] => {
                let upstream: Vec<usize> = keys.providers[index]
                    .iter()
                    .copied()
                    .filter(|&provider| {
                        let recorded = cells
                            .get(provider)
                            .and_then(|cell| cell.record.ok().flatten())
                            .map(|record| record.key);
                        recorded != keys.keys[provider]
                    })
                    .collect();
                stale.push((index, Stale::InputsChanged(upstream)));
            }
            _ => {}
        }
    }
    stale
}

/// Whether an `.ipynb` cell stores outputs or an execution count.
fn has_outputs(cell: &Value) -> bool {
    let outputs = cell
        .get("outputs")
        .and_then(Value::as_array)
        .is_some_and(|outputs| !outputs.is_empty());
    let counted = cell
        .get("execution_count")
        .is_some_and(|count| !count.is_null());
    outputs || counted
}

fn parse_record(value: Option<&Value>) -> Result<Option<Record>, ()> {
    let Some(value) = value else {
        return Ok(None);
    };
    let hash = |field: &str| {
        value
            .get(field)
            .and_then(Value::as_str)
            .and_then(|hex| hex.parse::<ContentHash>().ok())
    };
    match (hash("code"), hash("key")) {
        (Some(code), Some(key)) => Ok(Some(Record { code, key })),
        _ => Err(()),
    }
}

/// The store, and the current interpreter's environment if it is remembered.
struct Cache {
    store: Store,
    current: Option<ContentHash>,
}

impl Cache {
    /// The environments that may have written the outputs: the current interpreter's, then
    /// those of the notebook's last run.
    fn environments(&self, previous: Option<&NotebookState>) -> Vec<ContentHash> {
        let mut envs: Vec<ContentHash> = self.current.into_iter().collect();
        for trace in previous
            .into_iter()
            .flat_map(|state| &state.traces)
            .flatten()
        {
            if !envs.contains(&trace.env) {
                envs.push(trace.env);
            }
        }
        envs
    }
}

/// The store, when a previous run left one (without starting Python: the current environment
/// comes from `interpreters.json` or not at all).
fn open_cache(first: &Path, args: &CheckArgs) -> Option<Cache> {
    let cache_dir = project::cache_dir(first, args.cache_dir.as_deref());
    if !cache_dir.exists() {
        return None;
    }
    let python = resolve_python(args.python.as_deref());
    let current = InterpreterCache::load(&cache_dir)
        .lookup(&python)
        .map(|env| env.fingerprint);
    match Store::open(&cache_dir, Duration::from_secs(5)) {
        Ok(store) => Some(Cache { store, current }),
        Err(err) => {
            tracing::warn!("cannot read the cache, comparing code only: {err}");
            None
        }
    }
}

/// The keys a run would give the cells now, under the environment that wrote the outputs.
struct CurrentKeys {
    /// Per code cell: its key, `None` when an input cannot be resolved from the store.
    keys: Vec<Option<ContentHash>>,
    /// Per code cell: the cells its inputs come from.
    providers: Vec<Vec<usize>>,
    /// Per code cell: whether the store holds a result under its key.
    stored: Vec<bool>,
}

/// A value as a later cell would receive it.
#[derive(Debug, Clone, Copy)]
enum Emitted {
    Artifact(ContentHash),
    Deleted,
    /// The producer's result is not in the store.
    Unknown,
}

/// Finds the environment that wrote the outputs and the keys under it. An environment is the
/// writer when it reproduces the recorded key of a cell that had no inputs when it was written
/// (`key(env, recorded code, [])`, whatever the cell's code is now), or, failing that, when the
/// keys derived under it match recorded ones (the most matches wins). `None` when no known
/// environment qualifies.
fn current_keys(
    graph: &Graph,
    code_hashes: &[ContentHash],
    cells: &[CheckedCell],
    store: &Store,
    environments: &[ContentHash],
    root: &std::path::Path,
) -> Option<CurrentKeys> {
    let hasher = crate::files::FileHasher::default();
    let records: Vec<Record> = cells
        .iter()
        .filter_map(|cell| cell.record.ok().flatten())
        .collect();
    let mut best: Option<((bool, usize), CurrentKeys)> = None;
    for env in environments {
        let writes_roots = records
            .iter()
            .any(|record| cell_key(env, &record.code, &[], &[]) == record.key);
        let keys = keys_under(graph, code_hashes, store, env, root, &hasher);
        let matching = keys
            .keys
            .iter()
            .zip(cells)
            .filter(|(key, cell)| {
                key.is_some() && cell.record.ok().flatten().map(|record| record.key) == **key
            })
            .count();
        let score = (writes_roots, matching);
        if score > (false, 0) && best.as_ref().is_none_or(|(best, _)| score > *best) {
            best = Some((score, keys));
        }
    }
    if best.is_none() {
        tracing::info!("no known environment reproduces the recorded keys: comparing code only");
    }
    best.map(|(_, keys)| keys)
}

/// The keys under one environment, derived as `exec::scheduler::predict` derives them.
fn keys_under(
    graph: &Graph,
    code_hashes: &[ContentHash],
    store: &Store,
    env: &ContentHash,
    root: &std::path::Path,
    hasher: &crate::files::FileHasher,
) -> CurrentKeys {
    let n_cells = graph.cells.len().min(code_hashes.len());
    let ancestors = ancestors(graph);
    let mut emitted: Vec<HashMap<String, Emitted>> = vec![HashMap::new(); n_cells];
    let mut keys = Vec::with_capacity(n_cells);
    let mut providers = Vec::with_capacity(n_cells);
    let mut stored = Vec::with_capacity(n_cells);
    for idx in 0..n_cells {
        let node = &graph.cells[idx];
        let mut pairs: Vec<(&str, ContentHash)> = Vec::new();
        let mut from = BTreeSet::new();
        let mut unknown = false;
        for name in &node.reads {
            for &ancestor in &ancestors[idx] {
                if let Some(value) = emitted[ancestor].get(name.as_str()) {
                    match value {
                        Emitted::Artifact(hash) => pairs.push((name, *hash)),
                        Emitted::Deleted => {}
                        Emitted::Unknown => unknown = true,
                    }
                    from.insert(ancestor);
                    break;
                }
            }
        }
        providers.push(from.into_iter().collect());
        // The key a run would use: found in the store in two steps (files included), or, for
        // a cell that would run, its key without files (which no recorded key equals when the
        // recorded run read files: their record was not found, so something changed).
        let first_key = (!unknown).then(|| cell_key(env, &code_hashes[idx], &pairs, &[]));
        let record = first_key.and_then(|_| {
            lookup(store, hasher, root, env, &code_hashes[idx], &pairs)
                .ok()
                .flatten()
                .map(|hit| (hit.key, hit.record))
        });
        let key = record.as_ref().map(|(key, _)| *key).or(first_key);
        stored.push(record.is_some());
        match record {
            Some((key, record)) => {
                if record.status != RecordStatus::Error {
                    for group in &record.values {
                        for name in &group.names {
                            emitted[idx].insert(name.clone(), Emitted::Artifact(group.artifact));
                        }
                    }
                    for name in &record.deleted {
                        emitted[idx].insert(name.clone(), Emitted::Deleted);
                    }
                    for value in &record.unpicklable {
                        emitted[idx].insert(
                            value.name.clone(),
                            Emitted::Artifact(resident_hash(&key, &value.name)),
                        );
                    }
                }
            }
            None => {
                let barrier_reads = node.is_barrier().then_some(&node.reads);
                for name in node
                    .writes
                    .iter()
                    .chain(&node.may_mutate)
                    .chain(barrier_reads.into_iter().flatten())
                {
                    emitted[idx].insert(name.clone(), Emitted::Unknown);
                }
            }
        }
        keys.push(key);
    }
    CurrentKeys {
        keys,
        providers,
        stored,
    }
}

/// Transitive dependencies of each cell, latest first.
fn ancestors(graph: &Graph) -> Vec<Vec<usize>> {
    let mut sets: Vec<BTreeSet<usize>> = Vec::with_capacity(graph.cells.len());
    for node in &graph.cells {
        let mut set = BTreeSet::new();
        for &dep in node.depends_on.keys() {
            set.insert(dep);
            if let Some(deps) = sets.get(dep) {
                set.extend(deps.iter().copied());
            }
        }
        sets.push(set);
    }
    sets.into_iter()
        .map(|set| set.into_iter().rev().collect())
        .collect()
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(max - 1).collect();
    short.push('…');
    short
}

fn worst(a: ExitStatus, b: ExitStatus) -> ExitStatus {
    match (a, b) {
        (ExitStatus::Error, _) | (_, ExitStatus::Error) => ExitStatus::Error,
        (ExitStatus::Failure, _) | (_, ExitStatus::Failure) => ExitStatus::Failure,
        _ => ExitStatus::Success,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(byte: u8) -> ContentHash {
        ContentHash([byte; 32])
    }

    fn cell(has_outputs: bool, record: Option<(u8, u8)>) -> CheckedCell {
        CheckedCell {
            has_outputs,
            record: Ok(record.map(|(code, key)| Record {
                code: h(code),
                key: h(key),
            })),
        }
    }

    #[test]
    fn records_parse_or_are_malformed() {
        let good = serde_json::json!({"code": h(1).to_string(), "key": h(2).to_string()});
        assert_eq!(
            parse_record(Some(&good)),
            Ok(Some(Record {
                code: h(1),
                key: h(2)
            }))
        );
        assert_eq!(parse_record(None), Ok(None));
        assert_eq!(
            parse_record(Some(&serde_json::json!({"code": "xyz"}))),
            Err(())
        );
        assert_eq!(parse_record(Some(&serde_json::json!("text"))), Err(()));
    }

    #[test]
    fn outputs_or_an_execution_count_count_as_stored() {
        assert!(!has_outputs(
            &serde_json::json!({"outputs": [], "execution_count": null})
        ));
        assert!(has_outputs(
            &serde_json::json!({"outputs": [], "execution_count": 3})
        ));
        assert!(has_outputs(
            &serde_json::json!({"outputs": [{"output_type": "stream"}]})
        ));
    }

    #[test]
    fn staleness_by_record_code_and_key() {
        let cells = [
            cell(true, Some((1, 10))), // fresh
            cell(true, Some((9, 11))), // code changed
            cell(true, None),          // not written by nbmemo
            cell(false, None),         // no outputs: never stale
            cell(true, Some((5, 13))), // reads cell 1, whose result changed
            cell(true, Some((6, 14))), // its key is not in the store: not trusted
        ];
        let code = [h(1), h(2), h(3), h(4), h(5), h(6)];
        assert_eq!(
            staleness(&cells, &code, None),
            vec![(1, Stale::CodeChanged), (2, Stale::Unrecorded)],
            "without the store, code only"
        );
        let keys = CurrentKeys {
            keys: vec![
                Some(h(10)),
                Some(h(21)),
                None,
                None,
                Some(h(23)),
                Some(h(24)),
            ],
            providers: vec![vec![], vec![0], vec![], vec![], vec![0, 1], vec![1]],
            stored: vec![true, true, false, false, true, false],
        };
        assert_eq!(
            staleness(&cells, &code, Some(&keys)),
            vec![
                (1, Stale::CodeChanged),
                (2, Stale::Unrecorded),
                (4, Stale::InputsChanged(vec![1])),
            ]
        );
    }
}
