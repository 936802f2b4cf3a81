"""Start-up of the `nbmemo` command the wheel installs, against the native binary.

Usage (after `just wheel` and `cargo build --release`, with the wheel installed in VENV):

    python3 bench/wheel_startup.py target/release/nbmemo VENV

Prints the median (and min, max) wall time of `nbmemo --version` and of a fully cached
`nbmemo run examples/quickstart.ipynb` for both, and of `python -c pass` and
`python -c "import nbmemo"` in VENV, over RUNS runs each after one warm-up run; and the size of
the wheels in target/wheels. The numbers are for BENCHMARKS.md ("The Python package").
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 101
ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "examples" / "quickstart.ipynb"


def timings(command, env):
    subprocess.run(command, capture_output=True, check=True, env=env)  # warm-up
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True, env=env)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), min(times), max(times)


def main():
    native = Path(sys.argv[1]).resolve()
    venv = Path(sys.argv[2]).resolve()
    python = venv / "bin" / "python"
    script = venv / "bin" / "nbmemo"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "NBMEMO_CACHE_DIR")}
    with tempfile.TemporaryDirectory() as cache:
        # One cache, filled once by the script's interpreter: both then replay every cell.
        run = ["run", str(QUICKSTART), "--cache-dir", cache, "--python", str(python)]
        subprocess.run([str(script), *run], capture_output=True, check=True, env=env)
        rows = [
            ("native `nbmemo --version`", [str(native), "--version"]),
            ("console script `nbmemo --version`", [str(script), "--version"]),
            ("native `nbmemo run` (7 cells cached)", [str(native), *run]),
            ("console script `nbmemo run` (7 cells cached)", [str(script), *run]),
            ("`python -c pass`", [str(python), "-c", "pass"]),
            ("`python -c 'import nbmemo'`", [str(python), "-c", "import nbmemo"]),
        ]
        print(f"| command | median | min | max |  ({RUNS} runs)")
        print("| --- | --- | --- | --- |")
        for label, command in rows:
            median, low, high = timings(command, env)
            print(f"| {label} | {median:.1f} ms | {low:.1f} ms | {high:.1f} ms |")
    for wheel in sorted((ROOT / "target" / "wheels").glob("*.whl")):
        print(f"{wheel.name}: {wheel.stat().st_size / 1e6:.2f} MB")
    print(f"load average: {os.getloadavg()}")


if __name__ == "__main__":
    main()
