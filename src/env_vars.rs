//! Every environment variable nbmemo reads, as a documented constant.

/// Log filter in `tracing` `EnvFilter` syntax (for example `nbmemo=debug`). Overrides `-v`.
pub const NBMEMO_LOG: &str = "NBMEMO_LOG";
