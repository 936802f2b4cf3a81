//! Store tests: round trips, deduplication, blobs, damage and rebuilds, locking, durability.
//!
//! Two tests run a second process: the test binary itself, re-entered through
//! [`child_process_entry_point`] with `NBMEMO_TEST_STORE_CHILD` set.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redb::{ReadableDatabase, ReadableTableMetadata};
use serde_json::json;

use super::*;

const NO_WAIT: Duration = Duration::ZERO;
const SHORT_WAIT: Duration = Duration::from_millis(60);

fn open(dir: &Path) -> Store {
    Store::open(dir, NO_WAIT).expect("open the store")
}

fn cache_dir() -> (tempfile::TempDir, PathBuf) {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join(".nbmemo");
    (temp, dir)
}

/// Runs `f` and returns its result and what it logged at warning level or above.
fn capture_warnings<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .without_time()
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let logged = String::from_utf8_lossy(&lock(&buffer.0)).into_owned();
    (out, logged)
}

fn sample_record(values: Vec<ValueGroup>) -> CellRecord {
    CellRecord {
        status: RecordStatus::Error,
        stdout: "hello\n".to_owned(),
        stderr: "warning: é\n".to_owned(),
        outputs: vec![json!({
            "output_type": "execute_result",
            "data": {"text/plain": "42"},
            "metadata": {},
            "execution_count": 1
        })],
        error: Some(ErrorInfo {
            ename: "ValueError".to_owned(),
            evalue: "bad".to_owned(),
            traceback: vec!["Traceback".to_owned(), "ValueError: bad".to_owned()],
            line: Some(3),
        }),
        values,
        deleted: vec!["tmp".to_owned()],
        mutated: vec!["df".to_owned()],
        unpicklable: vec![Unpicklable {
            name: "gen".to_owned(),
            type_name: "generator".to_owned(),
        }],
        duration_s: 0.25,
        created_unix_s: 1_700_000_000,
        files_read: vec![("data.csv".to_owned(), ContentHash([3; 32]))],
        files_written: vec![FileOutput {
            path: "out/x.txt".to_owned(),
            artifact: None,
            dir: false,
        }],
    }
}

fn key(n: u8) -> ContentHash {
    ContentHash::of(&[b'k', n])
}

fn count(store: &Store, table: redb::TableDefinition<&[u8; 32], &[u8]>) -> u64 {
    store
        .with_db(|db| Ok(db.begin_read()?.open_table(table)?.len()?))
        .expect("count")
        .expect("store enabled")
}

fn blob_files(store: &Store) -> Vec<String> {
    let mut names: Vec<String> = fs_err::read_dir(&store.layout.blobs)
        .expect("read blobs/")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// Deterministic pseudo-random bytes (xorshift64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn artifact_round_trip() {
    let (_temp, dir) = cache_dir();
    let store = open(&dir);
    for bytes in [&b""[..], b"x", b"some pickled value"] {
        let hash = store.put_artifact(bytes).expect("put");
        assert_eq!(hash, ContentHash::of(bytes));
        assert!(store.has_artifact(&hash).expect("has"));
        assert_eq!(
            store.get_artifact(&hash).expect("get").as_deref(),
            Some(bytes)
        );
    }
    let absent = ContentHash::of(b"never stored");
    assert!(!store.has_artifact(&absent).expect("has"));
    assert_eq!(store.get_artifact(&absent).expect("get"), None);
}

#[test]
fn identical_artifacts_are_stored_once() {
    let (_temp, dir) = cache_dir();
    let store = open(&dir);
    let small = vec![7u8; 1000];
    let large = Rng(11).bytes(INLINE_ARTIFACT_MAX + 1);
    for _ in 0..3 {
        assert_eq!(
            store.put_artifact(&small).expect("put"),
            ContentHash::of(&small)
        );
        assert_eq!(
            store.put_artifact(&large).expect("put"),
            ContentHash::of(&large)
        );
    }
    assert_eq!(count(&store, ARTIFACTS), 2);
    assert_eq!(
        blob_files(&store),
        vec![ContentHash::of(&large).to_string()]
    );
}

#[test]
fn large_artifact_lives_in_blobs() {
    let (_temp, dir) = cache_dir();
    let store = open(&dir);
    let bytes = Rng(1).bytes(INLINE_ARTIFACT_MAX + 10);
    let hash = store.put_artifact(&bytes).expect("put");
    let blob = store.layout.blobs.join(hash.to_string());
    assert_eq!(fs_err::read(&blob).expect("blob file"), bytes);
    assert_eq!(store.get_artifact(&hash).expect("get"), Some(bytes));
    // At the threshold, the artifact stays inline.
    let inline = vec![1u8; INLINE_ARTIFACT_MAX];
    store.put_artifact(&inline).expect("put");
    assert_eq!(blob_files(&store).len(), 1);
}

#[test]
fn damaged_blob_is_a_miss_never_wrong_bytes() {
    let (_temp, dir) = cache_dir();
    let store = open(&dir);
    let bytes = Rng(2).bytes(INLINE_ARTIFACT_MAX + 100);
    let hash = store.put_artifact(&bytes).expect("put");
    let blob = store.blobs.path(&hash);
    let mut damaged = fs_err::read(&blob).expect("read blob");
    damaged[1234] ^= 0x01;
    fs_err::write(&blob, &damaged).expect("write blob");

    let (got, logged) = capture_warnings(|| store.get_artifact(&hash).expect("get"));
    assert_eq!(got, None);
    assert!(logged.contains("do not match their hash"), "{logged}");
    assert!(!store.has_artifact(&hash).expect("has"));
    // Putting the bytes again repairs the entry instead of deduplicating against the damage.
    store.put_artifact(&bytes).expect("put again");
    assert_eq!(store.get_artifact(&hash).expect("get"), Some(bytes));
}

#[test]
fn truncated_blob_is_a_miss() {
    let (_temp, dir) = cache_dir();
    let store = open(&dir);
    let bytes = Rng(3).bytes(INLINE_ARTIFACT_MAX + 100);
    let hash = store.put_artifact(&bytes).expect("put");
    fs_err::write(store.blobs.path(&hash), &bytes[..1000]).expect("truncate");
    assert!(!store.has_artifact(&hash).expect("has"));
    let (got, logged) = capture_warnings(|| store.get_artifact(&hash).expect("get"));
    assert_eq!(got, None);
    assert!(logged.contains("instead of"), "{logged}");
}

#[test]
fn deleted_blob_is_a_miss() {
    let (_temp, dir) = cache_dir();
    let store = open(&dir);
    let bytes = Rng(4).bytes(INLINE_ARTIFACT_MAX + 100);
    let hash = store.put_artifact(&bytes).expect("put");
    fs_err::remove_file(store.blobs.path(&hash)).expect("delete blob");
    assert!(!store.has_artifact(&hash).expect("has"));
    let (got, logged) = capture_warnings(|| store.get_artifact(&hash).expect("get"));
    assert_eq!(got, None);
    assert!(logged.contains("is missing"), "{logged}");
    // A put of the same bytes writes the file again.
    store.put_artifact(&bytes).expect("put again");
    assert_eq!(store.get_artifact(&hash).expect("get"), Some(bytes));
}

#[test]
fn artifact_address_is_blake3_of_bytes() {
    let (_temp, dir) = cache_dir();
    let store = open(&dir);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut stored = Vec::new();
    for round in 0..48 {
        let len = match round % 4 {
            0 => 0,
            1 => (rng.next() % 64) as usize,
            2 => (rng.next() % 8192) as usize,
            _ => INLINE_ARTIFACT_MAX - 2 + (rng.next() % 5) as usize,
        };
        let bytes = rng.bytes(len);
        let hash = store.put_artifact(&bytes).expect("put");
        assert_eq!(hash.0, *blake3::hash(&bytes).as_bytes());
        assert_eq!(
            store.blobs.path(&hash).exists(),
            len > INLINE_ARTIFACT_MAX,
            "len {len}"
        );
        stored.push((hash, bytes));
    }
    for (hash, bytes) in &stored {
        assert_eq!(store.get_artifact(hash).expect("get").as_ref(), Some(bytes));
    }
}

#[test]
fn record_round_trip() {
    let (_temp, dir) = cache_dir();
    let store = open(&dir);
    let value = store.put_artifact(b"pickle of df").expect("put");
    let record = sample_record(vec![ValueGroup {
        names: vec!["df".to_owned(), "view".to_owned()],
        artifact: value,
    }]);
    store.put_record(&key(1), &record).expect("put record");
    assert_eq!(store.get_record(&key(1)).expect("get"), Some(record));
    assert_eq!(store.get_record(&key(2)).expect("get"), None);
    let used = store
        .with_db(|db| {
            let txn = db.begin_read()?;
            Ok(txn
                .open_table(RECORD_USED)?
                .get(&key(1).0)?
                .map(|v| v.value()))
        })
        .expect("read")
        .flatten();
    assert!(used.is_some_and(|used| used + 60 >= now_unix_s()));
}

#[test]
fn large_outputs_are_stored_as_an_artifact() {
    let (_temp, dir) = cache_dir();
    let store = open(&dir);
    let image = "iVBORw0KGgo".repeat(4000);
    let mut record = sample_record(Vec::new());
    record.outputs.push(json!({
        "output_type": "display_data",
        "data": {"image/png": image, "text/plain": "<Figure>"},
        "metadata": {}
    }));
    store.put_record(&key(1), &record).expect("put");
    store.put_record(&key(2), &record).expect("put");
    assert_eq!(count(&store, ARTIFACTS), 1, "the outputs list, stored once");
    let raw = store
        .with_db(|db| {
            let txn = db.begin_read()?;
            Ok(txn
                .open_table(RECORDS)?
                .get(&key(1).0)?
                .map(|v| v.value().len()))
        })
        .expect("read")
        .flatten()
        .expect("record present");
    assert!(raw < INLINE_OUTPUTS_MAX, "record is {raw} bytes");
    assert_eq!(
        store.get_record(&key(1)).expect("get"),
        Some(record.clone())
    );
    assert_eq!(store.get_record(&key(2)).expect("get"), Some(record));
}

#[test]
fn record_referring_to_a_missing_artifact_is_not_stored() {
    let (_temp, dir) = cache_dir();
    let store = open(&dir);
    let record = sample_record(vec![ValueGroup {
        names: vec!["x".to_owned()],
        artifact: ContentHash::of(b"never put"),
    }]);
    let ((), logged) = capture_warnings(|| store.put_record(&key(1), &record).expect("put"));
    assert!(logged.contains("not stored"), "{logged}");
    assert_eq!(store.get_record(&key(1)).expect("get"), None);
}

#[test]
fn damaged_record_is_a_miss() {
    let (_temp, dir) = cache_dir();
    let store = open(&dir);
    store
        .put_record(&key(1), &sample_record(Vec::new()))
        .expect("put");
    // A record moved under another key fails its checksum, as does garbage.
    let moved = store
        .with_db(|db| {
            let txn = db.begin_read()?;
            Ok(txn
                .open_table(RECORDS)?
                .get(&key(1).0)?
                .map(|v| v.value().to_vec()))
        })
        .expect("read")
        .flatten()
        .expect("present");
    let mut flipped = moved.clone();
    let last = flipped.len() - 2;
    flipped[last] ^= 0x20;
    for (k, value) in [
        (key(2), moved),
        (key(3), b"\x01garbage".to_vec()),
        (key(4), flipped),
    ] {
        store
            .with_db(|db| {
                let txn = db.begin_write()?;
                txn.open_table(RECORDS)?.insert(&k.0, value.as_slice())?;
                txn.commit()?;
                Ok(())
            })
            .expect("write");
        let (got, logged) = capture_warnings(|| store.get_record(&k).expect("get"));
        assert_eq!(got, None);
        assert!(logged.contains("is damaged"), "{logged}");
    }
    assert!(store.get_record(&key(1)).expect("get").is_some());
}

#[test]
fn notebook_state_round_trip() {
    let (_temp, dir) = cache_dir();
    let store = open(&dir);
    let state = NotebookState {
        cell_keys: vec![Some(key(1)), None, Some(key(2))],
        traces: vec![
            Some(CellTrace {
                code_hash: key(5),
                env: key(6),
                inputs: vec![("df".to_owned(), key(9))],
                files: vec![("data.csv".to_owned(), key(4))],
            }),
            None,
            None,
        ],
        refuted: vec![(key(7), "df".to_owned())],
        confirmed: vec![(key(8), "model".to_owned())],
        files: vec![FileUse {
            code_hash: key(5),
            read: vec!["data.csv".to_owned(), "out/".to_owned()],
            written: vec!["out/x.txt".to_owned()],
        }],
        distributions: vec!["numpy==2.2.6".to_owned()],
        updated_unix_s: 1_700_000_001,
        recent_runs: vec![RecentRun {
            unix_s: 1_700_000_001,
            keys: vec![key(1), key(2)],
        }],
    };
    assert_eq!(store.get_notebook_state("nb.ipynb").expect("get"), None);
    store.put_notebook_state("nb.ipynb", &state).expect("put");
    assert_eq!(
        store.get_notebook_state("nb.ipynb").expect("get"),
        Some(state.clone())
    );
    let newer = NotebookState {
        cell_keys: Vec::new(),
        ..state
    };
    store.put_notebook_state("nb.ipynb", &newer).expect("put");
    assert_eq!(
        store.get_notebook_state("nb.ipynb").expect("get"),
        Some(newer)
    );
    assert_eq!(store.get_notebook_state("other.py").expect("get"), None);
}

#[test]
fn layout_has_cachedir_tag_gitignore_and_pid_file() {
    let (_temp, dir) = cache_dir();
    let store = open(&dir);
    assert_eq!(store.root(), dir.join("cache").join("v3"));
    assert!(store.root().join("cache.redb").is_file());
    let tag = fs_err::read_to_string(dir.join("cache").join("CACHEDIR.TAG")).expect("tag");
    assert!(tag.starts_with("Signature: 8a477f597d28d172789f06886806bc55"));
    assert_eq!(
        fs_err::read_to_string(dir.join(".gitignore")).expect("gitignore"),
        "*\n"
    );
    let pid_file = store.root().join("cache.pid");
    let pid = fs_err::read_to_string(&pid_file).expect("pid file");
    assert_eq!(pid.trim(), std::process::id().to_string());
    drop(store);
    assert!(!pid_file.exists());
}

#[test]
fn flushed_writes_survive_reopen() {
    let (_temp, dir) = cache_dir();
    let large = Rng(5).bytes(INLINE_ARTIFACT_MAX + 1);
    let record = sample_record(Vec::new());
    {
        let store = open(&dir);
        store.put_artifact(b"small").expect("put");
        store.put_artifact(&large).expect("put");
        store.put_record(&key(1), &record).expect("put");
        store
            .put_notebook_state("nb", &NotebookState::default())
            .expect("put");
        store.flush().expect("flush");
    }
    let store = open(&dir);
    assert_eq!(
        store.get_artifact(&ContentHash::of(b"small")).expect("get"),
        Some(b"small".to_vec())
    );
    assert_eq!(
        store.get_artifact(&ContentHash::of(&large)).expect("get"),
        Some(large)
    );
    assert_eq!(store.get_record(&key(1)).expect("get"), Some(record));
    assert_eq!(
        store.get_notebook_state("nb").expect("get"),
        Some(NotebookState::default())
    );
}

fn populate_and_close(dir: &Path) {
    let store = open(dir);
    for n in 0..40u8 {
        let value = store
            .put_artifact(&Rng(u64::from(n) + 1).bytes(3000))
            .expect("put");
        let record = sample_record(vec![ValueGroup {
            names: vec![format!("v{n}")],
            artifact: value,
        }]);
        store.put_record(&key(n), &record).expect("put");
    }
    store.flush().expect("flush");
}

fn assert_usable(store: &Store) {
    let hash = store.put_artifact(b"after rebuild").expect("put");
    let record = sample_record(vec![ValueGroup {
        names: vec!["x".to_owned()],
        artifact: hash,
    }]);
    store.put_record(&key(200), &record).expect("put record");
    assert_eq!(store.get_record(&key(200)).expect("get"), Some(record));
    assert_eq!(
        store.get_artifact(&hash).expect("get"),
        Some(b"after rebuild".to_vec())
    );
}

#[test]
fn damaged_database_file_is_rebuilt() {
    let (_temp, dir) = cache_dir();
    populate_and_close(&dir);
    let db_path = Layout::new(&dir).db;
    let pristine = fs_err::read(&db_path).expect("read db");
    let garbage = vec![0x5a; pristine.len()];
    for damaged in [
        &pristine[..pristine.len() / 2],
        &pristine[..100],
        &garbage,
        b"junk",
    ] {
        fs_err::write(&db_path, damaged).expect("damage db");
        let (store, logged) = capture_warnings(|| open(&dir));
        assert!(logged.contains("is damaged"), "{logged}");
        assert!(Layout::new(&dir).damaged_copy.exists());
        assert_eq!(store.get_record(&key(1)).expect("get"), None);
        assert_usable(&store);
        drop(store);
        // The rebuilt store opens silently.
        let (store, logged) = capture_warnings(|| open(&dir));
        assert_eq!(logged, "");
        assert!(store.get_record(&key(200)).expect("get").is_some());
    }
}

#[test]
fn bytes_flipped_inside_the_database_never_give_wrong_answers() {
    let (_temp, dir) = cache_dir();
    populate_and_close(&dir);
    let db_path = Layout::new(&dir).db;
    let pristine = fs_err::read(&db_path).expect("read db");
    // The first pages hold redb's own structures (the open catches redb's panic and rebuilds);
    // a sample of the later ones holds records and artifacts (their checks catch the damage).
    let n_pages = pristine.len() / 4096;
    let offsets = [4096, 8192, 3 * 4096 + 100]
        .into_iter()
        .chain((4..n_pages).step_by(7).map(|page| page * 4096 + 2000));
    let mut all_logged = String::new();
    for offset in offsets {
        let mut damaged = pristine.clone();
        for byte in &mut damaged[offset..offset + 64] {
            *byte ^= 0xa5;
        }
        fs_err::write(&db_path, &damaged).expect("damage db");
        let ((), logged) = capture_warnings(|| {
            let store = Store::open(&dir, NO_WAIT).expect("open never fails on damage");
            for n in 0..40u8 {
                if let Some(record) = store.get_record(&key(n)).expect("get") {
                    assert_eq!(record.values[0].names, vec![format!("v{n}")]);
                }
                let expected = Rng(u64::from(n) + 1).bytes(3000);
                let hash = ContentHash::of(&expected);
                if let Some(bytes) = store.get_artifact(&hash).expect("get") {
                    assert_eq!(bytes, expected);
                }
            }
            drop(store);
            // Whatever happened, the next open gives a working store.
            let store = Store::open(&dir, NO_WAIT).expect("reopen");
            assert_usable(&store);
        });
        all_logged.push_str(&logged);
        fs_err::write(&db_path, &pristine).expect("restore db");
        let _ = fs_err::remove_file(Layout::new(&dir).damaged_marker);
    }
    // Each line of defence was exercised (if redb's page layout changes, adjust the offsets).
    for defence in [
        "the database library panicked",
        "(checksum mismatch)",
        "(its bytes do not match their hash)",
    ] {
        assert!(all_logged.contains(defence), "{defence}: {all_logged}");
    }
}

#[test]
fn store_of_another_format_version_is_rebuilt() {
    let (_temp, dir) = cache_dir();
    let large = Rng(6).bytes(INLINE_ARTIFACT_MAX + 1);
    {
        let store = open(&dir);
        store.put_artifact(&large).expect("put");
        store
            .put_record(&key(1), &sample_record(Vec::new()))
            .expect("put");
        store
            .with_db(|db| {
                let txn = db.begin_write()?;
                txn.open_table(META)?
                    .insert(META_FORMAT_VERSION, 999u32.to_le_bytes().as_slice())?;
                txn.commit()?;
                Ok(())
            })
            .expect("write meta");
    }
    let (store, logged) = capture_warnings(|| open(&dir));
    assert!(
        logged.contains("another cache format (format version 999)"),
        "{logged}"
    );
    assert_eq!(store.get_record(&key(1)).expect("get"), None);
    assert!(blob_files(&store).is_empty());
    assert_usable(&store);
}

#[test]
fn damage_found_mid_run_rebuilds_at_next_open() {
    let (_temp, dir) = cache_dir();
    populate_and_close(&dir);
    let store = open(&dir);
    let ((), logged) = capture_warnings(|| store.mark_damaged("test damage"));
    assert!(logged.contains("caching is off"), "{logged}");
    // Disabled: misses and no-ops, no errors.
    assert_eq!(store.get_record(&key(1)).expect("get"), None);
    store.put_artifact(b"ignored").expect("put");
    store.flush().expect("flush");
    drop(store);
    let (store, logged) = capture_warnings(|| open(&dir));
    assert!(
        logged.contains("found damaged during an earlier run (test damage)"),
        "{logged}"
    );
    assert_eq!(store.get_record(&key(1)).expect("get"), None);
    assert_usable(&store);
}

#[test]
fn second_open_in_the_same_process_is_busy() {
    let (_temp, dir) = cache_dir();
    let first = open(&dir);
    let started = Instant::now();
    let err = Store::open(&dir, SHORT_WAIT).expect_err("busy");
    assert!(started.elapsed() >= SHORT_WAIT);
    let Error::Busy { pid, path } = &err else {
        panic!("expected Busy, got {err:?}");
    };
    assert_eq!(*pid, HolderPid(Some(std::process::id())));
    assert_eq!(path, &dir);
    assert_eq!(
        err.to_string(),
        format!(
            "the cache `{}` is in use by another nbmemo process (pid {})",
            dir.display(),
            std::process::id()
        )
    );
    assert!(err.hint().is_some());
    drop(first);
    assert!(Store::open(&dir, NO_WAIT).is_ok());
}

#[test]
fn open_waits_for_the_holder_to_finish() {
    let (_temp, dir) = cache_dir();
    let first = open(&dir);
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        drop(first);
    });
    let store = Store::open(&dir, Duration::from_secs(5)).expect("open after the wait");
    releaser.join().expect("join");
    assert_usable(&store);
}

#[test]
fn store_is_send_and_sync_and_shared_by_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Store>();
    let (_temp, dir) = cache_dir();
    let store = open(&dir);
    std::thread::scope(|scope| {
        for thread in 0..4u8 {
            let store = &store;
            scope.spawn(move || {
                for n in 0..25u8 {
                    // Half the artifacts are shared between threads.
                    let bytes = if n % 2 == 0 {
                        vec![n; 100]
                    } else {
                        vec![thread, n]
                    };
                    let hash = store.put_artifact(&bytes).expect("put");
                    assert_eq!(store.get_artifact(&hash).expect("get"), Some(bytes));
                }
            });
        }
    });
    assert_eq!(count(&store, ARTIFACTS), 13 + 4 * 12);
}

#[test]
fn redb_version_in_meta_matches_cargo_lock() {
    let lock_file = include_str!("../../Cargo.lock");
    let locked = lock_file
        .split("[[package]]")
        .find(|package| package.contains("\nname = \"redb\"\n"))
        .and_then(|package| package.split("version = \"").nth(1))
        .and_then(|rest| rest.split('"').next());
    assert_eq!(locked, Some(REDB_VERSION));
}

const CHILD_MODE: &str = "NBMEMO_TEST_STORE_CHILD";
const CHILD_DIR: &str = "NBMEMO_TEST_STORE_DIR";

fn spawn_child(mode: &str, dir: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "store::tests::child_process_entry_point",
            "--test-threads=1",
            "--quiet",
        ])
        .env(CHILD_MODE, mode)
        .env(CHILD_DIR, dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn child")
}

/// The body of the child processes the tests below start; a no-op in a normal test run.
#[test]
fn child_process_entry_point() {
    let (Ok(mode), Ok(dir)) = (std::env::var(CHILD_MODE), std::env::var(CHILD_DIR)) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let store = open(&dir);
    match mode.as_str() {
        "hold" => {
            let signals = dir.parent().expect("parent");
            fs_err::write(signals.join("ready"), "").expect("signal ready");
            let deadline = Instant::now() + Duration::from_secs(20);
            while !signals.join("release").exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        "flush_then_exit" => {
            let value = store.put_artifact(b"durable").expect("put");
            let record = sample_record(vec![ValueGroup {
                names: vec!["x".to_owned()],
                artifact: value,
            }]);
            store.put_record(&key(1), &record).expect("put");
            store.flush().expect("flush");
            store.put_artifact(b"not flushed").expect("put");
            let _ = std::io::stderr().flush();
            // No destructors: the database is not closed cleanly, as in a crash.
            std::process::exit(0);
        }
        other => panic!("unknown child mode {other}"),
    }
}

#[test]
fn store_held_by_another_process_is_busy_naming_its_pid() {
    let (temp, dir) = cache_dir();
    let mut child = spawn_child("hold", &dir);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !temp.path().join("ready").exists() {
        assert!(Instant::now() < deadline, "child did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    let result = Store::open(&dir, SHORT_WAIT);
    fs_err::write(temp.path().join("release"), "").expect("release child");
    let status = child.wait().expect("wait child");
    match result {
        Err(Error::Busy { pid, .. }) => assert_eq!(pid, HolderPid(Some(child.id()))),
        other => panic!("expected Busy, got {other:?}"),
    }
    assert!(status.success());
    assert_usable(&open(&dir));
}

#[test]
fn flushed_writes_survive_a_crash() {
    let (_temp, dir) = cache_dir();
    let status = spawn_child("flush_then_exit", &dir)
        .wait()
        .expect("wait child");
    assert!(status.success());
    let store = Store::open(&dir, NO_WAIT).expect("reopen after the crash");
    let record = store
        .get_record(&key(1))
        .expect("get")
        .expect("flushed record");
    assert_eq!(
        store.get_artifact(&record.values[0].artifact).expect("get"),
        Some(b"durable".to_vec())
    );
    assert_usable(&store);
}

#[test]
fn encodings_are_stable() {
    // The bytes on disk: if this changes, bump FORMAT_VERSION and add a changelog entry.
    let stored = StoredRecord {
        outputs_artifact: None,
        record: CellRecord {
            status: RecordStatus::Ok,
            stdout: "1\n".to_owned(),
            stderr: String::new(),
            outputs: vec![json!({"output_type": "stream", "name": "stdout", "text": "1\n"})],
            error: None,
            values: vec![ValueGroup {
                names: vec!["x".to_owned()],
                artifact: ContentHash([0xab; 32]),
            }],
            deleted: Vec::new(),
            mutated: Vec::new(),
            unpicklable: Vec::new(),
            duration_s: 0.5,
            created_unix_s: 7,
            files_read: vec![("data.csv".to_owned(), ContentHash([0xcd; 32]))],
            files_written: vec![FileOutput {
                path: "out".to_owned(),
                artifact: None,
                dir: true,
            }],
        },
    };
    let ab = "ab".repeat(32);
    let cd = "cd".repeat(32);
    assert_eq!(
        serde_json::to_string(&stored).expect("encode"),
        format!(
            r#"{{"outputs_artifact":null,"record":{{"status":"ok","stdout":"1\n","stderr":"","outputs":[{{"output_type":"stream","name":"stdout","text":"1\n"}}],"error":null,"values":[{{"names":["x"],"artifact":"{ab}"}}],"deleted":[],"mutated":[],"unpicklable":[],"duration_s":0.5,"created_unix_s":7,"files_read":[["data.csv","{cd}"]],"files_written":[{{"path":"out","artifact":null,"dir":true}}]}}}}"#
        )
    );
    let sealed = format::seal(b"key", &stored).expect("seal");
    assert_eq!(sealed[0], 1);
    assert_eq!(&sealed[1..33], {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&3u64.to_le_bytes());
        hasher.update(b"key");
        hasher.update(&sealed[33..]);
        *hasher.finalize().as_bytes()
    });
    assert_eq!(
        format::unseal::<StoredRecord>(b"key", &sealed).expect("unseal"),
        stored
    );
    assert!(format::unseal::<StoredRecord>(b"other key", &sealed).is_err());

    assert_eq!(ArtifactEntry::Inline(b"abc").encode(), b"\x00abc");
    assert_eq!(
        ArtifactEntry::Blob { len: 300_000 }.encode(),
        [&[1u8][..], &300_000u64.to_le_bytes()].concat()
    );
    for entry in [ArtifactEntry::Inline(b""), ArtifactEntry::Blob { len: 5 }] {
        assert_eq!(ArtifactEntry::decode(&entry.encode()), Some(entry));
    }
    assert_eq!(
        ArtifactEntry::InlineZstd {
            len: 9,
            frame: b"zz"
        }
        .encode(),
        [&[2u8][..], &9u64.to_le_bytes(), b"zz"].concat()
    );
    assert_eq!(
        ArtifactEntry::BlobZstd {
            len: 300_000,
            stored: 1000
        }
        .encode(),
        [
            &[3u8][..],
            &300_000u64.to_le_bytes(),
            &1000u64.to_le_bytes()
        ]
        .concat()
    );
    for entry in [
        ArtifactEntry::Inline(b""),
        ArtifactEntry::Blob { len: 5 },
        ArtifactEntry::InlineZstd {
            len: 5,
            frame: b"abc",
        },
        ArtifactEntry::BlobZstd { len: 5, stored: 3 },
    ] {
        assert_eq!(ArtifactEntry::decode(&entry.encode()), Some(entry));
    }
    assert_eq!(ArtifactEntry::decode(b""), None);
    assert_eq!(ArtifactEntry::decode(b"\x01short"), None);
    assert_eq!(ArtifactEntry::decode(b"\x03short"), None);
    assert_eq!(ArtifactEntry::decode(b"\x07"), None);

    // A sealed value whose JSON compresses: encoding 2, the checksum of the JSON, its length,
    // a zstd frame.
    let long = vec!["the same words again"; 200];
    let sealed = format::seal(b"key", &long).expect("seal");
    let json = serde_json::to_vec(&long).expect("json");
    assert_eq!(sealed[0], 2);
    assert_eq!(&sealed[1..33], {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&3u64.to_le_bytes());
        hasher.update(b"key");
        hasher.update(&json);
        *hasher.finalize().as_bytes()
    });
    assert_eq!(sealed[33..41], (json.len() as u64).to_le_bytes());
    assert_eq!(
        zstd::bulk::decompress(&sealed[41..], json.len()).expect("zstd frame"),
        json
    );
    assert!(sealed.len() < json.len() / 4);
    assert_eq!(
        format::unseal::<Vec<String>>(b"key", &sealed).expect("unseal"),
        long
    );
    assert_eq!(format::sealed_payload_len(&sealed), Some(json.len() as u64));
}

#[test]
fn compressible_artifacts_are_stored_compressed_and_verified() {
    let (_temp, dir) = cache_dir();
    let store = open(&dir);
    // Bytes of 3 bits of entropy each: they compress to about 40%, inline and as a blob.
    let mut rng = Rng(12);
    let text: Vec<u8> = (0..1 << 20)
        .map(|_| b"abcdefgh"[(rng.next() % 8) as usize])
        .collect();
    let small = &text[..8000];
    for bytes in [small, &text[..]] {
        let hash = store.put_artifact(bytes).expect("put");
        assert!(store.has_artifact(&hash).expect("has"));
        assert_eq!(
            store.get_artifact(&hash).expect("get").as_deref(),
            Some(bytes)
        );
    }
    let large = ContentHash::of(&text);
    let blob = store.blobs.zstd_path(&large);
    assert!(fs_err::metadata(&blob).expect("compressed blob").len() < text.len() as u64 / 2);
    assert_eq!(blob_files(&store), vec![format!("{large}.zst")]);
    let inline = store
        .with_db(|db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(ARTIFACTS)?;
            Ok(table
                .get(&ContentHash::of(small).0)?
                .map(|value| value.value().to_vec()))
        })
        .expect("read")
        .flatten()
        .expect("entry");
    assert_eq!(inline[0], 2, "stored inline, compressed");
    assert!(inline.len() < small.len() / 2);

    // A damaged compressed blob is a miss, never wrong bytes; a put repairs it.
    let mut damaged = fs_err::read(&blob).expect("read blob");
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x40;
    fs_err::write(&blob, &damaged).expect("write blob");
    let (got, logged) = capture_warnings(|| store.get_artifact(&large).expect("get"));
    assert_eq!(got, None);
    assert!(
        logged.contains("does not decompress") || logged.contains("do not match"),
        "{logged}"
    );
    store.put_artifact(&text).expect("put again");
    assert_eq!(store.get_artifact(&large).expect("get"), Some(text.clone()));

    // Incompressible bytes are stored as they are.
    let random = Rng(9).bytes(INLINE_ARTIFACT_MAX + 10);
    let hash = store.put_artifact(&random).expect("put");
    assert!(store.blobs.path(&hash).is_file());
    assert!(!store.blobs.zstd_path(&hash).exists());
}

#[test]
fn real_io_failures_are_errors_not_rebuilds() {
    let (temp, _dir) = cache_dir();
    // A file where the cache directory should be: no rebuild can help, the user must act.
    let not_a_dir = temp.path().join("file");
    fs_err::write(&not_a_dir, "user data").expect("write");
    let err = Store::open(&not_a_dir, NO_WAIT).expect_err("not a directory");
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("failed to access the cache at `"),
        "{err}"
    );
    assert_eq!(
        fs_err::read_to_string(&not_a_dir).expect("read"),
        "user data"
    );
}
