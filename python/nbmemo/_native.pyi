"""Type stubs of the extension module (see ``python/src/lib.rs``)."""

from typing import Any, Dict, List, Optional

__version__: str

class NbmemoError(Exception): ...

def main(argv: List[str], fallback_python: Optional[str] = None) -> int: ...
def run(
    path: str,
    jobs: Optional[int] = None,
    force: bool = False,
    timeout: Optional[float] = None,
    python: Optional[str] = None,
    fallback_python: Optional[str] = None,
    cache_dir: Optional[str] = None,
) -> Dict[str, Any]: ...
def plan(
    path: str,
    python: Optional[str] = None,
    fallback_python: Optional[str] = None,
    cache_dir: Optional[str] = None,
) -> Dict[str, Any]: ...
def is_notebook(path: str) -> bool: ...
