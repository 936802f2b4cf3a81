//! Property-based fuzzing of everything that reads untrusted text (issue #10): the `.ipynb`
//! reader, the percent reader, the cell analysis and the graph. Every input must end in a
//! clear error or a result, never a panic or a hang.
//!
//! The number of cases per property is `PROPTEST_CASES` (CI runs the default below; run
//! `PROPTEST_CASES=20000 cargo test --release --test fuzz` for a longer session locally).

use std::path::Path;

use nbmemo::analysis::analyze_cell;
use nbmemo::graph::Graph;
use nbmemo::notebook::parse_notebook;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Python-ish fragments, so that random cells reach deep into the parser and the analysis.
fn python_fragment() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "x",
        "y",
        "df",
        "np",
        "a.b",
        "f(x)",
        "g()",
        "1",
        "2.5",
        "'s'",
        "\"t\"",
        "f'{x}'",
        "[",
        "]",
        "(",
        ")",
        "{",
        "}",
        ":",
        ",",
        "=",
        "+=",
        "==",
        " + ",
        " * ",
        "lambda z: z",
        "def h(p=[]):\n    return p\n",
        "class C:\n    v = 1\n",
        "import numpy as np\n",
        "from os import *\n",
        "global x\n",
        "del x\n",
        "x.append(1)\n",
        "x[0] = 2\n",
        "for i in y:\n    ",
        "if x:\n    ",
        "else:\n    ",
        "try:\n    ",
        "except E as e:\n    ",
        "with open(p) as f:\n    ",
        "return",
        "yield",
        "await",
        "async ",
        "%time ",
        "!ls ",
        "%%capture\n",
        "\n",
        "    ",
        "\t",
        "#",
        "\\",
        ";",
        "é",
        "\u{0}",
        "np.random.seed(0)\n",
        "os.chdir('d')\n",
        "exec('x')\n",
        "_",
        "Out[3]",
        "*args",
        "**kw",
        "@decorator\n",
        "nonlocal z\n",
        "match x:\n    case 1:\n        ",
    ]);
    prop::collection::vec(atoms, 0..40).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn ipynb_reader_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        let _ = parse_notebook(Path::new("fuzz.ipynb"), &bytes);
    }

    #[test]
    fn ipynb_reader_on_json_shaped_input(
        cells in prop::collection::vec((python_fragment(), prop::sample::select(vec!["code", "markdown", "raw", "weird"])), 0..6),
        nbformat in prop::sample::select(vec![3i64, 4, 5, -1]),
        minor in 0i64..6,
        as_list in any::<bool>(),
    ) {
        let cells: Vec<serde_json::Value> = cells
            .iter()
            .map(|(source, kind)| {
                let source = if as_list {
                    serde_json::json!(source.split_inclusive('\n').collect::<Vec<_>>())
                } else {
                    serde_json::json!(source)
                };
                serde_json::json!({"cell_type": kind, "source": source, "metadata": {}, "outputs": []})
            })
            .collect();
        let document = serde_json::json!({
            "cells": cells, "metadata": {}, "nbformat": nbformat, "nbformat_minor": minor,
        });
        let bytes = serde_json::to_vec(&document).expect("json");
        if let Ok(notebook) = parse_notebook(Path::new("fuzz.ipynb"), &bytes) {
        let analyses: Vec<_> = notebook.code_cells().map(|cell| analyze_cell(&cell.source)).collect();
            let refs: Vec<_> = analyses.iter().collect();
            let graph = Graph::build(&refs);
            prop_assert_eq!(graph.cells.len(), analyses.len());
        }
    }

    #[test]
    fn percent_reader_never_panics(text in "(# %%[^\n]{0,20}\n|[^\n]{0,30}\n){0,30}") {
        let _ = parse_notebook(Path::new("fuzz.py"), text.as_bytes());
    }

    #[test]
    fn percent_reader_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..1000)) {
        let mut with_marker = b"# %%\n".to_vec();
        with_marker.extend_from_slice(&bytes);
        let _ = parse_notebook(Path::new("fuzz.py"), &with_marker);
    }

    #[test]
    fn analysis_and_graph_never_panic(cells in prop::collection::vec(python_fragment(), 1..8)) {
        let analyses: Vec<_> = cells.iter().map(|cell| analyze_cell(cell)).collect();
        let refs: Vec<_> = analyses.iter().collect();
        let graph = Graph::build(&refs);
        // Every dependency points backwards: the graph is acyclic by construction.
        for (idx, cell) in graph.cells.iter().enumerate() {
            prop_assert!(cell.depends_on.keys().all(|&dep| dep < idx));
        }
    }

    #[test]
    fn analysis_of_arbitrary_text(text in "\\PC{0,300}") {
        let _ = analyze_cell(&text);
    }
}

/// Pathological shapes: huge cells, deep nesting, long chains, many cells. Each must finish
/// with a result (the nesting CPython refuses is a syntax error), without exhausting the stack.
/// The test thread gets the stack the `nbmemo` binary's main thread has.
#[test]
fn pathological_cells_end_in_a_result() {
    let run = || {
        let huge = "x = 1\n".repeat(200_000);
        assert!(analyze_cell(&huge).syntax_errors.is_empty());
        let nested = format!("x = {}1{}", "(".repeat(100_000), ")".repeat(100_000));
        let analysis = analyze_cell(&nested);
        assert_eq!(analysis.syntax_errors.len(), 1);
        assert!(analysis.syntax_errors[0].message.contains("nested"));
        let in_strings = format!("x = '{}'", "(".repeat(5000));
        assert!(analyze_cell(&in_strings).syntax_errors.is_empty());
        let chain = format!("x = 1{}", " + 1".repeat(50_000));
        assert!(analyze_cell(&chain).syntax_errors.is_empty());
        let attributes = format!("x = a{}", ".b".repeat(50_000));
        assert!(analyze_cell(&attributes).syntax_errors.is_empty());
        let calls = format!("x = f{}", "(1)".repeat(50_000));
        assert!(analyze_cell(&calls).syntax_errors.is_empty());
        let blocks: String = (0..100)
            .map(|depth| format!("{}if x:\n", "    ".repeat(depth)))
            .collect::<String>()
            + &"    ".repeat(100)
            + "pass\n";
        let _ = analyze_cell(&blocks);
        // 10,000 cells: read, analysed, planned.
        let mut text = String::new();
        for idx in 0..10_000usize {
            text.push_str(&format!("# %%\nx{idx} = x{} + 1\n", idx.saturating_sub(1)));
        }
        let notebook = parse_notebook(Path::new("big.py"), text.as_bytes()).expect("reads");
        let analyses: Vec<_> = notebook
            .code_cells()
            .map(|cell| analyze_cell(&cell.source))
            .collect();
        let refs: Vec<_> = analyses.iter().collect();
        let graph = Graph::build(&refs);
        assert_eq!(graph.waves(), 10_000);
        // Not UTF-8: a clear error.
        let err =
            parse_notebook(Path::new("bad.py"), b"# %%\nx = '\xff\xfe'\n").expect_err("not UTF-8");
        assert!(err.to_string().contains("bad.py"), "{err}");
    };
    std::thread::Builder::new()
        .stack_size(256 * 1024 * 1024)
        .spawn(run)
        .expect("thread")
        .join()
        .expect("no panic");
}
