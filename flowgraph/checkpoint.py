"""Checkpoint files: written atomically (temp file + rename), read as weights only."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from .errors import SemflowError


def atomic_torch_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise SemflowError(f"{path}: no such checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise SemflowError(f"{path}: cannot load checkpoint: {type(exc).__name__}: {exc}") from None
