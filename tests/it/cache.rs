//! `nbmemo cache stats|gc|clear` against real runs (issue #11): gc keeps what the last runs
//! need and removes what they don't, honours the size bound, loses nothing to a run it races;
//! clear empties the cache; runs collect by themselves above the bound.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Project, Run};

fn statuses(report: &Value) -> Vec<String> {
    report["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .map(|cell| cell["status"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn keys(report: &Value) -> Vec<String> {
    report["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .map(|cell| cell["key"].as_str().unwrap_or("").to_string())
        .collect()
}

fn cache(project: &Project, args: &[&str]) -> Run {
    let mut full = vec!["cache"];
    full.extend_from_slice(args);
    project.ctx.nbmemo(&full)
}

fn cache_json(project: &Project, args: &[&str]) -> Value {
    let mut full = args.to_vec();
    full.push("--json");
    let run = cache(project, &full);
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, run.stdout);
    run.json()
}

fn stats(project: &Project) -> Value {
    cache_json(project, &["stats"])
}

fn records(project: &Project) -> u64 {
    stats(project)["records"].as_u64().expect("records")
}

/// A notebook whose cell 1 binds a value of `kib` KiB of incompressible bytes, varied by `seed`,
/// and whose cell 2 reads a file.
fn notebook(seed: u32, kib: u32) -> Vec<String> {
    vec![
        "import random".to_owned(),
        format!("blob = random.Random({seed}).randbytes({kib} * 1024)\nprint(len(blob))"),
        "with open('data.csv') as f:\n    rows = f.read().splitlines()\nprint(len(rows), len(blob))"
            .to_owned(),
    ]
}

fn write(project: &Project, name: &str, cells: &[String]) {
    let cells: Vec<&str> = cells.iter().map(String::as_str).collect();
    project.write_notebook(name, &cells);
}

#[test]
fn gc_keeps_what_the_last_runs_need_and_removes_what_they_do_not() {
    let project = Project::new();
    project.ctx.write("data.csv", "a\nb\n");
    write(&project, "nb.ipynb", &notebook(0, 8));
    let first = project.run_json(&["nb.ipynb"]);
    assert_eq!(statuses(&first), vec!["ran"; 3], "{first:#}");
    // Edit the value cell several times: each edit adds records the last run no longer needs.
    let mut last = first.clone();
    for seed in 1..5 {
        write(&project, "nb.ipynb", &notebook(seed, 8));
        last = project.run_json(&["nb.ipynb"]);
        assert_eq!(statuses(&last), vec!["cached", "ran", "ran"], "{last:#}");
    }
    let before = stats(&project);
    assert_eq!(before["records"], 11, "{before:#}");
    assert_eq!(before["hit_rate"]["runs"], 5);

    let gc = cache_json(&project, &["gc", "--keep-runs", "1", "--max-age", "0"]);
    assert_eq!(gc["removed"]["records"], 8, "{gc:#}");
    let after = stats(&project);
    assert_eq!(after["records"], 3, "{after:#}");
    assert!(
        after["artifacts"]["total"].as_u64() < before["artifacts"]["total"].as_u64(),
        "{before:#}\n{after:#}"
    );
    assert!(
        after["bytes_on_disk"].as_u64() < before["bytes_on_disk"].as_u64(),
        "{before:#}\n{after:#}"
    );

    // What the last run needs stays: the next run is fully cached (the file-reading cell too:
    // its manifest stayed).
    let again = project.run_json(&["nb.ipynb"]);
    assert_eq!(statuses(&again), vec!["cached"; 3], "{again:#}");
    assert_eq!(keys(&again), keys(&last));
    // What it did not need is gone: going back to the first version runs the edited cells.
    write(&project, "nb.ipynb", &notebook(0, 8));
    let back = project.run_json(&["nb.ipynb"]);
    assert_eq!(statuses(&back), vec!["cached", "ran", "ran"], "{back:#}");
    assert_eq!(keys(&back), keys(&first));
}

#[test]
fn gc_keeps_the_last_n_runs_of_each_notebook() {
    let project = Project::new();
    project.ctx.write("data.csv", "a\n");
    for seed in 0..4 {
        write(&project, "nb.ipynb", &notebook(seed, 1));
        project.run_json(&["nb.ipynb"]);
    }
    // An unchanged re-run is the same run: it does not push the older ones out.
    project.run_json(&["nb.ipynb"]);
    cache_json(&project, &["gc", "--keep-runs", "2", "--max-age", "0"]);
    // The last two versions replay; the one before does not.
    for (seed, expected) in [
        (3, vec!["cached"; 3]),
        (2, vec!["cached"; 3]),
        (1, vec!["cached", "ran", "ran"]),
    ] {
        write(&project, "nb.ipynb", &notebook(seed, 1));
        let report = project.run_json(&["nb.ipynb"]);
        assert_eq!(statuses(&report), expected, "seed {seed}: {report:#}");
    }
}

#[test]
fn gc_honours_max_size() {
    let project = Project::new();
    project.ctx.write("data.csv", "a\n");
    for seed in 0..8 {
        write(&project, "nb.ipynb", &notebook(seed, 400));
        project.run_json(&["nb.ipynb"]);
    }
    let before = stats(&project);
    let on_disk = before["bytes_on_disk"].as_u64().expect("bytes");
    assert!(on_disk > 3_200_000, "{before:#}");
    // The last run needs about 400 KiB: a bound of 1.5 MB is above it, and well below the cache.
    let gc = cache_json(&project, &["gc", "--max-size", "1.5MB"]);
    assert_eq!(gc["over_bound"], false, "{gc:#}");
    let after = stats(&project);
    let on_disk = after["bytes_on_disk"].as_u64().expect("bytes");
    assert!(on_disk <= 1_500_000, "{gc:#}\n{after:#}");
    assert!(
        after["records"].as_u64() < before["records"].as_u64(),
        "{after:#}"
    );
    let again = project.run_json(&["nb.ipynb"]);
    assert_eq!(statuses(&again), vec!["cached"; 3], "{again:#}");

    // A bound below what the last run needs is reported, and what it needs stays.
    let run = cache(&project, &["gc", "--max-size", "10KB"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("need more than the size bound"),
        "{}",
        run.stderr
    );
    let again = project.run_json(&["nb.ipynb"]);
    assert_eq!(statuses(&again), vec!["cached"; 3], "{again:#}");
}

#[test]
fn runs_collect_by_themselves_above_the_bound_from_pyproject() {
    let project = Project::new();
    project.ctx.write("data.csv", "a\n");
    project
        .ctx
        .write("pyproject.toml", "[tool.nbmemo]\nmax-size = \"2.5 MiB\"\n");
    for seed in 0..8 {
        write(&project, "nb.ipynb", &notebook(seed, 400));
        let run = project.run(&["nb.ipynb"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let on_disk = stats(&project)["bytes_on_disk"].as_u64().expect("bytes");
        assert!(
            on_disk <= 5 << 19,
            "run {seed}: {on_disk} bytes\n{}",
            run.stderr
        );
        if seed == 7 {
            assert!(run.stderr.contains("cache:"), "{}", run.stderr);
        }
    }
    let again = project.run_json(&["nb.ipynb"]);
    assert_eq!(statuses(&again), vec!["cached"; 3], "{again:#}");
}

#[test]
fn a_gc_racing_a_run_waits_for_it_and_loses_nothing_it_needs() {
    let project = Project::new();
    project.ctx.write("data.csv", "a\n");
    let mut cells = notebook(0, 8);
    cells.push("import time\ntime.sleep(2.5)\nprint('slow')".to_owned());
    write(&project, "nb.ipynb", &cells);
    // Older records for gc to collect.
    write(&project, "old.ipynb", &notebook(1, 8));
    project.run_json(&["old.ipynb"]);
    let python = project.python.display().to_string();
    let run = Command::new(env!("CARGO_BIN_EXE_nbmemo"))
        .args(["run", "nb.ipynb", "--json", "--python", &python])
        .current_dir(project.ctx.dir.path())
        .env_remove("NBMEMO_CACHE_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the run");
    // The run holds the store from its start: its pid file names it.
    let pid_file = project.ctx.path(".nbmemo/cache/v3/cache.pid");
    let start = Instant::now();
    while std::fs::read_to_string(&pid_file).map_or(true, |pid| pid.trim().is_empty()) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the run never held the store"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let holder = format!("pid {}", run.id());

    // Refused at once with --wait 0, naming the holder.
    let refused = cache(&project, &["gc", "--wait", "0"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("in use by another nbmemo process")
            && refused.stderr.contains(&holder),
        "{}",
        refused.stderr
    );
    // Otherwise it waits for the run, then collects.
    let waited = cache(&project, &["gc", "--keep-runs", "1", "--max-age", "0"]);
    assert_eq!(waited.code, 0, "{}", waited.stderr);
    assert!(
        waited.stderr.contains("waiting for it") && waited.stderr.contains(&holder),
        "{}",
        waited.stderr
    );
    let output = run.wait_with_output().expect("the run ends");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("run JSON");
    assert_eq!(
        statuses(&report),
        vec!["cached", "ran", "ran", "ran"],
        "{report:#}"
    );

    let again = project.run_json(&["nb.ipynb"]);
    assert_eq!(statuses(&again), vec!["cached"; 4], "{again:#}");
    let old = project.run_json(&["old.ipynb"]);
    assert_eq!(
        statuses(&old),
        vec!["cached"; 3],
        "its last run is kept too: {old:#}"
    );
}

#[test]
fn clear_empties_the_cache_and_the_next_run_recomputes() {
    let project = Project::new();
    project.ctx.write("data.csv", "a\n");
    write(&project, "nb.ipynb", &notebook(0, 300));
    project.run_json(&["nb.ipynb"]);
    assert_eq!(records(&project), 3);
    // A store an older nbmemo left (another format version) is listed, and cleared too.
    project
        .ctx
        .write(".nbmemo/cache/v2/cache.redb", vec![0u8; 4096]);
    let text = cache(&project, &["stats"]);
    assert!(
        text.stdout.contains("other formats v2 (4.0 KiB)"),
        "{}",
        text.stdout
    );
    let cleared = cache_json(&project, &["clear"]);
    assert!(!project.ctx.path(".nbmemo/cache/v2").exists());
    assert_eq!(cleared["removed"]["records"], 3, "{cleared:#}");
    let after = stats(&project);
    assert_eq!(after["records"], 0, "{after:#}");
    assert_eq!(after["artifacts"]["total"], 0, "{after:#}");
    assert_eq!(after["disk"]["blob_files"], 0, "{after:#}");
    assert!(after["notebooks"].as_array().expect("notebooks").is_empty());
    let report = project.run_json(&["nb.ipynb"]);
    assert_eq!(statuses(&report), vec!["ran"; 3], "{report:#}");
}

#[test]
fn clear_one_notebook_keeps_what_the_others_use() {
    let project = Project::new();
    let shared = "import random\nshared = random.Random(7).randbytes(50_000)";
    project.write_notebook("a.ipynb", &[shared, "print('a', len(shared))"]);
    project.write_notebook("b.ipynb", &[shared, "print('b', len(shared))"]);
    project.run_json(&["a.ipynb"]);
    let b = project.run_json(&["b.ipynb"]);
    assert_eq!(statuses(&b), vec!["cached", "ran"], "{b:#}");
    let stats = stats(&project);
    // The value (and the module and random-state probe cell 0 binds) is stored once.
    assert!(
        stats["shared"]["between_notebooks"].as_u64() >= Some(1),
        "{stats:#}"
    );
    let users: Vec<&str> = stats["largest"][0]["uses"]
        .as_array()
        .expect("uses")
        .iter()
        .map(|user| user["notebook"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(users, vec!["a.ipynb", "b.ipynb"], "{stats:#}");

    let cleared = cache_json(&project, &["clear", "--notebook", "a.ipynb"]);
    assert_eq!(cleared["removed"]["records"], 1, "{cleared:#}");
    let b = project.run_json(&["b.ipynb"]);
    assert_eq!(statuses(&b), vec!["cached", "cached"], "{b:#}");
    let a = project.run_json(&["a.ipynb"]);
    assert_eq!(statuses(&a), vec!["cached", "ran"], "{a:#}");
}

#[test]
fn stats_report_hit_rate_sharing_and_the_largest_artifacts() {
    let project = Project::new();
    project.write_notebook(
        "nb.ipynb",
        &[
            "import random\nframe = random.Random(1).randbytes(200_000)",
            "small = 42\nprint(small)",
        ],
    );
    project.run_json(&["nb.ipynb"]);
    project.run_json(&["nb.ipynb"]);
    let stats = stats(&project);
    assert_eq!(stats["format_version"], 3);
    assert_eq!(stats["records"], 2, "{stats:#}");
    assert_eq!(stats["hit_rate"]["cells"], 4, "{stats:#}");
    assert_eq!(stats["hit_rate"]["cached"], 2, "{stats:#}");
    assert_eq!(stats["hit_rate"]["rate"], 0.5, "{stats:#}");
    let largest = &stats["largest"][0];
    assert!(largest["bytes"].as_u64() > Some(200_000), "{stats:#}");
    assert_eq!(largest["uses"][0]["notebook"], "nb.ipynb", "{stats:#}");
    assert_eq!(largest["uses"][0]["cell"], 0, "{stats:#}");
    assert_eq!(largest["uses"][0]["name"], "frame", "{stats:#}");
    let payload = stats["payload_bytes"].as_u64().expect("payload");
    assert!(payload > 200_000, "{stats:#}");

    let text = cache(&project, &["stats"]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    for expected in [
        "records",
        "hit rate    50%",
        "nb.ipynb cell 0: `frame`",
        "on disk",
    ] {
        assert!(
            text.stdout.contains(expected),
            "{expected}: {}",
            text.stdout
        );
    }
    // No cache yet: a message, not an error, and nothing created.
    let empty = Project::new();
    let run = cache(&empty, &["stats"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("no cache at"), "{}", run.stdout);
    assert!(!empty.ctx.path(".nbmemo").exists());
}
