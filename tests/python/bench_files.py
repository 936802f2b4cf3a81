"""What tracing file accesses costs per cell (PROTOCOL.md, "Files").

    python tests/python/bench_files.py [cells]

The runner's audit hook is installed in every worker; it records accesses only while a cell
runs with a project root in its request. This measures the round trip of cells through one
worker with the root (tracing on) and without (tracing off: the hook returns at once), for
a trivial cell, a cell reading 20 small files, a cell listing a folder and writing a file,
and (when pandas is installed) a `pd.read_csv`. Not a test (unittest discovery skips it).
"""

import importlib.util
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from test_runner import Worker  # noqa: E402

CELLS = {
    "trivial cell (`x = 1`)": "x = 1",
    "reads 20 small files": "for i in range(20):\n    open('f%d.txt' % i).read()",
    "lists a folder, writes a file": "import os\nnames = os.listdir('.')\nopen('out.txt', 'w').write('x')",
}
if importlib.util.find_spec("pandas") is not None:
    CELLS["pd.read_csv of a 100-row file"] = "import pandas as pd\ndf = pd.read_csv('data.csv')"


def per_cell(worker, code, root, n):
    """Median microseconds per cell round trip over `n` cells."""
    times = []
    for _ in range(n):
        extra = {"root": root, "store": os.path.join(root, ".nbmemo")} if root else {}
        t0 = time.perf_counter()
        r = worker.exec(code, cwd=ROOT, writes=[], **extra)
        times.append((time.perf_counter() - t0) * 1e6)
        assert r.status == "ok", r.error
    return statistics.median(times)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    global ROOT
    ROOT = os.path.realpath(tempfile.mkdtemp())
    for i in range(20):
        with open(os.path.join(ROOT, "f%d.txt" % i), "w") as f:
            f.write("line\n" * 10)
    with open(os.path.join(ROOT, "data.csv"), "w") as f:
        f.write("a,b\n" + "".join("%d,%d\n" % (i, i * i) for i in range(100)))
    w = Worker()
    try:
        print("| cell | tracing off | tracing on | cost |")
        print("| --- | --- | --- | --- |")
        for label, code in CELLS.items():
            per_cell(w, code, None, 20)  # warm up (imports)
            offs, ons = [], []
            for _ in range(5):  # interleaved: a busy moment hits both
                offs.append(per_cell(w, code, None, n))
                ons.append(per_cell(w, code, ROOT, n))
            off, on = min(offs), min(ons)
            print("| %s | %.0f µs | %.0f µs | %+.0f µs |" % (label, off, on, on - off))
    finally:
        w.close()


if __name__ == "__main__":
    main()
