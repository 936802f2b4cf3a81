#!/usr/bin/env python3
"""A `--python` for nbmemo that profiles its workers with cProfile (a development tool).

    nbmemo run NB.py --python bench/profile_worker.py -j 1 --force
    python -m pstats target/bench/profiles/worker-<pid>.prof     # then: sort tottime / stats 20

Each worker writes target/bench/profiles/worker-<pid>.prof, rewritten after every cell it runs
(nbmemo kills its workers at the end of a run, so there is no clean exit to wait for). The
profile covers the whole worker: start-up, unpickling the inputs, the cell, finding shared
objects, pickling the results. The real interpreter is $PROFILE_PYTHON, else the project's
.venv. This leans on runner internals (result headers go through `json.dumps`; the runner
saves and restores `sys.setprofile`): adjust it when they change.
"""

import cProfile
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REAL = os.environ.get("PROFILE_PYTHON") or str(ROOT / ".venv" / "bin" / "python")

# Re-run this script under the real interpreter (comparing paths would not do: a venv's python
# is a symlink to the base interpreter, whose site-packages differ).
if not os.environ.pop("_PROFILE_WORKER_REEXEC", None):
    os.environ["_PROFILE_WORKER_REEXEC"] = "1"
    os.execv(REAL, [REAL, __file__, *sys.argv[1:]])

args = sys.argv[1:]
if "-c" not in args:
    sys.exit("profile_worker.py: expected nbmemo's worker command line (`-u -c <bootstrap>`)")
source = args[args.index("-c") + 1]
out_dir = ROOT / "target" / "bench" / "profiles"
out_dir.mkdir(parents=True, exist_ok=True)
out = out_dir / f"worker-{os.getpid()}.prof"
profile = cProfile.Profile()
real_dumps = json.dumps


def dumps(obj, *a, **k):
    text = real_dumps(obj, *a, **k)
    if isinstance(obj, dict) and obj.get("type") == "result":
        profile.disable()
        profile.dump_stats(f"{out}.tmp")
        os.replace(f"{out}.tmp", out)
        profile.enable()
    return text


json.dumps = dumps
# The runner restores the profile function after every cell: keep ours.
sys.getprofile = lambda: None
sys.setprofile = lambda function: None
sys.argv = ["-c"]
profile.enable()
exec(compile(source, "<bootstrap>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
