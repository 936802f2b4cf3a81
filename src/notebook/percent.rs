//! Reader for jupytext "percent" scripts: `.py` files whose cells start with `# %%` markers.
//!
//! It follows jupytext's `DoublePercentScriptCellReader` and `header_to_metadata_and_cell`
//! (as of jupytext 1.19; cell types, sources and metadata were compared with jupytext 1.19.6 on
//! thousands of generated scripts):
//! - A marker is a line matching `^\s*#\s*%%(%*)\s(.*)$` (so `# %% title`, `#%% title`,
//!   `# %%% sub-cell`), or one of `# %%`, `#%%`, `# <codecell>`, `# In[1]:` alone on its line.
//!   `# %%time` (no space after `%%`) is not a marker: it is a commented magic. A marker inside
//!   a triple-quoted string is not a marker either.
//! - Text before the first marker is a code cell; a shebang (line 1) and a coding comment
//!   (line 1 or 2) are not part of it; a YAML header between `# ---` lines at the top is
//!   notebook metadata (its `jupyter:` section) and, for any other keys, a raw cell
//!   `---\n...\n---`; one blank line after the header is skipped.
//! - A cell runs up to the next marker, less the blank lines that separate it from that marker:
//!   two blank (or whitespace-only) lines when the line before them is not blank, else one
//!   empty line; a line of spaces is content. Leading blank lines are kept. In a markdown or
//!   raw cell, `%%` lines inside a closed fenced block (```` ``` ```` or `~~~`) are not markers.
//! - `[markdown]`, `[md]` and `[raw]` cells have their `# ` (or `#`) comment prefixes removed;
//!   a markdown or raw cell that is a single triple-quoted string becomes the string's text.
//!   Code cells get their commented `IPython` magics uncommented (`# %matplotlib inline`,
//!   `# !pip install x`, `# ls`), as jupytext does by default for percent scripts.
//! - `active="ipynb"` (or an `active-ipynb` tag) is a code cell commented out in the script;
//!   `active="py"` or a frozen cell is a raw cell (jupytext's "active cells").
//! - A cell with `language="R"` metadata gets a `%%R` magic as its first line, as jupytext does.
//!
//! Departures: text before the first marker that is only blank or whitespace lines is not a
//! cell (jupytext makes a code cell of it); the YAML header is not parsed, so the `jupyter:`
//! metadata (kernel, main language, jupytext format options such as `comment_magics`) is
//! dropped and the main language is always Python; only Python magics are uncommented (a cell
//! with `language` metadata and an `active` key keeps its commented lines); lines end at
//! `\n`, `\r\n` or `\r` only (Python's `str.splitlines` also splits at form feeds and other
//! separators); jupytext's layout metadata (`lines_to_next_cell`) is not recorded.

use std::path::Path;

use serde_json::{Map, Value};

use super::cell::{Cell, CellKind};
use super::error::NotebookError;
use super::percent_options::marker_options;
use super::text::{file_lines, python_splitlines};
use super::{Notebook, NotebookFormat, python_truthy as truthy};

/// Parses the bytes of a percent `.py` file.
pub(super) fn parse(path: &Path, bytes: &[u8]) -> Result<Notebook, NotebookError> {
    let (bom_len, body) = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => (3, rest),
        None => (0, bytes),
    };
    let text = std::str::from_utf8(body).map_err(|err| NotebookError::NotUtf8 {
        path: path.to_path_buf(),
        offset: bom_len + err.valid_up_to(),
    })?;
    Ok(Notebook {
        path: path.to_path_buf(),
        format: NotebookFormat::Percent,
        cells: parse_cells(text),
        document: None,
    })
}

/// Splits a percent script into cells.
fn parse_cells(text: &str) -> Vec<Cell> {
    let lines = file_lines(text);
    let mut cells = Vec::new();
    let (header_cell, mut pos) = read_header(&lines);
    if let Some(cell) = header_cell {
        cells.push(cell);
    }
    let first_pos = pos;
    while pos < lines.len() {
        let (cell, next_pos) = read_cell(&lines, pos);
        let blank_prelude = pos == first_pos
            && !is_marker(lines[pos])
            && lines[pos..next_pos].iter().all(|line| is_blank(line));
        if !blank_prelude {
            cells.push(cell);
        }
        pos = next_pos;
    }
    for (cell_idx, cell) in cells.iter_mut().enumerate() {
        cell.index = cell_idx;
        set_cell_language(cell);
    }
    cells
}

/// `^\s*$`
fn is_blank(line: &str) -> bool {
    line.chars().all(char::is_whitespace)
}

/// `^\s*#\s*%%(%*)\s(.*)$`: returns the text after the first `%%`.
fn marker_with_options(line: &str) -> Option<&str> {
    let rest = line
        .trim_start()
        .strip_prefix('#')?
        .trim_start()
        .strip_prefix("%%")?;
    let after_percents = rest.trim_start_matches('%');
    after_percents
        .starts_with(char::is_whitespace)
        .then_some(rest)
}

/// `^\s*#\s*(%%|<codecell>|In\[[0-9 ]*\]:?)\s*$`
fn is_bare_marker(line: &str) -> bool {
    let Some(rest) = line.trim_start().strip_prefix('#') else {
        return false;
    };
    let rest = rest.trim();
    if rest == "%%" || rest == "<codecell>" {
        return true;
    }
    let Some(inner) = rest.strip_prefix("In[") else {
        return false;
    };
    let inner = inner.strip_suffix(':').unwrap_or(inner);
    inner
        .strip_suffix(']')
        .is_some_and(|number| number.chars().all(|ch| ch.is_ascii_digit() || ch == ' '))
}

/// Whether a line starts a cell.
fn is_marker(line: &str) -> bool {
    marker_with_options(line).is_some() || is_bare_marker(line)
}

/// Removes `# ` or `#` from the start of each line (jupytext's `uncomment`); an empty prefix
/// leaves the lines as they are.
fn uncomment(lines: &mut [String], prefix: &str) {
    if prefix.is_empty() {
        return;
    }
    let prefix_and_space = format!("{prefix} ");
    for line in lines {
        if let Some(rest) = line.strip_prefix(&prefix_and_space) {
            *line = rest.to_owned();
        } else if let Some(rest) = line.strip_prefix(prefix) {
            *line = rest.to_owned();
        }
    }
}

/// Removes `# ` or `#` from the start of one line; an empty prefix leaves it as it is.
fn uncomment_line<'a>(line: &'a str, prefix: &str) -> &'a str {
    if prefix.is_empty() {
        return line;
    }
    line.strip_prefix(prefix)
        .map_or(line, |rest| rest.strip_prefix(' ').unwrap_or(rest))
}

/// A Markdown code fence: its character and length.
type Fence = (char, usize);

/// ``^ {0,3}(`{3,}|~{3,})(.*)$``: the fence and the text after it.
fn code_fence(text: &str) -> Option<(Fence, &str)> {
    let indent = text.len() - text.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &text[indent..];
    let fence_char = rest.chars().next().filter(|&ch| ch == '`' || ch == '~')?;
    let len = rest.len() - rest.trim_start_matches(fence_char).len();
    (len >= 3).then(|| ((fence_char, len), &rest[len..]))
}

/// jupytext's `_opening_fence`: a line that opens a fenced code block.
fn opening_fence(text: &str) -> Option<Fence> {
    let (fence, info) = code_fence(text)?;
    (!(fence.0 == '`' && info.contains('`'))).then_some(fence)
}

/// jupytext's `_closes_fence`: same character, at least as long, no info string.
fn closes_fence(text: &str, open: Fence) -> bool {
    code_fence(text).is_some_and(|(fence, info)| {
        fence.0 == open.0 && fence.1 >= open.1 && info.trim().is_empty()
    })
}

/// Reads the jupytext YAML header, if any: returns the raw cell for its non-`jupyter` keys
/// and the position of the first line after it (and after the shebang and coding lines).
fn read_header(lines: &[&str]) -> (Option<Cell>, usize) {
    let mut header: Vec<&str> = Vec::new();
    let mut in_jupyter = false;
    let mut start = 0;
    let mut header_start = None;
    let mut end = None;
    for (line_idx, &line) in lines.iter().enumerate() {
        if line_idx == 0 && line.starts_with("#!") {
            start = 1;
            continue;
        }
        if (line_idx == 0 || (line_idx == 1 && !is_coding_comment(lines[0])))
            && is_coding_comment(line)
        {
            start = line_idx + 1;
            continue;
        }
        let Some(commented) = line.strip_prefix('#') else {
            break;
        };
        let line = commented.strip_prefix(' ').unwrap_or(commented);
        if line.strip_prefix("---").is_some_and(is_blank) {
            if header_start.is_none() {
                header_start = Some(line_idx);
                continue;
            }
            end = Some(line_idx);
            break;
        }
        if header_start.is_none() && !line.trim().is_empty() {
            break;
        }
        if is_jupyter_key(line) {
            in_jupyter = true;
        } else if !line.is_empty() && !line.starts_with(char::is_whitespace) {
            in_jupyter = false;
        }
        if !in_jupyter {
            header.push(line);
        }
    }
    let (Some(header_start), Some(mut end)) = (header_start, end) else {
        return (None, start);
    };
    if let Some(next) = lines.get(end + 1) {
        let next = next
            .strip_prefix('#')
            .map_or(*next, |rest| rest.strip_prefix(' ').unwrap_or(rest));
        if is_blank(next) {
            end += 1;
        }
    }
    let cell = (!header.is_empty()).then(|| {
        let mut source = String::from("---\n");
        for line in &header {
            source.push_str(line);
            source.push('\n');
        }
        source.push_str("---");
        Cell {
            kind: CellKind::Raw,
            source,
            id: None,
            metadata: Map::new(),
            title: None,
            line: header_start + 1,
            source_line: header_start + 1,
            index: 0,
        }
    });
    (cell, end + 1)
}

/// `^jupyter\s*:\s*$`
fn is_jupyter_key(line: &str) -> bool {
    line.strip_prefix("jupyter")
        .map(str::trim_start)
        .and_then(|rest| rest.strip_prefix(':'))
        .is_some_and(is_blank)
}

/// `^[ \t\f]*#.*?coding[:=][ \t]*([-_.a-zA-Z0-9]+)` (PEP 263).
fn is_coding_comment(line: &str) -> bool {
    let Some(comment) = line
        .trim_start_matches([' ', '\t', '\x0c'])
        .strip_prefix('#')
    else {
        return false;
    };
    comment.match_indices("coding").any(|(pos, _)| {
        let rest = &comment[pos + "coding".len()..];
        rest.strip_prefix([':', '='])
            .map(|rest| rest.trim_start_matches([' ', '\t']))
            .and_then(|rest| rest.chars().next())
            .is_some_and(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'))
    })
}

/// jupytext's `is_active(ext, metadata, default)`: whether a cell is active in a file of the
/// given extension (`ipynb` or `py`).
fn is_active(ext: &str, metadata: &Map<String, Value>, default: bool) -> bool {
    if metadata
        .get("run_control")
        .and_then(|run_control| run_control.get("frozen"))
        .is_some_and(|frozen| *frozen == Value::Bool(true))
    {
        return ext == "ipynb";
    }
    if let Some(Value::Array(tags)) = metadata.get("tags") {
        for tag in tags.iter().filter_map(Value::as_str) {
            if tag.starts_with("active-") {
                return tag.split('-').any(|part| part == ext);
            }
        }
    }
    match metadata.get("active") {
        None => default,
        Some(Value::String(active)) => active.split(['.', ',']).any(|part| part == ext),
        Some(_) => false,
    }
}

/// Reads the cell that starts at `lines[start]`; returns it and the position of the next one.
fn read_cell(lines: &[&str], start: usize) -> (Cell, usize) {
    let first = lines[start];
    let options = marker_with_options(first).map(marker_options);
    let explicit_start = options.is_some() || is_bare_marker(first);
    let (mut metadata, cell_type) = match options {
        Some(options) => (options.metadata, options.cell_type),
        None => (Map::new(), None),
    };
    let language = metadata.shift_remove("language");

    // `find_cell_end`: the cell type, then the next marker outside strings.
    let mut comment = "#";
    let kind = if let Some(cell_type) = cell_type {
        match cell_type.as_str() {
            Some("code") => CellKind::Code,
            Some("markdown") => CellKind::Markdown,
            _ => CellKind::Raw,
        }
    } else if !is_active("ipynb", &metadata, true) {
        if metadata.get("active").and_then(Value::as_str) == Some("") {
            metadata.shift_remove("active");
        }
        if is_active("py", &metadata, true) {
            comment = "";
        }
        CellKind::Raw
    } else {
        CellKind::Code
    };
    let language_name = language.as_ref().filter(|language| truthy(language));
    let mut next_cell = lines.len();
    let mut parser = StringParser::for_language(language_name);
    let mut fence = None;
    for (line_idx, &line) in lines.iter().enumerate().skip(start) {
        if parser.is_quoted() {
            parser.read_line(line);
            continue;
        }
        parser.read_line(line);
        if matches!(kind, CellKind::Markdown | CellKind::Raw) {
            // A fenced block (a mermaid diagram, say) may hold `%%` lines that are not markers.
            let text = uncomment_line(line, comment);
            if let Some(open) = fence {
                if closes_fence(text, open) {
                    fence = None;
                }
                continue;
            }
            if let Some(open) = opening_fence(text)
                && lines[line_idx + 1..]
                    .iter()
                    .any(|next| closes_fence(uncomment_line(next, comment), open))
            {
                fence = Some(open);
                continue;
            }
        }
        if line_idx > start && is_marker(line) {
            next_cell = line_idx;
            break;
        }
    }
    // Blank lines separate cells: two (whitespace-only lines count) when the line before them
    // is not blank, else one truly empty line (a line with spaces is content).
    let mut end = next_cell;
    if end - start >= 3
        && !is_blank(lines[end - 3])
        && is_blank(lines[end - 2])
        && is_blank(lines[end - 1])
    {
        end -= 2;
    } else if end > start && lines[end - 1].is_empty() {
        end -= 1;
    }
    let source_start = if explicit_start { start + 1 } else { start };
    let source_lines: Vec<String> = lines[source_start.min(end)..end]
        .iter()
        .map(|&line| line.to_owned())
        .collect();

    let content = extract_content(source_lines, kind, &mut metadata, language_name, comment);
    if let Some(language) = language_name {
        metadata.insert("language".to_owned(), language.clone());
    }
    let title = metadata
        .get("title")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let cell = Cell {
        kind,
        source: content.join("\n"),
        id: None,
        metadata,
        title,
        line: start + 1,
        source_line: source_start + 1,
        index: 0,
    };
    (cell, next_cell)
}

/// jupytext's `extract_content` and `uncomment_code_and_magics` for a `.py` script.
fn extract_content(
    mut lines: Vec<String>,
    kind: CellKind,
    metadata: &mut Map<String, Value>,
    language: Option<&Value>,
    comment: &str,
) -> Vec<String> {
    if !is_active("py", metadata, kind == CellKind::Code)
        && let Some(content) = triple_quoted_content(&lines, metadata)
    {
        return content;
    }
    let other_language = !metadata.contains_key("active")
        && language.is_some_and(|language| language.as_str() != Some("python"));
    if !is_active("py", metadata, true) || other_language {
        uncomment(&mut lines, comment);
        return lines;
    }
    uncomment_magics(&mut lines, language);
    if kind == CellKind::Code {
        unescape_code_start(&mut lines, language);
    } else {
        uncomment(&mut lines, comment);
    }
    lines
}

/// A cell that is a single triple-quoted string (optionally `r`-prefixed): the string's lines,
/// recording the quotes as `cell_marker` the way jupytext does.
fn triple_quoted_content(
    lines: &[String],
    metadata: &mut Map<String, Value>,
) -> Option<Vec<String>> {
    let joined = lines.join("\n");
    let content = joined.trim();
    for prefix in ["", "r", "R"] {
        for triple_quote in ["\"\"\"", "'''"] {
            let mut left = format!("{prefix}{triple_quote}");
            let mut right = triple_quote.to_owned();
            if !(content.starts_with(&left)
                && content.ends_with(&right)
                && content.len() >= left.len() + right.len())
            {
                continue;
            }
            let mut inner = &content[left.len()..content.len() - right.len()];
            if let Some(rest) = inner.strip_prefix('\n') {
                inner = rest;
                left.push('\n');
            }
            if let Some(rest) = inner.strip_suffix('\n') {
                inner = rest;
                right.insert(0, '\n');
            }
            let marker = if prefix.is_empty() {
                (left.len() == 4 && right.len() == 4).then(|| left[..3].to_owned())
            } else if left.len() - 1 == 4 && right.len() == 4 {
                Some(left[..4].to_owned())
            } else {
                Some(format!("{left},{right}"))
            };
            if let Some(marker) = marker {
                metadata.insert("cell_marker".to_owned(), Value::from(marker));
            }
            return Some(python_splitlines(inner).map(str::to_owned).collect());
        }
    }
    None
}

/// Strips leading whitespace and any run of `# ` / `#` comment prefixes (the regex
/// `^\s*(# |#)*` of jupytext's magic patterns).
fn strip_comment_prefixes(line: &str) -> &str {
    let mut rest = line.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix("# ") {
            rest = after;
        } else if let Some(after) = rest.strip_prefix('#') {
            rest = after;
        } else {
            return rest;
        }
    }
}

/// `(%|%%|%%%)[a-zA-Z]` at the start of `text`: returns what follows the letter.
fn magic_after_percents(text: &str) -> Option<&str> {
    let percents = text.chars().take_while(|&ch| ch == '%').count();
    if !(1..=3).contains(&percents) {
        return None;
    }
    let rest = &text[percents..];
    rest.starts_with(|ch: char| ch.is_ascii_alphabetic())
        .then(|| &rest[1..])
}

/// Whether `text` contains `#\s*word`.
fn has_comment_word(text: &str, word: &str) -> bool {
    text.match_indices('#')
        .any(|(pos, _)| text[pos + 1..].trim_start().starts_with(word))
}

/// The shell commands that jupytext treats as magics when they are not followed by `=` or `,`.
const PYTHON_MAGIC_COMMANDS: [&str; 15] = [
    "cat", "cd", "cp", "mv", "rm", "rmdir", "mkdir", "copy", "ddir", "echo", "ls", "ldir", "mkdir",
    "ren", "rmdir",
];

/// jupytext's `is_magic(line, "python", explicitly_code=True)`: whether a (possibly commented)
/// line is an `IPython` magic, a shell escape or a help request.
fn is_magic(line: &str) -> bool {
    let after_comments = strip_comment_prefixes(line);
    let magic_rest = magic_after_percents(after_comments);
    // `_MAGIC_FORCE_ESC_RE` and `_MAGIC_NOT_ESC_RE`.
    if magic_rest.is_some_and(|rest| has_comment_word(rest, "escape")) {
        return true;
    }
    if magic_rest.is_some_and(|rest| has_comment_word(rest, "noescape")) {
        return false;
    }
    // `_MAGIC_RE`.
    if magic_rest.is_some() {
        return true;
    }
    // `_PYTHON_HELP_OR_BASH_CMD`: `^\s*(# |#)*\s*(\?|!)\s*[A-Za-z\.\~\$\\\/\{\}]`.
    if let Some(rest) = after_comments.trim_start().strip_prefix(['?', '!'])
        && rest.trim_start().starts_with(|ch: char| {
            ch.is_ascii_alphabetic() || matches!(ch, '.' | '~' | '$' | '\\' | '/' | '{' | '}')
        })
    {
        return true;
    }
    // The other patterns have no leading `\s*`.
    let unindented_rest = strip_comment_prefixes_unindented(line);
    if is_magic_assignment(unindented_rest) {
        return true;
    }
    // `_IPYTHON_MAGIC_HELP` (explicitly code): `^\s*(# )*[^\s]*\?\s*$`.
    let mut help = line.trim_start();
    while let Some(rest) = help.strip_prefix("# ") {
        help = rest;
    }
    let help = help.trim_end();
    if help.ends_with('?') && !help.contains(char::is_whitespace) {
        return true;
    }
    // `_PYTHON_MAGIC_CMD`: `^(# |#)*(cat|cd|...)($|\s$|\s[^=,])`.
    PYTHON_MAGIC_COMMANDS.iter().any(|command| {
        unindented_rest.strip_prefix(command).is_some_and(|after| {
            let mut chars = after.chars();
            match chars.next() {
                None => true,
                Some(ch) if ch.is_whitespace() => !matches!(chars.next(), Some('=' | ',')),
                Some(_) => false,
            }
        })
    })
}

/// `^(# |#)*` without leading whitespace.
fn strip_comment_prefixes_unindented(line: &str) -> &str {
    if line.starts_with('#') {
        strip_comment_prefixes(line)
    } else {
        line
    }
}

/// `_PYTHON_MAGIC_ASSIGN` after the comment prefixes:
/// `\s*([a-zA-Z_][a-zA-Z_$0-9]*)\s*=\s*(%|%%|%%%|!)[a-zA-Z]`.
fn is_magic_assignment(text: &str) -> bool {
    let text = text.trim_start();
    if !text.starts_with(|ch: char| ch.is_ascii_alphabetic() || ch == '_') {
        return false;
    }
    let rest =
        text.trim_start_matches(|ch: char| ch.is_ascii_alphanumeric() || ch == '_' || ch == '$');
    let Some(value) = rest.trim_start().strip_prefix('=') else {
        return false;
    };
    let value = value.trim_start();
    magic_after_percents(value).is_some()
        || value
            .strip_prefix('!')
            .is_some_and(|rest| rest.starts_with(|ch: char| ch.is_ascii_alphabetic()))
}

/// Removes one level of comment from a line, keeping its indentation (jupytext's `unesc`).
fn unescape(line: &str) -> String {
    let unindented = line.trim_start();
    let indent = &line[..line.len() - unindented.len()];
    if let Some(rest) = unindented.strip_prefix("# ") {
        format!("{indent}{rest}")
    } else if let Some(rest) = unindented.strip_prefix('#') {
        format!("{indent}{rest}")
    } else {
        line.to_owned()
    }
}

/// Uncomments the commented magics of a cell (jupytext's `uncomment_magic`), and the lines
/// that continue them with a trailing backslash. Only Python magics are recognized: a cell in
/// another language (`language` metadata) keeps its lines.
fn uncomment_magics(lines: &mut [String], language: Option<&Value>) {
    let is_python = language.is_none_or(|language| {
        language
            .as_str()
            .is_some_and(|name| usual_language_name(name) == "python")
    });
    if !is_python {
        return;
    }
    let mut parser = StringParser::for_language(language);
    let mut next_is_magic = false;
    for line in lines {
        let original = line.clone();
        if !parser.is_quoted() && (next_is_magic || is_magic(&original)) {
            *line = unescape(&original);
            next_is_magic = original.trim_end().ends_with('\\');
        }
        parser.read_line(&original);
    }
}

/// `^(# |#)*(#|# )\+`: a commented light-script marker `# +`, which jupytext escapes with one
/// more `# ` in code cells.
fn is_escaped_code_start(line: &str) -> bool {
    line.starts_with('#') && strip_comment_prefixes_unindented(line).starts_with('+')
}

/// Removes the extra `# ` jupytext adds before commented `# +` lines (`unescape_code_start`).
fn unescape_code_start(lines: &mut [String], language: Option<&Value>) {
    let mut parser = StringParser::for_language(language);
    for line in lines {
        let original = line.clone();
        if !parser.is_quoted() && is_escaped_code_start(&original) {
            let unescaped = unescape(&original);
            if is_escaped_code_start(&unescaped) {
                *line = unescaped;
            }
        }
        parser.read_line(&original);
    }
}

/// The languages jupytext turns into a cell magic (`_JUPYTER_LANGUAGES`: the Jupyter magic
/// languages and the languages of the scripts jupytext knows).
const JUPYTER_LANGUAGES: &[&str] = &[
    "R",
    "bash",
    "sh",
    "python",
    "python2",
    "python3",
    "coconut",
    "javascript",
    "js",
    "perl",
    "html",
    "latex",
    "markdown",
    "pypy",
    "ruby",
    "script",
    "svg",
    "matlab",
    "octave",
    "idl",
    "robotframework",
    "sas",
    "spark",
    "sql",
    "cython",
    "haskell",
    "tcl",
    "gnuplot",
    "wolfram language",
    "julia",
    "c++",
    "scheme",
    "clojure",
    "powershell",
    "q",
    "typescript",
    "scala",
    "rust",
    "csharp",
    "fsharp",
    "sos",
    "java",
    "groovy",
    "sage",
    "ocaml",
    "maxima",
    "stata",
    "xonsh",
    "lua",
    "go",
    "c#",
    "f#",
    "cs",
    "fs",
];

/// jupytext's `usual_language_name`.
fn usual_language_name(language: &str) -> String {
    let lower = language.to_lowercase();
    match lower.as_str() {
        "r" => "R".to_owned(),
        "octave" => "matlab".to_owned(),
        "cs" | "c#" => "csharp".to_owned(),
        "fs" | "f#" => "fsharp".to_owned(),
        "sas" => "SAS".to_owned(),
        _ if lower.starts_with("c++") => "c++".to_owned(),
        _ => lower,
    }
}

/// The `language` handling of jupytext's `set_main_and_cell_language` for a Python script:
/// `language="python"` is dropped; another known language becomes a cell magic (`%%R`).
fn set_cell_language(cell: &mut Cell) {
    let Some(Value::String(language)) = cell.metadata.get("language") else {
        return;
    };
    let language = language.clone();
    if language == "python" {
        cell.metadata.shift_remove("language");
        return;
    }
    if usual_language_name(&language) == "python" || !JUPYTER_LANGUAGES.contains(&language.as_str())
    {
        return;
    }
    cell.metadata.shift_remove("language");
    let magic = match cell.metadata.shift_remove("magic_args") {
        Some(Value::String(args)) => format!("%%{language} {args}\n"),
        Some(args) => format!("%%{language} {args}\n"),
        None => format!("%%{language}\n"),
    };
    cell.source.insert_str(0, &magic);
    cell.source_line = cell.source_line.saturating_sub(1);
}

/// jupytext's `StringParser` for Python: tells whether the next line starts inside a string
/// (only triple-quoted strings span lines).
#[derive(Debug)]
struct StringParser {
    /// Python quoting rules (triple quotes); false for R.
    python: bool,
    /// The language's line comment, if jupytext knows it.
    comment: Option<&'static str>,
    single: Option<char>,
    triple: Option<char>,
}

impl Default for StringParser {
    fn default() -> Self {
        Self {
            python: true,
            comment: Some("#"),
            single: None,
            triple: None,
        }
    }
}

impl StringParser {
    /// The parser for a cell's `language` metadata (jupytext's `StringParser(language)`);
    /// Python when there is none.
    fn for_language(language: Option<&Value>) -> Self {
        match language {
            None => Self::default(),
            Some(language) => {
                let name = language.as_str();
                Self {
                    python: name != Some("R"),
                    comment: name.and_then(language_comment),
                    single: None,
                    triple: None,
                }
            }
        }
    }

    fn is_quoted(&self) -> bool {
        self.single.is_some() || self.triple.is_some()
    }

    fn read_line(&mut self, line: &str) {
        if !self.is_quoted()
            && self
                .comment
                .is_some_and(|comment| line.trim_start().starts_with(comment))
        {
            return;
        }
        if !line.contains(['"', '\'']) {
            // Only quotes change the state; the comment check below only stops the scan.
            if self.python {
                self.single = None;
            }
            return;
        }
        let chars: Vec<(usize, char)> = line.char_indices().collect();
        let mut triple_start: Option<usize> = None;
        for (char_idx, &(byte_idx, ch)) in chars.iter().enumerate() {
            if self.single.is_none()
                && self.triple.is_none()
                && self
                    .comment
                    .is_some_and(|comment| line[byte_idx..].starts_with(comment))
            {
                break;
            }
            if ch != '"' && ch != '\'' {
                continue;
            }
            if char_idx > 0 && chars[char_idx - 1].1 == '\\' {
                continue;
            }
            if self.single == Some(ch) {
                self.single = None;
                continue;
            }
            if self.single.is_some() || !self.python {
                continue;
            }
            let closes_three = char_idx >= 2
                && chars[char_idx - 2].1 == ch
                && chars[char_idx - 1].1 == ch
                && triple_start.is_none_or(|start| char_idx >= start + 3);
            if closes_three {
                if self.triple == Some(ch) {
                    self.triple = None;
                    triple_start = Some(char_idx);
                    continue;
                }
                if self.triple.is_some() {
                    continue;
                }
                self.triple = Some(ch);
                triple_start = Some(char_idx);
                continue;
            }
            if self.triple.is_some() {
                continue;
            }
            self.single = Some(ch);
        }
        if self.python {
            self.single = None;
        }
    }
}

/// The line comment of a language jupytext knows (`_COMMENT`).
fn language_comment(language: &str) -> Option<&'static str> {
    Some(match language {
        "python" | "coconut" | "R" | "julia" | "bash" | "powershell" | "robotframework" | "sos"
        | "sage" | "tcl" | "gnuplot" | "xonsh" => "#",
        "c++" | "javascript" | "typescript" | "scala" | "rust" | "csharp" | "fsharp" | "java"
        | "groovy" | "stata" | "go" => "//",
        "scheme" | "clojure" => ";;",
        "q" => "/",
        "matlab" => "%",
        "wolfram language" | "ocaml" => "(*",
        "idl" => ";",
        "haskell" | "lua" => "--",
        "maxima" | "sas" => "/*",
        _ => return None,
    })
}
