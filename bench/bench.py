#!/usr/bin/env python3
"""nbmemo benchmark harness (`just bench`; `just bench --quick` is CI's smoke run).

Generates the benchmark notebooks under target/bench/ (bench/notebooks.py), times whole nbmemo
processes from outside (median of several runs) and prints one table per scenario.
`--write` replaces the generated blocks of BENCHMARKS.md (between `<!-- bench:begin NAME -->`
and `<!-- bench:end NAME -->`).

Every scenario also checks what it measures (a no-op run replays every cell and starts no
Python, an edit runs exactly one cell, every run prints what plain `exec` prints, ...): a
failed check ends the harness with status 1, in both modes. Timings are never asserted.

The quick mode (CI, on every commit) uses the debug build, few repetitions and smaller
notebooks: it checks that the harness and the checks work, and its figures mean nothing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import notebooks

# bench/baselines.py imports this module as `bench`: let it find this one, not a second copy.
sys.modules.setdefault("bench", sys.modules[__name__])

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "target" / "bench"
RUNNER = ROOT / "src" / "exec" / "python" / "runner.py"
SCENARIOS = ["plan", "noop", "edit", "overhead", "branches", "baselines"]


class BenchError(Exception):
    """A functional check failed, or nbmemo did not run as expected."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise BenchError(message)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Config:
    quick: bool
    nbmemo: Path
    python: Path
    cores: int
    env: dict = field(default_factory=dict)
    # Extra tools for the baselines scenario (`--marimo-export`).
    extra_tools: list = field(default_factory=list)

    def reps(self, full: int, quick: int) -> int:
        return quick if self.quick else full


# ---------------------------------------------------------------------------------------------
# Formatting


def ms(seconds: float) -> str:
    value = seconds * 1000
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms" if value < 1000 else f"{value:.0f} ms"


def secs(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 1 else ms(seconds)


def yes_no(met: bool | None) -> str:
    return "—" if met is None else "yes" if met else "**no**"


def table(header: list[str], rows: list[list[str]], align: str) -> list[str]:
    """A markdown table; `align` is one letter per column: l(eft) or r(ight)."""
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---:" if a == "r" else "---" for a in align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def median(values: list[float]) -> float:
    return statistics.median(values)


# ---------------------------------------------------------------------------------------------
# Running things


def binary(quick: bool) -> Path:
    profile = "debug" if quick else "release"
    # The binary alone: not the workspace's Python extension, which no scenario uses.
    args = ["cargo", "build", "--quiet", "--bin", "nbmemo"] + ([] if quick else ["--release"])
    if subprocess.run(args, cwd=ROOT).returncode != 0:
        raise BenchError(f"`{' '.join(args)}` failed")
    return ROOT / "target" / profile / "nbmemo"


def worker_python() -> Path:
    venv = ROOT / ".venv" / "bin" / "python"
    return venv if venv.exists() else Path(sys.executable)


def clean_env() -> dict:
    """The environment for nbmemo: no NBMEMO_* variable may move the cache or add logging."""
    return {key: value for key, value in os.environ.items() if not key.startswith("NBMEMO_")}


class Project:
    """A temporary project (a folder with `.git`, so the cache lands in its `.nbmemo`)."""

    def __init__(self, name: str):
        self.dir = OUT / name
        shutil.rmtree(self.dir, ignore_errors=True)
        (self.dir / ".git").mkdir(parents=True)

    def write(self, name: str, cells: list[str]) -> Path:
        path = self.dir / name
        path.write_text(notebooks.percent(cells))
        return path

    def clear_cache(self) -> None:
        shutil.rmtree(self.dir / ".nbmemo", ignore_errors=True)


def timed(argv: list[str], cfg: Config, cwd: Path | None = None, stdin: str | None = None) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    try:
        result = subprocess.run(argv, input=stdin, capture_output=True, text=True, cwd=cwd, env=cfg.env, timeout=900)
    except subprocess.TimeoutExpired as err:
        raise BenchError(f"timed out after {err.timeout} s: {' '.join(map(str, argv))[:200]}") from err
    return time.perf_counter() - start, result


def run_nbmemo(cfg: Config, project: Project, notebook: Path, *args: str, python: Path | None = None) -> tuple[float, dict]:
    """Runs `nbmemo run NOTEBOOK --json` in the project; returns its wall time and report."""
    argv = [str(cfg.nbmemo), "run", notebook.name, "--json", "--python", str(python or cfg.python), *args]
    elapsed, result = timed(argv, cfg, cwd=project.dir)
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        report = None
    if result.returncode != 0 or report is None:
        failed = [
            f"  cell {cell['index']}: {cell['reason']}\n{cell.get('stderr', '')}"
            for cell in (report or {}).get("cells", [])
            if cell["status"] == "failed"
        ]
        raise BenchError(
            f"`nbmemo {' '.join(argv[1:])}` in {project.dir} exited with {result.returncode}\n"
            + "\n".join(failed)
            + f"\n{result.stderr[-3000:]}"
        )
    return elapsed, report


def expect_summary(report: dict, what: str, **expected: int) -> None:
    summary = report["summary"]
    wrong = {key: summary[key] for key, value in expected.items() if summary[key] != value}
    statuses = [f"{cell['index']}:{cell['status']}" for cell in report["cells"] if cell["status"] != "cached"]
    check(not wrong, f"{what}: expected {expected}, got {summary} (not cached: {' '.join(statuses[:20])})")


def plain_exec(cfg: Config, cells: list[str], extra: str = "") -> dict:
    """Executes the cells top to bottom in one fresh interpreter (the workers' Python), timing
    each; returns {"stdout": [per cell], "seconds": [per cell], **what `extra` adds to `out`}."""
    script = (
        "import contextlib, io, json, sys, time\n"
        "cells = json.loads(sys.stdin.read())\n"
        "ns = {'__name__': '__main__'}\n"
        "out = {'stdout': [], 'seconds': []}\n"
        "for i, src in enumerate(cells):\n"
        "    buf = io.StringIO()\n"
        "    with contextlib.redirect_stdout(buf):\n"
        "        t = time.perf_counter()\n"
        "        exec(compile(src, f'<cell {i}>', 'exec'), ns)\n"
        "        out['seconds'].append(time.perf_counter() - t)\n"
        "    out['stdout'].append(buf.getvalue())\n"
        f"{extra}\n"
        "print(json.dumps(out))\n"
    )
    _, result = timed([str(cfg.python), "-c", script], cfg, stdin=json.dumps(cells))
    check(result.returncode == 0, f"the notebook does not run with plain exec:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout)


def worker_startup(cfg: Config, runs: int) -> dict:
    """Median wall times of starting Python: bare (`-c pass`), importing cloudpickle, and a
    whole nbmemo worker (the runner run as a script, src/exec/PROTOCOL.md) until its hello."""
    def once(argv: list[str]) -> float:
        elapsed, result = timed(argv, cfg)
        check(result.returncode == 0, f"`{' '.join(argv)}` failed: {result.stderr}")
        return elapsed

    def hello() -> float:
        env = {**cfg.env, "PYTHONHASHSEED": "0", "PYTHONUNBUFFERED": "1", "NBMEMO_WORKER": "1"}
        start = time.perf_counter()
        worker = subprocess.Popen([str(cfg.python), "-u", str(RUNNER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        try:
            head = worker.stdout.read(8)
            if len(head) != 8:
                raise BenchError(f"the worker sent no hello frame: {worker.stderr.read().decode()[-2000:]}")
            header = json.loads(worker.stdout.read(struct.unpack("<II", head)[0]))
            elapsed = time.perf_counter() - start
            check(header.get("type") == "hello" and header.get("cloudpickle"), f"unexpected first frame from the worker: {header}")
        finally:
            worker.stdin.close()
            worker.wait(timeout=60)
        return elapsed

    return {
        "bare_s": median([once([str(cfg.python), "-c", "pass"]) for _ in range(runs)]),
        "cloudpickle_s": median([once([str(cfg.python), "-c", "import cloudpickle"]) for _ in range(runs)]),
        "worker_s": median([hello() for _ in range(runs)]),
    }


@dataclass
class Section:
    name: str
    lines: list[str]
    data: dict
    # Rows of the summary table: [scenario, measured, target, met].
    summary: list[list[str]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Scenarios


def scenario_plan(cfg: Config) -> Section:
    runs = cfg.reps(21, 3)
    plan_nb = OUT / "light-1000.py"
    plan_nb.write_text(notebooks.plan_light(1000))
    rows, data = [], {}
    for fmt in ["json", "text"]:
        samples = []
        for _ in range(runs):
            elapsed, result = timed([str(cfg.nbmemo), "plan", str(plan_nb), "--format", fmt], cfg)
            check(result.returncode == 0, f"nbmemo plan failed ({result.returncode}):\n{result.stderr}")
            samples.append(elapsed)
        data[fmt] = {"median_s": median(samples), "best_s": min(samples)}
        rows.append([f"plan, 1,000-cell notebook, --format {fmt}", ms(median(samples)), ms(min(samples)), "under 100 ms", yes_no(median(samples) < 0.1)])
        if fmt == "json":
            # The JSON must describe every cell: a benchmark that silently measures an error is useless.
            plan = json.loads(result.stdout)
            check(len(plan["cells"]) == 1000, f"the plan has {len(plan['cells'])} cells, not 1000")
    lines = [f"Median and best of {runs} whole `nbmemo plan` processes (output to a pipe).", ""]
    lines += table(["scenario", "median", "best", "target", "met"], rows, "lrrll")
    summary = [["plan, 1,000-cell notebook (`--format json`)", ms(data["json"]["median_s"]), "under 100 ms", yes_no(data["json"]["median_s"] < 0.1)]]
    return Section("plan", lines, data, summary)


def scenario_noop(cfg: Config) -> Section:
    n_cells, runs = 100, cfg.reps(21, 3)
    project = Project("noop")
    cells = notebooks.light_runnable(n_cells)
    notebook = project.write("light-100.py", cells)
    expected = plain_exec(cfg, cells)["stdout"]

    # A `--python` that records every interpreter start, then runs the real one.
    start_log = project.dir / "python-starts.log"
    wrapper = project.dir / "python-wrapper.sh"
    wrapper.write_text(f'#!/bin/sh\necho "$$ $(date +%s.%N)" >> "{start_log}"\nexec "{cfg.python}" "$@"\n')
    wrapper.chmod(0o755)

    cold_s, report = run_nbmemo(cfg, project, notebook, python=wrapper)
    expect_summary(report, "cold run of the 100-cell notebook", ran=n_cells, failed=0)
    check(start_log.exists() and start_log.read_text().strip(), "the --python wrapper did not log the cold run's interpreter start")
    starts_cold = len(start_log.read_text().splitlines())
    start_log.write_text("")

    samples, inside = [], []
    for _ in range(runs):
        elapsed, report = run_nbmemo(cfg, project, notebook, python=wrapper)
        expect_summary(report, "no-op re-run", cached=n_cells, ran=0, failed=0, skipped=0)
        for cell, stdout in zip(report["cells"], expected):
            check(cell["stdout"] == stdout, f"cell {cell['index']} replayed {cell['stdout']!r}, plain exec printed {stdout!r}")
        samples.append(elapsed)
        inside.append(report["summary"]["wall_s"])
    starts = [line for line in start_log.read_text().splitlines() if line.strip()]
    check(not starts, f"the no-op re-runs started Python {len(starts)} times: {starts[:3]}")

    startup = worker_startup(cfg, cfg.reps(11, 3))
    data = {
        "median_s": median(samples), "best_s": min(samples), "inside_s": median(inside),
        "cold_s": cold_s, "python_starts": len(starts), "python_starts_cold": starts_cold, "startup": startup,
    }
    rows = [
        ["`nbmemo run`, nothing changed, 100 cells", ms(median(samples)), ms(min(samples)), "under 50 ms", yes_no(median(samples) < 0.05)],
        [f"Python interpreters started by the {runs} re-runs", "0", "", "none", yes_no(True)],
    ]
    lines = [f"Median and best of {runs} whole `nbmemo run` processes (`--json`, output to a pipe), after one cold run.", ""]
    lines += table(["scenario", "median", "best", "target", "met"], rows, "lrrll")
    lines += [
        "",
        f"For scale: nbmemo's own `summary.wall_s` {ms(median(inside))}; the cold run {secs(cold_s)} "
        f"({starts_cold} interpreter{'s' if starts_cold != 1 else ''} started); starting one worker (until its hello) {ms(startup['worker_s'])}, "
        f"`python -c pass` {ms(startup['bare_s'])}.",
    ]
    summary = [["no-op re-run, 100-cell notebook", f"{ms(median(samples))}, no Python started", "under 50 ms, no Python started", yes_no(median(samples) < 0.05)]]
    return Section("noop", lines, data, summary)


def scenario_edit(cfg: Config) -> Section:
    n_values, runs = (20_000, 2) if cfg.quick else (170_000, 9)
    project = Project("edit")
    k0 = 1
    notebook = project.write("work-20.py", notebooks.working(n_values, k0))

    _, report = run_nbmemo(cfg, project, notebook)
    expect_summary(report, "cold run of the 20-cell notebook", ran=20, failed=0)
    cold_durations = [cell["duration_s"] for cell in report["cells"]]

    nb_s, plain_s, cell_s, before_s, trip_s, after_s = [], [], [], [], [], []
    for rep in range(runs):
        k = k0 + 1 + rep  # a new constant every time: never a cache hit
        cells = notebooks.working(n_values, k)
        notebook.write_text(notebooks.percent(cells))
        elapsed, report = run_nbmemo(cfg, project, notebook)
        expect_summary(report, f"re-run after editing the last cell (K={k})", ran=1, cached=19, failed=0)
        last = report["cells"][-1]
        check(last["status"] == "ran", f"the edited cell did not run: {last['status']}")

        # The plain sequential baseline: every cell in one fresh interpreter, timed from outside.
        script = "ns = {'__name__': '__main__'}\n" + "".join(
            f"exec(compile({src!r}, '<cell {i}>', 'exec'), ns)\n" for i, src in enumerate(cells)
        )
        plain, result = timed([str(cfg.python), "-c", script], cfg)
        check(result.returncode == 0, f"plain sequential run failed:\n{result.stderr[-2000:]}")
        check(result.stdout == last["stdout"], f"nbmemo printed {last['stdout']!r}, plain exec {result.stdout!r}")

        nb_s.append(elapsed)
        plain_s.append(plain)
        cell_s.append(last["duration_s"])
        before_s.append(last["started_at"])
        trip_s.append(last["finished_at"] - last["started_at"] - last["duration_s"])
        after_s.append(elapsed - last["finished_at"])

    # What the edited cell loads: the pickles of the two lists it reads, timed in one interpreter.
    probe = plain_exec(
        cfg,
        notebooks.working(n_values, k0)[:-1],
        "import cloudpickle\n"
        "value = {'s18': ns['s18'], 'hist_16': ns['hist_16']}\n"
        "blob = cloudpickle.dumps(value, protocol=5)\n"
        "t = time.perf_counter(); [cloudpickle.loads(blob) for _ in range(5)]\n"
        "out['load_s'] = (time.perf_counter() - t) / 5; out['input_bytes'] = len(blob)",
    )
    startup = worker_startup(cfg, cfg.reps(11, 3))
    expected = startup["worker_s"] + probe["load_s"] + median(cell_s)
    nb, plain = median(nb_s), median(plain_s)
    data = {
        "nbmemo_s": nb, "nbmemo_best_s": min(nb_s), "plain_s": plain, "plain_best_s": min(plain_s),
        "ratio": plain / nb, "cell_s": median(cell_s), "before_cell_s": median(before_s),
        "round_trip_extra_s": median(trip_s), "after_cell_s": median(after_s),
        "startup": startup, "load_inputs_s": probe["load_s"], "input_bytes": probe["input_bytes"],
        "expected_s": expected, "cold_cell_durations_s": cold_durations,
    }
    mean_cell = statistics.mean(cold_durations)
    lines = [
        f"The notebook: 20 cells, each about {ms(mean_cell)} of pure-Python work (mean `duration_s` of the cold run) "
        f"on lists of {n_values:,} floats; the edited last cell reads two earlier results. "
        f"Median and best of {runs} edits (a new constant each time); the baseline runs the same edited notebook.",
        "",
    ]
    lines += table(
        ["scenario", "median", "best"],
        [
            ["`nbmemo run` after editing the last cell (1 ran, 19 cached)", secs(nb), secs(min(nb_s))],
            ["plain sequential: all 20 cells in one fresh `python -c`", secs(plain), secs(min(plain_s))],
            ["plain sequential / nbmemo", f"{plain / nb:.1f}×", ""],
        ],
        "lrr",
    )
    lines += [
        "",
        "Where the nbmemo run's time goes (medians; from the cell's `started_at`, `finished_at` and `duration_s`):",
        "",
    ]
    lines += table(
        ["part", "time"],
        [
            ["before the cell starts: process start, parse, replay of 19 cells, worker start", ms(median(before_s))],
            ["exec round trip minus the cell: inputs shipped and unpickled, results pickled and returned", ms(median(trip_s))],
            ["the cell itself (`duration_s`)", ms(median(cell_s))],
            ["after the cell: storing its results, saving the run, exit", ms(median(after_s))],
            ["**total (whole process)**", f"**{ms(nb)}**"],
        ],
        "lr",
    )
    lines += [
        "",
        f"Target (SPEC.md): only that cell runs (checked: `ran == 1`, `cached == 19`, same output as plain exec) and time ≈ worker start "
        f"+ loading its inputs + the cell = {ms(startup['worker_s'])} (a worker started until its hello; of which `python -c \"import cloudpickle\"` "
        f"{ms(startup['cloudpickle_s'])}, `python -c pass` {ms(startup['bare_s'])}) + {ms(probe['load_s'])} "
        f"(unpickling its {probe['input_bytes'] / 1e6:.1f} MB of inputs) + {ms(median(cell_s))} = {ms(expected)}; "
        f"measured {ms(nb)}, {ms(nb - expected)} more ({(nb / expected - 1) * 100:+.0f}%).",
    ]
    summary = [[
        "edit of the last cell, 20-cell notebook",
        f"only that cell ran; {ms(nb)} = estimate {ms(expected)} {(nb / expected - 1) * 100:+.0f}% (plain sequential: {secs(plain)})",
        "only that cell runs: ≈ worker start + loading its inputs + the cell",
        f"only that cell: yes; time within 15% of the estimate: {yes_no(nb <= 1.15 * expected)}",
    ]]
    return Section("edit", lines, data, summary)


def scenario_overhead(cfg: Config) -> Section:
    runs = cfg.reps(7, 1)
    variants = [("int", "small ints (`x1 = x0 + 1`)", cfg.reps(200, 30)),
                ("bytes", "1 MB `bytes` (`x1 = x0[1:] + b'1'`)", cfg.reps(60, 10)),
                ("list", "list of 111,000 floats, ~1 MB pickled", cfg.reps(60, 10))]
    project = Project("overhead")
    one = project.write("one.py", ["x0 = 0"])

    # One worker start-up, as nbmemo sees it: a cold run of a one-cell notebook.
    one_s = []
    results = {}
    for kind, _, n in variants:
        cells = notebooks.chain(n, kind)
        notebook = project.write(f"chain-{kind}-{n}.py", cells)
        plain = plain_exec(
            cfg,
            cells,
            "import cloudpickle\n"
            f"value = {{'x{n - 1}': ns['x{n - 1}']}}\n"
            "dumps, loads = [], []\n"
            "for _ in range(7):\n"
            "    t = time.perf_counter(); blob = cloudpickle.dumps(value, protocol=5); dumps.append(time.perf_counter() - t)\n"
            "    t = time.perf_counter(); cloudpickle.loads(blob); loads.append(time.perf_counter() - t)\n"
            "out['serialize_s'] = sorted(dumps)[3] + sorted(loads)[3]; out['bytes'] = len(blob)",
        )
        walls, trips, gaps = [], [], []
        for _ in range(runs):
            project.clear_cache()
            elapsed, report = run_nbmemo(cfg, project, one, "-j", "1", "--force")
            expect_summary(report, "one-cell notebook", ran=1, failed=0)
            one_s.append(elapsed)
            project.clear_cache()
            elapsed, report = run_nbmemo(cfg, project, notebook, "-j", "1", "--force")
            expect_summary(report, f"chain of {n} {kind} cells", ran=n, failed=0)
            check(report["cells"][-1]["stdout"] == plain["stdout"][-1], f"last cell printed {report['cells'][-1]['stdout']!r}, plain exec {plain['stdout'][-1]!r}")
            cells_json = report["cells"]
            walls.append(elapsed)
            trips.append(sum(c["finished_at"] - c["started_at"] - c["duration_s"] for c in cells_json) / n)
            gaps.append(sum(b["started_at"] - a["finished_at"] for a, b in zip(cells_json, cells_json[1:])) / (n - 1))
        results[kind] = {
            "n": n, "wall_s": median(walls), "plain_per_cell_s": sum(plain["seconds"]) / n,
            "serialize_s": plain["serialize_s"], "bytes": plain["bytes"],
            "round_trip_extra_s": median(trips), "between_cells_s": median(gaps),
        }
    startup = median(one_s)
    rows = []
    for kind, label, n in variants:
        r = results[kind]
        per_cell = (r["wall_s"] - startup) / (n - 1)
        over = per_cell - r["plain_per_cell_s"]
        serial = r["serialize_s"] if kind != "int" else 0.0
        r.update(per_cell_s=per_cell, overhead_s=over, overhead_minus_serialization_s=over - serial)
        rows.append([
            label, str(n), secs(r["wall_s"]), ms(per_cell), ms(r["plain_per_cell_s"]),
            ms(r["serialize_s"]) if kind != "int" else "–", ms(over - serial), "under 5 ms + serialization",
            yes_no(over - serial < 0.005),
        ])
    lines = [
        f"Each figure is the median of {runs} cold runs (`.nbmemo` deleted, `-j 1 --force`) of a chain of N cells, each reading "
        f"the previous cell's value and writing a new one. One worker start-up is the cold run of a one-cell notebook "
        f"(`x0 = 0`): {ms(startup)} (process start, new store, interpreter probe, one worker, one cell). "
        "nbmemo per cell = (wall − that start-up) / (N − 1). Plain exec per cell: the same cells compiled and exec'd "
        "one after another in one interpreter, timed inside it. Serialization: `cloudpickle.dumps` (protocol 5) + "
        "`loads` of one cell's output, timed in one interpreter; each chained cell pays it once.",
        "",
    ]
    lines += table(
        ["cells pass", "N", "nbmemo wall", "nbmemo per cell", "plain exec per cell", "serialization", "overhead per cell beyond serialization", "target", "met"],
        rows,
        "lrrrrrrll",
    )
    lines += ["", "Where nbmemo's per-cell time goes (medians, from the `--json` timestamps):", ""]
    lines += table(
        ["cells pass", "exec round trip minus the cell (protocol, pickling in the worker)", "between two cells (storing, hashing, scheduling, next request)"],
        [[label, ms(results[kind]["round_trip_extra_s"]), ms(results[kind]["between_cells_s"])] for kind, label, _ in variants],
        "lrr",
    )
    summary = [
        [f"per-cell overhead over plain exec, cells pass {label}", f"{ms(results[kind]['overhead_minus_serialization_s'])} beyond serialization",
         "under 5 ms plus serialization", yes_no(results[kind]["overhead_minus_serialization_s"] < 0.005)]
        for kind, label, _ in variants
    ]
    return Section("overhead", lines, {"one_cell_cold_s": startup, **results}, summary)


BURN = "def burn(n, salt):\n    acc = salt\n    for i in range(n):\n        acc = (acc * 31 + i) % 1_000_003\n    return acc\n"


def calibrate_burn(cfg: Config, seconds: float) -> int:
    """Iterations of `burn` (notebooks.branches) that take about `seconds` on this machine."""
    script = (
        "import time\n" + BURN
        + "best = min((lambda t: (burn(200_000, 1), time.perf_counter() - t)[1])(time.perf_counter()) for _ in range(5))\n"
        "print(best)"
    )
    _, result = timed([str(cfg.python), "-c", script], cfg)
    check(result.returncode == 0, result.stderr)
    return max(1000, int(200_000 * seconds / float(result.stdout)))


def parallelism(cfg: Config, iterations: int) -> float:
    """The speedup this machine gives right now to `cores` CPU-bound Python processes at once
    (`cores` × time of one alone / wall of all together): 2.0 on an idle 2-core machine, less
    when something else uses the cores."""
    argv = [str(cfg.python), "-c", BURN + f"burn({iterations}, 1)"]
    alone = median([timed(argv, cfg)[0] for _ in range(3)])
    together = []
    for _ in range(3):
        start = time.perf_counter()
        procs = [subprocess.Popen(argv, env=cfg.env) for _ in range(cfg.cores)]
        check(all(proc.wait() == 0 for proc in procs), "the parallelism probe failed")
        together.append(time.perf_counter() - start)
    return cfg.cores * alone / median(together)


def max_overlap(cells: list[dict]) -> int:
    events = sorted([(c["started_at"], 1) for c in cells] + [(c["finished_at"], -1) for c in cells], key=lambda e: (e[0], e[1]))
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def scenario_branches(cfg: Config) -> Section:
    seconds, runs = (0.05, 1) if cfg.quick else (0.3, 4)
    jobs = [4, 2, 1]
    iterations = calibrate_burn(cfg, seconds)
    speedup_before = parallelism(cfg, iterations * 2)
    project = Project("branches")
    n_branches = len(notebooks.BRANCHES)
    n_cells = 2 + 2 * n_branches
    first_wave = [1 + 2 * b for b in range(n_branches)]
    rows, data = [], {"cell_s": seconds, "burn_iterations": iterations, "cores": cfg.cores, "parallel_speedup_before": speedup_before}
    for kind in ["sleep", "cpu"]:
        cells = notebooks.branches(kind, seconds, iterations)
        notebook = project.write(f"branches-{kind}.py", cells)
        plain = plain_exec(cfg, cells)

        # The graph must be what the scenario claims: setup, two waves of four branch cells, join.
        _, result = timed([str(cfg.nbmemo), "plan", notebook.name, "--format", "json"], cfg, cwd=project.dir)
        check(result.returncode == 0, f"nbmemo plan failed:\n{result.stderr}")
        plan = json.loads(result.stdout)
        check(plan["waves"] == 4 and plan["critical_path"] == 4, f"{kind} branches: expected 4 waves, got {plan['waves']} (critical path {plan['critical_path']})")

        walls: dict[int, list[float]] = {j: [] for j in jobs}
        overlap: dict[int, list[int]] = {j: [] for j in jobs}
        outside: dict[int, list[float]] = {j: [] for j in jobs}
        delay: dict[int, list[float]] = {j: [] for j in jobs}
        durations: list[list[float]] = []
        for _ in range(runs):
            for j in jobs:
                project.clear_cache()
                elapsed, report = run_nbmemo(cfg, project, notebook, "-j", str(j))
                expect_summary(report, f"{kind} branches, -j {j}", ran=n_cells, failed=0)
                got = report["cells"]
                check(got[-1]["stdout"] == plain["stdout"][-1], f"join printed {got[-1]['stdout']!r}, plain exec {plain['stdout'][-1]!r}")
                walls[j].append(elapsed)
                overlap[j].append(max_overlap(got))
                span = max(c["finished_at"] for c in got) - min(c["started_at"] for c in got)
                outside[j].append(elapsed - span)
                # How late the first cells of the branches that can start at once start after the
                # setup cell: with `-j` ≥ 4, the start of their workers.
                ready = sorted(got[i]["started_at"] for i in first_wave)[: min(j, n_branches)]
                delay[j].append(ready[-1] - got[0]["finished_at"])
                if j == 1:
                    durations.append([c["duration_s"] for c in got])
        # The work of each cell: its median `duration_s` in the -j 1 runs, where no cell competes
        # for a core (with -j 4 on 2 cores, a CPU-bound cell's duration_s doubles).
        work = [median([d[i] for d in durations]) for i in range(n_cells)]
        chain = work[0] + max(work[i] + work[i + 1] for i in first_wave) + work[-1]
        total = sum(work)
        data[kind] = {"work_s": work, "chain_s": chain, "total_s": total, "plain_s": sum(plain["seconds"])}
        for j in jobs:
            used = min(j, cfg.cores)
            bound = max(chain, total / used)
            wall = median(walls[j])
            data[kind][f"j{j}"] = {"wall_s": wall, "bound_s": bound, "over": wall / bound - 1, "max_overlap": max(overlap[j]),
                                   "outside_cells_s": median(outside[j]), "branch_start_delay_s": median(delay[j]), "walls_s": walls[j]}
            rows.append([
                "`time.sleep`" if kind == "sleep" else "pure-Python loop", f"-j {j}", secs(wall), secs(chain), secs(total),
                f"{secs(bound)} ({used} core{'s' if used > 1 else ''})", f"{(wall / bound - 1) * 100:+.0f}%",
                f"{(wall / chain - 1) * 100:+.0f}%", str(max(overlap[j])), ms(median(delay[j])), ms(median(outside[j])),
                "within 15% of the bound", yes_no(wall <= 1.15 * bound),
            ])
    lines = [
        f"The notebook: a setup cell, 4 independent branches of 2 cells of about {secs(seconds)} each, a join cell "
        f"(checked with `nbmemo plan`: 4 waves). Cold runs (`.nbmemo` deleted before each), median of {runs}. "
        f"This machine has {cfg.cores} cores. Work per cell: its median `duration_s` in the `-j 1` runs. "
        f"Bound = max(longest chain, total work / cores), cores = min(-j, {cfg.cores}). "
        "Sleeping cells do not occupy a core, so with `time.sleep` the longest chain is the real limit; "
        "both columns are shown. Branch start delay: from the end of the setup cell to the start of the last of the "
        "first branch cells that can run at once (min(-j, 4) of them). Outside the cells: the wall time before the first "
        "cell starts and after the last one finishes (process start, interpreter probe and first worker, saving the run, exit).",
        "",
    ]
    lines += table(
        ["cells", "-j", "wall", "longest chain", "total work", "bound", "over the bound", "over the chain", "most cells at once",
         "branch start delay", "outside the cells", "target", "met"],
        rows,
        "lrrrrrrrrrrll",
    )
    speedup_after = parallelism(cfg, iterations * 2)
    speedup = (speedup_before + speedup_after) / 2
    data.update(parallel_speedup_after=speedup_after)
    cpu = data["cpu"]
    effective = max(cpu["chain_s"], cpu["total_s"] / min(speedup, cfg.cores))
    lines += [
        "",
        f"Parallelism the machine gave: {cfg.cores} CPU-bound Python processes started together ran "
        f"{speedup_before:.2f}× (before the runs) and {speedup_after:.2f}× (after) faster than one after the other "
        f"({cfg.cores}.00× on an idle {cfg.cores}-core machine). "
        f"With the mean of the two as the number of cores, the bound of the pure-Python runs with -j 2 and -j 4 is {secs(effective)}: "
        f"they are {(cpu['j2']['wall_s'] / effective - 1) * 100:+.0f}% and {(cpu['j4']['wall_s'] / effective - 1) * 100:+.0f}% over it. "
        f"For comparison, the same cells exec'd top to bottom in one interpreter take {secs(data['sleep']['plain_s'])} "
        f"(`time.sleep`) and {secs(data['cpu']['plain_s'])} (pure Python), interpreter start-up not included.",
    ]
    summary = [
        [f"4 branches × 2 cells of {secs(seconds)}, {'`time.sleep`' if kind == 'sleep' else 'pure Python'}, -j {j}",
         f"{(data[kind][f'j{j}']['over']) * 100:+.0f}% vs the bound", "within 15% of the critical-path bound",
         yes_no(data[kind][f"j{j}"]["over"] <= 0.15)]
        for kind in ["sleep", "cpu"] for j in jobs
    ]
    return Section("branches", lines, data, summary)


# ---------------------------------------------------------------------------------------------
# The environment block and BENCHMARKS.md


def environment_section(cfg: Config) -> Section:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    _, result = timed(
        [str(cfg.python), "-c", "import json, platform, cloudpickle; print(json.dumps([platform.python_implementation(), platform.python_version(), cloudpickle.__version__]))"],
        cfg,
    )
    impl, pyver, cp = json.loads(result.stdout)
    _, version = timed([str(cfg.nbmemo), "--version"], cfg)
    _, commit = timed(["git", "rev-parse", "--short", "HEAD"], cfg, cwd=ROOT)
    _, dirty = timed(["git", "status", "--porcelain", "--untracked-files=no"], cfg, cwd=ROOT)
    rev = commit.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")
    data = {
        "date": datetime.date.today().isoformat(), "machine": platform.machine(), "cores": cfg.cores, "cpu": cpu,
        "kernel": platform.release(), "python": f"{impl} {pyver}", "cloudpickle": cp,
        "nbmemo": version.stdout.strip(), "commit": rev, "build": "debug" if cfg.quick else "release",
    }
    lines = [
        f"Machine: {data['machine']}, {data['cores']} cores ({cpu}), Linux {data['kernel']}. "
        f"Workers: {impl} {pyver}, cloudpickle {cp}. {data['nbmemo']}, {data['build']} build. "
        "Every figure is a whole `nbmemo` process timed from outside; each table says when it was measured.",
    ]
    return Section("environment", lines, data)


def provenance(env: Section, load_before: float | None, load_after: float | None) -> str:
    load = "" if load_before is None or load_after is None else f"; load average (1 min) {load_before:.2f} before, {load_after:.2f} after"
    return f"Measured {env.data['date']} (commit {env.data['commit']}, {env.data['build']} build{load})."


SUMMARY_TAG = "<!-- bench:summary "


def summary_tag(section: Section) -> str:
    """The section's summary rows, kept in its block (invisible) so that a partial `--write`
    (`--only`) can rebuild the summary of the whole file."""
    return SUMMARY_TAG + json.dumps(section.summary, ensure_ascii=False).replace("--", "\\u002d\\u002d") + " -->"


def summary_lines(text: str) -> list[str]:
    rows = []
    for name in SCENARIOS:
        begin, end = f"<!-- bench:begin {name} -->", f"<!-- bench:end {name} -->"
        if begin not in text:
            continue
        block = text[text.index(begin):text.index(end)]
        if SUMMARY_TAG in block:
            start = block.index(SUMMARY_TAG) + len(SUMMARY_TAG)
            rows += json.loads(block[start:block.index(" -->", start)])
    return table(["scenario", "measured", "target (SPEC.md)", "met"], rows, "llll")


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def write_blocks(sections: list[Section]) -> Path:
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text()
    for section in sections:
        begin, end = f"<!-- bench:begin {section.name} -->", f"<!-- bench:end {section.name} -->"
        if begin not in text or end not in text:
            raise BenchError(f"BENCHMARKS.md has no `{begin}` … `{end}` block")
        start, stop = text.index(begin) + len(begin), text.index(end)
        body = section.lines + ([summary_tag(section)] if section.summary else [])
        text = text[:start] + "\n" + "\n".join(body) + "\n" + text[stop:]
    begin, end = "<!-- bench:begin summary -->", "<!-- bench:end summary -->"
    if begin in text and end in text:
        start, stop = text.index(begin) + len(begin), text.index(end)
        text = text[:start] + "\n" + "\n".join(summary_lines(text)) + "\n" + text[stop:]
    path.write_text(text)
    return path


def scenario_baselines(cfg: Config) -> Section:
    """nbmemo side by side with nbconvert, papermill, jupyter-cache and marimo (bench/baselines.py)."""
    import baselines

    return baselines.scenario(cfg, cfg.extra_tools)


RUNNERS = {
    "plan": scenario_plan,
    "noop": scenario_noop,
    "edit": scenario_edit,
    "overhead": scenario_overhead,
    "branches": scenario_branches,
    "baselines": scenario_baselines,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: debug build, few repetitions, small notebooks")
    parser.add_argument("--write", action="store_true", help="write the tables into BENCHMARKS.md")
    parser.add_argument("--only", action="append", choices=SCENARIOS, metavar="SCENARIO", help=f"run only these scenarios ({', '.join(SCENARIOS)}); repeatable")
    parser.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS", help="first wait up to SECONDS for the 1-minute load average to fall below 1")
    parser.add_argument("--marimo-export", action="store_true", help="baselines: also time marimo through `marimo export html` (its kernel) besides script mode")
    args = parser.parse_args()
    if args.write and args.quick:
        parser.error("--write with --quick would put the smoke run's meaningless figures into BENCHMARKS.md")

    OUT.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    sections = []
    try:
        cfg = Config(quick=args.quick, nbmemo=binary(args.quick), python=worker_python(), cores=os.cpu_count() or 1, env=clean_env(),
                     extra_tools=["marimo-export"] if args.marimo_export else [])
        deadline = time.monotonic() + args.wait_idle
        while (load := load_average()) is not None and load >= 1 and time.monotonic() < deadline:
            log(f"bench: load average {load:.2f}, waiting for the machine to be idle")
            time.sleep(min(15, max(0.0, deadline - time.monotonic())))
        load_start = load_average()
        if load_start is not None and load_start > 0.5:
            log(f"bench: warning: the load average is {load_start:.2f}; something else is using the CPUs, the figures will suffer")
        environment = environment_section(cfg)
        sections.append(environment)
        for name in args.only or SCENARIOS:
            t, load_before = time.perf_counter(), load_average()
            log(f"bench: {name} …")
            section = RUNNERS[name](cfg)
            log(f"bench: {name} done in {time.perf_counter() - t:.1f} s")
            section.lines[:0] = [provenance(environment, load_before, load_average()), ""]
            section.data["load_before"], section.data["load_after"] = load_before, load_average()
            sections.append(section)
    except BenchError as err:
        print(f"bench: FAILED: {err}", file=sys.stderr)
        return 1
    for section in sections:
        print(f"\n## {section.name}\n")
        print("\n".join(section.lines))
    print("\n## summary\n")
    print("\n".join(table(["scenario", "measured", "target (SPEC.md)", "met"], [row for section in sections for row in section.summary], "llll")))
    (OUT / "results.json").write_text(json.dumps({s.name: s.data for s in sections}, indent=2) + "\n")
    print(f"\nbench: {time.perf_counter() - started:.0f} s; raw figures in {(OUT / 'results.json').relative_to(ROOT)}")
    if args.quick:
        print("bench: quick smoke run (debug build, few repetitions): the figures mean nothing, the checks passed")

    if args.write:
        try:
            path = write_blocks(sections)
        except BenchError as err:
            print(f"bench: FAILED: {err}", file=sys.stderr)
            return 1
        print(f"bench: wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
