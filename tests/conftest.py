"""Shared fixtures. Tiny blocks for engine tests live in tests/engine_blocks.py."""
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_PREFERRED_BINDING", "PySide6")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))

import engine_blocks  # noqa: E402,F401  (registers testing.* blocks)
import torch  # noqa: E402

# Tests use small tensors: one intra-op thread avoids oversubscription (several torch and
# Sionna threads fighting over 2 cores made some tests 30x slower) and keeps timing stable.
torch.set_num_threads(1)


@pytest.fixture
def root():
    return ROOT


@pytest.fixture
def write_graph(tmp_path):
    """Write YAML text to a temp file and return its path."""
    def _write(text: str, name: str = "g.yaml"):
        p = tmp_path / name
        p.write_text(text)
        return p
    return _write


#: the CIFAR-10 training JPEGs in one tar (../shared/data/README.md): beside the repository in CI
#: (../shared/data), two levels up from a worktree under /work/wt on development machines
CIFAR_TAR_NAME = "cifar10-train-jpeg.tar"


def find_cifar_tar():
    for base in (ROOT.parent, ROOT.parent.parent):
        path = base / "shared" / "data" / CIFAR_TAR_NAME
        if path.is_file():
            return path
    return None


@pytest.fixture
def cifar_tar():
    path = find_cifar_tar()
    if path is None:
        pytest.skip(f"{CIFAR_TAR_NAME} is not on this machine (expected in ../shared/data beside the repository)")
    return path
