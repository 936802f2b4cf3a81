//! Files and the environment as build inputs (issue #6): files read are part of a cell's key,
//! files written are restored from the store, installed distributions are in the fingerprint,
//! `nbmemo: skip`, and the reasons `plan` and `run` give.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::common::{Project, make_executable, reasons, statuses, test_python};

fn cells(report: &Value) -> &Vec<Value> {
    report["cells"].as_array().expect("cells")
}

fn stdout(report: &Value, idx: usize) -> &str {
    cells(report)[idx]["stdout"].as_str().unwrap_or("")
}

const DATA_NOTEBOOK: &[&str] = &[
    "import pandas as pd",
    "df = pd.read_csv('data.csv')\nprint(df['x'].sum())",
    "total = int(df['x'].sum())",
    "print('total', total)",
    "with open('other.txt') as f:\n    other = f.read().strip()\nprint(other)",
    "print('independent')",
];

#[test]
fn editing_a_data_file_reruns_exactly_its_readers_and_their_dependants() {
    let project = Project::new();
    project.ctx.write("data.csv", "x\n1\n2\n");
    project.ctx.write("other.txt", "unchanged\n");
    let notebook = project.write_notebook("nb.ipynb", DATA_NOTEBOOK);
    let nb = notebook.to_str().expect("UTF-8 path");

    let cold = project.run_json(&[nb]);
    assert_eq!(statuses(&cold), ["ran"; 6]);
    assert_eq!(stdout(&cold, 1), "3\n");
    assert_eq!(
        cells(&cold)[1]["files_read"],
        serde_json::json!(["data.csv"])
    );

    let again = project.run_json(&[nb]);
    assert_eq!(statuses(&again), ["cached"; 6]);

    // A new row: the reader of data.csv and what depends on its values run again.
    project.ctx.write("data.csv", "x\n1\n2\n4\n");
    let edited = project.run_json(&[nb]);
    assert_eq!(
        statuses(&edited),
        ["cached", "ran", "ran", "ran", "cached", "cached"]
    );
    assert_eq!(reasons(&edited)[1], "file `data.csv` changed");
    assert_eq!(reasons(&edited)[2], "input `df` changed");
    assert_eq!(stdout(&edited, 3), "total 7\n");

    // The same bytes again (a save without change): nothing runs.
    project.ctx.write("data.csv", "x\n1\n2\n4\n");
    assert_eq!(statuses(&project.run_json(&[nb])), ["cached"; 6]);

    // An edit that keeps the sum: the reader runs, its dependants are cut off early.
    project.ctx.write("data.csv", "x\n4\n2\n1\n");
    let same_sum = project.run_json(&[nb]);
    assert_eq!(
        statuses(&same_sum),
        ["cached", "ran", "ran", "cached", "cached", "cached"]
    );

    // `plan` says the same before anything runs.
    project.ctx.write("other.txt", "changed\n");
    let plan = project.command("plan", &[nb, "--format", "json"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let plan = plan.json();
    let plan_cells = plan["cells"].as_array().expect("cells");
    assert_eq!(plan_cells[4]["cache"], "would run");
    assert_eq!(plan_cells[4]["reason"], "file `other.txt` changed");
    assert_eq!(plan_cells[1]["cache"], "cached");
}

#[test]
fn a_written_file_deleted_after_the_run_is_restored_by_the_cached_run() {
    let project = Project::new();
    let notebook = project.write_notebook(
        "nb.ipynb",
        &[
            "import os\nos.makedirs('out', exist_ok=True)",
            "with open('out/report.txt', 'w') as f:\n    f.write('hello\\n')\nprint('wrote')",
            "print(open('out/report.txt').read())",
        ],
    );
    let nb = notebook.to_str().expect("UTF-8 path");
    let cold = project.run_json(&[nb]);
    assert_eq!(statuses(&cold), ["ran"; 3]);
    assert_eq!(stdout(&cold, 2), "hello\n\n");

    std::fs::remove_dir_all(project.ctx.path("out")).expect("delete the output folder");
    let starts = project.python_starts();
    let cached = project.run_json(&[nb]);
    assert_eq!(statuses(&cached), ["cached"; 3]);
    assert_eq!(
        project.python_starts(),
        starts,
        "a cached run starts no Python"
    );
    assert_eq!(
        std::fs::read_to_string(project.ctx.path("out/report.txt")).expect("restored"),
        "hello\n"
    );

    // A changed output file is put back too (it is an output, not an input of this cell).
    project.ctx.write("out/report.txt", "tampered\n");
    let cached = project.run_json(&[nb]);
    assert_eq!(statuses(&cached), ["cached"; 3]);
    assert_eq!(
        std::fs::read_to_string(project.ctx.path("out/report.txt")).expect("restored"),
        "hello\n"
    );
}

#[test]
fn a_stored_output_path_leaving_the_project_is_refused() {
    let project = Project::new();
    let notebook = project.write_notebook(
        "nb.ipynb",
        &["open('out.txt', 'w').write('data')\nprint('wrote')"],
    );
    let nb = notebook.to_str().expect("UTF-8 path");
    assert_eq!(statuses(&project.run_json(&[nb])), ["ran"]);

    // Rewrite the cell's record as a hostile cache would: its output lands outside the root.
    let cache = project.ctx.path(".nbmemo");
    {
        let store = nbmemo::store::Store::open(&cache, Duration::from_secs(5)).expect("open");
        let id = nbmemo::project::notebook_id(&notebook);
        let state = store.get_notebook_state(&id).expect("read").expect("state");
        let key = state.cell_keys[0].expect("key");
        let mut record = store.get_record(&key).expect("read").expect("record");
        assert_eq!(record.files_written.len(), 1);
        let escape = project
            .ctx
            .dir
            .path()
            .parent()
            .expect("parent")
            .join("escaped.txt");
        for path in ["../escaped.txt", escape.to_str().expect("UTF-8 path")] {
            record.files_written.push(nbmemo::store::FileOutput {
                path: path.to_string(),
                artifact: record.files_written[0].artifact,
                dir: false,
            });
        }
        store.put_record(&key, &record).expect("write");
        store.flush().expect("flush");
    }
    std::fs::remove_file(project.ctx.path("out.txt")).expect("delete the output");
    let run = project.run(&[nb, "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(statuses(&run.json()), ["cached"]);
    assert!(
        run.stderr
            .contains("refused to restore `../escaped.txt`: it climbs out with `..`"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("it is absolute"), "{}", run.stderr);
    let outside = project
        .ctx
        .dir
        .path()
        .parent()
        .expect("parent")
        .join("escaped.txt");
    assert!(!outside.exists(), "nothing written outside the project");
    assert_eq!(
        std::fs::read_to_string(project.ctx.path("out.txt")).expect("the safe output"),
        "data"
    );
}

#[test]
fn cells_the_graph_did_not_order_still_see_files_in_notebook_order() {
    let _machine = crate::common::machine();
    let project = Project::new();
    // The static rules cannot see these file accesses (a module's own functions): the cold run
    // may start the reader first; it must still print what sequential execution prints.
    project.ctx.write(
        "store_helpers.py",
        "import time\n\ndef put(text):\n    time.sleep(0.5)\n    with open('shared.txt', 'w') as f:\n        f.write(text)\n\ndef get():\n    try:\n        with open('shared.txt') as f:\n            return f.read()\n    except FileNotFoundError:\n        return 'missing'\n",
    );
    let notebook = project.write_notebook(
        "nb.ipynb",
        &[
            "import sys\nsys.path.insert(0, '.')\nimport store_helpers",
            "store_helpers.put('first')",
            "print(store_helpers.get())",
        ],
    );
    let nb = notebook.to_str().expect("UTF-8 path");
    let cold = project.run_json(&[nb, "-j", "2"]);
    assert_eq!(stdout(&cold, 2), "first\n", "{cold:#}");
    // What the run learned orders the cells from now on; nothing is stale in the cache.
    let plan = project.command("plan", &[nb, "--format", "json"]).json();
    assert_eq!(plan["cells"][2]["depends_on"], serde_json::json!([0, 1]));
    let again = project.run_json(&[nb, "-j", "2"]);
    assert_eq!(statuses(&again), ["cached"; 3]);
    assert_eq!(stdout(&again, 2), "first\n");
}

#[test]
fn tags_always_and_skip() {
    let project = Project::new();
    let notebook = project.ctx.write(
        "nb.py",
        "# %%\nx = 1\n\n# %% tags=[\"nbmemo: skip\"]\ny = x + 1\nprint('never')\n\n# %%\nprint(y)\n\n# %%\n# nbmemo: always\nprint('every time', x)\n\n# %%\n# nbmemo: skip\nprint('never either')\n",
    );
    let nb = notebook.to_str().expect("UTF-8 path");
    for _ in 0..2 {
        let report = project.run_json(&[nb]);
        let statuses = statuses(&report);
        assert_eq!(statuses[1], "skipped");
        assert_eq!(reasons(&report)[1], "tagged `nbmemo: skip`");
        assert_eq!(statuses[2], "skipped", "it reads `y` from a skipped cell");
        assert_eq!(statuses[3], "ran");
        assert_eq!(reasons(&report)[3], "tagged `nbmemo: always`");
        assert_eq!(statuses[4], "skipped");
        assert!(!report.to_string().contains("never"));
    }
    let plan = project.command("plan", &[nb, "--format", "json"]).json();
    assert_eq!(plan["cells"][1]["cache"], "skipped");
    assert_eq!(plan["cells"][1]["reason"], "tagged `nbmemo: skip`");
    assert_eq!(plan["cells"][2]["cache"], "skipped");
    assert_eq!(plan["cells"][3]["reason"], "tagged `nbmemo: always`");
}

/// A virtualenv of its own (sharing the test Python's packages through a `.pth` file), where
/// a test can install and upgrade a distribution by writing its metadata as pip does.
fn private_venv(project: &Project) -> (std::path::PathBuf, std::path::PathBuf) {
    let venv = project.ctx.path("venv");
    let status = std::process::Command::new(test_python())
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .status()
        .expect("create a virtualenv");
    assert!(status.success());
    let python = venv.join("bin/python");
    let site = String::from_utf8(
        std::process::Command::new(&python)
            .args([
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            ])
            .output()
            .expect("site-packages")
            .stdout,
    )
    .expect("UTF-8 output");
    let site = std::path::PathBuf::from(site.trim());
    let shared = String::from_utf8(
        std::process::Command::new(test_python())
            .args([
                "-c",
                "import cloudpickle, os; print(os.path.dirname(os.path.dirname(cloudpickle.__file__)))",
            ])
            .output()
            .expect("cloudpickle's folder")
            .stdout,
    )
    .expect("UTF-8 output");
    std::fs::write(site.join("shared.pth"), shared.trim()).expect("write the .pth file");
    (python, site)
}

fn install(site: &Path, name: &str, version: &str) {
    for entry in std::fs::read_dir(site)
        .expect("list site-packages")
        .flatten()
    {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if file_name.starts_with(&format!("{name}-")) && file_name.ends_with(".dist-info") {
            std::fs::remove_dir_all(entry.path()).expect("uninstall");
        }
    }
    let dist = site.join(format!("{name}-{version}.dist-info"));
    std::fs::create_dir(&dist).expect("dist-info");
    std::fs::write(
        dist.join("METADATA"),
        format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"),
    )
    .expect("METADATA");
    std::fs::write(
        site.join(format!("{name}.py")),
        format!("VERSION = '{version}'\n"),
    )
    .expect("module");
}

#[test]
fn installing_or_upgrading_a_distribution_changes_the_environment() {
    let project = Project::new();
    let (python, site) = private_venv(&project);
    // Started through a wrapper, as the project's own interpreter is.
    let wrapper = project.ctx.write(
        "bin/venv-python",
        format!("#!/bin/sh\nexec '{}' \"$@\"\n", python.display()),
    );
    make_executable(&wrapper);
    let notebook = project.write_notebook("nb.ipynb", &["x = 1\nprint(x)", "print(x + 1)"]);
    let run = |args: &[&str]| -> Value {
        let mut full = vec![
            "run",
            "--python",
            wrapper.to_str().expect("UTF-8 path"),
            "--json",
        ];
        full.extend_from_slice(args);
        let run = project.ctx.nbmemo(&full);
        assert_eq!(run.code, 0, "{}", run.stderr);
        run.json()
    };
    let nb = notebook.to_str().expect("UTF-8 path");
    install(&site, "nbmemo_fixture_pkg", "1.0");
    assert_eq!(statuses(&run(&[nb])), ["ran", "ran"]);
    assert_eq!(statuses(&run(&[nb])), ["cached", "cached"]);

    install(&site, "nbmemo_fixture_pkg", "2.0");
    let upgraded = run(&[nb]);
    assert_eq!(statuses(&upgraded), ["ran", "ran"]);
    assert_eq!(
        reasons(&upgraded)[0],
        "environment changed: nbmemo-fixture-pkg 1.0 → 2.0"
    );
    assert_eq!(statuses(&run(&[nb])), ["cached", "cached"]);

    install(&site, "another_fixture", "0.1");
    let installed = run(&[nb]);
    assert_eq!(
        reasons(&installed)[0],
        "environment changed: another-fixture 0.1 installed"
    );
}

#[test]
fn reasons_name_what_changed() {
    let project = Project::new();
    let notebook = project
        .ctx
        .write("nb.py", "# %%\nx = 1\n\n# %%\nprint(x)\n");
    let nb = notebook.to_str().expect("UTF-8 path");
    assert_eq!(reasons(&project.run_json(&[nb])), ["no previous run"; 2]);
    project
        .ctx
        .write("nb.py", "# %%\nx = 2\n\n# %%\nprint(x)\n");
    assert_eq!(
        reasons(&project.run_json(&[nb])),
        ["code changed", "input `x` changed"]
    );
    // A comment is not code: nothing runs.
    project
        .ctx
        .write("nb.py", "# %%\nx = 2  # two\n\n# %%\nprint(x)\n");
    assert_eq!(statuses(&project.run_json(&[nb])), ["cached", "cached"]);
}
