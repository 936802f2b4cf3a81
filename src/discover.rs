//! Finding notebooks under paths, for `nbmemo check`: `.ipynb` files, and `.py` files with a
//! jupytext percent marker line (`# %%`).
//!
//! Folders are walked with the `ignore` crate (ripgrep's walker): `.gitignore`, `.ignore` and
//! `.git/info/exclude` files are honoured (also outside a git repository), hidden files and
//! folders are skipped, and so are `.ipynb_checkpoints`, `.nbmemo`, `__pycache__`,
//! `node_modules`, `site-packages` and any virtual environment (a folder holding
//! `pyvenv.cfg`). `--exclude` globs have gitignore syntax, relative to the current directory.
//!
//! A file named directly counts whatever the ignore files and `--exclude` say (as with ruff),
//! except that a `.py` file is a notebook only when it has a `# %%` marker line: pre-commit
//! passes every staged `.py` file, and an ordinary module or script must not be executed as a
//! notebook.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};

/// Folder names that are never walked into.
const SKIPPED_DIRS: &[&str] = &[
    ".ipynb_checkpoints",
    ".nbmemo",
    "__pycache__",
    "node_modules",
    "site-packages",
];

/// What to look for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kinds {
    /// `.ipynb` files and percent `.py` scripts.
    All,
    /// `.ipynb` files only (percent scripts have no stored outputs).
    Ipynb,
}

/// An error that stops the search before it starts.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An `--exclude` glob that is not valid gitignore syntax.
    #[error("invalid `--exclude` glob `{glob}`: {message}")]
    BadGlob {
        /// The glob as given.
        glob: String,
        /// What is wrong with it.
        message: String,
    },
}

/// The notebooks found, sorted and without duplicates, and what went wrong on the way.
#[derive(Debug, Default)]
pub struct Found {
    /// The notebooks, sorted by path.
    pub notebooks: Vec<PathBuf>,
    /// Paths given that could not be used (missing, or not a notebook): tool errors.
    pub errors: Vec<String>,
    /// Problems met while walking (an unreadable folder): warnings.
    pub warnings: Vec<String>,
    /// `.py` files named directly that have no `# %%` marker line, left out.
    pub plain_scripts: Vec<PathBuf>,
}

/// Finds the notebooks under `paths`.
///
/// # Errors
///
/// An `--exclude` glob that does not parse.
pub fn find_notebooks(
    paths: &[PathBuf],
    excludes: &[String],
    kinds: Kinds,
) -> Result<Found, Error> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let matcher = exclude_matcher(&cwd, excludes)?;
    let mut found = Found::default();
    let mut notebooks = BTreeSet::new();
    for path in paths {
        let metadata = match std::fs::metadata(path) {
            Ok(metadata) => metadata,
            Err(err) => {
                found.errors.push(format!(
                    "cannot read `{}`: {}",
                    path.display(),
                    io_reason(&err)
                ));
                continue;
            }
        };
        if metadata.is_dir() {
            walk(
                path,
                &cwd,
                &matcher,
                kinds,
                &mut notebooks,
                &mut found.warnings,
            );
            continue;
        }
        match extension(path).as_str() {
            "ipynb" => {
                notebooks.insert(clean(path));
            }
            "py" if kinds == Kinds::All => match has_percent_marker(path) {
                Ok(true) => {
                    notebooks.insert(clean(path));
                }
                Ok(false) => found.plain_scripts.push(clean(path)),
                Err(err) => found.errors.push(format!(
                    "cannot read `{}`: {}",
                    path.display(),
                    io_reason(&err)
                )),
            },
            "py" => found.plain_scripts.push(clean(path)),
            _ => found.errors.push(format!(
                "`{}` is not a notebook: expected an `.ipynb` file or a percent `.py` script",
                path.display()
            )),
        }
    }
    found.notebooks = notebooks.into_iter().collect();
    Ok(found)
}

fn exclude_matcher(cwd: &Path, excludes: &[String]) -> Result<Gitignore, Error> {
    let mut builder = GitignoreBuilder::new(cwd);
    for glob in excludes {
        // `./drafts` means `drafts` relative to the current directory (gitignore has no `./`).
        let line = match glob.strip_prefix("./") {
            Some(rest) => format!("/{rest}"),
            None => glob.clone(),
        };
        builder
            .add_line(None, &line)
            .map_err(|err| Error::BadGlob {
                glob: glob.clone(),
                message: glob_reason(&err.to_string()),
            })?;
    }
    builder.build().map_err(|err| {
        let message = err.to_string();
        let glob = excludes
            .iter()
            .find(|glob| message.contains(&format!("'{glob}'")))
            .map_or_else(|| excludes.join(" "), Clone::clone);
        Error::BadGlob {
            glob,
            message: glob_reason(&message),
        }
    })
}

/// The reason of a glob error, without the `error parsing glob '…': ` prefixes (the `ignore`
/// crate adds one to globset's own).
fn glob_reason(message: &str) -> String {
    let mut reason = message;
    while let Some(rest) = reason.strip_prefix("error parsing glob '") {
        match rest.split_once("': ") {
            Some((_, inner)) => reason = inner,
            None => break,
        }
    }
    reason.to_owned()
}

fn walk(
    root: &Path,
    cwd: &Path,
    excludes: &Gitignore,
    kinds: Kinds,
    notebooks: &mut BTreeSet<PathBuf>,
    warnings: &mut Vec<String>,
) {
    let excludes = excludes.clone();
    let cwd = cwd.to_path_buf();
    let walker = ignore::WalkBuilder::new(root)
        .standard_filters(true)
        .require_git(false)
        .follow_links(false)
        .sort_by_file_name(std::cmp::Ord::cmp)
        .filter_entry(move |entry| {
            let is_dir = entry.file_type().is_some_and(|kind| kind.is_dir());
            if entry.depth() > 0 && is_dir && skipped_dir(entry.path()) {
                return false;
            }
            // Globs are matched against the path from the current directory, without `./`
            // components (the matcher compares path prefixes byte by byte).
            let relative = clean(entry.path());
            let absolute = if relative == Path::new(".") {
                cwd.clone()
            } else {
                cwd.join(relative)
            };
            !excludes.matched(&absolute, is_dir).is_ignore()
        })
        .build();
    for entry in walker {
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) => {
                warnings.push(err.to_string());
                continue;
            }
        };
        if !entry.file_type().is_some_and(|kind| kind.is_file()) {
            continue;
        }
        let path = entry.path();
        match extension(path).as_str() {
            "ipynb" => {
                notebooks.insert(clean(path));
            }
            "py" if kinds == Kinds::All => match has_percent_marker(path) {
                Ok(true) => {
                    notebooks.insert(clean(path));
                }
                Ok(false) => {}
                Err(err) => warnings.push(format!(
                    "cannot read `{}`: {}",
                    path.display(),
                    io_reason(&err)
                )),
            },
            _ => {}
        }
    }
}

/// A folder never walked into: by name, or a virtual environment.
fn skipped_dir(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("");
    SKIPPED_DIRS.contains(&name) || path.join("pyvenv.cfg").is_file()
}

/// The lowercase extension.
fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|ext| ext.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// The path without `.` components (`./nbs/a.ipynb` and `nbs/a.ipynb` are one notebook).
fn clean(path: &Path) -> PathBuf {
    let cleaned: PathBuf = path
        .components()
        .filter(|component| !matches!(component, Component::CurDir))
        .collect();
    if cleaned.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        cleaned
    }
}

/// Whether the file has a jupytext percent cell marker: a line `# %%` (or `#%%`), alone or
/// followed by whitespace and a title or options, as `# %% [markdown]`. `# %%time` is a
/// commented magic, not a marker.
fn has_percent_marker(path: &Path) -> std::io::Result<bool> {
    let bytes = std::fs::read(path)?;
    Ok(contains_percent_marker(&String::from_utf8_lossy(&bytes)))
}

fn contains_percent_marker(text: &str) -> bool {
    text.lines().any(|line| {
        let Some(rest) = line.trim_start().strip_prefix('#') else {
            return false;
        };
        let Some(rest) = rest.trim_start().strip_prefix("%%") else {
            return false;
        };
        let rest = rest.trim_start_matches('%');
        rest.is_empty() || rest.starts_with(char::is_whitespace)
    })
}

/// The OS reason of an I/O error, without the path (the message names it).
fn io_reason(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_markers() {
        for text in [
            "# %%\nx = 1",
            "#%%\nx = 1",
            "import os\n# %% setup\n",
            "  # %% [markdown]\n# hi",
            "# %%% sub-cell\n",
            "#  %%\t\n",
        ] {
            assert!(contains_percent_marker(text), "{text:?}");
        }
        for text in [
            "x = 1\n",
            "# %%time\nx = 1",
            "print('# %%')\n",
            "# a comment about %%\n",
            "",
        ] {
            assert!(!contains_percent_marker(text), "{text:?}");
        }
    }

    #[test]
    fn clean_drops_current_dir_components() {
        assert_eq!(
            clean(Path::new("./nbs/./a.ipynb")),
            PathBuf::from("nbs/a.ipynb")
        );
        assert_eq!(clean(Path::new(".")), PathBuf::from("."));
        assert_eq!(clean(Path::new("../x.ipynb")), PathBuf::from("../x.ipynb"));
    }

    #[test]
    fn bad_glob_is_an_error() {
        let err = exclude_matcher(Path::new("/tmp"), &["a{b".to_owned()])
            .expect_err("an unclosed alternate group");
        assert_eq!(
            err.to_string(),
            "invalid `--exclude` glob `a{b`: unclosed alternate group; missing '}' (maybe escape '{' with '[{]'?)"
        );
    }
}
