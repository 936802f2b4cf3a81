"""Cache size before and after `nbmemo cache gc`, on a store filled by a data notebook edited
several times (numpy and pandas, about 20 cells; the figures in BENCHMARKS.md).

    .venv/bin/python bench/cache_gc.py [--nbmemo target/release/nbmemo] [--rows 200000]

Runs the notebook, then five edits (a threshold in the middle, the scale in the last cell, the
size of the data in the first cell, which invalidates everything, a comment, and the threshold
again), each followed by a run; then prints `cache stats`, a default `cache gc` (which keeps
what the last 3 runs need and everything used within 7 days: here, everything) and a
`cache gc --keep-runs 1 --max-age 0`, as a Markdown table. Stdlib only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def notebook(n_rows: int, threshold: float, scale: int, note: str) -> str:
    cells = [
        "import numpy as np\nimport pandas as pd",
        f"# {note}\nrng = np.random.default_rng(42)\nN = {n_rows}\nunits = rng.poisson(3, N)\n"
        "price = rng.gamma(2.0, 10.0, N).round(2)\n"
        'sales = pd.DataFrame({"store": rng.integers(0, 50, N), "product": rng.integers(0, 400, N),\n'
        '                      "day": rng.integers(0, 365, N), "units": units, "price": price,\n'
        '                      "revenue": units * price})\nprint(sales.shape)',
        'stores = pd.DataFrame({"store": np.arange(50), "region": np.random.default_rng(7).choice(["north", "south", "east", "west"], 50),\n'
        '                       "size_m2": np.random.default_rng(8).integers(200, 2000, 50)})',
        'by_store = sales.groupby("store").agg(units=("units", "sum"), revenue=("revenue", "sum"), orders=("units", "size"))',
        'by_product = sales.groupby("product")["revenue"].agg(["sum", "mean", "std"]).sort_values("sum", ascending=False)\n'
        "print(by_product.head(3).round(1))",
        'daily = sales.groupby("day")["revenue"].sum()\nweekly = daily.rolling(7, min_periods=1).mean()',
        'merged = by_store.join(stores.set_index("store"))\nmerged["rev_per_m2"] = merged["revenue"] / merged["size_m2"]',
        'pivot = sales.pivot_table(index="store", columns=sales["day"] // 30, values="revenue", aggfunc="sum", fill_value=0)',
        'labels = sales["store"].astype(str) + "-" + sales["product"].astype(str)\ncounts = labels.value_counts()',
        f'THRESHOLD = {threshold}\ntop_cut = by_product["sum"].quantile(THRESHOLD)\n'
        'top_products = by_product.index[by_product["sum"] >= top_cut]',
        'top_sales = sales[sales["product"].isin(top_products)]\nprint(len(top_sales))',
        "corr = pivot.T.corr()\nprint(corr.to_numpy().mean().round(4))",
        'X = np.column_stack([np.ones(len(sales)), sales["units"], sales["day"] / 365])\n'
        'coef, *_ = np.linalg.lstsq(X, sales["revenue"].to_numpy(), rcond=None)',
        'top_share = top_sales.groupby("store")["revenue"].sum() / by_store["revenue"]',
        'report = pd.DataFrame({"top_share": top_share, "rev_per_m2": merged["rev_per_m2"]}).describe()',
        f"SCALE = {scale}\n"
        "print(f\"SCALE={SCALE} share={report.loc['mean', 'top_share'] * SCALE:.6f} coef={coef.round(4)} pairs={len(counts)}\")",
    ]
    return "".join(f"# %%\n{cell}\n\n" for cell in cells)


def nbmemo(binary: Path, project: Path, *args: str) -> dict:
    out = subprocess.run([str(binary), *args], cwd=project, capture_output=True, text=True)
    if out.returncode not in (0, 1):
        sys.exit(f"nbmemo {' '.join(args)} failed ({out.returncode}):\n{out.stderr}")
    return json.loads(out.stdout)


def mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nbmemo", type=Path, default=ROOT / "target/release/nbmemo")
    parser.add_argument("--python", type=Path, default=ROOT / ".venv/bin/python")
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    rows = args.rows
    versions = [
        (rows, 0.9, 1, "synthetic sales"),
        (rows, 0.8, 1, "synthetic sales"),
        (rows, 0.8, 3, "synthetic sales"),
        (rows + 1000, 0.8, 3, "synthetic sales"),
        (rows + 1000, 0.8, 3, "synthetic sales, one row per order"),
        (rows + 1000, 0.7, 3, "synthetic sales, one row per order"),
    ]
    with tempfile.TemporaryDirectory() as temp:
        project = Path(temp)
        (project / ".git").mkdir()
        nb = project / "sales.py"
        for version in versions:
            nb.write_text(notebook(*version))
            run = nbmemo(args.nbmemo, project, "run", "sales.py", "--json", "--python", str(args.python))
            summary = run["summary"]
            print(f"run: {summary['ran']} ran, {summary['cached']} cached", file=sys.stderr)
        rows_out = []
        stats = nbmemo(args.nbmemo, project, "cache", "stats", "--json")
        rows_out.append(("after 6 runs (5 edits)", stats["records"], stats["artifacts"]["total"],
                         stats["bytes_on_disk"], stats["disk"]["database"], stats["payload_bytes"], None))
        for label, gc_args in [
            ("`cache gc` (defaults: nothing is old enough to go)", []),
            ("`cache gc --keep-runs 1 --max-age 0`", ["--keep-runs", "1", "--max-age", "0"]),
        ]:
            start = time.perf_counter()
            gc = nbmemo(args.nbmemo, project, "cache", "gc", "--json", *gc_args)
            took = time.perf_counter() - start
            stats = nbmemo(args.nbmemo, project, "cache", "stats", "--json")
            rows_out.append((label, stats["records"], stats["artifacts"]["total"], stats["bytes_on_disk"],
                             stats["disk"]["database"], stats["payload_bytes"], took))
        again = nbmemo(args.nbmemo, project, "run", "sales.py", "--json", "--python", str(args.python))
        stats = nbmemo(args.nbmemo, project, "cache", "stats", "--json")
        rows_out.append(("after the next run (fully cached; redb's file grows at its first write)", stats["records"],
                         stats["artifacts"]["total"], stats["bytes_on_disk"], stats["disk"]["database"],
                         stats["payload_bytes"], None))
        print("| store | records | artifacts | on disk | of which database | payload | on disk / payload | gc time |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for label, records, artifacts, disk, db, payload, took in rows_out:
            took = "" if took is None else f"{took:.2f} s"
            print(f"| {label} | {records} | {artifacts} | {mib(disk)} | {mib(db)} | {mib(payload)} | {disk / payload:.2f}× | {took} |")
        print(f"\nthe run after gc: {again['summary']['cached']} cached, {again['summary']['ran']} ran")


if __name__ == "__main__":
    main()
