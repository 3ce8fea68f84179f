"""``semflow`` with the engine tests' blocks registered, for tests that launch torchrun.

``python tests/dist_entry.py run GRAPH --nproc 2 ...`` behaves as ``semflow run`` and makes
``--nproc`` relaunch this same script under torchrun (so each rank knows ``testing.*``)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import engine_blocks  # noqa: E402,F401  (registers testing.* blocks)
import torch  # noqa: E402

from flowgraph import cli  # noqa: E402

if __name__ == "__main__":
    torch.set_num_threads(1)
    cli.TORCHRUN_ENTRY = [str(Path(__file__).resolve())]
    sys.exit(cli.main())
