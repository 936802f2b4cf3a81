//! Garbage-collection benchmark: fills a store through the library API with 10,000 artifacts
//! (mostly small values, some large blobs, a share of them compressible) referred to by 5,000
//! records of 10 notebooks edited 50 times each, then times `cache stats` and `cache gc`.
//!
//! Run: `cargo run --release --example gc_bench [-- N_ARTIFACTS]` (figures in BENCHMARKS.md).

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use nbmemo::hash::ContentHash;
use nbmemo::store::{
    CellRecord, GcPolicy, NotebookState, RecentRun, RecordStatus, Store, ValueGroup,
};

/// Deterministic bytes: incompressible, or text-like (a few bits of entropy per byte).
fn bytes(seed: u64, len: usize, compressible: bool) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if compressible {
                b"0123456789.,\n "[(state % 14) as usize]
            } else {
                state as u8
            }
        })
        .collect()
}

fn key(n: u64) -> ContentHash {
    ContentHash::of(format!("record {n}").as_bytes())
}

fn record(values: Vec<ValueGroup>, n: u64) -> CellRecord {
    CellRecord {
        status: RecordStatus::Ok,
        stdout: format!("cell {n}: done\n"),
        stderr: String::new(),
        outputs: Vec::new(),
        error: None,
        values,
        deleted: Vec::new(),
        mutated: Vec::new(),
        unpicklable: Vec::new(),
        duration_s: 0.01,
        created_unix_s: 0,
        files_read: Vec::new(),
        files_written: Vec::new(),
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn main() {
    let n_artifacts: u64 = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(10_000);
    let n_records = n_artifacts / 2;
    let notebooks = 10u64;
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join(".nbmemo");
    let mut store = Store::open(&dir, Duration::ZERO).unwrap();

    let start = Instant::now();
    let mut artifacts = Vec::new();
    for n in 0..n_artifacts {
        // 90% small values (60 B to 4 KiB), 9% a few dozen KiB, 1% large (1 MiB); a third
        // of them compressible.
        let len = match n % 100 {
            0 => 1 << 20,
            1..=9 => 20_000 + (n as usize * 997) % 60_000,
            _ => 60 + (n as usize * 131) % 4000,
        };
        artifacts.push(store.put_artifact(&bytes(n, len, n % 3 == 0)).unwrap());
    }
    for n in 0..n_records {
        let values = (0..2)
            .map(|i| ValueGroup {
                names: vec![format!("v{n}_{i}")],
                artifact: artifacts[(2 * n + i) as usize],
            })
            .collect();
        store.put_record(&key(n), &record(values, n)).unwrap();
    }
    // Each notebook's cells: its records in order; the last run of each is its newest tenth.
    let per_notebook = n_records / notebooks;
    for nb in 0..notebooks {
        let keys: Vec<ContentHash> = (0..per_notebook)
            .map(|i| key(nb * per_notebook + i))
            .collect();
        let newest = keys[keys.len() - keys.len() / 10..].to_vec();
        let state = NotebookState {
            cell_keys: newest.iter().copied().map(Some).collect(),
            recent_runs: vec![RecentRun {
                unix_s: 0,
                keys: newest,
            }],
            ..NotebookState::default()
        };
        store
            .put_notebook_state(&format!("nb{nb}.ipynb"), &state)
            .unwrap();
    }
    store.flush().unwrap();
    let filled = start.elapsed();

    let start = Instant::now();
    let stats = store.stats().unwrap();
    let stats_time = start.elapsed();
    println!(
        "filled {n_artifacts} artifacts, {n_records} records in {filled:.2?}: on disk {} (database {}, {} blob files {}), payload {} ({:.2}x)",
        mib(stats.usage.total()),
        mib(stats.usage.db_bytes),
        stats.usage.blob_files,
        mib(stats.usage.blob_bytes),
        mib(stats.payload_bytes),
        stats.disk_ratio()
    );
    println!("cache stats: {stats_time:.2?}");

    // gc keeping every record (compaction and sweep only), then keeping the last runs only,
    // then bounding the size.
    for (label, policy) in [
        (
            "gc, everything kept (sweep + compact)",
            GcPolicy {
                keep_runs: 3,
                max_age: Duration::from_secs(u64::MAX / 4),
                max_size: None,
                project_root: None,
                room_to_grow: false,
            },
        ),
        (
            "gc --keep-runs 1 --max-age 0 (90% of records removed)",
            GcPolicy {
                keep_runs: 1,
                max_age: Duration::ZERO,
                max_size: None,
                project_root: None,
                room_to_grow: false,
            },
        ),
    ] {
        let start = Instant::now();
        let done = store.collect(&policy).unwrap();
        let took = start.elapsed();
        println!(
            "{label}: {took:.2?}; removed {} records, {} artifacts; on disk {} -> {}, payload {} ({:.2}x)",
            done.records_removed,
            done.artifacts_removed,
            mib(done.before.total()),
            mib(done.after.total()),
            mib(done.payload_after),
            done.after.total() as f64 / done.payload_after.max(1) as f64
        );
    }
    // The next run's first write grows the compacted database file (redb doubles it).
    store
        .record_run(&nbmemo::store::RunSummary::default())
        .unwrap();
    store.flush().unwrap();
    let stats = store.stats().unwrap();
    println!(
        "after the next write: on disk {} (database {}), payload {} ({:.2}x)",
        mib(stats.usage.total()),
        mib(stats.usage.db_bytes),
        mib(stats.payload_bytes),
        stats.disk_ratio()
    );
}
