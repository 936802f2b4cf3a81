#!/usr/bin/env python3
"""nbmemo benchmark harness (`just bench`; `just bench --quick` is CI's smoke run).

Generates the benchmark notebooks under target/bench/, times whole nbmemo processes (median of
several runs) and prints a table. `--write` replaces the generated section of BENCHMARKS.md.
The quick mode uses the debug build and few repetitions: it checks that the harness works,
and its figures mean nothing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "target" / "bench"
BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"


def generate_light_notebook(n_cells: int) -> str:
    """A percent notebook of `n_cells` varied code cells (imports, functions, loops, reads)."""
    cells = ["import math\nimport json\nfrom collections import defaultdict"]
    for i in range(1, n_cells):
        kind = i % 6
        prev = f"v{max(i - 1, 1)}"
        far = f"v{max(i - 7, 1)}"
        if kind == 0:
            cells.append(f"def f{i}(x, k={i}):\n    \"\"\"Helper {i}.\"\"\"\n    return math.sqrt(x * k) + {far}")
        elif kind == 1:
            cells.append(f"v{i} = [j * {i} for j in range(10)]\nprint(len(v{i}))")
        elif kind == 2:
            cells.append(f"v{i} = defaultdict(list)\nfor j, x in enumerate({prev}):\n    v{i}[j % 3].append(x)")
        elif kind == 3:
            cells.append(f"v{i} = {{'a': {i}, 'b': [{prev}, {far}]}}\nv{i}['c'] = json.dumps(v{i}['a'])")
        elif kind == 4:
            cells.append(f"class C{i}:\n    def __init__(self, n):\n        self.n = n\n    def total(self):\n        return self.n + len({prev})\nv{i} = C{i}({i}).total()")
        else:
            cells.append(f"if {prev}:\n    v{i} = f{i - 5}({i}) if {i} % 2 else {prev}\nelse:\n    v{i} = None\n# a comment about v{i}")
    return "".join(f"# %%\n{cell}\n\n" for cell in cells)


def binary(quick: bool) -> Path:
    profile = "debug" if quick else "release"
    args = ["cargo", "build", "--quiet"] + ([] if quick else ["--release"])
    subprocess.run(args, cwd=ROOT, check=True)
    return ROOT / "target" / profile / "nbmemo"


def time_command(argv: list[str], runs: int) -> tuple[float, list[float]]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        result = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        samples.append(time.perf_counter() - start)
        if result.returncode != 0:
            sys.exit(f"benchmark command failed ({result.returncode}): {' '.join(argv)}\n{result.stderr.decode()}")
    return statistics.median(samples), samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: debug build, few repetitions")
    parser.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md")
    args = parser.parse_args()

    OUT.mkdir(parents=True, exist_ok=True)
    nbmemo = binary(args.quick)
    runs = 3 if args.quick else 21

    plan_nb = OUT / "light-1000.py"
    plan_nb.write_text(generate_light_notebook(1000))

    rows = []
    for fmt in ["json", "text"]:
        median, samples = time_command([str(nbmemo), "plan", str(plan_nb), "--format", fmt], runs)
        rows.append((f"plan, 1,000-cell notebook, --format {fmt}", median, min(samples), "under 100 ms"))

    # The JSON must describe every cell: a benchmark that silently measures an error is useless.
    out = subprocess.run([str(nbmemo), "plan", str(plan_nb), "--format", "json"], capture_output=True, check=True)
    plan = json.loads(out.stdout)
    assert len(plan["cells"]) == 1000, len(plan["cells"])

    lines = [
        f"Measured {datetime.date.today().isoformat()} on {platform.machine()}, {os.cpu_count()} cores, "
        f"{'debug (quick smoke run)' if args.quick else 'release'} build; median of {runs} whole-process runs.",
        "",
        "| scenario | median | best | target |",
        "| --- | ---: | ---: | --- |",
    ]
    for name, median, best, target in rows:
        lines.append(f"| {name} | {median * 1000:.1f} ms | {best * 1000:.1f} ms | {target} |")
    table = "\n".join(lines)
    print(table)

    if args.write:
        path = ROOT / "BENCHMARKS.md"
        text = path.read_text()
        start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
        path.write_text(text[:start] + "\n" + table + "\n" + text[end:])
        print(f"\nwrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
