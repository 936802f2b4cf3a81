"""The ``nbmemo`` command: the Rust command line, run in this process.

The console script ``nbmemo`` (and ``python -m nbmemo``) calls :func:`main`. The workers'
interpreter is ``--python`` if given, else ``$VIRTUAL_ENV/bin/python``, else this interpreter
(``sys.executable``), where the plain ``nbmemo`` binary would take ``python3``.
"""

import sys


def main() -> None:
    """Run ``nbmemo`` with ``sys.argv`` and exit with its status."""
    from nbmemo import _native

    sys.exit(_native.main(["nbmemo", *sys.argv[1:]], sys.executable or None))


if __name__ == "__main__":
    main()
