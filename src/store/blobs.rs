//! Large artifacts as files named by their hash, beside the database.
//!
//! redb's file grows to about 2.5× its payload until compacted (DEPENDENCIES.md), so artifacts
//! above [`INLINE_ARTIFACT_MAX`](super::format::INLINE_ARTIFACT_MAX) bytes live in `blobs/`
//! instead. A blob is written to a temporary file and renamed into place, so a reader never sees
//! half a blob under its final name; whatever a crash leaves behind is caught by the blake3 check
//! every read makes (in `Store::get_artifact`). A blob that compresses well is kept compressed,
//! as `<hash>.zst`, and verified after decompression. Files are made durable in batches by
//! [`Blobs::sync`], which `Store::flush` calls.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::hash::ContentHash;

/// The prefix of temporary files in `blobs/`; anything with it is garbage once no nbmemo
/// process holds the store.
pub(crate) const TEMP_PREFIX: &str = ".tmp-";

/// The suffix of a blob file compressed with zstd.
pub(crate) const ZSTD_SUFFIX: &str = ".zst";

/// The `blobs/` directory of a store.
#[derive(Debug)]
pub(crate) struct Blobs {
    dir: PathBuf,
    /// Blobs written since the last [`Blobs::sync`].
    unsynced: Mutex<Vec<PathBuf>>,
    /// Makes temporary names unique within the process (the pid makes them unique across).
    next_temp: AtomicU64,
}

impl Blobs {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Blobs {
            dir,
            unsynced: Mutex::new(Vec::new()),
            next_temp: AtomicU64::new(0),
        }
    }

    /// The directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of the blob `hash`: `blobs/<64 hex digits>`.
    pub(crate) fn path(&self, hash: &ContentHash) -> PathBuf {
        self.dir.join(hash.to_string())
    }

    /// The file of the blob `hash` compressed with zstd: `blobs/<64 hex digits>.zst`.
    pub(crate) fn zstd_path(&self, hash: &ContentHash) -> PathBuf {
        self.dir.join(format!("{hash}{ZSTD_SUFFIX}"))
    }

    /// The file of the blob `hash`, compressed or not.
    pub(crate) fn file(&self, hash: &ContentHash, compressed: bool) -> PathBuf {
        if compressed {
            self.zstd_path(hash)
        } else {
            self.path(hash)
        }
    }

    /// Writes `bytes` as the file `path` of `blobs/` (temporary file, then rename), replacing any
    /// file there.
    pub(crate) fn write(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let n = self.next_temp.fetch_add(1, Ordering::Relaxed);
        let temp = self
            .dir
            .join(format!("{TEMP_PREFIX}{}-{n}", std::process::id()));
        let path = path.to_path_buf();
        let res = fs_err::write(&temp, bytes).and_then(|()| fs_err::rename(&temp, &path));
        if res.is_err() {
            let _ = fs_err::remove_file(&temp);
        }
        res?;
        lock(&self.unsynced).push(path);
        Ok(())
    }

    /// Reads the blob file `path`; `None` when it is missing. The caller verifies the bytes.
    pub(crate) fn read(path: &Path) -> io::Result<Option<Vec<u8>>> {
        match fs_err::read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Whether the blob file `path` exists with length `len` (a cheap check: the content is
    /// verified on read).
    pub(crate) fn exists(path: &Path, len: u64) -> io::Result<bool> {
        match fs_err::metadata(path) {
            Ok(meta) => Ok(meta.is_file() && meta.len() == len),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Removes the blob `hash` (both its raw and its compressed file), if present.
    pub(crate) fn remove(&self, hash: &ContentHash) -> io::Result<()> {
        for path in [self.path(hash), self.zstd_path(hash)] {
            match fs_err::remove_file(path) {
                Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
                _ => {}
            }
        }
        Ok(())
    }

    /// Makes the blobs written since the last call durable: their contents, then the directory
    /// entries that name them.
    pub(crate) fn sync(&self) -> io::Result<()> {
        let unsynced = std::mem::take(&mut *lock(&self.unsynced));
        if unsynced.is_empty() {
            return Ok(());
        }
        for path in &unsynced {
            // A blob removed since (found damaged, or rewritten under the same name) is fine.
            match fs_err::OpenOptions::new().write(true).open(path) {
                Ok(file) => file.sync_all()?,
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
        }
        sync_dir(&self.dir)
    }
}

/// Makes a directory's entries durable (a no-op where directories cannot be opened as files).
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        fs_err::File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Locks a mutex, ignoring poisoning: the guarded lists stay valid whatever panicked.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
