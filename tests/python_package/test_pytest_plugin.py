"""Tests of the pytest plugin (`pytest --nbmemo`), through pytest in a subprocess: the plugin is
found through the installed `pytest11` entry point, as in a user's project."""

import shutil
import subprocess
import sys
import time
import unittest
import xml.etree.ElementTree as ET

from support import NOTEBOOKS, TempCase, clean_env

# notebooks/: passing.ipynb (3 cells pass), failing.ipynb (cell 1 raises, cell 2 reads its
# result, cell 3 is independent), report.py (a percent script, 2 cells), helper.py (a module
# without a `# %%` line, which exits if executed).
FIRST_RUN = {
    "notebooks/failing.ipynb::cell_0": ("passed", "ran"),
    "notebooks/failing.ipynb::cell_1": ("failed", "failed"),
    "notebooks/failing.ipynb::cell_2": ("skipped", "skipped"),
    "notebooks/failing.ipynb::cell_3": ("passed", "ran"),
    "notebooks/passing.ipynb::cell_0": ("passed", "ran"),
    "notebooks/passing.ipynb::cell_1": ("passed", "ran"),
    "notebooks/passing.ipynb::cell_2": ("passed", "ran"),
    "notebooks/report.py::cell_0": ("passed", "ran"),
    "notebooks/report.py::cell_1": ("passed", "ran"),
}


class Session:
    """One pytest run: exit code, output, and each item's outcome from the JUnit report."""

    def __init__(self, proc, junit):
        self.returncode = proc.returncode
        self.output = proc.stdout + proc.stderr
        self.items = {}
        self.failures = {}
        if not junit.exists():
            return
        for case in ET.parse(junit).getroot().iter("testcase"):
            nodeid = f"{case.get('file')}::{case.get('name')}"
            outcome = "passed"
            for tag in ("failure", "error", "skipped"):
                found = case.find(tag)
                if found is not None:
                    outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                    self.failures[nodeid] = (found.get("message") or "") + "\n" + (found.text or "")
            props = {p.get("name"): p.get("value") for p in case.iter("property")}
            self.items[nodeid] = (outcome, props.get("nbmemo"))

    def counts(self):
        found = {}
        for outcome, _ in self.items.values():
            found[outcome] = found.get(outcome, 0) + 1
        return found


class PluginTest(TempCase):
    def setUp(self):
        super().setUp()
        self.project = self.tmp / "project"
        shutil.copytree(NOTEBOOKS, self.project / "notebooks")
        # An empty ini file makes the project folder pytest's rootdir.
        (self.project / "pytest.ini").write_text("[pytest]\n")
        self.runs = 0

    def pytest(self, *args):
        self.runs += 1
        junit = self.tmp / f"junit-{self.runs}.xml"
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA",
             f"--junitxml={junit}", "-o", "junit_family=xunit1", *map(str, args)],
            cwd=self.project,
            capture_output=True,
            text=True,
            env=clean_env(NBMEMO_CACHE_DIR=self.cache),
            timeout=300,
        )
        return Session(proc, junit)

    def test_each_cell_is_an_item_and_the_second_run_replays_them(self):
        first = self.pytest("--nbmemo", "notebooks")
        self.assertEqual(first.returncode, 1, first.output)
        self.assertEqual(first.items, FIRST_RUN, first.output)
        self.assertEqual(first.counts(), {"passed": 7, "failed": 1, "skipped": 1})
        self.assertIn("1 failed, 7 passed, 1 skipped", first.output)
        failure = first.failures["notebooks/failing.ipynb::cell_1"]
        self.assertIn("cell 1, line 2 failed: print(\"about to divide\")", failure)
        self.assertIn('File "<cell 1>", line 2, in <module>', failure)
        self.assertIn("ZeroDivisionError: division by zero", failure)
        self.assertIn("cell 1 failed", first.failures["notebooks/failing.ipynb::cell_2"])
        # The cell's printed output is the item's captured stdout.
        self.assertIn("about to divide", first.output)

        second = self.pytest("--nbmemo", "notebooks")
        self.assertEqual(second.returncode, 1, second.output)
        replayed = {
            nodeid: (outcome, "cached" if status == "ran" else status)
            for nodeid, (outcome, status) in FIRST_RUN.items()
        }
        self.assertEqual(second.items, replayed, second.output)
        self.assertIn("ZeroDivisionError: division by zero", second.failures["notebooks/failing.ipynb::cell_1"])

        forced = self.pytest("--nbmemo", "--nbmemo-force", "--nbmemo-jobs", "1", "notebooks")
        self.assertEqual(forced.items, FIRST_RUN, forced.output)

    def test_without_the_flag_nothing_is_collected(self):
        session = self.pytest("notebooks")
        self.assertEqual(session.returncode, 5, session.output)  # no tests collected
        self.assertEqual(session.items, {})
        self.assertIn("no tests ran", session.output)
        disabled = self.pytest("-p", "no:nbmemo", "--nbmemo", "notebooks")
        self.assertEqual(disabled.returncode, 4, disabled.output)  # usage error
        self.assertIn("unrecognized arguments: --nbmemo", disabled.output)

    def test_one_cell_selected_runs_its_notebook_and_reports_that_cell(self):
        session = self.pytest("--nbmemo", "notebooks/failing.ipynb::cell_3")
        self.assertEqual(session.returncode, 0, session.output)
        self.assertEqual(session.items, {"notebooks/failing.ipynb::cell_3": ("passed", "ran")})

    def test_timeout_fails_the_slow_cell(self):
        (self.project / "slow").mkdir()
        (self.project / "slow" / "slow.py").write_text(
            "# %%\nimport time\ntime.sleep(60)\n\n# %%\nprint('fast')\n"
        )
        start = time.monotonic()
        session = self.pytest("--nbmemo", "--nbmemo-timeout", "1", "slow")
        self.assertLess(time.monotonic() - start, 60)
        self.assertEqual(session.returncode, 1, session.output)
        self.assertEqual(session.counts(), {"failed": 1, "passed": 1})
        self.assertIn("timeout of 1s", session.failures["slow/slow.py::cell_0"])

    def test_an_unreadable_notebook_is_a_collection_error(self):
        (self.project / "bad").mkdir()
        (self.project / "bad" / "bad.ipynb").write_text("{not json")
        session = self.pytest("--nbmemo", "bad")
        self.assertEqual(session.returncode, 2, session.output)
        self.assertIn("bad.ipynb", session.output)
        self.assertIn("1 error", session.output)


if __name__ == "__main__":
    unittest.main()
