"""nbmemo side by side with what people run today: nbconvert, papermill, jupyter-cache, marimo.

The `baselines` scenario of bench/bench.py (`just bench --only baselines`). It creates its own
virtualenv, `.venv-bench`, with the pinned tools of bench/requirements-baselines.txt (numpy,
pandas and cloudpickle too: nbmemo's workers use the same interpreter, so every tool runs the
notebooks with the same Python and libraries), writes the notebooks as `.ipynb` under
target/bench/baselines/ (one folder per notebook and tool, so no tool sees another's cache),
and times whole processes from outside, each tool the way its documentation runs a notebook
headless:

- nbmemo: `nbmemo run nb.ipynb --python .venv-bench/bin/python -j N` (its cache: `.nbmemo`);
- nbconvert: `jupyter nbconvert --to notebook --execute nb.ipynb --output out` (nbclient and an
  ipykernel kernel; no cache: every run executes every cell);
- papermill: `papermill nb.ipynb out.ipynb --no-progress-bar` (same);
- jupyter-cache: `jcache project -p .jcache execute -t 600`, after `jcache notebook -p .jcache
  add nb.ipynb` (untimed, once per cold cache); it executes the notebooks whose code changed, the
  whole notebook each time, and keeps their outputs (`jcache notebook merge`, untimed, reads them
  back for the checks);
- marimo: `marimo convert nb.ipynb -o nb_raw.py` once (untimed), then every cell's body wrapped in
  `with mo.persistent_cache(name="cell_N"):` (marimo has no switch that caches every cell: its
  cell cache is this context manager, which saves the variables a block defines under
  `__marimo__/cache/` and, on a later run, restores them and skips the block when the block's
  code and the code and values of its ancestors are unchanged), and the notebook run as a script,
  `python nb_marimo.py`, the headless run marimo documents. Edits are made to the marimo file, as
  a marimo user would. `--marimo-export` adds a column that runs the same file with
  `marimo export html nb_marimo.py -o out.html` (marimo's kernel, not script mode).

Every run is checked: exit status 0, the last cell prints what plain `exec` of the same version
prints (whenever the tool shows it), and what ran is what the scenario claims (nbmemo's JSON
summary; jupyter-cache's executed count; marimo prints nothing on a run where every block was
restored). A failed check ends the harness with status 1.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

import bench as B
import notebooks

VENV = B.ROOT / ".venv-bench"
VENV_PYTHON = VENV / "bin" / "python"
REQUIREMENTS = B.ROOT / "bench" / "requirements-baselines.txt"
WORK = B.OUT / "baselines"
# Rows of the data notebook's DataFrame (48 bytes a row).
DATA_ROWS = 300_000
# The distributions whose versions the report names.
VERSIONED = ["nbconvert", "nbclient", "ipykernel", "jupyter_client", "papermill", "jupyter-cache", "marimo", "numpy", "pandas", "cloudpickle"]


# ---------------------------------------------------------------------------------------------
# The virtualenv


def ensure_venv() -> dict:
    """Creates or updates `.venv-bench` from the pinned requirements (wheels only); a stamp with
    the requirements' hash makes a second call free. Returns what it did and how long it took."""
    stamp = VENV / ".requirements-sha256"
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if VENV_PYTHON.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return {"action": "up to date", "seconds": 0.0}
    started = time.perf_counter()
    action = "updated"
    if not VENV_PYTHON.exists():
        B.log(f"bench: creating {VENV.relative_to(B.ROOT)} (the baselines' virtualenv, pinned wheels; about a minute)")
        shutil.rmtree(VENV, ignore_errors=True)
        result = subprocess.run([sys.executable, "-m", "venv", str(VENV)], capture_output=True, text=True)
        B.check(result.returncode == 0, f"python -m venv {VENV} failed:\n{result.stderr}")
        action = "created"
    else:
        B.log(f"bench: updating {VENV.relative_to(B.ROOT)} ({REQUIREMENTS.name} changed)")
    result = subprocess.run(
        [str(VENV_PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--only-binary=:all:",
         "-r", str(REQUIREMENTS)],
        capture_output=True, text=True,
    )
    B.check(result.returncode == 0, f"installing {REQUIREMENTS.name} into {VENV} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    stamp.write_text(digest + "\n")
    seconds = time.perf_counter() - started
    B.log(f"bench: {VENV.relative_to(B.ROOT)} {action} in {seconds:.0f} s")
    return {"action": action, "seconds": seconds}


def tool_env(base: dict) -> dict:
    """The environment every tool runs in: the venv first on PATH, and Jupyter's, IPython's and
    marimo's configuration and runtime folders inside target/ (no user configuration, no stray
    kernelspec), no update check."""
    home = WORK / "home"
    env = dict(base)
    env.update(
        PATH=f"{VENV / 'bin'}{os.pathsep}{base.get('PATH', '')}",
        VIRTUAL_ENV=str(VENV),
        JUPYTER_CONFIG_DIR=str(home / "jupyter-config"),
        JUPYTER_DATA_DIR=str(home / "jupyter-data"),
        JUPYTER_RUNTIME_DIR=str(home / "jupyter-runtime"),
        JUPYTER_PLATFORM_DIRS="1",
        IPYTHONDIR=str(home / "ipython"),
        XDG_CONFIG_HOME=str(home / "config"),
        MARIMO_SKIP_UPDATE_CHECK="1",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
    )
    env.pop("PYTHONPATH", None)
    return env


def versions(cfg: B.Config) -> dict:
    script = (
        "import json, platform, importlib.metadata as m\n"
        f"names = {VERSIONED!r}\n"
        "print(json.dumps({'python': platform.python_implementation() + ' ' + platform.python_version(),"
        " **{n: m.version(n) for n in names}}))"
    )
    _, result = B.timed([str(VENV_PYTHON), "-c", script], cfg)
    B.check(result.returncode == 0, f"cannot read the baselines' versions:\n{result.stderr}")
    found = json.loads(result.stdout)
    _, nbmemo = B.timed([str(cfg.nbmemo), "--version"], cfg)
    found["nbmemo"] = nbmemo.stdout.strip()
    return found


# ---------------------------------------------------------------------------------------------
# marimo: the converted notebook with a persistent cache around every cell


def with_persistent_cache(source: str) -> str:
    """The marimo notebook `source` (as `marimo convert` writes it) with the body of every cell
    inside `with mo.persistent_cache(name="cell_N"):`, and a first cell importing marimo as `mo`.

    Only indentation changes (lines inside a multi-line string are left alone), so comments and
    layout stay what the user wrote."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    inside_string = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.STRING and tok.end[0] > tok.start[0]:
            inside_string.update(range(tok.start[0] + 1, tok.end[0] + 1))
    cells = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef) or not any(ast.unparse(d).startswith("app.cell") for d in node.decorator_list):
            continue
        body = node.body[:-1] if node.body and isinstance(node.body[-1], ast.Return) else node.body
        if body:
            cells.append((node, body[0].lineno, body[-1].end_lineno))
    B.check(bool(cells), "marimo convert wrote no cell")
    for n, (node, first, last) in reversed(list(enumerate(cells))):
        indent = lines[first - 1][: len(lines[first - 1]) - len(lines[first - 1].lstrip())]
        for number in range(first, last + 1):
            if number not in inside_string and lines[number - 1].strip():
                lines[number - 1] = "    " + lines[number - 1]
        lines.insert(first - 1, f'{indent}with mo.persistent_cache(name="cell_{n}"):\n')
        signature = next(i for i in range(node.lineno - 1, first - 1) if lines[i].lstrip().startswith("def _("))
        lines[signature] = lines[signature].replace("def _(", "def _(mo, " if node.args.args else "def _(mo", 1)
    text = "".join(lines)
    at = text.index("app = marimo.App(")
    end = text.index("\n", at) + 1
    result = text[:end] + "\n\n@app.cell\ndef _():\n    import marimo as mo\n    return (mo,)\n" + text[end:]
    ast.parse(result)
    return result


def replace_line(text: str, old: str, new: str) -> str:
    """`text` with its one line whose content is `old` replaced by `new` (same indentation)."""
    found = [i for i, line in enumerate(text.splitlines(keepends=True)) if line.strip() == old.strip()]
    B.check(len(found) == 1, f"expected one line `{old}` in the marimo notebook, found {len(found)}")
    lines = text.splitlines(keepends=True)
    line = lines[found[0]]
    lines[found[0]] = line[: len(line) - len(line.lstrip())] + new.strip() + "\n"
    return "".join(lines)


# ---------------------------------------------------------------------------------------------
# Tools


@dataclass
class Run:
    seconds: float
    ran: int | None = None  # cells (nbmemo) or notebooks (jupyter-cache) executed, when known
    last: str | None = None  # what the last cell printed, when the tool shows it
    report: dict | None = None
    stdout: str = ""


class Workspace:
    """One notebook family for one tool: target/bench/baselines/FAMILY/TOOL/, a project root
    (`.git`) holding `nb.ipynb` and the tool's cache."""

    def __init__(self, family: str, tool: str):
        self.dir = WORK / family / tool
        shutil.rmtree(self.dir, ignore_errors=True)
        (self.dir / ".git").mkdir(parents=True)
        self.notebook = self.dir / "nb.ipynb"


class Tool:
    key = ""
    label = ""
    cached = False  # keeps results between runs
    parallel = False  # can run independent cells at the same time

    def __init__(self, cfg: B.Config):
        self.cfg = cfg

    def write(self, ws: Workspace, cells: list[str], edit: tuple[str, str] | None) -> None:
        """The notebook's new version: `edit` (old line, new line) is the change from the
        previous one, None for a new notebook."""
        ws.notebook.write_text(notebooks.ipynb(cells))

    def clear(self, ws: Workspace) -> None:
        """Deletes the tool's cache (a cold run follows)."""

    def argv(self, ws: Workspace, jobs: int | None) -> list[str]:
        raise NotImplementedError

    def run(self, ws: Workspace, jobs: int | None = None, check_output: bool = True, memory: dict | None = None) -> Run:
        """Runs the notebook once (a whole process, timed from outside). With `memory` (a dict),
        also polls the process tree's memory and puts its summary there."""
        argv = self.argv(ws, jobs)
        if memory is None:
            elapsed, result = B.timed(argv, self.cfg, cwd=ws.dir)
        else:
            start = time.perf_counter()
            proc = subprocess.Popen(argv, cwd=ws.dir, env=self.cfg.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            with TreeMemory(proc.pid) as poller:
                stdout, stderr = proc.communicate(timeout=900)
            elapsed = time.perf_counter() - start
            result = subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)
            memory.update(poller.summary())
        B.check(result.returncode == 0, f"{self.label}: `{' '.join(map(str, argv))}` in {ws.dir} exited with {result.returncode}:\n"
                f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
        return self.parse(ws, Run(elapsed, stdout=result.stdout), result, check_output)

    def parse(self, ws: Workspace, run: Run, result: subprocess.CompletedProcess, check_output: bool) -> Run:
        return run


def last_stream(path: Path) -> str:
    """The stdout of the last code cell of an executed .ipynb."""
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    out = []
    for output in cells[-1].get("outputs", []):
        if output.get("output_type") == "stream" and output.get("name") == "stdout":
            text = output["text"]
            out.append("".join(text) if isinstance(text, list) else text)
    return "".join(out)


class Nbmemo(Tool):
    key, label, cached, parallel = "nbmemo", "nbmemo", True, True

    def clear(self, ws):
        shutil.rmtree(ws.dir / ".nbmemo", ignore_errors=True)

    def argv(self, ws, jobs):
        return [str(self.cfg.nbmemo), "run", ws.notebook.name, "--json", "--python", str(VENV_PYTHON), "-j", str(jobs or self.cfg.cores)]

    def parse(self, ws, run, result, check_output):
        report = json.loads(result.stdout)
        run.report = report
        run.ran = report["summary"]["ran"]
        run.last = report["cells"][-1]["stdout"]
        return run


class Nbconvert(Tool):
    key, label = "nbconvert", "nbconvert"

    def argv(self, ws, jobs):
        return [str(VENV / "bin" / "jupyter"), "nbconvert", "--to", "notebook", "--execute", ws.notebook.name, "--output", "out"]

    def parse(self, ws, run, result, check_output):
        run.last = last_stream(ws.dir / "out.ipynb")
        return run


class Papermill(Tool):
    key, label = "papermill", "papermill"

    def argv(self, ws, jobs):
        return [str(VENV / "bin" / "papermill"), ws.notebook.name, "out.ipynb", "--no-progress-bar"]

    def parse(self, ws, run, result, check_output):
        run.last = last_stream(ws.dir / "out.ipynb")
        return run


class JupyterCache(Tool):
    key, label, cached = "jcache", "jupyter-cache", True

    def jcache(self, ws, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        argv = [str(VENV / "bin" / "jcache"), *args]
        _, result = B.timed(argv, self.cfg, cwd=ws.dir, stdin=stdin)
        B.check(result.returncode == 0, f"`jcache {' '.join(args)}` in {ws.dir} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
        return result

    def write(self, ws, cells, edit):
        super().write(ws, cells, edit)
        if edit is None:
            self.clear(ws)

    def clear(self, ws):
        shutil.rmtree(ws.dir / ".jcache", ignore_errors=True)
        self.jcache(ws, "notebook", "-p", ".jcache", "add", ws.notebook.name, stdin="y\n")

    def argv(self, ws, jobs):
        return [str(VENV / "bin" / "jcache"), "project", "-p", ".jcache", "execute", "-t", "600"]

    def parse(self, ws, run, result, check_output):
        executing = re.search(r"Executing (\d+) notebook", result.stdout + result.stderr)
        B.check(executing is not None, f"jupyter-cache: unexpected output:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
        for status in ("excepted", "errored"):
            listed = re.search(rf"^{status}:\s*(.*)$", result.stdout, re.M)
            B.check(listed is None or listed.group(1).strip() == "[]", f"jupyter-cache: the notebook {status}:\n{result.stdout[-3000:]}")
        run.ran = int(executing.group(1))
        if check_output:
            self.jcache(ws, "notebook", "-p", ".jcache", "merge", ws.notebook.name, "out.ipynb")
            run.last = last_stream(ws.dir / "out.ipynb")
        return run


class Marimo(Tool):
    key, label, cached = "marimo", "marimo", True
    script = "nb_marimo.py"

    def write(self, ws, cells, edit):
        super().write(ws, cells, edit)
        target = ws.dir / self.script
        if edit is None:
            raw = ws.dir / "nb_raw.py"
            _, result = B.timed([str(VENV / "bin" / "marimo"), "-y", "-q", "convert", ws.notebook.name, "-o", raw.name], self.cfg, cwd=ws.dir)
            B.check(result.returncode == 0 and raw.exists(), f"marimo convert failed:\n{result.stdout}\n{result.stderr}")
            target.write_text(with_persistent_cache(raw.read_text()))
        else:
            target.write_text(replace_line(target.read_text(), *edit))

    def clear(self, ws):
        shutil.rmtree(ws.dir / "__marimo__", ignore_errors=True)

    def argv(self, ws, jobs):
        return [str(VENV_PYTHON), self.script]

    def parse(self, ws, run, result, check_output):
        # Every cell that ran printed its output; a block restored from the cache prints nothing.
        run.last = result.stdout.splitlines()[-1] + "\n" if result.stdout.strip() else None
        return run


class MarimoExport(Marimo):
    key, label = "marimo-export", "marimo export html"

    def argv(self, ws, jobs):
        return [str(VENV / "bin" / "marimo"), "-y", "-q", "export", "html", self.script, "-o", "out.html"]

    def parse(self, ws, run, result, check_output):
        return run  # the printed output is in the HTML, not checked


# ---------------------------------------------------------------------------------------------
# Peak memory of a process tree


class TreeMemory:
    """Polls /proc every few milliseconds while a process runs: each process of its tree, its
    peak resident set (VmHWM, kept by the kernel, so a short poll interval only misses what a
    process gains in its last milliseconds), and the peak of the tree's summed VmRSS."""

    def __init__(self, pid: int, interval: float = 0.01):
        self.root, self.interval = pid, interval
        self.peaks: dict[int, int] = {}
        self.names: dict[int, str] = {}
        self.parent: dict[int, int] = {}
        self.tree_peak = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()

    def children(self, pid: int) -> list[int]:
        found = []
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    found += [int(c) for c in f.read().split()]
        except OSError:
            pass
        return found

    def loop(self):
        while not self.done.is_set():
            pending, total = [self.root], 0
            while pending:
                pid = pending.pop()
                try:
                    with open(f"/proc/{pid}/status") as f:
                        status = f.read()
                    if pid not in self.names:
                        with open(f"/proc/{pid}/cmdline", "rb") as f:
                            self.names[pid] = " ".join(a.decode(errors="replace") for a in f.read().split(b"\0") if a)[:200]
                except OSError:
                    continue
                fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
                hwm = int(fields.get("VmHWM", "0 kB").split()[0]) * 1024
                rss = int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
                self.peaks[pid] = max(self.peaks.get(pid, 0), hwm)
                total += rss
                for child in self.children(pid):
                    self.parent.setdefault(child, pid)
                    pending.append(child)
            self.tree_peak = max(self.tree_peak, total)
            self.done.wait(self.interval)

    def summary(self) -> dict:
        others = {pid: peak for pid, peak in self.peaks.items() if pid != self.root and peak > 0}
        return {
            "root_bytes": self.peaks.get(self.root, 0),
            "children": len(others),
            "largest_child_bytes": max(others.values(), default=0),
            "children_sum_bytes": sum(others.values()),
            "tree_peak_bytes": self.tree_peak,
            "processes": {self.names.get(pid, "?"): peak for pid, peak in self.peaks.items()},
        }


# ---------------------------------------------------------------------------------------------
# The scenarios


@dataclass
class Cell:
    """One table cell: the runs of one tool in one scenario, or why there are none."""
    seconds: list[float] = field(default_factory=list)
    note: str = ""  # a footnote mark
    na: str = ""  # why the tool cannot do this scenario
    ran: list[int] = field(default_factory=list)

    @property
    def median(self) -> float | None:
        return B.median(self.seconds) if self.seconds else None


@dataclass
class Row:
    family: str
    label: str
    cells: dict[str, Cell] = field(default_factory=dict)


class Bench:
    def __init__(self, cfg: B.Config, tools: list[Tool], quick: bool):
        self.cfg, self.tools, self.quick = cfg, tools, quick
        self.rows: list[Row] = []
        self.data: dict = {}

    def reps(self, full: int, quick: int = 1) -> int:
        return quick if self.quick else full

    def row(self, family: str, label: str) -> Row:
        row = Row(family, label, {tool.key: Cell() for tool in self.tools})
        self.rows.append(row)
        return row

    def expected_last(self, versions: list[tuple[int, list[str]]]) -> list[str]:
        """What the last cell prints in plain `exec`, for each version of a notebook: `versions`
        is [(first changed cell, cells)], the first one the whole notebook (first changed cell 0).
        The later versions only re-execute their cells from the first changed one on, in the same
        namespace: valid because no cell of these notebooks changes a value an earlier cell bound."""
        script = (
            "import contextlib, io, json, sys\n"
            "versions = json.loads(sys.stdin.read())\n"
            "ns = {'__name__': '__main__'}\n"
            "last = []\n"
            "for start, cells in versions:\n"
            "    for i, src in enumerate(cells[start:], start):\n"
            "        buf = io.StringIO()\n"
            "        with contextlib.redirect_stdout(buf):\n"
            "            exec(compile(src, f'<cell {i}>', 'exec'), ns)\n"
            "    last.append(buf.getvalue())\n"
            "print(json.dumps(last))\n"
        )
        _, result = B.timed([str(VENV_PYTHON), "-c", script], self.cfg, stdin=json.dumps(versions))
        B.check(result.returncode == 0, f"the notebook does not run with plain exec:\n{result.stderr[-3000:]}")
        return json.loads(result.stdout)

    def check_run(self, tool: Tool, run: Run, expected: str | None, what: str) -> None:
        if expected is not None and run.last is not None:
            B.check(run.last == expected, f"{tool.label}, {what}: the last cell printed {run.last!r}, plain exec prints {expected!r}")

    def warm_up(self) -> None:
        """One untimed run per tool of a one-cell notebook importing numpy and pandas: the page
        cache, Python's byte-code caches, the first start of a Jupyter kernel."""
        cells = ["import numpy as np\nimport pandas as pd\nprint(int(np.arange(3).sum()), len(pd.DataFrame({'a': [1]})))"]
        for tool in self.tools:
            ws = Workspace("warm-up", tool.key)
            tool.write(ws, cells, None)
            self.check_run(tool, tool.run(ws), "3 1\n", "warm-up run")

    # -- a family of scenarios on one notebook ------------------------------------------------

    def family(self, family: str, title: str, cells: list[str], edits: list[tuple[str, list[tuple[str, str, int, list[str]]]]],
               j1_row: bool = False, memory: bool = False) -> None:
        """Cold runs, no-op re-runs and edit scenarios of one notebook for every tool.

        `edits`: [(row label, [(old line, new line, first changed cell, new cells) per repetition])].
        """
        versions = [(0, cells)] + [(start, new) for _, steps in edits for _, _, start, new in steps]
        expected = self.expected_last(versions)
        base_expected, edit_expected = expected[0], iter(expected[1:])
        n_cells = len(cells)
        spaces = {tool.key: Workspace(family, tool.key) for tool in self.tools}
        for tool in self.tools:
            tool.write(spaces[tool.key], cells, None)

        cold = self.row(family, f"{title}: cold run")
        if memory:
            self.data[f"{family}_memory"] = {}
        for rep in range(self.reps(3)):
            for tool in self.tools:
                ws = spaces[tool.key]
                tool.clear(ws)
                peak = self.data[f"{family}_memory"].setdefault(tool.key, {}) if memory and rep == 0 else None
                run = tool.run(ws, memory=peak)
                self.check_run(tool, run, base_expected, f"{title}, cold run")
                if tool.key == "nbmemo":
                    B.expect_summary(run.report, f"{tool.label}, {title}, cold run", ran=n_cells, failed=0)
                    self.data.setdefault(f"{family}_cold_reports", []).append(run.report)
                cold.cells[tool.key].seconds.append(run.seconds)
                if run.ran is not None:
                    cold.cells[tool.key].ran.append(run.ran)

        if j1_row:
            row = self.row(family, f"{title}: cold run, nbmemo with -j 1")
            for tool in self.tools:
                if tool.key != "nbmemo":
                    row.cells[tool.key] = dataclasses.replace(cold.cells[tool.key], note="seq")
            for _ in range(self.reps(3)):
                tool = self.tools[0]
                ws = spaces[tool.key]
                tool.clear(ws)
                run = tool.run(ws, jobs=1)
                B.expect_summary(run.report, f"nbmemo -j 1, {title}, cold run", ran=n_cells, failed=0)
                self.check_run(tool, run, base_expected, f"{title}, cold run -j 1")
                self.data.setdefault(f"{family}_cold_j1_reports", []).append(run.report)
                row.cells["nbmemo"].seconds.append(run.seconds)
                row.cells["nbmemo"].ran.append(run.ran)

        noop = self.row(family, f"{title}: re-run, nothing changed")
        for rep in range(self.reps(5, 1)):
            for tool in self.tools:
                if not tool.cached:
                    continue
                if rep >= self.reps(3) and tool.key != "nbmemo":
                    continue  # the slower tools: 3 runs
                run = tool.run(spaces[tool.key], check_output=rep == 0)
                self.expect_noop(tool, run, n_cells, base_expected, title)
                noop.cells[tool.key].seconds.append(run.seconds)
                if run.ran is not None:
                    noop.cells[tool.key].ran.append(run.ran)

        for label, steps in edits:
            row = self.row(family, f"{title}: {label}")
            comment_only = label.startswith("comment")
            for rep, (old, new, start, new_cells) in enumerate(steps):
                want = next(edit_expected)
                for tool in self.tools:
                    if not tool.cached:
                        continue
                    ws = spaces[tool.key]
                    tool.write(ws, new_cells, (old, new))
                    run = tool.run(ws, check_output=rep == 0)
                    what = f"{title}, {label}"
                    if tool.key == "nbmemo":
                        self.expect_edit(run, n_cells, start, comment_only, what)
                        self.data.setdefault(f"{family}_{label}_reports", []).append(run.report)
                    elif tool.key == "jcache":
                        B.check(run.ran == 1, f"jupyter-cache, {what}: expected the notebook to be executed again, executed {run.ran}")
                    self.check_run(tool, run, want, what)
                    row.cells[tool.key].seconds.append(run.seconds)
                    if run.ran is not None:
                        row.cells[tool.key].ran.append(run.ran)

        # Tools without a cache: every run is a cold run.
        for row in self.rows:
            if row.family != family or row is cold:
                continue
            for tool in self.tools:
                if not tool.cached and not row.cells[tool.key].seconds and not row.cells[tool.key].na:
                    row.cells[tool.key] = dataclasses.replace(cold.cells[tool.key], note="nocache")

    def expect_noop(self, tool: Tool, run: Run, n_cells: int, expected: str, title: str) -> None:
        what = f"{tool.label}, {title}, re-run with nothing changed"
        if tool.key == "nbmemo":
            B.expect_summary(run.report, what, cached=n_cells, ran=0, failed=0)
            self.check_run(tool, run, expected, what)
        elif tool.key == "jcache":
            B.check(run.ran == 0, f"{what}: jupyter-cache executed the notebook again")
            self.check_run(tool, run, expected, what)
        elif tool.key == "marimo":
            B.check(not run.stdout.strip(), f"{what}: marimo ran cells again (it printed {run.stdout[:300]!r})")

    def expect_edit(self, run: Run, n_cells: int, start: int, comment_only: bool, what: str) -> None:
        report = run.report
        ran = sorted(c["index"] for c in report["cells"] if c["status"] == "ran")
        if comment_only:
            B.expect_summary(report, f"nbmemo, {what}", ran=0, cached=n_cells, failed=0)
        elif start == n_cells - 1:
            B.expect_summary(report, f"nbmemo, {what}", ran=1, cached=n_cells - 1, failed=0)
        else:
            B.check(start in ran and n_cells - 1 in ran and report["summary"]["failed"] == 0,
                    f"nbmemo, {what}: expected cells {start} and {n_cells - 1} to run, ran {ran}")

    # -- branches ----------------------------------------------------------------------------

    def branches(self, seconds: float) -> None:
        iterations = B.calibrate_burn(self.cfg, seconds)
        cells = notebooks.branches("cpu", seconds, iterations)
        n_cells = len(cells)
        expected = self.expected_last([(0, cells)])[0]
        spaces = {tool.key: Workspace("branches", tool.key) for tool in self.tools}
        for tool in self.tools:
            tool.write(spaces[tool.key], cells, None)
        title = f"4 branches × 2 cells of {B.secs(seconds)} (pure Python)"
        wide = self.row("branches", f"{title}: cold run, -j {self.cfg.cores} (= cores)")
        narrow = self.row("branches", f"{title}: cold run, -j 1")
        reports: dict[int, list] = {self.cfg.cores: [], 1: []}
        for _ in range(self.reps(3)):
            for tool in self.tools:
                ws = spaces[tool.key]
                for jobs, row in ((self.cfg.cores, wide), (1, narrow)):
                    if jobs != 1 and not tool.parallel:
                        continue
                    tool.clear(ws)
                    run = tool.run(ws, jobs=jobs)
                    self.check_run(tool, run, expected, f"branches, -j {jobs}")
                    if tool.key == "nbmemo":
                        B.expect_summary(run.report, f"nbmemo, branches, -j {jobs}", ran=n_cells, failed=0)
                        reports[jobs].append(run.report)
                    row.cells[tool.key].seconds.append(run.seconds)
        for tool in self.tools:
            if not tool.parallel:
                wide.cells[tool.key] = dataclasses.replace(narrow.cells[tool.key], note="seq")
        # The critical-path bound (SPEC.md): work per cell from the -j 1 runs.
        first_wave = [1 + 2 * b for b in range(len(notebooks.BRANCHES))]
        work = [B.median([r["cells"][i]["duration_s"] for r in reports[1]]) for i in range(n_cells)]
        chain = work[0] + max(work[i] + work[i + 1] for i in first_wave) + work[-1]
        bound = max(chain, sum(work) / self.cfg.cores)
        self.data["branches"] = {"work_s": work, "chain_s": chain, "total_s": sum(work), "bound_s": bound,
                                 "wall_s": wide.cells["nbmemo"].median, "iterations": iterations}

    # -- planning ----------------------------------------------------------------------------

    def plan(self, n_cells: int) -> None:
        row = self.row("plan", f"plan a {n_cells:,}-cell notebook (parse, analyse, order the cells; nothing runs)")
        self.data["plan_cells"] = n_cells
        source = notebooks.plan_light(n_cells)
        cells = [chunk.strip("\n") for chunk in source.split("# %%\n") if chunk.strip()]
        B.check(len(cells) == n_cells, f"the plan notebook has {len(cells)} cells")
        for tool in self.tools:
            cell = row.cells[tool.key]
            if tool.key == "nbmemo":
                ws = Workspace("plan", tool.key)
                tool.write(ws, cells, None)
                for _ in range(self.reps(7, 1)):
                    elapsed, result = B.timed([str(self.cfg.nbmemo), "plan", ws.notebook.name, "--format", "json"], self.cfg, cwd=ws.dir)
                    B.check(result.returncode == 0, f"nbmemo plan failed:\n{result.stderr[-2000:]}")
                    B.check(len(json.loads(result.stdout)["cells"]) == n_cells, "nbmemo plan: wrong number of cells")
                    cell.seconds.append(elapsed)
            elif tool.key == "marimo":
                ws = Workspace("plan", tool.key)
                tool.write(ws, cells, None)
                raw = "nb_raw.py"  # the converted notebook, without the cache blocks
                for _ in range(self.reps(3, 1)):
                    elapsed, result = B.timed([str(VENV / "bin" / "marimo"), "-y", "-q", "export", "script", raw, "-o", "flat.py"], self.cfg, cwd=ws.dir)
                    B.check(result.returncode == 0, f"marimo export script failed:\n{result.stderr[-2000:]}")
                    cell.seconds.append(elapsed)
                cell.note = "script"
            elif tool.key == "marimo-export":
                cell.na = "see marimo"
            else:
                cell.na = "it cannot analyse a notebook without running it"


# ---------------------------------------------------------------------------------------------
# The report

NOTES = {
    "nocache": "no cache: every run executes the whole notebook, so this is its cold-run figure",
    "seq": "runs one cell at a time (no `-j`): its sequential cold run, the same figure as the `-j 1` or cold-run row",
    "script": "`marimo export script` (parses the notebook, builds its graph and writes the cells in topological order)",
}
MARKS = {"nocache": "¹", "seq": "²", "script": "³"}


def fmt_cell(cell: Cell, nbmemo: float | None) -> str:
    if cell.na:
        return f"n/a: {cell.na}"
    if cell.median is None:
        return "–"
    text = B.secs(cell.median)
    if nbmemo:
        ratio = cell.median / nbmemo
        text += f" ({ratio:.2f}×)" if ratio < 10 else f" ({ratio:.0f}×)"
    return text + MARKS.get(cell.note, "")


def mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def spec_lines(bench: Bench, cfg: B.Config) -> tuple[list[str], list[list[str]]]:
    """The SPEC.md targets this scenario measures, as table rows [target, measured, met]."""
    rows, summary = [], []
    by_label = {row.label: row for row in bench.rows}

    def find(part: str) -> Row | None:
        return next((row for label, row in by_label.items() if part in label), None)

    light_noop = next((r for r in bench.rows if r.family == "light" and "nothing changed" in r.label), None)
    if light_noop:
        m = light_noop.cells["nbmemo"].median
        met = m < 0.05
        rows.append(["re-run with nothing changed, 100-cell notebook: under 50 ms in all, no Python started",
                     f"{B.ms(m)}, 0 cells ran (Python starts: see the no-op scenario)", B.yes_no(met)])
    last = find("data notebook: edit of the last cell")
    if last:
        m = last.cells["nbmemo"].median
        reports = bench.data.get("data_edit of the last cell_reports", [])
        cell_s = B.median([r["cells"][-1]["duration_s"] for r in reports]) if reports else 0
        before = B.median([r["cells"][-1]["started_at"] for r in reports]) if reports else 0
        rows.append(["edit of the last cell: only that cell runs, time ≈ worker start + loading its inputs + the cell",
                     f"only that cell ran (checked); {B.secs(m)}, of which {B.ms(before)} before the cell started and {B.ms(cell_s)} the cell",
                     "only that cell: yes"])
        summary.append(["edit of the last cell, 20-cell data notebook (side by side)", f"only that cell ran; {B.secs(m)}",
                        "only that cell runs", "yes"])
    comment = find("comment-only edit of the first data cell")
    if comment:
        m = comment.cells["nbmemo"].median
        rows.append(["comment-only edit anywhere: no cell runs", f"no cell ran (checked); {B.ms(m)}", "yes"])
        summary.append(["comment-only edit, 20-cell data notebook (side by side)", f"no cell ran; {B.ms(m)}", "no cell runs", "yes"])
    if "branches" in bench.data:
        b = bench.data["branches"]
        over = b["wall_s"] / b["bound_s"] - 1
        met = over <= 0.15
        rows.append([f"{len(notebooks.BRANCHES)} independent branches, -j {cfg.cores}: wall within 15% of max(longest chain, total work / cores)",
                     f"{B.secs(b['wall_s'])} vs bound {B.secs(b['bound_s'])} ({over * 100:+.0f}%)", B.yes_no(met)])
        summary.append([f"4 branches × 2 cells, -j {cfg.cores}, side by side (pure Python, cold)", f"{over * 100:+.0f}% vs the bound",
                        "within 15% of the critical-path bound", B.yes_no(met)])
    plan = next((r for r in bench.rows if r.family == "plan"), None)
    if plan and plan.cells["nbmemo"].median is not None:
        m = plan.cells["nbmemo"].median
        n = bench.data["plan_cells"]
        rows.append(["1,000-cell notebook: parse, analyse, plan under 100 ms",
                     f"{B.ms(m)} for {n:,} cells (`nbmemo plan --format json` of the `.ipynb`)", B.yes_no(m < 0.1) if n >= 1000 else "—"])
    return rows, summary


def busy(cells: list[dict]) -> float:
    """The time during which at least one cell was in flight (the union of their spans)."""
    total, end = 0.0, None
    for c in sorted(cells, key=lambda c: c["started_at"]):
        start, stop = c["started_at"], c["finished_at"]
        if end is None or start > end:
            total += stop - start
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total


def breakdown(reports: list[dict], wall: list[float]) -> list[str]:
    """Where a cold nbmemo run's time goes, from its --json (medians over the runs)."""
    cell_sum = B.median([sum(c["duration_s"] for c in r["cells"]) for r in reports])
    trip = B.median([sum(c["finished_at"] - c["started_at"] - c["duration_s"] for c in r["cells"]) for r in reports])
    idle = B.median([w - busy(r["cells"]) for r, w in zip(reports, wall)])
    return [B.secs(B.median(wall)), B.secs(cell_sum), B.secs(trip), B.secs(idle)]


def render(bench: Bench, cfg: B.Config, found: dict, venv: dict, argv: list[str]) -> tuple[list[str], list[list[str]]]:
    tools = bench.tools
    lines = [
        f"Machine: {platform.machine()}, {cfg.cores} cores. Versions: {found['nbmemo']} ({'debug' if cfg.quick else 'release'} build); "
        f"{found['python']}; " + ", ".join(f"{n} {found[n]}" for n in VERSIONED) + f" (`{VENV.name}`, {REQUIREMENTS.relative_to(B.ROOT)}).",
        "",
        (f"Each figure is the median of {bench.reps(3)} whole processes ({bench.reps(7)} for `nbmemo plan`; no-op re-runs of nbmemo: {bench.reps(5)}), "
         if not bench.quick else "Each figure is one whole process (quick mode), ")
        + "with the ratio to nbmemo's median in the same row: above 1× the tool took longer than nbmemo, below 1× it was faster. "
        "Cold runs start without the tool's cache (deleted before each run)"
        + ("; an untimed warm-up run per tool (a one-cell notebook importing numpy and pandas) comes first. " if not bench.quick else ". ")
        + f"nbmemo runs with `-j {cfg.cores}` (the number of cores) unless the row says otherwise.",
        "",
    ]
    header = ["scenario"] + [tool.label for tool in tools]
    rows = []
    for row in bench.rows:
        nb = row.cells["nbmemo"].median
        cells = [row.label]
        for tool in tools:
            cell = row.cells[tool.key]
            if tool.key == "nbmemo":
                text = B.secs(nb) if nb is not None else "–"
                if cell.ran and row.family != "plan":
                    text += f" ({B.median(cell.ran):.0f} ran)"
                cells.append(text)
            else:
                cells.append(fmt_cell(cell, nb))
        rows.append(cells)
    lines += B.table(header, rows, "l" + "r" * len(tools))
    used = {row.cells[t.key].note for row in bench.rows for t in tools if row.cells[t.key].note}
    lines += [""] + [f"{MARKS[n]} {NOTES[n]}." for n in MARKS if n in used]

    # Where nbmemo is slower.
    losses = []
    for row in bench.rows:
        nb = row.cells["nbmemo"].median
        if nb is None:
            continue
        for tool in tools[1:]:
            cell = row.cells[tool.key]
            if cell.median is not None and not cell.na and cell.median < nb:
                losses.append(f"{row.label}: {tool.label} {B.secs(cell.median)} vs nbmemo {B.secs(nb)} ({cell.median / nb:.2f}×)")
    if losses:
        lines += ["", "Rows where a baseline was faster than nbmemo in this run:", ""] + [f"- {loss}" for loss in losses]
    else:
        lines += ["", "No baseline was faster than nbmemo in any row of this run."]

    # Where nbmemo's cold runs spend their time.
    parts = []
    for key, label in (("data_cold_reports", f"data notebook, -j {cfg.cores}"), ("data_cold_j1_reports", "data notebook, -j 1"),
                       ("light_cold_reports", f"100-cell notebook, -j {cfg.cores}")):
        reports = bench.data.get(key)
        if not reports:
            continue
        row = next(r for r in bench.rows if (r.family, "-j 1" in r.label) == (key.split("_")[0], "j1" in key) and "cold run" in r.label)
        parts.append([label] + breakdown(reports, row.cells["nbmemo"].seconds))
    if parts:
        lines += ["", "Where nbmemo's cold runs spend their time (medians, from `--json`): the sum of the cells' own `duration_s`; "
                  "the sum over cells of the exec round trip beyond the cell (in the worker: inputs received and unpickled, "
                  "mutation checks, results pickled and sent back); the wall time during which no cell was in flight (process "
                  "start, interpreter probe, worker start, hashing and storing results, scheduling, saving the run, exit). "
                  "With `-j` above 1, cells overlap, so the parts add up to more than the wall time.", ""]
        lines += B.table(["cold run", "wall", "cells' own time", "round trips beyond the cells", "no cell in flight"], parts, "lrrrr")

    memory = bench.data.get("data_memory")
    if memory:
        lines += ["", "Peak memory, cold run of the data notebook (the first timed cold run of each tool, polling `/proc` every 10 ms: each process's "
                  "`VmHWM`, and the largest sum of the tree's `VmRSS` at one moment). For nbmemo the children are its workers; "
                  "for nbconvert, papermill and jupyter-cache the kernel; marimo runs in one process.", ""]
        mrows = []
        for tool in tools:
            if tool.key not in memory:
                continue
            m = memory[tool.key]
            mrows.append([tool.label, mib(m["root_bytes"]), str(m["children"]), mib(m["largest_child_bytes"]) if m["children"] else "–",
                          mib(m["children_sum_bytes"]) if m["children"] else "–", mib(m["tree_peak_bytes"])])
        lines += B.table(["tool", "main process", "child processes", "largest child", "children's peaks added", "whole tree at its peak"], mrows, "lrrrrr")

    spec, summary = spec_lines(bench, cfg)
    if spec:
        lines += ["", "SPEC.md's targets that this scenario measures:", ""]
        lines += B.table(["target (SPEC.md)", "measured here (nbmemo)", "met"], spec, "lll")
    took = f" in {venv['seconds']:.0f} s" if venv["seconds"] else ""
    lines += ["", f"Baselines' virtualenv: {venv['action']}{took}. Command: `{' '.join(argv)}`."]
    return lines, summary


# ---------------------------------------------------------------------------------------------
# Entry point (called by bench.py)


def scenario(cfg: B.Config, extra_tools: list[str] | None = None) -> B.Section:
    venv = ensure_venv()
    bcfg = dataclasses.replace(cfg, python=VENV_PYTHON, env=tool_env(cfg.env))
    found = versions(bcfg)
    tools: list[Tool] = [Nbmemo(bcfg), Nbconvert(bcfg), Papermill(bcfg), JupyterCache(bcfg), Marimo(bcfg)]
    if "marimo-export" in (extra_tools or []):
        tools.append(MarimoExport(bcfg))
    bench = Bench(bcfg, tools, cfg.quick)
    started = time.perf_counter()

    if not cfg.quick:
        bench.warm_up()

    # The 20-cell data notebook.
    n_rows = 20_000 if cfg.quick else DATA_ROWS
    reps = bench.reps(3)
    scales = [2 + r for r in range(reps)]
    thresholds = [round(0.8 - 0.05 * r, 2) for r in range(reps)]
    notes = [f"synthetic sales, one row per order (revision {r + 1})" for r in range(reps)]
    base_note = "synthetic sales, one row per order"
    versions_: list[tuple[str, list[tuple[str, str, int, list[str]]]]] = []
    scale, threshold, note = 1, 0.9, base_note
    steps = []
    for s in scales:
        steps.append((f"SCALE = {scale}", f"SCALE = {s}", 19, notebooks.data(n_rows, threshold, s, note)))
        scale = s
    versions_.append(("edit of the last cell", steps))
    steps = []
    for th in thresholds:
        steps.append((f"THRESHOLD = {threshold}", f"THRESHOLD = {th}", notebooks.DATA_MIDDLE, notebooks.data(n_rows, th, scale, note)))
        threshold = th
    versions_.append((f"edit of a middle cell (cell {notebooks.DATA_MIDDLE}; 4 cells depend on it)", steps))
    steps = []
    for n in notes:
        steps.append((f"# {note}", f"# {n}", notebooks.DATA_NOTE, notebooks.data(n_rows, threshold, scale, n)))
        note = n
    versions_.append((f"comment-only edit of the first data cell (cell {notebooks.DATA_NOTE}; every later cell depends on it)", steps))
    t = time.perf_counter()
    B.log(f"bench: baselines: 20-cell data notebook ({n_rows:,} rows) …")
    bench.family("data", "20-cell data notebook", notebooks.data(n_rows), versions_, j1_row=True, memory=True)

    if not cfg.quick:
        n_light = 100
        ks = [4 + r for r in range(reps)]
        steps, k = [], 3
        for new in ks:
            steps.append((f"K = {k}", f"K = {new}", n_light - 1, notebooks.light_edited(n_light, new)))
            k = new
        B.log(f"bench: baselines: data notebook done in {time.perf_counter() - t:.0f} s; 100-cell light notebook …")
        t = time.perf_counter()
        bench.family("light", "100-cell notebook", notebooks.light_edited(n_light, 3), [("edit of the last cell", steps)])
        B.log(f"bench: baselines: light notebook done in {time.perf_counter() - t:.0f} s; branches …")
        t = time.perf_counter()
        bench.branches(0.2)
        B.log(f"bench: baselines: branches done in {time.perf_counter() - t:.0f} s; planning …")
        bench.plan(1000)
    else:
        B.log("bench: baselines: branches …")
        bench.branches(0.05)
        bench.plan(200)

    argv = ["just", "bench", *sys.argv[1:]]
    lines, summary = render(bench, bcfg, found, venv, argv)
    data = {
        "versions": found, "venv": venv, "seconds": time.perf_counter() - started,
        "rows": [{"family": r.family, "label": r.label,
                  "cells": {k: {"seconds": c.seconds, "median_s": c.median, "note": c.note, "na": c.na, "ran": c.ran} for k, c in r.cells.items()}}
                 for r in bench.rows],
        **{k: v for k, v in bench.data.items() if not k.endswith("_reports")},
        "nbmemo_reports": {k: [{"summary": r["summary"], "cells": [{f: c.get(f) for f in ("index", "status", "started_at", "finished_at", "duration_s", "reason")} for c in r["cells"]]} for r in v]
                           for k, v in bench.data.items() if k.endswith("_reports")},
    }
    return B.Section("baselines", lines, data, summary)


if __name__ == "__main__":
    # `just bench-setup`: create or update the virtualenv only.
    try:
        done = ensure_venv()
    except B.BenchError as err:
        print(f"bench: FAILED: {err}", file=sys.stderr)
        sys.exit(1)
    print(f"{VENV.relative_to(B.ROOT)}: {done['action']}" + (f" in {done['seconds']:.0f} s" if done["seconds"] else ""))
