//! The on-disk types of the store: redb table definitions, the byte layouts of their values and
//! the serde schema of cell records and notebook states.
//!
//! This is one of the two serialization boundaries of nbmemo (the other is the worker
//! protocol): everything that reaches the cache's bytes is defined here, and every change here
//! bumps [`FORMAT_VERSION`] and adds an entry to `cache-format/CHANGELOG.md`. The normative
//! description of these layouts is `cache-format/v3.md`; keep the two in step.

use redb::TableDefinition;
use serde::{Deserialize, Serialize};

use crate::hash::ContentHash;

/// The version of the cache format: the directory name (`cache/v3/`), the `format_version` entry
/// of the `meta` table and the first input of every cell key.
pub const FORMAT_VERSION: u32 = 3;

/// Artifacts that take more than this many bytes stored (compressed when that pays) are kept as
/// files in `blobs/`, not in the database: redb allocates a large value a power-of-two run of
/// pages, so large values would take up to twice their size in its file.
pub const INLINE_ARTIFACT_MAX: usize = 16 * 1024;

/// A record whose serialized outputs list is larger than this many bytes keeps that list as an
/// artifact (display data such as images is stored once and kept out of the record).
pub const INLINE_OUTPUTS_MAX: usize = 16 * 1024;

/// Artifacts and sealed values shorter than this are never compressed (zstd's gain on them is
/// smaller than the work).
pub const COMPRESS_MIN: usize = 1024;

/// How many bytes of a large artifact are compressed first to decide whether compressing the
/// whole pays (pickled random floats do not compress; their first bytes say so).
const COMPRESS_SAMPLE: usize = 128 * 1024;

/// The zstd level: zstd's default, fast to compress and decompress.
const ZSTD_LEVEL: i32 = 3;

/// The largest uncompressed length a reader accepts for a compressed sealed value (a damaged
/// length must not make it allocate without bound).
const SEALED_MAX: u64 = 1 << 32;

/// How many runs a notebook state remembers in `recent_runs` (the most `cache gc --keep-runs`
/// can keep).
pub const RECENT_RUNS_MAX: usize = 10;

/// How many run summaries the `runs` table keeps (the newest).
pub const RUNS_KEPT: u64 = 100;

/// The redb crate version this build writes with, recorded in `meta` for diagnostics.
/// A test checks it against `Cargo.lock`.
pub const REDB_VERSION: &str = "4.5.0";

/// `meta`: UTF-8 name → value bytes (see the `META_*` keys).
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// `artifacts`: 32-byte artifact hash → [`ArtifactEntry`] bytes.
pub(crate) const ARTIFACTS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("artifacts");
/// `records`: 32-byte cell key → sealed [`StoredRecord`] JSON.
pub(crate) const RECORDS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("records");
/// `record_used`: 32-byte cell key → last use, seconds since the Unix epoch (u64 LE).
pub(crate) const RECORD_USED: TableDefinition<&[u8; 32], u64> = TableDefinition::new("record_used");
/// `notebooks`: notebook id (UTF-8) → sealed [`NotebookState`] JSON.
pub(crate) const NOTEBOOKS: TableDefinition<&str, &[u8]> = TableDefinition::new("notebooks");
/// Manifests: the first-step key of a cell (its key without files) → the lists of files its
/// runs read, newest first (sealed JSON `[[path]]`).
pub(crate) const MANIFESTS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("manifests");
/// `record_manifests`: the key of a record of a cell that read files → the first-step key of
/// the manifest that finds it (for garbage collection: a manifest lives while a record it finds
/// does).
pub(crate) const RECORD_MANIFESTS: TableDefinition<&[u8; 32], &[u8; 32]> =
    TableDefinition::new("record_manifests");
/// `runs`: run sequence number → sealed [`RunSummary`] JSON (the newest [`RUNS_KEPT`]).
pub(crate) const RUNS: TableDefinition<u64, &[u8]> = TableDefinition::new("runs");

/// `meta` key: [`FORMAT_VERSION`] as u32 LE.
pub(crate) const META_FORMAT_VERSION: &str = "format_version";
/// `meta` key: the redb version that created the file (UTF-8).
pub(crate) const META_REDB_VERSION: &str = "redb_version";
/// `meta` key: the nbmemo version that created the file (UTF-8).
pub(crate) const META_NBMEMO_VERSION: &str = "nbmemo_version";
/// `meta` key: creation time, seconds since the Unix epoch, u64 LE.
pub(crate) const META_CREATED: &str = "created_unix_s";
/// `meta` key: time of the last [`flush`](super::Store::flush), seconds since the Unix epoch, u64 LE.
pub(crate) const META_LAST_FLUSH: &str = "last_flush_unix_s";
/// `meta` key: time of the last garbage collection, seconds since the Unix epoch, u64 LE.
pub(crate) const META_LAST_GC: &str = "last_gc_unix_s";

/// The first byte of an `artifacts` value: the bytes follow inline.
const ARTIFACT_INLINE: u8 = 0;
/// The first byte of an `artifacts` value: the bytes are the file `blobs/<hex hash>`; their length
/// follows as u64 LE.
const ARTIFACT_BLOB: u8 = 1;
/// The first byte of an `artifacts` value: the artifact's length follows as u64 LE, then a zstd
/// frame of its bytes.
const ARTIFACT_INLINE_ZSTD: u8 = 2;
/// The first byte of an `artifacts` value: the bytes, compressed with zstd, are the file
/// `blobs/<hex hash>.zst`; the artifact's length then the file's length follow, u64 LE each.
const ARTIFACT_BLOB_ZSTD: u8 = 3;

/// Where an artifact's bytes are, as decoded from its `artifacts` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArtifactEntry<'a> {
    /// The bytes themselves.
    Inline(&'a [u8]),
    /// A zstd frame of the bytes, which are `len` long.
    InlineZstd { len: u64, frame: &'a [u8] },
    /// The bytes are in `blobs/<hex>`, and are this long.
    Blob { len: u64 },
    /// The bytes, compressed, are in `blobs/<hex>.zst` (`stored` bytes long); uncompressed they
    /// are `len` long.
    BlobZstd { len: u64, stored: u64 },
}

impl<'a> ArtifactEntry<'a> {
    /// The value bytes of this entry.
    pub(crate) fn encode(&self) -> Vec<u8> {
        match self {
            ArtifactEntry::Inline(bytes) => {
                let mut out = Vec::with_capacity(1 + bytes.len());
                out.push(ARTIFACT_INLINE);
                out.extend_from_slice(bytes);
                out
            }
            ArtifactEntry::InlineZstd { len, frame } => {
                let mut out = Vec::with_capacity(9 + frame.len());
                out.push(ARTIFACT_INLINE_ZSTD);
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(frame);
                out
            }
            ArtifactEntry::Blob { len } => {
                let mut out = Vec::with_capacity(9);
                out.push(ARTIFACT_BLOB);
                out.extend_from_slice(&len.to_le_bytes());
                out
            }
            ArtifactEntry::BlobZstd { len, stored } => {
                let mut out = Vec::with_capacity(17);
                out.push(ARTIFACT_BLOB_ZSTD);
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(&stored.to_le_bytes());
                out
            }
        }
    }

    /// Decodes an `artifacts` value; `None` when it is malformed.
    pub(crate) fn decode(bytes: &'a [u8]) -> Option<Self> {
        fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
            let le: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
            Some(u64::from_le_bytes(le))
        }
        match bytes.split_first()? {
            (&ARTIFACT_INLINE, rest) => Some(ArtifactEntry::Inline(rest)),
            (&ARTIFACT_BLOB, rest) if rest.len() == 8 => Some(ArtifactEntry::Blob {
                len: u64_at(rest, 0)?,
            }),
            (&ARTIFACT_INLINE_ZSTD, rest) if rest.len() >= 8 => Some(ArtifactEntry::InlineZstd {
                len: u64_at(rest, 0)?,
                frame: &rest[8..],
            }),
            (&ARTIFACT_BLOB_ZSTD, rest) if rest.len() == 16 => Some(ArtifactEntry::BlobZstd {
                len: u64_at(rest, 0)?,
                stored: u64_at(rest, 8)?,
            }),
            _ => None,
        }
    }

    /// The artifact's length (uncompressed).
    pub(crate) fn len(&self) -> u64 {
        match self {
            ArtifactEntry::Inline(bytes) => bytes.len() as u64,
            ArtifactEntry::InlineZstd { len, .. }
            | ArtifactEntry::Blob { len }
            | ArtifactEntry::BlobZstd { len, .. } => *len,
        }
    }
}

/// `bytes` compressed with zstd when that saves at least an eighth of them; `None` when it does
/// not pay (or `bytes` is shorter than [`COMPRESS_MIN`]). For large inputs, a first sample
/// decides whether the whole is worth compressing.
pub(crate) fn compress_if_it_pays(bytes: &[u8]) -> Option<Vec<u8>> {
    let pays = |compressed: usize, of: usize| compressed + of / 8 <= of;
    if bytes.len() < COMPRESS_MIN {
        return None;
    }
    if bytes.len() > 2 * COMPRESS_SAMPLE {
        let sample = &bytes[..COMPRESS_SAMPLE];
        let compressed = zstd::bulk::compress(sample, ZSTD_LEVEL).ok()?;
        if !pays(compressed.len(), sample.len()) {
            return None;
        }
    }
    let compressed = zstd::bulk::compress(bytes, ZSTD_LEVEL).ok()?;
    pays(compressed.len(), bytes.len()).then_some(compressed)
}

/// Decompresses a zstd frame whose content must be exactly `len` bytes; `None` when it is
/// damaged (it does not decode, or decodes to another length).
pub(crate) fn decompress(frame: &[u8], len: u64) -> Option<Vec<u8>> {
    // The frame records its content size: a damaged `len` must not make us allocate blindly.
    let declared = zstd::zstd_safe::get_frame_content_size(frame).ok()??;
    if declared != len {
        return None;
    }
    let capacity = usize::try_from(len).ok()?;
    let bytes = zstd::bulk::decompress(frame, capacity).ok()?;
    (bytes.len() as u64 == len).then_some(bytes)
}

/// The first byte of a sealed value: a blake3 checksum and a JSON payload follow.
const SEAL_JSON: u8 = 1;
/// The first byte of a sealed value: a blake3 checksum of the JSON payload follows, then the
/// payload's length (u64 LE) and a zstd frame of it.
const SEAL_JSON_ZSTD: u8 = 2;
const CHECKSUM_LEN: usize = 32;

/// Why a sealed value could not be read back.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    /// The value is shorter than its header.
    #[error("the entry is truncated")]
    Truncated,
    /// The first byte names no encoding this version knows.
    #[error("unknown entry encoding {0}")]
    UnknownEncoding(u8),
    /// The checksum does not match: the bytes were damaged (or belong to another key).
    #[error("checksum mismatch")]
    Checksum,
    /// The compressed payload does not decompress to its recorded length.
    #[error("the compressed entry is damaged")]
    Compressed,
    /// The payload is not the expected JSON.
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The checksum of a sealed value: blake3 over the length-prefixed key, then the payload, so a
/// value moved under another key is detected as well as a flipped byte.
fn seal_checksum(key: &[u8], payload: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&(key.len() as u64).to_le_bytes());
    hasher.update(key);
    hasher.update(payload);
    *hasher.finalize().as_bytes()
}

/// Encodes `value` as a sealed value for `key`: `0x01`, the 32-byte checksum, the JSON payload;
/// or, when compressing pays, `0x02`, the checksum of the JSON, its length and a zstd frame.
pub(crate) fn seal<T: Serialize>(key: &[u8], value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let payload = serde_json::to_vec(value)?;
    let checksum = seal_checksum(key, &payload);
    if let Some(frame) = compress_if_it_pays(&payload) {
        let mut out = Vec::with_capacity(1 + CHECKSUM_LEN + 8 + frame.len());
        out.push(SEAL_JSON_ZSTD);
        out.extend_from_slice(&checksum);
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&frame);
        return Ok(out);
    }
    let mut out = Vec::with_capacity(1 + CHECKSUM_LEN + payload.len());
    out.push(SEAL_JSON);
    out.extend_from_slice(&checksum);
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Decodes a sealed value stored under `key`, verifying its checksum.
pub(crate) fn unseal<T: for<'de> Deserialize<'de>>(
    key: &[u8],
    bytes: &[u8],
) -> Result<T, DecodeError> {
    let (&encoding, rest) = bytes.split_first().ok_or(DecodeError::Truncated)?;
    if encoding != SEAL_JSON && encoding != SEAL_JSON_ZSTD {
        return Err(DecodeError::UnknownEncoding(encoding));
    }
    if rest.len() < CHECKSUM_LEN {
        return Err(DecodeError::Truncated);
    }
    let (checksum, payload) = rest.split_at(CHECKSUM_LEN);
    let decompressed;
    let payload = if encoding == SEAL_JSON_ZSTD {
        let (len, frame) = payload.split_at_checked(8).ok_or(DecodeError::Truncated)?;
        let len = u64::from_le_bytes(len.try_into().map_err(|_| DecodeError::Truncated)?);
        if len > SEALED_MAX {
            return Err(DecodeError::Compressed);
        }
        decompressed = decompress(frame, len).ok_or(DecodeError::Compressed)?;
        decompressed.as_slice()
    } else {
        payload
    };
    if checksum != seal_checksum(key, payload) {
        return Err(DecodeError::Checksum);
    }
    Ok(serde_json::from_slice(payload)?)
}

/// The length of the JSON payload of a sealed value (its length uncompressed), without
/// checking it; `None` when the value is malformed.
pub(crate) fn sealed_payload_len(bytes: &[u8]) -> Option<u64> {
    let (&encoding, rest) = bytes.split_first()?;
    let payload = rest.get(CHECKSUM_LEN..)?;
    match encoding {
        SEAL_JSON => Some(payload.len() as u64),
        SEAL_JSON_ZSTD => Some(u64::from_le_bytes(payload.get(..8)?.try_into().ok()?)),
        _ => None,
    }
}

/// How a recorded cell ended. Crashes, timeouts and interrupts are never recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordStatus {
    /// The cell ran to its end.
    Ok,
    /// The cell raised a (deterministic) Python exception.
    Error,
}

/// The Python exception a failed cell raised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// The exception's type name, as nbformat's `ename`.
    pub ename: String,
    /// The exception's message, as nbformat's `evalue`.
    pub evalue: String,
    /// The formatted traceback lines, as nbformat's `traceback`.
    pub traceback: Vec<String>,
    /// The 1-based line of the cell where the exception was raised, when known.
    pub line: Option<u32>,
}

/// Names bound to values that share objects, stored together as one artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueGroup {
    /// The variable names, sorted.
    pub names: Vec<String>,
    /// The artifact holding the serialized values.
    #[serde(with = "hex_hash")]
    pub artifact: ContentHash,
}

/// A variable whose value could not be serialized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unpicklable {
    /// The variable name.
    pub name: String,
    /// The Python type of its value.
    pub type_name: String,
}

/// The memoized result of one cell execution, stored under the cell's key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellRecord {
    /// How the cell ended.
    pub status: RecordStatus,
    /// Everything the cell printed to standard output.
    pub stdout: String,
    /// Everything the cell printed to standard error.
    pub stderr: String,
    /// The nbformat output dicts (`display_data`, `execute_result`, …), in order.
    pub outputs: Vec<serde_json::Value>,
    /// The exception, when `status` is [`RecordStatus::Error`].
    pub error: Option<ErrorInfo>,
    /// The values the cell bound or changed, grouped by shared objects.
    pub values: Vec<ValueGroup>,
    /// The names the cell deleted.
    pub deleted: Vec<String>,
    /// The may-mutate candidates the run confirmed as changed.
    pub mutated: Vec<String>,
    /// The names whose values could not be serialized.
    pub unpicklable: Vec<Unpicklable>,
    /// How long the cell ran, in seconds.
    pub duration_s: f64,
    /// When the record was made, in seconds since the Unix epoch.
    pub created_unix_s: u64,
    /// Files and listings the cell read under the project root, with their content hashes
    /// (they are part of its key).
    #[serde(with = "name_hash_pairs")]
    pub files_read: Vec<(String, ContentHash)>,
    /// Files and directories the cell left behind under the project root (restored on replay).
    pub files_written: Vec<FileOutput>,
}

/// A path a cell wrote, as it was when the cell ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileOutput {
    /// Relative to the project root, `/`-separated.
    pub path: String,
    /// The file's content, for a regular file.
    #[serde(with = "hex_hash_opt")]
    pub artifact: Option<ContentHash>,
    /// A directory the cell created.
    pub dir: bool,
}

impl CellRecord {
    /// The artifacts the record refers to by hash (not counting an externalized outputs list).
    pub fn value_artifacts(&self) -> impl Iterator<Item = ContentHash> + '_ {
        self.values.iter().map(|group| group.artifact)
    }

    /// Every artifact the record refers to: its values and the files it wrote.
    pub fn artifacts(&self) -> impl Iterator<Item = ContentHash> + '_ {
        self.value_artifacts().chain(
            self.files_written
                .iter()
                .filter_map(|output| output.artifact),
        )
    }

    /// A copy of the record without its outputs list, which is stored apart.
    pub(crate) fn without_outputs(&self) -> CellRecord {
        CellRecord {
            status: self.status,
            stdout: self.stdout.clone(),
            stderr: self.stderr.clone(),
            outputs: Vec::new(),
            error: self.error.clone(),
            values: self.values.clone(),
            deleted: self.deleted.clone(),
            mutated: self.mutated.clone(),
            unpicklable: self.unpicklable.clone(),
            duration_s: if self.duration_s.is_finite() {
                self.duration_s
            } else {
                0.0
            },
            created_unix_s: self.created_unix_s,
            files_read: self.files_read.clone(),
            files_written: self.files_written.clone(),
        }
    }
}

/// A cell record as stored: the record, and the artifact holding its outputs list when that list
/// was too large to keep inline (then `record.outputs` is empty).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredRecord {
    /// The artifact holding the JSON array of outputs, or `None` when they are inline.
    #[serde(with = "hex_hash_opt")]
    pub outputs_artifact: Option<ContentHash>,
    /// The record.
    pub record: CellRecord,
}

/// What a cell's key was made of in the last run, so that the next run (and `plan`) can say
/// why a cell runs again: its code, the environment or one of its inputs changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellTrace {
    /// The hash of the cell's normalized code.
    #[serde(with = "hex_hash")]
    pub code_hash: ContentHash,
    /// The environment fingerprint.
    #[serde(with = "hex_hash")]
    pub env: ContentHash,
    /// `(name, artifact hash)` of each value read.
    #[serde(with = "name_hash_pairs")]
    pub inputs: Vec<(String, ContentHash)>,
    /// The files read, with their hashes.
    #[serde(default, with = "name_hash_pairs")]
    pub files: Vec<(String, ContentHash)>,
}

/// What a run saw one cell's code do to files: the paths it read (a listing as `dir/`) and
/// wrote. The next run's graph orders cells by it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileUse {
    /// The cell's normalized code hash.
    #[serde(with = "hex_hash")]
    pub code_hash: ContentHash,
    /// Paths read; a directory listing as `dir/`.
    pub read: Vec<String>,
    /// Paths written, created or removed.
    pub written: Vec<String>,
}

/// What the last run learned about one notebook, for `plan` and graph refinement.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NotebookState {
    /// Per code cell, in notebook order: the key it ran or replayed with last time.
    #[serde(with = "hex_hash_opt_vec")]
    pub cell_keys: Vec<Option<ContentHash>>,
    /// Per code cell, in notebook order: what its key was made of (`None` when it has no key).
    #[serde(default)]
    pub traces: Vec<Option<CellTrace>>,
    /// `(cell code hash, name)`: may-mutate candidates the run refuted.
    #[serde(with = "hex_hash_pairs")]
    pub refuted: Vec<(ContentHash, String)>,
    /// `(cell code hash, name)`: may-mutate candidates the run confirmed.
    #[serde(with = "hex_hash_pairs")]
    pub confirmed: Vec<(ContentHash, String)>,
    /// What the cells' code did to files, per code hash.
    #[serde(default)]
    pub files: Vec<FileUse>,
    /// The installed distributions of the environment of the run (`name==version`), to say
    /// which one changed.
    #[serde(default)]
    pub distributions: Vec<String>,
    /// When the state was written, in seconds since the Unix epoch.
    pub updated_unix_s: u64,
    /// The keys the last runs needed, newest first (this run first), at most
    /// [`RECENT_RUNS_MAX`]; a run that needed the same keys as the one before it counts once.
    /// `cache gc --keep-runs N` keeps what the first `N` need.
    #[serde(default)]
    pub recent_runs: Vec<RecentRun>,
}

/// The keys one run of a notebook needed: the record of each cell and, for a cell that read
/// files, the manifest that finds it (its first-step key).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RecentRun {
    /// When the run ended, in seconds since the Unix epoch.
    pub unix_s: u64,
    /// Record keys and manifest keys, sorted, without duplicates.
    #[serde(with = "hex_hash_vec")]
    pub keys: Vec<ContentHash>,
}

/// How one run went, for the hit rate `cache stats` shows (the `runs` table).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RunSummary {
    /// When the run ended, in seconds since the Unix epoch.
    pub unix_s: u64,
    /// The wall time of the run, in seconds.
    pub wall_s: f64,
    /// Per notebook run.
    pub notebooks: Vec<NotebookRun>,
}

/// The cells of one notebook in one run, by what happened to them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NotebookRun {
    /// The notebook id.
    pub notebook: String,
    /// Cells replayed from the cache (hits).
    pub cached: u64,
    /// Cells executed (misses).
    pub ran: u64,
    /// Cells that failed (a raised exception replayed from the cache counts here too).
    pub failed: u64,
    /// Cells skipped.
    pub skipped: u64,
}

/// A [`ContentHash`] as 64 lowercase hex digits (the hash type itself is not `Serialize`: core
/// types stay free of serde, and this module owns the on-disk spelling).
struct Hex(ContentHash);

impl Serialize for Hex {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Hex {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        parse_hex(&text)
            .map(Hex)
            .ok_or_else(|| serde::de::Error::custom("expected a hash of 64 hex digits"))
    }
}

/// Parses 64 hex digits into a hash.
pub(crate) fn parse_hex(text: &str) -> Option<ContentHash> {
    fn digit(byte: u8) -> Option<u8> {
        match byte {
            b'0'..=b'9' => Some(byte - b'0'),
            b'a'..=b'f' => Some(byte - b'a' + 10),
            b'A'..=b'F' => Some(byte - b'A' + 10),
            _ => None,
        }
    }
    let text = text.as_bytes();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(ContentHash(out))
}

mod hex_hash {
    use super::{ContentHash, Hex};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(
        hash: &ContentHash,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        Hex(*hash).serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<ContentHash, D::Error> {
        Ok(Hex::deserialize(deserializer)?.0)
    }
}

mod hex_hash_opt {
    use super::{ContentHash, Hex};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(
        hash: &Option<ContentHash>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        hash.map(Hex).serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<ContentHash>, D::Error> {
        Ok(Option::<Hex>::deserialize(deserializer)?.map(|hex| hex.0))
    }
}

mod hex_hash_opt_vec {
    use super::{ContentHash, Hex};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        hashes: &[Option<ContentHash>],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(hashes.iter().map(|hash| hash.map(Hex)))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<Option<ContentHash>>, D::Error> {
        let hexes = Vec::<Option<Hex>>::deserialize(deserializer)?;
        Ok(hexes.into_iter().map(|hex| hex.map(|hex| hex.0)).collect())
    }
}

mod hex_hash_vec {
    use super::{ContentHash, Hex};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        hashes: &[ContentHash],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(hashes.iter().map(|hash| Hex(*hash)))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<ContentHash>, D::Error> {
        let hexes = Vec::<Hex>::deserialize(deserializer)?;
        Ok(hexes.into_iter().map(|hex| hex.0).collect())
    }
}

mod hex_hash_pairs {
    use super::{ContentHash, Hex};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        pairs: &[(ContentHash, String)],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(pairs.iter().map(|(hash, name)| (Hex(*hash), name)))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<(ContentHash, String)>, D::Error> {
        let pairs = Vec::<(Hex, String)>::deserialize(deserializer)?;
        Ok(pairs.into_iter().map(|(hex, name)| (hex.0, name)).collect())
    }
}

mod name_hash_pairs {
    use super::{ContentHash, Hex};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        pairs: &[(String, ContentHash)],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(pairs.iter().map(|(name, hash)| (name, Hex(*hash))))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<(String, ContentHash)>, D::Error> {
        let pairs = Vec::<(String, Hex)>::deserialize(deserializer)?;
        Ok(pairs.into_iter().map(|(name, hex)| (name, hex.0)).collect())
    }
}
