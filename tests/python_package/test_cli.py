"""Tests of the `nbmemo` command the wheel installs (a console script running the Rust command
line in-process), and of the wheel's metadata."""

import json
import subprocess
import sys
import unittest
from importlib import metadata

import nbmemo
from support import FAILING, NBMEMO, QUICKSTART, TempCase, clean_env


def nbmemo_command(*args, **extra_env):
    return subprocess.run(
        [str(NBMEMO), *map(str, args)], capture_output=True, text=True, env=clean_env(**extra_env)
    )


class CommandTest(TempCase):
    def test_version_is_the_package_version(self):
        # The installed package is under test, not the source tree's python/nbmemo.
        self.assertIn("site-packages", nbmemo.__file__)
        self.assertEqual(metadata.version("nbmemo"), nbmemo.__version__)
        for command in ([str(NBMEMO)], [sys.executable, "-m", "nbmemo"]):
            proc = subprocess.run([*command, "--version"], capture_output=True, text=True)
            self.assertEqual((proc.returncode, proc.stdout), (0, f"nbmemo {nbmemo.__version__}\n"))

    def test_usage_errors_exit_2_and_name_the_command_nbmemo(self):
        proc = nbmemo_command("run")
        self.assertEqual(proc.returncode, 2)
        self.assertIn("Usage: nbmemo run", proc.stderr)
        proc = subprocess.run([sys.executable, "-m", "nbmemo", "plan"], capture_output=True, text=True)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("Usage: nbmemo plan", proc.stderr)

    def test_run_prints_cell_lines_and_replays_the_second_time(self):
        first = nbmemo_command("run", QUICKSTART, "--cache-dir", self.cache)
        self.assertEqual(first.returncode, 0, first.stderr)
        self.assertIn("7 cells: 0 cached, 7 ran, 0 failed, 0 skipped", first.stdout)
        second = nbmemo_command("run", QUICKSTART, "--json", NBMEMO_CACHE_DIR=self.cache)
        self.assertEqual(second.returncode, 0, second.stderr)
        self.assertEqual(json.loads(second.stdout)["summary"]["cached"], 7)

    def test_a_failing_cell_exits_1(self):
        proc = nbmemo_command("run", FAILING, "--cache-dir", self.cache)
        self.assertEqual(proc.returncode, 1)
        self.assertIn("KeyError: 'banana'", proc.stderr)

    def test_the_workers_run_the_scripts_interpreter_by_default(self):
        # This virtualenv's interpreter (the script's shebang may say `python3` where
        # `sys.executable` says `python`), not the `python3` on PATH.
        notebook = self.write("which.py", "# %%\nimport sys\nprint(sys.prefix)\n")
        proc = nbmemo_command("run", notebook, "--json", "--cache-dir", self.cache)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(json.loads(proc.stdout)["cells"][0]["stdout"], sys.prefix + "\n")

    def test_check_finds_percent_scripts_and_skips_plain_modules(self):
        self.write("nbs/a.py", "# %%\nprint('a')\n")
        self.write("nbs/plain.py", "raise SystemExit('must not run')\n")
        proc = nbmemo_command("check", self.tmp / "nbs", "--cache-dir", self.cache)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("a.py: 1 cell: 0 cached, 1 ran", proc.stdout)
        self.assertNotIn("plain.py", proc.stdout)


if __name__ == "__main__":
    unittest.main()
