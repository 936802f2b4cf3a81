//! The environment fingerprint: what about the Python environment enters every cell key.
//!
//! It hashes the interpreter's implementation, version and platform (not its path, so a cache
//! moves between machines with the same environment), the installed distributions with their
//! versions (cloudpickle among them), nbmemo's version and the format version. Learning these
//! needs a Python process (the distributions are read from the `*.dist-info` and `*.egg-info`
//! entries of its site-packages directories), so the answer is remembered per interpreter in
//! `interpreters.json` beside the store, stamped with the size and mtime of the interpreter
//! and of its site-packages directories (installing, upgrading or removing a package changes
//! them): while the stamp holds, a run knows its fingerprint without starting Python.

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
    /// The installed distributions, `name==version`, sorted.
    pub distributions: Vec<String>,
}

impl Environment {
    /// The environment a worker's `hello` describes.
    pub fn from_hello(hello: &Hello) -> Environment {
        let distributions = distributions(&hello.site_dirs);
        let python = &hello.python;
        let cloudpickle = hello.cloudpickle.as_deref().unwrap_or("none");
        let mut hasher = blake3::Hasher::new();
        let format_version = FORMAT_VERSION.to_string();
        let fixed = [
            "nbmemo environment 2",
            env!("CARGO_PKG_VERSION"),
            &format_version,
            &python.implementation,
            &python.version,
            &python.platform,
            cloudpickle,
        ];
        hasher.update(&(distributions.len() as u64).to_le_bytes());
        for part in fixed
            .iter()
            .copied()
            .chain(distributions.iter().map(String::as_str))
        {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        Environment {
            distributions,
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

impl Environment {
    /// Why this environment differs from one with `previous` distributions, for "why did this
    /// run": `environment changed: numpy 2.2.6 → 2.3.0, rich 13.7.1 installed`.
    pub fn changes_since(&self, previous: &[String]) -> String {
        let split = |entry: &String| -> (String, String) {
            match entry.split_once("==") {
                Some((name, version)) => (name.to_string(), version.to_string()),
                None => (entry.clone(), String::new()),
            }
        };
        let before: BTreeMap<String, String> = previous.iter().map(split).collect();
        let now: BTreeMap<String, String> = self.distributions.iter().map(split).collect();
        let mut changes = Vec::new();
        for (name, version) in &now {
            match before.get(name) {
                Some(old) if old != version => changes.push(format!("{name} {old} → {version}")),
                None if !before.is_empty() => changes.push(format!("{name} {version} installed")),
                _ => {}
            }
        }
        for (name, version) in &before {
            if !now.contains_key(name) {
                changes.push(format!("{name} {version} removed"));
            }
        }
        if changes.is_empty() {
            return format!("environment changed (now {})", self.description);
        }
        let shown = changes.len().min(3);
        let more = changes.len() - shown;
        let mut text = format!("environment changed: {}", changes[..shown].join(", "));
        if more > 0 {
            text.push_str(&format!(" and {more} more"));
        }
        text
    }
}

/// The distributions installed in `site_dirs`, `name==version` (names normalized as PEP 503
/// does), sorted, from the names of their `*.dist-info` and `*.egg-info` entries.
pub fn distributions(site_dirs: &[String]) -> Vec<String> {
    let mut found = std::collections::BTreeSet::new();
    for dir in site_dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                continue;
            };
            let stem = name
                .strip_suffix(".dist-info")
                .or_else(|| name.strip_suffix(".egg-info"));
            let Some((project, rest)) = stem.and_then(|stem| stem.split_once('-')) else {
                continue;
            };
            // `name-1.0-py3.11.egg-info`: the version ends at the next dash.
            let version = rest.split('-').next().unwrap_or(rest);
            let normalized: String = project
                .chars()
                .map(|c| match c {
                    '_' | '.' => '-',
                    c => c.to_ascii_lowercase(),
                })
                .collect();
            found.insert(format!("{normalized}=={version}"));
        }
    }
    found.into_iter().collect()
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
    /// The encoding of `fingerprint` (entries of another one are ignored).
    #[serde(default)]
    version: u32,
    stamp: String,
    site_dirs: Vec<String>,
    executable: Option<String>,
    fingerprint: String,
    description: String,
    #[serde(default)]
    distributions: Vec<String>,
}

/// The version of [`Remembered`] entries this build writes.
const REMEMBERED_VERSION: u32 = 2;

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
        if entry.version != REMEMBERED_VERSION {
            return None;
        }
        let executable = entry.executable.as_deref().map(Path::new);
        if stamp(python, executable, &entry.site_dirs) != entry.stamp {
            return None;
        }
        let fingerprint = parse_hash(&entry.fingerprint)?;
        Some(Environment {
            fingerprint,
            description: entry.description.clone(),
            distributions: entry.distributions.clone(),
        })
    }

    /// Remembers what a worker of `python` said; saves the file (best effort).
    pub fn remember(&mut self, python: &Path, hello: &Hello) -> Environment {
        let environment = Environment::from_hello(hello);
        let executable = hello.executable.as_deref().map(Path::new);
        let entry = Remembered {
            version: REMEMBERED_VERSION,
            stamp: stamp(python, executable, &hello.site_dirs),
            site_dirs: hello.site_dirs.clone(),
            executable: hello.executable.clone(),
            fingerprint: environment.fingerprint.to_string(),
            description: environment.description.clone(),
            distributions: environment.distributions.clone(),
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
