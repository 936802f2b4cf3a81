//! Table-driven tests of both readers: each case is an input and the expected rendering of
//! the parsed cells (or the exact error message), plus no-panic loops over truncated and
//! mutated inputs.

use std::fmt::Write as _;
use std::path::Path;

use super::{CellKind, Notebook, NotebookError, NotebookFormat, parse_notebook, read_notebook};

/// Parses `text` as the file `name`.
fn parse(name: &str, text: &str) -> Result<Notebook, NotebookError> {
    parse_notebook(Path::new(name), text.as_bytes())
}

/// Renders cells one per block: a header line, then the source indented by four spaces (an
/// empty source has no lines).
fn render(notebook: &Notebook) -> String {
    let mut out = String::new();
    for cell in &notebook.cells {
        let kind = cell.kind.as_str();
        let _ = write!(
            out,
            "[{}] {kind} line={} source_line={}",
            cell.index, cell.line, cell.source_line
        );
        if let Some(title) = &cell.title {
            let _ = write!(out, " title={title:?}");
        }
        if let Some(id) = &cell.id {
            let _ = write!(out, " id={id:?}");
        }
        if !cell.metadata.is_empty() {
            let metadata = serde_json::to_string(&cell.metadata).unwrap_or_default();
            let _ = write!(out, " metadata={metadata}");
        }
        out.push('\n');
        if !cell.source.is_empty() {
            for line in cell.source.split('\n') {
                // Trailing whitespace is shown as `·` so that it survives in the expectations.
                let content = line.trim_end();
                let trailing = "·".repeat(line[content.len()..].chars().count());
                let _ = writeln!(out, "{}", format!("    {content}{trailing}").trim_end());
            }
        }
    }
    out
}

/// Runs a table of `(name, file name, input, expected rendering or error)` and reports every
/// mismatch at once.
fn check_table(cases: &[(&str, &str, &str, &str)]) {
    let mut failures = String::new();
    for &(case, file_name, input, expected) in cases {
        let actual = match parse(file_name, input) {
            Ok(notebook) => {
                for (position, cell) in notebook.cells.iter().enumerate() {
                    assert_eq!(cell.index, position, "{case}: index");
                }
                render(&notebook)
            }
            Err(err) => format!("error: {err}\n"),
        };
        let expected = unindent(expected);
        if actual != expected {
            let _ = write!(
                failures,
                "--- case `{case}`\nexpected:\n{expected}actual:\n{actual}\n"
            );
        }
    }
    assert!(failures.is_empty(), "{failures}");
}

/// Removes the common indentation of an expected rendering written as an indented raw string
/// (and its first and last lines when they are blank: the line breaks around the text).
fn unindent(text: &str) -> String {
    let mut lines: Vec<&str> = text.split('\n').collect();
    if lines.first().is_some_and(|line| line.trim().is_empty()) {
        lines.remove(0);
    }
    if lines.last().is_some_and(|line| line.trim().is_empty()) {
        lines.pop();
    }
    let indent = lines
        .iter()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.len() - line.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out = String::new();
    for line in lines {
        out.push_str(line.get(indent..).unwrap_or("").trim_end_matches(' '));
        out.push('\n');
    }
    out
}

#[test]
#[allow(clippy::too_many_lines, reason = "a table of cases")]
fn percent_cells() {
    check_table(&[
        (
            "no markers: the whole file is one code cell",
            "nb.py",
            "import os\nx = 1\n",
            r"
            [0] code line=1 source_line=1
                import os
                x = 1
            ",
        ),
        ("empty file: no cells", "nb.py", "", ""),
        ("only blank lines: no cells", "nb.py", "\n \n\n", ""),
        (
            "title",
            "nb.py",
            "# %% Load data\nx = 1\n",
            r#"
            [0] code line=1 source_line=2 title="Load data" metadata={"title":"Load data"}
                x = 1
            "#,
        ),
        (
            "[markdown] with commented lines",
            "nb.py",
            "# %% [markdown]\n# # Heading\n#\n# Some *text*\n",
            r"
            [0] markdown line=1 source_line=2
                # Heading

                Some *text*
            ",
        ),
        (
            "[md] is markdown and keeps its region name",
            "nb.py",
            "# %% [md]\n# hello\n",
            r#"
            [0] markdown line=1 source_line=2 metadata={"region_name":"md"}
                hello
            "#,
        ),
        (
            "[raw]",
            "nb.py",
            "# %% [raw]\n# raw text\n#not spaced\n",
            r"
            [0] raw line=1 source_line=2
                raw text
                not spaced
            ",
        ),
        (
            "title, tags as JSON and a key=\"value\" pair",
            "nb.py",
            "# %% Title tags=[\"a\", \"b\"] key=\"value\"\nx\n",
            r#"
            [0] code line=1 source_line=2 title="Title" metadata={"tags":["a","b"],"key":"value","title":"Title"}
                x
            "#,
        ),
        (
            "JSON object metadata",
            "nb.py",
            "# %% {\"tags\": [\"x\"]}\nx\n",
            r#"
            [0] code line=1 source_line=2 metadata={"tags":["x"]}
                x
            "#,
        ),
        (
            "markdown with a JSON value",
            "nb.py",
            "# %% [markdown] slideshow={\"slide_type\": \"slide\"}\n# Hi\n",
            r#"
            [0] markdown line=1 source_line=2 metadata={"slideshow":{"slide_type":"slide"}}
                Hi
            "#,
        ),
        (
            "Python literals as values",
            "nb.py",
            "# %% tags=['a'] flag=True n=-2 t=(1, 'x')\nx\n",
            r#"
            [0] code line=1 source_line=2 metadata={"tags":["a"],"flag":true,"n":-2,"t":[1,"x"]}
                x
            "#,
        ),
        (
            "an unquoted value is incorrectly encoded, as in jupytext",
            "nb.py",
            "# %% key=value\nx\n",
            r#"
            [0] code line=1 source_line=2 metadata={"incorrectly_encoded_metadata":"key=value"}
                x
            "#,
        ),
        (
            "attributes after the title",
            "nb.py",
            "# %% My title .class\nx\n",
            r#"
            [0] code line=1 source_line=2 title="My title" metadata={".class":null,"title":"My title"}
                x
            "#,
        ),
        (
            "text before the first marker is a code cell",
            "nb.py",
            "import os\n\n# %%\nx = 1\n",
            r"
            [0] code line=1 source_line=1
                import os
            [1] code line=3 source_line=4
                x = 1
            ",
        ),
        (
            "blank lines before the first marker are not a cell",
            "nb.py",
            "\n\n# %%\nx = 1\n",
            r"
            [0] code line=3 source_line=4
                x = 1
            ",
        ),
        (
            "a YAML header with only jupyter metadata is not a cell",
            "nb.py",
            "# ---\n# jupyter:\n#   jupytext:\n#     text_representation:\n#       format_name: percent\n#   kernelspec:\n#     name: python3\n# ---\n\n# %%\nx = 1\n",
            r"
            [0] code line=10 source_line=11
                x = 1
            ",
        ),
        (
            "other YAML keys become a raw cell",
            "nb.py",
            "# ---\n# title: Demo\n# jupyter:\n#   kernelspec:\n#     name: python3\n# ---\n\n# %%\nx\n",
            r"
            [0] raw line=1 source_line=1
                ---
                title: Demo
                ---
            [1] code line=8 source_line=9
                x
            ",
        ),
        (
            "an unterminated header is ordinary text",
            "nb.py",
            "# ---\n# title: Demo\nx = 1\n",
            r"
            [0] code line=1 source_line=1
                # ---
                # title: Demo
                x = 1
            ",
        ),
        (
            "shebang and coding lines are not part of a cell",
            "nb.py",
            "#!/usr/bin/env python\n# -*- coding: utf-8 -*-\nimport os\n# %%\nx\n",
            r"
            [0] code line=3 source_line=3
                import os
            [1] code line=4 source_line=5
                x
            ",
        ),
        (
            "CRLF line endings and a BOM",
            "nb.py",
            "\u{feff}# %%\r\nx = 1\r\n\r\n# %% [markdown]\r\n# hi\r\n",
            r"
            [0] code line=1 source_line=2
                x = 1
            [1] markdown line=4 source_line=5
                hi
            ",
        ),
        (
            "trailing blank lines: two removed, or one empty line; spaces are content",
            "nb.py",
            "# %%\nx = 1\n\n\n# %%\ny = 2\n\n\n\n# %%\nz = 3\n \t\n# %%\nw\n\n",
            "
            [0] code line=1 source_line=2
                x = 1
            [1] code line=5 source_line=6
                y = 2


            [2] code line=10 source_line=11
                z = 3
                ··
            [3] code line=13 source_line=14
                w
            ",
        ),
        (
            "leading blank lines are kept",
            "nb.py",
            "# %%\n\nx = 1\n",
            r"
            [0] code line=1 source_line=2

                x = 1
            ",
        ),
        (
            "bare markers",
            "nb.py",
            "#%%\na\n# In[2]:\nb\n# <codecell>\nc\n  #  %%  \nd\n",
            r"
            [0] code line=1 source_line=2
                a
            [1] code line=3 source_line=4
                b
            [2] code line=5 source_line=6
                c
            [3] code line=7 source_line=8
                d
            ",
        ),
        (
            "no space after %% is not a marker but a commented cell magic",
            "nb.py",
            "# %%\n# %%time\nx = 1\n# %%%\n",
            r"
            [0] code line=1 source_line=2
                %%time
                x = 1
                # %%%
            ",
        ),
        (
            "commented magics are uncommented in code cells",
            "nb.py",
            "# %%\n# %matplotlib inline\n# !pip install x\n# a regular comment\n  # %time f()\n# x = !ls\n",
            r"
            [0] code line=1 source_line=2
                %matplotlib inline
                !pip install x
                # a regular comment
                  %time f()
                x = !ls
            ",
        ),
        (
            "a marker inside a triple-quoted string is not a marker",
            "nb.py",
            "# %%\nx = \"\"\"\n# %%\n\"\"\"\n# %%\ny\n",
            r#"
            [0] code line=1 source_line=2
                x = """
                # %%
                """
            [1] code line=5 source_line=6
                y
            "#,
        ),
        (
            "Spyder sub-cells",
            "nb.py",
            "# %%% Sub\nx\n",
            r#"
            [0] code line=1 source_line=2 title="Sub" metadata={"cell_depth":1,"title":"Sub"}
                x
            "#,
        ),
        (
            "a markdown cell as a triple-quoted string",
            "nb.py",
            "# %% [markdown]\n\"\"\"\nSome *text*\n\"\"\"\n",
            r#"
            [0] markdown line=1 source_line=2 metadata={"cell_marker":"\"\"\""}
                Some *text*
            "#,
        ),
        (
            "active-ipynb cells are commented code",
            "nb.py",
            "# %% active=\"ipynb\"\n# %pip install x\n# print(1)\n",
            r#"
            [0] code line=1 source_line=2 metadata={"active":"ipynb"}
                %pip install x
                print(1)
            "#,
        ),
        (
            "active-py cells are raw",
            "nb.py",
            "# %% active=\"py\"\nprint(1)\n",
            r#"
            [0] raw line=1 source_line=2 metadata={"active":"py"}
                print(1)
            "#,
        ),
        (
            "another language becomes a cell magic",
            "nb.py",
            "# %% language=\"R\"\n# x <- 1\n",
            r"
            [0] code line=1 source_line=1
                %%R
                x <- 1
            ",
        ),
        (
            "escaped light-script markers are unescaped",
            "nb.py",
            "# %%\n# # +\nx\n",
            r"
            [0] code line=1 source_line=2
                # +
                x
            ",
        ),
        (
            "no final newline, empty cells",
            "nb.py",
            "# %%\n# %%\nx",
            r"
            [0] code line=1 source_line=2
            [1] code line=2 source_line=3
                x
            ",
        ),
        (
            "a fenced block in a markdown cell may hold %% lines",
            "nb.py",
            "# %% [markdown]\n# ```mermaid\n# %% not a marker\n# ```\n# %%\nx\n",
            r"
            [0] markdown line=1 source_line=2
                ```mermaid
                %% not a marker
                ```
            [1] code line=5 source_line=6
                x
            ",
        ),
        (
            "an unclosed fence is not a fence",
            "nb.py",
            "# %% [markdown]\n# ```\n# %%\nx\n",
            r"
            [0] markdown line=1 source_line=2
                ```
            [1] code line=3 source_line=4
                x
            ",
        ),
        (
            "lone CR line endings",
            "nb.py",
            "# %%\rx\r# %%\ry\r",
            r"
            [0] code line=1 source_line=2
                x
            [1] code line=3 source_line=4
                y
            ",
        ),
    ]);
}

#[test]
fn percent_tags() {
    let notebook = parse(
        "nb.py",
        "# %% tags=[\"parameters\", 3, \"nbmemo: always\"]\nx\n",
    );
    let notebook = notebook.unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(notebook.cells[0].tags(), ["parameters", "nbmemo: always"]);
    assert_eq!(notebook.format, NotebookFormat::Percent);
    assert_eq!(notebook.document, None);
    assert_eq!(notebook.code_cells().count(), 1);
}

/// A small nbformat 4.5 notebook: cell ids, metadata, outputs, source as a list and as a
/// string, and key orders that are not sorted.
const V4_NOTEBOOK: &str = r##"{
 "nbformat": 4,
 "nbformat_minor": 5,
 "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}, "custom": [1, 2]},
 "cells": [
  {"cell_type": "markdown", "id": "intro", "metadata": {}, "source": ["# Title\n", "\n", "Text"]},
  {"id": "load", "cell_type": "code", "execution_count": 3, "metadata": {"tags": ["parameters"], "z": 1, "a": 2},
   "outputs": [{"output_type": "stream", "name": "stdout", "text": ["hi\n"]}],
   "source": "x = 1\nprint(x)"},
  {"cell_type": "raw", "metadata": {"format": "text/plain"}, "source": []}
 ]
}"##;

#[test]
fn ipynb_v4() {
    let notebook = parse("nb.ipynb", V4_NOTEBOOK).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(
        notebook.format,
        NotebookFormat::Ipynb {
            nbformat: 4,
            nbformat_minor: 5,
            upgraded_from: None
        }
    );
    let expected = unindent(
        r#"
        [0] markdown line=0 source_line=0 id="intro"
            # Title

            Text
        [1] code line=0 source_line=0 id="load" metadata={"tags":["parameters"],"z":1,"a":2}
            x = 1
            print(x)
        [2] raw line=0 source_line=0 metadata={"format":"text/plain"}
        "#,
    );
    assert_eq!(render(&notebook), expected);
    assert_eq!(notebook.cells[1].tags(), ["parameters"]);
    assert_eq!(
        notebook
            .code_cells()
            .map(|cell| cell.index)
            .collect::<Vec<_>>(),
        [1]
    );
    // The document is kept whole, outputs and key order included.
    let original: serde_json::Value =
        serde_json::from_str(V4_NOTEBOOK).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(notebook.document.as_ref(), Some(&original));
    let written = serde_json::to_string(&notebook.document).unwrap_or_default();
    let compact = serde_json::to_string(&original).unwrap_or_default();
    assert_eq!(written, compact);
    assert!(
        written.starts_with(r#"{"nbformat":4,"nbformat_minor":5,"metadata":{"kernelspec":{"name""#)
    );
    assert!(written.contains(r#"{"id":"load","cell_type":"code","execution_count":3"#));
    assert!(
        written.contains(r#""outputs":[{"output_type":"stream","name":"stdout","text":["hi\n"]}]"#)
    );
}

#[test]
fn ipynb_cells() {
    check_table(&[
        (
            "unknown minor version, no metadata, no ids",
            "nb.ipynb",
            r#"{"nbformat": 4, "nbformat_minor": 99, "cells": [{"cell_type": "code", "source": ["a\n", "b"], "outputs": []}]}"#,
            r"
            [0] code line=0 source_line=0
                a
                b
            ",
        ),
        (
            "missing nbformat_minor, empty cells",
            "nb.ipynb",
            r#"{"nbformat": 4, "cells": []}"#,
            "",
        ),
        (
            "BOM and surrounding whitespace",
            "nb.ipynb",
            "\u{feff}\n  {\"nbformat\": 4, \"nbformat_minor\": 2, \"cells\": [{\"cell_type\": \"markdown\", \"metadata\": {}, \"source\": \"*hi*\"}]}\n\n",
            r"
            [0] markdown line=0 source_line=0
                *hi*
            ",
        ),
        (
            "upper-case extension",
            "NB.IPYNB",
            r#"{"nbformat": 4, "nbformat_minor": 0, "cells": [{"cell_type": "raw", "source": ""}]}"#,
            r"
            [0] raw line=0 source_line=0
            ",
        ),
    ]);
}

/// An nbformat 3 notebook with two worksheets, a heading, outputs of every v3 kind, and the
/// fields that the upgrade renames or drops.
const V3_NOTEBOOK: &str = r#"{
 "metadata": {"name": "old", "signature": "sha256:0", "kernel_info": {"name": "python"}},
 "nbformat": 3,
 "nbformat_minor": 0,
 "worksheets": [
  {"cells": [
    {"cell_type": "heading", "level": 2, "metadata": {}, "source": ["Section\n", "title"]},
    {"cell_type": "code", "collapsed": false, "input": ["x = 1\n", "x"], "language": "python",
     "metadata": {}, "outputs": [
       {"output_type": "pyout", "prompt_number": 1, "metadata": {"png": {"width": 10}}, "text": ["1"], "png": "iVBOR", "json": "{\"a\": 1}"},
       {"output_type": "stream", "stream": "stderr", "text": "warn\n"},
       {"output_type": "display_data", "html": "<b>x</b>", "metadata": {}},
       {"output_type": "pyerr", "ename": "E", "evalue": "v", "traceback": []}
     ], "prompt_number": 1}
  ], "metadata": {}},
  {"cells": [
    {"cell_type": "markdown", "metadata": {}, "source": "Second *worksheet*"},
    {"cell_type": "html", "source": "<i>old</i>"},
    {"cell_type": "raw", "metadata": {}, "source": "raw"}
  ]}
 ]
}"#;

#[test]
#[allow(clippy::too_many_lines, reason = "a table of cases")]
fn ipynb_v3_upgrade() {
    let notebook = parse("old.ipynb", V3_NOTEBOOK).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(
        notebook.format,
        NotebookFormat::Ipynb {
            nbformat: 4,
            nbformat_minor: 0,
            upgraded_from: Some(3)
        }
    );
    let expected = unindent(
        r#"
        [0] markdown line=0 source_line=0
            ## Section title
        [1] code line=0 source_line=0 metadata={"collapsed":false}
            x = 1
            x
        [2] markdown line=0 source_line=0
            Second *worksheet*
        [3] markdown line=0 source_line=0
            <i>old</i>
        [4] raw line=0 source_line=0
            raw
        "#,
    );
    assert_eq!(render(&notebook), expected);
    let document = serde_json::to_string_pretty(&notebook.document).unwrap_or_default();
    let expected_document = r###"{
  "metadata": {
    "kernel_info": {
      "name": "python"
    },
    "orig_nbformat": 3,
    "orig_nbformat_minor": 0
  },
  "nbformat": 4,
  "nbformat_minor": 0,
  "cells": [
    {
      "cell_type": "markdown",
      "metadata": {},
      "source": "## Section title"
    },
    {
      "cell_type": "code",
      "metadata": {
        "collapsed": false
      },
      "outputs": [
        {
          "output_type": "execute_result",
          "metadata": {
            "image/png": {
              "width": 10
            }
          },
          "execution_count": 1,
          "data": {
            "text/plain": [
              "1"
            ],
            "image/png": "iVBOR",
            "application/json": {
              "a": 1
            }
          }
        },
        {
          "output_type": "stream",
          "text": "warn\n",
          "name": "stderr"
        },
        {
          "output_type": "display_data",
          "metadata": {},
          "data": {
            "text/html": "<b>x</b>"
          }
        },
        {
          "output_type": "error",
          "ename": "E",
          "evalue": "v",
          "traceback": []
        }
      ],
      "source": [
        "x = 1\n",
        "x"
      ],
      "execution_count": 1
    },
    {
      "cell_type": "markdown",
      "metadata": {},
      "source": "Second *worksheet*"
    },
    {
      "cell_type": "markdown",
      "source": "<i>old</i>",
      "metadata": {}
    },
    {
      "cell_type": "raw",
      "metadata": {},
      "source": "raw"
    }
  ]
}"###;
    assert_eq!(document, expected_document);
}

#[test]
#[allow(clippy::too_many_lines, reason = "a table of cases")]
fn errors() {
    let png: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR";
    let byte_cases: &[(&str, &[u8], &str)] = &[
        (
            "nb.ipynb",
            png,
            "`nb.ipynb` is a binary file, not a JSON notebook (NUL byte at byte 8)",
        ),
        (
            "nb.ipynb",
            b"{\"nbformat\": 4,\x00}",
            "`nb.ipynb` is a binary file, not a JSON notebook (NUL byte at byte 15)",
        ),
        (
            "nb.ipynb",
            b"{\"nbformat\": \"\xff\"}",
            "`nb.ipynb` is not valid UTF-8 (byte 14)",
        ),
        (
            "nb.py",
            b"# %%\nx = '\xff'\n",
            "`nb.py` is not valid UTF-8 (byte 10)",
        ),
        (
            "nb.py",
            b"\xEF\xBB\xBFx = '\xc3'\n",
            "`nb.py` is not valid UTF-8 (byte 8)",
        ),
        ("nb.ipynb", b"", "`nb.ipynb` is empty"),
        ("nb.ipynb", b" \n\t\r\n", "`nb.ipynb` is empty"),
        ("nb.ipynb", b"\xEF\xBB\xBF\n", "`nb.ipynb` is empty"),
    ];
    let mut failures = String::new();
    for &(name, bytes, expected) in byte_cases {
        let actual = match parse_notebook(Path::new(name), bytes) {
            Ok(notebook) => format!("parsed {} cells", notebook.cells.len()),
            Err(err) => err.to_string(),
        };
        if actual != expected {
            let _ = writeln!(
                failures,
                "{name} {bytes:?}:\n  expected: {expected}\n  actual:   {actual}"
            );
        }
    }
    assert!(failures.is_empty(), "{failures}");

    check_table(&[
        (
            "unknown extension",
            "nb.txt",
            "{}",
            "error: `nb.txt` is not a notebook: expected a `.ipynb` file or a jupytext percent `.py` file",
        ),
        (
            "no extension",
            "Makefile",
            "",
            "error: `Makefile` is not a notebook: expected a `.ipynb` file or a jupytext percent `.py` file",
        ),
        (
            "invalid JSON",
            "nb.ipynb",
            "{\n  \"nbformat\": 4,\n  \"cells\": [}\n",
            "error: `nb.ipynb` is not valid JSON: expected value at line 3, column 13",
        ),
        (
            "missing comma",
            "nb.ipynb",
            "{\"nbformat\": 4\n \"cells\": []}",
            "error: `nb.ipynb` is not valid JSON: expected `,` or `}` at line 2, column 2",
        ),
        (
            "truncated JSON",
            "nb.ipynb",
            "{\"nbformat\": 4, \"cells\": [",
            "error: `nb.ipynb` is not valid JSON: EOF while parsing a list at line 1, column 26",
        ),
        (
            "trailing characters",
            "nb.ipynb",
            "{\"nbformat\": 4, \"cells\": []} x",
            "error: `nb.ipynb` is not valid JSON: trailing characters at line 1, column 30",
        ),
        (
            "top level is not an object",
            "nb.ipynb",
            "[1, 2]",
            "error: `nb.ipynb`: the notebook must be a JSON object, found an array",
        ),
        (
            "nbformat 5",
            "nb.ipynb",
            r#"{"nbformat": 5, "nbformat_minor": 0, "cells": []}"#,
            "error: `nb.ipynb` uses nbformat 5, which nbmemo does not read (supported: 3 and 4)",
        ),
        (
            "nbformat 2",
            "nb.ipynb",
            r#"{"nbformat": 2, "worksheets": []}"#,
            "error: `nb.ipynb` uses nbformat 2, which nbmemo does not read (supported: 3 and 4)",
        ),
        (
            "negative nbformat",
            "nb.ipynb",
            r#"{"nbformat": -4}"#,
            "error: `nb.ipynb` uses nbformat -4, which nbmemo does not read (supported: 3 and 4)",
        ),
        (
            "missing nbformat",
            "nb.ipynb",
            r#"{"cells": []}"#,
            "error: `nb.ipynb` does not say which nbformat it uses: `nbformat` is missing (supported: 3 and 4)",
        ),
        (
            "nbformat is a string",
            "nb.ipynb",
            r#"{"nbformat": "4", "cells": []}"#,
            "error: `nb.ipynb` does not say which nbformat it uses: `nbformat` must be an integer, found a string (supported: 3 and 4)",
        ),
        (
            "nbformat is a float",
            "nb.ipynb",
            r#"{"nbformat": 4.5, "cells": []}"#,
            "error: `nb.ipynb` does not say which nbformat it uses: `nbformat` must be an integer, found a number (supported: 3 and 4)",
        ),
        (
            "nbformat_minor is a string",
            "nb.ipynb",
            r#"{"nbformat": 4, "nbformat_minor": "5", "cells": []}"#,
            "error: `nb.ipynb`: `nbformat_minor` must be a non-negative integer, found a string",
        ),
        (
            "missing cells",
            "nb.ipynb",
            r#"{"nbformat": 4, "nbformat_minor": 5}"#,
            "error: `nb.ipynb`: `cells` is missing",
        ),
        (
            "cells is an object",
            "nb.ipynb",
            r#"{"nbformat": 4, "cells": {}}"#,
            "error: `nb.ipynb`: `cells` must be an array, found an object",
        ),
        (
            "cell is not an object",
            "nb.ipynb",
            r#"{"nbformat": 4, "cells": ["x = 1"]}"#,
            "error: `nb.ipynb`, cell 0: the cell must be a JSON object, found a string",
        ),
        (
            "source is a number",
            "nb.ipynb",
            r#"{"nbformat": 4, "cells": [{"cell_type": "code", "source": ""}, {"cell_type": "code", "source": 3}]}"#,
            "error: `nb.ipynb`, cell 1: `source` must be a string or a list of strings, found a number",
        ),
        (
            "source list holds a number",
            "nb.ipynb",
            r#"{"nbformat": 4, "cells": [{"cell_type": "code", "source": ["a", 1]}]}"#,
            "error: `nb.ipynb`, cell 0: `source` must be a string or a list of strings, found a list containing a number",
        ),
        (
            "missing source",
            "nb.ipynb",
            r#"{"nbformat": 4, "cells": [{"cell_type": "code"}]}"#,
            "error: `nb.ipynb`, cell 0: `source` is missing",
        ),
        (
            "missing cell_type",
            "nb.ipynb",
            r#"{"nbformat": 4, "cells": [{"source": ""}]}"#,
            "error: `nb.ipynb`, cell 0: `cell_type` is missing",
        ),
        (
            "cell_type is not a string",
            "nb.ipynb",
            r#"{"nbformat": 4, "cells": [{"cell_type": null, "source": ""}]}"#,
            "error: `nb.ipynb`, cell 0: `cell_type` must be a string, found null",
        ),
        (
            "unknown cell_type",
            "nb.ipynb",
            r#"{"nbformat": 4, "cells": [{"cell_type": "heading", "source": ""}]}"#,
            "error: `nb.ipynb`, cell 0: unknown cell_type `heading` (expected `code`, `markdown` or `raw`)",
        ),
        (
            "metadata is not an object",
            "nb.ipynb",
            r#"{"nbformat": 4, "cells": [{"cell_type": "code", "source": "", "metadata": []}]}"#,
            "error: `nb.ipynb`, cell 0: `metadata` must be an object, found an array",
        ),
        (
            "id is not a string",
            "nb.ipynb",
            r#"{"nbformat": 4, "cells": [{"cell_type": "code", "source": "", "id": 7}]}"#,
            "error: `nb.ipynb`, cell 0: `id` must be a string, found a number",
        ),
        (
            "v3: worksheets is not an array",
            "nb.ipynb",
            r#"{"nbformat": 3, "worksheets": {}}"#,
            "error: `nb.ipynb`: `worksheets` must be an array, found an object",
        ),
        (
            "v3: worksheet without cells",
            "nb.ipynb",
            r#"{"nbformat": 3, "worksheets": [{"cells": []}, {}]}"#,
            "error: `nb.ipynb`, worksheet 1: `cells` is missing",
        ),
        (
            "v3: cells are numbered across worksheets",
            "nb.ipynb",
            r#"{"nbformat": 3, "worksheets": [{"cells": [{"cell_type": "code", "input": "x"}]}, {"cells": [{"cell_type": "markdown", "source": 1}]}]}"#,
            "error: `nb.ipynb`, cell 1: `source` must be a string or a list of strings, found a number",
        ),
        (
            "v3: metadata is not an object",
            "nb.ipynb",
            r#"{"nbformat": 3, "metadata": 1, "worksheets": []}"#,
            "error: `nb.ipynb`: `metadata` must be an object, found a number",
        ),
    ]);
}

#[test]
fn read_notebook_io() {
    let dir = tempfile::tempdir().unwrap_or_else(|err| panic!("{err}"));
    let missing = dir.path().join("missing.ipynb");
    let err = read_notebook(&missing).err().map(|err| err.to_string());
    assert_eq!(
        err.as_deref(),
        Some(
            format!(
                "failed to read `{}`: No such file or directory (os error 2)",
                missing.display()
            )
            .as_str()
        )
    );
    let not_a_notebook = dir.path().join("notes.txt");
    let err = read_notebook(&not_a_notebook).err();
    assert!(
        matches!(err, Some(NotebookError::UnknownExtension { .. })),
        "{err:?}"
    );
    assert_eq!(
        err.as_ref().map(NotebookError::path),
        Some(not_a_notebook.as_path())
    );

    let path = dir.path().join("nb.py");
    fs_err::write(&path, "# %%\nx = 1\n").unwrap_or_else(|err| panic!("{err}"));
    let notebook = read_notebook(&path).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(notebook.path, path);
    assert_eq!(notebook.cells.len(), 1);
    assert_eq!(notebook.cells[0].kind, CellKind::Code);
}

/// A deterministic xorshift generator, so the fuzz loops need no extra crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(bound).unwrap_or(1)).unwrap_or(0)
    }
}

/// A percent script that exercises the header, markers, options, magics and strings.
const PERCENT_SAMPLE: &str = "#!/usr/bin/env python\n# ---\n# title: x\n# jupyter:\n#   kernelspec:\n#     name: python3\n# ---\n\n# %% Title tags=[\"a\", 'b'] k=\"v\" {\"x\": 1}\nimport os  # é\n# %matplotlib inline\n\n\n# %% [markdown] slideshow={\"slide_type\": \"slide\"}\n# # Heading —\n#\n\"\"\"\n# %%\n\"\"\"\n# %%% Sub .cls\nx = '''\n'''\n# %% active=\"ipynb\" language=\"R\" n=0x1F f=1e-3 t=(1,)\n# x <- 1\n";

/// Parsing must never panic: not on truncated files, nor on random byte mutations.
#[test]
fn no_panic_on_truncated_or_mutated_input() {
    let samples: [(&str, &str); 4] = [
        ("nb.ipynb", V4_NOTEBOOK),
        ("nb.ipynb", V3_NOTEBOOK),
        ("nb.py", PERCENT_SAMPLE),
        ("nb.py", V4_NOTEBOOK),
    ];
    for (name, sample) in samples {
        let bytes = sample.as_bytes();
        for len in 0..=bytes.len() {
            let _ = parse_notebook(Path::new(name), &bytes[..len]);
        }
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let interesting: &[u8] = b"#%% \n\r\"'{}[]():,=.-_\\!?0aZ\x00\xff\xc3\xa9";
    for (name, sample) in samples {
        for _ in 0..3000 {
            let mut bytes = sample.as_bytes().to_vec();
            for _ in 0..=rng.below(6) {
                let pos = rng.below(bytes.len() + 1);
                match rng.below(3) {
                    0 if pos < bytes.len() => {
                        bytes.remove(pos);
                    }
                    1 => bytes.insert(pos, interesting[rng.below(interesting.len())]),
                    _ if pos < bytes.len() => {
                        bytes[pos] = interesting[rng.below(interesting.len())];
                    }
                    _ => {}
                }
            }
            let _ = parse_notebook(Path::new(name), &bytes);
            let _ = parse_notebook(Path::new("other.py"), &bytes);
        }
    }
}

/// Random marker lines and cell bodies made of the characters the option and magic parsers
/// look at, including multi-byte ones.
#[test]
fn no_panic_on_random_percent_lines() {
    let alphabet: Vec<char> = "#%= \"'{}[](),:.-_\\!?+eEjxrRuU019aTNé—\t"
        .chars()
        .collect();
    let mut rng = Rng(42);
    for _ in 0..20_000 {
        let mut text = String::from("# %% ");
        for _ in 0..rng.below(40) {
            let ch = alphabet[rng.below(alphabet.len())];
            text.push(ch);
            if rng.below(12) == 0 {
                text.push('\n');
            }
        }
        let _ = parse("nb.py", &text);
    }
}

/// Inputs built to exhaust the stack or the patience of a recursive parser.
#[test]
fn no_stack_overflow_on_pathological_input() {
    let many_attributes = format!("# %% {}\nx\n", ".a ".repeat(100_000));
    let notebook = parse("nb.py", &many_attributes).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(notebook.cells.len(), 1);
    let inputs = [
        format!("# %% x={}1\n", "-".repeat(100_000)),
        format!("# %% x={}\n", "[".repeat(100_000)),
        format!("# %% {{{}\n", "[".repeat(100_000)),
        format!("# %% {}\n", "=".repeat(100_000)),
        format!("# %% {}\n", "a=1 ".repeat(20_000)),
        format!("{}\n", "\"\"\"".repeat(100_000)),
        format!("# %% [markdown]\n{}", "# ```\n".repeat(20_000)),
    ];
    for input in &inputs {
        let _ = parse("nb.py", input);
    }
    let deep_json = format!("{{\"nbformat\": 4, \"cells\": {}", "[".repeat(100_000));
    let err = parse("nb.ipynb", &deep_json)
        .err()
        .map(|err| err.to_string());
    assert_eq!(
        err.as_deref(),
        Some("`nb.ipynb` is not valid JSON: recursion limit exceeded at line 1, column 152")
    );
}

#[test]
fn nbformat3_lines_without_endings_are_joined_with_newlines() {
    let v3 = r#"{"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": [{"cells": [
        {"cell_type": "code", "input": ["a = 1", "b = 2"], "language": "python", "outputs": []},
        {"cell_type": "heading", "level": 2, "source": ["Heading ", "one"]},
        {"cell_type": "code", "input": ["c = 1\n", "d = 2"], "language": "python", "outputs": []}
    ]}]}"#;
    let notebook = parse_notebook(std::path::Path::new("old.ipynb"), v3.as_bytes()).expect("reads");
    assert_eq!(notebook.cells[0].source, "a = 1\nb = 2");
    assert_eq!(notebook.cells[1].source, "## Heading  one");
    assert_eq!(notebook.cells[2].source, "c = 1\nd = 2");
}
