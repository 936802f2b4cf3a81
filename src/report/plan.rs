//! `nbmemo plan` output: text, JSON and Graphviz dot.
//!
//! The JSON object is a stable interface (README, `nbmemo plan --help`): fields are only ever
//! added, never renamed.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Value, json};

use crate::analysis::{CellAnalysis, NameSet};
use crate::exec::scheduler::Prediction;
use crate::graph::Graph;

use super::Diagnostic;

/// One code cell as the plan shows it.
#[derive(Debug, Clone, Copy)]
pub struct PlanCell<'a> {
    /// Position among all the notebook's cells (markdown included).
    pub source_index: usize,
    /// The cell's source.
    pub source: &'a str,
    /// Its analysis.
    pub analysis: &'a CellAnalysis,
}

/// Everything a plan report shows.
#[derive(Debug, Clone, Copy)]
pub struct Plan<'a> {
    /// The notebook's path as the user gave it.
    pub path: &'a Path,
    /// The code cells, in order (index = position among code cells).
    pub cells: &'a [PlanCell<'a>],
    /// The dependency graph over `cells`.
    pub graph: &'a Graph,
    /// Whether a run would replay or run each cell, when the cache could tell.
    pub predictions: Option<&'a [Prediction]>,
}

impl Plan<'_> {
    /// Every syntax error of every cell, in order.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        self.cells
            .iter()
            .enumerate()
            .flat_map(|(idx, cell)| {
                cell.analysis
                    .syntax_errors
                    .iter()
                    .map(move |err| Diagnostic {
                        cell: idx,
                        line: err.line,
                        column: err.column,
                        message: err.message.clone(),
                    })
            })
            .collect()
    }

    fn prediction(&self, idx: usize) -> Option<&Prediction> {
        self.predictions
            .and_then(|predictions| predictions.get(idx))
    }

    /// The plan as the stable JSON object.
    pub fn to_json(&self) -> Value {
        let cells: Vec<Value> = self
            .cells
            .iter()
            .zip(&self.graph.cells)
            .enumerate()
            .map(|(idx, (cell, node))| {
                let diagnostics: Vec<Value> = cell
                    .analysis
                    .syntax_errors
                    .iter()
                    .map(|err| {
                        json!({"cell": idx, "line": err.line, "column": err.column, "message": err.message})
                    })
                    .collect();
                json!({
                    "index": idx,
                    "reads": names(&node.reads),
                    "writes": names(&node.writes),
                    "may_mutate": names(&node.may_mutate),
                    "depends_on": node.depends_on.keys().collect::<Vec<_>>(),
                    "wave": node.wave,
                    "barrier": node.is_barrier(),
                    "diagnostics": diagnostics,
                    "source_index": cell.source_index,
                    "first_line": first_line(cell.source),
                    "barrier_reasons": node.barriers.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "inputs": node.inputs,
                    "cache": self.prediction(idx).map(|prediction| match prediction {
                        Prediction::Cached => "cached",
                        Prediction::WouldRun(_) => "would run",
                        Prediction::Skipped(_) => "skipped",
                    }),
                    "reason": self.prediction(idx).map(|prediction| match prediction {
                        Prediction::Cached => "",
                        Prediction::WouldRun(reason) | Prediction::Skipped(reason) => reason.as_str(),
                    }),
                })
            })
            .collect();
        let critical = self.graph.critical_path();
        json!({
            "notebook": self.path.display().to_string(),
            "cells": cells,
            "waves": self.graph.waves(),
            "critical_path": critical.len(),
            "critical_path_cells": critical,
        })
    }

    /// The plan as a table: one line per code cell, then waves and the critical path.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let n_cells = self.cells.len();
        let rows: Vec<[String; 4]> = self
            .graph
            .cells
            .iter()
            .enumerate()
            .map(|(idx, node)| {
                let deps = node
                    .depends_on
                    .keys()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",");
                let mut flow = format!("{} → {}", list(&node.reads), list(&node.writes));
                if !node.may_mutate.is_empty() {
                    let _ = write!(flow, "  (may mutate {})", list(&node.may_mutate));
                }
                if node.is_barrier() {
                    let reasons: Vec<String> =
                        node.barriers.iter().map(ToString::to_string).collect();
                    flow = format!("barrier: {}", reasons.join("; "));
                }
                [
                    idx.to_string(),
                    node.wave.to_string(),
                    if deps.is_empty() { "-".into() } else { deps },
                    flow,
                ]
            })
            .collect();
        let width = |col: usize, header: &str| {
            rows.iter()
                .map(|row| row[col].chars().count())
                .max()
                .unwrap_or(0)
                .max(header.len())
        };
        let (w0, w1, w2) = (width(0, "cell"), width(1, "wave"), width(2, "depends on"));
        let _ = writeln!(
            out,
            "{:>w0$}  {:>w1$}  {:<w2$}  reads → writes",
            "cell", "wave", "depends on"
        );
        for (row, cell) in rows.iter().zip(self.cells) {
            let _ = writeln!(
                out,
                "{:>w0$}  {:>w1$}  {:<w2$}  {}    # {}",
                row[0],
                row[1],
                row[2],
                row[3],
                truncate(first_line(cell.source), 40)
            );
        }
        let critical = self.graph.critical_path();
        let chain = critical
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" → ");
        let _ = writeln!(
            out,
            "\n{n_cells} code {}, {} {}, critical path {} {}{}",
            plural(n_cells, "cell", "cells"),
            self.graph.waves(),
            plural(self.graph.waves(), "wave", "waves"),
            critical.len(),
            plural(critical.len(), "cell", "cells"),
            if critical.is_empty() {
                String::new()
            } else {
                format!(" ({chain})")
            }
        );
        out
    }

    /// The plan as a Graphviz digraph.
    pub fn to_dot(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "digraph {} {{",
            dot_string(&self.path.display().to_string())
        );
        let _ = writeln!(
            out,
            "  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];"
        );
        for (idx, (cell, node)) in self.cells.iter().zip(&self.graph.cells).enumerate() {
            let label = format!("[{idx}] {}", truncate(first_line(cell.source), 40));
            let style = if node.is_barrier() {
                ", style=filled, fillcolor=lightgray"
            } else {
                ""
            };
            let _ = writeln!(out, "  c{idx} [label={}{style}];", dot_string(&label));
        }
        for (idx, node) in self.graph.cells.iter().enumerate() {
            for (dep, names) in &node.depends_on {
                if names.is_empty() {
                    let _ = writeln!(out, "  c{dep} -> c{idx} [style=dashed];");
                } else {
                    let _ = writeln!(
                        out,
                        "  c{dep} -> c{idx} [label={}];",
                        dot_string(&list(names))
                    );
                }
            }
        }
        out.push_str("}\n");
        out
    }
}

fn names(set: &NameSet) -> Vec<&str> {
    set.iter().map(String::as_str).collect()
}

fn list(set: &NameSet) -> String {
    if set.is_empty() {
        "-".to_string()
    } else {
        set.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The first non-blank line of a cell's source, trimmed.
pub fn first_line(source: &str) -> &str {
    source
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("")
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut short: String = text.chars().take(max - 1).collect();
        short.push('…');
        short
    }
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

fn dot_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            _ => out.push(ch),
        }
    }
    out.push('"');
    out
}
