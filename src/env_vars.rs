//! Every environment variable nbmemo reads, as a documented constant.

/// Log filter in `tracing` `EnvFilter` syntax (for example `nbmemo=debug`). Overrides `-v`.
pub const NBMEMO_LOG: &str = "NBMEMO_LOG";

/// Set (to anything) to hide the progress bar.
pub const NBMEMO_NO_PROGRESS: &str = "NBMEMO_NO_PROGRESS";

/// Where the cache lives (same as `--cache-dir`).
pub const NBMEMO_CACHE_DIR: &str = "NBMEMO_CACHE_DIR";
