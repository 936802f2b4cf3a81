//! `nbmemo plan`: formats, exit codes, and every malformed input of the foundation issue (#2).

use crate::common::{TestContext, ipynb};

#[test]
fn json_plan_has_the_documented_shape() {
    let ctx = TestContext::new();
    ctx.write(
        "nb.ipynb",
        ipynb(&["x = 1", "y = x + 1", "z = 3", "print(y, z)"]),
    );
    let run = ctx.nbmemo(&["plan", "nb.ipynb", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let plan = run.json();
    assert_eq!(plan["notebook"], "nb.ipynb");
    assert_eq!(plan["waves"], 3);
    assert_eq!(plan["critical_path"], 3);
    let cells = plan["cells"].as_array().expect("cells");
    assert_eq!(cells.len(), 4);
    for key in [
        "index",
        "reads",
        "writes",
        "may_mutate",
        "depends_on",
        "wave",
        "barrier",
        "diagnostics",
    ] {
        assert!(
            cells[0].get(key).is_some(),
            "missing `{key}` in {}",
            cells[0]
        );
    }
    assert_eq!(cells[1]["reads"], serde_json::json!(["x"]));
    assert_eq!(cells[1]["writes"], serde_json::json!(["y"]));
    assert_eq!(cells[1]["depends_on"], serde_json::json!([0]));
    assert_eq!(cells[2]["depends_on"], serde_json::json!([]));
    assert_eq!(cells[2]["wave"], 0);
    assert_eq!(cells[3]["depends_on"], serde_json::json!([1, 2]));
    assert_eq!(cells[3]["wave"], 2);
    assert_eq!(cells[3]["barrier"], false);
}

#[test]
fn indices_count_code_cells_only() {
    let ctx = TestContext::new();
    ctx.write(
        "nb.py",
        "# %% [markdown]\n# Title\n\n# %%\na = 1\n\n# %% [markdown]\n# text\n\n# %%\nb = a\n",
    );
    let plan = ctx.nbmemo(&["plan", "nb.py", "--format", "json"]).json();
    let cells = plan["cells"].as_array().expect("cells");
    assert_eq!(cells.len(), 2);
    assert_eq!(cells[1]["index"], 1);
    assert_eq!(cells[1]["source_index"], 3);
    assert_eq!(cells[1]["depends_on"], serde_json::json!([0]));
}

#[test]
fn text_and_dot_formats() {
    let ctx = TestContext::new();
    ctx.write("nb.ipynb", ipynb(&["x = 1", "y = x + 1"]));
    let text = ctx.nbmemo(&["plan", "nb.ipynb"]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(text.stdout.contains("x → y"), "{}", text.stdout);
    assert!(
        text.stdout
            .contains("2 code cells, 2 waves, critical path 2 cells (0 → 1)"),
        "{}",
        text.stdout
    );
    let dot = ctx.nbmemo(&["plan", "nb.ipynb", "--format", "dot"]);
    assert_eq!(dot.code, 0, "{}", dot.stderr);
    assert!(
        dot.stdout.starts_with("digraph \"nb.ipynb\" {"),
        "{}",
        dot.stdout
    );
    assert!(
        dot.stdout.contains("c0 -> c1 [label=\"x\"];"),
        "{}",
        dot.stdout
    );
}

#[test]
fn two_syntax_errors_are_reported_with_cell_line_and_column() {
    let ctx = TestContext::new();
    ctx.write(
        "nb.ipynb",
        ipynb(&[
            "a = 1",
            "x = (1,\ny = 2 +\n",
            "print(a)",
            "def f(:\n    pass\nz = ]",
        ]),
    );
    let run = ctx.nbmemo(&["plan", "nb.ipynb", "--format", "json"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    // The plan is still printed, with the errors in it.
    let plan = run.json();
    assert_eq!(plan["cells"][1]["barrier"], true);
    assert!(
        plan["cells"][1]["diagnostics"]
            .as_array()
            .is_some_and(|d| !d.is_empty())
    );
    assert_eq!(plan["cells"][2]["barrier"], false);
    // After a barrier, a cell also reads the library state the barrier may have changed
    // (`@cwd`, …): check the Python names.
    let names: Vec<&str> = plan["cells"][2]["reads"]
        .as_array()
        .expect("reads")
        .iter()
        .filter_map(serde_json::Value::as_str)
        .filter(|name| !name.starts_with('@'))
        .collect();
    assert_eq!(names, vec!["a", "print"]);
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|line| line.starts_with("error:"))
        .collect();
    assert!(errors.len() >= 3, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("error: syntax error in `nb.ipynb`, cell 1, line "),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("error: syntax error in `nb.ipynb`, cell 3, line 1, column 7"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("error: syntax error in `nb.ipynb`, cell 3, line 3, column 5"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

/// Each malformed input of issue #2: a clear message naming the file and the place, exit 2.
#[test]
fn malformed_inputs_give_clear_errors() {
    let ctx = TestContext::new();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("bad.ipynb", b"{\"cells\": [,]}".to_vec(), "`bad.ipynb` is not valid JSON"),
        ("empty.ipynb", Vec::new(), "`empty.ipynb` is empty"),
        ("blank.py", b"  \n\n".to_vec(), ""),
        ("v5.ipynb", br#"{"cells": [], "metadata": {}, "nbformat": 5, "nbformat_minor": 0}"#.to_vec(), "nbformat 5"),
        ("nover.ipynb", br#"{"cells": [], "metadata": {}}"#.to_vec(), "`nover.ipynb`"),
        (
            "source.ipynb",
            br#"{"cells": [{"cell_type": "code", "source": 42, "metadata": {}, "outputs": [], "execution_count": null}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}"#.to_vec(),
            "cell 0",
        ),
        ("binary.ipynb", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR".to_vec(), "`binary.ipynb`"),
        ("latin1.py", b"# %%\nname = '\xe9t\xe9'\n".to_vec(), "`latin1.py` is not valid UTF-8"),
        ("notes.txt", b"x = 1\n".to_vec(), "`notes.txt` is not a notebook"),
    ];
    for (name, contents, expected) in cases {
        ctx.write(name, &contents);
        let run = ctx.nbmemo(&["plan", name]);
        assert!(!run.stderr.contains("panicked"), "{name}: {}", run.stderr);
        if expected.is_empty() {
            // A percent file with nothing in it is an empty notebook, not an error.
            assert_eq!(run.code, 0, "{name}: {}", run.stderr);
            continue;
        }
        assert_eq!(
            run.code, 2,
            "{name}: stdout={} stderr={}",
            run.stdout, run.stderr
        );
        assert!(run.stderr.starts_with("error: "), "{name}: {}", run.stderr);
        assert!(
            run.stderr.contains(expected),
            "{name}: expected `{expected}` in {}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{name}: {}", run.stdout);
    }
}

#[test]
fn missing_file_is_an_error_naming_it() {
    let ctx = TestContext::new();
    let run = ctx.nbmemo(&["plan", "nope.ipynb"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("failed to read `nope.ipynb`: No such file or directory"),
        "{}",
        run.stderr
    );
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let ctx = TestContext::new();
    let run = ctx.nbmemo(&["plan"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let help = ctx.nbmemo(&["plan", "--help"]);
    assert_eq!(help.code, 0);
    assert!(
        help.stdout.contains("\"depends_on\""),
        "the JSON interface is documented in --help"
    );
    let version = ctx.nbmemo(&["--version"]);
    assert_eq!(version.code, 0);
    assert!(version.stdout.starts_with("nbmemo "), "{}", version.stdout);
}
