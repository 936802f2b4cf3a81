"""nbmemo: run Python notebooks like a build.

Every code cell is a build step memoized in a content-addressed cache: a cell runs again only
when its code, the values it reads, the files it reads or the Python environment changed, and
cells that don't depend on each other run at the same time.

    >>> import nbmemo
    >>> result = nbmemo.run("analysis.ipynb")
    >>> result["summary"]
    {'ran': 2, 'cached': 5, 'failed': 0, 'skipped': 0, 'wall_s': 0.41, 'saved_s': 12.3}
    >>> [cell["index"] for cell in nbmemo.plan("analysis.ipynb")["cells"] if cell["wave"] == 0]
    [0, 1]

The engine (Rust, in the extension module ``nbmemo._native``) runs in this process, with the
GIL released while it works; the cells run in worker processes of a Python interpreter:
``python=`` if given, else ``$VIRTUAL_ENV/bin/python``, else this interpreter
(``sys.executable``). That interpreter needs ``cloudpickle`` (a dependency of this package).

The ``nbmemo`` command installed with this package is the same program as the Rust binary,
run in-process (``python -m nbmemo`` too), with the same interpreter default.
"""

from __future__ import annotations

import os
import sys

from nbmemo import _native
from nbmemo._native import NbmemoError, __version__

# `typing` costs more to import than the rest of the package (the `nbmemo` command starts
# through here): only type checkers read it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Optional, Union

    StrPath = Union[str, os.PathLike[str]]

__all__ = ["NbmemoError", "__version__", "plan", "run"]


def run(
    path: StrPath,
    jobs: Optional[int] = None,
    force: bool = False,
    *,
    timeout: Optional[float] = None,
    python: Optional[StrPath] = None,
    cache_dir: Optional[StrPath] = None,
) -> Dict[str, Any]:
    """Run the notebook at ``path`` through the cache, as ``nbmemo run --json`` does.

    Returns the object ``nbmemo run --json`` prints: ``{"notebook": ..., "cells": [{"index",
    "status" ("ran", "cached", "failed" or "skipped"), "stdout", "stderr", "reason", "error",
    "outputs", ...}], "summary": {"ran", "cached", "failed", "skipped", "wall_s", "saved_s"}}``.
    A cell that fails is reported in the result (``status == "failed"``, ``error`` holds its
    traceback), not raised. Nothing is printed but warnings (on stderr).

    ``jobs``: how many cells may run at once (default: the number of cores). ``force``: ignore
    the cache. ``timeout``: seconds after which a running cell is stopped (it fails; nothing is
    cached). ``python``: the workers' interpreter (default: ``$VIRTUAL_ENV/bin/python``, else
    ``sys.executable``). ``cache_dir``: where the cache lives (default: ``$NBMEMO_CACHE_DIR``,
    else ``.nbmemo`` at the project root, the nearest folder above the notebook with ``.git``
    or ``pyproject.toml``).

    Raises :class:`NbmemoError` when nbmemo cannot do its job (the notebook cannot be read, the
    cache cannot be opened, the interpreter cannot be started), with the message the command
    line prints. Ctrl-C stops the running cells and raises :class:`KeyboardInterrupt`.
    """
    return _native.run(
        os.fspath(path),
        jobs,
        force,
        timeout,
        _fspath(python),
        sys.executable or None,
        _fspath(cache_dir),
    )


def plan(
    path: StrPath,
    *,
    python: Optional[StrPath] = None,
    cache_dir: Optional[StrPath] = None,
) -> Dict[str, Any]:
    """The dependency graph of the notebook at ``path``, as ``nbmemo plan --format json``.

    Returns ``{"notebook": ..., "cells": [{"index", "reads", "writes", "may_mutate",
    "depends_on", "wave", "barrier", "diagnostics", "first_line", "cache", "reason", ...}],
    "waves": ..., "critical_path": ...}``. Executes nothing and starts no Python. When the cache
    of ``python`` (same default as :func:`run`) knows the notebook, ``cache`` says whether a run
    would replay each cell (``"cached"``) or run it (``"would run"``, and ``reason`` why).

    A cell with a syntax error is not an exception: its ``diagnostics`` say where. Raises
    :class:`NbmemoError` when the notebook cannot be read or parsed.
    """
    return _native.plan(
        os.fspath(path), _fspath(python), sys.executable or None, _fspath(cache_dir)
    )


def _fspath(path: Optional[StrPath]) -> Optional[str]:
    return None if path is None else os.fspath(path)
