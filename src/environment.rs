//! The environment fingerprint: what about the Python environment enters every cell key.
//!
//! It hashes the interpreter's implementation, version and platform (not its path, so a cache
//! moves between machines with the same environment), cloudpickle's version, nbmemo's version
//! and the format version. Learning these needs a Python process, so the answer is remembered
//! per interpreter in `interpreters.json` beside the store, stamped with the size and mtime of
//! the interpreter and of its site-packages directories: while the stamp holds, a run knows its
//! fingerprint without starting Python.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::exec::protocol::Hello;
use crate::hash::ContentHash;
use crate::key::FORMAT_VERSION;

/// The environment as it enters keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    /// The fingerprint hashed into every key.
    pub fingerprint: ContentHash,
    /// A short description for messages (`CPython 3.11.7 on linux-x86_64, cloudpickle 3.1.2`).
    pub description: String,
}

impl Environment {
    /// The environment a worker's `hello` describes.
    pub fn from_hello(hello: &Hello) -> Environment {
        let python = &hello.python;
        let cloudpickle = hello.cloudpickle.as_deref().unwrap_or("none");
        let mut hasher = blake3::Hasher::new();
        for part in [
            "nbmemo environment 1",
            env!("CARGO_PKG_VERSION"),
            &FORMAT_VERSION.to_string(),
            &python.implementation,
            &python.version,
            &python.platform,
            cloudpickle,
        ] {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        Environment {
            fingerprint: hasher.finalize().into(),
            description: format!(
                "{} {} on {}, cloudpickle {cloudpickle}",
                display_implementation(&python.implementation),
                python.version,
                python.platform
            ),
        }
    }
}

fn display_implementation(name: &str) -> &str {
    match name {
        "cpython" => "CPython",
        "pypy" => "PyPy",
        other => other,
    }
}

/// What `interpreters.json` remembers about one interpreter.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Remembered {
    stamp: String,
    site_dirs: Vec<String>,
    executable: Option<String>,
    fingerprint: String,
    description: String,
}

/// The remembered environments, per interpreter path, in a JSON file.
pub struct InterpreterCache {
    path: PathBuf,
    entries: BTreeMap<String, Remembered>,
}

impl InterpreterCache {
    /// Loads `dir/interpreters.json` (an unreadable file is an empty cache).
    pub fn load(dir: &Path) -> InterpreterCache {
        let path = dir.join("interpreters.json");
        let entries = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        InterpreterCache { path, entries }
    }

    /// The environment of `python`, if remembered and still valid.
    pub fn lookup(&self, python: &Path) -> Option<Environment> {
        let entry = self.entries.get(&key_of(python))?;
        let executable = entry.executable.as_deref().map(Path::new);
        if stamp(python, executable, &entry.site_dirs) != entry.stamp {
            return None;
        }
        let fingerprint = parse_hash(&entry.fingerprint)?;
        Some(Environment {
            fingerprint,
            description: entry.description.clone(),
        })
    }

    /// Remembers what a worker of `python` said; saves the file (best effort).
    pub fn remember(&mut self, python: &Path, hello: &Hello) -> Environment {
        let environment = Environment::from_hello(hello);
        let executable = hello.executable.as_deref().map(Path::new);
        let entry = Remembered {
            stamp: stamp(python, executable, &hello.site_dirs),
            site_dirs: hello.site_dirs.clone(),
            executable: hello.executable.clone(),
            fingerprint: environment.fingerprint.to_string(),
            description: environment.description.clone(),
        };
        if self.entries.get(&key_of(python)) != Some(&entry) {
            self.entries.insert(key_of(python), entry);
            if let Ok(json) = serde_json::to_vec_pretty(&self.entries) {
                let tmp = self.path.with_extension("json.tmp");
                if std::fs::write(&tmp, json).is_ok() {
                    let _ = std::fs::rename(&tmp, &self.path);
                }
            }
        }
        environment
    }
}

fn key_of(python: &Path) -> String {
    which(python)
        .unwrap_or_else(|| python.to_path_buf())
        .display()
        .to_string()
}

/// `python` resolved on `PATH` when it is a bare name.
pub fn which(python: &Path) -> Option<PathBuf> {
    if python.components().count() > 1 {
        return std::path::absolute(python).ok();
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(python))
        .find(|candidate| candidate.is_file())
}

/// Size and modification time of the interpreter (as given and as it reported itself) and of
/// its site-packages directories, plus the variables that select a pyenv version.
fn stamp(python: &Path, executable: Option<&Path>, site_dirs: &[String]) -> String {
    let mut parts = Vec::new();
    let resolved = which(python);
    let mut files: Vec<PathBuf> = resolved.iter().cloned().collect();
    if let Some(resolved) = &resolved
        && let Ok(target) = std::fs::canonicalize(resolved)
    {
        files.push(target);
    }
    files.extend(executable.map(Path::to_path_buf));
    files.extend(site_dirs.iter().map(PathBuf::from));
    for file in files {
        let meta = std::fs::metadata(&file).ok();
        let modified = meta
            .as_ref()
            .and_then(|meta| meta.modified().ok())
            .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |time| time.as_nanos());
        let size = meta.map_or(0, |meta| meta.len());
        parts.push(format!("{}:{size}:{modified}", file.display()));
    }
    // A launcher script (a pyenv shim) picks the interpreter at run time, from these.
    let is_script = resolved
        .as_ref()
        .and_then(|path| std::fs::read(path).ok())
        .is_some_and(|bytes| bytes.starts_with(b"#!"));
    if is_script {
        for var in ["PYENV_VERSION", "PYENV_ROOT", "VIRTUAL_ENV"] {
            parts.push(format!("{var}={}", std::env::var(var).unwrap_or_default()));
        }
        let mut dir = std::env::current_dir().ok();
        while let Some(current) = dir {
            if let Ok(version) = std::fs::read_to_string(current.join(".python-version")) {
                parts.push(format!("{}={}", current.display(), version.trim()));
            }
            dir = current.parent().map(Path::to_path_buf);
        }
        if let Some(home) = std::env::var_os("HOME") {
            let global = Path::new(&home).join(".pyenv").join("version");
            parts.push(
                std::fs::read_to_string(global)
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            );
        }
    }
    parts.join("|")
}

fn parse_hash(hex: &str) -> Option<ContentHash> {
    if hex.len() != 64 {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (idx, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(idx * 2..idx * 2 + 2)?, 16).ok()?;
    }
    Some(ContentHash(bytes))
}
