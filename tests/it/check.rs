//! `nbmemo check` against real Python: discovery, one run for many notebooks, all failures
//! together, JUnit XML and JSON reports, the cache across checks, `--outputs-fresh`, and the
//! pre-commit hooks (issue #8).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{Project, Run, TestContext, ipynb, repo_root, test_python};

/// An XML element, as parsed by quick-xml.
#[derive(Debug, Default)]
struct Element {
    name: String,
    attributes: BTreeMap<String, String>,
    children: Vec<Element>,
    text: String,
}

impl Element {
    fn attr(&self, name: &str) -> &str {
        self.attributes
            .get(name)
            .map_or_else(|| panic!("<{}> has no `{name}`", self.name), String::as_str)
    }

    fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |child| child.name == name)
    }

    fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|child| child.name == name)
    }

    /// The `value` of `<properties><property name=NAME value=…/></properties>`.
    fn property(&self, name: &str) -> Option<&str> {
        self.child("properties")?
            .children_named("property")
            .find(|property| property.attr("name") == name)
            .map(|property| property.attr("value"))
    }
}

/// Parses an XML document with a real XML parser (quick-xml) into a tree; panics on anything
/// that is not well-formed.
fn parse_xml(xml: &str) -> Element {
    use quick_xml::events::Event;

    fn element(start: &quick_xml::events::BytesStart<'_>) -> Element {
        let mut element = Element {
            name: start.name().as_ref().to_string(),
            ..Element::default()
        };
        for attribute in start.attributes() {
            let attribute = attribute.expect("a well-formed attribute");
            let key = attribute.key.as_ref().to_string();
            let value = attribute
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .expect("an attribute value with known entities")
                .into_owned();
            element.attributes.insert(key, value);
        }
        element
    }

    let mut reader = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<Element> = vec![Element::default()];
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(start) => stack.push(element(&start)),
            Event::Empty(start) => {
                let done = element(&start);
                stack.last_mut().expect("parent").children.push(done);
            }
            Event::End(_) => {
                let done = stack.pop().expect("open element");
                stack.last_mut().expect("parent").children.push(done);
            }
            Event::Text(text) => {
                let content = text.xml10_content();
                stack.last_mut().expect("element").text.push_str(&content);
            }
            Event::GeneralRef(reference) => {
                let resolved = if reference.is_char_ref() {
                    reference
                        .resolve_char_ref()
                        .expect("a valid character reference")
                        .expect("a character")
                        .to_string()
                } else {
                    quick_xml::escape::resolve_predefined_entity(&reference)
                        .unwrap_or_else(|| panic!("unknown entity `{}`", &*reference))
                        .to_string()
                };
                stack.last_mut().expect("element").text.push_str(&resolved);
            }
            Event::CData(data) => {
                let content = data.into_inner().into_owned();
                stack.last_mut().expect("element").text.push_str(&content);
            }
            Event::Eof => break,
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    assert_eq!(stack.len(), 1, "unclosed elements");
    let mut root = stack.pop().expect("document");
    assert_eq!(root.children.len(), 1, "one root element");
    root.children.pop().expect("root")
}

fn statuses(report: &Value) -> Vec<&str> {
    report["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .map(|cell| cell["status"].as_str().unwrap_or("?"))
        .collect()
}

/// The folder of the acceptance scenario: a passing notebook, a failing one, a percent script,
/// and notebooks that must not be found (excluded, ignored, checkpoints, a plain module).
fn write_folder(project: &Project) {
    let ctx = &project.ctx;
    ctx.write(
        "nbs/pass.ipynb",
        ipynb(&[
            "import math\nradius = 2",
            "area = math.pi * radius ** 2\nprint(round(area, 2))",
            // Markup, ANSI colours and characters XML 1.0 cannot carry, in the output.
            "print('<b> & \\x1b[31mred\\x1b[0m \\x00\\x07 done')",
        ]),
    );
    ctx.write(
        "nbs/fail.ipynb",
        ipynb(&[
            "values = [1, 2, 3]",
            "total = sum(values)\nratio = total / 0",
            "print(ratio)",
            "print('independent', len(values))",
        ]),
    );
    ctx.write(
        "nbs/script.py",
        "# %%\nwords = ['a', 'b']\n\n# %% [markdown]\n# Some text\n\n# %%\nprint(len(words))\n",
    );
    // Not notebooks, or not to be found.
    ctx.write("nbs/helpers.py", "def helper():\n    return 1\n");
    ctx.write(
        "nbs/drafts/wip.ipynb",
        ipynb(&["raise RuntimeError('excluded')"]),
    );
    ctx.write(
        "nbs/generated/out.ipynb",
        ipynb(&["raise RuntimeError('ignored')"]),
    );
    ctx.write(
        "nbs/.ipynb_checkpoints/pass-checkpoint.ipynb",
        ipynb(&["raise RuntimeError('checkpoint')"]),
    );
    ctx.write(
        "nbs/.hidden/secret.ipynb",
        ipynb(&["raise RuntimeError('hidden')"]),
    );
    ctx.write(".gitignore", "generated/\n");
}

/// The acceptance scenario of issue #8: `check` runs the folder in one go, exits 1, reports
/// every failure, writes JUnit and JSON; a second `check` replays everything without Python.
#[test]
fn check_runs_a_folder_reports_junit_and_json_then_replays_from_the_cache() {
    let project = Project::new();
    write_folder(&project);
    let first = project.check(&[
        "nbs",
        "--exclude",
        "drafts/",
        "--junit",
        "reports/junit.xml",
        "--json",
        "reports/check.json",
    ]);
    assert_eq!(first.code, 1, "{}\n{}", first.stdout, first.stderr);

    // One line per notebook, sorted, then a total.
    let lines: Vec<&str> = first.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", first.stdout);
    assert!(
        lines[0].starts_with("nbs/fail.ipynb: 4 cells: 0 cached, 2 ran, 1 failed, 1 skipped in "),
        "{}",
        first.stdout
    );
    assert!(
        lines[1].starts_with("nbs/pass.ipynb: 3 cells: 0 cached, 3 ran, 0 failed"),
        "{}",
        first.stdout
    );
    assert!(
        lines[2].starts_with("nbs/script.py: 2 cells: 0 cached, 2 ran, 0 failed"),
        "{}",
        first.stdout
    );
    assert!(
        lines[3].starts_with("3 notebooks, 9 cells: 0 cached, 7 ran, 1 failed, 1 skipped in "),
        "{}",
        first.stdout
    );
    // The failure with notebook, cell, line and traceback.
    assert!(
        first
            .stderr
            .contains("error: `nbs/fail.ipynb`, cell 1, line 2 failed: total = sum(values)"),
        "{}",
        first.stderr
    );
    assert!(
        first.stderr.contains("ZeroDivisionError: division by zero"),
        "{}",
        first.stderr
    );
    for hidden in ["excluded", "ignored", "checkpoint", "hidden"] {
        assert!(!first.stderr.contains(hidden), "{hidden}: {}", first.stderr);
    }

    // JUnit, read with a real XML parser.
    let xml = std::fs::read_to_string(project.ctx.path("reports/junit.xml")).expect("junit");
    let root = parse_xml(&xml);
    assert_eq!(root.name, "testsuites");
    assert_eq!(
        (
            root.attr("tests"),
            root.attr("failures"),
            root.attr("skipped"),
            root.attr("errors")
        ),
        ("9", "1", "1", "0")
    );
    let suites: Vec<&Element> = root.children_named("testsuite").collect();
    let names: Vec<&str> = suites.iter().map(|suite| suite.attr("name")).collect();
    assert_eq!(names, ["nbs/fail.ipynb", "nbs/pass.ipynb", "nbs/script.py"]);
    let fail = suites[0];
    assert_eq!(
        (
            fail.attr("tests"),
            fail.attr("failures"),
            fail.attr("skipped")
        ),
        ("4", "1", "1")
    );
    let cases: Vec<&Element> = fail.children_named("testcase").collect();
    let case_names: Vec<&str> = cases.iter().map(|case| case.attr("name")).collect();
    assert_eq!(
        case_names,
        [
            "cell 0: values = [1, 2, 3]",
            "cell 1: total = sum(values)",
            "cell 2: print(ratio)",
            "cell 3: print('independent', len(values))",
        ]
    );
    for case in &cases {
        assert_eq!(case.attr("classname"), "nbs/fail.ipynb");
        case.attr("time").parse::<f64>().expect("time in seconds");
    }
    let failure = cases[1].child("failure").expect("a <failure>");
    assert_eq!(
        failure.attr("message"),
        "ZeroDivisionError: division by zero"
    );
    assert_eq!(failure.attr("type"), "ZeroDivisionError");
    assert!(failure.text.contains("Traceback"), "{}", failure.text);
    assert!(
        failure.text.contains("ratio = total / 0"),
        "{}",
        failure.text
    );
    let skipped = cases[2].child("skipped").expect("a <skipped>");
    assert_eq!(skipped.attr("message"), "cell 1 failed");
    assert!(cases[0].child("failure").is_none() && cases[0].child("skipped").is_none());
    assert_eq!(
        cases[3].child("system-out").expect("stdout").text,
        "independent 3\n"
    );
    let caches: Vec<Option<&str>> = cases.iter().map(|case| case.property("cache")).collect();
    assert_eq!(caches, [Some("ran"), Some("ran"), None, Some("ran")]);
    let pass_cases: Vec<&Element> = suites[1].children_named("testcase").collect();
    assert_eq!(
        pass_cases[2].child("system-out").expect("stdout").text,
        "<b> & red \u{FFFD}\u{FFFD} done\n",
        "markup escaped, ANSI escapes stripped, invalid characters replaced"
    );
    assert_eq!(
        suites[2].children_named("testcase").count(),
        2,
        "code cells only"
    );

    // JSON: the `run --json` object of every notebook, in one array.
    let reports = project.read_json("reports/check.json");
    let reports = reports.as_array().expect("an array");
    assert_eq!(reports.len(), 3);
    assert_eq!(reports[0]["notebook"], "nbs/fail.ipynb");
    assert_eq!(statuses(&reports[0]), ["ran", "failed", "skipped", "ran"]);
    assert_eq!(statuses(&reports[1]), ["ran"; 3]);
    assert_eq!(statuses(&reports[2]), ["ran"; 2]);
    assert_eq!(
        reports[0]["cells"][1]["error"]["ename"],
        "ZeroDivisionError"
    );
    assert_eq!(reports[0]["summary"]["failed"], 1);

    // A second check replays everything from the cache, the deterministic exception included,
    // and starts no Python.
    let starts = project.python_starts();
    assert!(starts >= 1);
    let second = project.check(&[
        "nbs",
        "--exclude",
        "drafts/",
        "--junit",
        "reports/junit.xml",
        "--json",
        "reports/check.json",
    ]);
    assert_eq!(second.code, 1, "{}\n{}", second.stdout, second.stderr);
    assert_eq!(
        project.python_starts(),
        starts,
        "a fully cached check starts no Python"
    );
    assert!(
        second.stdout.contains("3 notebooks, 9 cells: 7 cached"),
        "{}",
        second.stdout
    );
    assert!(
        second.stderr.contains("ZeroDivisionError"),
        "{}",
        second.stderr
    );
    let reports = project.read_json("reports/check.json");
    assert_eq!(
        statuses(&reports[0]),
        ["cached", "failed", "skipped", "cached"]
    );
    assert_eq!(reports[0]["cells"][1]["reason"], "raised (cached result)");
    assert_eq!(
        reports[0]["cells"][1]["started_at"],
        Value::Null,
        "replayed, not run"
    );
    assert_eq!(statuses(&reports[1]), ["cached"; 3]);
    assert_eq!(statuses(&reports[2]), ["cached"; 2]);
    let root =
        parse_xml(&std::fs::read_to_string(project.ctx.path("reports/junit.xml")).expect("junit"));
    let caches: Vec<Option<&str>> = root
        .children_named("testsuite")
        .flat_map(|suite| suite.children_named("testcase"))
        .map(|case| case.property("cache"))
        .collect();
    assert_eq!(
        caches,
        [
            Some("cached"),
            Some("cached"),
            None,
            Some("cached"),
            Some("cached"),
            Some("cached"),
            Some("cached"),
            Some("cached"),
            Some("cached"),
        ]
    );

    // -q: only the failures.
    let quiet = project.check(&["nbs", "--exclude", "drafts/", "-q"]);
    assert_eq!(quiet.code, 1);
    assert_eq!(quiet.stdout, "", "{}", quiet.stdout);
    assert!(
        quiet.stderr.contains("ZeroDivisionError"),
        "{}",
        quiet.stderr
    );

    // Without --exclude, the draft is found, and fails.
    let all = project.check(&["nbs", "--json", "reports/all.json"]);
    assert_eq!(all.code, 1);
    let names: Vec<String> = project
        .read_json("reports/all.json")
        .as_array()
        .expect("array")
        .iter()
        .map(|report| report["notebook"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        names,
        [
            "nbs/drafts/wip.ipynb",
            "nbs/fail.ipynb",
            "nbs/pass.ipynb",
            "nbs/script.py"
        ]
    );
}

/// Notebooks with no code cells need no Python: discovery rules, seen through `check`'s lines.
#[test]
fn discovery_honours_gitignore_exclude_and_explicit_files() {
    let ctx = TestContext::new();
    std::fs::create_dir_all(ctx.path(".git")).expect("mark the project root");
    let markdown = r##"{"cells": [{"cell_type": "markdown", "metadata": {}, "source": "# Title"}],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5}"##;
    for name in [
        "a/one.ipynb",
        "a/sub/two.ipynb",
        "a/sub/scratch_three.ipynb",
        "a/build/four.ipynb",
        "a/.ipynb_checkpoints/one-checkpoint.ipynb",
        "a/.nbmemo/x.ipynb",
        "a/.hidden/five.ipynb",
        "a/venv/lib/six.ipynb",
        "a/ignored.ipynb",
    ] {
        ctx.write(name, markdown);
    }
    ctx.write("a/venv/pyvenv.cfg", "home = /usr/bin\n");
    ctx.write("a/percent.py", "# %% [markdown]\n# Only text\n");
    ctx.write(
        "a/module.py",
        "import os\n# %%time is a magic, not a marker\n",
    );
    ctx.write("a/.gitignore", "ignored.ipynb\nbuild/\n");
    let found = |run: &Run| -> Vec<String> {
        run.stdout
            .lines()
            .filter_map(|line| line.split_once(": ").map(|(path, _)| path.to_string()))
            .filter(|path| !path.contains(' '))
            .collect()
    };

    let run = ctx.nbmemo(&["check", "a", "--exclude", "scratch_*.ipynb"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        found(&run),
        ["a/one.ipynb", "a/percent.py", "a/sub/two.ipynb"],
        "{}",
        run.stdout
    );

    // Globs with a slash are anchored at the current directory, `./` or not.
    let run = ctx.nbmemo(&[
        "check",
        "./a",
        "--exclude",
        "./a/sub/",
        "--exclude",
        "percent.py",
    ]);
    assert_eq!(found(&run), ["a/one.ipynb"], "{}", run.stdout);
    let run = ctx.nbmemo(&[
        "check",
        ".",
        "--exclude",
        "a/sub/two.ipynb",
        "--exclude",
        "sub/scratch*",
    ]);
    assert_eq!(
        found(&run),
        ["a/one.ipynb", "a/percent.py", "a/sub/scratch_three.ipynb"],
        "`sub/scratch*` is anchored: {}",
        run.stdout
    );

    // `./a` and `a` name the same notebooks; overlapping paths give each notebook once.
    let run = ctx.nbmemo(&[
        "check",
        "./a/sub",
        "a/sub/two.ipynb",
        "--exclude",
        "scratch_*",
    ]);
    assert_eq!(found(&run), ["a/sub/two.ipynb"], "{}", run.stdout);

    // A file named directly counts, whatever .gitignore and --exclude say.
    let run = ctx.nbmemo(&[
        "check",
        "a/ignored.ipynb",
        "a/sub/scratch_three.ipynb",
        "--exclude",
        "scratch_*",
    ]);
    assert_eq!(
        found(&run),
        ["a/ignored.ipynb", "a/sub/scratch_three.ipynb"],
        "{}",
        run.stdout
    );

    // A `.py` file without a marker is not a notebook, even named directly.
    let run = ctx.nbmemo(&["check", "a/module.py"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("warning: no notebooks found under `a/module.py`"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("`# %%`"), "{}", run.stderr);

    // No notebook at all: a warning and status 0 (as ruff); a missing path: status 2.
    std::fs::create_dir_all(ctx.path("empty")).expect("mkdir");
    let run = ctx.nbmemo(&["check", "empty"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("no notebooks found under `empty`"),
        "{}",
        run.stderr
    );
    let run = ctx.nbmemo(&["check", "missing", "a/one.ipynb"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("cannot read `missing`: no such file or directory"),
        "{}",
        run.stderr
    );
    assert_eq!(
        found(&run),
        ["a/one.ipynb"],
        "the other paths are still checked"
    );
    // An unreadable notebook is a tool error; the others are still checked.
    ctx.write("b/broken.ipynb", "{\"cells\": [");
    ctx.write("b/fine.ipynb", markdown);
    let run = ctx.nbmemo(&["check", "b"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("b/broken.ipynb"), "{}", run.stderr);
    assert_eq!(found(&run), ["b/fine.ipynb"], "{}", run.stdout);
    let run = ctx.nbmemo(&["check", "a/.gitignore"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("is not a notebook"), "{}", run.stderr);
    let run = ctx.nbmemo(&["check", "a", "--exclude", "a{b"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("invalid `--exclude` glob `a{b`: unclosed alternate group"),
        "{}",
        run.stderr
    );
}

fn set_source(path: &Path, cell: usize, source: &str) {
    let mut notebook: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("json");
    notebook["cells"][cell]["source"] = Value::from(source);
    std::fs::write(path, serde_json::to_string_pretty(&notebook).expect("json")).expect("write");
}

/// `--outputs-fresh` passes right after `run --inplace`, fails after a code edit naming the
/// cell, and never starts Python.
#[test]
fn outputs_fresh_after_inplace_stale_after_an_edit_without_python() {
    let project = Project::new();
    let path = project.ctx.write(
        "nb.ipynb",
        ipynb(&[
            "base = 3",
            "square = base ** 2\nprint(square)",
            "print('independent')",
        ]),
    );
    project.ctx.write(
        "script.py",
        "# %%\nprint('percent scripts have no outputs')\n",
    );
    let python = project.python.display().to_string();
    let run = project
        .ctx
        .nbmemo(&["run", "--python", &python, "--inplace", "nb.ipynb"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    let record = &written["cells"][1]["metadata"]["nbmemo"];
    assert_eq!(
        record["key"].as_str().map(str::len),
        Some(64),
        "{written:#}"
    );
    assert_eq!(
        record["code"].as_str().map(str::len),
        Some(64),
        "{written:#}"
    );

    let starts = project.python_starts();
    let fresh = project.check(&["--outputs-fresh", "."]);
    assert_eq!(fresh.code, 0, "{}\n{}", fresh.stdout, fresh.stderr);
    assert_eq!(fresh.stdout, "1 notebook checked: outputs fresh\n");

    // A comment is not a code change.
    set_source(&path, 1, "# the square\nsquare = base ** 2\nprint(square)");
    let fresh = project.check(&["--outputs-fresh", "nb.ipynb", "script.py"]);
    assert_eq!(fresh.code, 0, "{}", fresh.stderr);

    // A code change is.
    set_source(&path, 1, "square = base ** 3\nprint(square)");
    let stale = project.check(&["--outputs-fresh", "nb.ipynb"]);
    assert_eq!(stale.code, 1, "{}\n{}", stale.stdout, stale.stderr);
    assert!(
        stale.stderr.contains("error: `nb.ipynb`, cell 1 (square = base ** 3): code changed since its outputs were written"),
        "{}",
        stale.stderr
    );
    assert!(
        stale.stderr.contains("nbmemo run --inplace nb.ipynb"),
        "{}",
        stale.stderr
    );
    assert!(
        !stale.stderr.contains("cell 0") && !stale.stderr.contains("cell 2"),
        "{}",
        stale.stderr
    );
    assert_eq!(
        stale.stdout,
        "1 notebook checked: 1 stale cell in 1 notebook\n"
    );
    assert_eq!(
        project.python_starts(),
        starts,
        "--outputs-fresh starts no Python"
    );

    // Re-running in place makes it fresh again.
    let run = project
        .ctx
        .nbmemo(&["run", "--python", &python, "--inplace", "nb.ipynb"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(project.check(&["--outputs-fresh", "nb.ipynb"]).code, 0);

    // An upstream edit that was run, but not written back: the reader's inputs changed.
    set_source(&path, 0, "base = 4");
    let run = project
        .ctx
        .nbmemo(&["run", "--python", &python, "nb.ipynb"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let starts = project.python_starts();
    let stale = project.check(&["--outputs-fresh", "nb.ipynb"]);
    assert_eq!(stale.code, 1, "{}", stale.stderr);
    assert!(
        stale.stderr.contains("cell 0 (base = 4): code changed"),
        "{}",
        stale.stderr
    );
    assert!(
        stale.stderr.contains("cell 1 (square = base ** 3): the values it reads changed since its outputs were written (from cell 0)"),
        "{}",
        stale.stderr
    );
    assert!(
        !stale.stderr.contains("cell 2"),
        "an independent cell stays fresh: {}",
        stale.stderr
    );
    assert_eq!(project.python_starts(), starts);

    // Without any cache, the code comparison still works.
    std::fs::remove_dir_all(project.ctx.path(".nbmemo")).expect("remove the cache");
    let stale = project.check(&["--outputs-fresh", "nb.ipynb"]);
    assert_eq!(stale.code, 1, "{}", stale.stderr);
    assert!(
        stale.stderr.contains("cell 0 (base = 4): code changed"),
        "{}",
        stale.stderr
    );
    assert!(!stale.stderr.contains("cell 1"), "{}", stale.stderr);

    // Outputs that nbmemo did not write are stale (strict by default).
    let mut jupyter: Value = serde_json::from_str(&ipynb(&["print(1)", "x = 1"])).expect("json");
    jupyter["cells"][0]["execution_count"] = Value::from(1);
    jupyter["cells"][0]["outputs"] = serde_json::json!([
        {"name": "stdout", "output_type": "stream", "text": ["1\n"]}
    ]);
    project.ctx.write("jupyter.ipynb", jupyter.to_string());
    let stale = project.check(&["--outputs-fresh", "jupyter.ipynb"]);
    assert_eq!(stale.code, 1, "{}", stale.stderr);
    assert!(
        stale
            .stderr
            .contains("cell 0 (print(1)): outputs not written by `nbmemo run --inplace`"),
        "{}",
        stale.stderr
    );
    assert!(
        !stale.stderr.contains("cell 1"),
        "a cell without outputs is never stale"
    );
}

/// `.pre-commit-hooks.yaml` works with pre-commit itself: the `nbmemo-check` hook fails on a
/// failing notebook and passes on a good one; `nbmemo-outputs-fresh` flags an edited cell.
/// Runs when `pre-commit` is installed beside the test Python (`just setup` installs it) or on
/// `PATH`; otherwise says so and returns.
#[test]
fn pre_commit_hooks_run_through_pre_commit() {
    let Some(pre_commit) = find_pre_commit() else {
        // CI installs it (`just setup`): there, a missing pre-commit is a failure.
        assert!(
            std::env::var_os("CI").is_none(),
            "pre-commit is not installed; `just setup` installs it"
        );
        // The test says it did not run (STYLE.md: no `#[ignore]`).
        #[allow(clippy::print_stderr)]
        {
            eprintln!("skipped: `pre-commit` is not installed (pip install pre-commit)");
        }
        return;
    };
    let project = Project::new();
    let ctx = &project.ctx;
    // A repository holding the hooks, as pre-commit clones it. The hooks are `language: python`
    // (pre-commit would build and install the Python package, which takes minutes: `just
    // wheel-test` tests that package); here they run as `language: system`, with the nbmemo
    // under test on `PATH`, which checks everything else the manifest says.
    let hooks = ctx.path("hooks-repo");
    std::fs::create_dir_all(&hooks).expect("mkdir");
    let manifest = std::fs::read_to_string(repo_root().join(".pre-commit-hooks.yaml"))
        .expect("read the hooks manifest");
    assert_eq!(
        manifest.matches("\n  language: python\n").count(),
        2,
        "{manifest}"
    );
    std::fs::write(
        hooks.join(".pre-commit-hooks.yaml"),
        manifest.replace("\n  language: python\n", "\n  language: system\n"),
    )
    .expect("write the hooks manifest");
    git(&hooks, &["init", "-q"]);
    git(&hooks, &["add", "."]);
    git(&hooks, &["commit", "-q", "-m", "hooks"]);
    let rev = git(&hooks, &["rev-parse", "HEAD"]);
    // The user's repository.
    let user = ctx.path("user");
    std::fs::create_dir_all(&user).expect("mkdir");
    git(&user, &["init", "-q"]);
    let python = project.python.display().to_string();
    std::fs::write(
        user.join(".pre-commit-config.yaml"),
        format!(
            "repos:\n- repo: {}\n  rev: {}\n  hooks:\n  - id: nbmemo-check\n    args: [--python, '{python}']\n  - id: nbmemo-outputs-fresh\n",
            hooks.display(),
            rev.trim()
        ),
    )
    .expect("write the config");
    std::fs::write(user.join("good.ipynb"), ipynb(&["x = 1", "print(x + 1)"])).expect("write");
    std::fs::write(user.join("bad.ipynb"), ipynb(&["x = 1", "x / 0"])).expect("write");
    std::fs::write(user.join("module.py"), "def f():\n    return 1\n").expect("write");
    git(&user, &["add", "."]);
    let nbmemo_dir = PathBuf::from(env!("CARGO_BIN_EXE_nbmemo"))
        .parent()
        .expect("bin dir")
        .to_path_buf();
    let path = format!(
        "{}:{}",
        nbmemo_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let pre_commit_home = ctx.path("pre-commit-home");
    let run_hooks = |args: &[&str]| -> Run {
        let mut command = std::process::Command::new(&pre_commit);
        command
            .args(args)
            .current_dir(&user)
            .env("PATH", &path)
            .env("PRE_COMMIT_HOME", &pre_commit_home)
            .env("NO_COLOR", "1")
            .env_remove("NBMEMO_CACHE_DIR")
            .env_remove("VIRTUAL_ENV");
        command.output().expect("run pre-commit").into()
    };

    let good = run_hooks(&["run", "nbmemo-check", "--files", "good.ipynb", "module.py"]);
    assert_eq!(good.code, 0, "{}\n{}", good.stdout, good.stderr);
    assert!(good.stdout.contains("Passed"), "{}", good.stdout);
    let bad = run_hooks(&["run", "nbmemo-check", "--files", "good.ipynb", "bad.ipynb"]);
    assert_eq!(bad.code, 1, "{}\n{}", bad.stdout, bad.stderr);
    assert!(bad.stdout.contains("Failed"), "{}", bad.stdout);
    assert!(bad.stdout.contains("ZeroDivisionError"), "{}", bad.stdout);

    // The freshness hook: outputs written by `run --inplace` pass, an edit fails.
    let run = nbmemo_in_with_python(&user, &python, &["run", "--inplace", "good.ipynb"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let fresh = run_hooks(&[
        "run",
        "nbmemo-outputs-fresh",
        "--files",
        "good.ipynb",
        "module.py",
    ]);
    assert_eq!(fresh.code, 0, "{}\n{}", fresh.stdout, fresh.stderr);
    set_source(&user.join("good.ipynb"), 1, "print(x + 2)");
    let stale = run_hooks(&["run", "nbmemo-outputs-fresh", "--files", "good.ipynb"]);
    assert_eq!(stale.code, 1, "{}\n{}", stale.stdout, stale.stderr);
    assert!(
        stale.stdout.contains("cell 1 (print(x + 2)): code changed"),
        "{}",
        stale.stdout
    );
}

fn nbmemo_in_with_python(dir: &Path, python: &str, args: &[&str]) -> Run {
    let mut full = args.to_vec();
    full.extend_from_slice(&["--python", python]);
    crate::common::nbmemo_in(dir, &full)
}

/// `pre-commit` beside the test interpreter (the project's `.venv`), else on `PATH`.
fn find_pre_commit() -> Option<PathBuf> {
    let beside = test_python().parent().map(|bin| bin.join("pre-commit"));
    if let Some(candidate) = beside.filter(|candidate| candidate.is_file()) {
        return Some(candidate);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("pre-commit"))
        .find(|candidate| candidate.is_file())
}

/// Runs git with a fixed identity; returns stdout.
fn git(dir: &Path, args: &[&str]) -> String {
    let output = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=nbmemo",
            "-c",
            "user.email=nbmemo@example.com",
        ])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run git");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
