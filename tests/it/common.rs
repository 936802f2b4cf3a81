//! `TestContext`: a temporary project, a scrubbed environment, and helpers to run `nbmemo`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary project directory and a way to run `nbmemo` in it.
pub struct TestContext {
    pub dir: tempfile::TempDir,
}

/// What a finished `nbmemo` process left behind.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|err| {
            panic!(
                "stdout is not JSON ({err}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl TestContext {
    pub fn new() -> Self {
        TestContext {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a file (text or bytes) into the project and returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create dirs");
        }
        std::fs::write(&path, contents).expect("write file");
        path
    }

    /// Runs `nbmemo ARGS` in the project directory with a scrubbed environment.
    pub fn nbmemo(&self, args: &[&str]) -> Run {
        nbmemo_in(self.dir.path(), args)
    }
}

/// Runs `nbmemo ARGS` in `dir` without the caller's `NBMEMO_*`, `PYTHONPATH` or
/// `PYTHONSTARTUP`.
pub fn nbmemo_in(dir: &Path, args: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nbmemo"));
    command.args(args).current_dir(dir);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("NBMEMO_") || key == "PYTHONPATH" || key == "PYTHONSTARTUP" {
            command.env_remove(&*key);
        }
    }
    command.env("NO_COLOR", "1");
    command.output().expect("run nbmemo").into()
}

/// The repository root (for the examples).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// An nbformat 4.5 notebook with the given code cells.
pub fn ipynb(cells: &[&str]) -> String {
    let cells: Vec<serde_json::Value> = cells
        .iter()
        .enumerate()
        .map(|(idx, source)| {
            serde_json::json!({
                "cell_type": "code",
                "execution_count": null,
                "id": format!("cell{idx}"),
                "metadata": {},
                "outputs": [],
                "source": source,
            })
        })
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({
        "cells": cells,
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }))
    .expect("json")
}

/// The Python the tests run workers with: `NBMEMO_TEST_PYTHON` (set by `just test` to the
/// project's `.venv`), else `.venv/bin/python` if present, else `python3`.
pub fn test_python() -> PathBuf {
    if let Some(python) = std::env::var_os("NBMEMO_TEST_PYTHON") {
        return std::path::absolute(PathBuf::from(python)).expect("absolute path");
    }
    let venv = repo_root().join(".venv/bin/python");
    if venv.exists() {
        return venv;
    }
    crate::common::which("python3").unwrap_or_else(|| PathBuf::from("/usr/bin/python3"))
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Held by tests that load the machine (the corpus) and by tests that assert that cells
/// overlapped in time, so a heavy test running alongside cannot starve the workers of a timing
/// test (cargo runs the tests of one binary in parallel threads).
pub static MACHINE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes [`MACHINE`] (a poisoned lock is still a lock: another test's failure is not ours).
pub fn machine() -> std::sync::MutexGuard<'static, ()> {
    MACHINE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A project with a Python wrapper that logs every interpreter start, so tests can assert how
/// many Python processes a command started; the project root is marked with `.git`.
pub struct Project {
    pub ctx: TestContext,
    pub python: PathBuf,
    starts: PathBuf,
}

impl Project {
    pub fn new() -> Self {
        let ctx = TestContext::new();
        let starts = ctx.path("python-starts.log");
        let wrapper = ctx.write(
            "bin/python",
            format!(
                "#!/bin/sh\necho start >> '{}'\nexec '{}' \"$@\"\n",
                starts.display(),
                test_python().display()
            ),
        );
        make_executable(&wrapper);
        std::fs::create_dir_all(ctx.path(".git")).expect("mark the project root");
        Project {
            ctx,
            python: wrapper,
            starts,
        }
    }

    pub fn write_notebook(&self, name: &str, cells: &[&str]) -> PathBuf {
        self.ctx.write(name, ipynb(cells))
    }

    /// `nbmemo SUBCOMMAND --python WRAPPER ARGS`.
    pub fn command(&self, subcommand: &str, args: &[&str]) -> Run {
        let python = self.python.display().to_string();
        let mut full = vec![subcommand, "--python", &python];
        full.extend_from_slice(args);
        self.ctx.nbmemo(&full)
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.command("run", args)
    }

    pub fn check(&self, args: &[&str]) -> Run {
        self.command("check", args)
    }

    /// `nbmemo run ARGS --json`, which must exit 0 or 1; its JSON.
    pub fn run_json(&self, args: &[&str]) -> serde_json::Value {
        let mut full = args.to_vec();
        full.push("--json");
        let run = self.run(&full);
        assert!(
            run.code == 0 || run.code == 1,
            "exit {}: {}\n{}",
            run.code,
            run.stderr,
            run.stdout
        );
        run.json()
    }

    pub fn read_json(&self, name: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(self.ctx.path(name)).expect("read the JSON report");
        serde_json::from_str(&text).expect("the JSON report parses")
    }

    pub fn python_starts(&self) -> usize {
        std::fs::read_to_string(&self.starts).map_or(0, |log| log.lines().count())
    }
}

pub fn make_executable(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut permissions = std::fs::metadata(path).expect("stat").permissions();
        permissions.set_mode(0o755);
        std::fs::set_permissions(path, permissions).expect("chmod");
    }
}

/// The `status` of each cell of a `run --json` report.
pub fn statuses(report: &serde_json::Value) -> Vec<String> {
    cell_field(report, "status")
}

/// The `stdout` of each cell of a `run --json` report.
pub fn stdouts(report: &serde_json::Value) -> Vec<String> {
    cell_field(report, "stdout")
}

/// The `reason` of each cell of a `run --json` report.
pub fn reasons(report: &serde_json::Value) -> Vec<String> {
    cell_field(report, "reason")
}

fn cell_field(report: &serde_json::Value, field: &str) -> Vec<String> {
    report["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .map(|cell| cell[field].as_str().unwrap_or("").to_string())
        .collect()
}

/// Copies a folder tree (`__pycache__` folders left out).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            if entry.file_name() != "__pycache__" {
                copy_dir(&entry.path(), &target);
            }
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// Each cell of sequential top-to-bottom execution in one interpreter (`sequential.py`): its
/// `stdout` and `error`.
pub fn sequential_cells(notebook: &Path) -> Vec<serde_json::Value> {
    let output = Command::new(test_python())
        .arg(repo_root().join("tests/it/sequential.py"))
        .arg(notebook)
        .output()
        .expect("run the sequential reference");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let cells: serde_json::Value = serde_json::from_slice(&output.stdout).expect("reference JSON");
    cells.as_array().expect("cells").clone()
}

/// Per-cell stdout of sequential top-to-bottom execution in one interpreter.
pub fn sequential(notebook: &Path) -> Vec<String> {
    sequential_cells(notebook)
        .iter()
        .map(|cell| cell["stdout"].as_str().unwrap_or("").to_string())
        .collect()
}
