//! The content-addressed store: artifacts by hash, cell records by key, the last state of each
//! notebook, in one redb database plus a directory of large blobs.
//!
//! The store is the only state that persists across runs, and it is a cache: every failure that
//! is not the caller's to report (a damaged database, a damaged entry, a store of another
//! format version) turns into a warning and a miss or a rebuild, never into a failed run
//! (**Invariant:** the cache never fails a run). [`Error`] is left for what the user must hear
//! about: another process holding the store, or real I/O failures such as a full disk.
//!
//! Only the parent process opens the store; workers send their outputs over the protocol. The
//! on-disk layout is specified in `cache-format/v3.md` and defined in [`format`](mod@format); large
//! artifacts are files handled by `blobs`.
//!
//! Writes commit without fsync ([`redb::Durability::None`]); [`Store::flush`] makes everything
//! durable at once at the end of a run. A crash in between loses cache entries, never corrupts
//! the store, and every read is verified (artifacts against their blake3 address, records and
//! notebook states against a checksum), so a damaged entry is a miss, never a wrong answer.

mod blobs;
pub mod format;
mod gc;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::fs::TryLockError;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redb::{
    Builder, Database, DatabaseError, Durability, ReadableDatabase, ReadableTable, StorageError,
    TableError, WriteTransaction,
};

use crate::hash::ContentHash;
use blobs::{Blobs, lock};
use format::{
    ARTIFACTS, ArtifactEntry, INLINE_ARTIFACT_MAX, INLINE_OUTPUTS_MAX, MANIFESTS, META,
    META_CREATED, META_FORMAT_VERSION, META_LAST_FLUSH, META_NBMEMO_VERSION, META_REDB_VERSION,
    NOTEBOOKS, RECORD_MANIFESTS, RECORD_USED, RECORDS, REDB_VERSION, RUNS, RUNS_KEPT, StoredRecord,
};
pub use format::{
    CellRecord, CellTrace, ErrorInfo, FORMAT_VERSION, FileOutput, FileUse, NotebookRun,
    NotebookState, RECENT_RUNS_MAX, RecentRun, RecordStatus, RunSummary, Unpicklable, ValueGroup,
};
pub use gc::{
    ArtifactUse, Cleared, Collected, GcPolicy, LargeArtifact, NotebookStats, Stats, Usage,
};

/// How many file lists a manifest keeps per first-step key (the newest).
const MANIFEST_LISTS: usize = 8;

/// How often [`Store::open`] retries while another process holds the store.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// The redb page cache size: the database holds small values only (large ones are blobs).
const DB_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// The contents of the cache directory tag (<https://bford.info/cachedir/>).
const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by nbmemo.\n\
# For information about cache directory tags, see:\n\
#\thttps://bford.info/cachedir/\n";

/// Errors the caller should report. Damage and version mismatches are not errors: they are
/// logged and become misses or rebuilds.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another process holds the store, and kept it for longer than the wait allowed.
    #[error("the cache `{}` is in use by another nbmemo process (pid {pid})", path.display())]
    Busy {
        /// The holder's process id, from its pid file.
        pid: HolderPid,
        /// The cache directory given to [`Store::open`].
        path: PathBuf,
    },
    /// Reading or writing the store failed for a reason outside nbmemo (permissions, full disk).
    /// Its message includes the underlying error's, for callers that print only the top level.
    #[error("failed to access the cache at `{}`: {source}", path.display())]
    Io {
        /// The file or directory that failed.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The database stayed unusable after it was rebuilt.
    #[error("the cache database `{}` is unusable even after a rebuild: {message}", path.display())]
    Unusable {
        /// The database file.
        path: PathBuf,
        /// What the database library reported.
        message: String,
    },
}

impl Error {
    /// An actionable hint to print under the error, when there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Busy { .. } => Some(
                "wait for the other run to finish, or use another cache with `--cache-dir`"
                    .to_owned(),
            ),
            Error::Io { .. } => None,
            Error::Unusable { path, .. } => Some(format!(
                "delete `{}` and run again",
                path.parent().unwrap_or(path).display()
            )),
        }
    }
}

/// The process id of the process holding a store, as read from its pid file: `None` when it
/// could not be read (the holder is not nbmemo, or has not written it yet). Displays as the
/// number, or `unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HolderPid(pub Option<u32>);

impl std::fmt::Display for HolderPid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(pid) => write!(f, "{pid}"),
            None => f.write_str("unknown"),
        }
    }
}

/// The paths of one store.
#[derive(Debug, Clone)]
struct Layout {
    /// The directory given to [`Store::open`] (`<project>/.nbmemo`).
    dir: PathBuf,
    /// `dir/cache`: tagged with `CACHEDIR.TAG`, holds one directory per format version.
    cache: PathBuf,
    /// `dir/cache/v3`.
    root: PathBuf,
    db: PathBuf,
    blobs: PathBuf,
    lock: PathBuf,
    pid: PathBuf,
    damaged_marker: PathBuf,
    damaged_copy: PathBuf,
}

impl Layout {
    fn new(dir: &Path) -> Self {
        let cache = dir.join("cache");
        let root = cache.join(format!("v{FORMAT_VERSION}"));
        Layout {
            dir: dir.to_path_buf(),
            db: root.join("cache.redb"),
            blobs: root.join("blobs"),
            lock: root.join("cache.lock"),
            pid: root.join("cache.pid"),
            damaged_marker: root.join("cache.redb.rebuild"),
            damaged_copy: root.join("cache.redb.damaged"),
            cache,
            root,
        }
    }

    /// Creates the directories and the marker files that exclude the cache from git and backups.
    fn prepare(&self) -> Result<(), Error> {
        create_dir_all(&self.blobs)?;
        write_if_missing(&self.dir.join(".gitignore"), "*\n")?;
        write_if_missing(&self.cache.join("CACHEDIR.TAG"), CACHEDIR_TAG)
    }
}

fn create_dir_all(path: &Path) -> Result<(), Error> {
    fs_err::create_dir_all(path).map_err(|source| io_error(path, source))
}

fn write_if_missing(path: &Path, contents: &str) -> Result<(), Error> {
    if path.exists() {
        return Ok(());
    }
    fs_err::write(path, contents).map_err(|source| io_error(path, source))
}

fn io_error(path: &Path, source: io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether an I/O error from the database library means the file is damaged (rather than the
/// disk, the permissions or the system failing).
fn is_damage(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
    )
}

fn now_unix_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// The message of a caught panic.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message");
    format!("the database library panicked: {text}")
}

/// The exclusive hold of one process on a store directory: an OS lock on `cache.lock` and the
/// holder's pid in `cache.pid`. Dropping it removes the pid file and releases the lock.
#[derive(Debug)]
struct Hold {
    _file: fs_err::File,
    pid: PathBuf,
}

impl Hold {
    /// Takes the lock, polling until `deadline` while another process (or another [`Store`] of
    /// this process) holds it.
    fn acquire(layout: &Layout, deadline: Instant) -> Result<Hold, Error> {
        let file = fs_err::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&layout.lock)
            .map_err(|source| io_error(&layout.lock, source))?;
        let mut announced = false;
        loop {
            match file.file().try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    let pid = read_pid(&layout.pid);
                    wait_or_give_up(layout, pid, deadline, &mut announced)?;
                }
                Err(TryLockError::Error(err)) if err.kind() == io::ErrorKind::Unsupported => {
                    // No file locks here: redb's own lock on the database still excludes a
                    // second process, only without a pid to name.
                    tracing::debug!(
                        "file locks are not supported for `{}`",
                        layout.lock.display()
                    );
                    break;
                }
                Err(TryLockError::Error(source)) => return Err(io_error(&layout.lock, source)),
            }
        }
        let temp = layout.pid.with_extension("pid.tmp");
        fs_err::write(&temp, format!("{}\n", std::process::id()))
            .and_then(|()| fs_err::rename(&temp, &layout.pid))
            .map_err(|source| io_error(&layout.pid, source))?;
        Ok(Hold {
            _file: file,
            pid: layout.pid.clone(),
        })
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        // Still locked here: the lock is released when `_file` closes, after this.
        let _ = fs_err::remove_file(&self.pid);
    }
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Sleeps one poll interval, or returns [`Error::Busy`] once `deadline` has passed.
fn wait_or_give_up(
    layout: &Layout,
    pid: Option<u32>,
    deadline: Instant,
    announced: &mut bool,
) -> Result<(), Error> {
    let now = Instant::now();
    if now >= deadline {
        return Err(Error::Busy {
            pid: HolderPid(pid),
            path: layout.dir.clone(),
        });
    }
    if !*announced {
        *announced = true;
        // The caller says so to the user (it knows whether it waits); this is for the log.
        tracing::info!(
            "waiting for the cache `{}`, in use by another nbmemo process (pid {})",
            layout.dir.display(),
            HolderPid(pid)
        );
    }
    std::thread::sleep(POLL_INTERVAL.min(deadline - now));
    Ok(())
}

/// The outcome of one attempt at opening the database file.
enum Opened {
    Ready(Database),
    /// Another process holds the database file itself.
    Busy,
    /// A real I/O failure.
    Io(io::Error),
    /// The file is damaged: move it aside and start over.
    Damaged(String),
    /// The file is a store of another format (or not a store): delete it and start over.
    Foreign(String),
}

/// What the `meta` table says about a freshly opened database.
enum MetaCheck {
    Current,
    Empty,
    Foreign(String),
}

/// Opens `path` as a store database of this format version, creating it when missing or empty.
fn try_open(path: &Path) -> Opened {
    let attempt = catch_unwind(|| {
        let db = match Builder::new().set_cache_size(DB_CACHE_BYTES).create(path) {
            Ok(db) => db,
            Err(DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch) => {
                return Opened::Busy;
            }
            Err(DatabaseError::UpgradeRequired(version)) => {
                return Opened::Foreign(format!("redb file format {version}"));
            }
            Err(DatabaseError::Storage(StorageError::Io(err))) if !is_damage(&err) => {
                return Opened::Io(err);
            }
            Err(err) => return Opened::Damaged(err.to_string()),
        };
        let checked = check_meta(&db).and_then(|check| match check {
            MetaCheck::Empty => initialize(&db).map(|()| MetaCheck::Current),
            check => Ok(check),
        });
        match checked {
            Ok(MetaCheck::Current) => Opened::Ready(db),
            Ok(MetaCheck::Foreign(what)) => Opened::Foreign(what),
            Ok(MetaCheck::Empty) => Opened::Damaged("the database stayed empty".to_owned()),
            Err(redb::Error::Io(err)) if !is_damage(&err) => Opened::Io(err),
            Err(err) => Opened::Damaged(err.to_string()),
        }
    });
    attempt.unwrap_or_else(|payload| Opened::Damaged(panic_message(&*payload)))
}

/// Reads the format version from `meta` and checks that every table has the expected types.
fn check_meta(db: &Database) -> Result<MetaCheck, redb::Error> {
    let txn = db.begin_read()?;
    if txn.list_tables()?.next().is_none() {
        return Ok(MetaCheck::Empty);
    }
    let meta = match txn.open_table(META) {
        Ok(meta) => meta,
        Err(err) => return foreign_or_err(err),
    };
    let version = meta
        .get(META_FORMAT_VERSION)?
        .and_then(|value| <[u8; 4]>::try_from(value.value()).ok())
        .map(u32::from_le_bytes);
    match version {
        Some(FORMAT_VERSION) => {}
        Some(other) => return Ok(MetaCheck::Foreign(format!("format version {other}"))),
        None => return Ok(MetaCheck::Foreign("no format version".to_owned())),
    }
    for result in [
        txn.open_table(ARTIFACTS).map(drop),
        txn.open_table(RECORDS).map(drop),
        txn.open_table(RECORD_USED).map(drop),
        txn.open_table(NOTEBOOKS).map(drop),
        txn.open_table(MANIFESTS).map(drop),
        txn.open_table(RECORD_MANIFESTS).map(drop),
        txn.open_table(RUNS).map(drop),
    ] {
        if let Err(err) = result {
            return foreign_or_err(err);
        }
    }
    Ok(MetaCheck::Current)
}

fn foreign_or_err(err: TableError) -> Result<MetaCheck, redb::Error> {
    match err {
        TableError::TableDoesNotExist(name) => Ok(MetaCheck::Foreign(format!("no `{name}` table"))),
        TableError::TableTypeMismatch { table, .. }
        | TableError::TableIsMultimap(table)
        | TableError::TableIsNotMultimap(table) => {
            Ok(MetaCheck::Foreign(format!("unexpected `{table}` table")))
        }
        err => Err(err.into()),
    }
}

/// Creates the tables of an empty database and writes `meta`, durably.
fn initialize(db: &Database) -> Result<(), redb::Error> {
    let txn = begin_write(db, true)?;
    {
        let mut meta = txn.open_table(META)?;
        meta.insert(META_FORMAT_VERSION, FORMAT_VERSION.to_le_bytes().as_slice())?;
        meta.insert(META_REDB_VERSION, REDB_VERSION.as_bytes())?;
        meta.insert(META_NBMEMO_VERSION, env!("CARGO_PKG_VERSION").as_bytes())?;
        meta.insert(META_CREATED, now_unix_s().to_le_bytes().as_slice())?;
        txn.open_table(ARTIFACTS)?;
        txn.open_table(RECORDS)?;
        txn.open_table(RECORD_USED)?;
        txn.open_table(NOTEBOOKS)?;
        txn.open_table(MANIFESTS)?;
        txn.open_table(RECORD_MANIFESTS)?;
        txn.open_table(RUNS)?;
    }
    txn.commit()?;
    Ok(())
}

/// Begins a write transaction: durable (fsync, quick repair) or not (see [`Store::flush`]).
fn begin_write(db: &Database, durable: bool) -> Result<WriteTransaction, redb::Error> {
    let mut txn = db.begin_write()?;
    if durable {
        txn.set_quick_repair(true);
    } else {
        txn.set_durability(Durability::None)?;
    }
    Ok(txn)
}

/// Opens the database of `layout`, rebuilding it when it is damaged or of another format.
fn open_database(layout: &Layout, deadline: Instant) -> Result<Database, Error> {
    if let Ok(reason) = std::fs::read_to_string(&layout.damaged_marker) {
        tracing::warn!(
            "the cache `{}` was found damaged during an earlier run ({}); rebuilding it",
            layout.dir.display(),
            reason.trim()
        );
        set_aside(layout)?;
        remove_if_present(&layout.damaged_marker)?;
    }
    let mut rebuilt = false;
    let mut announced = false;
    loop {
        let (reason, foreign) = match try_open(&layout.db) {
            Opened::Ready(db) => return Ok(db),
            Opened::Busy => {
                wait_or_give_up(layout, None, deadline, &mut announced)?;
                continue;
            }
            Opened::Io(source) => return Err(io_error(&layout.db, source)),
            Opened::Damaged(reason) => (reason, false),
            Opened::Foreign(reason) => (reason, true),
        };
        if rebuilt {
            return Err(Error::Unusable {
                path: layout.db.clone(),
                message: reason,
            });
        }
        rebuilt = true;
        if foreign {
            tracing::warn!(
                "the cache `{}` holds another cache format ({reason}); rebuilding it for format version {FORMAT_VERSION}",
                layout.dir.display()
            );
            remove_if_present(&layout.db)?;
            match fs_err::remove_dir_all(&layout.blobs) {
                Err(err) if err.kind() != io::ErrorKind::NotFound => {
                    return Err(io_error(&layout.blobs, err));
                }
                _ => create_dir_all(&layout.blobs)?,
            }
        } else {
            tracing::warn!(
                "the cache database `{}` is damaged ({reason}); moving it to `{}` and starting an empty one",
                layout.db.display(),
                layout.damaged_copy.display()
            );
            set_aside(layout)?;
        }
    }
}

/// Moves a damaged database to `cache.redb.damaged` (replacing an older one), for diagnosis.
/// Blobs stay: they are verified on every read.
fn set_aside(layout: &Layout) -> Result<(), Error> {
    match fs_err::rename(&layout.db, &layout.damaged_copy) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(io_error(&layout.db, err)),
        _ => Ok(()),
    }
}

fn remove_if_present(path: &Path) -> Result<(), Error> {
    match fs_err::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(io_error(path, err)),
        _ => Ok(()),
    }
}

/// An owned copy of an `artifacts` value.
enum Located {
    /// Inline bytes (copied, and decompressed, when asked for).
    Inline(Option<Vec<u8>>),
    /// In `blobs/`: `len` bytes, or `len` bytes compressed into a file of `stored` bytes.
    Blob {
        len: u64,
        stored: Option<u64>,
    },
    Malformed,
}

/// The content-addressed store of one project (see the module docs).
///
/// `Store` is `Send + Sync`: the scheduler shares one across its threads. redb serializes write
/// transactions; reads run concurrently.
pub struct Store {
    /// `None` only while dropping.
    db: Option<Database>,
    layout: Layout,
    blobs: Blobs,
    /// Set when the database failed mid-run: every operation is then a miss or a no-op.
    disabled: AtomicBool,
    /// Keys of the records read since the last flush, whose last-use time is written by the
    /// next flush (a read should not cost a write transaction).
    used: Mutex<HashSet<[u8; 32]>>,
    /// Keys of the records and manifests stored since the last [`Store::take_written_keys`].
    written: Mutex<Vec<ContentHash>>,
    /// Artifacts stored or read lately, kept in memory: a value that several cells read is
    /// read, decompressed and verified once per process.
    recent: Mutex<Recent>,
    /// Artifacts given to [`Store::put_artifact_later`] and not written yet.
    pending: Mutex<rustc_hash::FxHashMap<ContentHash, Arc<Vec<u8>>>>,
    /// Records naming pending artifacts: written after them (a stored record only ever names
    /// stored artifacts).
    pending_records: Mutex<Vec<(ContentHash, CellRecord)>>,
    /// Declared last: released after the database is closed.
    _hold: Hold,
}

/// Artifacts kept in memory, oldest evicted first beyond [`Recent::LIMIT`] bytes.
#[derive(Default)]
struct Recent {
    map: rustc_hash::FxHashMap<ContentHash, Arc<Vec<u8>>>,
    order: std::collections::VecDeque<ContentHash>,
    bytes: usize,
}

impl Recent {
    const LIMIT: usize = 256 << 20;

    fn get(&self, hash: &ContentHash) -> Option<Arc<Vec<u8>>> {
        self.map.get(hash).cloned()
    }

    fn insert(&mut self, hash: ContentHash, bytes: Arc<Vec<u8>>) {
        if bytes.len() > Self::LIMIT / 4 || self.map.contains_key(&hash) {
            return;
        }
        self.bytes += bytes.len();
        self.map.insert(hash, bytes);
        self.order.push_back(hash);
        while self.bytes > Self::LIMIT {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(evicted) = self.map.remove(&oldest) {
                self.bytes -= evicted.len();
            }
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("root", &self.layout.root)
            .field("disabled", &self.disabled.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the store under `dir` (`<project>/.nbmemo`): the database
    /// `dir/cache/v3/cache.redb`, large artifacts in `dir/cache/v3/blobs/`, a `CACHEDIR.TAG` in
    /// `dir/cache/` and a `.gitignore` containing `*` in `dir`.
    ///
    /// While another nbmemo process holds the store, polls for up to `wait`, then returns
    /// [`Error::Busy`] naming that process. A damaged database, or one of another format version,
    /// is rebuilt with a warning; only real I/O failures are errors.
    pub fn open(dir: &Path, wait: Duration) -> Result<Store, Error> {
        let deadline = Instant::now() + wait;
        let layout = Layout::new(dir);
        layout.prepare()?;
        let hold = Hold::acquire(&layout, deadline)?;
        let db = open_database(&layout, deadline)?;
        tracing::debug!("opened the cache `{}`", layout.root.display());
        Ok(Store {
            db: Some(db),
            blobs: Blobs::new(layout.blobs.clone()),
            layout,
            disabled: AtomicBool::new(false),
            used: Mutex::new(HashSet::new()),
            written: Mutex::new(Vec::new()),
            recent: Mutex::new(Recent::default()),
            pending: Mutex::new(rustc_hash::FxHashMap::default()),
            pending_records: Mutex::new(Vec::new()),
            _hold: hold,
        })
    }

    /// The directory of this format version's files (`dir/cache/v3`).
    pub fn root(&self) -> &Path {
        &self.layout.root
    }

    /// Runs `op` on the database, turning damage into a warning and a miss.
    ///
    /// `Ok(None)` when the store is disabled or `op` found the database damaged (which disables
    /// it for the rest of the process and schedules a rebuild at the next open); `Err` for a
    /// real I/O failure (which disables it too: redb refuses writes after one).
    fn with_db<T>(
        &self,
        op: impl FnOnce(&Database) -> Result<T, redb::Error>,
    ) -> Result<Option<T>, Error> {
        if self.disabled.load(Ordering::Acquire) {
            return Ok(None);
        }
        let Some(db) = &self.db else {
            return Ok(None);
        };
        match catch_unwind(AssertUnwindSafe(|| op(db))) {
            Ok(Ok(value)) => Ok(Some(value)),
            Ok(Err(redb::Error::Io(source))) if !is_damage(&source) => {
                if !self.disabled.swap(true, Ordering::AcqRel) {
                    return Err(io_error(&self.layout.db, source));
                }
                Ok(None)
            }
            Ok(Err(err)) => {
                self.mark_damaged(&err.to_string());
                Ok(None)
            }
            Err(payload) => {
                self.mark_damaged(&panic_message(&*payload));
                Ok(None)
            }
        }
    }

    /// Disables the store for the rest of the process and leaves a marker so that the next open
    /// rebuilds it.
    fn mark_damaged(&self, reason: &str) {
        if self.disabled.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::warn!(
            "the cache database `{}` is damaged ({reason}); caching is off for the rest of this run and the cache will be rebuilt",
            self.layout.db.display()
        );
        let _ = fs_err::write(&self.layout.damaged_marker, reason);
    }

    /// Looks up an `artifacts` entry, copying inline bytes only when `with_bytes` is set.
    fn locate(&self, hash: &ContentHash, with_bytes: bool) -> Result<Option<Located>, Error> {
        let found = self.with_db(|db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(ARTIFACTS)?;
            let located =
                table
                    .get(&hash.0)?
                    .map(|value| match ArtifactEntry::decode(value.value()) {
                        Some(ArtifactEntry::Inline(bytes)) => {
                            Located::Inline(with_bytes.then(|| bytes.to_vec()))
                        }
                        Some(ArtifactEntry::InlineZstd { len, frame }) if with_bytes => {
                            format::decompress(frame, len)
                                .map_or(Located::Malformed, |bytes| Located::Inline(Some(bytes)))
                        }
                        Some(ArtifactEntry::InlineZstd { .. }) => Located::Inline(None),
                        Some(ArtifactEntry::Blob { len }) => Located::Blob { len, stored: None },
                        Some(ArtifactEntry::BlobZstd { len, stored }) => Located::Blob {
                            len,
                            stored: Some(stored),
                        },
                        None => Located::Malformed,
                    });
            Ok(located)
        })?;
        Ok(found.flatten())
    }

    /// Stores `bytes` (once, whatever the number of calls) and returns their address, the
    /// blake3 hash of the bytes. Bytes that compress well are stored compressed (zstd).
    pub fn put_artifact(&self, bytes: &[u8]) -> Result<ContentHash, Error> {
        let hash = ContentHash::of(bytes);
        let len = bytes.len() as u64;
        match self.locate(&hash, false)? {
            Some(Located::Inline(_)) => return Ok(hash),
            Some(Located::Blob {
                len: stored_len,
                stored,
            }) if stored_len == len && self.blob_exists(&hash, len, stored)? => {
                return Ok(hash);
            }
            _ => {}
        }
        if self.disabled.load(Ordering::Acquire) {
            return Ok(hash);
        }
        let compressed = format::compress_if_it_pays(bytes);
        let in_blobs = compressed.as_ref().map_or(bytes.len(), Vec::len) > INLINE_ARTIFACT_MAX;
        let entry = if in_blobs {
            let (path, contents, entry) = match &compressed {
                Some(frame) => (
                    self.blobs.zstd_path(&hash),
                    frame.as_slice(),
                    ArtifactEntry::BlobZstd {
                        len,
                        stored: frame.len() as u64,
                    },
                ),
                None => (self.blobs.path(&hash), bytes, ArtifactEntry::Blob { len }),
            };
            self.blobs
                .write(&path, contents)
                .map_err(|source| io_error(&path, source))?;
            // The other form of the same blob, left by an earlier store, is garbage now.
            let other = self.blobs.file(&hash, compressed.is_none());
            let _ = fs_err::remove_file(other);
            entry
        } else {
            match &compressed {
                Some(frame) => ArtifactEntry::InlineZstd { len, frame },
                None => ArtifactEntry::Inline(bytes),
            }
        };
        let value = entry.encode();
        self.with_db(|db| {
            let txn = begin_write(db, false)?;
            txn.open_table(ARTIFACTS)?
                .insert(&hash.0, value.as_slice())?;
            txn.commit()?;
            Ok(())
        })?;
        Ok(hash)
    }

    /// Returns the address of `bytes` now and stores them at the next
    /// [`Store::write_pending`] (or [`Store::flush`]): the executor hands a result's values to
    /// the cells waiting for them first, and compresses and writes them while those run. Until
    /// then they are read from memory, and a record naming them waits in memory too.
    pub fn put_artifact_later(&self, bytes: Arc<Vec<u8>>) -> ContentHash {
        let hash = ContentHash::of(&bytes);
        lock(&self.recent).insert(hash, bytes.clone());
        lock(&self.pending).entry(hash).or_insert(bytes);
        hash
    }

    /// Writes the artifacts given to [`Store::put_artifact_later`].
    pub fn write_pending(&self) -> Result<(), Error> {
        loop {
            let next = {
                let pending = lock(&self.pending);
                pending
                    .iter()
                    .next()
                    .map(|(hash, bytes)| (*hash, bytes.clone()))
            };
            let Some((hash, bytes)) = next else {
                break;
            };
            // Still readable from `pending` while it is written.
            let written = self.put_artifact(&bytes);
            lock(&self.pending).remove(&hash);
            written?;
        }
        let records = std::mem::take(&mut *lock(&self.pending_records));
        for (key, record) in &records {
            self.put_record(key, record)?;
        }
        Ok(())
    }

    /// [`Store::get_artifact`], from memory when the artifact was stored or read lately.
    pub fn get_artifact_shared(&self, hash: &ContentHash) -> Result<Option<Arc<Vec<u8>>>, Error> {
        if let Some(bytes) = lock(&self.pending).get(hash) {
            return Ok(Some(bytes.clone()));
        }
        if let Some(bytes) = lock(&self.recent).get(hash) {
            return Ok(Some(bytes));
        }
        let Some(bytes) = self.get_artifact(hash)? else {
            return Ok(None);
        };
        let bytes = Arc::new(bytes);
        lock(&self.recent).insert(*hash, bytes.clone());
        Ok(Some(bytes))
    }

    /// The bytes of the artifact `hash`, verified against it; `None` when the artifact is
    /// missing or damaged (a damaged one is logged and forgotten, so a later put stores it again).
    pub fn get_artifact(&self, hash: &ContentHash) -> Result<Option<Vec<u8>>, Error> {
        let bytes = match self.locate(hash, true)? {
            None => return Ok(None),
            Some(Located::Malformed) => {
                self.forget_artifact(hash, "its entry is malformed");
                return Ok(None);
            }
            Some(Located::Inline(bytes)) => bytes.unwrap_or_default(),
            Some(Located::Blob { len, stored }) => {
                let path = self.blobs.file(hash, stored.is_some());
                let expected = stored.unwrap_or(len);
                let read = match Blobs::read(&path) {
                    Ok(Some(read)) => read,
                    Ok(None) => {
                        let why = format!("its blob `{}` is missing", path.display());
                        self.forget_artifact(hash, &why);
                        return Ok(None);
                    }
                    Err(source) => return Err(io_error(&path, source)),
                };
                if read.len() as u64 != expected {
                    let why = format!(
                        "its blob `{}` has {} bytes instead of {expected}",
                        path.display(),
                        read.len()
                    );
                    self.forget_artifact(hash, &why);
                    return Ok(None);
                }
                if stored.is_none() {
                    read
                } else if let Some(bytes) = format::decompress(&read, len) {
                    bytes
                } else {
                    let why = format!("its blob `{}` does not decompress", path.display());
                    self.forget_artifact(hash, &why);
                    return Ok(None);
                }
            }
        };
        if ContentHash::of(&bytes) != *hash {
            self.forget_artifact(hash, "its bytes do not match their hash");
            return Ok(None);
        }
        Ok(Some(bytes))
    }

    /// Whether the artifact `hash` is stored (for a blob: its file exists with the right length;
    /// the content is verified only by [`Store::get_artifact`]).
    pub fn has_artifact(&self, hash: &ContentHash) -> Result<bool, Error> {
        if lock(&self.pending).contains_key(hash) {
            return Ok(true);
        }
        match self.locate(hash, false)? {
            None | Some(Located::Malformed) => Ok(false),
            Some(Located::Inline(_)) => Ok(true),
            Some(Located::Blob { len, stored }) => self.blob_exists(hash, len, stored),
        }
    }

    fn blob_exists(
        &self,
        hash: &ContentHash,
        len: u64,
        stored: Option<u64>,
    ) -> Result<bool, Error> {
        let path = self.blobs.file(hash, stored.is_some());
        Blobs::exists(&path, stored.unwrap_or(len)).map_err(|source| io_error(&path, source))
    }

    /// Logs a damaged artifact and removes it, so that the next put of the same bytes stores
    /// them again instead of deduplicating against the damaged copy.
    fn forget_artifact(&self, hash: &ContentHash, why: &str) {
        tracing::warn!(
            "cache artifact {} is damaged ({why}); treating it as a miss",
            hash.short(12)
        );
        let _ = self.blobs.remove(hash);
        let _ = self.with_db(|db| {
            let txn = begin_write(db, false)?;
            txn.open_table(ARTIFACTS)?.remove(&hash.0)?;
            txn.commit()?;
            Ok(())
        });
    }

    /// The record stored under the cell key `key`; `None` on a miss, and on a damaged or
    /// undecodable record (logged). The artifacts it refers to are not checked here: the caller
    /// treats a missing value artifact as a miss.
    pub fn get_record(&self, key: &ContentHash) -> Result<Option<CellRecord>, Error> {
        if let Some((_, record)) = lock(&self.pending_records)
            .iter()
            .rev()
            .find(|(pending, _)| pending == key)
        {
            return Ok(Some(record.clone()));
        }
        let raw = self.with_db(|db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(RECORDS)?;
            Ok(table.get(&key.0)?.map(|value| value.value().to_vec()))
        })?;
        let Some(raw) = raw.flatten() else {
            return Ok(None);
        };
        let stored = match format::unseal::<StoredRecord>(&key.0, &raw) {
            Ok(stored) => stored,
            Err(err) => {
                self.forget_record(key, &err.to_string());
                return Ok(None);
            }
        };
        let mut record = stored.record;
        if let Some(outputs) = stored.outputs_artifact {
            let Some(bytes) = self.get_artifact(&outputs)? else {
                return Ok(None);
            };
            match serde_json::from_slice(&bytes) {
                Ok(outputs) => record.outputs = outputs,
                Err(err) => {
                    self.forget_record(key, &format!("its outputs are not a JSON list: {err}"));
                    return Ok(None);
                }
            }
        }
        lock(&self.used).insert(key.0);
        Ok(Some(record))
    }

    fn forget_record(&self, key: &ContentHash, why: &str) {
        tracing::warn!(
            "cache record {} is damaged ({why}); treating it as a miss",
            key.short(12)
        );
        let _ = self.with_db(|db| {
            let txn = begin_write(db, false)?;
            txn.open_table(RECORDS)?.remove(&key.0)?;
            txn.open_table(RECORD_USED)?.remove(&key.0)?;
            txn.commit()?;
            Ok(())
        });
    }

    /// Stores `record` under the cell key `key` and marks it used now. The artifacts it refers to
    /// must have been put before: a record referring to a missing artifact is not stored (and a
    /// warning is logged), because it could never be replayed.
    ///
    /// An outputs list larger than [`format::INLINE_OUTPUTS_MAX`] bytes of JSON is stored as an
    /// artifact of its own.
    pub fn put_record(&self, key: &ContentHash, record: &CellRecord) -> Result<(), Error> {
        if self.disabled.load(Ordering::Acquire) {
            return Ok(());
        }
        {
            let pending = lock(&self.pending);
            if !pending.is_empty() && record.artifacts().any(|hash| pending.contains_key(&hash)) {
                lock(&self.pending_records).push((*key, record.clone()));
                return Ok(());
            }
        }
        let outputs_json = serde_json::to_vec(&record.outputs).unwrap_or_default();
        let stored = if outputs_json.len() > INLINE_OUTPUTS_MAX {
            StoredRecord {
                outputs_artifact: Some(self.put_artifact(&outputs_json)?),
                record: record.without_outputs(),
            }
        } else {
            let mut inline = record.without_outputs();
            inline.outputs.clone_from(&record.outputs);
            StoredRecord {
                outputs_artifact: None,
                record: inline,
            }
        };
        let value = match format::seal(&key.0, &stored) {
            Ok(value) => value,
            Err(err) => {
                tracing::warn!(
                    "cache record {} could not be encoded ({err}); not stored",
                    key.short(12)
                );
                return Ok(());
            }
        };
        let referenced: Vec<ContentHash> = stored
            .record
            .artifacts()
            .chain(stored.outputs_artifact)
            .collect();
        let missing = self.with_db(|db| {
            let txn = begin_write(db, false)?;
            {
                let artifacts = txn.open_table(ARTIFACTS)?;
                for hash in &referenced {
                    if artifacts.get(&hash.0)?.is_none() {
                        drop(artifacts);
                        txn.abort()?;
                        return Ok(Some(*hash));
                    }
                }
            }
            txn.open_table(RECORDS)?.insert(&key.0, value.as_slice())?;
            txn.open_table(RECORD_USED)?.insert(&key.0, now_unix_s())?;
            txn.commit()?;
            Ok(None)
        })?;
        if matches!(missing, Some(None)) {
            lock(&self.written).push(*key);
        }
        if let Some(Some(hash)) = missing {
            tracing::warn!(
                "cache record {} refers to artifact {}, which is not stored; not stored",
                key.short(12),
                hash.short(12)
            );
        }
        Ok(())
    }

    /// The lists of files that runs of a cell read, newest first, under its first-step key
    /// (its key without files; cache-format "Cell key"). Empty when none is known or the entry
    /// is damaged (logged and forgotten).
    pub fn get_manifest(&self, first_key: &ContentHash) -> Result<Vec<Vec<String>>, Error> {
        let raw = self.with_db(|db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(MANIFESTS)?;
            Ok(table.get(&first_key.0)?.map(|value| value.value().to_vec()))
        })?;
        let Some(raw) = raw.flatten() else {
            return Ok(Vec::new());
        };
        match format::unseal::<Vec<Vec<String>>>(&first_key.0, &raw) {
            Ok(lists) => Ok(lists),
            Err(err) => {
                tracing::warn!(
                    "cache manifest {} is damaged ({err}); treating it as a miss",
                    first_key.short(12)
                );
                let _ = self.with_db(|db| {
                    let txn = begin_write(db, false)?;
                    txn.open_table(MANIFESTS)?.remove(&first_key.0)?;
                    txn.commit()?;
                    Ok(())
                });
                Ok(Vec::new())
            }
        }
    }

    /// Records that a run of the cell with first-step key `first_key` read `files` (sorted): the
    /// list goes first in the manifest, which keeps the newest few.
    pub fn put_manifest(&self, first_key: &ContentHash, files: &[String]) -> Result<(), Error> {
        if self.disabled.load(Ordering::Acquire) {
            return Ok(());
        }
        lock(&self.written).push(*first_key);
        let mut lists = self.get_manifest(first_key)?;
        if lists.first().is_some_and(|first| first == files) {
            return Ok(());
        }
        lists.retain(|list| list != files);
        lists.insert(0, files.to_vec());
        lists.truncate(MANIFEST_LISTS);
        let value = match format::seal(&first_key.0, &lists) {
            Ok(value) => value,
            Err(_) => return Ok(()),
        };
        self.with_db(|db| {
            let txn = begin_write(db, false)?;
            txn.open_table(MANIFESTS)?
                .insert(&first_key.0, value.as_slice())?;
            txn.commit()?;
            Ok(())
        })?;
        Ok(())
    }

    /// The keys of the records and manifests stored since the last call (a run adds them to
    /// the keys its notebook's state says it needs, so that `cache gc` keeps them).
    pub fn take_written_keys(&self) -> Vec<ContentHash> {
        std::mem::take(&mut *lock(&self.written))
    }

    /// Remembers, for garbage collection, the manifest (first-step key) that finds each record
    /// of a cell that read files: `(record key, first-step key)`.
    pub fn put_record_manifests(&self, pairs: &[(ContentHash, ContentHash)]) -> Result<(), Error> {
        if pairs.is_empty() || self.disabled.load(Ordering::Acquire) {
            return Ok(());
        }
        self.with_db(|db| {
            let txn = begin_write(db, false)?;
            {
                let records = txn.open_table(RECORDS)?;
                let mut table = txn.open_table(RECORD_MANIFESTS)?;
                for (key, first_key) in pairs {
                    if key != first_key && records.get(&key.0)?.is_some() {
                        table.insert(&key.0, &first_key.0)?;
                    }
                }
            }
            txn.commit()?;
            Ok(())
        })?;
        Ok(())
    }

    /// Appends a run's summary to the `runs` table (which keeps the newest
    /// [`format::RUNS_KEPT`]), for the hit rate `cache stats` shows.
    pub fn record_run(&self, run: &RunSummary) -> Result<(), Error> {
        if self.disabled.load(Ordering::Acquire) {
            return Ok(());
        }
        self.with_db(|db| {
            let txn = begin_write(db, false)?;
            {
                let mut runs = txn.open_table(RUNS)?;
                let next = runs.last()?.map_or(0, |(key, _)| key.value() + 1);
                if let Ok(value) = format::seal(&next.to_le_bytes(), run) {
                    runs.insert(next, value.as_slice())?;
                }
                if next >= RUNS_KEPT {
                    runs.retain_in(..=next - RUNS_KEPT, |_, _| false)?;
                }
            }
            txn.commit()?;
            Ok(())
        })?;
        Ok(())
    }

    /// Forgets the record stored under `key` (a result the run found untrustworthy).
    pub fn remove_record(&self, key: &ContentHash) -> Result<(), Error> {
        self.with_db(|db| {
            let txn = begin_write(db, false)?;
            txn.open_table(RECORDS)?.remove(&key.0)?;
            txn.open_table(RECORD_USED)?.remove(&key.0)?;
            txn.commit()?;
            Ok(())
        })?;
        Ok(())
    }

    /// The state stored for `notebook_id` by the last run; `None` when there is none or it is
    /// damaged (logged).
    pub fn get_notebook_state(&self, notebook_id: &str) -> Result<Option<NotebookState>, Error> {
        let raw = self.with_db(|db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(NOTEBOOKS)?;
            Ok(table.get(notebook_id)?.map(|value| value.value().to_vec()))
        })?;
        let Some(raw) = raw.flatten() else {
            return Ok(None);
        };
        match format::unseal(notebook_id.as_bytes(), &raw) {
            Ok(state) => Ok(Some(state)),
            Err(err) => {
                tracing::warn!(
                    "cached state of notebook `{notebook_id}` is damaged ({err}); ignoring it"
                );
                let _ = self.with_db(|db| {
                    let txn = begin_write(db, false)?;
                    txn.open_table(NOTEBOOKS)?.remove(notebook_id)?;
                    txn.commit()?;
                    Ok(())
                });
                Ok(None)
            }
        }
    }

    /// Replaces the state stored for `notebook_id`.
    pub fn put_notebook_state(
        &self,
        notebook_id: &str,
        state: &NotebookState,
    ) -> Result<(), Error> {
        let value = match format::seal(notebook_id.as_bytes(), state) {
            Ok(value) => value,
            Err(err) => {
                tracing::warn!(
                    "state of notebook `{notebook_id}` could not be encoded ({err}); not stored"
                );
                return Ok(());
            }
        };
        self.with_db(|db| {
            let txn = begin_write(db, false)?;
            txn.open_table(NOTEBOOKS)?
                .insert(notebook_id, value.as_slice())?;
            txn.commit()?;
            Ok(())
        })?;
        Ok(())
    }

    /// Makes every write so far durable: the blobs written, then one durable commit (which also
    /// records the last-use time of the records read since the last flush). Call it at the end
    /// of a run.
    pub fn flush(&self) -> Result<(), Error> {
        self.write_pending()?;
        if self.disabled.load(Ordering::Acquire) {
            return Ok(());
        }
        self.blobs
            .sync()
            .map_err(|source| io_error(&self.layout.blobs, source))?;
        self.write_used(true)
    }

    /// Writes the last-use times of the records read since the last call.
    fn write_used(&self, durable: bool) -> Result<(), Error> {
        let used = std::mem::take(&mut *lock(&self.used));
        if used.is_empty() && !durable {
            return Ok(());
        }
        let now = now_unix_s();
        self.with_db(|db| {
            let txn = begin_write(db, durable)?;
            {
                let records = txn.open_table(RECORDS)?;
                let mut record_used = txn.open_table(RECORD_USED)?;
                for key in &used {
                    // A record forgotten since it was read gets no last-use time.
                    if records.get(key)?.is_some() {
                        record_used.insert(key, now)?;
                    }
                }
                if durable {
                    let mut meta = txn.open_table(META)?;
                    meta.insert(META_LAST_FLUSH, now.to_le_bytes().as_slice())?;
                }
            }
            txn.commit()?;
            Ok(())
        })?;
        Ok(())
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.write_pending();
        if !self.disabled.load(Ordering::Acquire) {
            let _ = self.write_used(false);
        }
        if let Some(db) = self.db.take() {
            // Closing commits pending non-durable writes; a damaged file may make redb panic.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(db)));
        }
    }
}
