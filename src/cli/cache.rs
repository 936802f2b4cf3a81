//! Arguments of `nbmemo cache stats|gc|clear`.

use std::path::PathBuf;

pub(super) const AFTER_HELP: &str = "\
The cache is `.nbmemo/` at the project root (the nearest folder above the current one with
`.git` or `pyproject.toml`), unless --cache-dir or NBMEMO_CACHE_DIR names another. It is held
by one nbmemo process at a time: these commands wait for a run that holds it (--wait).

Examples:
  nbmemo cache stats                        what the cache holds, and how well it serves
  nbmemo cache stats --json | jq .hit_rate
  nbmemo cache gc                           keep what the last 3 runs of each notebook need
  nbmemo cache gc --keep-runs 1 --max-age 0 --max-size 500MiB
  nbmemo cache clear --notebook analysis.ipynb";

pub(super) const GC_AFTER_HELP: &str = "\
Keeps every record the last --keep-runs runs of each notebook need (a following run of them is
fully cached) and every record used within --max-age; then, while the cache is larger than
--max-size, evicts the least recently used of the other records. Artifacts no remaining record
refers to, manifests that find no remaining record, and stray files go with them; the database
is compacted last.

The size bound is --max-size, else NBMEMO_CACHE_MAX_SIZE, else `max-size` under [tool.nbmemo]
in the project's pyproject.toml, else 5 GiB. Sizes take a unit: 500MB, 2GiB, 1.5G (K, M, G, T
alone are powers of 1024); ages too: 0, 90s, 30m, 12h, 7d, 2w. `nbmemo run` and `check` collect
by themselves, down to 90% of the bound, when a run leaves the cache above it.

Examples:
  nbmemo cache gc
  nbmemo cache gc --keep-runs 1 --max-age 0       only what the last run needs
  nbmemo cache gc --max-size 1GiB --json";

/// Arguments of `nbmemo cache`.
#[derive(Debug, clap::Args)]
pub struct CacheArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: CacheCommand,
}

/// The `cache` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum CacheCommand {
    /// What the cache holds: entries, bytes on disk and of payload, hit rate, largest artifacts.
    #[command(after_help = AFTER_HELP)]
    Stats(CacheStatsArgs),
    /// Remove what the last runs do not need, bound the size, compact.
    #[command(after_help = GC_AFTER_HELP)]
    Gc(CacheGcArgs),
    /// Remove everything, or one notebook's results (`--notebook`).
    #[command(after_help = AFTER_HELP)]
    Clear(CacheClearArgs),
}

/// Options every `cache` subcommand takes.
#[derive(Debug, clap::Args)]
pub struct CacheOptions {
    /// Where the cache lives [default: `.nbmemo` at the project root].
    #[arg(long, value_name = "DIR", env = "NBMEMO_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// How long to wait for another nbmemo process that holds the cache, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 600.0)]
    pub wait: f64,

    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `nbmemo cache stats`.
#[derive(Debug, clap::Args)]
pub struct CacheStatsArgs {
    /// Common options.
    #[command(flatten)]
    pub options: CacheOptions,
}

/// Arguments of `nbmemo cache gc`.
#[derive(Debug, clap::Args)]
pub struct CacheGcArgs {
    /// Keep what the last N runs of each notebook need (at most 10).
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u8).range(0..=10))]
    pub keep_runs: u8,

    /// Keep records used within this long (`0`: none), unless --max-size needs the room.
    #[arg(long, value_name = "AGE", default_value = "7d")]
    pub max_age: String,

    /// Bound the bytes on disk [default: NBMEMO_CACHE_MAX_SIZE, else pyproject.toml
    /// `[tool.nbmemo] max-size`, else 5GiB].
    #[arg(long, value_name = "SIZE")]
    pub max_size: Option<String>,

    /// Common options.
    #[command(flatten)]
    pub options: CacheOptions,
}

/// Arguments of `nbmemo cache clear`.
#[derive(Debug, clap::Args)]
pub struct CacheClearArgs {
    /// Clear only this notebook's results and state (artifacts other notebooks use stay).
    #[arg(long, value_name = "NOTEBOOK")]
    pub notebook: Option<PathBuf>,

    /// Common options.
    #[command(flatten)]
    pub options: CacheOptions,
}
