"""Runs a notebook's code cells top to bottom in one namespace, as Jupyter would, and prints a
JSON list with each cell's captured stdout and error (the reference for nbmemo's results).

Usage: python sequential.py NOTEBOOK.ipynb|NOTEBOOK.py
"""

import contextlib
import io
import json
import os
import sys
import traceback


def code_cells(path):
    text = open(path, encoding="utf-8").read()
    if path.endswith(".ipynb"):
        nb = json.loads(text)
        cells = []
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                source = cell["source"]
                cells.append(source if isinstance(source, str) else "".join(source))
        return cells
    # Percent format: `# %%` starts a cell; `[markdown]`, `[md]` and `[raw]` cells are not code.
    cells, current, is_code, seen_marker = [], [], True, False
    for line in text.splitlines(keepends=True):
        if line.startswith("# %%"):
            if is_code and (seen_marker or "".join(current).strip()):
                cells.append("".join(current))
            header = line[4:]
            is_code = not any(kind in header for kind in ("[markdown]", "[md]", "[raw]"))
            current, seen_marker = [], True
            continue
        current.append(line)
    if is_code:
        cells.append("".join(current))
    return cells


def main():
    path = sys.argv[1]
    os.chdir(os.path.dirname(os.path.abspath(path)))
    # As in Jupyter (and nbmemo's workers): modules beside the notebook are importable.
    sys.path[0] = ""
    namespace = {"__name__": "__main__"}
    results = []
    for source in code_cells(path):
        out = io.StringIO()
        error = None
        with contextlib.redirect_stdout(out):
            try:
                exec(compile(source, "<cell>", "exec"), namespace)
            except Exception as exc:  # noqa: BLE001 - the reference records every error
                error = type(exc).__name__
        results.append({"stdout": out.getvalue(), "error": error})
    print(json.dumps(results))


if __name__ == "__main__":
    main()
