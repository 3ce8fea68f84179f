"""TensorBoard logging as a tap subscriber (``semflow run ... --tensorboard``).

It subscribes to the engine taps a run already publishes: ``train.step`` (loss, lr, metric
means per log step) becomes scalars ``train/<name>``; ``eval.point`` rows become scalars
``eval/<metric>`` indexed by the point's position with the sweep values in the tag; and,
at log steps, the first examples of an image sink's target and reconstruction ports
become an image grid ``images/<port>`` (original row above reconstruction row). Nothing
here touches a block. Needs the optional extra ``tensorboard`` (``pip install -e '.[tensorboard]'``).
"""
from __future__ import annotations

from pathlib import Path

from .errors import SemflowError
from .report import to_image_batch

#: images logged per grid
GRID_IMAGES = 8


def require_tensorboard():
    """The SummaryWriter class, or a one-line error naming the extra to install."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise SemflowError(f"--tensorboard needs the tensorboard package: pip install -e '.[tensorboard]' "
                           f"({type(exc).__name__}: {exc})") from None
    return SummaryWriter


class TensorBoardLogger:
    """Writes a run's taps to ``logdir`` (default RUN/tensorboard). ``writer`` may be any
    object with add_scalar/add_image/flush/close (tests pass a fake)."""

    def __init__(self, runner, logdir: str | Path | None = None, writer=None):
        self.logdir = Path(logdir) if logdir else runner.out / "tensorboard"
        self.writer = writer if writer is not None else require_tensorboard()(log_dir=str(self.logdir))
        self.hub = runner.taps
        self._step = 0
        self._offset, self._stage, self._last = 0, None, 0
        self._images: dict = {}
        self._subs = [self.hub.subscribe("train.step", self._on_step, min_interval=0.0),
                      self.hub.subscribe("eval.point", self._on_point, min_interval=0.0)]
        from .evaluation import default_image_ports
        self.image_ports = default_image_ports(runner.graph)
        for p in self.image_ports:   # at most one delivery per 5 s: a grid costs a copy of the batch
            self._subs.append(self.hub.subscribe(p, self._on_image, min_interval=5.0))

    def _global_step(self, row) -> int:
        """Steps counted over all stages (each stage's steps restart at 1)."""
        if row.get("stage") != self._stage:
            self._offset += self._last
            self._stage = row.get("stage")
        self._last = int(row["step"])
        return self._offset + self._last

    def _on_step(self, _name, row, _info):
        self._step = self._global_step(row)
        for k, v in row.items():
            if k not in ("stage", "step") and isinstance(v, (int, float)) and not isinstance(v, bool):
                self.writer.add_scalar(f"train/{k}", float(v), self._step)
        self._flush_images()

    def _on_point(self, _name, row, info):
        point = info.get("point") or {}
        tag = ",".join(f"{k}={v}" for k, v in point.items())
        for k, v in row.items():
            if k in point or k in ("n", "passes") or k.endswith(("_std", "_ci95", "_lo", "_hi")):
                continue
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                self.writer.add_scalar(f"eval/{k}" + (f"/{tag}" if tag else ""), float(v), self._step)

    def _on_image(self, name, value, info):
        if info.get("stage") == "eval":
            return
        try:
            self._images[name] = to_image_batch(value)[:GRID_IMAGES]
        except ValueError:
            return

    def _flush_images(self):
        if len(self._images) < len(self.image_ports) or not self._images:
            return
        import torch
        rows = [self._images[p] for p in self.image_ports]
        n = min(r.shape[0] for r in rows)
        grid = torch.cat([torch.cat(list(r[:n]), dim=2) for r in rows], dim=1)   # (C, rows*H, n*W)
        if grid.shape[0] == 1:
            grid = grid.expand(3, -1, -1)
        self.writer.add_image("images/" + " vs ".join(self.image_ports), grid[:3], self._step)
        self._images.clear()

    def close(self):
        for s in self._subs:
            s.close()
        self.writer.flush()
        self.writer.close()
