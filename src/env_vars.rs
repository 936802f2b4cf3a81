//! Every environment variable nbmemo reads, as a documented constant.

/// Log filter in `tracing` `EnvFilter` syntax (for example `nbmemo=debug`). Overrides `-v`.
pub const NBMEMO_LOG: &str = "NBMEMO_LOG";

/// Set (to anything) to hide the progress bar.
pub const NBMEMO_NO_PROGRESS: &str = "NBMEMO_NO_PROGRESS";

/// Where the cache lives (same as `--cache-dir`).
pub const NBMEMO_CACHE_DIR: &str = "NBMEMO_CACHE_DIR";

/// The size bound of the cache (`500MiB`, `2GiB`; as `nbmemo cache gc --max-size`): `nbmemo run`
/// and `check` collect garbage when a run leaves the cache above it. Overrides `max-size` under
/// `[tool.nbmemo]` in the project's `pyproject.toml`.
pub const NBMEMO_CACHE_MAX_SIZE: &str = "NBMEMO_CACHE_MAX_SIZE";

/// A memory cap per worker process (`500MB`, `2GiB`, or bytes): the address space a worker may
/// use (`RLIMIT_AS`). A cell that exceeds it fails with `MemoryError` and is not cached (memory is
/// the machine's, not the cell's).
pub const NBMEMO_MEMORY_LIMIT: &str = "NBMEMO_MEMORY_LIMIT";
