//! Writing execution results back into an `.ipynb` file, byte for byte as
//! `jupyter nbconvert --execute --inplace` (nbclient, then `nbformat.writes`) would.
//!
//! [`render_with_results`] takes the document the reader kept ([`Notebook::document`]),
//! replaces the `outputs` and `execution_count` of every code cell, and serializes it the way
//! `nbformat` 5.x does (`nbformat/v4/nbjson.py` and `nbformat/v4/rwbase.py`):
//!
//! - multiline strings are normalized as a read followed by a write would: lists of strings are
//!   joined (`rejoin_lines`), then split into lines that keep their terminators, at the line
//!   boundaries of Python's `str.splitlines` (`split_lines`): the `source` of every cell; the
//!   `text` of stream outputs; and, in output `data` and cell `attachments`, the values of
//!   `text/*`, `application/javascript` and `image/svg+xml`. JSON types (`application/json`,
//!   `application/*+json`) keep their value (even a list of strings), and every other type
//!   (images, PDFs, ...) becomes one string;
//! - transient fields are dropped (`strip_transient`): `orig_nbformat`, `orig_nbformat_minor`
//!   and `signature` in the notebook metadata, `trusted` in cell metadata;
//! - `json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False, separators=(",", ": "))`
//!   plus a trailing newline: keys sorted by code point at every level, one space of indent per
//!   level, `[]` and `{}` for empty containers, non-ASCII characters as they are but control
//!   characters escaped as Python does (`\n`, `\t`, ..., else `\u001b`), integers as written
//!   and floats as Python's `repr` (`1e-05`, `3.0`, `1e+16`);
//! - cell ids as `nbformat` validation repairs them (4.5 and later): a cell without an id, or
//!   with the id of an earlier cell, gets a new one. `nbformat` draws random ids; these are
//!   deterministic (8 hex digits of an FNV-1a hash of the cell's position and source), so that
//!   writing the same results twice gives the same file;
//! - an nbformat 3 notebook (upgraded to 4.0 on read) is written as nbformat 4.5, as
//!   `nbformat.read(..., as_version=4)` upgrades it: `nbformat_minor` becomes 5 and every cell
//!   gets an id (as above). Its multiline strings that were split without line terminators are
//!   joined with `\n` (`nbformat/v3/rwbase.py`, `_join_lines`). An nbformat 4.0 to 4.4 notebook
//!   keeps its minor version and gets no ids, as with nbconvert.
//!
//! Departures from nbconvert, on purpose: nbclient records timing metadata
//! (`metadata.execution` with `iopub.status.busy`, `shell.execute_reply` and other timestamps)
//! in every executed cell, and the kernel's `language_info` in the notebook metadata; neither is
//! added here (the timestamps would make every run a diff), and metadata already in the file is
//! kept as it is. nbclient leaves a code cell with a blank source untouched, while here every code
//! cell without a result is cleared. Execution counts are the caller's.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Map, Number, Value};

use super::error::{Location, NotebookError, json_type_name};
use super::{Notebook, NotebookFormat};

/// The result of executing one code cell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CellResult {
    /// nbformat 4 output dicts (`stream`, `display_data`, `execute_result`, `error`), in order;
    /// multiline strings may be plain strings or lists of lines.
    pub outputs: Vec<Value>,
    /// The cell's `execution_count`; `None` writes `null`.
    pub execution_count: Option<u64>,
}

/// The minor version `nbformat` gives a notebook it upgrades from nbformat 3.
const UPGRADED_MINOR: u64 = 5;

/// Returns the new contents of an `.ipynb` file: `notebook.document` where every code cell `i`
/// that has a result `results[i]` (indexed by position in `notebook.cells`) gets its `outputs`
/// and `execution_count`, and every other code cell gets `outputs: []` and
/// `execution_count: null` (as a fresh nbconvert run that did not reach it). Results of
/// markdown and raw cells, and results past the last cell, are ignored. Everything else
/// (metadata, ids, attachments, markdown, unknown fields) is kept, and the whole document is
/// normalized and serialized as `nbformat.write` does (see the module docs).
///
/// No timing metadata is recorded (nbclient writes `metadata.execution` timestamps into every
/// cell it runs; they would make every run a diff).
///
/// # Errors
///
/// A notebook without a document (a percent `.py` script), or a document that is not a
/// notebook: its top level or a cell is not an object, or `cells` is missing or not an array.
/// The reader never produces such a document.
pub fn render_with_results(
    notebook: &Notebook,
    results: &[Option<CellResult>],
) -> Result<String, NotebookError> {
    let path = &notebook.path;
    let Some(document) = &notebook.document else {
        return Err(NotebookError::WrongType {
            path: path.clone(),
            at: Location::Notebook,
            field: "document".to_owned(),
            expected: "a Jupyter `.ipynb` document to write outputs into".to_owned(),
            found: "a jupytext percent script".to_owned(),
        });
    };
    let mut document = document.clone();
    let Value::Object(top) = &mut document else {
        return Err(NotebookError::NotAnObject {
            path: path.clone(),
            at: Location::Notebook,
            found: json_type_name(&document).to_owned(),
        });
    };
    let from_v3 = matches!(
        notebook.format,
        NotebookFormat::Ipynb {
            upgraded_from: Some(3),
            ..
        }
    );
    if from_v3 {
        top.insert("nbformat_minor".to_owned(), Value::from(UPGRADED_MINOR));
    }
    let with_ids = top.get("nbformat").and_then(Value::as_u64) == Some(4)
        && top
            .get("nbformat_minor")
            .and_then(Value::as_u64)
            .is_some_and(|minor| minor >= 5);
    if let Some(Value::Object(metadata)) = top.get_mut("metadata") {
        for key in ["orig_nbformat", "orig_nbformat_minor", "signature"] {
            metadata.shift_remove(key);
        }
    }
    let cells = match top.get_mut("cells") {
        Some(Value::Array(cells)) => cells,
        Some(other) => {
            return Err(NotebookError::WrongType {
                path: path.clone(),
                at: Location::Notebook,
                field: "cells".to_owned(),
                expected: "an array".to_owned(),
                found: json_type_name(other).to_owned(),
            });
        }
        None => {
            return Err(NotebookError::MissingField {
                path: path.clone(),
                at: Location::Notebook,
                field: "cells".to_owned(),
            });
        }
    };
    for (cell_idx, cell) in cells.iter_mut().enumerate() {
        let Value::Object(cell) = cell else {
            return Err(NotebookError::NotAnObject {
                path: path.clone(),
                at: Location::Cell(cell_idx),
                found: json_type_name(cell).to_owned(),
            });
        };
        let result = results.get(cell_idx).and_then(Option::as_ref);
        update_cell(cell, result, from_v3);
    }
    if with_ids {
        repair_cell_ids(cells);
    }
    let mut out = String::new();
    write_json(&mut out, &document, 0);
    out.push('\n');
    Ok(out)
}

/// Normalizes one cell as `nbformat` reads and writes it, and sets the outputs and execution
/// count of a code cell.
fn update_cell(cell: &mut Map<String, Value>, result: Option<&CellResult>, from_v3: bool) {
    let join = if from_v3 { join_v3_lines } else { join_lines };
    if let Some(source) = cell.get_mut("source") {
        if let Some(joined) = join_strings(source, join) {
            *source = Value::String(joined);
        }
        if let Value::String(text) = source {
            *source = split_lines(text);
        }
    }
    if from_v3
        && let Some(rendered) = cell.get_mut("rendered")
        && let Some(joined) = join_strings(rendered, join_v3_lines)
    {
        *rendered = Value::String(joined);
    }
    if let Some(Value::Object(metadata)) = cell.get_mut("metadata") {
        metadata.shift_remove("trusted");
    }
    if let Some(Value::Object(attachments)) = cell.get_mut("attachments") {
        for attachment in attachments.values_mut() {
            if let Value::Object(bundle) = attachment {
                normalize_mimebundle(bundle);
            }
        }
    }
    if cell.get("cell_type").and_then(Value::as_str) == Some("code") {
        let (outputs, execution_count) = match result {
            Some(result) => (
                result
                    .outputs
                    .iter()
                    .cloned()
                    .map(normalize_output)
                    .collect(),
                result.execution_count.map_or(Value::Null, Value::from),
            ),
            None => (Vec::new(), Value::Null),
        };
        cell.insert("outputs".to_owned(), Value::Array(outputs));
        cell.insert("execution_count".to_owned(), execution_count);
    }
}

/// Normalizes the multiline strings of one output (`rejoin_lines`, then `split_lines`).
fn normalize_output(mut output: Value) -> Value {
    let Value::Object(map) = &mut output else {
        return output;
    };
    let output_type = map
        .get("output_type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    match output_type.as_str() {
        "execute_result" | "display_data" => {
            if let Some(Value::Object(data)) = map.get_mut("data") {
                normalize_mimebundle(data);
            }
        }
        "" => {}
        _ => {
            if let Some(text) = map.get_mut("text") {
                if let Some(joined) = join_strings(text, join_lines) {
                    *text = Value::String(joined);
                }
                if output_type == "stream"
                    && let Value::String(line) = text
                {
                    *text = split_lines(line);
                }
            }
        }
    }
    output
}

/// Whether a MIME type holds JSON, whose value is never joined or split.
fn is_json_mime(mime: &str) -> bool {
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Normalizes a MIME bundle (output `data` or a cell attachment): lists of strings are joined,
/// except for JSON types; then text types are split into lines.
fn normalize_mimebundle(bundle: &mut Map<String, Value>) {
    for (mime, value) in bundle.iter_mut() {
        if !is_json_mime(mime)
            && let Some(joined) = join_strings(value, join_lines)
        {
            *value = Value::String(joined);
        }
        if let Value::String(text) = value
            && (mime.starts_with("text/")
                || mime == "application/javascript"
                || mime == "image/svg+xml")
        {
            *value = split_lines(text);
        }
    }
}

/// Joins `value` with `join` when it is a list of strings.
fn join_strings(value: &Value, join: fn(&[&str]) -> String) -> Option<String> {
    let Value::Array(items) = value else {
        return None;
    };
    let lines = items
        .iter()
        .map(Value::as_str)
        .collect::<Option<Vec<_>>>()?;
    Some(join(&lines))
}

/// nbformat 4: lines keep their terminators, so they are concatenated.
fn join_lines(lines: &[&str]) -> String {
    lines.concat()
}

/// nbformat 3 (`_join_lines`): concatenated when the first line ends with a line terminator,
/// else the lines were split without terminators and are joined with `\n`.
fn join_v3_lines(lines: &[&str]) -> String {
    match lines.first() {
        Some(first) if first.ends_with(['\n', '\r']) => lines.concat(),
        _ => lines.join("\n"),
    }
}

/// `text.splitlines(True)` as a JSON list: lines with their terminators, at Python's line
/// boundaries (`\n`, `\r\n`, `\r`, `\v`, `\f`, `\x1c`, `\x1d`, `\x1e`, `\x85`, `\u2028`,
/// `\u2029`). An empty string gives an empty list.
fn split_lines(text: &str) -> Value {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((pos, ch)) = chars.next() {
        let is_boundary = matches!(
            ch,
            '\n' | '\r'
                | '\u{0b}'
                | '\u{0c}'
                | '\u{1c}'
                | '\u{1d}'
                | '\u{1e}'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        );
        if !is_boundary {
            continue;
        }
        let mut end = pos + ch.len_utf8();
        if ch == '\r' && chars.next_if(|&(_, next)| next == '\n').is_some() {
            end += 1;
        }
        lines.push(Value::String(text[start..end].to_owned()));
        start = end;
    }
    if start < text.len() {
        lines.push(Value::String(text[start..].to_owned()));
    }
    Value::Array(lines)
}

/// Gives a new id to every cell without one, then to every cell whose id an earlier cell has,
/// as `nbformat`'s validation does for nbformat 4.5 (with deterministic ids instead of random
/// ones; a new id never equals an id in the notebook).
fn repair_cell_ids(cells: &mut [Value]) {
    let mut used: HashSet<String> = cells
        .iter()
        .filter_map(|cell| cell.get("id").and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    for (cell_idx, cell) in cells.iter_mut().enumerate() {
        if let Value::Object(cell) = cell
            && !cell.contains_key("id")
        {
            let id = fresh_cell_id(cell_idx, cell, &mut used);
            cell.insert("id".to_owned(), Value::String(id));
        }
    }
    let mut seen = HashSet::new();
    for (cell_idx, cell) in cells.iter_mut().enumerate() {
        let Value::Object(cell) = cell else {
            continue;
        };
        let Some(id) = cell.get("id").and_then(Value::as_str).map(str::to_owned) else {
            continue;
        };
        if seen.contains(&id) {
            let new_id = fresh_cell_id(cell_idx, cell, &mut used);
            cell.insert("id".to_owned(), Value::String(new_id));
        }
        seen.insert(id);
    }
}

/// A new cell id, not in `used` (and added to it): 8 lowercase hex digits (the shape of
/// `nbformat`'s random ids) of a 64-bit FNV-1a hash of `"{cell_idx}:{attempt}:{source}"`,
/// where `source` is the cell's source joined and `attempt` counts collisions from 0.
fn fresh_cell_id(cell_idx: usize, cell: &Map<String, Value>, used: &mut HashSet<String>) -> String {
    let source = match cell.get("source") {
        Some(source) => join_strings(source, join_lines)
            .or_else(|| source.as_str().map(str::to_owned))
            .unwrap_or_default(),
        None => String::new(),
    };
    for attempt in 0u64.. {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in format!("{cell_idx}:{attempt}:")
            .bytes()
            .chain(source.bytes())
        {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        let id = format!("{:08x}", hash & 0xffff_ffff);
        if used.insert(id.clone()) {
            return id;
        }
    }
    unreachable!("a u64 counter does not run out before a free 32-bit id is found")
}

/// Appends `value` as Python's `json.dumps(value, sort_keys=True, indent=1,
/// ensure_ascii=False, separators=(",", ": "))` writes it, nested `level` deep.
fn write_json(out: &mut String, value: &Value, level: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => write_number(out, number),
        Value::String(text) => write_string(out, text),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (item_idx, item) in items.iter().enumerate() {
                if item_idx > 0 {
                    out.push(',');
                }
                newline_indent(out, level + 1);
                write_json(out, item, level + 1);
            }
            newline_indent(out, level);
            out.push(']');
        }
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            // Rust orders strings by their UTF-8 bytes, which is the order of their code
            // points, as Python sorts `str` keys.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by_key(|(key, _)| *key);
            out.push('{');
            for (entry_idx, (key, item)) in entries.into_iter().enumerate() {
                if entry_idx > 0 {
                    out.push(',');
                }
                newline_indent(out, level + 1);
                write_string(out, key);
                out.push_str(": ");
                write_json(out, item, level + 1);
            }
            newline_indent(out, level);
            out.push('}');
        }
    }
}

/// A newline, then one space per level.
fn newline_indent(out: &mut String, level: usize) {
    out.push('\n');
    out.extend(std::iter::repeat_n(' ', level));
}

/// Appends a JSON string as Python's `json` writes it with `ensure_ascii=False`: `"`, `\`
/// and the control characters below U+0020 are escaped (`\n`, `\r`, `\t`, `\b`, `\f`, else
/// `\u00XX` in lowercase hex); everything else, DEL and non-ASCII included, is kept.
fn write_string(out: &mut String, text: &str) {
    out.push('"');
    let mut rest = text;
    while let Some(pos) = rest.find(|ch: char| ch < ' ' || ch == '"' || ch == '\\') {
        out.push_str(&rest[..pos]);
        let byte = rest.as_bytes()[pos];
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            _ => {
                let _ = write!(out, "\\u{byte:04x}");
            }
        }
        rest = &rest[pos + 1..];
    }
    out.push_str(rest);
    out.push('"');
}

/// Appends a number as Python writes what its `json` module read: an integer as its digits
/// (`-0` is `0`), a float as `repr(float)`.
///
/// Integers beyond the range of `i64` and `u64` are kept exactly only when `serde_json` has
/// its `arbitrary_precision` feature (the number keeps its text); without it, `serde_json`
/// reads them as floats, and they are written as floats.
fn write_number(out: &mut String, number: &Number) {
    if let Some(int) = number.as_u64() {
        let _ = write!(out, "{int}");
    } else if let Some(int) = number.as_i64() {
        let _ = write!(out, "{int}");
    } else {
        // Without `arbitrary_precision`, this is the shortest repr of an f64, which always has
        // a `.` or an exponent; with it, the number as written in the file.
        let text = number.to_string();
        if text.contains(['.', 'e', 'E']) {
            match number.as_f64() {
                Some(float) => out.push_str(&python_float_repr(float)),
                // Only with `arbitrary_precision`: Python reads `1e400` as infinity.
                None if text.starts_with('-') => out.push_str("-Infinity"),
                None => out.push_str("Infinity"),
            }
        } else {
            // Only with `arbitrary_precision`: an integer beyond 64 bits, written as read.
            let digits = text.trim_start_matches('-');
            if digits.bytes().all(|byte| byte == b'0') {
                out.push('0');
            } else {
                out.push_str(&text);
            }
        }
    }
}

/// Python's `repr(float)`: the shortest digits that read back as the same float, in
/// positional notation when the decimal exponent is in `-4..16` (with `.0` for integral
/// values), else in scientific notation with a signed exponent of at least two digits
/// (`1e-05`, `1.5e+300`). Non-finite values as Python's `json` writes them.
fn python_float_repr(float: f64) -> String {
    if float.is_nan() {
        return "NaN".to_owned();
    }
    if float.is_infinite() {
        return if float > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    // Rust's `{:e}` also writes the shortest round-tripping digits: `-1.2345e-5`, `0e0`.
    let scientific = format!("{float:e}");
    let (mantissa, exponent) = scientific
        .split_once('e')
        .unwrap_or((scientific.as_str(), "0"));
    let exponent: i64 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let mut digits: String = mantissa.chars().filter(|&ch| ch != '.').collect();
    let mut exponent = exponent;
    // When two shortest digit strings read back as `float`, Rust picks the larger one, Python
    // the one nearer to the exact value (`657053566699662.2`, not `.3`, for ...662.25): the
    // correctly rounded string of the same length, when it reads back as `float`.
    let rounded = format!("{:.*e}", digits.len() - 1, float.abs());
    if rounded.parse::<f64>().ok() == Some(float.abs())
        && let Some((rounded_mantissa, rounded_exponent)) = rounded.split_once('e')
        && let Ok(rounded_exponent) = rounded_exponent.parse::<i64>()
    {
        digits = rounded_mantissa.chars().filter(|&ch| ch != '.').collect();
        exponent = rounded_exponent;
    }
    // The value is 0.DIGITS * 10^decimal_point.
    let decimal_point = exponent + 1;
    let mut out = sign.to_owned();
    if !(-4 < decimal_point && decimal_point <= 16) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        let _ = write!(out, "e{exp_sign}{:02}", exponent.unsigned_abs());
    } else if decimal_point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n(
            '0',
            usize::try_from(-decimal_point).unwrap_or(0),
        ));
        out.push_str(&digits);
    } else {
        let int_len = usize::try_from(decimal_point).unwrap_or(0);
        if digits.len() <= int_len {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', int_len - digits.len()));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

/// Replaces the file at `path` with `contents` atomically: the contents go to a temporary file
/// in the same directory (`.NAME.XXXXXX.tmp`), which gets the permissions of the file it
/// replaces, is flushed to disk and then renamed over `path`, so that readers see either the
/// old file or the new one, never a part. The directory is synced afterwards (best effort, on
/// Unix). A symbolic link is followed: its target is replaced and the link kept, as writing
/// through it would. A new file gets the default permissions (`0o666` less the umask). On
/// error the temporary file is removed and `path` is untouched. Like every rename-based write,
/// this replaces the inode: hard links to the old file keep the old contents, and the owner
/// becomes the current user.
///
/// # Errors
///
/// Any I/O error while resolving `path`, creating, writing or syncing the temporary file, or
/// renaming it.
pub fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let target = resolve_symlinks(path)?;
    let dir = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let permissions = match fs_err::metadata(&target) {
        Ok(metadata) => Some(metadata.permissions()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(err) => return Err(err),
    };
    let file_name = target
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!(".{file_name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    if permissions.is_none() {
        use std::os::unix::fs::PermissionsExt as _;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut temp = builder.tempfile_in(dir)?;
    temp.write_all(contents)?;
    if let Some(permissions) = permissions {
        temp.as_file().set_permissions(permissions)?;
    }
    temp.as_file().sync_all()?;
    temp.persist(&target).map_err(|err| err.error)?;
    #[cfg(unix)]
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Follows `path` while it is a symbolic link (at most 40 times, as Linux does), to the file
/// that writing through it would replace; the last target need not exist.
fn resolve_symlinks(path: &Path) -> std::io::Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&current) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                let link = fs_err::read_link(&current)?;
                current = match current.parent() {
                    Some(parent) if link.is_relative() => parent.join(link),
                    _ => link,
                };
            }
            _ => return Ok(current),
        }
    }
    Err(std::io::Error::other(format!(
        "too many levels of symbolic links: `{}`",
        path.display()
    )))
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use serde_json::Value;

    use super::{CellResult, python_float_repr, render_with_results, write_atomically};
    use crate::notebook::{Notebook, parse_notebook};

    /// The golden files: for each case `NAME`, `NAME.in.ipynb` (the notebook),
    /// `NAME.results.json` (one entry per cell: `null` or `{"outputs", "execution_count"}`) and
    /// `NAME.out.ipynb` (what `nbformat` writes after nbconvert-style execution).
    fn fixtures_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/writeback")
    }

    fn case_names() -> Vec<String> {
        let mut names: Vec<String> = fs_err::read_dir(fixtures_dir())
            .expect("fixtures directory")
            .map(|entry| entry.expect("directory entry").file_name())
            .filter_map(|name| {
                name.to_str()
                    .and_then(|name| name.strip_suffix(".in.ipynb"))
                    .map(str::to_owned)
            })
            .collect();
        names.sort();
        names
    }

    fn read_case(name: &str) -> (Notebook, Vec<Option<CellResult>>, String) {
        let dir = fixtures_dir();
        let input = dir.join(format!("{name}.in.ipynb"));
        let notebook = parse_notebook(&input, &fs_err::read(&input).expect("input notebook"))
            .expect("input notebook parses");
        let results_text =
            fs_err::read_to_string(dir.join(format!("{name}.results.json"))).expect("results");
        let results = parse_results(&results_text);
        let expected =
            fs_err::read_to_string(dir.join(format!("{name}.out.ipynb"))).expect("expected");
        (notebook, results, expected)
    }

    fn parse_results(text: &str) -> Vec<Option<CellResult>> {
        let Value::Array(entries) = serde_json::from_str(text).expect("results JSON") else {
            panic!("results must be an array");
        };
        entries
            .into_iter()
            .map(|entry| match entry {
                Value::Null => None,
                Value::Object(mut entry) => Some(CellResult {
                    outputs: match entry.shift_remove("outputs") {
                        Some(Value::Array(outputs)) => outputs,
                        _ => panic!("outputs must be an array"),
                    },
                    execution_count: entry.get("execution_count").and_then(Value::as_u64),
                }),
                _ => panic!("a result must be null or an object"),
            })
            .collect()
    }

    /// The first differing line, for a readable failure.
    fn first_difference(actual: &str, expected: &str) -> String {
        let line = actual
            .lines()
            .zip(expected.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| actual.lines().count().min(expected.lines().count()));
        format!(
            "line {}:\n  actual:   {:?}\n  expected: {:?}",
            line + 1,
            actual.lines().nth(line),
            expected.lines().nth(line)
        )
    }

    #[test]
    fn golden_files_match_nbformat_byte_for_byte() {
        let names = case_names();
        assert!(names.len() >= 7, "fixtures missing: {names:?}");
        for name in names {
            let (notebook, results, expected) = read_case(&name);
            let actual = render_with_results(&notebook, &results).expect("renders");
            assert!(
                actual == expected,
                "{name}: output differs from nbformat's, {}",
                first_difference(&actual, &expected)
            );
        }
    }

    #[test]
    fn rendering_the_written_file_again_changes_nothing() {
        for name in case_names() {
            let (notebook, results, expected) = read_case(&name);
            let first = render_with_results(&notebook, &results).expect("renders");
            let reread = parse_notebook(Path::new("again.ipynb"), first.as_bytes())
                .expect("the written notebook parses");
            let second = render_with_results(&reread, &results).expect("renders again");
            assert!(
                second == expected,
                "{name}: not idempotent, {}",
                first_difference(&second, &expected)
            );
            // Also deterministic: the same input renders the same bytes.
            assert_eq!(
                render_with_results(&notebook, &results).expect("renders"),
                first
            );
        }
    }

    #[test]
    fn cells_without_results_are_cleared() {
        let text = r#"{"cells": [
            {"cell_type": "code", "execution_count": 3, "metadata": {}, "source": "x",
             "outputs": [{"output_type": "stream", "name": "stdout", "text": "old\n"}]},
            {"cell_type": "code", "execution_count": 4, "metadata": {}, "source": "y",
             "outputs": [{"output_type": "stream", "name": "stdout", "text": "old\n"}]}],
            "metadata": {}, "nbformat": 4, "nbformat_minor": 4}"#;
        let notebook = parse_notebook(Path::new("a.ipynb"), text.as_bytes()).expect("parses");
        let result = CellResult {
            outputs: vec![
                serde_json::json!({"output_type": "stream", "name": "stdout", "text": "a\nb"}),
            ],
            execution_count: Some(1),
        };
        // The second cell has no entry at all: results may be shorter than the cells.
        let out = render_with_results(&notebook, &[Some(result)]).expect("renders");
        let doc: Value = serde_json::from_str(&out).expect("JSON");
        assert_eq!(doc["cells"][0]["execution_count"], 1);
        assert_eq!(
            doc["cells"][0]["outputs"][0]["text"],
            serde_json::json!(["a\n", "b"])
        );
        assert_eq!(doc["cells"][1]["execution_count"], Value::Null);
        assert_eq!(doc["cells"][1]["outputs"], serde_json::json!([]));
    }

    #[test]
    fn percent_scripts_have_no_document_to_write() {
        let notebook = parse_notebook(Path::new("a.py"), b"# %%\nx = 1\n").expect("parses");
        let err = render_with_results(&notebook, &[]).expect_err("no document");
        assert!(err.to_string().contains("a.py"), "{err}");
    }

    #[test]
    fn floats_are_written_as_python_repr() {
        let cases = [
            (0.1, "0.1"),
            (1e-5, "1e-05"),
            (3.0, "3.0"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (9_999_999_999_999_998.0, "9999999999999998.0"),
            (0.0001, "0.0001"),
            (0.000_012_34, "1.234e-05"),
            (1.5e300, "1.5e+300"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (-123_456.789, "-123456.789"),
            // Two shortest strings read back as this float: Python takes the nearer one.
            (f64::from_bits(0x4302_acb1_a388_4472), "657053566699662.2"), // ...662.25
            (-1_402_031_775_949_515.2, "-1402031775949515.2"),
            (1e23, "1e+23"),
            (0.1 + 0.2, "0.30000000000000004"),
            (2.225_073_858_507_201e-308, "2.225073858507201e-308"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (f64::NAN, "NaN"),
        ];
        for (float, expected) in cases {
            assert_eq!(python_float_repr(float), expected, "{float:e}");
        }
    }

    #[test]
    fn write_atomically_replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("nb.ipynb");
        fs_err::write(&path, "old contents, longer than the new ones").expect("write");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            fs_err::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        }
        write_atomically(&path, b"new").expect("atomic write");
        assert_eq!(fs_err::read(&path).expect("read"), b"new");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs_err::metadata(&path)
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o640);
        }
        // A file that does not exist yet is created.
        let fresh = dir.path().join("fresh.ipynb");
        write_atomically(&fresh, b"{}\n").expect("atomic write");
        assert_eq!(fs_err::read(&fresh).expect("read"), b"{}\n");
        let mut names: Vec<_> = fs_err::read_dir(dir.path())
            .expect("read dir")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["fresh.ipynb", "nb.ipynb"]);
    }

    #[cfg(unix)]
    #[test]
    fn write_atomically_writes_through_a_symlink() {
        let dir = tempfile::tempdir().expect("temp dir");
        let target = dir.path().join("real.ipynb");
        let link = dir.path().join("link.ipynb");
        fs_err::write(&target, "old").expect("write");
        std::os::unix::fs::symlink("real.ipynb", &link).expect("symlink");
        write_atomically(&link, b"new").expect("atomic write");
        assert!(
            fs_err::symlink_metadata(&link)
                .expect("metadata")
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs_err::read(&target).expect("read"), b"new");
        assert_eq!(fs_err::read_dir(dir.path()).expect("read dir").count(), 2);
    }

    #[test]
    fn write_atomically_fails_cleanly_without_a_directory() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("missing").join("nb.ipynb");
        assert!(write_atomically(&path, b"x").is_err());
        assert_eq!(fs_err::read_dir(dir.path()).expect("read dir").count(), 0);
    }
}
