"""Shared helpers of the installed-package tests (`just wheel-test`)."""

import os
import shutil
import sys
import tempfile
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
QUICKSTART = ROOT / "examples" / "quickstart.ipynb"
FAILING = ROOT / "examples" / "failing.ipynb"
NOTEBOOKS = HERE / "notebooks"
# The console script pip installed beside this interpreter.
NBMEMO = Path(sys.executable).parent / "nbmemo"


def clean_env(**extra):
    """This process's environment without what would change nbmemo's choices: the workers then
    run `sys.executable` (no `VIRTUAL_ENV`), and the cache is where the test says."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("VIRTUAL_ENV", "NBMEMO_CACHE_DIR", "NBMEMO_LOG", "PYTEST_ADDOPTS")
    }
    env.update({key: str(value) for key, value in extra.items()})
    return env


class TempCase(unittest.TestCase):
    """A test with a temporary folder (`self.tmp`) and a cache folder in it (`self.cache`)."""

    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="nbmemo-package-test-"))
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.cache = self.tmp / "cache"

    def write(self, name, text):
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path
