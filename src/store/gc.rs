//! The store's lifecycle: what it holds ([`Store::stats`]), garbage collection
//! ([`Store::collect`]), and clearing ([`Store::clear`], [`Store::clear_notebook`]).
//!
//! Collection is mark and sweep under the store's lock (cache-format/v3.md, "Garbage
//! collection"): the records the last runs of each notebook need (their states' `recent_runs`)
//! are protected, records used within the maximum age are kept, then the least recently used of
//! the others go until the store fits its size bound. Artifacts no remaining record refers to,
//! manifests that find no remaining record, and stray files in `blobs/` go with them. The
//! database is compacted last, since redb's file never shrinks by itself.
//!
//! The store is held by one process at a time, so no running nbmemo can be using what a
//! collection removes; a run collects (when the store is over its bound) only after its own
//! notebook states, which protect what it used, are written.

use std::collections::{HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redb::{ReadableDatabase, ReadableTable};

use super::blobs::ZSTD_SUFFIX;
use super::format::{
    self, ARTIFACTS, ArtifactEntry, MANIFESTS, META, META_CREATED, META_LAST_GC, NOTEBOOKS,
    RECORD_MANIFESTS, RECORD_USED, RECORDS, RUNS, StoredRecord,
};
use super::{Error, NotebookState, RunSummary, Store, begin_write, io_error, now_unix_s};
use crate::hash::ContentHash;

/// redb's file overhead that does not grow with the payload (a compacted empty database is
/// 12 KiB here), used to predict the size of the file after compaction.
const DB_FIXED_BYTES: u64 = 64 * 1024;

/// The first guess of the compacted database's size per stored byte (measured: 1.3 for values
/// of 50 KiB to 1.8 for values of 1 KiB); a collection that misses its bound measures the real
/// factor and evicts again.
const DB_FACTOR_GUESS: f64 = 1.6;

/// How many runs [`Store::stats`] reports the hit rate of.
const STATS_RUNS: usize = 20;

/// How many of the largest artifacts [`Store::stats`] lists.
const STATS_LARGEST: usize = 10;

/// What [`Store::collect`] keeps.
#[derive(Debug, Clone)]
pub struct GcPolicy {
    /// Keep every record (and manifest) the last this many runs of each notebook needed.
    pub keep_runs: usize,
    /// Keep records used (stored or read) within this long, unless the size bound needs the
    /// room.
    pub max_age: Duration,
    /// Bound the bytes on disk (database, blobs) to this many, evicting the least recently used
    /// records that no kept run needs.
    pub max_size: Option<u64>,
    /// The project root: the state of a notebook that no longer exists there and was not run
    /// within `max_age` is dropped (with what only it protected). `None` keeps every state.
    pub project_root: Option<PathBuf>,
    /// Leave the database room to grow within `max_size`: redb's file, compacted to the end of
    /// its last page, doubles at the next write (its growth policy), so a collection that must
    /// still fit after the next run counts the database twice.
    pub room_to_grow: bool,
}

/// Bytes on disk of a store: file lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// `cache.redb`.
    pub db_bytes: u64,
    /// Every file in `blobs/`.
    pub blob_bytes: u64,
    /// How many files `blobs/` holds.
    pub blob_files: u64,
    /// Other files of the version directory (the lock and pid files, a damaged database kept
    /// for diagnosis).
    pub other_bytes: u64,
}

impl Usage {
    /// All bytes on disk.
    pub fn total(&self) -> u64 {
        self.db_bytes + self.blob_bytes + self.other_bytes
    }
}

/// Where an artifact is used: by which record, and as what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactUse {
    /// The record's key.
    pub record: ContentHash,
    /// The notebook whose last run used the record, when one did.
    pub notebook: Option<String>,
    /// The record's code cell (0-based among code cells) in that notebook.
    pub cell: Option<usize>,
    /// `values` (the variable names), `file` (the path written) or `outputs`.
    pub kind: &'static str,
    /// The variable names (comma-separated), the path, or empty for outputs.
    pub name: String,
}

/// One of the largest artifacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LargeArtifact {
    /// Its address.
    pub hash: ContentHash,
    /// Its length.
    pub bytes: u64,
    /// What it takes in the store (compressed, or in the database).
    pub stored_bytes: u64,
    /// `inline`, `inline-zstd`, `blob` or `blob-zstd`.
    pub encoding: &'static str,
    /// Who uses it.
    pub uses: Vec<ArtifactUse>,
}

/// One notebook the store has a state for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotebookStats {
    /// The notebook id.
    pub notebook: String,
    /// Code cells in its last run.
    pub cells: usize,
    /// How many runs its state remembers.
    pub recent_runs: usize,
    /// When it was last run.
    pub updated_unix_s: u64,
}

/// What [`Store::stats`] reports.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// The version directory.
    pub root: PathBuf,
    /// Bytes on disk.
    pub usage: Usage,
    /// Bytes of payload: artifacts (uncompressed) and the JSON of records, notebook states,
    /// manifests and run summaries (uncompressed).
    pub payload_bytes: u64,
    /// Of which artifacts.
    pub artifact_bytes: u64,
    /// What the artifacts take stored (after compression).
    pub artifact_stored_bytes: u64,
    /// Cell records.
    pub records: u64,
    /// Records that the last run of some notebook used.
    pub records_current: u64,
    /// Artifacts, by encoding: inline, inline compressed, blob, blob compressed.
    pub artifacts: [u64; 4],
    /// Manifests.
    pub manifests: u64,
    /// Artifacts referred to by more than one record.
    pub shared_artifacts: u64,
    /// Artifacts referred to by the records of more than one notebook.
    pub shared_between_notebooks: u64,
    /// Bytes that storing shared artifacts once saves (each extra reference's length).
    pub dedup_saved_bytes: u64,
    /// The notebooks.
    pub notebooks: Vec<NotebookStats>,
    /// The newest runs (newest first).
    pub recent_runs: Vec<RunSummary>,
    /// The largest artifacts, largest first.
    pub largest: Vec<LargeArtifact>,
    /// When the store was created.
    pub created_unix_s: Option<u64>,
    /// When it was last collected.
    pub last_gc_unix_s: Option<u64>,
}

impl Stats {
    /// Bytes on disk over payload (0 for an empty store).
    pub fn disk_ratio(&self) -> f64 {
        ratio(self.usage.total(), self.payload_bytes)
    }

    /// `(hits, cells that ran or were replayed)` over the recent runs: cells replayed from the
    /// cache against cells replayed, run or failed (skipped cells count for neither).
    pub fn hits(&self) -> (u64, u64) {
        let mut hits = 0;
        let mut looked_up = 0;
        for run in &self.recent_runs {
            for notebook in &run.notebooks {
                hits += notebook.cached;
                looked_up += notebook.cached + notebook.ran + notebook.failed;
            }
        }
        (hits, looked_up)
    }
}

/// What [`Store::collect`] or a clear did.
#[derive(Debug, Clone, Default)]
pub struct Collected {
    /// Bytes on disk before.
    pub before: Usage,
    /// Bytes on disk after.
    pub after: Usage,
    /// Payload after.
    pub payload_after: u64,
    /// Records removed.
    pub records_removed: u64,
    /// Records kept.
    pub records_kept: u64,
    /// Records kept because a kept run needs them.
    pub records_protected: u64,
    /// Artifacts removed.
    pub artifacts_removed: u64,
    /// Artifacts kept.
    pub artifacts_kept: u64,
    /// Manifests removed.
    pub manifests_removed: u64,
    /// Notebook states removed.
    pub notebooks_removed: u64,
    /// Stray files removed from `blobs/` (temporary files, blobs without an entry) and a
    /// damaged database kept for diagnosis.
    pub stray_files_removed: u64,
    /// The size bound could not be met: what the kept runs need is larger.
    pub over_bound: bool,
    /// How long it took.
    pub duration: Duration,
}

/// The result of [`Store::clear`] and [`Store::clear_notebook`].
pub type Cleared = Collected;

/// A record as the scan found it.
struct RecordInfo {
    /// Bytes of its value in the database.
    stored: u64,
    /// Bytes of its JSON payload.
    payload: u64,
    /// Last use (its `record_used` entry, else its creation time).
    used: u64,
    /// The artifacts it refers to, with what they are to it. Empty for a damaged record.
    refs: Vec<(ContentHash, &'static str, String)>,
    /// It could not be read back.
    damaged: bool,
}

/// An artifact as the scan found it.
struct ArtifactInfo {
    len: u64,
    /// Bytes of its value in the database.
    value: u64,
    /// Bytes of its blob file, when it is a blob (as its entry says).
    blob: Option<u64>,
    encoding: &'static str,
    /// Its blob file name in `blobs/`, when it is a blob.
    blob_name: Option<String>,
}

/// Everything the database holds, read in one transaction.
#[derive(Default)]
struct Scan {
    artifacts: HashMap<ContentHash, ArtifactInfo>,
    /// Artifact entries that do not decode.
    malformed_artifacts: Vec<ContentHash>,
    records: HashMap<ContentHash, RecordInfo>,
    /// `record_used` entries of records that are gone.
    stray_used: Vec<ContentHash>,
    record_manifests: HashMap<ContentHash, ContentHash>,
    /// Manifest key → (stored bytes, payload bytes).
    manifests: HashMap<ContentHash, (u64, u64)>,
    /// Notebook id → (state, stored bytes, payload bytes); a damaged state has no state.
    notebooks: Vec<(String, Option<NotebookState>, u64, u64)>,
    /// Run summaries, newest first, with their payload bytes.
    runs: Vec<(RunSummary, u64)>,
    runs_payload: u64,
    runs_stored: u64,
    created: Option<u64>,
    last_gc: Option<u64>,
}

impl Scan {
    fn payload(&self) -> u64 {
        self.artifacts.values().map(|info| info.len).sum::<u64>()
            + self.records.values().map(|info| info.payload).sum::<u64>()
            + self
                .manifests
                .values()
                .map(|(_, payload)| payload)
                .sum::<u64>()
            + self
                .notebooks
                .iter()
                .map(|(_, _, _, payload)| payload)
                .sum::<u64>()
            + self.runs_payload
    }

    /// The keys the first `keep_runs` runs of every notebook need.
    fn protected(&self, keep_runs: usize, dropped: &HashSet<String>) -> HashSet<ContentHash> {
        let mut keys = HashSet::new();
        if keep_runs == 0 {
            return keys;
        }
        for (id, state, _, _) in &self.notebooks {
            let Some(state) = state else { continue };
            if dropped.contains(id) {
                continue;
            }
            keys.extend(state.cell_keys.iter().flatten().copied());
            for run in state.recent_runs.iter().take(keep_runs) {
                keys.extend(run.keys.iter().copied());
            }
        }
        keys
    }
}

/// What to remove, decided from a [`Scan`].
#[derive(Default)]
struct Removal {
    records: HashSet<ContentHash>,
    notebooks: HashSet<String>,
    /// Manifests to keep whatever records remain (the kept runs need them).
    protected: HashSet<ContentHash>,
    clear_runs: bool,
}

/// The artifacts and manifests that survive a removal, and the database bytes that remain.
struct Survivors {
    artifacts: HashSet<ContentHash>,
    manifests: HashSet<ContentHash>,
}

fn survivors(scan: &Scan, removal: &Removal) -> Survivors {
    let mut artifacts = HashSet::new();
    let mut manifests: HashSet<ContentHash> = scan
        .manifests
        .keys()
        .filter(|key| removal.protected.contains(key))
        .copied()
        .collect();
    for (key, info) in &scan.records {
        if removal.records.contains(key) {
            continue;
        }
        artifacts.extend(info.refs.iter().map(|(hash, _, _)| *hash));
        if let Some(first) = scan.record_manifests.get(key)
            && scan.manifests.contains_key(first)
        {
            manifests.insert(*first);
        }
    }
    artifacts.retain(|hash| scan.artifacts.contains_key(hash));
    Survivors {
        artifacts,
        manifests,
    }
}

fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

impl Store {
    /// The bytes the store takes on disk (cheap: file sizes only).
    pub fn usage(&self) -> Result<Usage, Error> {
        let mut usage = Usage::default();
        let entries = match fs_err::read_dir(&self.layout.root) {
            Ok(entries) => entries,
            Err(source) => return Err(io_error(&self.layout.root, source)),
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_file() {
                if path == self.layout.db {
                    usage.db_bytes = meta.len();
                } else {
                    usage.other_bytes += meta.len();
                }
            }
        }
        if let Ok(entries) = fs_err::read_dir(self.blobs.dir()) {
            for entry in entries.flatten() {
                if let Ok(meta) = entry.metadata()
                    && meta.is_file()
                {
                    usage.blob_bytes += meta.len();
                    usage.blob_files += 1;
                }
            }
        }
        Ok(usage)
    }

    /// Reads the whole database in one transaction. `None` when the store is disabled.
    fn scan(&self) -> Result<Option<Scan>, Error> {
        let blob_sizes = self.blob_sizes();
        self.with_db(|db| {
            let txn = db.begin_read()?;
            let mut scan = Scan::default();
            let meta = txn.open_table(META)?;
            let read_u64 = |name: &str| -> Result<Option<u64>, redb::Error> {
                Ok(meta
                    .get(name)?
                    .and_then(|value| <[u8; 8]>::try_from(value.value()).ok())
                    .map(u64::from_le_bytes))
            };
            scan.created = read_u64(META_CREATED)?;
            scan.last_gc = read_u64(META_LAST_GC)?;
            for entry in txn.open_table(ARTIFACTS)?.iter()? {
                let (key, value) = entry?;
                let hash = ContentHash(*key.value());
                let value = value.value();
                let Some(decoded) = ArtifactEntry::decode(value) else {
                    scan.malformed_artifacts.push(hash);
                    continue;
                };
                let (encoding, blob_name) = match decoded {
                    ArtifactEntry::Inline(_) => ("inline", None),
                    ArtifactEntry::InlineZstd { .. } => ("inline-zstd", None),
                    ArtifactEntry::Blob { .. } => ("blob", Some(hash.to_string())),
                    ArtifactEntry::BlobZstd { .. } => {
                        ("blob-zstd", Some(format!("{hash}{ZSTD_SUFFIX}")))
                    }
                };
                let blob = match decoded {
                    ArtifactEntry::Blob { len } => Some(len),
                    ArtifactEntry::BlobZstd { stored, .. } => Some(stored),
                    _ => None,
                };
                // A blob whose file is gone or has another length counts as what it takes.
                let blob = blob.map(|expected| {
                    blob_name
                        .as_ref()
                        .and_then(|name| blob_sizes.get(name))
                        .copied()
                        .unwrap_or(0)
                        .min(expected)
                });
                scan.artifacts.insert(
                    hash,
                    ArtifactInfo {
                        len: decoded.len(),
                        value: value.len() as u64,
                        blob,
                        encoding,
                        blob_name,
                    },
                );
            }
            let used_table = txn.open_table(RECORD_USED)?;
            let mut used: HashMap<ContentHash, u64> = HashMap::new();
            for entry in used_table.iter()? {
                let (key, value) = entry?;
                used.insert(ContentHash(*key.value()), value.value());
            }
            for entry in txn.open_table(RECORDS)?.iter()? {
                let (key, value) = entry?;
                let key = ContentHash(*key.value());
                let value = value.value();
                let info = match format::unseal::<StoredRecord>(&key.0, value) {
                    Ok(stored) => {
                        let mut refs = Vec::new();
                        for group in &stored.record.values {
                            refs.push((group.artifact, "values", group.names.join(", ")));
                        }
                        for output in &stored.record.files_written {
                            if let Some(artifact) = output.artifact {
                                refs.push((artifact, "file", output.path.clone()));
                            }
                        }
                        if let Some(outputs) = stored.outputs_artifact {
                            refs.push((outputs, "outputs", String::new()));
                        }
                        RecordInfo {
                            stored: value.len() as u64,
                            payload: format::sealed_payload_len(value).unwrap_or(0),
                            used: used
                                .get(&key)
                                .copied()
                                .unwrap_or(stored.record.created_unix_s),
                            refs,
                            damaged: false,
                        }
                    }
                    Err(_) => RecordInfo {
                        stored: value.len() as u64,
                        payload: 0,
                        used: 0,
                        refs: Vec::new(),
                        damaged: true,
                    },
                };
                scan.records.insert(key, info);
            }
            scan.stray_used = used
                .keys()
                .filter(|key| !scan.records.contains_key(key))
                .copied()
                .collect();
            for entry in txn.open_table(RECORD_MANIFESTS)?.iter()? {
                let (key, value) = entry?;
                scan.record_manifests
                    .insert(ContentHash(*key.value()), ContentHash(*value.value()));
            }
            for entry in txn.open_table(MANIFESTS)?.iter()? {
                let (key, value) = entry?;
                let value = value.value();
                scan.manifests.insert(
                    ContentHash(*key.value()),
                    (
                        value.len() as u64,
                        format::sealed_payload_len(value).unwrap_or(0),
                    ),
                );
            }
            for entry in txn.open_table(NOTEBOOKS)?.iter()? {
                let (key, value) = entry?;
                let id = key.value().to_owned();
                let value = value.value();
                let state = format::unseal::<NotebookState>(id.as_bytes(), value).ok();
                scan.notebooks.push((
                    id,
                    state,
                    value.len() as u64,
                    format::sealed_payload_len(value).unwrap_or(0),
                ));
            }
            for entry in txn.open_table(RUNS)?.iter()?.rev() {
                let (key, value) = entry?;
                let value = value.value();
                scan.runs_payload += format::sealed_payload_len(value).unwrap_or(0);
                scan.runs_stored += value.len() as u64;
                if let Ok(run) = format::unseal::<RunSummary>(&key.value().to_le_bytes(), value) {
                    let payload = format::sealed_payload_len(value).unwrap_or(0);
                    scan.runs.push((run, payload));
                }
            }
            Ok(scan)
        })
    }

    /// The length of every file in `blobs/`, by name.
    fn blob_sizes(&self) -> HashMap<String, u64> {
        let mut sizes = HashMap::new();
        if let Ok(entries) = fs_err::read_dir(self.blobs.dir()) {
            for entry in entries.flatten() {
                if let Ok(meta) = entry.metadata()
                    && meta.is_file()
                {
                    sizes.insert(entry.file_name().to_string_lossy().into_owned(), meta.len());
                }
            }
        }
        sizes
    }

    /// What the store holds: entries, artifacts, bytes on disk and of payload, the hit rate of
    /// recent runs, the largest artifacts and who uses them, and how many artifacts are shared.
    pub fn stats(&self) -> Result<Stats, Error> {
        let usage = self.usage()?;
        let Some(scan) = self.scan()? else {
            return Ok(Stats {
                root: self.layout.root.clone(),
                usage,
                ..Stats::default()
            });
        };
        // Which notebooks' last runs used each record, and as which cell.
        let mut current: HashMap<ContentHash, Vec<(String, usize)>> = HashMap::new();
        let mut notebooks = Vec::new();
        for (id, state, _, _) in &scan.notebooks {
            let Some(state) = state else { continue };
            for (cell, key) in state.cell_keys.iter().enumerate() {
                if let Some(key) = key {
                    current.entry(*key).or_default().push((id.clone(), cell));
                }
            }
            notebooks.push(NotebookStats {
                notebook: id.clone(),
                cells: state.cell_keys.len(),
                recent_runs: state.recent_runs.len(),
                updated_unix_s: state.updated_unix_s,
            });
        }
        notebooks.sort_by(|a, b| a.notebook.cmp(&b.notebook));
        let mut uses: HashMap<ContentHash, Vec<ArtifactUse>> = HashMap::new();
        for (key, info) in &scan.records {
            let places = current.get(key).map_or(&[][..], Vec::as_slice);
            for (hash, kind, name) in &info.refs {
                let users = uses.entry(*hash).or_default();
                if places.is_empty() {
                    users.push(ArtifactUse {
                        record: *key,
                        notebook: None,
                        cell: None,
                        kind,
                        name: name.clone(),
                    });
                }
                for (notebook, cell) in places {
                    users.push(ArtifactUse {
                        record: *key,
                        notebook: Some(notebook.clone()),
                        cell: Some(*cell),
                        kind,
                        name: name.clone(),
                    });
                }
            }
        }
        let mut stats = Stats {
            root: self.layout.root.clone(),
            usage,
            payload_bytes: scan.payload(),
            records: scan.records.len() as u64,
            records_current: scan
                .records
                .keys()
                .filter(|key| current.contains_key(key))
                .count() as u64,
            manifests: scan.manifests.len() as u64,
            notebooks,
            recent_runs: scan
                .runs
                .iter()
                .take(STATS_RUNS)
                .map(|(run, _)| run.clone())
                .collect(),
            created_unix_s: scan.created,
            last_gc_unix_s: scan.last_gc,
            ..Stats::default()
        };
        for (hash, info) in &scan.artifacts {
            stats.artifact_bytes += info.len;
            stats.artifact_stored_bytes += info.blob.unwrap_or(info.value.saturating_sub(1));
            let slot = match info.encoding {
                "inline" => 0,
                "inline-zstd" => 1,
                "blob" => 2,
                _ => 3,
            };
            stats.artifacts[slot] += 1;
            let Some(users) = uses.get(hash) else {
                continue;
            };
            let records: HashSet<&ContentHash> = users.iter().map(|user| &user.record).collect();
            if records.len() > 1 {
                stats.shared_artifacts += 1;
                stats.dedup_saved_bytes += info.len * (records.len() as u64 - 1);
            }
            let notebooks: HashSet<&String> = users
                .iter()
                .filter_map(|user| user.notebook.as_ref())
                .collect();
            if notebooks.len() > 1 {
                stats.shared_between_notebooks += 1;
            }
        }
        let mut largest: Vec<(&ContentHash, &ArtifactInfo)> = scan.artifacts.iter().collect();
        largest.sort_by(|a, b| b.1.len.cmp(&a.1.len).then(a.0.cmp(b.0)));
        stats.largest = largest
            .into_iter()
            .take(STATS_LARGEST)
            .map(|(hash, info)| {
                let mut users = uses.remove(hash).unwrap_or_default();
                // Uses by a notebook's last run first.
                users.sort_by(|a, b| {
                    (a.notebook.is_none(), &a.notebook, a.cell, &a.name).cmp(&(
                        b.notebook.is_none(),
                        &b.notebook,
                        b.cell,
                        &b.name,
                    ))
                });
                LargeArtifact {
                    hash: *hash,
                    bytes: info.len,
                    stored_bytes: info.blob.unwrap_or(info.value.saturating_sub(1)),
                    encoding: info.encoding,
                    uses: users,
                }
            })
            .collect();
        Ok(stats)
    }

    /// Collects garbage (see the module docs): keeps what the last `policy.keep_runs` runs of
    /// each notebook need and what was used within `policy.max_age`, then evicts the least
    /// recently used of the rest until the store fits `policy.max_size`; sweeps unreferenced
    /// artifacts, manifests and stray blob files; compacts the database.
    pub fn collect(&mut self, policy: &GcPolicy) -> Result<Collected, Error> {
        let start = Instant::now();
        self.flush()?;
        let before = self.usage()?;
        let now = now_unix_s();
        let max_age = policy.max_age.as_secs();
        let recent = |time: u64| time.saturating_add(max_age) >= now && max_age > 0;
        let mut factor = DB_FACTOR_GUESS;
        let mut done = Collected {
            before,
            ..Collected::default()
        };
        // At most three passes: the size of the compacted database is predicted, then measured.
        for _pass in 0..3 {
            let Some(scan) = self.scan()? else {
                return Ok(done);
            };
            let dropped: HashSet<String> = scan
                .notebooks
                .iter()
                .filter(|(id, state, _, _)| {
                    let stale = state
                        .as_ref()
                        .is_none_or(|state| !recent(state.updated_unix_s));
                    stale && notebook_is_gone(policy.project_root.as_deref(), id)
                })
                .map(|(id, _, _, _)| id.clone())
                .collect();
            let protected = scan.protected(policy.keep_runs, &dropped);
            let mut removal = Removal {
                notebooks: dropped,
                protected: protected.clone(),
                ..Removal::default()
            };
            let mut candidates: Vec<(u64, ContentHash)> = Vec::new();
            for (key, info) in &scan.records {
                if info.damaged {
                    removal.records.insert(*key);
                } else if protected.contains(key) {
                } else if recent(info.used) {
                    candidates.push((info.used, *key));
                } else {
                    removal.records.insert(*key);
                }
            }
            if let Some(bound) = policy.max_size {
                candidates.sort();
                let db_factor = if policy.room_to_grow {
                    2.0 * factor
                } else {
                    factor
                };
                done.over_bound = !evict_to_fit(&scan, &mut removal, &candidates, bound, db_factor);
            }
            let survivors = survivors(&scan, &removal);
            let pass = self.apply(&scan, &removal, &survivors)?;
            done.records_removed += pass.records_removed;
            done.artifacts_removed += pass.artifacts_removed;
            done.manifests_removed += pass.manifests_removed;
            done.notebooks_removed += pass.notebooks_removed;
            done.stray_files_removed += pass.stray_files_removed;
            done.records_kept = pass.records_kept;
            done.artifacts_kept = pass.artifacts_kept;
            done.records_protected = scan
                .records
                .keys()
                .filter(|key| protected.contains(key))
                .count() as u64;
            self.compact()?;
            done.after = self.usage()?;
            let Some(bound) = policy.max_size else { break };
            let growth = if policy.room_to_grow {
                done.after.db_bytes
            } else {
                0
            };
            if done.after.total() + growth <= bound || done.over_bound {
                break;
            }
            // The prediction was off: measure how the database compacts and evict again.
            let stored = self.db_stored_bytes()?;
            if stored > 0 {
                factor = (done.after.db_bytes.saturating_sub(DB_FIXED_BYTES) as f64
                    / stored as f64)
                    .max(factor * 1.1);
            }
        }
        done.payload_after = self.scan()?.map_or(0, |scan| scan.payload());
        done.duration = start.elapsed();
        Ok(done)
    }

    /// The bytes of every value in the database (what a compacted file grows with).
    fn db_stored_bytes(&self) -> Result<u64, Error> {
        Ok(self
            .scan()?
            .map_or(0, |scan| db_stored_bytes(&scan, &Removal::default(), None)))
    }

    /// Removes everything: records, artifacts, manifests, notebook states, run summaries and
    /// blob files; then compacts the database.
    pub fn clear(&mut self) -> Result<Cleared, Error> {
        let start = Instant::now();
        self.flush()?;
        let before = self.usage()?;
        let Some(scan) = self.scan()? else {
            return Ok(Cleared::default());
        };
        let removal = Removal {
            records: scan.records.keys().copied().collect(),
            notebooks: scan.notebooks.iter().map(|(id, ..)| id.clone()).collect(),
            protected: HashSet::new(),
            clear_runs: true,
        };
        let survivors = survivors(&scan, &removal);
        let mut done = self.apply(&scan, &removal, &survivors)?;
        self.compact()?;
        done.before = before;
        done.after = self.usage()?;
        done.duration = start.elapsed();
        Ok(done)
    }

    /// Removes one notebook's state and the records its remembered runs needed, except those
    /// another notebook's runs need too; artifacts still referred to elsewhere stay. `None`
    /// when the store has no state for `notebook_id`.
    pub fn clear_notebook(&mut self, notebook_id: &str) -> Result<Option<Cleared>, Error> {
        let start = Instant::now();
        self.flush()?;
        let before = self.usage()?;
        let Some(scan) = self.scan()? else {
            return Ok(None);
        };
        let Some((_, state, _, _)) = scan.notebooks.iter().find(|(id, ..)| id == notebook_id)
        else {
            return Ok(None);
        };
        let mut own: HashSet<ContentHash> = HashSet::new();
        if let Some(state) = state {
            own.extend(state.cell_keys.iter().flatten().copied());
            for run in &state.recent_runs {
                own.extend(run.keys.iter().copied());
            }
        }
        let others: HashSet<String> = std::iter::once(notebook_id.to_owned()).collect();
        let elsewhere = scan.protected(usize::MAX, &others);
        let removal = Removal {
            records: own
                .iter()
                .filter(|key| !elsewhere.contains(key) && scan.records.contains_key(key))
                .copied()
                .collect(),
            notebooks: others,
            protected: elsewhere,
            clear_runs: false,
        };
        let survivors = survivors(&scan, &removal);
        let mut done = self.apply(&scan, &removal, &survivors)?;
        self.compact()?;
        done.before = before;
        done.after = self.usage()?;
        done.duration = start.elapsed();
        Ok(Some(done))
    }

    /// Deletes what `removal` and `survivors` leave out, in one durable transaction, then the
    /// blob files of removed artifacts and stray files of `blobs/`.
    fn apply(
        &self,
        scan: &Scan,
        removal: &Removal,
        survivors: &Survivors,
    ) -> Result<Collected, Error> {
        let dead_artifacts: Vec<ContentHash> = scan
            .artifacts
            .keys()
            .filter(|hash| !survivors.artifacts.contains(hash))
            .chain(&scan.malformed_artifacts)
            .copied()
            .collect();
        let dead_manifests: Vec<ContentHash> = scan
            .manifests
            .keys()
            .filter(|key| !survivors.manifests.contains(key))
            .copied()
            .collect();
        let dead_notebooks: Vec<&String> = scan
            .notebooks
            .iter()
            .map(|(id, ..)| id)
            .filter(|id| removal.notebooks.contains(*id))
            .collect();
        let damaged_notebooks: Vec<&String> = scan
            .notebooks
            .iter()
            .filter(|(_, state, ..)| state.is_none())
            .map(|(id, ..)| id)
            .collect();
        let now = now_unix_s();
        self.with_db(|db| {
            let txn = begin_write(db, true)?;
            {
                let mut records = txn.open_table(RECORDS)?;
                let mut used = txn.open_table(RECORD_USED)?;
                let mut record_manifests = txn.open_table(RECORD_MANIFESTS)?;
                for key in &removal.records {
                    records.remove(&key.0)?;
                    used.remove(&key.0)?;
                    record_manifests.remove(&key.0)?;
                }
                for key in &scan.stray_used {
                    used.remove(&key.0)?;
                }
                for key in scan.record_manifests.keys() {
                    if !scan.records.contains_key(key) {
                        record_manifests.remove(&key.0)?;
                    }
                }
                let mut artifacts = txn.open_table(ARTIFACTS)?;
                for hash in &dead_artifacts {
                    artifacts.remove(&hash.0)?;
                }
                let mut manifests = txn.open_table(MANIFESTS)?;
                for key in &dead_manifests {
                    manifests.remove(&key.0)?;
                }
                let mut notebooks = txn.open_table(NOTEBOOKS)?;
                for id in dead_notebooks.iter().chain(&damaged_notebooks) {
                    notebooks.remove(id.as_str())?;
                }
                if removal.clear_runs {
                    txn.open_table(RUNS)?.retain(|_, _| false)?;
                }
                let mut meta = txn.open_table(META)?;
                meta.insert(META_LAST_GC, now.to_le_bytes().as_slice())?;
            }
            txn.commit()?;
            Ok(())
        })?;
        // The database no longer points at them: their files can go.
        let live_names: HashSet<&str> = survivors
            .artifacts
            .iter()
            .filter_map(|hash| scan.artifacts.get(hash)?.blob_name.as_deref())
            .collect();
        let known_names: HashSet<&str> = scan
            .artifacts
            .values()
            .filter_map(|info| info.blob_name.as_deref())
            .collect();
        let mut stray_files = 0;
        if let Ok(entries) = fs_err::read_dir(self.blobs.dir()) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if live_names.contains(name.as_str()) {
                    continue;
                }
                let path = entry.path();
                match fs_err::remove_file(&path) {
                    Ok(()) if !known_names.contains(name.as_str()) => stray_files += 1,
                    Ok(()) => {}
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => return Err(io_error(&path, source)),
                }
            }
        }
        if fs_err::remove_file(&self.layout.damaged_copy).is_ok() {
            stray_files += 1;
        }
        Ok(Collected {
            records_removed: removal.records.len() as u64,
            records_kept: (scan.records.len() - removal.records.len()) as u64,
            artifacts_removed: dead_artifacts.len() as u64,
            artifacts_kept: survivors.artifacts.len() as u64,
            manifests_removed: dead_manifests.len() as u64,
            notebooks_removed: (dead_notebooks.len() + damaged_notebooks.len()) as u64,
            stray_files_removed: stray_files,
            ..Collected::default()
        })
    }

    /// Compacts the database so that its file shrinks to what it holds.
    fn compact(&mut self) -> Result<(), Error> {
        if self.disabled.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(());
        }
        let Some(db) = self.db.as_mut() else {
            return Ok(());
        };
        match catch_unwind(AssertUnwindSafe(|| db.compact())) {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(redb::CompactionError::Storage(redb::StorageError::Io(source))))
                if !super::is_damage(&source) =>
            {
                Err(io_error(&self.layout.db, source))
            }
            Ok(Err(err)) => {
                // Not fatal: the file stays larger than it could be.
                tracing::warn!(
                    "could not compact the cache database `{}`: {err}",
                    self.layout.db.display()
                );
                Ok(())
            }
            Err(payload) => {
                self.mark_damaged(&super::panic_message(&*payload));
                Ok(())
            }
        }
    }
}

/// Whether the notebook `id` (a path relative to the project root, or absolute) no longer
/// exists. Without a project root, every notebook counts as existing.
fn notebook_is_gone(project_root: Option<&Path>, id: &str) -> bool {
    let Some(root) = project_root else {
        return false;
    };
    let path = Path::new(id);
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        root.join(path)
    };
    matches!(fs_err::metadata(&path), Err(err) if err.kind() == std::io::ErrorKind::NotFound)
}

/// The bytes of the values that remain in the database after `removal` (with `survivors` when
/// known; else everything but the removed records).
fn db_stored_bytes(scan: &Scan, removal: &Removal, survivors: Option<&Survivors>) -> u64 {
    let records: u64 = scan
        .records
        .iter()
        .filter(|(key, _)| !removal.records.contains(key))
        .map(|(_, info)| info.stored + 32 + 8 + 8)
        .sum();
    let artifacts: u64 = scan
        .artifacts
        .iter()
        .filter(|(hash, _)| survivors.is_none_or(|kept| kept.artifacts.contains(hash)))
        .map(|(_, info)| info.value + 32)
        .sum();
    let manifests: u64 = scan
        .manifests
        .iter()
        .filter(|(key, _)| survivors.is_none_or(|kept| kept.manifests.contains(key)))
        .map(|(_, (stored, _))| stored + 32)
        .sum();
    let notebooks: u64 = scan
        .notebooks
        .iter()
        .filter(|(id, ..)| !removal.notebooks.contains(id))
        .map(|(id, _, stored, _)| stored + id.len() as u64)
        .sum();
    records + artifacts + manifests + notebooks + scan.runs_stored
}

/// Adds the least recently used of `candidates` (sorted oldest first) to `removal` until the
/// predicted bytes on disk after compaction fit `bound`. Returns whether they do.
fn evict_to_fit(
    scan: &Scan,
    removal: &mut Removal,
    candidates: &[(u64, ContentHash)],
    bound: u64,
    factor: f64,
) -> bool {
    // References per artifact from the records that stay.
    let mut refcount: HashMap<ContentHash, u32> = HashMap::new();
    for (key, info) in &scan.records {
        if removal.records.contains(key) {
            continue;
        }
        let distinct: HashSet<ContentHash> = info.refs.iter().map(|(hash, ..)| *hash).collect();
        for hash in distinct {
            *refcount.entry(hash).or_default() += 1;
        }
    }
    let survivors_now = survivors(scan, removal);
    let mut db_bytes = db_stored_bytes(scan, removal, Some(&survivors_now));
    let mut blob_bytes: u64 = survivors_now
        .artifacts
        .iter()
        .filter_map(|hash| scan.artifacts.get(hash)?.blob)
        .sum();
    let predict = |db: u64, blobs: u64| DB_FIXED_BYTES + (db as f64 * factor).ceil() as u64 + blobs;
    for (_, key) in candidates {
        if predict(db_bytes, blob_bytes) <= bound {
            return true;
        }
        let Some(info) = scan.records.get(key) else {
            continue;
        };
        removal.records.insert(*key);
        db_bytes = db_bytes.saturating_sub(info.stored + 48);
        let distinct: HashSet<ContentHash> = info.refs.iter().map(|(hash, ..)| *hash).collect();
        for hash in distinct {
            let Some(count) = refcount.get_mut(&hash) else {
                continue;
            };
            *count = count.saturating_sub(1);
            if *count == 0
                && let Some(artifact) = scan.artifacts.get(&hash)
            {
                db_bytes = db_bytes.saturating_sub(artifact.value + 32);
                blob_bytes = blob_bytes.saturating_sub(artifact.blob.unwrap_or(0));
            }
        }
    }
    predict(db_bytes, blob_bytes) <= bound
}

#[cfg(test)]
mod tests;
