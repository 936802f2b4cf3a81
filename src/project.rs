//! Where a notebook's project and cache are: the project root is the nearest folder above the
//! notebook holding `.git` or `pyproject.toml`, else the notebook's own folder; the cache is
//! `.nbmemo/` there unless `--cache-dir` or `NBMEMO_CACHE_DIR` says otherwise.

use std::path::{Path, PathBuf};

/// The project root of a notebook (absolute).
pub fn project_root(notebook: &Path) -> PathBuf {
    let absolute = std::path::absolute(notebook).unwrap_or_else(|_| notebook.to_path_buf());
    let folder = absolute
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    folder_root(&folder)
}

/// The project root of a folder (absolute): the nearest folder at or above it holding `.git` or
/// `pyproject.toml`, else the folder itself.
pub fn folder_root(folder: &Path) -> PathBuf {
    let folder = std::path::absolute(folder).unwrap_or_else(|_| folder.to_path_buf());
    let mut dir = Some(folder.as_path());
    while let Some(current) = dir {
        if current.join(".git").exists() || current.join("pyproject.toml").exists() {
            return current.to_path_buf();
        }
        dir = current.parent();
    }
    folder
}

/// The cache directory for a notebook.
pub fn cache_dir(notebook: &Path, flag: Option<&Path>) -> PathBuf {
    match flag {
        Some(dir) => dir.to_path_buf(),
        None => project_root(notebook).join(".nbmemo"),
    }
}

/// The id under which the store remembers a notebook: its path relative to the project root.
pub fn notebook_id(notebook: &Path) -> String {
    let absolute = std::path::absolute(notebook).unwrap_or_else(|_| notebook.to_path_buf());
    let root = project_root(notebook);
    absolute
        .strip_prefix(&root)
        .unwrap_or(&absolute)
        .to_string_lossy()
        .replace('\\', "/")
}
