//! Files as build inputs and outputs (SPEC "Files").
//!
//! The worker reports, per cell, the paths under the project root it read, listed and wrote
//! (`PROTOCOL.md`, "Files"). Here the parent turns them into key inputs (content hashes, with a
//! stat-validated memo so a file read by many cells is hashed once), into stored outputs, and
//! back into files on a cache hit.
//!
//! Paths are relative to the project root, `/`-separated; a directory *listing* is the
//! directory's path with a trailing `/` (`data/`, the root's is `./`). A path read that does
//! not exist has a fixed hash of its own, so creating it later changes the key.
//!
//! **Invariant:** a restore writes only under the project root: a stored path that is
//! absolute, climbs with `..`, or goes through a symlink leading elsewhere is refused.

use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

use rustc_hash::FxHashMap;

use crate::hash::ContentHash;
use crate::store::{FileOutput, Store};

/// What a cell did to files, as the worker reported it (paths relative to the root).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FileAccess {
    /// Files read (and, as `dir/`, directories listed), sorted.
    pub read: Vec<String>,
    /// Paths written, created, removed or renamed, sorted.
    pub written: Vec<String>,
}

impl FileAccess {
    /// From the worker's lists: files read, directories listed, paths written.
    pub fn new(read: &[String], listed: &[String], written: &[String]) -> FileAccess {
        let mut reads: Vec<String> = read
            .iter()
            .cloned()
            .chain(listed.iter().map(|dir| listing(dir)))
            .collect();
        reads.sort();
        reads.dedup();
        let mut writes = written.to_vec();
        writes.sort();
        writes.dedup();
        FileAccess {
            read: reads,
            written: writes,
        }
    }

    /// Whether the cell touched no file.
    pub fn is_empty(&self) -> bool {
        self.read.is_empty() && self.written.is_empty()
    }

    /// Whether `self` (earlier in the notebook) and `later` touched a common path (or one
    /// inside the other) in a way whose order matters, and how.
    pub fn conflict(&self, later: &FileAccess) -> Option<Conflict> {
        let later_all = || later.read.iter().chain(&later.written);
        for written in &self.written {
            if let Some(path) = later_all().find(|path| related(written, path)) {
                return Some(Conflict::Follows(path.clone()));
            }
        }
        for written in &later.written {
            if let Some(path) = self.read.iter().find(|path| related(written, path)) {
                return Some(Conflict::Overwrote(path.clone()));
            }
        }
        None
    }
}

/// How two cells' file accesses depend on their order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// The earlier cell wrote the path (or a folder holding it): the later one must follow it.
    Follows(String),
    /// The later cell wrote what the earlier one read.
    Overwrote(String),
}

/// Whether accesses to `a` and `b` can affect each other: the same path, one inside the other
/// (a folder created, removed or listed and a file in it).
fn related(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim_end_matches('/'), b.trim_end_matches('/'));
    let inside = |path: &str, dir: &str| {
        dir == "."
            || (path.len() > dir.len()
                && path.starts_with(dir)
                && path.as_bytes()[dir.len()] == b'/')
    };
    a == b || inside(a, b) || inside(b, a)
}

/// The listing entry of directory `dir` (`"."` → `"./"`).
pub fn listing(dir: &str) -> String {
    if dir.ends_with('/') {
        dir.to_string()
    } else {
        format!("{dir}/")
    }
}

/// The listing entry of the directory holding `path`.
pub fn parent_listing(path: &str) -> String {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some((parent, _)) => format!("{parent}/"),
        None => "./".to_string(),
    }
}

/// The hash of a path that does not exist.
fn absent() -> ContentHash {
    blake3::hash(b"nbmemo: no such file").into()
}

/// Content hashes of files and listings, remembered by size and modification time.
#[derive(Default)]
pub struct FileHasher {
    memo: Mutex<FxHashMap<PathBuf, (u64, u128, ContentHash)>>,
}

impl FileHasher {
    /// `(path, hash)` for each of `paths` (relative to `root`), in order.
    pub fn hashes(&self, root: &Path, paths: &[String]) -> Vec<(String, ContentHash)> {
        paths
            .iter()
            .map(|path| (path.clone(), self.hash(root, path)))
            .collect()
    }

    /// The hash of one path: a file's content (blake3 of its bytes, as its artifact), a
    /// listing's sorted names, or the fixed hash of a missing path.
    pub fn hash(&self, root: &Path, path: &str) -> ContentHash {
        let is_listing = path.ends_with('/');
        let full = root.join(path.trim_end_matches('/'));
        let Ok(meta) = std::fs::metadata(&full) else {
            return absent();
        };
        if is_listing || meta.is_dir() {
            return listing_hash(&full);
        }
        let modified = meta
            .modified()
            .ok()
            .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |time| time.as_nanos());
        if let Some(&(len, time, hash)) = lock(&self.memo).get(&full)
            && len == meta.len()
            && time == modified
        {
            return hash;
        }
        let Some(hash) = hash_file(&full) else {
            return absent();
        };
        lock(&self.memo).insert(full, (meta.len(), modified, hash));
        hash
    }

    /// Forgets what is remembered about `paths` (a cell wrote them).
    pub fn forget(&self, root: &Path, paths: &[String]) {
        let mut memo = lock(&self.memo);
        for path in paths {
            memo.remove(&root.join(path.trim_end_matches('/')));
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn hash_file(path: &Path) -> Option<ContentHash> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut hasher = blake3::Hasher::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buffer[..n]);
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(hasher.finalize().into())
}

/// The content hash of the file at `path` (blake3 of its bytes), or the hash of a missing path.
pub fn file_hash(path: &Path) -> ContentHash {
    hash_file(path).unwrap_or_else(absent)
}

/// The hash of a folder's sorted entry names (a missing folder: the hash of a missing path).
pub fn listing_hash(dir: &Path) -> ContentHash {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return absent();
    };
    let mut names: Vec<Vec<u8>> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().into_encoded_bytes())
        .collect();
    names.sort();
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"nbmemo listing\n");
    for name in names {
        hasher.update(&(name.len() as u64).to_le_bytes());
        hasher.update(&name);
    }
    hasher.finalize().into()
}

/// Stores what a cell left at the paths it wrote: a file's bytes as an artifact, a created
/// directory, or the path's absence.
pub fn capture_outputs(
    root: &Path,
    written: &[String],
    store: &Store,
) -> Result<Vec<FileOutput>, crate::store::Error> {
    let mut outputs = Vec::new();
    for path in written {
        let full = root.join(path);
        let output = match std::fs::symlink_metadata(&full) {
            Ok(meta) if meta.is_dir() => FileOutput {
                path: path.clone(),
                artifact: None,
                dir: true,
            },
            Ok(meta) if meta.is_file() => match std::fs::read(&full) {
                Ok(bytes) => FileOutput {
                    path: path.clone(),
                    artifact: Some(store.put_artifact(&bytes)?),
                    dir: false,
                },
                Err(_) => continue,
            },
            // A symlink or something else: not restorable, not stored.
            Ok(_) => continue,
            Err(_) => FileOutput {
                path: path.clone(),
                artifact: None,
                dir: false,
            },
        };
        outputs.push(output);
    }
    Ok(outputs)
}

/// Puts back the files and directories a replayed cell wrote, where they are missing or
/// different. Returns a warning per path refused or not restored.
pub fn restore_outputs(
    root: &Path,
    outputs: &[FileOutput],
    store: &Store,
    hasher: &FileHasher,
) -> Vec<String> {
    let mut warnings = Vec::new();
    for output in outputs {
        if output.artifact.is_none() && !output.dir {
            continue; // the cell removed it: nothing to restore
        }
        let target = match safe_target(root, &output.path) {
            Ok(target) => target,
            Err(why) => {
                warnings.push(format!(
                    "refused to restore `{}`: {why}",
                    output.path.escape_debug()
                ));
                continue;
            }
        };
        if output.dir {
            if let Err(err) = std::fs::create_dir_all(&target) {
                warnings.push(format!("could not restore `{}`: {err}", output.path));
            }
            continue;
        }
        let Some(artifact) = output.artifact else {
            continue;
        };
        if hasher.hash(root, &output.path) == artifact {
            continue;
        }
        let bytes = match store.get_artifact(&artifact) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                warnings.push(format!(
                    "could not restore `{}`: its content is missing from the cache",
                    output.path
                ));
                continue;
            }
            Err(err) => {
                warnings.push(format!("could not restore `{}`: {err}", output.path));
                continue;
            }
        };
        if let Err(err) = write_atomically(&target, &bytes) {
            warnings.push(format!("could not restore `{}`: {err}", output.path));
        }
        hasher.forget(root, std::slice::from_ref(&output.path));
    }
    warnings
}

/// Where a stored relative path lands under `root`, if it stays there: not absolute, no `..`,
/// no component that is a symlink to outside the root, and not itself a symlink.
pub fn safe_target(root: &Path, path: &str) -> Result<PathBuf, String> {
    let relative = Path::new(path);
    if path.is_empty() || path.contains('\0') {
        return Err("the path is empty or invalid".to_string());
    }
    let mut target = root.to_path_buf();
    let real_root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    for component in relative.components() {
        match component {
            Component::Normal(part) => {
                target.push(part);
                if let Ok(meta) = std::fs::symlink_metadata(&target)
                    && meta.file_type().is_symlink()
                {
                    let resolved = std::fs::canonicalize(&target)
                        .map_err(|_| "it goes through a broken symlink".to_string())?;
                    if !resolved.starts_with(&real_root) {
                        return Err(format!(
                            "it goes through a symlink to `{}`, outside the project",
                            resolved.display()
                        ));
                    }
                }
            }
            Component::CurDir => {}
            Component::ParentDir => return Err("it climbs out with `..`".to_string()),
            Component::RootDir | Component::Prefix(_) => {
                return Err("it is absolute".to_string());
            }
        }
    }
    if target == root {
        return Err("it is the project root itself".to_string());
    }
    if std::fs::symlink_metadata(&target).is_ok_and(|meta| meta.file_type().is_symlink()) {
        return Err("it is a symlink".to_string());
    }
    Ok(target)
}

/// Writes `bytes` to `target` through a temporary file in the same directory and a rename.
fn write_atomically(target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = target.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut temp, bytes)?;
    temp.persist(target).map_err(|err| err.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_and_parents() {
        assert_eq!(listing("."), "./");
        assert_eq!(listing("data"), "data/");
        assert_eq!(parent_listing("data/x.csv"), "data/");
        assert_eq!(parent_listing("x.csv"), "./");
    }

    #[test]
    fn conflicts_in_notebook_order() {
        let access = |read: &[&str], written: &[&str]| FileAccess {
            read: read.iter().map(|s| s.to_string()).collect(),
            written: written.iter().map(|s| s.to_string()).collect(),
        };
        let writer = access(&[], &["out/a.txt"]);
        let follows = |path: &str| Some(Conflict::Follows(path.into()));
        assert_eq!(
            writer.conflict(&access(&["out/a.txt"], &[])),
            follows("out/a.txt")
        );
        assert_eq!(writer.conflict(&access(&["out/"], &[])), follows("out/"));
        assert_eq!(
            writer.conflict(&access(&[], &["out/a.txt"])),
            follows("out/a.txt")
        );
        assert_eq!(writer.conflict(&access(&["./"], &[])), follows("./"));
        let mkdir = access(&[], &["out"]);
        assert_eq!(
            mkdir.conflict(&access(&[], &["out/notes.txt"])),
            follows("out/notes.txt")
        );
        assert_eq!(
            access(&["in.csv"], &[]).conflict(&access(&[], &["in.csv"])),
            Some(Conflict::Overwrote("in.csv".into()))
        );
        assert_eq!(
            writer.conflict(&access(&["other.txt", "outx"], &["b.txt"])),
            None
        );
        assert_eq!(
            access(&["a.txt"], &[]).conflict(&access(&["a.txt"], &[])),
            None
        );
    }

    #[test]
    fn hashes_follow_content_and_listings() {
        let dir = tempfile::tempdir().expect("test setup");
        let root = dir.path();
        let hasher = FileHasher::default();
        let missing = hasher.hash(root, "a.txt");
        std::fs::write(root.join("a.txt"), "one").expect("test setup");
        let one = hasher.hash(root, "a.txt");
        assert_ne!(missing, one);
        assert_eq!(one, ContentHash::of(b"one"));
        let listed = hasher.hash(root, "./");
        std::fs::write(root.join("a.txt"), "two!").expect("test setup");
        assert_ne!(hasher.hash(root, "a.txt"), one);
        assert_eq!(hasher.hash(root, "./"), listed, "same names");
        std::fs::write(root.join("b.txt"), "").expect("test setup");
        assert_ne!(hasher.hash(root, "./"), listed, "a new name");
    }

    #[test]
    fn restores_refuse_paths_leaving_the_root() {
        let dir = tempfile::tempdir().expect("test setup");
        let root = dir.path().join("project");
        std::fs::create_dir(&root).expect("test setup");
        assert!(safe_target(&root, "../evil.txt").is_err());
        assert!(safe_target(&root, "/etc/passwd").is_err());
        assert!(safe_target(&root, "a/../../evil.txt").is_err());
        assert!(safe_target(&root, "").is_err());
        assert!(safe_target(&root, "out/ok.txt").is_ok());
        #[cfg(unix)]
        {
            let outside = dir.path().join("outside");
            std::fs::create_dir(&outside).expect("test setup");
            std::os::unix::fs::symlink(&outside, root.join("link")).expect("test setup");
            let err = safe_target(&root, "link/evil.txt").expect_err("refused");
            assert!(err.contains("outside the project"), "{err}");
            std::fs::create_dir(root.join("out")).expect("test setup");
            std::os::unix::fs::symlink(root.join("out"), root.join("inside")).expect("test setup");
            assert!(safe_target(&root, "inside/ok.txt").is_ok());
        }
    }
}
