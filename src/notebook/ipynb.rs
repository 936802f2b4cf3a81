//! Reader for Jupyter `.ipynb` notebooks: nbformat 4 (any minor version) as is, nbformat 3
//! upgraded to 4 on read.
//!
//! The upgrade follows `nbformat.v4.convert.upgrade` of the Python `nbformat` library:
//! - `worksheets[*].cells` are concatenated into `cells`; `worksheets` is removed;
//! - code cells: `input` becomes `source`, `prompt_number` becomes `execution_count`,
//!   `language` is dropped, `collapsed` moves into the cell metadata, outputs are upgraded
//!   (`pyout` becomes `execute_result` with its `prompt_number` as `execution_count`, `pyerr`
//!   becomes `error`, a stream's `stream` becomes `name`, the data of `pyout`/`display_data`
//!   moves into `data` with v3 aliases renamed to MIME types: `text` to `text/plain`, `html` to
//!   `text/html`, `svg`, `png`, `jpeg`, `latex`, `json` (parsed), `javascript`);
//! - `heading` cells become markdown cells `"#" * level + " " + source` (source lines joined
//!   with spaces); `html` cells become markdown cells;
//! - the notebook metadata gains `orig_nbformat` (3) and `orig_nbformat_minor` and loses
//!   `name` and `signature`; top-level `orig_nbformat*` keys are removed.
//!
//! Keys are removed and added in the order the Python code does, so the key order of the
//! upgraded document matches what `nbformat` produces before it sorts keys on write.
//! Departures: the upgraded document is nbformat 4.0 (the library writes its own latest minor,
//! 4.5, and then has to invent cell ids); a `level` outside 0..=6 is clamped, and a missing
//! `level`, `outputs` or notebook `metadata` gets its default instead of an exception;
//! malformed outputs are left as they are (nbmemo does not read outputs), and an
//! `application/json` output that does not parse stays a string. Multiline strings stay lists
//! of strings when the file has them so (the library joins them in memory, and splits them
//! again when it writes). Cell ids are not invented: nbformat 4.0 has none, and random ids
//! would make reading non-deterministic.

use std::path::Path;

use serde_json::{Map, Value};

use super::cell::{Cell, CellKind};
use super::error::{Location, NotebookError, json_type_name};
use super::text::python_splitlines;
use super::{Notebook, NotebookFormat, python_truthy as truthy};

/// Parses the bytes of an `.ipynb` file.
pub(super) fn parse(path: &Path, bytes: &[u8]) -> Result<Notebook, NotebookError> {
    let (bom_len, body) = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => (3, rest),
        None => (0, bytes),
    };
    if body
        .iter()
        .all(|byte| matches!(byte, b' ' | b'\t' | b'\n' | b'\r'))
    {
        return Err(NotebookError::Empty {
            path: path.to_path_buf(),
        });
    }
    if let Some(offset) = body.iter().position(|&byte| byte == 0) {
        return Err(NotebookError::Binary {
            path: path.to_path_buf(),
            offset: bom_len + offset,
        });
    }
    let text = std::str::from_utf8(body).map_err(|err| NotebookError::NotUtf8 {
        path: path.to_path_buf(),
        offset: bom_len + err.valid_up_to(),
    })?;
    let mut document: Value = serde_json::from_str(text).map_err(|err| json_error(path, &err))?;
    let ctx = Ctx { path };
    let Value::Object(top) = &mut document else {
        return Err(ctx.not_an_object(Location::Notebook, &document));
    };

    let major = match top.get("nbformat") {
        None => {
            return Err(NotebookError::InvalidNbformat {
                path: path.to_path_buf(),
                problem: "is missing".to_owned(),
            });
        }
        Some(Value::Number(number)) if number.is_u64() || number.is_i64() => number,
        Some(other) => {
            return Err(NotebookError::InvalidNbformat {
                path: path.to_path_buf(),
                problem: format!("must be an integer, found {}", json_type_name(other)),
            });
        }
    };
    let upgraded_from = match major.as_u64() {
        Some(4) => None,
        Some(3) => {
            upgrade_v3(&ctx, top)?;
            Some(3)
        }
        _ => {
            return Err(NotebookError::UnsupportedNbformat {
                path: path.to_path_buf(),
                version: major.to_string(),
            });
        }
    };
    let nbformat_minor = match top.get("nbformat_minor") {
        None => 0,
        Some(value) => value.as_u64().ok_or_else(|| {
            ctx.wrong_type(
                Location::Notebook,
                "nbformat_minor",
                "a non-negative integer",
                value,
            )
        })?,
    };
    let cells = match top.get("cells") {
        None => return Err(ctx.missing(Location::Notebook, "cells")),
        Some(Value::Array(cells)) => cells,
        Some(other) => {
            return Err(ctx.wrong_type(Location::Notebook, "cells", "an array", other));
        }
    };
    let cells = cells
        .iter()
        .enumerate()
        .map(|(cell_idx, cell)| parse_cell(&ctx, cell_idx, cell))
        .collect::<Result<Vec<_>, _>>()?;

    Ok(Notebook {
        path: path.to_path_buf(),
        format: NotebookFormat::Ipynb {
            nbformat: 4,
            nbformat_minor,
            upgraded_from,
        },
        cells,
        document: Some(document),
    })
}

/// Converts a `serde_json` error into [`NotebookError::InvalidJson`], keeping its position
/// apart from its message.
fn json_error(path: &Path, err: &serde_json::Error) -> NotebookError {
    let (line, column) = (err.line(), err.column());
    let full = err.to_string();
    let suffix = format!(" at line {line} column {column}");
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
    NotebookError::InvalidJson {
        path: path.to_path_buf(),
        message,
        line,
        column,
    }
}

/// The notebook being read, for building errors.
struct Ctx<'a> {
    path: &'a Path,
}

impl Ctx<'_> {
    fn not_an_object(&self, at: Location, found: &Value) -> NotebookError {
        NotebookError::NotAnObject {
            path: self.path.to_path_buf(),
            at,
            found: json_type_name(found).to_owned(),
        }
    }

    fn missing(&self, at: Location, field: &str) -> NotebookError {
        NotebookError::MissingField {
            path: self.path.to_path_buf(),
            at,
            field: field.to_owned(),
        }
    }

    fn wrong_type(
        &self,
        at: Location,
        field: &str,
        expected: &str,
        found: &Value,
    ) -> NotebookError {
        self.wrong_type_described(at, field, expected, json_type_name(found))
    }

    fn wrong_type_described(
        &self,
        at: Location,
        field: &str,
        expected: &str,
        found: &str,
    ) -> NotebookError {
        NotebookError::WrongType {
            path: self.path.to_path_buf(),
            at,
            field: field.to_owned(),
            expected: expected.to_owned(),
            found: found.to_owned(),
        }
    }
}

/// Reads one nbformat 4 cell.
fn parse_cell(ctx: &Ctx<'_>, cell_idx: usize, value: &Value) -> Result<Cell, NotebookError> {
    let at = Location::Cell(cell_idx);
    let Value::Object(cell) = value else {
        return Err(ctx.not_an_object(at, value));
    };
    let kind = match cell.get("cell_type") {
        None => return Err(ctx.missing(at, "cell_type")),
        Some(Value::String(cell_type)) => match cell_type.as_str() {
            "code" => CellKind::Code,
            "markdown" => CellKind::Markdown,
            "raw" => CellKind::Raw,
            _ => {
                return Err(NotebookError::UnknownCellType {
                    path: ctx.path.to_path_buf(),
                    cell: cell_idx,
                    cell_type: cell_type.clone(),
                });
            }
        },
        Some(other) => return Err(ctx.wrong_type(at, "cell_type", "a string", other)),
    };
    let source = match cell.get("source") {
        None => return Err(ctx.missing(at, "source")),
        Some(source) => multiline_string(source).map_err(|found| {
            ctx.wrong_type_described(at, "source", "a string or a list of strings", &found)
        })?,
    };
    let metadata = match cell.get("metadata") {
        None => Map::new(),
        Some(Value::Object(metadata)) => metadata.clone(),
        Some(other) => return Err(ctx.wrong_type(at, "metadata", "an object", other)),
    };
    let id = match cell.get("id") {
        None => None,
        Some(Value::String(id)) => Some(id.clone()),
        Some(other) => return Err(ctx.wrong_type(at, "id", "a string", other)),
    };
    Ok(Cell {
        kind,
        source,
        id,
        metadata,
        title: None,
        line: 0,
        source_line: 0,
        index: cell_idx,
    })
}

/// Joins an nbformat multiline string: a string, or a list of strings concatenated as they
/// are. On failure, describes what was found ("a number", "a list containing a number").
fn multiline_string(value: &Value) -> Result<String, String> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Array(parts) => {
            let mut text = String::new();
            for part in parts {
                match part {
                    Value::String(part) => text.push_str(part),
                    other => return Err(format!("a list containing {}", json_type_name(other))),
                }
            }
            Ok(text)
        }
        other => Err(json_type_name(other).to_owned()),
    }
}

/// nbformat 3 stores multi-line strings as lists of lines that may lack their line endings:
/// when the first line has none, the lines are joined with `\n` (`_join_lines` in nbformat's
/// `v3/rwbase.py`), otherwise concatenated.
fn rejoin_v3_lines(value: &mut Value) {
    let Value::Array(parts) = value else { return };
    let Some(Value::String(first)) = parts.first() else {
        return;
    };
    if first.ends_with('\n') || first.ends_with('\r') {
        return;
    }
    let lines: Option<Vec<&str>> = parts.iter().map(Value::as_str).collect();
    if let Some(lines) = lines {
        *value = Value::from(lines.join("\n"));
    }
}

/// Upgrades an nbformat 3 notebook to nbformat 4.0 in place (see the module docs).
fn upgrade_v3(ctx: &Ctx<'_>, top: &mut Map<String, Value>) -> Result<(), NotebookError> {
    let orig_nbformat = top.shift_remove("orig_nbformat").filter(truthy);
    let orig_nbformat_minor = top.shift_remove("orig_nbformat_minor").filter(truthy);
    let metadata = match top
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()))
    {
        Value::Object(metadata) => metadata,
        other => return Err(ctx.wrong_type(Location::Notebook, "metadata", "an object", other)),
    };
    metadata.insert(
        "orig_nbformat".to_owned(),
        orig_nbformat.unwrap_or_else(|| Value::from(3)),
    );
    metadata.insert(
        "orig_nbformat_minor".to_owned(),
        orig_nbformat_minor.unwrap_or_else(|| Value::from(0)),
    );
    top.insert("nbformat".to_owned(), Value::from(4));
    top.insert("nbformat_minor".to_owned(), Value::from(0));
    top.insert("cells".to_owned(), Value::Array(Vec::new()));

    let worksheets = match top.shift_remove("worksheets") {
        None => Vec::new(),
        Some(Value::Array(worksheets)) => worksheets,
        Some(other) => {
            return Err(ctx.wrong_type(Location::Notebook, "worksheets", "an array", &other));
        }
    };
    let mut cells = Vec::new();
    for (worksheet_idx, worksheet) in worksheets.into_iter().enumerate() {
        let at = Location::Worksheet(worksheet_idx);
        let Value::Object(mut worksheet) = worksheet else {
            return Err(ctx.not_an_object(at, &worksheet));
        };
        match worksheet.shift_remove("cells") {
            None => return Err(ctx.missing(at, "cells")),
            Some(Value::Array(worksheet_cells)) => {
                for cell in worksheet_cells {
                    let cell_idx = cells.len();
                    cells.push(upgrade_cell(ctx, cell_idx, cell)?);
                }
            }
            Some(other) => return Err(ctx.wrong_type(at, "cells", "an array", &other)),
        }
    }
    top.insert("cells".to_owned(), Value::Array(cells));

    if let Some(Value::Object(metadata)) = top.get_mut("metadata") {
        metadata.shift_remove("name");
        metadata.shift_remove("signature");
    }
    Ok(())
}

/// Upgrades one nbformat 3 cell (`nbformat.v4.convert.upgrade_cell`).
fn upgrade_cell(ctx: &Ctx<'_>, cell_idx: usize, cell: Value) -> Result<Value, NotebookError> {
    let at = Location::Cell(cell_idx);
    let Value::Object(mut cell) = cell else {
        return Err(ctx.not_an_object(at, &cell));
    };
    cell.entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    for field in ["input", "source"] {
        if let Some(value) = cell.get_mut(field) {
            rejoin_v3_lines(value);
        }
    }
    let cell_type = cell
        .get("cell_type")
        .and_then(Value::as_str)
        .map(str::to_owned);
    match cell_type.as_deref() {
        Some("code") => {
            cell.shift_remove("language");
            if let Some(collapsed) = cell.shift_remove("collapsed")
                && let Some(Value::Object(metadata)) = cell.get_mut("metadata")
            {
                metadata.insert("collapsed".to_owned(), collapsed);
            }
            let source = cell
                .shift_remove("input")
                .unwrap_or_else(|| Value::from(""));
            cell.insert("source".to_owned(), source);
            let execution_count = cell.shift_remove("prompt_number").unwrap_or(Value::Null);
            cell.insert("execution_count".to_owned(), execution_count);
            match cell.get_mut("outputs") {
                Some(Value::Array(outputs)) => outputs.iter_mut().for_each(upgrade_output),
                Some(_) => {}
                None => {
                    cell.insert("outputs".to_owned(), Value::Array(Vec::new()));
                }
            }
        }
        Some("heading") => {
            cell.insert("cell_type".to_owned(), Value::from("markdown"));
            let level = match cell.shift_remove("level") {
                Some(Value::Number(level)) => level.as_i64().unwrap_or(1),
                _ => 1,
            };
            let source = match cell.get("source") {
                None => String::new(),
                Some(source) => multiline_string(source).map_err(|found| {
                    ctx.wrong_type_described(at, "source", "a string or a list of strings", &found)
                })?,
            };
            let hashes = "#".repeat(usize::try_from(level.clamp(0, 6)).unwrap_or(1));
            let single_line = python_splitlines(&source).collect::<Vec<_>>().join(" ");
            cell.insert(
                "source".to_owned(),
                Value::from(format!("{hashes} {single_line}")),
            );
        }
        Some("html") => {
            cell.insert("cell_type".to_owned(), Value::from("markdown"));
        }
        _ => {}
    }
    Ok(Value::Object(cell))
}

/// The v3 output keys that are MIME types in v4, in the order `nbformat` renames them.
const MIME_ALIASES: [(&str, &str); 8] = [
    ("text", "text/plain"),
    ("html", "text/html"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("jpeg", "image/jpeg"),
    ("latex", "text/latex"),
    ("json", "application/json"),
    ("javascript", "application/javascript"),
];

/// Renames v3 aliases to MIME types (`nbformat.v4.convert.to_mime_key`).
fn to_mime_key(map: &mut Map<String, Value>) {
    for (alias, mime) in MIME_ALIASES {
        if let Some(value) = map.shift_remove(alias) {
            map.insert(mime.to_owned(), value);
        }
    }
}

/// Upgrades one v3 output (`nbformat.v4.convert.upgrade_output`); malformed outputs are left
/// as they are.
fn upgrade_output(output: &mut Value) {
    let Value::Object(output) = output else {
        return;
    };
    let Some(output_type) = output.get("output_type").and_then(Value::as_str) else {
        return;
    };
    match output_type {
        "pyout" | "display_data" => {
            let is_pyout = output_type == "pyout";
            output
                .entry("metadata")
                .or_insert_with(|| Value::Object(Map::new()));
            if is_pyout {
                output.insert("output_type".to_owned(), Value::from("execute_result"));
                let count = output.shift_remove("prompt_number").unwrap_or(Value::Null);
                output.insert("execution_count".to_owned(), count);
            }
            let data_keys: Vec<String> = output
                .keys()
                .filter(|key| {
                    !matches!(key.as_str(), "output_type" | "execution_count" | "metadata")
                })
                .cloned()
                .collect();
            let mut data = Map::new();
            for key in data_keys {
                if let Some(value) = output.shift_remove(&key) {
                    data.insert(key, value);
                }
            }
            to_mime_key(&mut data);
            if let Some(json) = data.get_mut("application/json")
                && let Ok(text) = multiline_string(json)
                && let Ok(parsed) = serde_json::from_str::<Value>(&text)
            {
                *json = parsed;
            }
            output.insert("data".to_owned(), Value::Object(data));
            if let Some(Value::Object(metadata)) = output.get_mut("metadata") {
                to_mime_key(metadata);
            }
        }
        "pyerr" => {
            output.insert("output_type".to_owned(), Value::from("error"));
        }
        "stream" => {
            let name = output
                .shift_remove("stream")
                .unwrap_or_else(|| Value::from("stdout"));
            output.insert("name".to_owned(), name);
        }
        _ => {}
    }
}
