//! `nbmemo cache stats|gc|clear`, and the collection `run` and `check` do by themselves when a
//! run leaves the cache above its size bound.
//!
//! The size bound comes from `--max-size`, else `NBMEMO_CACHE_MAX_SIZE`, else `max-size` under
//! `[tool.nbmemo]` in the project's `pyproject.toml`, else [`DEFAULT_MAX_SIZE`].

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cli::{CacheArgs, CacheClearArgs, CacheCommand, CacheGcArgs, CacheOptions};
use crate::env_vars::NBMEMO_CACHE_MAX_SIZE;
use crate::project;
use crate::report::Printer;
use crate::report::cache as render;
use crate::store::{FORMAT_VERSION, GcPolicy, RECENT_RUNS_MAX, Store};

use super::ExitStatus;

/// The size bound when none is configured.
pub const DEFAULT_MAX_SIZE: u64 = 5 << 30;

/// How many runs of each notebook a collection keeps by default (`--keep-runs`).
pub const DEFAULT_KEEP_RUNS: usize = 3;

/// How long a record stays by default after its last use, unless the size bound needs the room
/// (`--max-age`).
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// A collection `run` starts when the cache is above its bound goes down to this fraction of
/// it, so that the next few runs do not collect again.
const AUTO_TARGET: f64 = 0.9;

/// Runs `nbmemo cache`.
pub fn cache(args: &CacheArgs, printer: &Printer) -> ExitStatus {
    let result = match &args.command {
        CacheCommand::Stats(stats) => run_stats(&stats.options, printer),
        CacheCommand::Gc(gc) => run_gc(gc, printer),
        CacheCommand::Clear(clear) => run_clear(clear, printer),
    };
    match result {
        Ok(status) => status,
        Err(message) => {
            printer.error(&message);
            ExitStatus::Error
        }
    }
}

/// The cache directory and the project root the `cache` commands act on: `--cache-dir` (or
/// `NBMEMO_CACHE_DIR`), else `.nbmemo` at the project root of `anchor` (a notebook) or of the
/// current folder. The project root is `None` when the cache directory was given.
fn locate(options: &CacheOptions, anchor: Option<&Path>) -> (PathBuf, Option<PathBuf>) {
    let root = match anchor {
        Some(notebook) => project::project_root(notebook),
        None => project::folder_root(Path::new(".")),
    };
    match &options.cache_dir {
        Some(dir) => (dir.clone(), None),
        None => (root.join(".nbmemo"), Some(root)),
    }
}

/// Whether `cache_dir` holds a store of this format version.
fn exists(cache_dir: &Path) -> bool {
    cache_dir
        .join("cache")
        .join(format!("v{FORMAT_VERSION}"))
        .join("cache.redb")
        .is_file()
}

/// Opens the store as a run does: a holder is reported by its pid, then waited for.
fn open(cache_dir: &Path, options: &CacheOptions, printer: &Printer) -> Result<Store, String> {
    let wait = Duration::try_from_secs_f64(options.wait.max(0.0)).unwrap_or(Duration::MAX);
    match Store::open(cache_dir, Duration::ZERO) {
        Ok(store) => Ok(store),
        Err(crate::store::Error::Busy { pid, .. }) if !wait.is_zero() => {
            printer.warning(&format!(
                "the cache `{}` is in use by another nbmemo process (pid {pid}); waiting for it",
                cache_dir.display()
            ));
            Store::open(cache_dir, wait).map_err(|err| describe(&err))
        }
        Err(err) => Err(describe(&err)),
    }
}

fn describe(err: &crate::store::Error) -> String {
    match err.hint() {
        Some(hint) => format!("{err}\n  hint: {hint}"),
        None => err.to_string(),
    }
}

fn print_json(printer: &Printer, value: &serde_json::Value) {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    let _ = printer.stdout(&text);
}

fn run_stats(options: &CacheOptions, printer: &Printer) -> Result<ExitStatus, String> {
    let (cache_dir, _) = locate(options, None);
    if !exists(&cache_dir) {
        if options.json {
            print_json(printer, &render::missing_json(&cache_dir));
        } else {
            let _ = printer.stdout(&format!("no cache at `{}`\n", cache_dir.display()));
        }
        return Ok(ExitStatus::Success);
    }
    let store = open(&cache_dir, options, printer)?;
    let stats = store.stats().map_err(|err| describe(&err))?;
    let others = other_versions(&cache_dir);
    if options.json {
        print_json(printer, &render::stats_json(&cache_dir, &stats, &others));
    } else {
        let _ = printer.stdout(&render::stats_text(&cache_dir, &stats, &others));
    }
    Ok(ExitStatus::Success)
}

fn run_gc(args: &CacheGcArgs, printer: &Printer) -> Result<ExitStatus, String> {
    let options = &args.options;
    let (cache_dir, root) = locate(options, None);
    let max_age = parse_age(&args.max_age).map_err(|err| format!("invalid --max-age: {err}"))?;
    let max_size = match &args.max_size {
        Some(text) => parse_size(text).map_err(|err| format!("invalid --max-size: {err}"))?,
        None => max_size_setting(
            &root
                .clone()
                .unwrap_or_else(|| project::folder_root(Path::new("."))),
        )?,
    };
    if !exists(&cache_dir) {
        if options.json {
            print_json(printer, &render::missing_json(&cache_dir));
        } else {
            let _ = printer.stdout(&format!("no cache at `{}`\n", cache_dir.display()));
        }
        return Ok(ExitStatus::Success);
    }
    let keep_runs = usize::from(args.keep_runs).min(RECENT_RUNS_MAX);
    let policy = GcPolicy {
        keep_runs,
        max_age,
        max_size: Some(max_size),
        project_root: root,
        room_to_grow: false,
    };
    let mut store = open(&cache_dir, options, printer)?;
    let collected = store.collect(&policy).map_err(|err| describe(&err))?;
    if collected.over_bound {
        printer.warning(&format!(
            "the last {keep_runs} runs of the notebooks need more than the size bound ({}): the cache takes {}",
            render::bytes(max_size),
            render::bytes(collected.after.total())
        ));
    }
    if options.json {
        print_json(
            printer,
            &render::collected_json(&cache_dir, &collected, Some(max_size)),
        );
    } else if !printer.is_quiet() {
        let _ = printer.stdout(&render::collected_text(&cache_dir, &collected, "collected"));
    }
    Ok(ExitStatus::Success)
}

fn run_clear(args: &CacheClearArgs, printer: &Printer) -> Result<ExitStatus, String> {
    let options = &args.options;
    let (cache_dir, _) = locate(options, args.notebook.as_deref());
    if !exists(&cache_dir) {
        if options.json {
            print_json(printer, &render::missing_json(&cache_dir));
        } else {
            let _ = printer.stdout(&format!("no cache at `{}`\n", cache_dir.display()));
        }
        return Ok(ExitStatus::Success);
    }
    let mut store = open(&cache_dir, options, printer)?;
    let cleared = match &args.notebook {
        None => {
            let mut cleared = store.clear().map_err(|err| describe(&err))?;
            cleared.stray_files_removed += remove_other_versions(&cache_dir, printer);
            cleared
        }
        Some(notebook) => {
            let id = project::notebook_id(notebook);
            match store.clear_notebook(&id).map_err(|err| describe(&err))? {
                Some(cleared) => cleared,
                None => {
                    printer.warning(&format!(
                        "the cache `{}` has nothing for `{id}`",
                        cache_dir.display()
                    ));
                    if options.json {
                        print_json(
                            printer,
                            &render::collected_json(&cache_dir, &Default::default(), None),
                        );
                    }
                    return Ok(ExitStatus::Success);
                }
            }
        }
    };
    if options.json {
        print_json(printer, &render::collected_json(&cache_dir, &cleared, None));
    } else if !printer.is_quiet() {
        let _ = printer.stdout(&render::collected_text(&cache_dir, &cleared, "cleared"));
    }
    Ok(ExitStatus::Success)
}

/// The directories of other format versions in `cache_dir/cache/` (left by another nbmemo
/// version), with the bytes of their files.
fn other_versions(cache_dir: &Path) -> Vec<(String, u64)> {
    let mut found = Vec::new();
    let Ok(entries) = fs_err::read_dir(cache_dir.join("cache")) else {
        return found;
    };
    let current = format!("v{FORMAT_VERSION}");
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_version = name.len() > 1
            && name.starts_with('v')
            && name[1..].bytes().all(|byte| byte.is_ascii_digit());
        if is_version && name != current && entry.path().is_dir() {
            found.push((name, dir_bytes(&entry.path())));
        }
    }
    found.sort();
    found
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = fs_err::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Removes the directories of other format versions that no process holds (their lock file is
/// free); returns how many it removed.
fn remove_other_versions(cache_dir: &Path, printer: &Printer) -> u64 {
    let mut removed = 0;
    for (name, _) in other_versions(cache_dir) {
        let dir = cache_dir.join("cache").join(&name);
        let lock = fs_err::OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.join("cache.lock"));
        // Held while the directory goes, so that no process of that version starts using it.
        let held = match &lock {
            Ok(file) => file.file().try_lock().is_ok(),
            Err(_) => true,
        };
        if !held {
            printer.warning(&format!(
                "`{}` is in use by another nbmemo process; left in place",
                dir.display()
            ));
            continue;
        }
        match fs_err::remove_dir_all(&dir) {
            Ok(()) => removed += 1,
            Err(err) => printer.warning(&format!("failed to remove `{}`: {err}", dir.display())),
        }
    }
    removed
}

/// At the end of a run: when the store is above its size bound, collects it (with the default
/// policy) down to [`AUTO_TARGET`] of the bound. Cheap when it is not: the sizes of the
/// database file and of the blob files. Never fails the run: problems are warnings.
pub(crate) fn collect_if_over_bound(store: &mut Store, project_root: &Path, printer: &Printer) {
    let bound = match max_size_setting(project_root) {
        Ok(bound) => bound,
        Err(message) => {
            printer.warning(&message);
            DEFAULT_MAX_SIZE
        }
    };
    let usage = match store.usage() {
        Ok(usage) => usage,
        Err(err) => {
            tracing::warn!("cannot measure the cache: {err}");
            return;
        }
    };
    if usage.total() <= bound {
        return;
    }
    let start = Instant::now();
    let policy = GcPolicy {
        keep_runs: DEFAULT_KEEP_RUNS,
        max_age: DEFAULT_MAX_AGE,
        max_size: Some((bound as f64 * AUTO_TARGET) as u64),
        project_root: None,
        // The next run's first write doubles the compacted database file: leave it the room,
        // or every run would collect again.
        room_to_grow: true,
    };
    match store.collect(&policy) {
        Ok(collected) => {
            tracing::info!("collected the cache in {:.2?}", start.elapsed());
            printer.status(&format!(
                "cache: {} was above its {} bound; collected down to {} in {:.2}s",
                render::bytes(usage.total()),
                render::bytes(bound),
                render::bytes(collected.after.total()),
                collected.duration.as_secs_f64()
            ));
            if collected.over_bound {
                printer.warning(&format!(
                    "the last {DEFAULT_KEEP_RUNS} runs of the notebooks need more than the cache's size bound ({}); raise it with `{NBMEMO_CACHE_MAX_SIZE}` or `[tool.nbmemo] max-size` in pyproject.toml",
                    render::bytes(bound)
                ));
            }
        }
        Err(err) => printer.warning(&format!("failed to collect the cache: {err}")),
    }
}

/// The configured size bound: `NBMEMO_CACHE_MAX_SIZE`, else `[tool.nbmemo] max-size` in
/// `project_root/pyproject.toml`, else [`DEFAULT_MAX_SIZE`]. An invalid setting is an error
/// naming where it comes from.
pub fn max_size_setting(project_root: &Path) -> Result<u64, String> {
    if let Some(value) = std::env::var_os(NBMEMO_CACHE_MAX_SIZE) {
        let value = value.to_string_lossy();
        return parse_size(&value)
            .map_err(|err| format!("invalid `{NBMEMO_CACHE_MAX_SIZE}`: {err}"));
    }
    let path = project_root.join("pyproject.toml");
    let Ok(text) = fs_err::read_to_string(&path) else {
        return Ok(DEFAULT_MAX_SIZE);
    };
    let table: toml::Table = toml::from_str(&text)
        .map_err(|err| format!("failed to read `{}`: {}", path.display(), err.message()))?;
    let value = table
        .get("tool")
        .and_then(|tool| tool.get("nbmemo"))
        .and_then(|nbmemo| nbmemo.get("max-size"));
    let invalid = |err: String| {
        format!(
            "invalid `max-size` under `[tool.nbmemo]` in `{}`: {err}",
            path.display()
        )
    };
    match value {
        None => Ok(DEFAULT_MAX_SIZE),
        Some(toml::Value::String(text)) => parse_size(text).map_err(invalid),
        Some(toml::Value::Integer(bytes)) => {
            u64::try_from(*bytes).map_err(|_| invalid("expected a size".to_owned()))
        }
        Some(_) => Err(invalid(
            "expected a size such as \"2GiB\" or a number of bytes".to_owned(),
        )),
    }
}

/// Parses a size: a number (fractions allowed) and a unit: `B`; `KB`, `MB`, `GB`, `TB` (powers
/// of 1000); `KiB`, `MiB`, `GiB`, `TiB`, or `K`, `M`, `G`, `T` alone (powers of 1024); case and
/// spaces do not matter. A number without a unit is bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let split = compact
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(compact.len());
    let (number, unit) = compact.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size (such as 500MB or 2GiB)"))?;
    let multiplier: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "unknown unit `{unit}` in `{text}` (use B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
            ));
        }
    };
    let bytes = (number * multiplier).round();
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("`{text}` is out of range"));
    }
    Ok(bytes as u64)
}

/// Parses an age: `0`, or a number and a unit: `s`, `m`, `h`, `d`, `w`.
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("`{text}` needs a unit: s, m, h, d or w (such as 7d)"))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not an age (such as 12h or 7d)"))?;
    let seconds = match unit.trim() {
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        "w" => 7.0 * 86400.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}` (use s, m, h, d or w)"
            ));
        }
    };
    Duration::try_from_secs_f64(number * seconds).map_err(|_| format!("`{text}` is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("123"), Ok(123));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("2 G"), Ok(2 << 30));
        assert_eq!(parse_size("1.5MB"), Ok(1_500_000));
        assert_eq!(parse_size("500mb"), Ok(500_000_000));
        assert_eq!(parse_size("10KiB"), Ok(10_240));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5 parsecs").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn ages() {
        assert_eq!(parse_age("0"), Ok(Duration::ZERO));
        assert_eq!(parse_age("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_age("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_age("7d"), Ok(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_age("2w"), Ok(Duration::from_secs(14 * 86400)));
        assert!(parse_age("7").is_err());
        assert!(parse_age("7y").is_err());
    }

    #[test]
    fn max_size_from_pyproject() {
        let temp = tempfile::tempdir().expect("temp dir");
        // The variable would win: these tests run with it unset (the suite does not set it).
        if std::env::var_os(NBMEMO_CACHE_MAX_SIZE).is_some() {
            return;
        }
        assert_eq!(max_size_setting(temp.path()), Ok(DEFAULT_MAX_SIZE));
        let pyproject = temp.path().join("pyproject.toml");
        fs_err::write(&pyproject, "[project]\nname = \"x\"\n").expect("write");
        assert_eq!(max_size_setting(temp.path()), Ok(DEFAULT_MAX_SIZE));
        fs_err::write(&pyproject, "[tool.nbmemo]\nmax-size = \"300MiB\"\n").expect("write");
        assert_eq!(max_size_setting(temp.path()), Ok(300 << 20));
        fs_err::write(&pyproject, "[tool.nbmemo]\nmax-size = 4096\n").expect("write");
        assert_eq!(max_size_setting(temp.path()), Ok(4096));
        fs_err::write(&pyproject, "[tool.nbmemo]\nmax-size = \"lots\"\n").expect("write");
        let err = max_size_setting(temp.path()).expect_err("invalid");
        assert!(
            err.contains("[tool.nbmemo]") && err.contains("pyproject.toml"),
            "{err}"
        );
    }
}
