"""The reference for the notebook corpus: runs a notebook's code cells top to bottom in ONE
interpreter and one namespace, as a Jupyter kernel would, and prints one JSON object:

    {"cells": [{"stdout": "...", "stderr": "...", "error": {"ename", "evalue"} | null,
                "outputs": [nbformat outputs]}]}

Usage: python reference.py NOTEBOOK.ipynb|NOTEBOOK.py

It mirrors what nbmemo's worker (src/exec/python/runner.py) does around a cell, so that the
only differences left are those of the execution model:
- the working directory is the notebook's folder, `sys.path[0]` is "" and MPLBACKEND=Agg;
- each cell is compiled as `<cell N>` (N: index among the code cells) and its source is put in
  linecache, so warnings and tracebacks name the same places;
- the last expression statement's value is displayed (an `execute_result`) unless the cell
  ends with `;`; `display()` is a builtin; `text/plain` is IPython's pretty printer when
  IPython can be imported, else `repr`; a matplotlib figure also gets an `image/png` rendered
  as the inline backend does;
- after each cell every open pyplot figure is displayed and closed (`plt.show()` in a cell
  does the same at that point);
- a cell that raises records the exception and the next cell still runs.
"""

import binascii
import builtins
import io
import json
import linecache
import os
import sys
import tokenize
import traceback
import types


def percent_cells(text):
    """Code cells of a jupytext percent script (the subset of the format the corpus uses: a
    YAML header between `# ---` lines, `# %%` markers with optional titles and metadata,
    `[markdown]`/`[md]`/`[raw]` cells)."""
    lines = text.splitlines(keepends=True)
    pos = 0
    if lines and lines[0].rstrip() == "# ---":
        for end in range(1, len(lines)):
            if lines[end].rstrip() == "# ---":
                pos = end + 1
                if pos < len(lines) and not lines[pos].strip():
                    pos += 1
                break
    cells, current, is_code, seen_marker = [], [], True, False

    def flush():
        if is_code and (seen_marker or "".join(current).strip()):
            cells.append("".join(current).rstrip("\n") + "\n")

    for line in lines[pos:]:
        stripped = line.strip()
        if stripped == "# %%" or stripped.startswith("# %% "):
            flush()
            header = stripped[4:]
            is_code = not any(kind in header for kind in ("[markdown]", "[md]", "[raw]"))
            current, seen_marker = [], True
            continue
        current.append(line)
    flush()
    return cells


def code_cells(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.endswith(".ipynb"):
        cells = []
        for cell in json.loads(text)["cells"]:
            if cell["cell_type"] == "code":
                source = cell["source"]
                cells.append(source if isinstance(source, str) else "".join(source))
        return cells
    return percent_cells(text)


def display_suppressed(source):
    """The cell's last token (ignoring comments and layout) is `;` (Jupyter hides the value)."""
    last = None
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                            tokenize.DEDENT, tokenize.ENDMARKER):
                continue
            last = tok
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return False
    return last is not None and last.type == tokenize.OP and last.string == ";"


class Recorder:
    """The outputs of the running cell, in order (consecutive stream writes merged)."""

    def __init__(self):
        self.outputs = []
        self.text = {"stdout": [], "stderr": []}

    def stream(self, name, text):
        if not text:
            return
        self.text[name].append(text)
        last = self.outputs[-1] if self.outputs else None
        if last is not None and last["output_type"] == "stream" and last["name"] == name:
            last["text"] += text
        else:
            self.outputs.append({"output_type": "stream", "name": name, "text": text})

    def add(self, output):
        self.outputs.append(output)


class CellStream(io.TextIOBase):
    encoding = "utf-8"
    errors = "backslashreplace"

    def __init__(self, name):
        super().__init__()
        self.name_ = name

    def write(self, s):
        if RECORDER is not None:
            RECORDER.stream(self.name_, s)
        return len(s)

    def writable(self):
        return True

    def isatty(self):
        return False

    def flush(self):
        pass


RECORDER = None
PRETTY = None


def plain(obj):
    global PRETTY
    if PRETTY is None:
        try:
            from IPython.lib.pretty import pretty

            PRETTY = pretty
        except Exception:
            PRETTY = repr
    return PRETTY(obj)


def is_figure(obj):
    mod = sys.modules.get("matplotlib.figure")
    return mod is not None and isinstance(obj, getattr(mod, "Figure", ()))


def figure_png(fig):
    if not fig.axes and not fig.lines:
        return None
    buf = io.BytesIO()
    fig.canvas.print_figure(buf, format="png", bbox_inches="tight",
                            facecolor=fig.get_facecolor(), edgecolor=fig.get_edgecolor(),
                            dpi=fig.dpi)
    return binascii.b2a_base64(buf.getvalue(), newline=False).decode("ascii")


def format_bundle(obj):
    data = {}
    method = None if isinstance(obj, type) else getattr(obj, "_repr_mimebundle_", None)
    if callable(method):
        try:
            res = method(include=None, exclude=None)
            bundle = res[0] if isinstance(res, tuple) and len(res) == 2 else res
            if isinstance(bundle, dict):
                data.update({k: v for k, v in bundle.items() if isinstance(v, (str, dict, list))})
        except Exception:
            traceback.print_exc(file=sys.stderr)
    if is_figure(obj) and "image/png" not in data:
        png = figure_png(obj)
        if png is not None:
            data["image/png"] = png
    if "text/plain" not in data:
        data["text/plain"] = plain(obj)
    for mime, name in (("text/html", "_repr_html_"), ("text/markdown", "_repr_markdown_"),
                       ("image/svg+xml", "_repr_svg_"), ("text/latex", "_repr_latex_")):
        if mime in data or isinstance(obj, type):
            continue
        method = getattr(obj, name, None)
        if not callable(method):
            continue
        try:
            value = method()
        except NotImplementedError:
            continue
        except Exception:
            traceback.print_exc(file=sys.stderr)
            continue
        if isinstance(value, tuple) and len(value) == 2:
            value = value[0]
        if isinstance(value, str):
            data[mime] = value
    return data


def display(*objs, **kwargs):
    if RECORDER is None:
        print(*objs)
        return None
    for obj in objs:
        data = format_bundle(obj)
        if data:
            RECORDER.add({"output_type": "display_data", "data": data, "metadata": {}})
    return None


def show_figures():
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    from matplotlib._pylab_helpers import Gcf

    managers = list(Gcf.get_all_fig_managers())
    for manager in managers:
        display(manager.canvas.figure)
    if managers:
        plt.close("all")


def patch_pyplot():
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None and not getattr(plt.show, "_reference", False):
        def show(*args, **kwargs):
            show_figures()

        show._reference = True
        plt.show = show


def split_last_expression(source, filename, suppressed):
    import ast

    tree = ast.parse(source, filename)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr) and not suppressed:
        last = ast.Expression(tree.body.pop().value)
    body = compile(tree, filename, "exec")
    return body, (compile(last, filename, "eval") if last is not None else None)


def main():
    global RECORDER
    path = os.path.abspath(sys.argv[1])
    os.chdir(os.path.dirname(path))
    os.environ.setdefault("MPLBACKEND", "Agg")
    if not sys.path or sys.path[0] != "":
        sys.path[0] = ""
    builtins.display = display
    real_stdout = sys.stdout
    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = module
    ns = module.__dict__
    results = []
    for idx, source in enumerate(code_cells(path)):
        filename = "<cell %d>" % idx
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        RECORDER = Recorder()
        sys.stdout, sys.stderr = CellStream("stdout"), CellStream("stderr")
        error = None
        try:
            try:
                body, last = split_last_expression(source, filename, display_suppressed(source))
                exec(body, ns)
                patch_pyplot()
                if last is not None:
                    value = eval(last, ns)
                    patch_pyplot()
                    if value is not None:
                        data = format_bundle(value)
                        RECORDER.add({"output_type": "execute_result", "execution_count": None,
                                      "data": data, "metadata": {}})
                    value = None
            except Exception as exc:  # noqa: BLE001 - the reference records every error
                error = {"ename": type(exc).__name__, "evalue": str(exc)}
                RECORDER.add({"output_type": "error", "ename": error["ename"],
                              "evalue": error["evalue"],
                              "traceback": traceback.format_exception(exc)})
            patch_pyplot()
            show_figures()
        finally:
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        results.append({
            "stdout": "".join(RECORDER.text["stdout"]),
            "stderr": "".join(RECORDER.text["stderr"]),
            "error": error,
            "outputs": RECORDER.outputs,
        })
        RECORDER = None
    real_stdout.write(json.dumps({"cells": results}))
    real_stdout.flush()


if __name__ == "__main__":
    main()
