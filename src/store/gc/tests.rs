//! Tests of garbage collection, stats and clearing, through the store's API.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::super::{
    CellRecord, FileOutput, NotebookRun, NotebookState, RecentRun, RecordStatus, RunSummary, Store,
    ValueGroup,
};
use super::*;
use crate::hash::ContentHash;

fn cache_dir() -> (tempfile::TempDir, PathBuf) {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join(".nbmemo");
    (temp, dir)
}

fn open(dir: &Path) -> Store {
    Store::open(dir, Duration::ZERO).expect("open the store")
}

fn key(n: u32) -> ContentHash {
    ContentHash::of(&[b"key".as_slice(), &n.to_le_bytes()].concat())
}

/// Deterministic incompressible bytes.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn record(values: &[(&str, ContentHash)], files: &[(&str, ContentHash)]) -> CellRecord {
    CellRecord {
        status: RecordStatus::Ok,
        stdout: String::new(),
        stderr: String::new(),
        outputs: Vec::new(),
        error: None,
        values: values
            .iter()
            .map(|(name, artifact)| ValueGroup {
                names: vec![(*name).to_owned()],
                artifact: *artifact,
            })
            .collect(),
        deleted: Vec::new(),
        mutated: Vec::new(),
        unpicklable: Vec::new(),
        duration_s: 0.1,
        created_unix_s: now_unix_s(),
        files_read: Vec::new(),
        files_written: files
            .iter()
            .map(|(path, artifact)| FileOutput {
                path: (*path).to_owned(),
                artifact: Some(*artifact),
                dir: false,
            })
            .collect(),
    }
}

/// Stores a record binding `name` to `bytes`; returns the artifact.
fn put(store: &Store, record_key: ContentHash, name: &str, bytes: &[u8]) -> ContentHash {
    let artifact = store.put_artifact(bytes).expect("put artifact");
    store
        .put_record(&record_key, &record(&[(name, artifact)], &[]))
        .expect("put record");
    artifact
}

fn state(cell_keys: &[ContentHash], runs: &[&[ContentHash]]) -> NotebookState {
    NotebookState {
        cell_keys: cell_keys.iter().copied().map(Some).collect(),
        updated_unix_s: now_unix_s(),
        recent_runs: runs
            .iter()
            .map(|keys| RecentRun {
                unix_s: now_unix_s(),
                keys: keys.to_vec(),
            })
            .collect(),
        ..NotebookState::default()
    }
}

fn set_used(store: &Store, record_key: &ContentHash, unix_s: u64) {
    store
        .with_db(|db| {
            let txn = begin_write(db, false)?;
            txn.open_table(RECORD_USED)?.insert(&record_key.0, unix_s)?;
            txn.commit()?;
            Ok(())
        })
        .expect("write")
        .expect("enabled");
}

fn policy(keep_runs: usize, max_age: Duration, max_size: Option<u64>) -> GcPolicy {
    GcPolicy {
        keep_runs,
        max_age,
        max_size,
        project_root: None,
        room_to_grow: false,
    }
}

#[test]
fn gc_keeps_what_the_kept_runs_need_and_sweeps_the_rest() {
    let (_temp, dir) = cache_dir();
    let mut store = open(&dir);
    let shared = put(&store, key(1), "shared", b"used by the old and the new run");
    let old_only = put(&store, key(2), "old", &noise(1, 400_000));
    store
        .put_record(&key(3), &record(&[("shared", shared)], &[]))
        .expect("put");
    let new_only = put(&store, key(4), "new", &noise(2, 300_000));
    // A cell that read files: its manifest (first-step key 10) finds record 4.
    store
        .put_manifest(&key(10), &["data.csv".to_owned()])
        .expect("manifest");
    store
        .put_record_manifests(&[(key(4), key(10))])
        .expect("index");
    store
        .put_manifest(&key(11), &["old.csv".to_owned()])
        .expect("manifest");
    // Run 1 needed records 1 and 2, run 2 (the newest) records 3 and 4 and manifest 10.
    let nb = state(
        &[key(3), key(4)],
        &[&[key(3), key(4), key(10)], &[key(1), key(2)]],
    );
    store.put_notebook_state("nb.ipynb", &nb).expect("state");
    // Garbage in blobs/: a temporary file and a blob without an entry.
    fs_err::write(store.blobs.dir().join(".tmp-1-0"), b"half").expect("tmp");
    fs_err::write(store.blobs.dir().join(key(99).to_string()), b"orphan").expect("orphan");

    let done = store
        .collect(&policy(1, Duration::ZERO, None))
        .expect("collect");
    assert_eq!(done.records_removed, 2, "{done:?}");
    assert_eq!(done.records_protected, 2);
    assert_eq!(done.manifests_removed, 1);
    assert_eq!(done.stray_files_removed, 2);
    assert!(store.get_record(&key(1)).expect("get").is_none());
    assert!(store.get_record(&key(2)).expect("get").is_none());
    assert!(store.get_record(&key(3)).expect("get").is_some());
    assert!(store.get_record(&key(4)).expect("get").is_some());
    assert!(
        store.has_artifact(&shared).expect("has"),
        "still referenced"
    );
    assert!(!store.has_artifact(&old_only).expect("has"));
    assert!(store.get_artifact(&new_only).expect("get").is_some());
    assert_eq!(
        store.get_manifest(&key(10)).expect("manifest"),
        vec![vec!["data.csv".to_owned()]]
    );
    assert!(store.get_manifest(&key(11)).expect("manifest").is_empty());
    let files: Vec<String> = fs_err::read_dir(store.blobs.dir())
        .expect("blobs")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(files, vec![new_only.to_string()]);

    // Keeping two runs would have kept the older one's records: they are gone now, but a new
    // collection with everything protected removes nothing more.
    let again = store
        .collect(&policy(2, Duration::ZERO, None))
        .expect("collect");
    assert_eq!(again.records_removed, 0);
    assert_eq!(again.artifacts_removed, 0);
}

#[test]
fn gc_keeps_records_used_within_max_age() {
    let (_temp, dir) = cache_dir();
    let mut store = open(&dir);
    put(&store, key(1), "a", b"recent");
    put(&store, key(2), "b", b"old");
    set_used(&store, &key(2), now_unix_s() - 3 * 86400);
    let done = store
        .collect(&policy(3, Duration::from_secs(86400), None))
        .expect("collect");
    assert_eq!(done.records_removed, 1);
    assert!(store.get_record(&key(1)).expect("get").is_some());
    assert!(store.get_record(&key(2)).expect("get").is_none());
}

#[test]
fn gc_evicts_least_recently_used_first_to_fit_the_bound() {
    let (_temp, dir) = cache_dir();
    let mut store = open(&dir);
    let now = now_unix_s();
    // Ten records of 300 KB each (blobs), used one minute apart; record 0 is the oldest.
    for n in 0..10 {
        put(&store, key(n), "v", &noise(u64::from(n) + 10, 300_000));
        set_used(&store, &key(n), now - 600 + u64::from(n) * 60);
    }
    // The newest run needs record 0 (the least recently used): it must stay anyway.
    store
        .put_notebook_state("nb.ipynb", &state(&[key(0)], &[&[key(0)]]))
        .expect("state");
    let bound = 1_500_000;
    let done = store
        .collect(&policy(1, Duration::from_secs(86400), Some(bound)))
        .expect("collect");
    assert!(!done.over_bound, "{done:?}");
    assert!(
        done.after.total() <= bound,
        "{} bytes on disk, bound {bound}",
        done.after.total()
    );
    assert!(
        store.get_record(&key(0)).expect("get").is_some(),
        "protected"
    );
    let kept: Vec<u32> = (1..10)
        .filter(|&n| store.get_record(&key(n)).expect("get").is_some())
        .collect();
    assert!(!kept.is_empty() && kept.len() < 9, "{kept:?}");
    // The survivors are the most recently used ones.
    let first = kept[0];
    assert_eq!(kept, (first..10).collect::<Vec<_>>());

    // A bound below what the kept run needs cannot be met: reported, the run's records stay.
    let done = store
        .collect(&policy(1, Duration::from_secs(86400), Some(1000)))
        .expect("collect");
    assert!(done.over_bound);
    assert!(store.get_record(&key(0)).expect("get").is_some());
}

#[test]
fn compacted_store_stays_within_one_and_a_half_times_its_payload() {
    let (_temp, dir) = cache_dir();
    let mut store = open(&dir);
    // A notebook-like mix, edited many times: small values (numbers, short lists), arrays of a
    // few KiB, some larger frames, printed output; then the older half dropped.
    let mut keep = Vec::new();
    for n in 0..600u32 {
        let len = match n % 10 {
            0..=5 => 60 + (n as usize * 37) % 700,
            6..=8 => 1000 + (n as usize * 131) % 7000,
            _ => 20_000 + (n as usize * 997) % 80_000,
        };
        let bytes = noise(u64::from(n), len);
        let artifact = store.put_artifact(&bytes).expect("put");
        let mut cell = record(&[(&format!("v{n}"), artifact)], &[]);
        cell.stdout = format!("step {n}: {} rows, mean {:.4}\n", len, f64::from(n) / 7.0).repeat(3);
        store.put_record(&key(n), &cell).expect("put");
        if n >= 300 {
            keep.push(key(n));
        }
    }
    store
        .put_notebook_state("nb.ipynb", &state(&keep, &[&keep]))
        .expect("state");
    let before = store.usage().expect("usage");
    let done = store
        .collect(&policy(1, Duration::ZERO, None))
        .expect("collect");
    assert_eq!(done.records_removed, 300);
    let stats = store.stats().expect("stats");
    assert!(
        stats.usage.total() as f64 <= 1.5 * stats.payload_bytes as f64,
        "before {before:?}, after {:?}, payload {}",
        stats.usage,
        stats.payload_bytes
    );
}

#[test]
fn clear_empties_the_store_and_clear_notebook_keeps_what_others_use() {
    let (_temp, dir) = cache_dir();
    let mut store = open(&dir);
    let shared = store.put_artifact(b"shared value").expect("put");
    let own = store.put_artifact(&noise(5, 300_000)).expect("put");
    store
        .put_record(&key(1), &record(&[("x", shared), ("y", own)], &[]))
        .expect("put");
    store
        .put_record(&key(2), &record(&[("x", shared)], &[]))
        .expect("put");
    store
        .put_record(&key(3), &record(&[("z", shared)], &[]))
        .expect("put");
    store
        .put_notebook_state("a.ipynb", &state(&[key(1), key(3)], &[&[key(1), key(3)]]))
        .expect("state");
    store
        .put_notebook_state("b.ipynb", &state(&[key(2), key(3)], &[&[key(2), key(3)]]))
        .expect("state");

    assert!(store.clear_notebook("c.ipynb").expect("clear").is_none());
    let cleared = store
        .clear_notebook("a.ipynb")
        .expect("clear")
        .expect("known notebook");
    assert_eq!(cleared.records_removed, 1, "record 3 is b's too");
    assert!(
        store
            .get_notebook_state("a.ipynb")
            .expect("state")
            .is_none()
    );
    assert!(
        store
            .get_notebook_state("b.ipynb")
            .expect("state")
            .is_some()
    );
    assert!(store.get_record(&key(1)).expect("get").is_none());
    assert!(store.get_record(&key(3)).expect("get").is_some());
    assert!(store.has_artifact(&shared).expect("has"));
    assert!(!store.has_artifact(&own).expect("has"));

    store.record_run(&RunSummary::default()).expect("run");
    let cleared = store.clear().expect("clear");
    assert_eq!(cleared.records_removed, 2);
    let stats = store.stats().expect("stats");
    assert_eq!(stats.records, 0);
    assert_eq!(stats.artifacts, [0; 4]);
    assert!(stats.notebooks.is_empty());
    assert!(stats.recent_runs.is_empty());
    assert_eq!(stats.usage.blob_files, 0);
    assert!(
        stats.usage.db_bytes < 100_000,
        "compacted: {}",
        stats.usage.db_bytes
    );
}

#[test]
fn stats_count_entries_sharing_and_hits_and_name_the_largest_artifacts() {
    let (_temp, dir) = cache_dir();
    let store = open(&dir);
    let big = store.put_artifact(&noise(7, 500_000)).expect("put");
    let small = store.put_artifact(b"42").expect("put");
    let file = store.put_artifact(&noise(8, 1000)).expect("put");
    store
        .put_record(&key(1), &record(&[("df", big)], &[]))
        .expect("put");
    store
        .put_record(&key(2), &record(&[("n", small)], &[("out/x.bin", file)]))
        .expect("put");
    store
        .put_record(&key(3), &record(&[("m", small)], &[]))
        .expect("put");
    store
        .put_notebook_state("a.ipynb", &state(&[key(1), key(2)], &[&[key(1), key(2)]]))
        .expect("state");
    store
        .put_notebook_state("b.ipynb", &state(&[key(3)], &[&[key(3)]]))
        .expect("state");
    for (cached, ran) in [(0, 3), (3, 0)] {
        store
            .record_run(&RunSummary {
                unix_s: now_unix_s(),
                wall_s: 0.5,
                notebooks: vec![NotebookRun {
                    notebook: "a.ipynb".to_owned(),
                    cached,
                    ran,
                    failed: 0,
                    skipped: 1,
                }],
            })
            .expect("run");
    }
    let stats = store.stats().expect("stats");
    assert_eq!(stats.records, 3);
    assert_eq!(stats.records_current, 3);
    assert_eq!(stats.artifacts.iter().sum::<u64>(), 3);
    assert_eq!(stats.shared_artifacts, 1);
    assert_eq!(stats.shared_between_notebooks, 1);
    assert_eq!(stats.dedup_saved_bytes, 2);
    assert_eq!(stats.hits(), (3, 6));
    assert_eq!(stats.recent_runs.len(), 2);
    assert_eq!(stats.notebooks.len(), 2);
    let largest = &stats.largest[0];
    assert_eq!(largest.hash, big);
    assert_eq!(largest.bytes, 500_000);
    assert_eq!(largest.encoding, "blob");
    assert_eq!(largest.uses.len(), 1);
    assert_eq!(largest.uses[0].notebook.as_deref(), Some("a.ipynb"));
    assert_eq!(largest.uses[0].cell, Some(0));
    assert_eq!(largest.uses[0].name, "df");
    let second = &stats.largest[1];
    assert_eq!(
        (second.uses[0].kind, second.uses[0].cell),
        ("file", Some(1))
    );
    assert_eq!(second.uses[0].name, "out/x.bin");
    assert!(stats.payload_bytes >= 501_002);
    assert!(stats.usage.total() > 500_000);
}

#[test]
fn run_summaries_keep_the_newest() {
    let (_temp, dir) = cache_dir();
    let store = open(&dir);
    for n in 0..super::super::format::RUNS_KEPT + 5 {
        store
            .record_run(&RunSummary {
                unix_s: n,
                ..RunSummary::default()
            })
            .expect("run");
    }
    let stats = store.stats().expect("stats");
    assert_eq!(
        stats.recent_runs[0].unix_s,
        super::super::format::RUNS_KEPT + 4
    );
    let stored = store
        .with_db(|db| Ok(db.begin_read()?.open_table(RUNS)?.iter()?.count()))
        .expect("count")
        .expect("enabled");
    assert_eq!(stored as u64, super::super::format::RUNS_KEPT);
}

#[test]
fn gc_drops_states_of_notebooks_that_are_gone() {
    let (temp, dir) = cache_dir();
    let mut store = open(&dir);
    fs_err::write(temp.path().join("here.ipynb"), "{}").expect("write");
    put(&store, key(1), "a", b"here");
    put(&store, key(2), "b", b"gone");
    let mut old = state(&[key(2)], &[&[key(2)]]);
    old.updated_unix_s = now_unix_s() - 30 * 86400;
    store
        .put_notebook_state("here.ipynb", &state(&[key(1)], &[&[key(1)]]))
        .expect("state");
    store.put_notebook_state("gone.ipynb", &old).expect("state");
    set_used(&store, &key(2), now_unix_s() - 30 * 86400);
    let done = store
        .collect(&GcPolicy {
            project_root: Some(temp.path().to_path_buf()),
            ..policy(3, Duration::from_secs(86400), None)
        })
        .expect("collect");
    assert_eq!(done.notebooks_removed, 1);
    assert!(
        store
            .get_notebook_state("gone.ipynb")
            .expect("state")
            .is_none()
    );
    assert!(store.get_record(&key(2)).expect("get").is_none());
    assert!(store.get_record(&key(1)).expect("get").is_some());
}
