"""The notebooks the benchmarks run, generated as jupytext percent scripts (stdlib only).

Each generator returns the list of cell sources; `percent` turns it into a notebook file.
Every notebook here must also run top to bottom with plain `exec` (the harness checks it): the
benchmarks compare nbmemo with that.
"""

from __future__ import annotations

import json


def percent(cells: list[str]) -> str:
    """A jupytext percent script of these code cells."""
    return "".join(f"# %%\n{cell}\n\n" for cell in cells)


def ipynb(cells: list[str]) -> str:
    """An nbformat 4.5 notebook of these code cells (no outputs, a `python3` kernelspec), as
    Jupyter writes it: what nbconvert, papermill and jupyter-cache need."""
    notebook = {
        "cells": [
            {"cell_type": "code", "execution_count": None, "id": f"cell-{i}", "metadata": {}, "outputs": [],
             "source": cell.splitlines(keepends=True)}
            for i, cell in enumerate(cells)
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(notebook, indent=1) + "\n"


def plan_light(n_cells: int) -> str:
    """A percent notebook of `n_cells` varied code cells (imports, functions, loops, reads).

    Analysed by `nbmemo plan`, never run (cell 5 calls an undefined `f0`): keep it unchanged so
    that the plan figures stay comparable from one commit to the next.
    """
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
    return percent(cells)


def light_runnable(n_cells: int) -> list[str]:
    """`n_cells` small cells as people write them: assignments, comprehensions, small loops,
    prints, a few function definitions, conditionals; each reads names of earlier cells."""
    cells = [
        "import math\nimport statistics\nfrom collections import Counter\n"
        'names = ["ada", "grace", "alan", "edsger", "barbara"]\n'
        "def scale_0(x, k=1):\n    return x * k"
    ]
    for i in range(1, n_cells):
        kind = i % 8
        if kind == 0:
            cells.append(f'def scale_{i}(x, k={i % 7 + 1}):\n    """Scale `x` by {i % 7 + 1}."""\n    return x * k + len(names)')
        elif kind == 1:
            cells.append(f"upper_{i} = [n.upper() for n in names]\ncount_{i} = len(upper_{i})")
        elif kind == 2:
            cells.append(f'total_{i} = 0\nfor j in range({10 + i}):\n    total_{i} += j * j\nprint(f"total {i}: {{total_{i}}}")')
        elif kind == 3:
            cells.append(f"ratio_{i} = round(math.sqrt(total_{i - 1} + 1) / (count_{i - 2} or 1), 3)")
        elif kind == 4:
            cells.append(f'letters_{i} = Counter("".join(names))\nprint(letters_{i}.most_common(2))')
        elif kind == 5:
            cells.append(f"y_{i} = scale_{i - 5}(ratio_{i - 2})  # uses the helper defined above")
        elif kind == 6:
            cells.append(f'stats_{i} = {{"mean": statistics.mean([1, 2, {i}]), "max": max(total_{i - 4}, {i})}}\nprint(stats_{i})')
        else:
            cells.append(f'if y_{i - 2} > 10:\n    label_{i} = "big"\nelse:\n    label_{i} = "small"\nlabel_{i} += str({i})')
    return cells


def working(n_values: int, k: int) -> list[str]:
    """20 cells of pure-Python work on a chain of lists of `n_values` floats (each cell reads
    the list of the previous one); the last cell, which reads two earlier results, prints the
    result for the constant `k` (the benchmark edits it)."""
    cells = [
        "import math\nimport random\nfrom collections import Counter\n"
        f"rng = random.Random(2024)\ns0 = [rng.random() for _ in range({n_values})]"
    ]
    for i in range(1, 19):
        kind = i % 3
        if kind == 0:
            cells.append(f"s{i} = [(v * 1.618 + {i} / 100) % 1.0 for v in s{i - 1}]\nmedian_{i} = sorted(s{i})[len(s{i}) // 2]")
        elif kind == 1:
            cells.append(
                f"s{i} = [math.sin(v * {i}) ** 2 for v in s{i - 1}]\n"
                f"hist_{i} = [0] * 32\nfor v in s{i}:\n    hist_{i}[int(v * 31.999)] += 1"
            )
        else:
            cells.append(f's{i} = [(v + {i} * 0.01) % 1.0 for v in s{i - 1}]\ndigits_{i} = Counter(int(v * 1000) % 10 for v in s{i})')
    cells.append(
        f"K = {k}\nresult = sum(math.cos(v * K) for v in s18) / len(s18)\n"
        "for v in s18:\n    result += (v * K) % 1.0 > 0.5\n"
        'result += hist_16.index(max(hist_16))\nprint(f"K={K} result={result:.9f}")'
    )
    return cells


def chain(n_cells: int, kind: str) -> list[str]:
    """A chain of `n_cells` trivial cells, each reading the value of the previous one and
    writing a new one: small ints, or ~1 MB values (`bytes`, or a list of floats)."""
    if kind == "int":
        first, step, last = "x0 = 0", "x{i} = x{j} + 1", "print(x{i})"
    elif kind == "bytes":
        first = "import random\nx0 = random.Random(0).randbytes(1_000_000)"
        step, last = "x{i} = x{j}[1:] + b'{c}'", "print(len(x{i}))"
    elif kind == "list":
        # 111,000 floats pickle to about 1 MB (9 bytes each).
        first = "import random\nrng = random.Random(0)\nx0 = [rng.random() for _ in range(111_000)]"
        step, last = "x{i} = x{j}[1:] + [{i}.5]", "print(len(x{i}))"
    else:
        raise ValueError(kind)
    cells = [first]
    for i in range(1, n_cells):
        cells.append(step.format(i=i, j=i - 1, c=i % 10))
    cells[-1] += "\n" + last.format(i=n_cells - 1)
    return cells


BRANCHES = "abcd"


def branches(kind: str, seconds: float, iterations: int) -> list[str]:
    """A setup cell, four independent branches of two cells each, a join cell.

    `kind` "sleep": each branch cell sleeps `seconds`; "cpu": each runs `iterations` of a
    pure-Python loop (calibrated by the harness to take about `seconds`). The iteration counts
    are literals: passing a notebook variable to a call would make it a may-mutate candidate,
    which orders later readers after the call until a first run refutes it.
    """
    cells = [
        "import time\nseed = 7\n"
        "def burn(n, salt):\n    acc = salt\n    for i in range(n):\n        acc = (acc * 31 + i) % 1_000_003\n    return acc"
    ]
    for branch, name in enumerate(BRANCHES):
        if kind == "sleep":
            cells.append(f"time.sleep({seconds})\n{name}1 = seed + {branch}")
            cells.append(f"time.sleep({seconds})\n{name}2 = {name}1 * 2")
        else:
            cells.append(f"{name}1 = burn({iterations}, seed + {branch})")
            cells.append(f"{name}2 = burn({iterations}, {name}1)")
    cells.append(f"total = {' + '.join(f'{name}2' for name in BRANCHES)}\nprint(total)")
    return cells


# The data notebook's cells that the side-by-side benchmarks edit (bench/baselines.py).
DATA_MIDDLE = 10  # THRESHOLD: cells 11, 15, 18 and 19 depend on it
DATA_NOTE = 1  # the comment line of the cell every other cell depends on


def data(n_rows: int, threshold: float = 0.9, scale: int = 1, note: str = "synthetic sales, one row per order") -> list[str]:
    """20 cells of numpy/pandas work as in a data notebook: a DataFrame of `n_rows` orders
    (about 48 bytes a row), group-bys, a join, a pivot table, string keys, a correlation matrix,
    a least-squares fit, a bootstrap, an FFT; some cells print.

    Written so that it also runs as a marimo notebook with a persistent cache on every cell: no
    name is bound by two cells, no cell changes a value another cell bound, and every cell that
    draws random numbers has its own seeded generator. The benchmarks edit `threshold` (cell
    DATA_MIDDLE), `scale` (the last cell) and `note` (a comment line of cell DATA_NOTE).
    """
    return [
        "import numpy as np\nimport pandas as pd",
        f"# {note}\nrng = np.random.default_rng(42)\nN = {n_rows}\nunits = rng.poisson(3, N)\nprice = rng.gamma(2.0, 10.0, N).round(2)\n"
        'sales = pd.DataFrame({"store": rng.integers(0, 50, N), "product": rng.integers(0, 400, N),\n'
        '                      "day": rng.integers(0, 365, N), "units": units, "price": price, "revenue": units * price})\n'
        "print(sales.shape)",
        'stores = pd.DataFrame({"store": np.arange(50), "region": np.random.default_rng(7).choice(["north", "south", "east", "west"], 50),\n'
        '                       "size_m2": np.random.default_rng(8).integers(200, 2000, 50)})',
        'by_store = sales.groupby("store").agg(units=("units", "sum"), revenue=("revenue", "sum"), orders=("units", "size"))',
        'by_product = sales.groupby("product")["revenue"].agg(["sum", "mean", "std"]).sort_values("sum", ascending=False)\n'
        "print(by_product.head(3).round(1))",
        'daily = sales.groupby("day")["revenue"].sum()\nweekly = daily.rolling(7, min_periods=1).mean()',
        'merged = by_store.join(stores.set_index("store"))\nmerged["rev_per_m2"] = merged["revenue"] / merged["size_m2"]',
        'by_region = merged.groupby("region")[["revenue", "units"]].sum()\nprint(by_region.round(0))',
        'pivot = sales.pivot_table(index="store", columns=sales["day"] // 30, values="revenue", aggfunc="sum", fill_value=0)',
        'labels = sales["store"].astype(str) + "-" + sales["product"].astype(str)\ncounts = labels.value_counts()',
        f'THRESHOLD = {threshold}\ntop_cut = by_product["sum"].quantile(THRESHOLD)\ntop_products = by_product.index[by_product["sum"] >= top_cut]',
        'top_sales = sales[sales["product"].isin(top_products)]\nprint(len(top_sales))',
        "corr = pivot.T.corr()\nprint(corr.to_numpy().mean().round(4))",
        'X = np.column_stack([np.ones(len(sales)), sales["units"], sales["day"] / 365])\n'
        'coef, *_ = np.linalg.lstsq(X, sales["revenue"].to_numpy(), rcond=None)',
        "boot_rng = np.random.default_rng(9)\n"
        "boot = np.array([boot_rng.choice(daily.to_numpy(), size=len(daily)).mean() for _ in range(2000)])\n"
        "ci = np.percentile(boot, [2.5, 97.5])",
        'top_share = top_sales.groupby("store")["revenue"].sum() / by_store["revenue"]',
        "seasonality = np.abs(np.fft.rfft(daily.to_numpy() - daily.mean()))[:20]\nprint(seasonality.argmax())",
        'ranked = merged.sort_values("rev_per_m2", ascending=False).head(10)\nprint(ranked.index.tolist())',
        'report = pd.DataFrame({"top_share": top_share, "rev_per_m2": merged["rev_per_m2"]}).describe()',
        f"SCALE = {scale}\n"
        "print(f\"SCALE={SCALE} share={report.loc['mean', 'top_share'] * SCALE:.6f} ci={ci.round(2)} coef={coef.round(4)} pairs={len(counts)}\")",
    ]


def light_edited(n_cells: int, k: int) -> list[str]:
    """`light_runnable(n_cells - 1)` and a last cell that prints a figure depending on the
    constant `k` and on three earlier cells (the benchmarks edit `k`)."""
    cells = light_runnable(n_cells - 1)
    last = n_cells - 2
    ratio = max(i for i in range(last + 1) if i % 8 == 3)
    label = max(i for i in range(last + 1) if i % 8 == 7)
    total = max(i for i in range(last + 1) if i % 8 == 2)
    cells.append(f'K = {k}\nprint(f"K={{K}} {{round(ratio_{ratio} * K, 3)}} {{label_{label}}} {{total_{total} % K}}")')
    return cells
