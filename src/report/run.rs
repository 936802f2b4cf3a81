//! `nbmemo run` output: a line per cell as it finishes, failures together at the end, a summary;
//! or, with `--json`, one JSON object (a stable interface: fields are only ever added).

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Value, json};

use crate::exec::scheduler::{CellOutcome, CellStatus, Observer};

use super::Printer;
use super::plan::first_line;
use super::progress::Progress;

/// Prints cell lines as cells finish (unless JSON output was asked for), under a progress bar
/// on a terminal.
pub struct RunReporter<'a> {
    printer: &'a Printer,
    /// Per notebook: its path and its code cells' sources.
    notebooks: Vec<(std::path::PathBuf, Vec<&'a str>)>,
    stream_lines: bool,
    show_output: bool,
    hide_cached: bool,
    progress: Progress,
    running: std::collections::BTreeSet<(usize, usize)>,
}

impl<'a> RunReporter<'a> {
    /// A reporter for notebooks (path and code cell sources each).
    pub fn new(
        printer: &'a Printer,
        notebooks: Vec<(std::path::PathBuf, Vec<&'a str>)>,
        stream_lines: bool,
        show_output: bool,
    ) -> Self {
        let total = notebooks.iter().map(|(_, sources)| sources.len()).sum();
        let progress = Progress::new(total, stream_lines);
        RunReporter {
            printer,
            notebooks,
            stream_lines,
            show_output,
            hide_cached: false,
            progress,
            running: std::collections::BTreeSet::new(),
        }
    }
}

impl RunReporter<'_> {
    /// Lists no line for a cached cell (`watch` after its first run).
    pub fn hiding_cached(mut self, hide: bool) -> Self {
        self.hide_cached = hide;
        self
    }
}

impl Observer for RunReporter<'_> {
    fn cell_started(&mut self, unit: usize, index: usize) {
        self.running.insert((unit, index));
        self.progress.message(self.running_message());
    }

    fn cell_finished(&mut self, unit: usize, index: usize, outcome: &CellOutcome) {
        self.running.remove(&(unit, index));
        self.progress.inc();
        self.progress.message(self.running_message());
        if !self.stream_lines || (self.hide_cached && outcome.status == CellStatus::Cached) {
            return;
        }
        let Some((path, sources)) = self.notebooks.get(unit) else {
            return;
        };
        let source = sources.get(index).copied().unwrap_or("");
        let mut line = cell_line(index, source, outcome);
        if self.notebooks.len() > 1 {
            line = format!("{}:{line}", path.display());
        }
        if self.show_output && !outcome.stdout.is_empty() {
            for text in outcome.stdout.lines() {
                let _ = writeln!(line, "      │ {text}");
            }
        }
        let printer = self.printer;
        self.progress.suspend(|| {
            let _ = printer.stdout(&line);
        });
    }
}

impl RunReporter<'_> {
    fn running_message(&self) -> String {
        if self.running.is_empty() {
            return String::new();
        }
        let cells: Vec<String> = self
            .running
            .iter()
            .map(|(unit, index)| {
                if self.notebooks.len() > 1 {
                    format!("{}:{index}", self.notebooks[*unit].0.display())
                } else {
                    index.to_string()
                }
            })
            .collect();
        format!("running cell {}", cells.join(", "))
    }
}

/// One line: index, status, time, first line of the cell, why.
pub fn cell_line(index: usize, source: &str, outcome: &CellOutcome) -> String {
    let time = match outcome.status {
        CellStatus::Ran | CellStatus::Failed if outcome.started_at.is_some() => {
            format_seconds(outcome.duration_s)
        }
        _ => String::new(),
    };
    let status = match outcome.status {
        CellStatus::Ran => "ran",
        CellStatus::Cached => "cached",
        CellStatus::Failed => "FAILED",
        CellStatus::Skipped => "skipped",
    };
    let mut text = format!(
        "{index:>4}  {status:<7} {time:>7}  {}",
        truncate(first_line(source), 48)
    );
    if !outcome.reason.is_empty() {
        let _ = write!(text, "  ({})", outcome.reason);
    }
    text.push('\n');
    text
}

/// Every failed cell's traceback (or reason), for the end of the run.
pub fn failures(path: &Path, sources: &[&str], outcomes: &[CellOutcome]) -> String {
    let mut out = String::new();
    for (index, outcome) in outcomes.iter().enumerate() {
        if outcome.status != CellStatus::Failed {
            continue;
        }
        let source = sources.get(index).copied().unwrap_or("");
        let place = match outcome.error.as_ref().and_then(|err| err.line) {
            Some(line) => format!("cell {index}, line {line}"),
            None => format!("cell {index}"),
        };
        let _ = writeln!(
            out,
            "\nerror: `{}`, {place} failed: {}",
            path.display(),
            first_line(source)
        );
        match &outcome.error {
            Some(err) => {
                for line in &err.traceback {
                    let _ = writeln!(out, "  {line}");
                }
            }
            None => {
                let _ = writeln!(out, "  {}", outcome.reason);
            }
        }
        if !outcome.stderr.trim().is_empty() && outcome.error.is_none() {
            let _ = writeln!(out, "  stderr:\n{}", indent(&outcome.stderr, "    "));
        }
    }
    out
}

/// Counts by status.
#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    /// Cells executed.
    pub ran: usize,
    /// Cells replayed.
    pub cached: usize,
    /// Cells failed.
    pub failed: usize,
    /// Cells skipped.
    pub skipped: usize,
    /// Time the cached cells took when they ran.
    pub saved_s: f64,
    /// Wall time of the run.
    pub wall_s: f64,
}

impl Summary {
    /// Tallies outcomes.
    pub fn of(outcomes: &[CellOutcome], wall_s: f64) -> Summary {
        let mut summary = Summary {
            wall_s,
            ..Summary::default()
        };
        for outcome in outcomes {
            match outcome.status {
                CellStatus::Ran => summary.ran += 1,
                CellStatus::Cached => {
                    summary.cached += 1;
                    summary.saved_s += outcome.duration_s;
                }
                CellStatus::Failed => summary.failed += 1,
                CellStatus::Skipped => summary.skipped += 1,
            }
        }
        summary
    }

    /// "12 cells: 9 cached (saved 41.2s), 3 ran, 0 failed, 0 skipped in 1.30s".
    pub fn line(&self, path: &Path) -> String {
        let total = self.ran + self.cached + self.failed + self.skipped;
        let saved = if self.cached > 0 {
            format!(" (saved {})", format_seconds(self.saved_s))
        } else {
            String::new()
        };
        format!(
            "{}: {total} {}: {} cached{saved}, {} ran, {} failed, {} skipped in {}\n",
            path.display(),
            if total == 1 { "cell" } else { "cells" },
            self.cached,
            self.ran,
            self.failed,
            self.skipped,
            format_seconds(self.wall_s)
        )
    }
}

/// The run as the stable JSON object.
pub fn to_json(
    path: &Path,
    sources: &[&str],
    outcomes: &[CellOutcome],
    summary: &Summary,
) -> Value {
    let cells: Vec<Value> = outcomes
        .iter()
        .enumerate()
        .map(|(index, outcome)| {
            json!({
                "index": index,
                "status": outcome.status.as_str(),
                "stdout": outcome.stdout,
                "stderr": outcome.stderr,
                "started_at": outcome.started_at,
                "finished_at": outcome.finished_at,
                "reason": outcome.reason,
                "first_line": first_line(sources.get(index).copied().unwrap_or("")),
                "duration_s": outcome.duration_s,
                "key": outcome.key.map(|key| key.to_string()),
                "error": outcome.error.as_ref().map(|err| json!({
                    "ename": err.ename, "evalue": err.evalue, "traceback": err.traceback, "line": err.line,
                })),
                "outputs": outcome.outputs,
                "mutated": outcome.mutated,
                "unpicklable": outcome.unpicklable.iter().map(|(name, type_name)| json!({"name": name, "type": type_name})).collect::<Vec<_>>(),
                "files_read": outcome.file_access.read,
                "files_written": outcome.file_access.written,
            })
        })
        .collect();
    json!({
        "notebook": path.display().to_string(),
        "cells": cells,
        "summary": {
            "ran": summary.ran,
            "cached": summary.cached,
            "failed": summary.failed,
            "skipped": summary.skipped,
            "wall_s": round3(summary.wall_s),
            "saved_s": round3(summary.saved_s),
        },
    })
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// `0.52s`, `12.3s`, `2m05s`.
pub fn format_seconds(seconds: f64) -> String {
    if seconds < 10.0 {
        format!("{seconds:.2}s")
    } else if seconds < 60.0 {
        format!("{seconds:.1}s")
    } else {
        let whole = seconds.round() as u64;
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        format!("{text:<max$}")
    } else {
        let mut short: String = text.chars().take(max - 1).collect();
        short.push('…');
        short
    }
}

fn indent(text: &str, prefix: &str) -> String {
    text.lines()
        .map(|line| format!("{prefix}{line}"))
        .collect::<Vec<_>>()
        .join("\n")
}
