"""Exponential moving average of a train stage's weights (stage key ``ema: 0.999``).

After every optimizer step ``shadow = decay * shadow + (1 - decay) * weight`` for each
trainable parameter (seed 004's released models are such averages, ``model_ema``).
Buffers (batch-norm statistics) are not averaged. The shadow starts equal to the weights
at the stage start, is saved in checkpoints (so a resumed run averages exactly as an
uninterrupted one), is swapped in for validation, and replaces the weights at the end
of the stage.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch

from .errors import SemflowError


class EMA:
    def __init__(self, named_params: list[tuple[str, torch.nn.Parameter]], decay: float):
        self.decay = float(decay)
        self.names = [n for n, _ in named_params]
        # detached views share storage with the parameters: in-place optimizer updates show
        self.live = [p.detach() for _, p in named_params]
        self.shadow = [t.clone() for t in self.live]

    @torch.no_grad()
    def update(self) -> None:
        torch._foreach_lerp_(self.shadow, self.live, 1.0 - self.decay)

    @torch.no_grad()
    def copy_to_weights(self) -> None:
        torch._foreach_copy_(self.live, self.shadow)

    @contextmanager
    def applied(self):
        """The averaged weights in place for the duration (validation), then the trained ones."""
        with torch.no_grad():
            backup = [t.clone() for t in self.live]
            torch._foreach_copy_(self.live, self.shadow)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.live, backup)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "shadow": dict(zip(self.names, self.shadow))}

    def load_state_dict(self, state: dict) -> None:
        shadow = state.get("shadow") or {}
        if list(shadow) != self.names:
            raise SemflowError("checkpoint's EMA state covers other parameters than this stage trains "
                               "(was the graph or its trainable list changed?)")
        with torch.no_grad():
            for mine, saved in zip(self.shadow, shadow.values()):
                mine.copy_(saved)
