"""Device audit without a GPU: which blocks create tensors without ``device=`` while running.

On CUDA, a tensor made by ``torch.zeros(n)`` inside a block's ``forward`` lives on the CPU and
breaks the first operation that meets a CUDA input. :func:`audit_frame` runs frames of a
built scheduler under a ``TorchFunctionMode`` that records every tensor factory called
inside a non-source block's forward without an explicit ``device`` (and not given another
tensor's device through ``*_like``), with the block and the file:line that called it.
Sources are exempt: they draw on the CPU with their seeded generator and move the batch to
``self.device``; build-time tensors are exempt: ``Scheduler.to(device)`` moves parameters
and buffers. A factory result that only ever meets scalars (``torch.tensor(3.0)`` as a
0-dim constant) still counts: keep blocks free of the pattern.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

#: factories that place their result on the default (CPU) device unless told otherwise
FACTORIES = {torch.zeros, torch.ones, torch.full, torch.empty, torch.arange, torch.linspace,
             torch.logspace, torch.eye, torch.rand, torch.randn, torch.randint, torch.randperm,
             torch.tensor, torch.as_tensor}
REPO_DIR = Path(__file__).resolve().parents[1]


class _FactoryLog(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.block: str | None = None
        self.found: dict = {}          # (block, func, where) -> count

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.block is not None and func in FACTORIES and kwargs.get("device") is None:
            # torch.tensor(t) / as_tensor(t) of a tensor keeps t's device: not a problem
            if not (func in (torch.tensor, torch.as_tensor) and args and torch.is_tensor(args[0])):
                key = (self.block, func.__name__, _caller())
                self.found[key] = self.found.get(key, 0) + 1
        return func(*args, **kwargs)


def _caller() -> str:
    """file:line of the innermost frame outside torch and this module: relative to the
    repository (``blocks/classical/jpeg.py:314``) or to site-packages (``pytorch_msssim/ssim.py:19``)."""
    f = sys._getframe(2)
    while f is not None:
        path = Path(f.f_code.co_filename).resolve()
        if "torch" not in path.parts and path != Path(__file__).resolve():
            parts = path.parts
            if "site-packages" in parts:
                rel = "/".join(parts[parts.index("site-packages") + 1:])
            else:
                try:
                    rel = path.relative_to(REPO_DIR).as_posix()
                except ValueError:
                    rel = path.name
            return f"{rel}:{f.f_lineno}"
        f = f.f_back
    return "?"


def audit_frame(scheduler, frames: int = 1, train: bool = True) -> dict:
    """Run ``frames`` frames (training mode with gradients when ``train``, else eval mode)
    and return {(block name, factory, file:line): calls} for device-less factories."""
    from .block import Source
    log = _FactoryLog()
    originals = {}
    for name, module in scheduler.modules_by_name().items():
        if isinstance(module, Source):
            continue
        originals[name] = module.forward

        def wrapped(*a, _name=name, _fwd=module.forward, **k):
            outer, log.block = log.block, _name
            try:
                return _fwd(*a, **k)
            finally:
                log.block = outer
        module.forward = wrapped
    try:
        scheduler.train(train)
        with log, torch.set_grad_enabled(train):
            for _ in range(frames):
                scheduler()
    finally:
        for name, fwd in originals.items():
            del scheduler.block(name).forward          # the instance attribute; the class method again
    return log.found
