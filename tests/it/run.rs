//! `nbmemo run` against real Python: results equal sequential execution, caching, edits,
//! mutation, unpicklable values, failures, parallelism (issue #3).

use serde_json::Value;

use crate::common::{
    Project, TestContext, copy_dir, make_executable, repo_root, sequential, statuses, stdouts,
};

const BASIC: &[&str] = &[
    "import math\nbase = 10",
    "squares = [i * i for i in range(base)]\nprint(sum(squares))",
    "def describe(xs):\n    return f'{len(xs)} values, max {max(xs)}'\nprint(describe(squares))",
    "root = math.sqrt(squares[-1])\nprint(root)",
    "print('done', base)",
];

#[test]
fn cold_run_equals_sequential_then_everything_is_cached_without_python() {
    let project = Project::new();
    let notebook = project.write_notebook("nb.ipynb", BASIC);
    let first = project.run_json(&["nb.ipynb"]);
    assert_eq!(statuses(&first), vec!["ran"; 5], "{first:#}");
    assert_eq!(stdouts(&first), sequential(&notebook));
    assert_eq!(first["summary"]["ran"], 5);

    let starts = project.python_starts();
    assert!(starts >= 1);
    let second = project.run_json(&["nb.ipynb"]);
    assert_eq!(statuses(&second), vec!["cached"; 5], "{second:#}");
    assert_eq!(
        stdouts(&second),
        stdouts(&first),
        "cached cells replay their output"
    );
    assert_eq!(
        project.python_starts(),
        starts,
        "a fully cached run starts no Python"
    );
    for cell in second["cells"].as_array().expect("cells") {
        assert!(cell["started_at"].is_null(), "{cell}");
    }
}

#[test]
fn edits_rerun_exactly_what_they_invalidate() {
    let project = Project::new();
    project.write_notebook("nb.ipynb", BASIC);
    project.run_json(&["nb.ipynb"]);

    // Edit the last cell: only it runs.
    let mut cells = BASIC.to_vec();
    cells[4] = "print('finished', base)";
    project.write_notebook("nb.ipynb", &cells);
    let report = project.run_json(&["nb.ipynb"]);
    assert_eq!(
        statuses(&report),
        vec!["cached", "cached", "cached", "cached", "ran"],
        "{report:#}"
    );
    assert_eq!(report["cells"][4]["stdout"], "finished 10\n");

    // A comment-only edit runs nothing.
    cells[1] =
        "# the squares\nsquares = [i * i for i in range(base)]  # list\n\nprint(sum(squares))";
    project.write_notebook("nb.ipynb", &cells);
    let report = project.run_json(&["nb.ipynb"]);
    assert_eq!(statuses(&report), vec!["cached"; 5], "{report:#}");

    // A middle edit runs the cell and its dependants, not the independent ones.
    cells[1] = "squares = [i * i for i in range(base + 1)]\nprint(sum(squares))";
    project.write_notebook("nb.ipynb", &cells);
    let report = project.run_json(&["nb.ipynb"]);
    assert_eq!(
        statuses(&report),
        vec!["cached", "ran", "ran", "ran", "cached"],
        "{report:#}"
    );
    assert!(
        report["cells"][2]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("`squares`"),
        "{report:#}"
    );
}

#[test]
fn early_cutoff_an_edit_that_keeps_the_value_reruns_no_dependant() {
    let project = Project::new();
    let cells = ["x = 1 + 1", "y = x * 10\nprint(y)", "print(y + 1)"];
    project.write_notebook("nb.ipynb", &cells);
    project.run_json(&["nb.ipynb"]);
    project.write_notebook("nb.ipynb", &["x = 2", cells[1], cells[2]]);
    let report = project.run_json(&["nb.ipynb"]);
    assert_eq!(
        statuses(&report),
        vec!["ran", "cached", "cached"],
        "{report:#}"
    );
}

#[test]
fn mutation_and_aliases_give_sequential_results() {
    let project = Project::new();
    let cells = [
        "items = [1]",
        "items.append(2)",
        "def add(xs, v):\n    xs.append(v)",
        "add(items, 3)",
        "alias = items",
        "alias.append(4)",
        "print(items, alias is items)",
        "d = {'a': 1}\nd['b'] = 2",
        "d['c'] = 3",
        "print(sorted(d.items()))",
    ];
    let notebook = project.write_notebook("nb.ipynb", &cells);
    let report = project.run_json(&["nb.ipynb"]);
    assert_eq!(report["summary"]["failed"], 0, "{report:#}");
    assert_eq!(stdouts(&report), sequential(&notebook), "{report:#}");
    assert_eq!(report["cells"][6]["stdout"], "[1, 2, 3, 4] True\n");
    let again = project.run_json(&["nb.ipynb"]);
    assert_eq!(stdouts(&again), sequential(&notebook));
}

#[test]
fn functions_see_globals_as_of_the_calling_cell() {
    let project = Project::new();
    let cells = [
        "scale = 2",
        "def f(v):\n    return v * scale",
        "print(f(3))",
        "scale = 10",
        "print(f(3))",
        "class P:\n    def label(self):\n        return f'{scale} units'",
        "p = P()",
        "scale = 7",
        "print(p.label())",
    ];
    let notebook = project.write_notebook("nb.ipynb", &cells);
    let report = project.run_json(&["nb.ipynb"]);
    assert_eq!(stdouts(&report), sequential(&notebook), "{report:#}");
}

#[test]
fn unpicklable_values_give_sequential_results() {
    let project = Project::new();
    let cells = [
        "gen = (i * i for i in range(10))",
        "print(next(gen))",
        "print(next(gen))",
        "import threading\nlock = threading.Lock()",
        "with lock:\n    print('locked')",
    ];
    let notebook = project.write_notebook("nb.ipynb", &cells);
    let report = project.run_json(&["nb.ipynb"]);
    assert_eq!(report["summary"]["failed"], 0, "{report:#}");
    assert_eq!(stdouts(&report), sequential(&notebook), "{report:#}");
    let unpicklable = report["cells"][0]["unpicklable"]
        .as_array()
        .expect("unpicklable");
    assert_eq!(unpicklable[0]["name"], "gen", "{report:#}");
    assert_eq!(unpicklable[0]["type"], "generator", "{report:#}");
}

#[test]
fn a_failing_cell_skips_exactly_its_dependants() {
    let project = Project::new();
    let cells = [
        "prices = {'apple': 1.0}",
        "ratio = prices['banana']",
        "print(ratio)",
        "print('independent', len(prices))",
    ];
    project.write_notebook("nb.ipynb", &cells);
    let run = project.run(&["nb.ipynb", "--json"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = run.json();
    assert_eq!(
        statuses(&report),
        vec!["ran", "failed", "skipped", "ran"],
        "{report:#}"
    );
    let error = &report["cells"][1]["error"];
    assert_eq!(error["ename"], "KeyError");
    assert_eq!(error["line"], 1);
    let traceback = error["traceback"].as_array().expect("traceback");
    assert!(
        traceback
            .iter()
            .any(|line| line.as_str().unwrap_or("").contains("<cell 1>")),
        "{error:#}"
    );
    assert!(
        !traceback
            .iter()
            .any(|line| line.as_str().unwrap_or("").contains("runner")),
        "{error:#}"
    );
    assert_eq!(report["cells"][3]["stdout"], "independent 1\n");

    // Text mode reports the failure with its traceback on stderr.
    let text = project.run(&["nb.ipynb"]);
    assert_eq!(text.code, 1);
    assert!(
        text.stderr.contains("`nb.ipynb`, cell 1, line 1 failed"),
        "{}",
        text.stderr
    );
    assert!(
        text.stderr.contains("KeyError: 'banana'"),
        "{}",
        text.stderr
    );
}

#[test]
fn independent_cells_overlap_in_time() {
    let _machine = crate::common::machine();
    let project = Project::new();
    let cells = [
        "import time",
        // Long enough that starting three more workers on a busy machine still overlaps them.
        "time.sleep(1.5)\na = 1",
        "time.sleep(1.5)\nb = 2",
        "time.sleep(1.5)\nc = 3",
        "time.sleep(1.5)\nd = 4",
        "print(a + b + c + d)",
    ];
    project.write_notebook("nb.ipynb", &cells);
    let report = project.run_json(&["nb.ipynb", "-j", "4"]);
    let intervals: Vec<(f64, f64)> = (1..=4)
        .map(|idx| {
            let cell = &report["cells"][idx];
            (
                cell["started_at"].as_f64().expect("start"),
                cell["finished_at"].as_f64().expect("end"),
            )
        })
        .collect();
    let latest_start = intervals
        .iter()
        .map(|(start, _)| *start)
        .fold(f64::MIN, f64::max);
    let earliest_end = intervals
        .iter()
        .map(|(_, end)| *end)
        .fold(f64::MAX, f64::min);
    assert!(
        latest_start < earliest_end,
        "the four sleeping cells did not overlap: {intervals:?}"
    );
    assert_eq!(report["cells"][5]["stdout"], "10\n");
}

#[test]
fn a_crashing_cell_fails_and_is_not_cached() {
    let project = Project::new();
    let cells = ["x = 1", "import os\nos._exit(3)", "print(x)"];
    project.write_notebook("nb.ipynb", &cells);
    let run = project.run(&["nb.ipynb", "--json"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = run.json();
    assert_eq!(
        statuses(&report),
        vec!["ran", "failed", "ran"],
        "{report:#}"
    );
    assert!(
        report["cells"][1]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("exited with status 3"),
        "{report:#}"
    );
    let again = project.run_json(&["nb.ipynb"]);
    assert_eq!(
        statuses(&again),
        vec!["cached", "failed", "cached"],
        "{again:#}"
    );
    assert!(
        again["cells"][1]["started_at"].is_number(),
        "the crash was not cached: {again:#}"
    );
}

#[test]
fn a_cell_past_its_timeout_is_stopped() {
    let project = Project::new();
    project.write_notebook(
        "nb.ipynb",
        &["import time\ntime.sleep(30)", "print('after')"],
    );
    let run = project.run(&["nb.ipynb", "--json", "--timeout", "1"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = run.json();
    assert_eq!(statuses(&report), vec!["failed", "ran"], "{report:#}");
    assert!(
        report["cells"][0]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("timeout"),
        "{report:#}"
    );
}

#[test]
fn json_output_is_exactly_one_object() {
    let project = Project::new();
    project.write_notebook("nb.ipynb", &["print('hi')"]);
    let run = project.run(&["nb.ipynb", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let value: Value = serde_json::from_str(&run.stdout).expect("one JSON document");
    assert!(value.is_object());
    for key in ["notebook", "cells", "summary"] {
        assert!(value.get(key).is_some(), "{key}");
    }
    for key in [
        "index",
        "status",
        "stdout",
        "stderr",
        "started_at",
        "finished_at",
        "reason",
    ] {
        assert!(value["cells"][0].get(key).is_some(), "{key}");
    }
    for key in ["ran", "cached", "failed", "skipped", "wall_s"] {
        assert!(value["summary"].get(key).is_some(), "{key}");
    }
}

#[test]
fn percent_notebooks_run_in_their_folder() {
    let project = Project::new();
    project.ctx.write("data/input.txt", "42\n");
    project.ctx.write(
        "data/nb.py",
        "# %%\nvalue = int(open('input.txt').read())\n\n# %%\nprint(value * 2)\n",
    );
    let report = project.run_json(&["data/nb.py"]);
    assert_eq!(
        stdouts(&report),
        vec!["".to_string(), "84\n".to_string()],
        "{report:#}"
    );
}

#[test]
fn an_unpicklable_value_is_rebuilt_when_its_producer_was_cached() {
    let project = Project::new();
    let mut cells = vec![
        "gen = (i * i for i in range(10))",
        "print(next(gen))",
        "print(next(gen))",
    ];
    let notebook = project.write_notebook("nb.ipynb", &cells);
    project.run_json(&["nb.ipynb"]);
    cells[2] = "print('third', next(gen))";
    project.write_notebook("nb.ipynb", &cells);
    let report = project.run_json(&["nb.ipynb"]);
    assert_eq!(report["summary"]["failed"], 0, "{report:#}");
    assert_eq!(stdouts(&report), sequential(&notebook), "{report:#}");
    assert_eq!(report["cells"][2]["stdout"], "third 1\n");
}

/// Issue #3, runtime refinement: a refuted candidate stops ordering cells on the next run; if
/// it turns out mutated after all, its readers run again and the result is still sequential.
#[test]
fn refuted_candidates_drop_edges_and_a_surprise_mutation_reruns_readers() {
    let project = Project::new();
    let mut cells = vec![
        "items = [1, 2]",
        "def grow(xs, flag):\n    if flag:\n        xs.append(99)\n    return len(xs)",
        "flag = False",
        "n = grow(items, flag)",
        "print(items)",
    ];
    project.write_notebook("nb.ipynb", &cells);
    let plan_before = project
        .ctx
        .nbmemo(&["plan", "nb.ipynb", "--format", "json"])
        .json();
    assert_eq!(
        plan_before["cells"][4]["depends_on"],
        serde_json::json!([0, 3]),
        "{plan_before:#}"
    );
    let first = project.run_json(&["nb.ipynb"]);
    assert_eq!(first["cells"][4]["stdout"], "[1, 2]\n");

    // The run refuted `items` as a candidate of cell 3: the plan no longer orders cell 4 after it.
    let python = project.python.display().to_string();
    let plan_after = project
        .ctx
        .nbmemo(&["plan", "nb.ipynb", "--format", "json", "--python", &python])
        .json();
    assert_eq!(
        plan_after["cells"][4]["depends_on"],
        serde_json::json!([0]),
        "{plan_after:#}"
    );
    assert_eq!(plan_after["cells"][4]["cache"], "cached", "{plan_after:#}");

    // Now cell 3 does mutate `items`: cell 4, replayed on the old value, runs again.
    cells[2] = "flag = True";
    let notebook = project.write_notebook("nb.ipynb", &cells);
    let report = project.run_json(&["nb.ipynb"]);
    assert_eq!(stdouts(&report), sequential(&notebook), "{report:#}");
    assert_eq!(report["cells"][4]["stdout"], "[1, 2, 99]\n");
    assert_eq!(
        report["cells"][3]["mutated"],
        serde_json::json!(["items"]),
        "{report:#}"
    );
}

/// Copies `examples/` into a temp project, so runs don't write into the repository.
fn examples_project() -> Project {
    let project = Project::new();
    copy_dir(&repo_root().join("examples"), &project.ctx.path("examples"));
    project
}

/// Every example runs with the results of sequential execution, cold and then from the cache.
#[test]
fn examples_run_like_sequential_execution() {
    let project = examples_project();
    for example in [
        "examples/quickstart.ipynb",
        "examples/percent.py",
        "examples/branches.ipynb",
        "examples/redefinition.ipynb",
        "examples/mutation.ipynb",
        "examples/functions.ipynb",
        "examples/data-deps/analysis.ipynb",
    ] {
        let expected = sequential(&project.ctx.path(example));
        let cold = project.run_json(&[example]);
        assert_eq!(cold["summary"]["failed"], 0, "{example}: {cold:#}");
        assert_eq!(stdouts(&cold), expected, "{example} (cold)");
        let warm = project.run_json(&[example]);
        assert_eq!(warm["summary"]["ran"], 0, "{example}: {warm:#}");
        assert_eq!(stdouts(&warm), expected, "{example} (cached)");
    }
    let failing = project.run(&["examples/failing.ipynb", "--json"]);
    assert_eq!(failing.code, 1, "{}", failing.stderr);
    assert_eq!(
        statuses(&failing.json()),
        vec!["ran", "failed", "skipped", "ran"]
    );
}

/// `--inplace` writes outputs and execution counts, atomically, and nothing else changes.
#[test]
fn inplace_writes_outputs_and_execution_counts() {
    let project = Project::new();
    let path = project.write_notebook("nb.ipynb", &["x = 21", "print('half')\nx * 2", "x;"]);
    let original: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    let run = project.run(&["nb.ipynb", "--inplace"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(text.ends_with("}\n"), "nbformat ends files with a newline");
    let written: Value = serde_json::from_str(&text).expect("json");
    let cells = written["cells"].as_array().expect("cells");
    assert_eq!(cells[0]["execution_count"], 1);
    assert_eq!(cells[1]["execution_count"], 2);
    assert_eq!(cells[2]["execution_count"], 3);
    assert_eq!(cells[0]["outputs"], serde_json::json!([]));
    let outputs = cells[1]["outputs"].as_array().expect("outputs");
    assert_eq!(outputs[0]["output_type"], "stream");
    assert_eq!(outputs[0]["text"], serde_json::json!(["half\n"]));
    assert_eq!(outputs[1]["output_type"], "execute_result");
    assert_eq!(outputs[1]["execution_count"], 2);
    assert_eq!(
        outputs[1]["data"]["text/plain"],
        serde_json::json!(["42"]),
        "nbformat splits text/* into lines"
    );
    assert_eq!(
        cells[2]["outputs"],
        serde_json::json!([]),
        "a trailing `;` hides the value"
    );
    for (before, after) in original["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .zip(cells)
    {
        assert_eq!(before["id"], after["id"]);
        let joined = |source: &Value| match source {
            Value::Array(lines) => lines.iter().filter_map(Value::as_str).collect::<String>(),
            other => other.as_str().unwrap_or_default().to_string(),
        };
        assert_eq!(joined(&before["source"]), joined(&after["source"]));
        // The only metadata added is nbmemo's record of the key the outputs belong to.
        let mut metadata = after["metadata"].clone();
        if let Some(map) = metadata.as_object_mut() {
            assert!(
                map.remove("nbmemo").is_some(),
                "the key is recorded: {after}"
            );
        }
        assert_eq!(before["metadata"], metadata);
    }
    // A second, fully cached run writes the same bytes.
    let again = project.run(&["nb.ipynb", "--inplace"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(std::fs::read_to_string(&path).expect("read"), text);
    let leftovers: Vec<_> = std::fs::read_dir(project.ctx.dir.path())
        .expect("list")
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}

#[test]
fn plan_says_cached_or_would_run() {
    let project = Project::new();
    project.write_notebook("nb.ipynb", &["a = 1", "b = a + 1", "print(b)"]);
    project.run_json(&["nb.ipynb"]);
    project.write_notebook("nb.ipynb", &["a = 1", "b = a + 2", "print(b)"]);
    let python = project.python.display().to_string();
    let plan = project
        .ctx
        .nbmemo(&["plan", "nb.ipynb", "--format", "json", "--python", &python])
        .json();
    assert_eq!(plan["cells"][0]["cache"], "cached", "{plan:#}");
    assert_eq!(plan["cells"][1]["cache"], "would run", "{plan:#}");
    assert_eq!(plan["cells"][1]["reason"], "code changed", "{plan:#}");
    assert_eq!(plan["cells"][2]["cache"], "would run", "{plan:#}");
    assert_eq!(plan["cells"][2]["reason"], "cell 1 runs first", "{plan:#}");
    let starts = project.python_starts();
    project
        .ctx
        .nbmemo(&["plan", "nb.ipynb", "--python", &python]);
    assert_eq!(project.python_starts(), starts, "plan starts no Python");
}

/// Several notebooks in one run share the workers: their cells run side by side.
#[test]
fn several_notebooks_run_together() {
    let _machine = crate::common::machine();
    let project = Project::new();
    project.write_notebook("a.ipynb", &["import time\ntime.sleep(0.5)\nprint('a')"]);
    project.write_notebook("b.ipynb", &["import time\ntime.sleep(0.5)\nprint('b')"]);
    let run = project.run(&["a.ipynb", "b.ipynb", "--json", "-j", "2"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let reports = run.json();
    let reports = reports.as_array().expect("an array for several notebooks");
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0]["cells"][0]["stdout"], "a\n");
    assert_eq!(reports[1]["cells"][0]["stdout"], "b\n");
    let (a, b) = (&reports[0]["cells"][0], &reports[1]["cells"][0]);
    let overlap = a["started_at"].as_f64().expect("start")
        < b["finished_at"].as_f64().expect("end")
        && b["started_at"].as_f64().expect("start") < a["finished_at"].as_f64().expect("end");
    assert!(
        overlap,
        "the two notebooks' cells did not overlap: {reports:?}"
    );
}

#[test]
fn columns_of_atoms_one_worker_found_are_passed_on_with_the_value() {
    // PROTOCOL.md, `columns`: a worker reports which returned values are long lists or tuples
    // of atoms, and the parent passes that on with the value to the cells reading it, so
    // their worker does not check a million elements again. A sitecustomize in the
    // interpreter logs the requests (outside the project, where no cell's file tracing looks).
    let project = Project::new();
    let hook = TestContext::new();
    let log = hook.path("requests.jsonl");
    let site = hook.write(
        "site/sitecustomize.py",
        format!(
            "import json\n\
             _loads = json.loads\n\
             def loads(text, *args, **kwargs):\n    \
                 obj = _loads(text, *args, **kwargs)\n    \
                 if isinstance(obj, dict) and obj.get('type') == 'exec':\n        \
                     with open({log:?}, 'a') as f:\n            \
                         f.write(json.dumps({{'cell': obj['cell'], 'inputs': obj['inputs']}}) + '\\n')\n    \
                 return obj\n\
             json.loads = loads\n"
        ),
    );
    let wrapper = hook.write(
        "bin/python",
        format!(
            "#!/bin/sh\nPYTHONPATH='{}' exec '{}' \"$@\"\n",
            site.parent().expect("site folder").display(),
            project.python.display()
        ),
    );
    make_executable(&wrapper);
    let notebook = project.write_notebook(
        "nb.ipynb",
        &[
            "xs = [float(i) for i in range(1000)]\nfew = [1.0, 2.0]",
            "ys = [x * 2 for x in xs]\nmixed = xs + [few]",
            "words = tuple(str(y) for y in ys)\nprint(len(words), sum(ys), len(mixed))",
            "print(words[-1], few)",
        ],
    );
    let wrapper = wrapper.display().to_string();
    let run = project
        .ctx
        .nbmemo(&["run", "nb.ipynb", "--python", &wrapper, "-j", "1", "--json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, run.stdout);
    let report = run.json();
    assert_eq!(statuses(&report), vec!["ran"; 4], "{report:#}");
    assert_eq!(stdouts(&report), sequential(&notebook));

    let text = std::fs::read_to_string(&log).expect("the requests were logged");
    let mut columns = std::collections::BTreeMap::new();
    for line in text.lines() {
        let request: Value = serde_json::from_str(line).expect("a logged request");
        for group in request["inputs"].as_array().expect("inputs") {
            for name in group["names"].as_array().expect("names") {
                let claimed = group["columns"]
                    .as_array()
                    .is_some_and(|names| names.contains(name));
                columns.insert(name.as_str().expect("a name").to_owned(), claimed);
            }
        }
    }
    let expected: std::collections::BTreeMap<String, bool> = [
        ("xs", true),
        ("ys", true),
        ("words", true),
        ("few", false),
        ("mixed", false),
    ]
    .into_iter()
    .map(|(name, claimed)| (name.to_owned(), claimed))
    .collect();
    assert_eq!(columns, expected, "{text}");
}
