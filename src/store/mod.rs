//! TEMPORARY stand-in for the redb store (being written); same API, files on disk.
#![allow(missing_docs, clippy::missing_errors_doc)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::hash::ContentHash;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the cache `{}` is in use by another nbmemo process (pid {pid})", path.display())]
    Busy { pid: u32, path: PathBuf },
    #[error("cache I/O error at `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordStatus {
    Ok,
    Error,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub ename: String,
    pub evalue: String,
    pub traceback: Vec<String>,
    pub line: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValueGroup {
    pub names: Vec<String>,
    pub artifact: ContentHash,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unpicklable {
    pub name: String,
    pub type_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellRecord {
    pub status: RecordStatus,
    pub stdout: String,
    pub stderr: String,
    pub outputs: Vec<serde_json::Value>,
    pub error: Option<ErrorInfo>,
    pub values: Vec<ValueGroup>,
    pub deleted: Vec<String>,
    pub mutated: Vec<String>,
    pub unpicklable: Vec<Unpicklable>,
    pub duration_s: f64,
    pub created_unix_s: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellTrace {
    pub code_hash: ContentHash,
    pub env: ContentHash,
    pub inputs: Vec<(String, ContentHash)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct NotebookState {
    pub cell_keys: Vec<Option<ContentHash>>,
    #[serde(default)]
    pub traces: Vec<Option<CellTrace>>,
    pub refuted: Vec<(ContentHash, String)>,
    pub confirmed: Vec<(ContentHash, String)>,
    pub updated_unix_s: u64,
}

pub struct Store {
    dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Store {
    pub fn open(dir: &Path, _wait: Duration) -> Result<Store, Error> {
        let dir = dir.join("stub");
        std::fs::create_dir_all(dir.join("a")).map_err(io(&dir))?;
        std::fs::create_dir_all(dir.join("r")).map_err(io(&dir))?;
        std::fs::create_dir_all(dir.join("n")).map_err(io(&dir))?;
        Ok(Store { dir })
    }
    pub fn put_artifact(&self, bytes: &[u8]) -> Result<ContentHash, Error> {
        let hash = ContentHash::of(bytes);
        let path = self.dir.join("a").join(hash.to_string());
        std::fs::write(&path, bytes).map_err(io(&path))?;
        Ok(hash)
    }
    pub fn get_artifact(&self, hash: &ContentHash) -> Result<Option<Vec<u8>>, Error> {
        Ok(std::fs::read(self.dir.join("a").join(hash.to_string()))
            .ok()
            .filter(|b| ContentHash::of(b) == *hash))
    }
    pub fn has_artifact(&self, hash: &ContentHash) -> Result<bool, Error> {
        Ok(self.dir.join("a").join(hash.to_string()).exists())
    }
    pub fn get_record(&self, key: &ContentHash) -> Result<Option<CellRecord>, Error> {
        Ok(std::fs::read(self.dir.join("r").join(key.to_string()))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok()))
    }
    pub fn put_record(&self, key: &ContentHash, record: &CellRecord) -> Result<(), Error> {
        let path = self.dir.join("r").join(key.to_string());
        std::fs::write(&path, serde_json::to_vec(record).unwrap_or_default()).map_err(io(&path))
    }
    pub fn get_notebook_state(&self, id: &str) -> Result<Option<NotebookState>, Error> {
        Ok(std::fs::read(self.dir.join("n").join(id.replace('/', "_")))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok()))
    }
    pub fn put_notebook_state(&self, id: &str, state: &NotebookState) -> Result<(), Error> {
        let path = self.dir.join("n").join(id.replace('/', "_"));
        std::fs::write(&path, serde_json::to_vec(state).unwrap_or_default()).map_err(io(&path))
    }
    pub fn flush(&self) -> Result<(), Error> {
        Ok(())
    }
}
