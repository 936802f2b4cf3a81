//! The realistic notebook corpus (`tests/corpus/`, issue #4): every notebook there, run by
//! `nbmemo run`, must leave the same per-cell results as sequential top-to-bottom execution in
//! one interpreter (`tests/corpus/reference.py`):
//!
//! 1. a cold run (`-j 2`), compared with the reference;
//! 2. a second run (everything cached), compared again;
//! 3. each step of the notebook's scripted edits (`NAME.edits.json`, applied cumulatively),
//!    compared with the reference run of the edited notebook.
//!
//! Compared per code cell: the outcome (ok, the exception's name, or skipped), stdout, stderr,
//! and the `execute_result` / `display_data` outputs (their `text/plain` and `image/png`), with
//! memory addresses (`0x7f…`) and the temporary folders normalised. A cell whose source holds
//! `# corpus: nondeterministic` is compared for its outcome only. A cell nbmemo skipped (a cell
//! it depends on failed) is accepted when an earlier cell failed in the reference too: Jupyter's
//! "Run All" would have stopped there.
//!
//! Notebooks listed in `tests/corpus/KNOWN_GAPS.txt` must still mismatch (so fixing one forces
//! removing it from the list); every other notebook must match. The report printed per notebook
//! (`cargo test --test it corpus -- --nocapture`) gives, for each run, how many cells ran and
//! the largest number of cells that ran at the same time. `CORPUS_ONLY=name[,name]` restricts
//! the test to some notebooks (then the KNOWN_GAPS entries of the others are not checked);
//! `CORPUS_THREADS=N` sets how many notebooks are checked at once (default 2).

#![allow(
    clippy::print_stdout,
    reason = "the corpus test reports per-notebook parallelism and timings"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::Value;

use crate::common::{copy_dir, nbmemo_in, repo_root, test_python};

const NONDETERMINISTIC: &str = "# corpus: nondeterministic";

fn corpus_dir() -> PathBuf {
    repo_root().join("tests/corpus")
}

/// Notebooks of the corpus: `.ipynb` files, and `.py` files with `# %%` cell markers.
fn notebooks() -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(corpus_dir())
        .expect("read tests/corpus")
        .flatten()
    {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        let is_notebook = match path.extension().and_then(|ext| ext.to_str()) {
            Some("ipynb") => true,
            Some("py") => std::fs::read_to_string(&path)
                .unwrap_or_default()
                .lines()
                .any(|line| line.trim_end() == "# %%" || line.starts_with("# %% ")),
            _ => false,
        };
        if is_notebook {
            names.push(name);
        }
    }
    names.sort();
    names
}

/// `KNOWN_GAPS.txt`: `notebook: reason` per line; blank lines and `#` comments are ignored.
fn known_gaps() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(corpus_dir().join("KNOWN_GAPS.txt")).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (name, reason) = line.split_once(':').unwrap_or((line, ""));
            (name.trim().to_string(), reason.trim().to_string())
        })
        .collect()
}

/// A fresh copy of the corpus (data files, helper modules, notebooks) marked as a project root.
fn fresh_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    copy_dir(&corpus_dir(), dir.path());
    std::fs::create_dir_all(dir.path().join(".git")).expect("mark the project root");
    dir
}

// ---------------------------------------------------------------------------------------------
// Edits

struct EditStep {
    description: String,
    /// (code cell index, text to replace, replacement)
    edits: Vec<(usize, String, String)>,
}

fn edit_steps(notebook: &str) -> Vec<EditStep> {
    let stem = notebook.rsplit_once('.').map_or(notebook, |(stem, _)| stem);
    let path = corpus_dir().join(format!("{stem}.edits.json"));
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Vec::new();
    };
    let steps: Value = serde_json::from_str(&text)
        .unwrap_or_else(|err| panic!("{}: not JSON: {err}", path.display()));
    steps
        .as_array()
        .unwrap_or_else(|| panic!("{}: expected a list of steps", path.display()))
        .iter()
        .map(|step| EditStep {
            description: step["description"].as_str().unwrap_or("").to_string(),
            edits: step["edits"]
                .as_array()
                .unwrap_or_else(|| panic!("{}: a step without `edits`", path.display()))
                .iter()
                .map(|edit| {
                    (
                        edit["cell"].as_u64().expect("edit `cell`") as usize,
                        edit["replace"]
                            .as_str()
                            .expect("edit `replace`")
                            .to_string(),
                        edit["with"].as_str().expect("edit `with`").to_string(),
                    )
                })
                .collect(),
        })
        .collect()
}

/// Applies one step to the notebook file: in an `.ipynb`, each replacement happens in the
/// source of the given code cell; in a percent `.py`, in the whole file (where the text must
/// occur exactly once).
fn apply_step(path: &Path, step: &EditStep) {
    let text = std::fs::read_to_string(path).expect("read notebook");
    let is_ipynb = path.extension().is_some_and(|ext| ext == "ipynb");
    if !is_ipynb {
        let mut text = text;
        for (cell, old, new) in &step.edits {
            assert_eq!(
                text.matches(old.as_str()).count(),
                1,
                "{}: edit of cell {cell}: {old:?} must occur exactly once",
                path.display()
            );
            text = text.replacen(old.as_str(), new, 1);
        }
        std::fs::write(path, text).expect("write notebook");
        return;
    }
    let mut notebook: Value = serde_json::from_str(&text).expect("notebook JSON");
    let cells = notebook["cells"].as_array_mut().expect("cells");
    let mut code_cells: Vec<&mut Value> = cells
        .iter_mut()
        .filter(|cell| cell["cell_type"] == "code")
        .collect();
    for (index, old, new) in &step.edits {
        let cell = code_cells
            .get_mut(*index)
            .unwrap_or_else(|| panic!("{}: no code cell {index}", path.display()));
        let source = source_text(&cell["source"]);
        assert!(
            source.contains(old.as_str()),
            "{}: code cell {index} does not contain {old:?}:\n{source}",
            path.display()
        );
        let edited = source.replacen(old.as_str(), new, 1);
        cell["source"] = Value::Array(
            edited
                .split_inclusive('\n')
                .map(|line| Value::String(line.to_string()))
                .collect(),
        );
    }
    let mut out = serde_json::to_string_pretty(&notebook).expect("serialize");
    out.push('\n');
    std::fs::write(path, out).expect("write notebook");
}

fn source_text(source: &Value) -> String {
    match source {
        Value::String(text) => text.clone(),
        Value::Array(lines) => lines.iter().filter_map(Value::as_str).collect(),
        _ => String::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Runs

/// What one code cell left, in a comparable form.
#[derive(Debug, Clone, PartialEq)]
struct CellResult {
    /// `ok`, `error: NAME` or `skipped`.
    outcome: String,
    stdout: String,
    stderr: String,
    /// `(output_type, text/plain, image/png)` of each execute_result and display_data.
    rich: Vec<(String, String, String)>,
}

struct Normaliser {
    dirs: Vec<String>,
}

impl Normaliser {
    fn new(dirs: &[&Path]) -> Self {
        let mut out = Vec::new();
        for dir in dirs {
            out.push(dir.display().to_string());
            if let Ok(real) = std::fs::canonicalize(dir) {
                out.push(real.display().to_string());
            }
        }
        out.sort_by_key(|dir| std::cmp::Reverse(dir.len()));
        Normaliser { dirs: out }
    }

    fn text(&self, text: &str) -> String {
        let mut text = text.to_string();
        for dir in &self.dirs {
            text = text.replace(dir.as_str(), "<dir>");
        }
        normalise_addresses(&text)
    }

    /// stderr less the noise a first matplotlib import on a fresh machine prints.
    fn stderr(&self, text: &str) -> String {
        let kept: Vec<&str> = text
            .split_inclusive('\n')
            .filter(|line| !line.contains("Matplotlib is building the font cache"))
            .collect();
        self.text(&kept.concat())
    }
}

/// `0x7f3a…` (a memory address in a repr) becomes `0x…`.
fn normalise_addresses(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'0'
            && i + 2 < bytes.len()
            && bytes[i + 1] == b'x'
            && bytes[i + 2].is_ascii_hexdigit()
            && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric())
        {
            out.push_str("0x…");
            i += 2;
            while i < bytes.len() && bytes[i].is_ascii_hexdigit() {
                i += 1;
            }
            continue;
        }
        let ch = text[i..].chars().next().expect("char");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fn rich_outputs(outputs: &Value, norm: &Normaliser) -> Vec<(String, String, String)> {
    outputs
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|output| {
            matches!(
                output["output_type"].as_str(),
                Some("execute_result" | "display_data")
            )
        })
        .map(|output| {
            let data = &output["data"];
            (
                output["output_type"].as_str().unwrap_or("").to_string(),
                norm.text(&source_text(&data["text/plain"])),
                source_text(&data["image/png"]).replace('\n', ""),
            )
        })
        .collect()
}

/// Runs the reference on a fresh copy of `notebook` (the text of `edited`, if given).
fn reference(notebook: &str, edited: Option<&Path>) -> Result<Vec<CellResult>, String> {
    let dir = fresh_copy();
    let path = dir.path().join(notebook);
    if let Some(edited) = edited {
        std::fs::copy(edited, &path).expect("copy the edited notebook");
    }
    let mut command = Command::new(test_python());
    command
        .arg(corpus_dir().join("reference.py"))
        .arg(&path)
        .current_dir(dir.path())
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONSTARTUP")
        .env("NO_COLOR", "1");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("NBMEMO_") {
            command.env_remove(key);
        }
    }
    let output = command.output().expect("run reference.py");
    if !output.status.success() {
        return Err(format!(
            "reference.py failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let report: Value = serde_json::from_slice(&output.stdout).map_err(|err| {
        format!(
            "reference.py printed no JSON ({err}):\n{}",
            String::from_utf8_lossy(&output.stdout)
        )
    })?;
    let norm = Normaliser::new(&[dir.path()]);
    Ok(report["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .map(|cell| CellResult {
            outcome: match cell["error"]["ename"].as_str() {
                Some(ename) => format!("error: {ename}"),
                None => "ok".to_string(),
            },
            stdout: norm.text(cell["stdout"].as_str().unwrap_or("")),
            stderr: norm.stderr(cell["stderr"].as_str().unwrap_or("")),
            rich: rich_outputs(&cell["outputs"], &norm),
        })
        .collect())
}

/// One `nbmemo run --json` of the project's notebook.
struct NbmemoRun {
    cells: Vec<CellResult>,
    statuses: Vec<String>,
    reasons: Vec<String>,
    max_parallel: usize,
    wall_s: f64,
}

fn nbmemo_run(project: &Path, cache: &Path, notebook: &str) -> Result<NbmemoRun, String> {
    let python = test_python().display().to_string();
    let cache = cache.display().to_string();
    let started = Instant::now();
    let run = nbmemo_in(
        project,
        &[
            "run",
            notebook,
            "--python",
            &python,
            "--json",
            "-j",
            "2",
            "--cache-dir",
            &cache,
        ],
    );
    let wall_s = started.elapsed().as_secs_f64();
    if run.code != 0 && run.code != 1 {
        return Err(format!(
            "nbmemo exited with {}:\n{}\n{}",
            run.code, run.stderr, run.stdout
        ));
    }
    let report: Value = serde_json::from_str(&run.stdout)
        .map_err(|err| format!("nbmemo printed no JSON ({err}):\n{}", run.stdout))?;
    let norm = Normaliser::new(&[project]);
    let cells = report["cells"].as_array().expect("cells");
    let mut intervals = Vec::new();
    for cell in cells {
        if let (Some(start), Some(end)) =
            (cell["started_at"].as_f64(), cell["finished_at"].as_f64())
        {
            intervals.push((start, end));
        }
    }
    Ok(NbmemoRun {
        cells: cells
            .iter()
            .map(|cell| CellResult {
                outcome: match cell["status"].as_str() {
                    Some("failed") => {
                        format!("error: {}", cell["error"]["ename"].as_str().unwrap_or("?"))
                    }
                    Some("skipped") => "skipped".to_string(),
                    _ => "ok".to_string(),
                },
                stdout: norm.text(cell["stdout"].as_str().unwrap_or("")),
                stderr: norm.stderr(cell["stderr"].as_str().unwrap_or("")),
                rich: rich_outputs(&cell["outputs"], &norm),
            })
            .collect(),
        statuses: cells
            .iter()
            .map(|cell| cell["status"].as_str().unwrap_or("?").to_string())
            .collect(),
        reasons: cells
            .iter()
            .map(|cell| cell["reason"].as_str().unwrap_or("").to_string())
            .collect(),
        max_parallel: max_overlap(&intervals),
        wall_s,
    })
}

/// The largest number of `[start, end)` intervals that overlap at one instant.
fn max_overlap(intervals: &[(f64, f64)]) -> usize {
    let mut events: Vec<(f64, i32)> = Vec::new();
    for &(start, end) in intervals {
        events.push((start, 1));
        events.push((end, -1));
    }
    // Ends before starts at equal times: touching intervals do not overlap.
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut current, mut best) = (0i32, 0i32);
    for (_, delta) in events {
        current += delta;
        best = best.max(current);
    }
    best as usize
}

// ---------------------------------------------------------------------------------------------
// Comparison

/// The code cells of a notebook file (for the nondeterministic markers and the diff headings).
fn code_sources(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read notebook");
    if path.extension().is_some_and(|ext| ext == "ipynb") {
        let notebook: Value = serde_json::from_str(&text).expect("notebook JSON");
        return notebook["cells"]
            .as_array()
            .expect("cells")
            .iter()
            .filter(|cell| cell["cell_type"] == "code")
            .map(|cell| source_text(&cell["source"]))
            .collect();
    }
    // Percent format: enough to find markers and first lines (the reference parses for real).
    let mut cells = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim_end();
        if trimmed == "# %%" || trimmed.starts_with("# %% ") {
            if let Some(cell) = current.take() {
                cells.push(cell);
            }
            let is_code = !["[markdown]", "[md]", "[raw]"]
                .iter()
                .any(|kind| trimmed.contains(kind));
            current = is_code.then(String::new);
        } else if let Some(cell) = current.as_mut() {
            cell.push_str(line);
            cell.push('\n');
        }
    }
    cells.extend(current);
    cells
}

fn first_line(source: &str) -> String {
    let line = source
        .lines()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("")
        .trim();
    if line.chars().count() > 60 {
        format!("{}…", line.chars().take(60).collect::<String>())
    } else {
        line.to_string()
    }
}

fn show(text: &str) -> String {
    if text.is_empty() {
        return "    (nothing)".to_string();
    }
    let shown: Vec<String> = text.lines().take(12).map(|l| format!("    {l}")).collect();
    let more = text.lines().count().saturating_sub(12);
    if more > 0 {
        format!("{}\n    … {more} more lines", shown.join("\n"))
    } else {
        shown.join("\n")
    }
}

fn show_rich(rich: &[(String, String, String)]) -> String {
    if rich.is_empty() {
        return "    (no execute_result / display_data)".to_string();
    }
    rich.iter()
        .map(|(kind, plain, png)| {
            let image = if png.is_empty() {
                String::new()
            } else {
                format!(" + image/png ({} base64 chars)", png.len())
            };
            format!("    [{kind}{image}]\n{}", show(plain))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Differences between nbmemo's cells and the reference's, as readable paragraphs.
fn compare(sources: &[String], expected: &[CellResult], actual: &NbmemoRun) -> Vec<String> {
    let mut diffs = Vec::new();
    if expected.len() != actual.cells.len() {
        diffs.push(format!(
            "nbmemo reports {} code cells, the reference ran {}",
            actual.cells.len(),
            expected.len()
        ));
    }
    let mut reference_failed_before = false;
    for (index, (want, got)) in expected.iter().zip(&actual.cells).enumerate() {
        let source = sources.get(index).map(String::as_str).unwrap_or("");
        let heading = format!(
            "cell {index} `{}` ({}{})",
            first_line(source),
            actual.statuses[index],
            if actual.reasons[index].is_empty() {
                String::new()
            } else {
                format!(": {}", actual.reasons[index])
            }
        );
        let skipped_after_failure = got.outcome == "skipped" && reference_failed_before;
        reference_failed_before |= want.outcome != "ok";
        if skipped_after_failure {
            continue;
        }
        let mut parts = Vec::new();
        if want.outcome != got.outcome {
            parts.push(format!(
                "  outcome: expected {}, got {}",
                want.outcome, got.outcome
            ));
        }
        if !source.contains(NONDETERMINISTIC) {
            if want.stdout != got.stdout {
                parts.push(format!(
                    "  stdout differs\n  expected:\n{}\n  actual:\n{}",
                    show(&want.stdout),
                    show(&got.stdout)
                ));
            }
            if want.stderr != got.stderr {
                parts.push(format!(
                    "  stderr differs\n  expected:\n{}\n  actual:\n{}",
                    show(&want.stderr),
                    show(&got.stderr)
                ));
            }
            if want.rich != got.rich {
                let only_png = want.rich.len() == got.rich.len()
                    && want
                        .rich
                        .iter()
                        .zip(&got.rich)
                        .all(|(w, g)| w.0 == g.0 && w.1 == g.1);
                parts.push(format!(
                    "  {}\n  expected:\n{}\n  actual:\n{}",
                    if only_png {
                        "image/png differs"
                    } else {
                        "displayed outputs differ"
                    },
                    show_rich(&want.rich),
                    show_rich(&got.rich)
                ));
            }
        }
        if !parts.is_empty() {
            diffs.push(format!("{heading}\n{}", parts.join("\n")));
        }
    }
    diffs
}

// ---------------------------------------------------------------------------------------------
// The test

/// What happened to one notebook.
struct Outcome {
    name: String,
    /// One line per run: phase, statuses, parallelism.
    summary: Vec<String>,
    /// Mismatches, per phase.
    diffs: Vec<String>,
}

fn check_notebook(name: &str) -> Outcome {
    let project = fresh_copy();
    let cache = tempfile::tempdir().expect("cache dir");
    let path = project.path().join(name);
    let mut outcome = Outcome {
        name: name.to_string(),
        summary: Vec::new(),
        diffs: Vec::new(),
    };

    let mut phases: Vec<(String, Option<PathBuf>)> = vec![
        ("cold run".to_string(), None),
        ("cached run".to_string(), None),
    ];
    let steps = edit_steps(name);
    for (number, step) in steps.iter().enumerate() {
        phases.push((
            format!("edit {} ({})", number + 1, step.description),
            Some(path.clone()),
        ));
    }
    let mut expected: Option<Vec<CellResult>> = None;
    let mut step_iter = steps.iter();
    for (phase, edited) in phases {
        if edited.is_some() {
            apply_step(&path, step_iter.next().expect("a step per phase"));
            expected = None;
        }
        if expected.is_none() {
            match reference(name, edited.as_deref()) {
                Ok(cells) => expected = Some(cells),
                Err(err) => {
                    outcome.diffs.push(format!("{phase}: {err}"));
                    outcome.summary.push(format!("{phase}: reference failed"));
                    continue;
                }
            }
        }
        let want = expected.as_deref().expect("reference");
        match nbmemo_run(project.path(), cache.path(), name) {
            Ok(run) => {
                let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
                for status in &run.statuses {
                    *counts.entry(status.as_str()).or_default() += 1;
                }
                let counts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
                let diffs = compare(&code_sources(&path), want, &run);
                outcome.summary.push(format!(
                    "{phase}: {}; max {} cells at once; {:.1}s; {}",
                    counts.join(", "),
                    run.max_parallel,
                    run.wall_s,
                    if diffs.is_empty() {
                        "matches".to_string()
                    } else {
                        format!("{} cells differ", diffs.len())
                    }
                ));
                for diff in diffs {
                    outcome.diffs.push(format!("{phase}: {diff}"));
                }
            }
            Err(err) => {
                outcome.summary.push(format!("{phase}: nbmemo failed"));
                outcome.diffs.push(format!("{phase}: {err}"));
            }
        }
    }
    outcome
}

#[test]
#[expect(
    clippy::print_stdout,
    reason = "the per-notebook report (parallelism, known gaps) is the point of `--nocapture`"
)]
fn corpus_notebooks_run_like_sequential_execution() {
    let _machine = crate::common::machine();
    let started = Instant::now();
    let only: Option<Vec<String>> = std::env::var("CORPUS_ONLY").ok().map(|names| {
        names
            .split(',')
            .map(|name| name.trim().to_string())
            .filter(|name| !name.is_empty())
            .collect()
    });
    let probe = Command::new(test_python())
        .args(["-c", "import numpy, pandas, matplotlib, sklearn, seaborn"])
        .output()
        .expect("run the test Python");
    assert!(
        probe.status.success(),
        "{} lacks the corpus packages; install them with `{0} -m pip install -r \
         tests/corpus/requirements.txt` (`just setup` does):\n{}",
        test_python().display(),
        String::from_utf8_lossy(&probe.stderr)
    );
    let all = notebooks();
    assert!(all.len() >= 15, "the corpus has {} notebooks", all.len());
    let gaps = known_gaps();
    let mut problems = Vec::new();
    if only.is_none() {
        for name in gaps.keys() {
            if !all.contains(name) {
                problems.push(format!(
                    "KNOWN_GAPS.txt lists {name}, which is not a notebook of tests/corpus/"
                ));
            }
        }
    }
    let selected: Vec<String> = all
        .into_iter()
        .filter(|name| {
            only.as_ref().is_none_or(|only| {
                only.iter()
                    .any(|o| name == o || name.rsplit_once('.').is_some_and(|(s, _)| s == o))
            })
        })
        .collect();

    // Two notebooks at a time (each run uses `-j 2`): a notebook spends much of its time in one
    // worker importing libraries, so this keeps both cores busy. `CORPUS_THREADS` overrides.
    let threads = std::env::var("CORPUS_THREADS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(2)
        .max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<(Outcome, f64)>> = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(name) = selected.get(index) else {
                        break;
                    };
                    let notebook_started = Instant::now();
                    let outcome = check_notebook(name);
                    let seconds = notebook_started.elapsed().as_secs_f64();
                    results.lock().expect("results").push((outcome, seconds));
                }
            });
        }
    });
    let mut results = results.into_inner().expect("results");
    results.sort_by(|a, b| a.0.name.cmp(&b.0.name));

    let (mut matched, mut gap_count) = (0, 0);
    for (outcome, seconds) in &results {
        let name = &outcome.name;
        let gap = gaps.get(name);
        let verdict = match (outcome.diffs.is_empty(), gap) {
            (true, None) => {
                matched += 1;
                "matches".to_string()
            }
            (false, Some(_)) => {
                gap_count += 1;
                "mismatches (known gap)".to_string()
            }
            (true, Some(reason)) => {
                problems.push(format!(
                    "{name} now matches sequential execution in every run: remove it from \
                     tests/corpus/KNOWN_GAPS.txt (it was listed as: {reason})"
                ));
                "MATCHES but is listed in KNOWN_GAPS.txt".to_string()
            }
            (false, None) => {
                problems.push(format!(
                    "{name} differs from sequential execution:\n\n{}",
                    outcome.diffs.join("\n\n")
                ));
                "MISMATCHES".to_string()
            }
        };
        println!("{name} — {verdict} ({seconds:.1}s)");
        for line in &outcome.summary {
            println!("    {line}");
        }
        if let (Some(reason), Some(first)) = (gap, outcome.diffs.first()) {
            println!("    known gap: {reason}");
            let first: Vec<&str> = first.lines().take(8).collect();
            println!("    first difference: {}", first.join("\n      "));
        }
    }
    println!(
        "corpus: {} notebooks, {matched} match, {gap_count} known gaps, {:.1}s",
        selected.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(problems.is_empty(), "\n{}", problems.join("\n\n"));
}
