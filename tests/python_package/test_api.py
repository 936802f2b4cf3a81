"""Tests of the installed package's Python API: `nbmemo.run`, `nbmemo.plan`, `NbmemoError`.

Run with the interpreter of a virtualenv where the wheel is installed (`just wheel-test`):
`python -m unittest discover -s tests/python_package`.
"""

import json
import os
import signal
import subprocess
import sys
import time
import unittest

import nbmemo
from support import FAILING, NBMEMO, QUICKSTART, TempCase, clean_env

QUICKSTART_STDOUT = [
    "imported statistics\n",
    "loaded 12 readings\n",
    "cities: Cairo, Lisbon, Oslo\n",
]


def setUpModule():
    # The workers' default interpreter is then this one (`sys.executable`).
    os.environ.pop("VIRTUAL_ENV", None)
    os.environ.pop("NBMEMO_CACHE_DIR", None)


def statuses(result):
    return [cell["status"] for cell in result["cells"]]


def counts(result):
    return {key: result["summary"][key] for key in ("ran", "cached", "failed", "skipped")}


class RunTest(TempCase):
    def test_first_run_executes_every_cell_then_the_second_replays_them(self):
        first = nbmemo.run(QUICKSTART, cache_dir=self.cache)
        self.assertEqual(first["notebook"], str(QUICKSTART))
        self.assertEqual(statuses(first), ["ran"] * 7)
        self.assertEqual(counts(first), {"ran": 7, "cached": 0, "failed": 0, "skipped": 0})
        self.assertEqual([c["stdout"] for c in first["cells"][:3]], QUICKSTART_STDOUT)
        self.assertEqual(first["cells"][0]["reason"], "no previous run")
        self.assertEqual(first["cells"][0]["first_line"], "import statistics")
        self.assertIsInstance(first["cells"][0]["started_at"], float)

        second = nbmemo.run(str(QUICKSTART), cache_dir=str(self.cache))
        self.assertEqual(statuses(second), ["cached"] * 7)
        self.assertEqual(counts(second), {"ran": 0, "cached": 7, "failed": 0, "skipped": 0})
        self.assertEqual([c["stdout"] for c in second["cells"][:3]], QUICKSTART_STDOUT)
        self.assertIsNone(second["cells"][0]["started_at"])

    def test_force_and_one_job_run_every_cell_one_after_the_other(self):
        nbmemo.run(QUICKSTART, cache_dir=self.cache)
        forced = nbmemo.run(QUICKSTART, jobs=1, force=True, cache_dir=self.cache)
        self.assertEqual(statuses(forced), ["ran"] * 7)
        self.assertEqual(forced["cells"][3]["reason"], "forced (--force)")
        spans = sorted((c["started_at"], c["finished_at"]) for c in forced["cells"])
        for (_, finished), (started, _) in zip(spans, spans[1:]):
            self.assertLessEqual(finished, started)

    def test_a_failing_cell_is_reported_in_the_result_not_raised(self):
        result = nbmemo.run(FAILING, cache_dir=self.cache)
        self.assertEqual(statuses(result), ["ran", "failed", "skipped", "ran"])
        self.assertEqual(counts(result), {"ran": 2, "cached": 0, "failed": 1, "skipped": 1})
        error = result["cells"][1]["error"]
        self.assertEqual((error["ename"], error["evalue"], error["line"]), ("KeyError", "'banana'", 2))
        self.assertEqual(error["traceback"][0], "Traceback (most recent call last):")
        self.assertEqual(error["traceback"][-1], "KeyError: 'banana'")
        self.assertEqual(result["cells"][2]["reason"], "cell 1 failed")
        self.assertEqual(result["cells"][3]["stdout"], "cheapest fruit: apple\n")

    def test_the_workers_run_this_interpreter_by_default(self):
        notebook = self.write("which.py", "# %%\nimport sys\nprint(sys.executable)\n")
        result = nbmemo.run(notebook, cache_dir=self.cache)
        self.assertEqual(result["cells"][0]["stdout"], sys.executable + "\n")

    def test_timeout_fails_the_cell_and_the_others_still_run(self):
        notebook = self.write(
            "slow.py", "# %%\nimport time\ntime.sleep(60)\n\n# %%\nfast = 1\nprint(fast)\n"
        )
        start = time.monotonic()
        result = nbmemo.run(notebook, timeout=1, cache_dir=self.cache)
        self.assertLess(time.monotonic() - start, 30)
        self.assertEqual(statuses(result), ["failed", "ran"])
        self.assertIn("timeout of 1s", result["cells"][0]["reason"])

    def test_a_missing_notebook_raises_the_message_the_command_line_prints(self):
        missing = self.tmp / "missing.ipynb"
        with self.assertRaises(nbmemo.NbmemoError) as caught:
            nbmemo.run(missing, cache_dir=self.cache)
        message = str(caught.exception)
        self.assertEqual(
            message, f"failed to read `{missing}`: No such file or directory (os error 2)"
        )
        cli = subprocess.run(
            [str(NBMEMO), "run", str(missing), "--cache-dir", str(self.cache)],
            capture_output=True,
            text=True,
            env=clean_env(),
        )
        self.assertEqual((cli.returncode, cli.stdout, cli.stderr), (2, "", f"error: {message}\n"))

    def test_an_unreadable_notebook_and_a_missing_interpreter_raise(self):
        broken = self.write("broken.ipynb", "{not json")
        with self.assertRaises(nbmemo.NbmemoError) as caught:
            nbmemo.run(broken, cache_dir=self.cache)
        self.assertIn(str(broken), str(caught.exception))
        with self.assertRaises(nbmemo.NbmemoError) as caught:
            nbmemo.run(QUICKSTART, python=self.tmp / "no-python", cache_dir=self.cache)
        self.assertIn("no-python", str(caught.exception))

    def test_the_api_prints_nothing(self):
        script = (
            "import sys, nbmemo\n"
            "result = nbmemo.run(sys.argv[1], cache_dir=sys.argv[2])\n"
            "nbmemo.plan(sys.argv[1], cache_dir=sys.argv[2])\n"
            "sys.exit(0 if result['summary']['failed'] == 1 else 3)\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", script, str(FAILING), str(self.cache)],
            capture_output=True,
            text=True,
            env=clean_env(),
        )
        self.assertEqual((proc.returncode, proc.stdout, proc.stderr), (0, "", ""))

    def test_ctrl_c_stops_the_run_and_raises_keyboard_interrupt(self):
        marker = self.tmp / "started"
        notebook = self.write(
            "sleepy.py",
            f"# %%\nimport pathlib, time\npathlib.Path({str(marker)!r}).write_text('yes')\n"
            "time.sleep(60)\n",
        )
        quick = self.write("quick.py", "# %%\nanswer = 42\n")
        script = (
            "import sys, nbmemo\n"
            "try:\n"
            "    nbmemo.run(sys.argv[1], cache_dir=sys.argv[3])\n"
            "except KeyboardInterrupt:\n"
            "    print('interrupted', flush=True)\n"
            "print(nbmemo.run(sys.argv[2], cache_dir=sys.argv[3])['summary']['ran'], flush=True)\n"
        )
        start = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-c", script, str(notebook), str(quick), str(self.cache)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        try:
            while not marker.exists():
                self.assertIsNone(proc.poll(), "the run ended before its cell started")
                self.assertLess(time.monotonic() - start, 60, "the cell never started")
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            stdout, stderr = proc.communicate(timeout=30)
        finally:
            proc.kill()
        self.assertEqual((proc.returncode, stdout), (0, "interrupted\n1\n"), stderr)
        self.assertLess(time.monotonic() - start, 40)


class PlanTest(TempCase):
    def test_plan_is_the_object_plan_format_json_prints(self):
        plan = nbmemo.plan(QUICKSTART, cache_dir=self.cache)
        self.assertEqual(len(plan["cells"]), 7)
        self.assertEqual(plan["cells"][0]["writes"], ["statistics"])
        self.assertEqual(plan["cells"][2]["depends_on"], [1])
        self.assertIsNone(plan["cells"][0]["cache"])
        cli = subprocess.run(
            [str(NBMEMO), "plan", str(QUICKSTART), "--format", "json", "--cache-dir", str(self.cache)],
            capture_output=True,
            text=True,
            check=True,
            env=clean_env(),
        )
        self.assertEqual(plan, json.loads(cli.stdout))

    def test_after_a_run_the_plan_says_every_cell_is_cached(self):
        nbmemo.run(QUICKSTART, cache_dir=self.cache)
        plan = nbmemo.plan(QUICKSTART, cache_dir=self.cache)
        self.assertEqual([cell["cache"] for cell in plan["cells"]], ["cached"] * 7)
        edited = self.write("edited.py", "# %%\nx = 1\n\n# %%\ny = x + 1\n")
        nbmemo.run(edited, cache_dir=self.cache)
        edited.write_text("# %%\nx = 2\n\n# %%\ny = x + 1\n")
        plan = nbmemo.plan(edited, cache_dir=self.cache)
        self.assertEqual([cell["cache"] for cell in plan["cells"]], ["would run", "would run"])
        self.assertEqual(plan["cells"][0]["reason"], "code changed")

    def test_a_syntax_error_is_a_diagnostic_not_an_exception(self):
        notebook = self.write("broken.py", "# %%\nx = (\n\n# %%\ny = 1\n")
        plan = nbmemo.plan(notebook, cache_dir=self.cache)
        self.assertEqual(len(plan["cells"][0]["diagnostics"]), 1)
        self.assertEqual(plan["cells"][0]["diagnostics"][0]["cell"], 0)
        self.assertEqual(plan["cells"][1]["diagnostics"], [])

    def test_a_missing_notebook_raises(self):
        missing = self.tmp / "missing.py"
        with self.assertRaisesRegex(nbmemo.NbmemoError, "^failed to read `.*missing.py`"):
            nbmemo.plan(missing)


if __name__ == "__main__":
    unittest.main()
