//! `nbmemo watch` with the real file-event backend (issue #7): a save re-runs exactly the
//! invalidated cells, rename-saves and no-op saves, a syntax error then its fix, a data file,
//! and Ctrl-C leaving no worker behind. The tests hold the machine lock: they time out on
//! events, and a loaded machine must not starve them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use serde_json::Value;

use crate::common::{Project, machine, statuses};

/// A running `nbmemo watch --json`, its JSON lines arriving on a channel.
struct Watch {
    child: Child,
    lines: Receiver<Value>,
}

impl Watch {
    fn start(project: &Project, notebook: &Path, extra: &[&str]) -> Watch {
        Watch::start_with(&project.python, project, notebook, extra)
    }

    fn start_with(python: &Path, project: &Project, notebook: &Path, extra: &[&str]) -> Watch {
        let mut command = Command::new(env!("CARGO_BIN_EXE_nbmemo"));
        command
            .arg("watch")
            .arg(notebook)
            .args(["--json", "--python"])
            .arg(python)
            .args(extra)
            .current_dir(project.ctx.dir.path())
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("NBMEMO_") {
                command.env_remove(key);
            }
        }
        let mut child = command.spawn().expect("start nbmemo watch");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|err| panic!("not one JSON object per line ({err}): {line}"));
                if sender.send(value).is_err() {
                    break;
                }
            }
        });
        Watch { child, lines }
    }

    /// The next run's report (waits up to 60 s).
    fn next(&self) -> Value {
        self.lines
            .recv_timeout(Duration::from_secs(60))
            .expect("a run report from watch within 60 s")
    }

    /// Asserts that no run report arrives within `wait`.
    fn quiet_for(&self, wait: Duration) {
        if let Ok(report) = self.lines.recv_timeout(wait) {
            panic!("expected no run, got {report:#}");
        }
    }

    fn interrupt(&mut self) -> Option<i32> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
        for _ in 0..200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("watch did not end within 10 s of SIGINT");
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stdout(report: &Value, idx: usize) -> &str {
    report["cells"][idx]["stdout"].as_str().unwrap_or("")
}

fn percent(cells: &[&str]) -> String {
    cells
        .iter()
        .map(|cell| format!("# %%\n{cell}\n\n"))
        .collect()
}

/// Saves as editors that write a temporary file and rename it over the notebook do.
fn save_by_rename(path: &Path, text: &str) {
    let temp: PathBuf = path.with_extension("py.swp");
    std::fs::write(&temp, text).expect("write the temporary file");
    std::fs::rename(&temp, path).expect("rename over the notebook");
}

#[test]
fn a_save_reruns_exactly_the_invalidated_cells() {
    let _machine = machine();
    let project = Project::new();
    let cells = [
        "base = 10",
        "double = base * 2\nprint(double)",
        "other = 'unrelated'\nprint(other)",
        "print(double + 1)",
    ];
    let notebook = project.ctx.write("nb.py", percent(&cells));
    let watch = Watch::start(&project, &notebook, &[]);
    assert_eq!(statuses(&watch.next()), ["ran"; 4]);
    let started = project.python_starts();

    // Rewrite one cell in place: it and its dependants run, the rest is replayed.
    let mut edited = cells;
    edited[0] = "base = 20";
    std::fs::write(&notebook, percent(&edited)).expect("save");
    let report = watch.next();
    assert_eq!(statuses(&report), ["ran", "ran", "cached", "ran"]);
    assert_eq!(stdout(&report, 3), "41\n");

    // A save by rename (vim, VS Code, JetBrains) is seen as well.
    edited[2] = "other = 'still unrelated'\nprint(other)";
    save_by_rename(&notebook, &percent(&edited));
    let report = watch.next();
    assert_eq!(statuses(&report), ["cached", "cached", "ran", "cached"]);

    // The same bytes again, and a comment-only edit: nothing runs.
    std::fs::write(&notebook, percent(&edited)).expect("save");
    watch.quiet_for(Duration::from_millis(800));
    edited[1] = "double = base * 2  # twice\nprint(double)";
    std::fs::write(&notebook, percent(&edited)).expect("save");
    let report = watch.next();
    assert_eq!(statuses(&report), ["cached"; 4], "{report:#}");
    assert_eq!(
        project.python_starts(),
        started,
        "workers stay warm between saves"
    );
}

#[test]
fn a_syntax_error_is_reported_and_the_fix_runs() {
    let _machine = machine();
    let project = Project::new();
    let notebook = project.ctx.write("nb.py", percent(&["x = 1", "print(x)"]));
    let watch = Watch::start(&project, &notebook, &[]);
    assert_eq!(statuses(&watch.next()), ["ran", "ran"]);

    std::fs::write(&notebook, percent(&["x = (1", "print(x)"])).expect("save");
    let broken = watch.next();
    assert_eq!(statuses(&broken), ["failed", "skipped"]);
    let error = &broken["cells"][0]["error"];
    assert_eq!(error["ename"], "SyntaxError", "{broken:#}");
    assert_eq!(error["line"], 1, "{broken:#}");

    std::fs::write(&notebook, percent(&["x = 2", "print(x)"])).expect("save");
    let fixed = watch.next();
    assert_eq!(statuses(&fixed), ["ran", "ran"]);
    assert_eq!(stdout(&fixed, 1), "2\n");
}

#[test]
fn a_data_file_a_cell_read_is_watched_too() {
    let _machine = machine();
    let project = Project::new();
    project.ctx.write("data.txt", "one\n");
    let notebook = project.ctx.write(
        "nb.py",
        percent(&[
            "text = open('data.txt').read()",
            "print(text.upper())",
            "print('independent')",
        ]),
    );
    let watch = Watch::start(&project, &notebook, &[]);
    assert_eq!(statuses(&watch.next()), ["ran"; 3]);
    project.ctx.write("data.txt", "two\n");
    let report = watch.next();
    assert_eq!(statuses(&report), ["ran", "ran", "cached"]);
    assert_eq!(stdout(&report, 1), "TWO\n\n");
}

#[test]
fn polling_sees_saves_too() {
    let _machine = machine();
    let project = Project::new();
    let notebook = project.ctx.write("nb.py", percent(&["print(1)"]));
    let watch = Watch::start(&project, &notebook, &["--poll", "100"]);
    assert_eq!(statuses(&watch.next()), ["ran"]);
    std::fs::write(&notebook, percent(&["print(2)"])).expect("save");
    let report = watch.next();
    assert_eq!(stdout(&report, 0), "2\n");
}

#[test]
fn ctrl_c_stops_running_cells_and_leaves_no_worker() {
    let _machine = machine();
    let project = Project::new();
    // A wrapper that records the pid of every worker it starts (exec keeps the pid).
    let pids = project.ctx.path("worker-pids.log");
    let wrapper = project.ctx.write(
        "bin/pid-python",
        format!(
            "#!/bin/sh\necho $$ >> '{}'\nexec '{}' \"$@\"\n",
            pids.display(),
            crate::common::test_python().display()
        ),
    );
    crate::common::make_executable(&wrapper);
    let notebook = project.ctx.write(
        "nb.py",
        percent(&[
            "import os, time\nopen('started.txt', 'w').write('yes')\ntime.sleep(60)\nprint('done')",
            "print('other')",
        ]),
    );
    let mut watch = Watch::start_with(&wrapper, &project, &notebook, &["-j", "2"]);
    // Wait until the long cell is running.
    for _ in 0..600 {
        if project.ctx.path("started.txt").exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(project.ctx.path("started.txt").exists(), "the cell started");
    let code = watch.interrupt();
    assert_eq!(code, Some(130));
    let started = std::fs::read_to_string(&pids).unwrap_or_default();
    assert!(!started.trim().is_empty(), "workers were started");
    for pid in started.split_whitespace() {
        let alive = Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z ");
        assert!(!alive, "worker {pid} is still running");
    }
    // Nothing of the interrupted cell was cached: a run would run it.
    let python = wrapper.display().to_string();
    let plan = project.ctx.nbmemo(&[
        "plan",
        notebook.to_str().expect("UTF-8"),
        "--format",
        "json",
        "--python",
        &python,
    ]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert_eq!(plan.json()["cells"][0]["cache"], "would run");
}
