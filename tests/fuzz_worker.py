"""Validates graph files for tests/fuzz_graphs.py: one JSON request per line on stdin
({"path": ...}), one JSON reply per line on stdout ({"rc", "out", "err", "traceback"}).

It runs `semflow validate PATH` in-process (the engine found on PYTHONPATH, so the same
worker measures any checkout), under an address-space limit so that a case cannot take
the machine's memory; anything that escapes `main()` is reported as a traceback.
"""
import contextlib
import io
import json
import os
import resource
import sys
import traceback

limit = int(os.environ.get("FUZZ_MEMORY_LIMIT", "0"))
if limit:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

import torch  # noqa: E402

torch.set_num_threads(1)
from flowgraph.cli import main  # noqa: E402

proto = sys.stdout
print("ready", file=proto, flush=True)
for line in sys.stdin:
    path = json.loads(line)["path"]
    out, err = io.StringIO(), io.StringIO()
    reply = {"rc": None, "traceback": None}
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            reply["rc"] = main(["validate", path])
        except SystemExit as exc:
            reply["rc"] = exc.code
        except BaseException:  # noqa: BLE001 - the point is to see what escapes
            reply["traceback"] = traceback.format_exc()[-4000:]
    # at most the last 200 lines of each (a case may print many problems)
    reply["out"], reply["err"] = ("\n".join(b.getvalue().splitlines()[-200:]) for b in (out, err))
    print(json.dumps(reply), file=proto, flush=True)
