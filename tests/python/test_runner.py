"""Tests of the worker runner (src/exec/python/runner.py), through its protocol.

Run with a Python that has cloudpickle: `python -m unittest discover -s tests/python`.
Each test starts workers exactly as the parent does: the runner's source sent over stdin to a
small bootstrap (`python -u -c BOOTSTRAP`, see src/exec/worker.rs), or the runner as a script.
"""

import array
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

try:
    import cloudpickle
except ImportError:  # pragma: no cover
    cloudpickle = None

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNER = os.path.join(HERE, os.pardir, os.pardir, "src", "exec", "python", "runner.py")

BOOTSTRAP = (
    "import sys\n"
    "n = int.from_bytes(sys.stdin.buffer.read(8), 'little')\n"
    "src = sys.stdin.buffer.read(n)\n"
    "exec(compile(src, '<nbmemo runner>', 'exec'), {'__name__': '__main__', '__builtins__': __builtins__})\n"
)


def _has(module):
    try:
        __import__(module)
        return True
    except Exception:
        return False


class Worker:
    """A minimal parent: starts a worker, frames requests, reads results."""

    def __init__(self, script_mode=False, python=None, env=None, runner=None):
        full_env = dict(os.environ)
        full_env.update(
            {"PYTHONHASHSEED": "0", "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg", "NBMEMO_WORKER": "1"}
        )
        full_env.pop("PYTHONSTARTUP", None)
        if env:
            full_env.update(env)
        self.stderr = tempfile.TemporaryFile()
        python = python or sys.executable
        if script_mode:
            args = [python, "-u", runner or RUNNER]
        else:
            args = [python, "-u", "-c", BOOTSTRAP]
        self.proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, env=full_env
        )
        if not script_mode:
            with open(runner or RUNNER, "rb") as f:
                src = f.read()
            self.proc.stdin.write(struct.pack("<Q", len(src)) + src)
            self.proc.stdin.flush()
        self.hello = self.read()[0]

    def send(self, header, blobs=()):
        data = json.dumps(header).encode()
        out = struct.pack("<II", len(data), len(blobs)) + data
        for b in blobs:
            out += struct.pack("<Q", len(b)) + b
        self.proc.stdin.write(out)
        self.proc.stdin.flush()

    def _exact(self, n):
        data = self.proc.stdout.read(n)
        if len(data) != n:
            raise EOFError("worker closed its stdout; stderr:\n" + self.stderr_text())
        return data

    def read(self):
        header_len, n_blobs = struct.unpack("<II", self._exact(8))
        header = json.loads(self._exact(header_len).decode("utf-8"))
        blobs = []
        for _ in range(n_blobs):
            (n,) = struct.unpack("<Q", self._exact(8))
            blobs.append(self._exact(n))
        return header, blobs

    def exec(self, code, inputs=(), candidates=(), writes=(), cell=1, cwd=None,
             display_suppressed=False, blobs=(), **extra):
        req = {
            "type": "exec",
            "cell": cell,
            "code": code,
            "filename": "<cell %d>" % cell,
            "cwd": cwd or os.getcwd(),
            "inputs": list(inputs),
            "candidates": list(candidates),
            "writes": None if writes is None else list(writes),
            "display_suppressed": display_suppressed,
        }
        req.update(extra)
        self.send(req, blobs)
        header, out_blobs = self.read()
        self.assert_ok_frame(header)
        return Result(header, out_blobs)

    def assert_ok_frame(self, header):
        assert header["type"] == "result", header
        for key in ("status", "stdout", "stderr", "outputs", "error", "values", "deleted",
                    "mutated", "unpicklable", "duration_s"):
            assert key in header, key

    def stderr_text(self):
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", "replace")

    def close(self):
        if self.proc.poll() is None:
            try:
                self.send({"type": "shutdown"})
            except (BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except Exception:
                pass
        self.stderr.close()


class Result:
    def __init__(self, header, blobs):
        self.h = header
        self.blobs = blobs

    def __getattr__(self, name):
        return self.h[name]

    def groups(self):
        """{tuple(names): blob}."""
        return {tuple(v["names"]): self.blobs[v["blob"]] for v in self.h["values"]}

    def value_inputs(self):
        """The returned groups as inputs of another exec: (inputs, blobs)."""
        inputs, blobs = [], []
        for v in self.h["values"]:
            inputs.append({"names": v["names"], "blob": len(blobs)})
            blobs.append(self.blobs[v["blob"]])
        return inputs, blobs

    def load(self):
        """All returned values, loaded in this process."""
        out = {}
        for v in self.h["values"]:
            out.update(pickle.loads(self.blobs[v["blob"]]))
        return out


def inputs_of(values):
    """(inputs, blobs) carrying each name of `values` in its own group."""
    inputs, blobs = [], []
    for name, value in values.items():
        inputs.append({"names": [name], "blob": len(blobs)})
        blobs.append(cloudpickle.dumps({name: value}, protocol=5))
    return inputs, blobs


@unittest.skipIf(cloudpickle is None, "cloudpickle is not installed")
class RunnerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.w = Worker()

    @classmethod
    def tearDownClass(cls):
        cls.w.close()

    def run_ok(self, code, **kw):
        r = self.w.exec(code, **kw)
        self.assertEqual(r.status, "ok", (r.error, r.stderr, self.w.stderr_text()))
        return r

    # --- start-up -------------------------------------------------------------------------

    def test_hello(self):
        h = self.w.hello
        self.assertEqual(h["type"], "hello")
        self.assertEqual(h["protocol"], 1)
        self.assertEqual(h["pid"], self.w.proc.pid)
        self.assertEqual(h["cloudpickle"], cloudpickle.__version__)
        self.assertEqual(h["python"]["implementation"], sys.implementation.name)
        self.assertEqual(h["python"]["version"], sys.version.split()[0])
        self.assertEqual(h["python"]["cache_tag"], sys.implementation.cache_tag)
        self.assertIn("ipython", h)
        self.assertIsNone(h.get("error"))

    def test_script_mode(self):
        w = Worker(script_mode=True)
        try:
            self.assertEqual(w.hello["protocol"], 1)
            r = w.exec("x = 1 + 1\nprint(x)", writes=["x"])
            self.assertEqual(r.status, "ok")
            self.assertEqual(r.stdout, "2\n")
        finally:
            w.close()

    def test_missing_cloudpickle(self):
        tmp = tempfile.mkdtemp()
        try:
            with open(os.path.join(tmp, "cloudpickle.py"), "w") as f:
                f.write("raise ImportError('no cloudpickle here')\n")
            w = Worker(env={"PYTHONPATH": tmp})
            try:
                self.assertIsNone(w.hello["cloudpickle"])
                self.assertIn("cloudpickle", w.hello["error"])
                self.assertEqual(w.proc.wait(10), 3)
            finally:
                w.close()
        finally:
            shutil.rmtree(tmp)

    def test_eof_exits_cleanly(self):
        w = Worker()
        w.proc.stdin.close()
        self.assertEqual(w.proc.wait(10), 0)
        w.close()

    # --- values ---------------------------------------------------------------------------

    def test_inputs_and_outputs(self):
        inputs, blobs = inputs_of({"x": 41})
        r = self.run_ok("y = x + 1\nz = 'unused'", inputs=inputs, blobs=blobs, writes=["y"])
        self.assertEqual(list(r.groups()), [("y",)])
        self.assertEqual(r.load(), {"y": 42})
        self.assertEqual(r.deleted, [])
        self.assertEqual(r.mutated, [])
        self.assertEqual(r.unpicklable, [])
        self.assertIsNone(r.error)
        self.assertGreaterEqual(r.duration_s, 0)

    def test_fresh_namespace(self):
        self.run_ok("leak = 1", writes=["leak"])
        r = self.w.exec("leak")
        self.assertEqual(r.status, "error")
        self.assertEqual(r.error["ename"], "NameError")
        r = self.run_ok("print(sorted(k for k in globals()), __name__)")
        self.assertEqual(r.stdout, "['__builtins__', '__name__'] __main__\n")

    def test_barrier_returns_every_name(self):
        inputs, blobs = inputs_of({"a": 1})
        r = self.run_ok("b = a + 1\nc = 3\ndel a", inputs=inputs, blobs=blobs, writes=None)
        self.assertEqual(r.load(), {"b": 2, "c": 3})
        self.assertEqual(r.deleted, ["a"])

    def test_deleted(self):
        inputs, blobs = inputs_of({"old": 1, "keep": 2})
        r = self.run_ok("del old\nnew = keep", inputs=inputs, blobs=blobs, writes=["old", "new", "never"])
        self.assertEqual(r.deleted, ["old"])
        self.assertEqual(r.load(), {"new": 2})

    def test_aliasing(self):
        inputs, blobs = inputs_of({"items": [1, 2, 3]})
        r = self.run_ok("alias = items", inputs=inputs, blobs=blobs, writes=["alias"])
        self.assertEqual(list(r.groups()), [("alias", "items")])
        loaded = pickle.loads(r.blobs[0])
        self.assertIs(loaded["alias"], loaded["items"])
        # Fed into another cell, the group stays one object.
        inputs, blobs = r.value_inputs()
        r2 = self.run_ok("alias.append(4)\nprint(items, alias is items)", inputs=inputs, blobs=blobs,
                         candidates=["alias"])
        self.assertEqual(r2.stdout, "[1, 2, 3, 4] True\n")
        self.assertEqual(r2.mutated, ["alias"])
        self.assertEqual(list(r2.groups()), [("alias", "items")])

    def test_shared_nested_object(self):
        inputs, blobs = inputs_of({"base": {"k": [1]}})
        r = self.run_ok("view = base['k']\nother = [0]", inputs=inputs, blobs=blobs,
                        writes=["view", "other"])
        self.assertEqual(sorted(r.groups()), [("base", "view"), ("other",)])
        loaded = pickle.loads(r.groups()[("base", "view")])
        self.assertIs(loaded["view"], loaded["base"]["k"])

    def test_long_columns_of_atoms_share_only_through_what_they_hold(self):
        # A long list of one atom type holds nothing mutable; a long list whose only mutable
        # element sits anywhere (here last, after 100 floats) still ties the names holding it.
        inputs, blobs = inputs_of({"base": {"k": [1]}})
        code = ("floats = [float(i) for i in range(100)]\n"
                "mixed = [float(i) for i in range(100)] + [base['k']]\n"
                "ints = list(range(100)) + [True, None, 'x']")
        r = self.run_ok(code, inputs=inputs, blobs=blobs, writes=["floats", "mixed", "ints"])
        self.assertEqual(sorted(r.groups()), [("base", "mixed"), ("floats",), ("ints",)])
        loaded = pickle.loads(r.groups()[("base", "mixed")])
        self.assertIs(loaded["mixed"][-1], loaded["base"]["k"])

    def test_columns_of_atoms_are_reported_and_not_checked_again(self):
        r = self.run_ok("floats = [float(i) for i in range(100)]\n"
                        "words = tuple(str(i) for i in range(100))\n"
                        "mixed = floats + [[1]]\n"
                        "short = [1.0]",
                        writes=["floats", "words", "mixed", "short"])
        columns = {tuple(v["names"]): v.get("columns") for v in r.values}
        self.assertEqual(columns, {("floats",): ["floats"], ("words",): ["words"],
                                   ("mixed",): None, ("short",): None})
        # A column an input group names is taken at its word (only the worker that pickled
        # the value names it): its elements are not walked, so a value taken from them is
        # not tied to it. Here the word is false on purpose, to show it is taken.
        rows = [{"k": i} for i in range(100)]
        inputs, blobs = inputs_of({"rows": rows})
        r = self.run_ok("first = rows[0]", inputs=inputs, blobs=blobs, writes=["first"])
        self.assertEqual(list(r.groups()), [("first", "rows")])
        inputs[0]["columns"] = ["rows"]
        r = self.run_ok("first = rows[0]", inputs=inputs, blobs=blobs, writes=["first"])
        self.assertEqual(list(r.groups()), [("first",)])
        # ...unless the cell changed it: a mutated input is walked whole again.
        inputs, blobs = inputs_of({"floats": [float(i) for i in range(100)]})
        inputs[0]["columns"] = ["floats"]
        r = self.run_ok("extra = {'k': 1}\nfloats.append(extra)", inputs=inputs, blobs=blobs,
                        candidates=["floats"], writes=["extra"])
        self.assertEqual(r.mutated, ["floats"])
        self.assertEqual(list(r.groups()), [("extra", "floats")])
        self.assertNotIn("columns", r.values[0])

    def test_a_cells_inputs_are_freed_when_it_ends_without_a_collection(self):
        # Nothing of the runner may tie a cell's namespace into a reference cycle: the
        # unpickler made for its inputs once did, and every cell's values then stayed in the
        # worker until a full garbage collection (190 MB and 100 ms pauses in a chain of
        # 60 cells passing a 1 MB list). Collections are held off so that only a cycle can
        # keep the input alive.
        inputs, blobs = inputs_of({"x": array.array("d", [1.0, 2.0])})
        self.run_ok(
            "import gc, sys, weakref\n"
            "sys._nbmemo_test_gc = gc.get_threshold()\n"
            "gc.set_threshold(10 ** 9)\n"
            "sys._nbmemo_test_ref = weakref.ref(x)\n"
            "n = len(x)",
            inputs=inputs, blobs=blobs, writes=["n"])
        r = self.run_ok(
            "import gc, sys\n"
            "gc.set_threshold(*sys._nbmemo_test_gc)\n"
            "print(sys._nbmemo_test_ref() is None)\n"
            "del sys._nbmemo_test_ref, sys._nbmemo_test_gc")
        self.assertEqual(r.stdout, "True\n")

    def test_mutation_detection(self):
        inputs, blobs = inputs_of({"items": [1, 2]})
        r = self.run_ok("items.append(1)", inputs=inputs, blobs=blobs, candidates=["items"])
        self.assertEqual(r.mutated, ["items"])
        self.assertEqual(r.load(), {"items": [1, 2, 1]})
        r = self.run_ok("print(items)", inputs=inputs, blobs=blobs, candidates=["items"])
        self.assertEqual(r.mutated, [])
        self.assertEqual(r.values, [])
        self.assertEqual(r.stdout, "[1, 2]\n")

    def test_failed_cell_returns_no_values(self):
        inputs, blobs = inputs_of({"items": [1]})
        r = self.w.exec("items.append(2)\ny = 1\nraise ValueError('bad')", inputs=inputs,
                        blobs=blobs, candidates=["items"], writes=["y"])
        self.assertEqual(r.status, "error")
        self.assertEqual((r.values, r.mutated, r.deleted, r.unpicklable), ([], [], [], []))
        self.assertEqual(r.blobs, [])

    def test_function_globals_rebinding(self):
        a = self.run_ok("scale = 2\ndef f():\n    return scale\n", writes=["f"])
        self.assertEqual(list(a.groups()), [("f",)])
        inputs, blobs = a.value_inputs()
        more, more_blobs = inputs_of({"scale": 10})
        for group in more:
            group["blob"] += len(blobs)
        r = self.run_ok("result = f()", inputs=inputs + more, blobs=blobs + more_blobs,
                        writes=["result"])
        self.assertEqual(r.load(), {"result": 10})
        # The other order of the groups gives the same answer: explicit inputs win.
        more[0]["blob"] = 0
        inputs[0]["blob"] = 1
        r = self.run_ok("result = f()", inputs=more + inputs, blobs=more_blobs + blobs,
                        writes=["result"])
        self.assertEqual(r.load(), {"result": 10})
        # Without the explicit input, the value captured with the function is the fallback,
        # and it is not reported as written by the cell.
        inputs, blobs = a.value_inputs()
        r = self.run_ok("result = f()", inputs=inputs, blobs=blobs, writes=["result", "scale"])
        self.assertEqual(r.load(), {"result": 2})

    def test_function_sees_its_cell_namespace(self):
        a = self.run_ok("def g():\n    return helper() * 2\ndef helper():\n    return 1\n",
                        writes=["g", "helper"])
        inputs, blobs = a.value_inputs()
        r = self.run_ok("def helper():\n    return 21\nresult = g()", inputs=inputs, blobs=blobs,
                        writes=["helper", "result"])
        self.assertEqual(r.load()["result"], 42)

    def test_class_method_reads_cell_global(self):
        a = self.run_ok(
            "class Scaler:\n    def apply(self, x):\n        return x * factor\n", writes=["Scaler"]
        )
        inputs, blobs = a.value_inputs()
        more, more_blobs = inputs_of({"factor": 7})
        more[0]["blob"] = len(blobs)
        r = self.run_ok("out = Scaler().apply(6)", inputs=inputs + more, blobs=blobs + more_blobs,
                        writes=["out"])
        self.assertEqual(r.load(), {"out": 42})

    def test_unpicklable_becomes_resident(self):
        w = Worker()
        try:
            r = w.exec("gen = (i * 2 for i in range(5))\nfirst = next(gen)", writes=["gen", "first"])
            self.assertEqual(r.status, "ok", r.error)
            self.assertEqual([v["names"] for v in r.values], [["first"]])
            self.assertEqual(len(r.unpicklable), 1)
            u = r.unpicklable[0]
            self.assertEqual((u["name"], u["type"]), ("gen", "generator"))
            self.assertTrue(u["resident"].startswith("r"))
            self.assertIn("pickle", u["reason"])
            r2 = w.exec("second = next(gen)", inputs=[{"names": ["gen"], "resident": u["resident"]}],
                        writes=["second"], candidates=["gen"])
            self.assertEqual(r2.status, "ok", r2.error)
            self.assertEqual(r2.load(), {"second": 2})
            self.assertEqual(r2.mutated, ["gen"])
            # Dropped: a later request for it is a clear error.
            w.send({"type": "drop", "resident": [u["resident"]]})
            r3 = w.exec("next(gen)", inputs=[{"names": ["gen"], "resident": u["resident"]}])
            self.assertEqual(r3.status, "error")
            self.assertIn(u["resident"], r3.error["evalue"])
            self.assertIn("not held by this worker", r3.error["evalue"])
        finally:
            w.close()

    def test_unpicklable_lock_type(self):
        r = self.run_ok("import threading\nlock = threading.Lock()\nholder = [lock]",
                        writes=["lock", "holder", "threading"])
        by_name = {u["name"]: u for u in r.unpicklable}
        self.assertEqual(sorted(by_name), ["holder", "lock"])
        self.assertEqual(by_name["lock"]["resident"], by_name["holder"]["resident"])
        self.assertIn("lock", by_name["lock"]["type"])
        self.assertEqual([v["names"] for v in r.values], [["threading"]])

    def test_equal_values_equal_bytes_across_workers(self):
        code = (
            "d = {'zeta': 'a', 'alpha': 'b', 'mid': 'c'}\n"
            "s = {'apple', 'banana', 'cherry', 'durian', 'elderberry', 'fig', 'grape'}\n"
            "fs = frozenset(s)\n"
        )
        w2 = Worker()
        try:
            r1 = self.run_ok(code, writes=["d", "s", "fs"])
            r2 = w2.exec(code, writes=["d", "s", "fs"])
            self.assertEqual(r1.groups(), r2.groups())
            # A value that went through a blob pickles to the same bytes again.
            inputs, blobs = r1.value_inputs()
            r3 = w2.exec("d['new'] = 1\ndel d['new']", inputs=inputs, blobs=blobs,
                         candidates=["d", "s"])
            self.assertEqual(r3.mutated, [])
        finally:
            w2.close()

    def test_notebook_classes_equal_bytes_across_workers(self):
        code = (
            "import dataclasses\n"
            "@dataclasses.dataclass\n"
            "class Point:\n"
            "    x: int\n"
            "    y: int = 0\n"
            "    def norm(self):\n"
            "        return abs(self.x) + abs(self.y)\n"
            "origin = Point(0)\n"
            "def shift(p):\n"
            "    return Point(p.x + 1, p.y)\n"
        )
        writes = ["dataclasses", "Point", "origin", "shift"]
        w2 = Worker()
        try:
            r1 = self.run_ok(code, writes=writes)
            r2 = w2.exec(code, writes=writes)
            self.assertEqual(r1.groups(), r2.groups())
            # Instances made downstream, from the same input blobs, are equal bytes too.
            inputs, blobs = r1.value_inputs()
            use = "moved = shift(origin)\nn = moved.norm()"
            u1 = self.run_ok(use, inputs=inputs, blobs=blobs, writes=["moved", "n"])
            u2 = w2.exec(use, inputs=inputs, blobs=blobs, writes=["moved", "n"])
            self.assertEqual(u1.groups(), u2.groups())
            self.assertEqual(u1.load()["n"], 1)
        finally:
            w2.close()

    def test_closures_and_lambdas_use_cell_globals(self):
        a = self.run_ok(
            "def make(k):\n"
            "    def inner(v):\n"
            "        return v * k * scale\n"
            "    return inner\n"
            "triple = make(3)\n"
            "ops = {'add': lambda v: v + offset}\n",
            writes=["make", "triple", "ops"],
        )
        inputs, blobs = a.value_inputs()
        more, more_blobs = inputs_of({"scale": 2, "offset": 100})
        for group in more:
            group["blob"] += len(blobs)
        r = self.run_ok("out = (triple(1), ops['add'](1), make(1)(5))", inputs=inputs + more,
                        blobs=blobs + more_blobs, writes=["out"])
        self.assertEqual(r.load(), {"out": (6, 101, 10)})

    def test_unpicklable_group_stays_whole(self):
        inputs, blobs = inputs_of({"items": [1, 2, 3]})
        r = self.run_ok("gen = (x for x in items)", inputs=inputs, blobs=blobs, writes=["gen"])
        self.assertEqual(r.values, [])
        by_name = {u["name"]: u for u in r.unpicklable}
        self.assertEqual(sorted(by_name), ["gen", "items"])
        self.assertEqual(by_name["gen"]["type"], "generator")
        self.assertEqual(by_name["items"]["type"], "list")
        self.assertIn("gen", by_name["items"]["reason"])
        rid = by_name["gen"]["resident"]
        r2 = self.run_ok("items.append(4)\nprint(list(gen))",
                         inputs=[{"names": ["gen", "items"], "resident": rid}])
        self.assertEqual(r2.stdout, "[1, 2, 3, 4]\n")

    def test_output_after_the_cell_does_not_leak(self):
        r = self.run_ok(
            "import threading, time\n"
            "def late():\n"
            "    time.sleep(0.3)\n"
            "    print('late')\n"
            "threading.Thread(target=late).start()\n"
            "print('now')"
        )
        self.assertEqual(r.stdout, "now\n")
        import time
        time.sleep(0.5)
        r = self.run_ok("print('next')")
        self.assertEqual(r.stdout, "next\n")

    def test_odd_rich_values_do_not_break_the_frame(self):
        code = (
            "class Odd:\n"
            "    def __repr__(self): return 'odd \\ud800'\n"
            "    def _repr_json_(self): return {'x': float('nan')}\n"
            "    def _repr_html_(self): return 42\n"
            "Odd()"
        )
        r = self.run_ok(code)
        self.assertEqual(list(r.outputs[0]["data"]), ["text/plain"])
        r = self.run_ok("import sys\nsys.stdout.buffer.write(b'\\xff\\xfebin\\n')\nprint('\\udcff')")
        self.assertIn("bin", r.stdout)

    # --- outputs --------------------------------------------------------------------------

    def test_print_captured(self):
        r = self.run_ok("print('hello')\nprint('world')")
        self.assertEqual(r.stdout, "hello\nworld\n")
        self.assertEqual(r.outputs, [{"output_type": "stream", "name": "stdout", "text": "hello\nworld\n"}])

    def test_fd_level_capture(self):
        r = self.run_ok("import os\nprint('a')\nos.write(1, b'from fd\\n')\nprint('b')\n"
                        "_ = os.write(2, b'err fd\\n')")
        self.assertEqual(r.stdout, "a\nfrom fd\nb\n")
        self.assertEqual(r.stderr, "err fd\n")
        self.assertEqual(
            r.outputs,
            [{"output_type": "stream", "name": "stdout", "text": "a\nfrom fd\nb\n"},
             {"output_type": "stream", "name": "stderr", "text": "err fd\n"}],
        )

    def test_subprocess_and_c_output_captured(self):
        code = (
            "import subprocess, sys, ctypes\n"
            "subprocess.run([sys.executable, '-c', 'print(\"child\")'])\n"
            "try:\n"
            "    ctypes.CDLL(None).printf(b'from C\\n')\n"
            "except Exception:\n"
            "    print('from C')\n"
        )
        r = self.run_ok(code)
        self.assertEqual(r.stdout, "child\nfrom C\n")

    def test_stream_order(self):
        r = self.run_ok("import sys\nprint('1')\nprint('2', file=sys.stderr)\nprint('3')\n"
                        "display('mid')\nprint('4')")
        kinds = [(o["output_type"], o.get("name"), o.get("text") or o.get("data", {}).get("text/plain"))
                 for o in r.outputs]
        self.assertEqual(kinds, [
            ("stream", "stdout", "1\n"), ("stream", "stderr", "2\n"), ("stream", "stdout", "3\n"),
            ("display_data", None, "'mid'"), ("stream", "stdout", "4\n"),
        ])

    def test_execute_result(self):
        r = self.run_ok("x = 20\nx + 22")
        self.assertEqual(r.outputs, [{"output_type": "execute_result", "execution_count": None,
                                      "data": {"text/plain": "42"}, "metadata": {}}])
        r = self.run_ok("x = 20\nx + 22", display_suppressed=True)
        self.assertEqual(r.outputs, [])
        r = self.run_ok("print('p')")  # None is not displayed
        self.assertEqual([o["output_type"] for o in r.outputs], ["stream"])
        r = self.run_ok("1\n2")  # only the last expression
        self.assertEqual([o["data"]["text/plain"] for o in r.outputs], ["2"])

    def test_display_and_rich_reprs(self):
        code = (
            "class Rich:\n"
            "    def __repr__(self): return 'Rich()'\n"
            "    def _repr_html_(self): return '<b>rich</b>'\n"
            "    def _repr_markdown_(self): return '**rich**'\n"
            "    def _repr_png_(self): return b'\\x89PNG'\n"
            "    def _repr_json_(self): return {'a': 1}\n"
            "    def _repr_latex_(self): return None\n"
            "    def _repr_svg_(self): return b'<svg/>'\n"
            "class Bundle:\n"
            "    def _repr_mimebundle_(self, include=None, exclude=None):\n"
            "        return {'text/plain': 'B', 'application/vnd.custom+json': {'x': 1}}, {'m': 1}\n"
            "display(Rich(), 'text')\n"
            "Bundle()\n"
        )
        r = self.run_ok(code)
        self.assertEqual([o["output_type"] for o in r.outputs],
                         ["display_data", "display_data", "execute_result"])
        rich = r.outputs[0]["data"]
        self.assertEqual(rich["text/plain"], "Rich()")
        self.assertEqual(rich["text/html"], "<b>rich</b>")
        self.assertEqual(rich["text/markdown"], "**rich**")
        self.assertEqual(rich["image/png"], "iVBORw==")
        self.assertEqual(rich["application/json"], {"a": 1})
        self.assertNotIn("text/latex", rich)
        self.assertEqual(rich["image/svg+xml"], "<svg/>")
        self.assertEqual(r.outputs[1]["data"], {"text/plain": "'text'"})
        self.assertEqual(r.outputs[2]["data"],
                         {"text/plain": "B", "application/vnd.custom+json": {"x": 1}})
        self.assertEqual(r.outputs[2]["metadata"], {"m": 1})

    def test_display_ids_and_clear_output(self):
        code = (
            "h = display('one', display_id='d1')\n"
            "display('two')\n"
            "h.update('ONE')\n"
        )
        r = self.run_ok(code)
        self.assertEqual([o["data"]["text/plain"] for o in r.outputs], ["'ONE'", "'two'"])

    def test_repr_error_does_not_fail_cell(self):
        code = (
            "class Bad:\n"
            "    def __repr__(self): return 'Bad'\n"
            "    def _repr_html_(self): raise RuntimeError('boom')\n"
            "Bad()"
        )
        r = self.run_ok(code)
        self.assertEqual(r.outputs[-1]["data"], {"text/plain": "Bad"})
        self.assertIn("RuntimeError: boom", r.stderr)

    # --- errors ---------------------------------------------------------------------------

    def test_exception_traceback(self):
        code = "x = 1\ndef f():\n    raise ValueError('bad value')\n\nf()\n"
        r = self.w.exec(code, cell=3)
        self.assertEqual(r.status, "error")
        e = r.error
        # `line`: the innermost frame of this cell.
        self.assertEqual((e["ename"], e["evalue"], e["line"]), ("ValueError", "bad value", 3))
        tb = e["traceback"]
        self.assertEqual(tb[0], "Traceback (most recent call last):")
        self.assertEqual(tb[1], '  File "<cell 3>", line 5, in <module>')
        self.assertEqual(tb[2].strip(), "f()")
        self.assertIn('  File "<cell 3>", line 3, in f', tb)
        self.assertIn("    raise ValueError('bad value')", tb)
        self.assertEqual(tb[-1], "ValueError: bad value")
        text = "\n".join(tb)
        self.assertNotIn("runner", text)
        self.assertNotIn("nbmemo", text)
        self.assertEqual(r.outputs[-1], {"output_type": "error", "ename": "ValueError",
                                         "evalue": "bad value", "traceback": tb})

    def test_exception_after_output(self):
        r = self.w.exec("print('before')\n1/0")
        self.assertEqual(r.status, "error")
        self.assertEqual([o["output_type"] for o in r.outputs], ["stream", "error"])
        self.assertEqual(r.error["line"], 2)
        self.assertEqual(r.stdout, "before\n")

    def test_traceback_through_another_cells_function(self):
        src = "def boom(v):\n    raise ValueError(v)\n"
        a = self.run_ok(src, cell=2, writes=["boom"])
        inputs, blobs = a.value_inputs()
        r = self.w.exec("x = 1\nboom('deep')", cell=5, inputs=inputs, blobs=blobs,
                        sources={"<cell 2>": src})
        tb = r.error["traceback"]
        self.assertEqual(r.error["line"], 2)
        self.assertEqual(tb[1], '  File "<cell 5>", line 2, in <module>')
        self.assertIn('  File "<cell 2>", line 2, in boom', tb)
        self.assertIn("    raise ValueError(v)", tb)
        # Without the source, no line text (never a stale one).
        r = self.w.exec("boom('deep')", cell=5, inputs=inputs, blobs=blobs)
        tb = r.error["traceback"]
        i = tb.index('  File "<cell 2>", line 2, in boom')
        self.assertEqual(tb[i + 1], "ValueError: deep")

    def test_syntax_error(self):
        r = self.w.exec("x = 1\ny = (\n", cell=4)
        self.assertEqual(r.status, "error")
        self.assertEqual(r.error["ename"], "SyntaxError")
        self.assertEqual(r.error["line"], 2)
        self.assertIn('File "<cell 4>", line 2', "\n".join(r.error["traceback"]))
        self.assertEqual(r.outputs[-1]["output_type"], "error")

    def test_system_exit_and_keyboard_interrupt(self):
        r = self.w.exec("import sys\nsys.exit(3)")
        self.assertEqual(r.status, "error")
        self.assertEqual((r.error["ename"], r.error["evalue"], r.error["line"]), ("SystemExit", "3", 2))
        r = self.w.exec("raise KeyboardInterrupt")
        self.assertEqual((r.status, r.error["ename"]), ("error", "KeyboardInterrupt"))
        r = self.w.exec("exit()")
        self.assertEqual((r.status, r.error["ename"]), ("error", "SystemExit"))
        self.assertEqual(self.run_ok("print('alive')").stdout, "alive\n")

    def test_bad_input_blob_is_an_error(self):
        r = self.w.exec("y = x", inputs=[{"names": ["x"], "blob": 0}], blobs=[b"not a pickle"])
        self.assertEqual(r.status, "error")
        self.assertIn("x", r.error["traceback"][0])

    # --- robustness -----------------------------------------------------------------------

    def test_cell_replacing_sys_stdout(self):
        r = self.run_ok("import sys, io\nsys.stdout = io.StringIO()\nprint('hidden')")
        self.assertEqual(r.stdout, "")
        r = self.run_ok("import sys\nsys.stdout.close()")
        r = self.run_ok("import sys\nsys.__stdout__.close()\nsys.stderr = None")
        r = self.run_ok("print('visible')\nimport os\nos.write(1, b'fd\\n')")
        self.assertEqual(r.stdout, "visible\nfd\n")

    def test_cell_closing_fd_1(self):
        r = self.run_ok("import os\nos.close(1)\nprint('still printed')")
        self.assertEqual(r.stdout, "still printed\n")
        r = self.run_ok("import os\nos.write(1, b'next\\n')")
        self.assertEqual(r.stdout, "next\n")

    def test_cell_changing_interpreter_state(self):
        r = self.run_ok(
            "import sys, builtins\n"
            "sys.path.insert(0, '/nonexistent')\n"
            "builtins.print = None\n"
            "builtins.len = lambda x: 0\n"
            "sys.displayhook = None\n"
            "sys.setrecursionlimit(50000)\n"
        )
        r = self.run_ok("import sys\nprint(len([1, 2]), '/nonexistent' in sys.path)")
        self.assertEqual(r.stdout, "2 False\n")

    def test_cwd(self):
        tmp = os.path.realpath(tempfile.mkdtemp())
        try:
            with open(os.path.join(tmp, "data.txt"), "w") as f:
                f.write("content")
            r = self.run_ok("import os\nprint(os.getcwd())\nprint(open('data.txt').read())", cwd=tmp)
            self.assertEqual(r.stdout, "%s\ncontent\n" % tmp)
            r = self.run_ok("import os\nos.chdir('/')")
            r = self.run_ok("import os\nprint(os.getcwd())", cwd=tmp)
            self.assertEqual(r.stdout, tmp + "\n")
        finally:
            shutil.rmtree(tmp)

    def test_source_in_linecache_and_inspect(self):
        r = self.run_ok("import inspect\ndef f():\n    return 1\nprint(inspect.getsource(f), end='')")
        self.assertEqual(r.stdout, "def f():\n    return 1\n")

    def test_top_level_await(self):
        r = self.run_ok("import asyncio\nawait asyncio.sleep(0)\nx = 5\nawait asyncio.sleep(0, result=x)")
        self.assertEqual(r.outputs[-1]["data"], {"text/plain": "5"})

    def test_warnings_go_to_stderr(self):
        r = self.run_ok("import warnings\nwarnings.warn('careful')")
        self.assertIn("UserWarning: careful", r.stderr)

    def test_fresh_main_module(self):
        r = self.run_ok("import __main__\nx = 3\nprint(__main__.x)")
        self.assertEqual(r.stdout, "3\n")

    def test_ipython_syntax_without_ipython(self):
        if _has("IPython"):
            self.skipTest("IPython is installed")
        r = self.w.exec("x = 1\n%time y = 2\n")
        self.assertEqual(r.status, "error")
        self.assertEqual(r.error["ename"], "UsageError")
        self.assertEqual(r.error["line"], 2)
        self.assertIn("IPython", r.error["evalue"])


@unittest.skipIf(cloudpickle is None, "cloudpickle is not installed")
class OptionalPackagesTest(unittest.TestCase):
    """Paths that need numpy / matplotlib / IPython in the worker's environment."""

    @classmethod
    def setUpClass(cls):
        cls.w = Worker()

    @classmethod
    def tearDownClass(cls):
        cls.w.close()

    @unittest.skipUnless(_has("pandas"), "pandas is not installed")
    def test_a_pandas_copy_still_warns_when_written_in_a_later_cell(self):
        r1 = self._ok(self.w.exec(
            "import pandas as pd\ndf = pd.DataFrame({'a': [1, 5, 9]})\nsub = df[df.a > 2]",
            writes=["pd", "df", "sub"]))
        inputs, blobs = r1.value_inputs()
        w2 = Worker()
        try:
            r2 = self._ok(w2.exec("sub['b'] = 1\nprint(len(sub))", inputs=inputs, blobs=blobs,
                                  writes=[], candidates=["sub"], cell=2))
        finally:
            w2.close()
        self.assertEqual(r2.stdout, "2\n")
        self.assertIn("SettingWithCopyWarning", r2.stderr)
        # A frame that is not a copy carries no mark and gives no warning.
        r3 = self._ok(self.w.exec("df['c'] = 1", inputs=inputs, blobs=blobs, writes=[],
                                  candidates=["df"], cell=3))
        self.assertEqual(r3.stderr, "")

    @unittest.skipUnless(_has("pandas"), "pandas is not installed")
    def test_a_copy_of_a_frame_does_not_share_with_it(self):
        # `sub._is_copy` and `df._flags` hold the same weakref to `df`: no aliasing.
        r = self._ok(self.w.exec(
            "import pandas as pd\ndf = pd.DataFrame({'a': [1, 5, 9]})\nsub = df[df.a > 2]",
            writes=["pd", "df", "sub"]))
        self.assertEqual(sorted(r.groups()), [("df",), ("pd",), ("sub",)])

    @unittest.skipUnless(_has("pandas"), "pandas is not installed")
    def test_unchecked_candidates_are_skipped_only_for_pandas_and_numpy_values(self):
        # A worker of its own: the cells patch pandas.
        w = Worker()
        self.addCleanup(w.close)
        r1 = self._ok(w.exec(
            "import numpy as np\nimport pandas as pd\nimport json\n"
            "df = pd.DataFrame({'a': [1, 2]})\nitems = [1]",
            writes=["np", "pd", "json", "df", "items"]))
        inputs, blobs = r1.value_inputs()
        # The cell writes into `df` behind a read-only method's back (which pandas never
        # does): told it is used softly, the worker does not look (that is the point)...
        sneaky = "pd.DataFrame.sum = lambda self: self.__setitem__('b', 0)\ndf.sum()"
        r2 = self._ok(w.exec(sneaky, inputs=inputs, blobs=blobs, writes=[],
                                  candidates=["df"], unchecked={"df": []}, cell=2))
        self.assertEqual(r2.mutated, [])
        # ...but it does when the value is no pandas or numpy object, or when a root is not a
        # numpy or pandas module.
        r3 = self._ok(w.exec("json.dumps(items)\nitems.append(2)", inputs=inputs,
                                  blobs=blobs, writes=[], candidates=["items"],
                                  unchecked={"items": ["json"]}, cell=3))
        self.assertEqual(r3.mutated, ["items"])
        r4 = self._ok(w.exec(sneaky, inputs=inputs, blobs=blobs, writes=[],
                                  candidates=["df"], unchecked={"df": ["json"]}, cell=4))
        self.assertEqual(r4.mutated, ["df"])
        r5 = self._ok(w.exec(sneaky, inputs=inputs, blobs=blobs, writes=[],
                                  candidates=["df"], cell=5))
        self.assertEqual(r5.mutated, ["df"])

    @unittest.skipUnless(_has("numpy"), "numpy is not installed")
    def test_preload_imports_quietly_before_the_next_request(self):
        w = Worker()
        try:
            w.send({"type": "preload", "packages": ["numpy", "no_such_package_here"]})
            r = w.exec("import sys\nprint('numpy' in sys.modules)", writes=[])
        finally:
            w.close()
        self.assertEqual((r.status, r.stdout), ("ok", "True\n"), r.error)

    @unittest.skipUnless(_has("numpy"), "numpy is not installed")
    def test_cython_functions_are_values(self):
        # Their type's `__module__` is a descriptor, not a string.
        r = self.w.exec("import numpy as np\nr = np.random.rand\nprint(callable(r))",
                        writes=["np", "r"])
        self.assertEqual((r.status, r.stdout), ("ok", "True\n"), r.error)

    @unittest.skipUnless(_has("numpy"), "numpy is not installed")
    def test_numpy_views_share(self):
        r = self.w.exec("import numpy as np\na = np.arange(10)\nv = a[2:5]\nb = np.ones(3)",
                        writes=["np", "a", "v", "b"])
        self.assertEqual(r.status, "ok", r.error)
        self.assertEqual(sorted(r.groups()), [("a", "v"), ("b",), ("np",)])

    def _ok(self, r):
        self.assertEqual(r.status, "ok", (r.error, r.stderr))
        return r

    def _group_of(self, r, name):
        for names, blob in r.groups().items():
            if name in names:
                return names, blob
        self.fail("%s not returned: %s" % (name, r.values))

    @unittest.skipUnless(_has("numpy"), "numpy is not installed")
    def test_numpy_view_of_input_stays_a_view_on_another_worker(self):
        r1 = self._ok(self.w.exec("import numpy as np\nx = np.arange(12).reshape(3, 4)",
                                  writes=["np", "x"]))
        inputs, blobs = r1.value_inputs()
        # The view is bound in another cell: its group takes its base (an input) along.
        r2 = self._ok(self.w.exec("sub = x[:2, :2]", inputs=inputs, blobs=blobs, writes=["sub"],
                                  cell=2))
        names, blob = self._group_of(r2, "sub")
        self.assertEqual(names, ("sub", "x"))
        loaded = pickle.loads(blob)  # plain pickle: nothing of the runner needed to load
        import numpy as np
        self.assertTrue(np.shares_memory(loaded["sub"], loaded["x"]))
        inputs, blobs = r2.value_inputs()
        w2 = Worker()
        try:
            r3 = self._ok(w2.exec("print(np.shares_memory(sub, x))\nsub[0, 0] = 99\nprint(x[0])",
                                  inputs=inputs + [{"names": ["np"], "blob": len(blobs)}],
                                  blobs=blobs + [r1.groups()[("np",)]],
                                  candidates=["sub"], cell=3))
        finally:
            w2.close()
        self.assertEqual(r3.stdout, "True\n[99  1  2  3]\n")
        self.assertEqual(r3.mutated, ["sub"])
        names, blob = self._group_of(r3, "sub")
        self.assertEqual(names, ("sub", "x"))
        loaded = pickle.loads(blob)
        self.assertEqual(loaded["x"][0, 0], 99)
        self.assertTrue(np.shares_memory(loaded["sub"], loaded["x"]))

    @unittest.skipUnless(_has("numpy"), "numpy is not installed")
    def test_numpy_views_of_views_and_non_contiguous(self):
        code = (
            "import numpy as np\n"
            "x = np.arange(12).reshape(3, 4)\n"
            "sub = x[:2, :2]\n"
            "vv = sub[::-1, 1:]\n"
            "nc = x[::2, 1:]\n"
            "t = x.T\n"
            "flat = x.ravel()\n"
            "ro = x[1:]\n"
            "ro.flags.writeable = False\n"
            "bc = np.broadcast_to(x[0], (2, 4))\n"
        )
        names = ["bc", "flat", "nc", "ro", "sub", "t", "vv", "x"]
        r = self._ok(self.w.exec(code, writes=["np"] + names))
        group, blob = self._group_of(r, "x")
        self.assertEqual(list(group), names)
        import numpy as np
        ref = {}
        exec(code, ref)
        for loaded in (pickle.loads(blob), pickle.loads(blob)):
            for n in names:
                v = loaded[n]
                self.assertIs(type(v), np.ndarray, n)
                self.assertTrue(np.array_equal(v, ref[n]), n)
                self.assertTrue(np.shares_memory(v, loaded["x"]), n)
                self.assertEqual(v.strides if n != "x" else None,
                                 ref[n].strides if n != "x" else None, n)
                self.assertEqual(v.flags.writeable, ref[n].flags.writeable, n)
            loaded["vv"][0, 0] = -1  # vv[0, 0] is sub[1, 1] is x[1, 1]
            self.assertEqual(loaded["x"][1, 1], -1)
            self.assertEqual(loaded["t"][1, 1], -1)
            self.assertEqual(loaded["flat"][5], -1)
            self.assertEqual(loaded["ro"][0, 1], -1)
            loaded["nc"][1, 0] = -2  # x[2, 1]
            self.assertEqual(loaded["x"][2, 1], -2)
            self.assertEqual(loaded["bc"][1, 2], loaded["x"][0, 2])

    @unittest.skipUnless(_has("numpy"), "numpy is not installed")
    def test_numpy_view_without_its_base_is_a_copy(self):
        r = self._ok(self.w.exec("import numpy as np\nsub = np.arange(12).reshape(3, 4)[:2, 1:]",
                                 writes=["np", "sub"]))
        _, blob = self._group_of(r, "sub")
        import numpy as np
        # What cloudpickle makes of the view alone: numpy's reduce, a copy of its elements.
        self.assertEqual(blob, cloudpickle.dumps({"sub": np.arange(12).reshape(3, 4)[:2, 1:]},
                                                 protocol=5))
        self.assertEqual(pickle.loads(blob)["sub"].tolist(), [[1, 2, 3], [5, 6, 7]])

    @unittest.skipUnless(_has("numpy"), "numpy is not installed")
    def test_numpy_view_groups_equal_bytes_across_workers(self):
        code = ("import numpy as np\nx = np.arange(24.0).reshape(4, 6)\nt = x.T\n"
                "sub = x[1:3, ::2]\nd = {'rev': x[::-1], 'whole': x}\n")
        writes = ["np", "x", "t", "sub", "d"]
        w2 = Worker()
        try:
            r1 = self._ok(self.w.exec(code, writes=writes))
            r2 = self._ok(w2.exec("import gc\njunk = [bytearray(1000) for _ in range(50)]\n" + code,
                                  writes=writes))
            self.assertEqual(r1.groups(), r2.groups())
            # Loaded and pickled again (another worker, other addresses): the same bytes.
            inputs, blobs = r1.value_inputs()
            r3 = self._ok(w2.exec("pass", inputs=inputs, blobs=blobs, candidates=["x", "d"],
                                  writes=["t", "sub"]))
            self.assertEqual(r3.mutated, [])
            self.assertEqual(r3.groups()[("d", "sub", "t", "x")], r1.groups()[("d", "sub", "t", "x")])
        finally:
            w2.close()

    @unittest.skipUnless(_has("pandas"), "pandas is not installed")
    def test_pandas_frame_and_column_round_trip(self):
        r = self._ok(self.w.exec(
            "import pandas as pd\n"
            "df = pd.DataFrame({'a': [1.0, 2.0, 3.0], 'b': [4.0, 5.0, 6.0], 's': list('xyz')})\n"
            "col = df['a']\nvals = df[['a', 'b']].values\n",
            writes=["pd", "df", "col", "vals"]))
        loaded = r.load()
        import pandas as pd
        pd.testing.assert_frame_equal(
            loaded["df"], pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [4.0, 5.0, 6.0], "s": list("xyz")}))
        pd.testing.assert_series_equal(loaded["col"], pd.Series([1.0, 2.0, 3.0], name="a"))
        self.assertEqual(loaded["vals"].tolist(), [[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]])
        inputs, blobs = r.value_inputs()
        r2 = self._ok(self.w.exec("print(df.loc[1, 'a'], col.sum(), df.shape)", inputs=inputs,
                                  blobs=blobs, candidates=["df", "col"], cell=2))
        self.assertEqual(r2.stdout, "2.0 6.0 (3, 3)\n")
        self.assertEqual(r2.mutated, [])

    @unittest.skipUnless(_has("matplotlib"), "matplotlib is not installed")
    def test_matplotlib_figures(self):
        code = (
            "import matplotlib.pyplot as plt\n"
            "print('before')\n"
            "plt.plot([1, 2, 3])\n"
            "plt.show()\n"
            "print('after')\n"
            "fig = plt.figure()\n"
            "ax = fig.add_subplot(1, 1, 1)\n"
        )
        r = self.w.exec(code)
        self.assertEqual(r.status, "ok", r.error)
        kinds = [o["output_type"] for o in r.outputs]
        self.assertEqual(kinds, ["stream", "display_data", "stream", "display_data"])
        for o in (r.outputs[1], r.outputs[3]):
            self.assertTrue(o["data"]["image/png"].startswith("iVBORw0KGgo"))
            self.assertRegex(o["data"]["text/plain"], r"^<Figure size \d+x\d+ with 1 Axes>$")
        self.assertEqual(r.stderr, "")
        r = self.w.exec("import matplotlib.pyplot as plt\nprint(plt.get_fignums())")
        self.assertEqual(r.stdout, "[]\n")

    @unittest.skipUnless(_has("IPython"), "IPython is not installed")
    def test_ipython_display_and_pretty(self):
        fresh = Worker()  # the first use of IPython's pretty printer imports IPython
        try:
            r = fresh.exec("[1, 2]")
            self.assertEqual(r.outputs, [{"output_type": "execute_result", "execution_count": None,
                                          "data": {"text/plain": "[1, 2]"}, "metadata": {}}])
            self.assertEqual(r.stderr, "")
        finally:
            fresh.close()
        code = (
            "from IPython.display import display, HTML, clear_output\n"
            "print('gone')\n"
            "clear_output()\n"
            "display(HTML('<i>x</i>'))\n"
            "list(range(40))\n"
        )
        r = self.w.exec(code)
        self.assertEqual(r.status, "ok", r.error)
        self.assertEqual([o["output_type"] for o in r.outputs], ["display_data", "execute_result"])
        self.assertEqual(r.outputs[0]["data"]["text/html"], "<i>x</i>")
        self.assertIn("\n", r.outputs[1]["data"]["text/plain"])  # IPython's pretty wraps

    @unittest.skipUnless(_has("IPython"), "IPython is not installed")
    def test_ipython_magics(self):
        r = self.w.exec("x = 1\n%time y = x + 1\n!echo shell\n", writes=["x", "y"])
        self.assertEqual(r.status, "ok", r.error)
        self.assertEqual(r.load(), {"x": 1, "y": 2})
        self.assertIn("Wall time", r.stdout)
        self.assertIn("shell", r.stdout)


def probe_inputs(*results, only=None):
    """The state probes returned by `results` (later ones win) as inputs of another exec."""
    chosen = {}
    for r in results:
        for v in r.h["values"]:
            name = v["names"][0]
            if name.startswith("@") and (only is None or name in only):
                chosen[name] = r.blobs[v["blob"]]
    inputs, blobs = [], []
    for name in sorted(chosen):
        inputs.append({"names": [name], "blob": len(blobs)})
        blobs.append(chosen[name])
    return inputs, blobs


def with_inputs(*pairs):
    """Concatenate (inputs, blobs) pairs into one."""
    inputs, blobs = [], []
    for ins, bs in pairs:
        for group in ins:
            inputs.append(dict(group, blob=group["blob"] + len(blobs)))
        blobs.extend(bs)
    return inputs, blobs


PROBE_NAMES = ["@numpy.random", "@random", "@matplotlib.rcParams", "@pandas.options",
               "@warnings.filters", "@numpy.printoptions", "@cwd", "@sys.path", "@os.environ"]


@unittest.skipIf(cloudpickle is None, "cloudpickle is not installed")
class StateProbesTest(unittest.TestCase):
    """Library state carried between cells on different workers (PROTOCOL.md, State probes)."""

    @classmethod
    def setUpClass(cls):
        cls.w1, cls.w2, cls.w3 = Worker(), Worker(), Worker()
        cls.tmp = os.path.realpath(tempfile.mkdtemp())

    @classmethod
    def tearDownClass(cls):
        for w in (cls.w1, cls.w2, cls.w3):
            w.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def run_on(self, w, code, inputs=(), blobs=(), **kw):
        kw.setdefault("cwd", self.tmp)
        r = w.exec(code, inputs=inputs, blobs=blobs, **kw)
        self.assertEqual(r.status, "ok", (r.error, r.stderr, w.stderr_text()))
        return r

    def probe_names(self, r):
        return sorted(v["names"][0] for v in r.values if v["names"][0].startswith("@"))

    def test_hello_lists_probes(self):
        self.assertEqual(self.w1.hello["probes"], PROBE_NAMES)

    def test_plain_cells_report_no_probe(self):
        r = self.run_on(self.w1, "x = 1\nprint(x)", writes=["x"])
        self.assertEqual(list(r.groups()), [("x",)])

    def test_random_carried_across_workers(self):
        import random

        a = self.run_on(self.w1, "import random\nrandom.seed(7)")
        self.assertEqual(self.probe_names(a), ["@random"])
        b = self.run_on(self.w2, "import random\nx = random.random()", *probe_inputs(a),
                        writes=["x"])
        c = self.run_on(self.w3, "import random\ny = random.random()", *probe_inputs(b),
                        writes=["y"])
        gen = random.Random(7)
        self.assertEqual(b.load()["x"], gen.random())
        self.assertEqual(c.load()["y"], gen.random())
        self.assertEqual(self.probe_names(c), ["@random"])
        # The probe's name is never bound in the cell's namespace.
        r = self.run_on(self.w3, "print(sorted(k for k in globals() if not k.startswith('__')))",
                        *probe_inputs(a))
        self.assertEqual(r.stdout, "[]\n")

    def test_random_not_given_starts_from_the_default(self):
        import random

        first = random.Random(11).random()
        self.run_on(self.w1, "import random\nrandom.seed(11)")
        r = self.run_on(self.w1, "import random\nx = random.random()", writes=["x"])
        self.assertNotEqual(r.load()["x"], first)
        # A failed cell returns nothing, and its state does not leak either.
        r = self.w1.exec("import random\nrandom.seed(11)\nraise ValueError('no')", cwd=self.tmp)
        self.assertEqual((r.status, r.values), ("error", []))
        r = self.run_on(self.w1, "import random\nx = random.random()", writes=["x"])
        self.assertNotEqual(r.load()["x"], first)

    def test_probe_in_writes_and_candidates(self):
        a = self.run_on(self.w1, "import random\nrandom.seed(3)")
        # Named in `writes`: returned even when unchanged (as a name bound after the cell).
        r = self.run_on(self.w2, "pass", *probe_inputs(a), writes=["@random", "@cwd"])
        self.assertEqual(self.probe_names(r), ["@cwd", "@random"])
        self.assertEqual(r.groups()[("@random",)], a.groups()[("@random",)])
        self.assertEqual(r.mutated, [])
        # A candidate that changed is mutated, and returned.
        r = self.run_on(self.w2, "import random\nrandom.random()", *probe_inputs(a),
                        candidates=["@random"])
        self.assertEqual(r.mutated, ["@random"])
        self.assertEqual(self.probe_names(r), ["@random"])

    def test_barrier_returns_the_probes_it_changed(self):
        r = self.run_on(self.w1, "import random as rnd\nrnd.seed(2)\nv = 1", writes=None)
        self.assertEqual(sorted(r.groups()), [("@random",), ("rnd",), ("v",)])

    def test_bad_probe_input_is_an_input_error(self):
        inputs, blobs = inputs_of({"@random": ("not", "a", "state")})
        r = self.w2.exec("x = 1", inputs=inputs, blobs=blobs, writes=["x"], cwd=self.tmp)
        self.assertEqual((r.status, r.values), ("error", []))
        self.assertTrue(r.error["traceback"][0].startswith("nbmemo: could not load the inputs @random"))
        self.run_on(self.w2, "import random\nrandom.random()")

    def test_warnings_filters_carried(self):
        a = self.run_on(self.w1, "import warnings\nwarnings.simplefilter('ignore')")
        self.assertEqual(self.probe_names(a), ["@warnings.filters"])
        code = "import warnings\nwarnings.warn('careful')"
        self.assertEqual(self.run_on(self.w2, code, *probe_inputs(a)).stderr, "")
        self.assertIn("UserWarning: careful", self.run_on(self.w2, code).stderr)
        self.assertIn("UserWarning: careful", self.run_on(self.w1, code).stderr)
        # Message patterns, modules and categories are rebuilt.
        b = self.run_on(self.w1, "import warnings\n"
                                 "warnings.filterwarnings('error', message='boom', category=RuntimeWarning)")
        inputs, blobs = probe_inputs(b)
        r = self.w3.exec("import warnings\nwarnings.warn('BOOM now', RuntimeWarning)",
                         inputs=inputs, blobs=blobs, cwd=self.tmp)
        self.assertEqual((r.status, r.error["ename"]), ("error", "RuntimeWarning"))
        r = self.run_on(self.w3, "import warnings\nwarnings.warn('other', RuntimeWarning)",
                        *probe_inputs(b))
        self.assertIn("RuntimeWarning: other", r.stderr)

    def test_cwd_carried(self):
        sub = os.path.join(self.tmp, "sub")
        os.makedirs(sub, exist_ok=True)
        with open(os.path.join(sub, "data.txt"), "w") as f:
            f.write("inside sub")
        a = self.run_on(self.w1, "import os\nos.chdir('sub')")
        self.assertEqual(a.load(), {"@cwd": "sub"})
        b = self.run_on(self.w2, "print(open('data.txt').read())", *probe_inputs(a))
        self.assertEqual(b.stdout, "inside sub\n")
        self.assertEqual(b.values, [])
        r = self.run_on(self.w2, "import os\nprint(os.getcwd())")
        self.assertEqual(r.stdout, self.tmp + "\n")
        r = self.run_on(self.w1, "import os\nprint(os.getcwd())")
        self.assertEqual(r.stdout, self.tmp + "\n")

    def test_cwd_that_vanished(self):
        gone = os.path.join(self.tmp, "gone")
        os.makedirs(gone)
        a = self.run_on(self.w1, "import os\nos.chdir('gone')")
        os.rmdir(gone)
        r = self.run_on(self.w2, "import os\nprint(os.getcwd())", *probe_inputs(a))
        self.assertEqual(r.stdout, self.tmp + "\n")
        self.assertEqual(r.values, [])

    def test_sys_path_carried_and_removed(self):
        extra = os.path.join(self.tmp, "extra_pkgs")
        os.makedirs(extra, exist_ok=True)
        with open(os.path.join(extra, "nbmemo_probe_mod.py"), "w") as f:
            f.write("VALUE = 42\n")
        a = self.run_on(self.w1, "import sys\nsys.path.append(%r)" % extra)
        self.assertEqual(a.load(), {"@sys.path": ("edit", (), (extra,))})
        r = self.run_on(self.w2, "import nbmemo_probe_mod\nprint(nbmemo_probe_mod.VALUE)",
                        *probe_inputs(a))
        self.assertEqual(r.stdout, "42\n")
        r = self.run_on(self.w2, "import sys\nprint(%r in sys.path)" % extra)
        self.assertEqual(r.stdout, "False\n")
        r = self.run_on(self.w1, "import sys\nprint(%r in sys.path)" % extra)
        self.assertEqual(r.stdout, "False\n")

    def test_sys_path_in_place_before_values_are_loaded(self):
        """A value of a class from a folder a cell added to sys.path (relative to the notebook)
        loads on another worker: the probes are put in place before values are unpickled."""
        lib = os.path.join(self.tmp, "libsrc")
        os.makedirs(lib, exist_ok=True)
        with open(os.path.join(lib, "nbmemo_thing.py"), "w") as f:
            f.write("class Thing:\n    def __init__(self, n):\n        self.n = n\n")
        a = self.run_on(self.w1, "import sys\nsys.path.append('libsrc')")
        b = self.run_on(self.w1, "from nbmemo_thing import Thing\nt = Thing(3)", *probe_inputs(a),
                        writes=["Thing", "t"])
        inputs, blobs = with_inputs(probe_inputs(a), b.value_inputs())
        r = self.run_on(self.w3, "print(t.n, type(t).__module__)", inputs, blobs)
        self.assertEqual(r.stdout, "3 nbmemo_thing\n")

    def test_environ_carried_and_removed(self):
        a = self.run_on(self.w1, "import os\nos.environ['NBMEMO_PROBE_X'] = '1'")
        self.assertEqual(a.load(), {"@os.environ": ((("NBMEMO_PROBE_X", "1"),), ())})
        code = ("import os, subprocess, sys\n"
                "print(os.environ.get('NBMEMO_PROBE_X'))\n"
                "print(subprocess.check_output([sys.executable, '-c', "
                "'import os; print(os.environ.get(\"NBMEMO_PROBE_X\"))']).decode().strip())")
        self.assertEqual(self.run_on(self.w2, code, *probe_inputs(a)).stdout, "1\n1\n")
        self.assertEqual(self.run_on(self.w2, code).stdout, "None\nNone\n")
        self.assertEqual(self.run_on(self.w1, code).stdout, "None\nNone\n")
        # A variable the cell removes is removed on the next worker too.
        b = self.run_on(self.w1, "import os\ndel os.environ['NBMEMO_WORKER']")
        self.assertEqual(b.load(), {"@os.environ": ((), ("NBMEMO_WORKER",))})
        r = self.run_on(self.w3, "import os\nprint('NBMEMO_WORKER' in os.environ)", *probe_inputs(b))
        self.assertEqual(r.stdout, "False\n")
        r = self.run_on(self.w3, "import os\nprint('NBMEMO_WORKER' in os.environ)")
        self.assertEqual(r.stdout, "True\n")

    def test_equal_states_equal_bytes_across_workers(self):
        code = ("import os, sys, random, warnings\n"
                "random.seed(5)\n"
                "warnings.filterwarnings('ignore', message='noisy.*', module='x\\\\.y')\n"
                "os.environ['NBMEMO_EQ'] = 'yes'\n"
                "sys.path.insert(0, 'libdir')\n"
                "os.makedirs('eqdir', exist_ok=True)\n"
                "os.chdir('eqdir')\n")
        if _has("numpy"):
            code += "import numpy as np\nnp.random.seed(5)\nnp.set_printoptions(precision=3)\n"
        if _has("pandas"):
            code += "import pandas as pd\npd.set_option('display.max_rows', 7)\n"
        if _has("matplotlib"):
            code += "import matplotlib.pyplot as plt\nplt.style.use('ggplot')\n"
        fresh = Worker()
        try:
            runs = [self.run_on(w, code) for w in (fresh, self.w1)]
        finally:
            fresh.close()
        a, b = (r.groups() for r in runs)
        self.assertEqual(sorted(a), sorted(b))
        self.assertGreaterEqual(len(a), 5)
        for names in a:
            self.assertEqual(a[names], b[names], names)
        # Put in place on a third worker, the states capture to the same bytes again (a probe
        # whose module is not imported is not there: the cell imports them).
        imports = "".join("import %s\n" % m for m in ("numpy.random", "pandas", "matplotlib")
                          if _has(m))
        r = self.run_on(self.w3, imports, *probe_inputs(runs[0]), writes=[n[0] for n in a])
        self.assertEqual(sorted(r.groups()), sorted(a))
        for names in a:
            self.assertEqual(r.groups()[names], a[names], names)

    def test_imports_are_not_state_changes(self):
        """Libraries that set variables or filters while imported do not make the importing
        cell a writer of @os.environ / @warnings.filters (it would depend on the worker)."""
        mods = [m for m in ("numpy", "pandas", "matplotlib.pyplot", "scipy.stats", "sklearn.ensemble",
                            "seaborn") if _has(m)]
        w = Worker()
        try:
            for m in mods:
                r = self.run_on(w, "import %s" % m)
                self.assertEqual(r.values, [], m)
            r = self.run_on(w, "import warnings\nwarnings.warn('still shown')")
            self.assertIn("still shown", r.stderr)
        finally:
            w.close()

    def test_notebook_module_import_changes_are_the_cells(self):
        """A module of the notebook's own (not installed) that changes state when imported:
        as if the importing cell ran its code."""
        with open(os.path.join(self.tmp, "nb_local_settings.py"), "w") as f:
            f.write("import os, warnings\nos.environ['NB_LOCAL'] = '1'\n"
                    "warnings.simplefilter('ignore')\n")
        w = Worker()
        try:
            r = self.run_on(w, "import nb_local_settings")
            self.assertEqual(self.probe_names(r), ["@os.environ", "@warnings.filters"])
        finally:
            w.close()
        code = "import os, warnings\nwarnings.warn('hidden')\nprint(os.environ.get('NB_LOCAL'))"
        r = self.run_on(self.w2, code, *probe_inputs(r))
        self.assertEqual((r.stdout, r.stderr), ("1\n", ""))

    # --- numpy / pandas / matplotlib / scikit-learn ------------------------------------------

    @unittest.skipUnless(_has("numpy"), "numpy is not installed")
    def test_numpy_random_carried_across_workers(self):
        import numpy as np

        a = self.run_on(self.w1, "import numpy as np\nnp.random.seed(0)")
        self.assertEqual(self.probe_names(a), ["@numpy.random"])
        b = self.run_on(self.w2, "import numpy as np\nx = np.random.rand(3)", *probe_inputs(a),
                        writes=["x"])
        c = self.run_on(self.w3, "import numpy as np\ny = np.random.rand(3)", *probe_inputs(b),
                        writes=["y"])
        gen = np.random.RandomState(0)
        self.assertEqual(b.load()["x"].tolist(), gen.rand(3).tolist())
        self.assertEqual(c.load()["y"].tolist(), gen.rand(3).tolist())
        # On a fresh worker, where numpy.random is first imported by the cell itself.
        fresh = Worker()
        try:
            r = self.run_on(fresh, "import numpy as np\ny = np.random.rand(3)", *probe_inputs(b),
                            writes=["y"])
            self.assertEqual(r.load()["y"].tolist(), c.load()["y"].tolist())
            # Imported and seeded in one cell: reported (it started from the default).
            fresh2 = Worker()
            try:
                r = self.run_on(fresh2, "import numpy as np\nnp.random.seed(0)")
                self.assertEqual(r.groups(), a.groups())
            finally:
                fresh2.close()
        finally:
            fresh.close()

    @unittest.skipUnless(_has("numpy"), "numpy is not installed")
    def test_numpy_random_cached_gaussian(self):
        """randn() draws two gaussians and keeps one: the next randn() changes the state
        without drawing from the generator's words."""
        import numpy as np

        a = self.run_on(self.w1, "import numpy as np\nnp.random.seed(4)")
        b = self.run_on(self.w2, "import numpy as np\nx = np.random.randn()", *probe_inputs(a),
                        writes=["x"])
        c = self.run_on(self.w3, "import numpy as np\ny = np.random.randn()", *probe_inputs(b),
                        writes=["y"])
        self.assertEqual(self.probe_names(c), ["@numpy.random"])
        d = self.run_on(self.w1, "import numpy as np\nz = np.random.randn()", *probe_inputs(c),
                        writes=["z"])
        gen = np.random.RandomState(4)
        self.assertEqual([b.load()["x"], c.load()["y"], d.load()["z"]],
                         [gen.randn(), gen.randn(), gen.randn()])

    @unittest.skipUnless(_has("numpy"), "numpy is not installed")
    def test_numpy_random_not_given_starts_from_the_default(self):
        w = Worker()
        try:
            r = self.run_on(w, "import numpy as np\nk = np.random.get_state()[1][:4].tolist()",
                            writes=["k"])
            self.assertEqual(self.probe_names(r), [])  # imported and read: unchanged
            default = r.load()["k"]
            r = self.run_on(w, "import numpy as np\nnp.random.seed(0)")
            self.assertEqual(self.probe_names(r), ["@numpy.random"])
            r = self.run_on(w, "import numpy as np\nk = np.random.get_state()[1][:4].tolist()",
                            writes=["k"])
            self.assertEqual(r.load()["k"], default)
        finally:
            w.close()

    @unittest.skipUnless(_has("numpy"), "numpy is not installed")
    def test_numpy_default_rng_is_a_plain_value(self):
        import numpy as np

        a = self.run_on(self.w1, "import numpy as np\nrng = np.random.default_rng(1)", writes=["rng"])
        self.assertEqual(self.probe_names(a), [])
        inputs, blobs = a.value_inputs()
        b = self.run_on(self.w2, "x = rng.random()", inputs, blobs, writes=["x"], candidates=["rng"])
        self.assertEqual(b.mutated, ["rng"])
        self.assertEqual(self.probe_names(b), [])
        self.assertEqual(b.load()["x"], np.random.default_rng(1).random())

    @unittest.skipUnless(_has("numpy"), "numpy is not installed")
    def test_numpy_printoptions_carried(self):
        a = self.run_on(self.w1, "import numpy as np\nnp.set_printoptions(precision=2)")
        self.assertEqual(self.probe_names(a), ["@numpy.printoptions"])
        code = "import numpy as np\nprint(np.array([1/3]))"
        self.assertEqual(self.run_on(self.w2, code, *probe_inputs(a)).stdout, "[0.33]\n")
        self.assertEqual(self.run_on(self.w2, code).stdout, "[0.33333333]\n")
        self.assertEqual(self.run_on(self.w1, code).stdout, "[0.33333333]\n")

    @unittest.skipUnless(_has("matplotlib"), "matplotlib is not installed")
    def test_rcparams_carried(self):
        a = self.run_on(self.w1, "import matplotlib.pyplot as plt\nplt.style.use('ggplot')")
        self.assertEqual(self.probe_names(a), ["@matplotlib.rcParams"])
        code = ("import matplotlib.pyplot as plt\n"
                "print(plt.rcParams['axes.facecolor'], plt.rcParams['axes.prop_cycle'].by_key()['color'][0])")
        fresh = Worker()  # matplotlib first imported by the cell: the input waits for it
        try:
            r = self.run_on(fresh, code, *probe_inputs(a))
            self.assertEqual(r.stdout, "#E5E5E5 #E24A33\n")
            self.assertEqual(r.values, [])
        finally:
            fresh.close()
        r = self.run_on(self.w2, code, *probe_inputs(a))
        self.assertEqual(r.stdout, "#E5E5E5 #E24A33\n")
        self.assertNotIn("#E5E5E5", self.run_on(self.w2, code).stdout)
        self.assertNotIn("#E5E5E5", self.run_on(self.w1, code).stdout)

    @unittest.skipUnless(_has("matplotlib"), "matplotlib is not installed")
    def test_rcparams_list_changed_in_place(self):
        code = "import matplotlib.pyplot as plt\nplt.rcParams['font.sans-serif'].insert(0, 'NbFont')"
        a = self.run_on(self.w1, code)
        self.assertEqual(self.probe_names(a), ["@matplotlib.rcParams"])
        read = "import matplotlib.pyplot as plt\nprint(plt.rcParams['font.sans-serif'][:2])"
        r = self.run_on(self.w2, read, *probe_inputs(a))
        self.assertEqual(r.stdout.split("'")[1], "NbFont")
        self.assertEqual(r.values, [])
        # From a state that is not the default (ggplot), changed in place again.
        b = self.run_on(self.w1, "import matplotlib.pyplot as plt\nplt.style.use('ggplot')")
        c = self.run_on(self.w3, code, *probe_inputs(b))
        self.assertEqual(self.probe_names(c), ["@matplotlib.rcParams"])
        r = self.run_on(self.w2, read, *probe_inputs(c))
        self.assertEqual(r.stdout.split("'")[1], "NbFont")
        self.assertNotIn("NbFont", self.run_on(self.w3, read).stdout)

    @unittest.skipUnless(_has("pandas"), "pandas is not installed")
    def test_pandas_options_carried(self):
        a = self.run_on(self.w1, "import pandas as pd\npd.set_option('display.max_rows', 5)")
        self.assertEqual(a.load(), {"@pandas.options": (("display.max_rows", 5),)})
        code = "import pandas as pd\nprint(pd.DataFrame({'a': range(10)}))"
        fresh = Worker()  # pandas first imported by the cell: the input waits for it
        try:
            r = self.run_on(fresh, code, *probe_inputs(a))
            self.assertIn("[10 rows x 1 columns]", r.stdout)
            self.assertEqual(r.values, [])
        finally:
            fresh.close()
        self.assertIn("[10 rows x 1 columns]", self.run_on(self.w2, code, *probe_inputs(a)).stdout)
        self.assertNotIn("[10 rows x 1 columns]", self.run_on(self.w2, code).stdout)
        self.assertNotIn("[10 rows x 1 columns]", self.run_on(self.w1, code).stdout)
        # Changed again from a state that is not the default.
        b = self.run_on(self.w2, "import pandas as pd\npd.set_option('display.precision', 2)",
                        *probe_inputs(a))
        self.assertEqual(b.load(), {"@pandas.options": (("display.max_rows", 5),
                                                        ("display.precision", 2))})
        r = self.run_on(self.w2, "import pandas as pd\nprint(pd.get_option('display.precision'))",
                        *probe_inputs(a))
        self.assertEqual((r.stdout, r.values), ("6\n", []))

    @unittest.skipUnless(_has("sklearn"), "scikit-learn is not installed")
    def test_estimator_drawing_from_the_global_generator_is_reported(self):
        code = ("import numpy as np\n"
                "from sklearn.ensemble import RandomForestClassifier\n"
                "X = np.arange(20.0).reshape(10, 2)\n"
                "y = np.arange(10) % 2\n"
                "model = RandomForestClassifier(n_estimators=3, random_state=None).fit(X, y)\n")
        r = self.run_on(self.w1, code, writes=["np", "RandomForestClassifier", "X", "y", "model"])
        self.assertIn("@numpy.random", self.probe_names(r))



@unittest.skipIf(cloudpickle is None, "cloudpickle is not installed")
class FileTrackingTest(unittest.TestCase):
    """The audit hook: what a cell reads, lists and writes under the project root."""

    @classmethod
    def setUpClass(cls):
        cls.w = Worker()

    @classmethod
    def tearDownClass(cls):
        cls.w.close()

    def setUp(self):
        self.root = os.path.realpath(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.root, True)
        self.outside = os.path.realpath(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.outside, True)
        with open(os.path.join(self.root, "data.csv"), "w") as f:
            f.write("a,b\n1,2\n")
        os.mkdir(os.path.join(self.root, "sub"))

    def files(self, code, **kw):
        kw.setdefault("cwd", self.root)
        r = self.w.exec(code, root=self.root, store=os.path.join(self.root, ".nbmemo"), **kw)
        self.assertEqual(r.status, "ok", (r.error, self.w.stderr_text()))
        return r.files

    def test_reads_writes_and_listings_relative_to_the_root(self):
        f = self.files(
            "import os\n"
            "text = open('data.csv').read()\n"
            "os.makedirs('out/deep', exist_ok=True)\n"
            "open('out/deep/x.txt', 'w').write(text)\n"
            "print(open('out/deep/x.txt').read())\n"  # its own output: not an input
            "names = os.listdir('sub')\n"
            "import pathlib\n"
            "pathlib.Path('sub/y.txt').write_text('y')\n"
            "os.rename('sub/y.txt', 'sub/z.txt')\n"
            "open(%r, 'w').write('outside')\n" % os.path.join(self.outside, "o.txt"))
        self.assertEqual(f["read"], ["data.csv"])
        self.assertEqual(f["listed"], ["sub"])
        self.assertEqual(f["written"], ["out", "out/deep", "out/deep/x.txt", "sub/y.txt",
                                        "sub/z.txt"])

    def test_relative_paths_follow_the_working_directory(self):
        f = self.files("import os\nos.chdir('sub')\nopen('n.txt', 'w').close()\n"
                       "print(os.path.exists('../data.csv'), open('../data.csv').read()[:1])")
        self.assertEqual(f["read"], ["data.csv"])
        self.assertEqual(f["written"], ["sub/n.txt"])

    @unittest.skipUnless(_has("numpy") and _has("pandas"), "numpy and pandas are needed")
    def test_library_reads_and_writes_are_seen(self):
        f = self.files("import numpy as np, pandas as pd\n"
                       "df = pd.read_csv('data.csv')\n"
                       "np.save('arr.npy', np.arange(3))\n"
                       "back = np.load('arr.npy')\n"
                       "df.to_csv('copy.csv')\n")
        self.assertEqual(f["read"], ["data.csv"])
        self.assertEqual(f["written"], ["arr.npy", "copy.csv"])

    def test_imports_store_and_pycache_are_not_traced(self):
        with open(os.path.join(self.root, "localmod.py"), "w") as f:
            f.write("VALUE = 7\n")
        os.makedirs(os.path.join(self.root, ".nbmemo"))
        with open(os.path.join(self.root, ".nbmemo", "x"), "w") as f:
            f.write("")
        f = self.files("import sys\nsys.path.insert(0, '.')\nimport localmod\n"
                       "open('.nbmemo/x').read()\nimport json\n")
        # The module's source counts as read by the cell holding the module (not through the
        # import machinery: whether a .pyc existed must not matter); the store is not traced.
        self.assertEqual(f["read"], ["localmod.py"])
        self.assertEqual(f["listed"], [])
        self.assertEqual(f["written"], [])

    def test_no_root_no_tracing(self):
        r = self.w.exec("open('data.csv').read()", cwd=self.root)
        self.assertEqual(r.status, "ok")
        self.assertIsNone(r.files)


if __name__ == "__main__":
    unittest.main()
