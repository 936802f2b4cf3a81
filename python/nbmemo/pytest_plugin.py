"""pytest plugin: ``pytest --nbmemo notebooks/`` tests notebooks through nbmemo's cache.

Registered through the ``pytest11`` entry point, so installing nbmemo makes the options
available; without ``--nbmemo`` the plugin collects nothing and a project's test run does not
change (``-p no:nbmemo`` disables it altogether).

With ``--nbmemo``, ``.ipynb`` files are collected, and ``.py`` files with a jupytext percent
marker line (``# %%``), as ``nbmemo check`` finds them (an ordinary module is never executed
as a notebook). Every code cell is a test item, ``path::cell_N`` (N counts code cells from 0):

- it passes when the cell ran without an exception, or was replayed from the cache (a cell
  whose inputs did not change passes without executing; the JUnit property ``nbmemo`` says
  ``ran`` or ``cached``);
- it fails with the cell's traceback (line numbers are the cell's own), or with why it did not
  finish (timeout, crash);
- it is skipped when a cell it depends on failed (or is tagged ``nbmemo: skip``).

Each notebook runs once, as one ``nbmemo.run`` when its first item runs, cells in parallel as
the dependency graph allows; the items report that run's per-cell results. The cell's printed
output is shown as the item's captured stdout/stderr.

Options: ``--nbmemo-timeout SECONDS`` (per cell), ``--nbmemo-jobs N`` (cells of a notebook at
once), ``--nbmemo-force`` (ignore the cache), ``--nbmemo-python PATH`` (the workers'
interpreter; default ``$VIRTUAL_ENV/bin/python``, else the interpreter running pytest). The
cache is the project's ``.nbmemo`` unless ``NBMEMO_CACHE_DIR`` says otherwise. With
pytest-xdist, use ``--dist loadfile`` so that a notebook's items stay in one worker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Union

import pytest

# Folders whose notebooks are copies, never tests (pytest's default `norecursedirs` skips
# hidden folders too, but a project may override it).
_SKIPPED_DIRS = frozenset({".ipynb_checkpoints", ".nbmemo"})


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nbmemo", "notebooks as tests, through nbmemo's cache")
    group.addoption(
        "--nbmemo",
        action="store_true",
        default=False,
        help="collect notebooks (.ipynb, and .py files with a `# %%` marker line) and test "
        "each code cell; cells whose inputs did not change are replayed from nbmemo's cache",
    )
    group.addoption(
        "--nbmemo-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="fail a notebook cell that runs longer than this",
    )
    group.addoption(
        "--nbmemo-jobs",
        type=int,
        default=None,
        metavar="N",
        help="how many cells of a notebook may run at once [default: the number of cores]",
    )
    group.addoption(
        "--nbmemo-force",
        action="store_true",
        default=False,
        help="ignore nbmemo's cache: run every cell",
    )
    group.addoption(
        "--nbmemo-python",
        default=None,
        metavar="PATH",
        help="the interpreter running the cells [default: $VIRTUAL_ENV/bin/python, else the "
        "one running pytest]",
    )


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Optional[pytest.Collector]:
    if not parent.config.getoption("nbmemo"):
        return None
    if _SKIPPED_DIRS.intersection(file_path.parts):
        return None
    if file_path.suffix == ".ipynb" or (file_path.suffix == ".py" and _is_percent_script(file_path)):
        return NotebookFile.from_parent(parent, path=file_path)
    return None


def _is_percent_script(path: Path) -> bool:
    from nbmemo import _native

    return _native.is_notebook(str(path))


class NotebookFile(pytest.File):
    """A notebook: one item per code cell, one ``nbmemo.run`` for all of them."""

    _result: Union[None, Dict[str, Any], str] = None

    def collect(self) -> Iterator[NotebookCell]:
        import nbmemo

        try:
            plan = nbmemo.plan(self.path, python=self.config.getoption("nbmemo_python"))
        except nbmemo.NbmemoError as err:
            raise self.CollectError(str(err)) from None
        for cell in plan["cells"]:
            yield NotebookCell.from_parent(
                self,
                name=f"cell_{cell['index']}",
                index=cell["index"],
                first_line=cell.get("first_line") or "",
            )

    def result(self) -> Dict[str, Any]:
        """The notebook's ``nbmemo.run`` result, running it on first use."""
        import nbmemo

        if self._result is None:
            config = self.config
            try:
                self._result = nbmemo.run(
                    self.path,
                    jobs=config.getoption("nbmemo_jobs"),
                    force=config.getoption("nbmemo_force"),
                    timeout=config.getoption("nbmemo_timeout"),
                    python=config.getoption("nbmemo_python"),
                )
            except nbmemo.NbmemoError as err:
                self._result = str(err)
        if isinstance(self._result, str):
            raise nbmemo.NbmemoError(self._result)
        return self._result


class CellFailed(Exception):
    """The cell raised, crashed or timed out; ``cell`` is its ``run --json`` object."""

    def __init__(self, cell: Dict[str, Any]) -> None:
        super().__init__(cell.get("reason") or "failed")
        self.cell = cell

    def describe(self) -> str:
        cell = self.cell
        error = cell.get("error")
        where = f"cell {cell['index']}"
        if error and error.get("line"):
            where += f", line {error['line']}"
        lines: List[str] = [f"{where} failed: {cell.get('first_line') or ''}".rstrip()]
        if error and error.get("traceback"):
            lines.extend(error["traceback"])
        elif error:
            lines.append(f"{error.get('ename')}: {error.get('evalue')}")
        else:
            lines.append(cell.get("reason") or "failed")
        return "\n".join(lines)


class NotebookCell(pytest.Item):
    """One code cell of a notebook."""

    def __init__(self, *, index: int, first_line: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.index = index
        self.first_line = first_line

    def runtest(self) -> None:
        assert isinstance(self.parent, NotebookFile)
        cells = self.parent.result()["cells"]
        if self.index >= len(cells):
            raise CellFailed(
                {"index": self.index, "reason": "the notebook changed while the tests ran"}
            )
        cell = cells[self.index]
        for stream in ("stdout", "stderr"):
            if cell.get(stream):
                self.add_report_section("call", stream, cell[stream])
        status = cell["status"]
        self.user_properties.append(("nbmemo", status))
        if status == "skipped":
            reason = f"cell {self.index} skipped: {cell.get('reason') or 'skipped'}"
            try:
                # Reported at the notebook, not at this line of the plugin.
                raise pytest.skip.Exception(reason, _use_item_location=True)
            except TypeError:  # pytest < 7.0 has no `_use_item_location`
                pytest.skip(reason)
        if status == "failed":
            raise CellFailed(cell)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        import nbmemo

        if isinstance(excinfo.value, CellFailed):
            return excinfo.value.describe()
        if isinstance(excinfo.value, nbmemo.NbmemoError):
            return f"nbmemo: {excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> Any:
        # A notebook has no meaningful line numbers: the first line stands for the file.
        return self.path, 0, f"{self.name}: {self.first_line}"
