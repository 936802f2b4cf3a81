//! `nbmemo check`: find the notebooks under paths and run them all through the cache in one
//! scheduler (one worker pool, one store), report every failure together, and write JUnit XML
//! and JSON reports for CI. With `--outputs-fresh`, execute nothing and check instead that the
//! outputs stored in `.ipynb` files are those of the current code ([`fresh`]).

mod fresh;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::Value;
use tracing::instrument;

use crate::cli::CheckArgs;
use crate::discover::{self, Kinds};
use crate::exec::scheduler::CellOutcome;
use crate::notebook::write::write_atomically;
use crate::report::Printer;
use crate::report::junit::{self, Suite};
use crate::report::run::{Summary, failures, format_seconds, to_json};

use super::ExitStatus;
use super::run::{Finished, RunSettings, execute};

/// Runs `nbmemo check`.
#[instrument(skip_all)]
pub fn check(args: &CheckArgs, printer: &Printer) -> ExitStatus {
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    let kinds = if args.outputs_fresh {
        Kinds::Ipynb
    } else {
        Kinds::All
    };
    let found = match discover::find_notebooks(&paths, &args.exclude, kinds) {
        Ok(found) => found,
        Err(err) => {
            printer.error(&err.to_string());
            return ExitStatus::Error;
        }
    };
    let mut status = ExitStatus::Success;
    for error in &found.errors {
        printer.error(error);
        status = ExitStatus::Error;
    }
    for warning in &found.warnings {
        printer.warning(warning);
    }
    for script in &found.plain_scripts {
        tracing::info!(
            "skipping `{}`: not a notebook (no `# %%` cell marker){}",
            script.display(),
            if args.outputs_fresh {
                " or not an `.ipynb`"
            } else {
                ""
            }
        );
    }
    if found.notebooks.is_empty() && status == ExitStatus::Success {
        let shown: Vec<String> = paths
            .iter()
            .map(|path| format!("`{}`", path.display()))
            .collect();
        let what = if args.outputs_fresh {
            "`.ipynb` notebooks"
        } else {
            "notebooks"
        };
        let mut message = format!("no {what} found under {}", shown.join(", "));
        if !found.plain_scripts.is_empty() && !args.outputs_fresh {
            message.push_str(
                "\n  hint: a `.py` file is a notebook when it has `# %%` cell marker lines (jupytext percent format)",
            );
        }
        printer.warning(&message);
    }
    if args.outputs_fresh {
        let fresh = if found.notebooks.is_empty() {
            ExitStatus::Success
        } else {
            fresh::check_outputs(&found.notebooks, args, printer)
        };
        return worst(status, fresh);
    }
    let (run_status, finished, wall_s) = if found.notebooks.is_empty() {
        (ExitStatus::Success, Vec::new(), 0.0)
    } else {
        let Ok(memory_limit) = super::run::memory_limit_arg(args.memory_limit.as_deref(), printer)
        else {
            return ExitStatus::Error;
        };
        let settings = RunSettings {
            force: args.force,
            jobs: args.jobs,
            timeout: args.timeout,
            memory_limit,
            python: args.python.clone(),
            cache_dir: args.cache_dir.clone(),
            inplace: false,
            // No per-cell lines: check prints one line per notebook.
            json: true,
            show_output: false,
            hide_cached: false,
        };
        let start = Instant::now();
        let (run_status, finished) = execute(&found.notebooks, &settings, printer);
        (run_status, finished, start.elapsed().as_secs_f64())
    };
    status = worst(status, run_status);
    let summaries: Vec<Summary> = finished
        .iter()
        .map(|run| Summary {
            wall_s: notebook_time(&run.outcomes),
            ..run.summary
        })
        .collect();
    print_text(&finished, &summaries, wall_s, printer);
    if let Some(path) = &args.json {
        let reports: Vec<Value> = finished
            .iter()
            .zip(&summaries)
            .map(|(run, summary)| {
                let sources: Vec<&str> = run.sources.iter().map(String::as_str).collect();
                to_json(&run.path, &sources, &run.outcomes, summary)
            })
            .collect();
        let mut text = serde_json::to_string_pretty(&Value::Array(reports)).unwrap_or_default();
        text.push('\n');
        if let Err(message) = write_report(path, &text) {
            printer.error(&message);
            status = ExitStatus::Error;
        }
    }
    if let Some(path) = &args.junit {
        let suites: Vec<Suite<'_>> = finished
            .iter()
            .zip(&summaries)
            .map(|(run, summary)| Suite {
                path: &run.path,
                sources: &run.sources,
                outcomes: &run.outcomes,
                time_s: summary.wall_s,
            })
            .collect();
        if let Err(message) = write_report(path, &junit::render(&suites, wall_s)) {
            printer.error(&message);
            status = ExitStatus::Error;
        }
    }
    status
}

/// One line per notebook and a total on stdout (unless `-q`); every failure on stderr.
fn print_text(finished: &[Finished], summaries: &[Summary], wall_s: f64, printer: &Printer) {
    if !printer.is_quiet() {
        let mut lines = String::new();
        for (run, summary) in finished.iter().zip(summaries) {
            lines.push_str(&summary.line(&run.path));
        }
        if printer.stdout(&lines).is_err() {
            return;
        }
    }
    let mut all_failures = String::new();
    for run in finished {
        let sources: Vec<&str> = run.sources.iter().map(String::as_str).collect();
        all_failures.push_str(&failures(&run.path, &sources, &run.outcomes));
    }
    if !all_failures.is_empty() {
        all_failures.push('\n');
        printer.diagnostic(&all_failures);
    }
    if !printer.is_quiet() && finished.len() > 1 {
        let mut total = Summary {
            wall_s,
            ..Summary::default()
        };
        for run in finished {
            total.ran += run.summary.ran;
            total.cached += run.summary.cached;
            total.failed += run.summary.failed;
            total.skipped += run.summary.skipped;
            total.saved_s += run.summary.saved_s;
        }
        let cells = total.ran + total.cached + total.failed + total.skipped;
        let saved = if total.cached > 0 {
            format!(" (saved {})", format_seconds(total.saved_s))
        } else {
            String::new()
        };
        let _ = printer.stdout(&format!(
            "{} notebooks, {cells} cells: {} cached{saved}, {} ran, {} failed, {} skipped in {}\n",
            finished.len(),
            total.cached,
            total.ran,
            total.failed,
            total.skipped,
            format_seconds(wall_s)
        ));
    }
}

/// A notebook's time in a run of several: from its first cell starting to its last one
/// finishing (0 when everything was replayed).
fn notebook_time(outcomes: &[CellOutcome]) -> f64 {
    let started = outcomes
        .iter()
        .filter_map(|outcome| outcome.started_at)
        .reduce(f64::min);
    let finished = outcomes
        .iter()
        .filter_map(|outcome| outcome.finished_at)
        .reduce(f64::max);
    match (started, finished) {
        (Some(started), Some(finished)) if finished > started => finished - started,
        _ => 0.0,
    }
}

/// Writes a report file atomically, creating its folder.
fn write_report(path: &Path, contents: &str) -> Result<(), String> {
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .map_err(|err| format!("failed to create `{}`: {err}", parent.display()))?;
    }
    write_atomically(path, contents.as_bytes())
        .map_err(|err| format!("failed to write `{}`: {err}", path.display()))
}

fn worst(a: ExitStatus, b: ExitStatus) -> ExitStatus {
    match (a, b) {
        (ExitStatus::Error, _) | (_, ExitStatus::Error) => ExitStatus::Error,
        (ExitStatus::Failure, _) | (_, ExitStatus::Failure) => ExitStatus::Failure,
        _ => ExitStatus::Success,
    }
}
