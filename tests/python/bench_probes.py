"""What the state probes cost per cell (PROTOCOL.md, "State probes").

    python tests/python/bench_probes.py [cells]

Two measurements, each without numpy and with numpy + pandas + matplotlib imported:
- in-process: the runner's own probe work around one cell (`_probes_begin` + `_probes_end`),
  when the worker is already in the wanted state (the common case: nothing restored), at the
  defaults and in states a cell set (seeded generators, a style, options, a filter...), and
  when every probe must be restored (alternating between those states and the defaults);
- end to end: the round trip of a trivial cell through a worker, with the runner as it is and
  with a copy whose PROBES list is empty.
Not a test (unittest discovery skips it: its name does not start with test).
"""

import importlib.util
import os
import re
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNER = os.path.join(HERE, os.pardir, os.pardir, "src", "exec", "python", "runner.py")
HEAVY = [m for m in ("numpy", "pandas", "matplotlib.pyplot")
         if importlib.util.find_spec(m.split(".")[0]) is not None]


def _load_runner():
    spec = importlib.util.spec_from_file_location("nbmemo_runner_bench", RUNNER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    import cloudpickle

    mod.ST.cloudpickle = cloudpickle
    mod.ST.sys_path = list(sys.path)
    mod.ST.start_cwd = mod.ST.cwd_base = os.getcwd()
    mod._install_post_import()
    mod._probes_init()
    return mod


def _per_cell(fn, n, rounds=5):
    """Microseconds per call: the best of `rounds` rounds (the machine may be busy)."""
    fn()
    best = None
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        took = (time.perf_counter() - t0) / n * 1e6
        best = took if best is None else min(best, took)
    return best


def in_process(n):
    R = _load_runner()
    rows = []

    def steady():
        R._probes_begin({})
        R._probes_end()

    def seeded_inputs():
        """Inputs that differ from the defaults for every loaded probe."""
        import random

        code_state = {}
        random.seed(1)
        R.os.environ["NBMEMO_BENCH"] = "1"
        sys.path.append("/nbmemo/bench")
        import warnings

        warnings.simplefilter("ignore")
        if "numpy" in sys.modules:
            import numpy as np

            np.random.seed(1)
            np.set_printoptions(precision=3)
        if "pandas" in sys.modules:
            sys.modules["pandas"].set_option("display.max_rows", 7)
        if "matplotlib" in sys.modules:
            sys.modules["matplotlib.pyplot"].style.use("ggplot")
        for p in R.PROBES:
            if p.name in R.ST.probe_default and p.name != "@cwd":
                state = p.capture()
                code_state[p.name] = (state, R._probe_dumps(p.name, state))
        return code_state

    def label():
        return "numpy+pandas+matplotlib" if "numpy" in sys.modules else "stdlib only"

    for phase in ("light", "heavy"):
        if phase == "heavy":
            for m in HEAVY:
                __import__(m)
        R._probes_begin({})
        R._probes_end()
        active = [p.name for p in R.PROBES if p.name in R.ST.probe_default]
        inputs = seeded_inputs()
        R._probes_begin({})
        R._probes_end()
        flip = [False]

        def restoring():
            # Alternate: the inputs (all restored), then the defaults (all restored back).
            flip[0] = not flip[0]
            R._probes_begin(inputs if flip[0] else {})
            R._probes_end()

        def steady_set():
            R._probes_begin(inputs)
            R._probes_end()

        rows.append((label(), len(active), _per_cell(steady, n), _per_cell(steady_set, n),
                     _per_cell(restoring, n)))
        per_probe = []
        for p in R.PROBES:
            if p.name not in R.ST.probe_default:
                continue
            per_probe.append((p.name, _per_cell(lambda: R._probe_dumps(p.name, p.capture()), n)))
        rows.append(per_probe)
        R._probes_begin({})
        R._probes_end()
    return rows


def end_to_end(n):
    sys.path.insert(0, HERE)
    from test_runner import Worker  # imports numpy & co. (its skip decorators): after in_process

    with open(RUNNER) as f:
        src = f.read()
    no_probes, count = re.subn(r"\nPROBES = \[\n.*?\n\]\n", "\nPROBES = []\n", src, flags=re.S)
    assert count == 1
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "runner_no_probes.py")
    with open(path, "w") as f:
        f.write(no_probes)
    workers = {}
    try:
        for variant, runner in (("with probes", None), ("PROBES = []", path)):
            for phase in ("stdlib only", "numpy+pandas+matplotlib"):
                w = Worker(script_mode=True, runner=runner) if runner else Worker(script_mode=True)
                workers[(variant, phase)] = w
                if phase != "stdlib only":
                    w.exec("".join("import %s\n" % m for m in HEAVY), cwd=tmp)
                for _ in range(20):
                    w.exec("x = 1", writes=["x"], cwd=tmp)
        # Rounds interleaved between the workers, best round kept: the machine may be busy.
        best = {}
        for _ in range(5):
            for key, w in workers.items():
                t0 = time.perf_counter()
                for _ in range(n):
                    w.exec("x = 1", writes=["x"], cwd=tmp)
                took = (time.perf_counter() - t0) / n * 1e6
                best[key] = min(best.get(key, took), took)
    finally:
        for w in workers.values():
            w.close()
    return [(variant, phase, us) for (variant, phase), us in best.items()]


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    print("python %s; numpy+pandas+matplotlib: %s" % (sys.version.split()[0], HEAVY or "absent"))
    rows = in_process(n)
    print("\nIn-process probe work per cell (microseconds):")
    print("  %-24s %6s %18s %18s %18s" % ("modules", "probes", "in place, default",
                                           "in place, set", "restore all"))
    for row in rows:
        if isinstance(row, tuple):
            print("  %-24s %6d %18.1f %18.1f %18.1f" % row)
        else:
            print("    capture+pickle: " + ", ".join("%s %.1f" % kv for kv in row))
    print("\nEnd-to-end round trip of `x = 1` (microseconds):")
    for variant, phase, us in end_to_end(n):
        print("  %-12s %-26s %8.1f" % (variant, phase, us))


if __name__ == "__main__":
    main()
