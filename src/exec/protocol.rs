//! The parent side of the worker protocol (`PROTOCOL.md` beside this file): frames and messages.
//!
//! **Invariant:** this module and `store/format.rs` are the only serialization boundaries; the
//! message types here are `Serialize`/`Deserialize`, core types are not.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

/// The protocol version the runner must announce in its `hello`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest header accepted from a worker (a corrupted stream must not allocate gigabytes).
const MAX_HEADER: u32 = 256 * 1024 * 1024;

/// One frame: a JSON header and its binary blobs.
#[derive(Debug, Default)]
pub struct Frame {
    /// The JSON header.
    pub header: Vec<u8>,
    /// The blobs the header refers to by position.
    pub blobs: Vec<Vec<u8>>,
}

/// Writes one frame.
pub fn write_frame(out: &mut impl Write, header: &[u8], blobs: &[&[u8]]) -> io::Result<()> {
    let header_len =
        u32::try_from(header.len()).map_err(|_| io::Error::other("header too large"))?;
    let n_blobs = u32::try_from(blobs.len()).map_err(|_| io::Error::other("too many blobs"))?;
    out.write_all(&header_len.to_le_bytes())?;
    out.write_all(&n_blobs.to_le_bytes())?;
    out.write_all(header)?;
    for blob in blobs {
        out.write_all(&(blob.len() as u64).to_le_bytes())?;
        out.write_all(blob)?;
    }
    out.flush()
}

/// The most a blob's stated length reserves before its bytes arrive.
const PREALLOCATED_BLOB_MAX: usize = 256 << 20;

/// Reads one frame; `Ok(None)` at a clean end of stream.
pub fn read_frame(input: &mut impl Read) -> io::Result<Option<Frame>> {
    let mut word = [0u8; 4];
    // Zero bytes before a frame is a clean end; a partial length is a truncated stream.
    let mut filled = 0;
    while filled < word.len() {
        match input.read(&mut word[filled..]) {
            Ok(0) if filled == 0 => return Ok(None),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "truncated frame",
                ));
            }
            Ok(read) => filled += read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    let header_len = u32::from_le_bytes(word);
    input.read_exact(&mut word)?;
    let n_blobs = u32::from_le_bytes(word);
    if header_len > MAX_HEADER {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame header of {header_len} bytes"),
        ));
    }
    let mut header = vec![0u8; header_len as usize];
    input.read_exact(&mut header)?;
    let mut blobs = Vec::with_capacity(n_blobs.min(1024) as usize);
    for _ in 0..n_blobs {
        let mut len = [0u8; 8];
        input.read_exact(&mut len)?;
        let len = usize::try_from(u64::from_le_bytes(len))
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "blob too large"))?;
        // Room for the whole blob up front (up to a bound, a damaged length must not allocate
        // gigabytes before the stream runs dry): no regrowing and copying while it arrives.
        let mut blob = Vec::with_capacity(len.min(PREALLOCATED_BLOB_MAX));
        input.by_ref().take(len as u64).read_to_end(&mut blob)?;
        if blob.len() != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "truncated blob",
            ));
        }
        blobs.push(blob);
    }
    Ok(Some(Frame { header, blobs }))
}

/// The worker's first message.
#[derive(Debug, Clone, Deserialize)]
pub struct Hello {
    /// Protocol version.
    pub protocol: u32,
    /// The worker's process id.
    pub pid: u32,
    /// The interpreter.
    pub python: PythonInfo,
    /// cloudpickle's version, or `None` when it cannot be imported.
    pub cloudpickle: Option<String>,
    /// IPython's version, when importable.
    #[serde(default)]
    pub ipython: Option<String>,
    /// Why the worker cannot serve (missing cloudpickle).
    #[serde(default)]
    pub error: Option<String>,
    /// `sys.executable`.
    #[serde(default)]
    pub executable: Option<String>,
    /// The interpreter's site-packages directories (their state stamps the environment).
    #[serde(default)]
    pub site_dirs: Vec<String>,
}

/// What the worker says about its interpreter (part of the environment fingerprint).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PythonInfo {
    /// `sys.implementation.name`.
    pub implementation: String,
    /// `platform.python_version()`.
    pub version: String,
    /// `sysconfig.get_platform()`.
    pub platform: String,
    /// `sys.implementation.cache_tag`.
    #[serde(default)]
    pub cache_tag: Option<String>,
}

/// A group of input names and where their values come from.
#[derive(Debug, Clone, Serialize)]
pub struct InputGroup {
    /// The names, bound together (shared objects stay shared).
    pub names: Vec<String>,
    /// Index of the blob carrying the pickle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blob: Option<usize>,
    /// Id of values kept in the worker's memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resident: Option<String>,
    /// Names of the blob whose values the worker that made it found to be long lists or
    /// tuples of atoms (`columns` of the result): their elements need no checking again.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
}

/// `exec`: run one cell.
#[derive(Debug, Clone, Serialize)]
pub struct ExecRequest {
    /// Always `"exec"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The cell's index among code cells.
    pub cell: usize,
    /// The cell's source.
    pub code: String,
    /// Compile-time filename (`<cell 3>`).
    pub filename: String,
    /// Working directory for the cell.
    pub cwd: String,
    /// The input values.
    pub inputs: Vec<InputGroup>,
    /// Input names the cell may mutate.
    pub candidates: Vec<String>,
    /// Candidates the worker need not check when the value is a pandas or numpy object and
    /// each listed name is bound to a numpy or pandas module (the cell only uses them softly).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub unchecked: std::collections::BTreeMap<String, Vec<String>>,
    /// Names the cell may bind; `None` for a barrier: return every name.
    pub writes: Option<Vec<String>>,
    /// The cell ends with `;`.
    pub display_suppressed: bool,
    /// The project root: the worker traces file accesses under it (`None`: no tracing).
    pub root: Option<String>,
    /// The store's folder, never traced.
    pub store: Option<String>,
}

/// What a cell did to files under the project root (paths relative to it, `/`-separated).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FilesReport {
    /// Files opened for reading before the cell wrote them.
    #[serde(default)]
    pub read: Vec<String>,
    /// Directories listed.
    #[serde(default)]
    pub listed: Vec<String>,
    /// Paths opened for writing, created, removed or renamed.
    #[serde(default)]
    pub written: Vec<String>,
}

/// An exception raised by the cell.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ErrorReport {
    /// Exception class name.
    pub ename: String,
    /// `str(exception)`.
    pub evalue: String,
    /// Plain-text traceback lines.
    pub traceback: Vec<String>,
    /// The cell line where it surfaced.
    #[serde(default)]
    pub line: Option<u32>,
}

/// A group of returned values.
#[derive(Debug, Clone, Deserialize)]
pub struct ValueGroupReport {
    /// Names in the group.
    pub names: Vec<String>,
    /// Index of the blob.
    pub blob: usize,
    /// Names whose values are long lists or tuples of atoms only.
    #[serde(default)]
    pub columns: Vec<String>,
}

/// A value the worker could not pickle and keeps in memory.
#[derive(Debug, Clone, Deserialize)]
pub struct UnpicklableReport {
    /// The name.
    pub name: String,
    /// The offending type.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Id of the resident group holding it.
    pub resident: String,
    /// The pickling error.
    #[serde(default)]
    pub reason: String,
}

/// `result`: what a cell did.
#[derive(Debug, Clone, Deserialize)]
pub struct ExecResult {
    /// `"ok"` or `"error"`.
    pub status: String,
    /// Captured fd 1.
    pub stdout: String,
    /// Captured fd 2.
    pub stderr: String,
    /// nbformat output dicts.
    #[serde(default)]
    pub outputs: Vec<serde_json::Value>,
    /// The exception, if any.
    #[serde(default)]
    pub error: Option<ErrorReport>,
    /// Returned values.
    #[serde(default)]
    pub values: Vec<ValueGroupReport>,
    /// Names unbound by the cell.
    #[serde(default)]
    pub deleted: Vec<String>,
    /// Candidates that changed.
    #[serde(default)]
    pub mutated: Vec<String>,
    /// Values kept in the worker.
    #[serde(default)]
    pub unpicklable: Vec<UnpicklableReport>,
    /// Wall time of the cell.
    #[serde(default)]
    pub duration_s: f64,
    /// File accesses, when the request named a root.
    #[serde(default)]
    pub files: Option<FilesReport>,
    /// `false` when the result depends on the machine rather than the cell (a `MemoryError`
    /// under `NBMEMO_MEMORY_LIMIT`): reported, never cached.
    #[serde(default = "yes")]
    pub cacheable: bool,
}

fn yes() -> bool {
    true
}

impl ExecResult {
    /// Whether the cell raised.
    pub fn is_error(&self) -> bool {
        self.status != "ok"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut buffer = Vec::new();
        write_frame(&mut buffer, br#"{"type":"x"}"#, &[b"abc", b""]).expect("write");
        write_frame(&mut buffer, b"{}", &[]).expect("write");
        let mut reader = buffer.as_slice();
        let first = read_frame(&mut reader).expect("read").expect("frame");
        assert_eq!(first.header, br#"{"type":"x"}"#);
        assert_eq!(first.blobs, vec![b"abc".to_vec(), Vec::new()]);
        let second = read_frame(&mut reader).expect("read").expect("frame");
        assert!(second.blobs.is_empty());
        assert!(read_frame(&mut reader).expect("read").is_none());
    }

    #[test]
    fn truncated_frames_are_errors_not_panics() {
        let mut buffer = Vec::new();
        write_frame(&mut buffer, b"{}", &[b"abcdef"]).expect("write");
        for cut in 1..buffer.len() {
            let mut reader = &buffer[..cut];
            assert!(read_frame(&mut reader).is_err(), "cut at {cut}");
        }
    }
}
