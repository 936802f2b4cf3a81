//! Reliability under faults (issue #10): `nbmemo run` killed at many points, a damaged store,
//! two processes on one store, and workers that crash, segfault or are killed from outside.
//! The figures these tests establish are in RELIABILITY.md.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Project, copy_dir, machine, statuses, stdouts};

fn nbmemo_command(project: &Project, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nbmemo"));
    command
        .args(args)
        .arg("--python")
        .arg(&project.python)
        .current_dir(project.ctx.dir.path())
        .env("NO_COLOR", "1");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("NBMEMO_") {
            command.env_remove(key);
        }
    }
    command
}

/// A notebook whose cells take some time, print, write a file and pass values along.
const CELLS: &[&str] = &[
    "import time\nbase = list(range(1000))",
    "time.sleep(0.15)\ntotal = sum(base)\nprint(total)",
    "time.sleep(0.1)\nimport random\nblob = random.Random(0).randbytes(300_000)\nprint(len(blob))",
    "time.sleep(0.15)\nwith open('out.txt', 'w') as f:\n    f.write(str(total))\nprint('wrote')",
    "time.sleep(0.1)\nprint(total * 2, len(blob))",
    "print(open('out.txt').read())",
];

/// `nbmemo run --inplace` killed with SIGKILL at many points of a run, then run again: the
/// notebook file is always the old or the new version, the store opens, and the next run's
/// results equal a clean run's.
#[test]
fn runs_killed_at_many_points_leave_a_correct_cache_and_a_whole_notebook() {
    let _machine = machine();
    // The clean reference, in a project of its own.
    let reference = Project::new();
    let reference_nb = reference.write_notebook("nb.ipynb", CELLS);
    let start = Instant::now();
    let clean = reference.run_json(&[reference_nb.to_str().expect("UTF-8"), "--inplace"]);
    let duration = start.elapsed();
    assert_eq!(statuses(&clean), vec!["ran"; CELLS.len()]);
    let expected = stdouts(&clean);
    let new_version = std::fs::read(&reference_nb).expect("the written notebook");

    let project = Project::new();
    let notebook = project.write_notebook("nb.ipynb", CELLS);
    let old_version = std::fs::read(&notebook).expect("notebook");
    let nb = notebook.to_str().expect("UTF-8");
    let points = 16u32;
    let mut interrupted_runs = 0;
    for step in 0..points {
        // Kill points spread evenly over a cold run: start-up, cells running, results being
        // stored, the write-back at the end.
        let _ = std::fs::remove_dir_all(project.ctx.path(".nbmemo"));
        std::fs::write(&notebook, &old_version).expect("reset the notebook");
        let delay = duration * (2 * step + 1) / (2 * points);
        let mut child = nbmemo_command(&project, &["run", nb, "--inplace", "--json"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nbmemo");
        let start = Instant::now();
        while start.elapsed() < delay {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if child.try_wait().expect("status").is_none() {
            interrupted_runs += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        let bytes = std::fs::read(&notebook).expect("the notebook is still there");
        assert!(
            bytes == old_version || bytes == new_version,
            "after a kill at {delay:?} the notebook is neither the old nor the new version"
        );
        // The next run opens the store and gives the clean results.
        let rerun = project.run_json(&[nb]);
        assert_eq!(
            stdouts(&rerun),
            expected,
            "after a kill at {delay:?}: {rerun:#}"
        );
        assert!(
            statuses(&rerun).iter().all(|status| status != "failed"),
            "{rerun:#}"
        );
        assert_eq!(
            std::fs::read_to_string(project.ctx.path("out.txt")).expect("out.txt"),
            "499500"
        );
    }
    assert!(
        interrupted_runs >= points / 2,
        "only {interrupted_runs} of {points} runs were killed mid-way"
    );
}

/// A store damaged in every way this test can think of: each case is detected (or harmless),
/// and the run's results equal a clean run's.
#[test]
fn a_damaged_store_is_never_a_wrong_answer() {
    let _machine = machine();
    let project = Project::new();
    let notebook = project.write_notebook("nb.ipynb", CELLS);
    let nb = notebook.to_str().expect("UTF-8");
    let clean = project.run_json(&[nb]);
    let expected = stdouts(&clean);
    let cache = project.ctx.path(".nbmemo");
    let pristine = project.ctx.path("pristine-cache");
    copy_dir(&cache, &pristine);
    let version_dir = std::fs::read_dir(cache.join("cache"))
        .expect("cache/")
        .flatten()
        .map(|entry| entry.path())
        .find(|path| path.is_dir())
        .expect("cache/vN");
    let version = version_dir.file_name().expect("name").to_owned();
    let database = |root: &Path| root.join("cache").join(&version).join("cache.redb");
    let blobs = |root: &Path| root.join("cache").join(&version).join("blobs");

    let mut cases: Vec<(String, Damage<'_>)> = Vec::new();
    let size = std::fs::metadata(database(&cache)).expect("db").len();
    for idx in 0..24u64 {
        let offset = (idx * 7919 * 37) % size;
        cases.push((
            format!("flip 16 bytes at {offset} of cache.redb"),
            Box::new(move |root: &Path| {
                let path = database(root);
                let mut bytes = std::fs::read(&path).expect("db");
                for byte in bytes.iter_mut().skip(offset as usize).take(16) {
                    *byte ^= 0x5a;
                }
                std::fs::write(&path, bytes).expect("write");
            }),
        ));
    }
    cases.push((
        "truncate cache.redb to half".to_string(),
        Box::new(move |root: &Path| {
            let path = database(root);
            let bytes = std::fs::read(&path).expect("db");
            std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("write");
        }),
    ));
    cases.push((
        "empty cache.redb".to_string(),
        Box::new(move |root: &Path| std::fs::write(database(root), b"").expect("write")),
    ));
    cases.push((
        "delete every blob".to_string(),
        Box::new(move |root: &Path| {
            for entry in walk(&blobs(root)) {
                std::fs::remove_file(entry).expect("delete");
            }
        }),
    ));
    cases.push((
        "flip bytes in every blob".to_string(),
        Box::new(move |root: &Path| {
            for entry in walk(&blobs(root)) {
                let mut bytes = std::fs::read(&entry).expect("blob");
                let middle = bytes.len() / 2;
                bytes[middle] ^= 0xff;
                std::fs::write(&entry, bytes).expect("write");
            }
        }),
    ));
    cases.push((
        "truncate every blob".to_string(),
        Box::new(move |root: &Path| {
            for entry in walk(&blobs(root)) {
                let bytes = std::fs::read(&entry).expect("blob");
                std::fs::write(&entry, &bytes[..bytes.len() / 3]).expect("write");
            }
        }),
    ));
    assert!(
        !walk(&blobs(&cache)).is_empty(),
        "the notebook stores a large value as a blob"
    );
    let n_cases = cases.len();
    for (name, damage) in cases {
        let _ = std::fs::remove_dir_all(&cache);
        copy_dir(&pristine, &cache);
        damage(&cache);
        let run = nbmemo_command(&project, &["run", nb, "--json"])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            run.status.code() == Some(0),
            "{name}: exit {:?}\n{stderr}",
            run.status.code()
        );
        let report: Value = serde_json::from_slice(&run.stdout).expect("JSON");
        assert_eq!(stdouts(&report), expected, "{name}: {report:#}\n{stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        // The store works again afterwards: the next run is fully cached.
        let again = project.run_json(&[nb]);
        assert_eq!(stdouts(&again), expected, "{name}, next run");
        assert_eq!(
            statuses(&again),
            vec!["cached"; CELLS.len()],
            "{name}, next run: {again:#}"
        );
    }
    assert!(n_cases >= 29);
}

/// Two runs on one store at once: the second waits for the first and says which process holds
/// the store; both give the clean results.
#[test]
fn two_runs_on_one_store_wait_for_each_other() {
    let _machine = machine();
    let project = Project::new();
    let slow = ["import time\ntime.sleep(1.0)\nx = 1", "print(x + 1)"];
    let first_nb = project.write_notebook("first.ipynb", &slow);
    let second_nb = project.write_notebook("second.ipynb", &["print('second')"]);
    let first = nbmemo_command(
        &project,
        &["run", first_nb.to_str().expect("UTF-8"), "--json"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("first run");
    std::thread::sleep(Duration::from_millis(300));
    let second = nbmemo_command(
        &project,
        &["run", second_nb.to_str().expect("UTF-8"), "--json"],
    )
    .output()
    .expect("second run");
    let first = first.wait_with_output().expect("first run");
    assert_eq!(first.status.code(), Some(0));
    assert_eq!(second.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("in use by another nbmemo process (pid "),
        "the second run names the holder: {stderr}"
    );
    let first: Value = serde_json::from_slice(&first.stdout).expect("JSON");
    let second: Value = serde_json::from_slice(&second.stdout).expect("JSON");
    assert_eq!(stdouts(&first), ["", "2\n"]);
    assert_eq!(stdouts(&second), ["second\n"]);
}

/// Workers that crash, segfault or are killed from outside: the cell fails with the reason,
/// nothing of it is cached, the rest of the run goes on.
#[test]
fn worker_faults_fail_only_their_cell_and_are_never_cached() {
    let _machine = machine();
    let project = Project::new();
    let wrapper = project.python.clone();
    let cells = [
        "x = 1",
        "import os\nos._exit(7)",
        "import ctypes\nctypes.string_at(0)",
        "import os, time\nopen('started.txt', 'w').write(str(os.getpid()))\ntime.sleep(30)",
        "print('independent', x)",
    ];
    let notebook = project.write_notebook("nb.ipynb", &cells);
    let nb = notebook.to_str().expect("UTF-8").to_string();
    let wrapper_arg = wrapper.display().to_string();
    let run = std::thread::spawn({
        let dir = project.ctx.dir.path().to_path_buf();
        move || {
            crate::common::nbmemo_in(
                &dir,
                &["run", &nb, "--json", "-j", "2", "--python", &wrapper_arg],
            )
        }
    });
    // Kill the worker running the sleeping cell from outside.
    let started = project.ctx.path("started.txt");
    for _ in 0..600 {
        if started.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(started.exists(), "the sleeping cell started");
    let mut sleeping_worker = String::new();
    for _ in 0..100 {
        sleeping_worker = std::fs::read_to_string(&started).unwrap_or_default();
        if !sleeping_worker.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sleeping_worker.trim().parse().expect("the worker's pid")),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the worker");
    let run = run.join().expect("the run");
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = run.json();
    assert_eq!(
        statuses(&report),
        ["ran", "failed", "failed", "failed", "ran"]
    );
    let reasons: Vec<&str> = report["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .map(|cell| cell["reason"].as_str().unwrap_or(""))
        .collect();
    assert!(
        reasons[1].contains("exited with status 7"),
        "{}",
        reasons[1]
    );
    assert!(reasons[2].contains("SIGSEGV"), "{}", reasons[2]);
    assert!(reasons[3].contains("SIGKILL"), "{}", reasons[3]);
    assert_eq!(stdouts(&report)[4], "independent 1\n");
    // Nothing of the failed cells was cached: a plan says they would run.
    let plan = crate::common::nbmemo_in(
        project.ctx.dir.path(),
        &[
            "plan",
            notebook.to_str().expect("UTF-8"),
            "--format",
            "json",
            "--python",
            &wrapper.display().to_string(),
        ],
    )
    .json();
    for idx in 1..4 {
        assert_eq!(plan["cells"][idx]["cache"], "would run", "cell {idx}");
    }
    assert_eq!(plan["cells"][4]["cache"], "cached");
}

/// A way to damage a copy of the cache folder.
type Damage<'a> = Box<dyn Fn(&Path) + 'a>;

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else if !entry.file_name().to_string_lossy().starts_with('.') {
            files.push(path);
        }
    }
    files
}

/// `check` while `watch` holds the store: it waits, says which process holds the store, and
/// runs once the watch ends.
#[test]
fn check_waits_for_a_watch_and_names_it() {
    let _machine = machine();
    let project = Project::new();
    let notebook = project.write_notebook("nb.ipynb", &["x = 1\nprint(x)"]);
    let mut watch = nbmemo_command(&project, &["watch", notebook.to_str().expect("UTF-8")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start watch");
    // The watch has run once when its status line says it is watching.
    let stderr = watch.stderr.take().expect("stderr");
    let (ready, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.starts_with("watching") {
                let _ = ready.send(());
            }
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("watch ran once");
    let check = nbmemo_command(&project, &["check", "."])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start check");
    std::thread::sleep(Duration::from_millis(1500));
    let pid = nix::unistd::Pid::from_raw(i32::try_from(watch.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    assert_eq!(watch.wait().expect("watch").code(), Some(130));
    let check = check.wait_with_output().expect("check");
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "in use by another nbmemo process (pid {})",
            watch.id()
        )),
        "{stderr}"
    );
}

/// `NBMEMO_MEMORY_LIMIT`: a cell that exhausts the worker's memory fails with `MemoryError`,
/// is not cached, and the others run.
#[test]
fn a_cell_over_the_memory_limit_fails_and_is_not_cached() {
    let project = Project::new();
    let notebook = project.write_notebook(
        "nb.ipynb",
        &[
            "x = 1",
            "big = bytearray(4 * 1024 ** 3)",
            "print('independent', x)",
        ],
    );
    let nb = notebook.to_str().expect("UTF-8");
    let run = |args: &[&str]| {
        let output = nbmemo_command(&project, args)
            .env("NBMEMO_MEMORY_LIMIT", "1GiB")
            .output()
            .expect("run");
        (
            output.status.code(),
            serde_json::from_slice::<Value>(&output.stdout).expect("JSON"),
        )
    };
    let (code, report) = run(&["run", nb, "--json"]);
    assert_eq!(code, Some(1));
    assert_eq!(statuses(&report), ["ran", "failed", "ran"]);
    assert_eq!(
        report["cells"][1]["error"]["ename"], "MemoryError",
        "{report:#}"
    );
    assert!(
        report["cells"][1]["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("NBMEMO_MEMORY_LIMIT")),
        "{report:#}"
    );
    assert_eq!(stdouts(&report)[2], "independent 1\n");
    // Not cached: the next run runs it again (and the others are replayed).
    let (_, again) = run(&["run", nb, "--json"]);
    assert_eq!(statuses(&again), ["cached", "failed", "cached"]);

    // `--memory-limit` is the same setting as the variable, and the flag wins over it.
    let flagged = nbmemo_command(&project, &["run", nb, "--json", "--memory-limit", "1GiB"])
        .output()
        .expect("run");
    let report: Value = serde_json::from_slice(&flagged.stdout).expect("JSON");
    assert_eq!(flagged.status.code(), Some(1), "{report:#}");
    assert_eq!(statuses(&report), ["cached", "failed", "cached"]);
    assert_eq!(
        report["cells"][1]["error"]["ename"], "MemoryError",
        "{report:#}"
    );
    let lifted = project.write_notebook(
        "lifted.ipynb",
        &["big = bytearray(2 * 1024 ** 3)\nsize = len(big)\ndel big\nprint(size)"],
    );
    let lifted = lifted.to_str().expect("UTF-8");
    for (limit, status) in [("1GiB", "failed"), ("0", "ran")] {
        let output = nbmemo_command(
            &project,
            &["run", lifted, "--json", "--memory-limit", limit],
        )
        .env("NBMEMO_MEMORY_LIMIT", "1GiB")
        .output()
        .expect("run");
        let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
        assert_eq!(
            statuses(&report),
            [status],
            "--memory-limit {limit}: {report:#}"
        );
    }
    // A size that is not one is a usage error naming the setting, before anything runs.
    for bad in [
        nbmemo_command(&project, &["run", nb, "--memory-limit", "lots"]),
        nbmemo_command(&project, &["check", nb]),
    ]
    .iter_mut()
    .map(|command| {
        command
            .env("NBMEMO_MEMORY_LIMIT", "2 GiBs")
            .output()
            .expect("run")
    }) {
        let stderr = String::from_utf8_lossy(&bad.stderr);
        assert_eq!(bad.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("invalid --memory-limit"), "{stderr}");
    }
}
