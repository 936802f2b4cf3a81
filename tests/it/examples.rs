//! Smoke tests of `examples/`: every example plans cleanly, and the graphs are those a careful
//! reader expects (see `examples/README.md`).

use crate::common::{nbmemo_in, repo_root};

/// `depends_on` of every code cell of an example, from `plan --format json`.
fn depends_on(example: &str) -> Vec<Vec<u64>> {
    let run = nbmemo_in(&repo_root(), &["plan", example, "--format", "json"]);
    assert_eq!(run.code, 0, "{example}: {}", run.stderr);
    run.json()["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .map(|cell| {
            cell["depends_on"]
                .as_array()
                .expect("depends_on")
                .iter()
                .filter_map(serde_json::Value::as_u64)
                .collect()
        })
        .collect()
}

#[test]
fn every_example_plans_cleanly_in_every_format() {
    let mut examples = Vec::new();
    for entry in walk(&repo_root().join("examples")) {
        let is_notebook = entry
            .extension()
            .is_some_and(|ext| ext == "ipynb" || ext == "py");
        if is_notebook {
            examples.push(entry);
        }
    }
    assert!(examples.len() >= 6, "{examples:?}");
    for example in examples {
        let path = example.to_string_lossy().to_string();
        for format in ["text", "json", "dot"] {
            let run = nbmemo_in(&repo_root(), &["plan", &path, "--format", format]);
            assert_eq!(run.code, 0, "{path} --format {format}: {}", run.stderr);
            assert!(run.stderr.is_empty(), "{path}: {}", run.stderr);
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read examples").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[test]
fn quickstart_has_parallel_waves() {
    assert_eq!(
        depends_on("examples/quickstart.ipynb"),
        vec![
            vec![],
            vec![],
            vec![1],
            vec![1],
            vec![1],
            vec![0, 2],
            vec![2, 3, 4, 5]
        ]
    );
}

#[test]
fn branches_fan_out_and_join() {
    assert_eq!(
        depends_on("examples/branches.ipynb"),
        vec![vec![], vec![0], vec![0], vec![0], vec![0], vec![1, 2, 3, 4]]
    );
}

#[test]
fn redefinition_follows_the_most_recent_writer() {
    let deps = depends_on("examples/redefinition.ipynb");
    assert_eq!(deps[1], vec![0], "y = x + 1 reads the first x");
    assert_eq!(deps[3], vec![1, 2], "z = x * y reads the second x");
    assert_eq!(deps[5], vec![2, 4], "the first describe");
    assert_eq!(deps[7], vec![1, 6], "the redefined describe");
}

#[test]
fn mutation_orders_readers_after_mutators_and_aliases() {
    let deps = depends_on("examples/mutation.ipynb");
    assert_eq!(deps[1], vec![0]);
    assert_eq!(
        deps[7],
        vec![0, 1, 6],
        "add(items, 3) after items.append(1)"
    );
    assert_eq!(deps[10], vec![0, 1, 7, 8], "alias.append mutates items too");
    assert_eq!(
        deps[9],
        vec![0, 1, 7, 8],
        "`alias.append(4)` in cell 8 mutated items"
    );
    assert_eq!(
        deps[11],
        vec![0, 1, 7, 8, 10],
        "print(len(items)) after both alias mutations"
    );
    assert_eq!(deps[12], vec![2, 3, 4, 5]);
}

#[test]
fn functions_read_globals_at_the_calling_cell() {
    let deps = depends_on("examples/functions.ipynb");
    assert_eq!(deps[2], vec![0, 1], "scaled(3) with scale = 2");
    // `scaled` is a plain function (no decorator, no mutable default): calling it changes
    // nothing of it, so the two calls stay independent.
    assert_eq!(deps[4], vec![1, 3], "scaled(3) with scale = 10");
    assert_eq!(
        deps[11],
        vec![1, 9, 10],
        "the lambda's globals as of cell 11"
    );
    assert_eq!(
        deps[12],
        vec![8, 10],
        "parcel.label() reads unit and scale through its class"
    );
}

#[test]
fn percent_and_data_examples() {
    assert_eq!(
        depends_on("examples/percent.py"),
        vec![vec![], vec![], vec![0], vec![0, 1, 2]]
    );
    assert_eq!(
        depends_on("examples/data-deps/analysis.ipynb"),
        vec![
            vec![],
            vec![0],
            vec![1],
            vec![2],
            vec![0, 2],
            vec![2],
            // Before any run, both cells calling `open` keep their order (c1 reads `data.csv`,
            // c6 writes `summary.txt`): the static rule cannot tell the files apart.
            vec![1, 2, 3, 4, 5]
        ]
    );
}
