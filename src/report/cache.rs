//! What `nbmemo cache stats|gc|clear` print: text for people, JSON for scripts (a stable
//! interface: fields are only ever added).

use std::path::Path;

use serde_json::{Value, json};

use crate::store::{Collected, FORMAT_VERSION, LargeArtifact, Stats, Usage};

/// A byte count for people: `512 B`, `12.3 KiB`, `4.0 GiB`.
pub fn bytes(count: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if count < 1024 {
        return format!("{count} B");
    }
    let mut value = count as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// How long ago a Unix time was, for people: `5 minutes ago`.
fn ago(unix_s: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let seconds = now.saturating_sub(unix_s);
    let (count, unit) = match seconds {
        0..60 => return "just now".to_owned(),
        60..3600 => (seconds / 60, "minute"),
        3600..86400 => (seconds / 3600, "hour"),
        _ => (seconds / 86400, "day"),
    };
    let plural = if count == 1 { "" } else { "s" };
    format!("{count} {unit}{plural} ago")
}

fn plural(count: u64, one: &str, many: &str) -> String {
    if count == 1 {
        format!("{count} {one}")
    } else {
        format!("{count} {many}")
    }
}

fn use_label(artifact: &LargeArtifact) -> String {
    let Some(first) = artifact.uses.first() else {
        return "(no record uses it)".to_owned();
    };
    let place = match (&first.notebook, first.cell) {
        (Some(notebook), Some(cell)) => format!("{notebook} cell {cell}"),
        _ => format!("record {}", first.record.short(12)),
    };
    let what = match first.kind {
        "values" => format!("`{}`", first.name),
        "file" => format!("file `{}`", first.name),
        _ => "outputs".to_owned(),
    };
    let more = artifact.uses.len() - 1;
    if more == 0 {
        format!("{place}: {what}")
    } else {
        format!("{place}: {what} (+{more} more)")
    }
}

/// `nbmemo cache stats` as text; `others` are the directories of other format versions, with
/// their bytes.
pub fn stats_text(cache_dir: &Path, stats: &Stats, others: &[(String, u64)]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "cache `{}` (format v{FORMAT_VERSION})",
        cache_dir.display()
    );
    let _ = writeln!(
        out,
        "  records     {} ({} used by the last runs), {}, {}",
        stats.records,
        stats.records_current,
        plural(stats.manifests, "manifest", "manifests"),
        plural(stats.notebooks.len() as u64, "notebook", "notebooks"),
    );
    let [inline, inline_zstd, blob, blob_zstd] = stats.artifacts;
    let _ = writeln!(
        out,
        "  artifacts   {}: {} inline ({} compressed), {} in blobs/ ({} compressed)",
        inline + inline_zstd + blob + blob_zstd,
        inline + inline_zstd,
        inline_zstd,
        blob + blob_zstd,
        blob_zstd
    );
    let _ = writeln!(
        out,
        "  on disk     {} (database {}, blobs {}, other {})",
        bytes(stats.usage.total()),
        bytes(stats.usage.db_bytes),
        bytes(stats.usage.blob_bytes),
        bytes(stats.usage.other_bytes)
    );
    let _ = writeln!(
        out,
        "  payload     {} (artifacts {}, stored as {}); on disk {:.2}× the payload",
        bytes(stats.payload_bytes),
        bytes(stats.artifact_bytes),
        bytes(stats.artifact_stored_bytes),
        stats.disk_ratio()
    );
    let _ = writeln!(
        out,
        "  shared      {} used by several records ({} across notebooks), stored once: {} saved",
        plural(stats.shared_artifacts, "artifact", "artifacts"),
        stats.shared_between_notebooks,
        bytes(stats.dedup_saved_bytes)
    );
    let (hits, looked_up) = stats.hits();
    if looked_up == 0 {
        let _ = writeln!(out, "  hit rate    no runs recorded");
    } else {
        let last = stats.recent_runs.first().map_or(String::new(), |run| {
            let cached: u64 = run.notebooks.iter().map(|nb| nb.cached).sum();
            let all: u64 = run
                .notebooks
                .iter()
                .map(|nb| nb.cached + nb.ran + nb.failed)
                .sum();
            format!("; last run {cached} of {all} cached, {}", ago(run.unix_s))
        });
        let _ = writeln!(
            out,
            "  hit rate    {:.0}% of {} over the last {}{last}",
            100.0 * hits as f64 / looked_up as f64,
            plural(looked_up, "cell", "cells"),
            plural(stats.recent_runs.len() as u64, "run", "runs"),
        );
    }
    let _ = writeln!(
        out,
        "  last gc     {}",
        stats.last_gc_unix_s.map_or_else(|| "never".to_owned(), ago)
    );
    if !others.is_empty() {
        let listed: Vec<String> = others
            .iter()
            .map(|(name, size)| format!("{name} ({})", bytes(*size)))
            .collect();
        let _ = writeln!(
            out,
            "  other formats {} (left by other nbmemo versions; `nbmemo cache clear` removes them)",
            listed.join(", ")
        );
    }
    if !stats.largest.is_empty() {
        let _ = writeln!(out, "largest artifacts:");
        for artifact in &stats.largest {
            let _ = writeln!(
                out,
                "  {:>10}  {:<11} {:>10}  {}",
                bytes(artifact.bytes),
                artifact.encoding,
                bytes(artifact.stored_bytes),
                use_label(artifact)
            );
        }
    }
    if !stats.notebooks.is_empty() {
        let _ = writeln!(out, "notebooks:");
        for notebook in &stats.notebooks {
            let _ = writeln!(
                out,
                "  {}  {}, {} remembered, last run {}",
                notebook.notebook,
                plural(notebook.cells as u64, "code cell", "code cells"),
                plural(notebook.recent_runs as u64, "run", "runs"),
                ago(notebook.updated_unix_s)
            );
        }
    }
    out
}

fn usage_json(usage: &Usage) -> Value {
    json!({
        "total": usage.total(),
        "database": usage.db_bytes,
        "blobs": usage.blob_bytes,
        "blob_files": usage.blob_files,
        "other": usage.other_bytes,
    })
}

/// `nbmemo cache stats --json`.
pub fn stats_json(cache_dir: &Path, stats: &Stats, others: &[(String, u64)]) -> Value {
    let [inline, inline_zstd, blob, blob_zstd] = stats.artifacts;
    let (hits, looked_up) = stats.hits();
    json!({
        "cache_dir": cache_dir.display().to_string(),
        "root": stats.root.display().to_string(),
        "format_version": FORMAT_VERSION,
        "exists": true,
        "records": stats.records,
        "records_current": stats.records_current,
        "manifests": stats.manifests,
        "artifacts": {
            "total": inline + inline_zstd + blob + blob_zstd,
            "inline": inline,
            "inline_zstd": inline_zstd,
            "blob": blob,
            "blob_zstd": blob_zstd,
        },
        "bytes_on_disk": stats.usage.total(),
        "disk": usage_json(&stats.usage),
        "payload_bytes": stats.payload_bytes,
        "artifact_bytes": stats.artifact_bytes,
        "artifact_stored_bytes": stats.artifact_stored_bytes,
        "disk_to_payload": stats.disk_ratio(),
        "shared": {
            "artifacts": stats.shared_artifacts,
            "between_notebooks": stats.shared_between_notebooks,
            "saved_bytes": stats.dedup_saved_bytes,
        },
        "hit_rate": {
            "runs": stats.recent_runs.len(),
            "cells": looked_up,
            "cached": hits,
            "rate": if looked_up == 0 { Value::Null } else { json!(hits as f64 / looked_up as f64) },
        },
        "recent_runs": stats.recent_runs.iter().map(|run| json!({
            "unix_s": run.unix_s,
            "wall_s": run.wall_s,
            "notebooks": run.notebooks.iter().map(|nb| json!({
                "notebook": nb.notebook,
                "cached": nb.cached,
                "ran": nb.ran,
                "failed": nb.failed,
                "skipped": nb.skipped,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "largest": stats.largest.iter().map(|artifact| json!({
            "hash": artifact.hash.to_string(),
            "bytes": artifact.bytes,
            "stored_bytes": artifact.stored_bytes,
            "encoding": artifact.encoding,
            "uses": artifact.uses.iter().map(|user| json!({
                "notebook": user.notebook,
                "cell": user.cell,
                "kind": user.kind,
                "name": user.name,
                "record": user.record.to_string(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "notebooks": stats.notebooks.iter().map(|notebook| json!({
            "notebook": notebook.notebook,
            "cells": notebook.cells,
            "recent_runs": notebook.recent_runs,
            "updated_unix_s": notebook.updated_unix_s,
        })).collect::<Vec<_>>(),
        "created_unix_s": stats.created_unix_s,
        "last_gc_unix_s": stats.last_gc_unix_s,
        "other_versions": others.iter().map(|(name, size)| json!({
            "version": name,
            "bytes": size,
        })).collect::<Vec<_>>(),
    })
}

/// The JSON of the `cache` commands when there is no cache.
pub fn missing_json(cache_dir: &Path) -> Value {
    json!({
        "cache_dir": cache_dir.display().to_string(),
        "format_version": FORMAT_VERSION,
        "exists": false,
    })
}

/// `nbmemo cache gc` or `clear` as text; `verb` is `collected` or `cleared`.
pub fn collected_text(cache_dir: &Path, done: &Collected, verb: &str) -> String {
    let mut removed = vec![
        plural(done.records_removed, "record", "records"),
        plural(done.artifacts_removed, "artifact", "artifacts"),
        plural(done.manifests_removed, "manifest", "manifests"),
    ];
    if done.notebooks_removed > 0 {
        removed.push(plural(
            done.notebooks_removed,
            "notebook state",
            "notebook states",
        ));
    }
    if done.stray_files_removed > 0 {
        removed.push(plural(
            done.stray_files_removed,
            "stray file",
            "stray files",
        ));
    }
    let mut kept = format!(
        "kept {} and {}",
        plural(done.records_kept, "record", "records"),
        plural(done.artifacts_kept, "artifact", "artifacts")
    );
    if done.records_protected > 0 {
        kept.push_str(&format!(
            " ({} needed by the last runs)",
            done.records_protected
        ));
    }
    format!(
        "{verb} the cache `{}` in {:.2}s: removed {}; {kept}\non disk: {} → {} (payload {}, {:.2}×)\n",
        cache_dir.display(),
        done.duration.as_secs_f64(),
        removed.join(", "),
        bytes(done.before.total()),
        bytes(done.after.total()),
        bytes(done.payload_after),
        if done.payload_after == 0 {
            0.0
        } else {
            done.after.total() as f64 / done.payload_after as f64
        }
    )
}

/// `nbmemo cache gc --json` or `clear --json`.
pub fn collected_json(cache_dir: &Path, done: &Collected, max_size: Option<u64>) -> Value {
    json!({
        "cache_dir": cache_dir.display().to_string(),
        "format_version": FORMAT_VERSION,
        "exists": true,
        "removed": {
            "records": done.records_removed,
            "artifacts": done.artifacts_removed,
            "manifests": done.manifests_removed,
            "notebooks": done.notebooks_removed,
            "stray_files": done.stray_files_removed,
        },
        "kept": {
            "records": done.records_kept,
            "records_needed_by_last_runs": done.records_protected,
            "artifacts": done.artifacts_kept,
        },
        "before": usage_json(&done.before),
        "after": usage_json(&done.after),
        "payload_bytes": done.payload_after,
        "max_size": max_size,
        "over_bound": done.over_bound,
        "duration_s": done.duration.as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::bytes;

    #[test]
    fn byte_counts() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 << 30), "5.0 GiB");
    }
}
