"""The notebooks the benchmarks run, generated as jupytext percent scripts (stdlib only).

Each generator returns the list of cell sources; `percent` turns it into a notebook file.
Every notebook here must also run top to bottom with plain `exec` (the harness checks it): the
benchmarks compare nbmemo with that.
"""

from __future__ import annotations


def percent(cells: list[str]) -> str:
    """A jupytext percent script of these code cells."""
    return "".join(f"# %%\n{cell}\n\n" for cell in cells)


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
