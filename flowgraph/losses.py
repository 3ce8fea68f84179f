"""Loss expressions over ports: ``mse(dec.image, src.image) + 0.1 * ce(dec.logits, src.label)``.

Port references ``block.port`` are swapped for placeholder names before the restricted
evaluator sees the text, so the evaluator itself never allows attribute access.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import expr as E
from .errors import ExpressionError

_PORT_REF = re.compile(r"(?<![\w.$])([A-Za-z_][\w/]*)\.([A-Za-z_]\w*)(?![\w(])")


def _mse(a, b):
    return F.mse_loss(_real(a), _real(b))


def _l1(a, b):
    return F.l1_loss(_real(a), _real(b))


def _real(t):
    return torch.view_as_real(t) if torch.is_tensor(t) and t.is_complex() else t


def _ce(logits, labels):
    if logits.dim() > 2:    # (B, K, C) per user -> fold users into the batch
        logits = logits.reshape(-1, logits.shape[-1])
        labels = labels.reshape(-1)
    return F.cross_entropy(logits, labels.long())


def _msssim(a, b):
    """Mean MS-SSIM over the batch, as ``sink.msssim`` computes it (fewer scales when small)."""
    from .metrics import ms_ssim_per_image
    a, b = a.clamp(0, 1), b.clamp(0, 1)
    if a.dim() > 4:                 # (B, K, 3, H, W) per user -> fold users into the batch
        a, b = a.flatten(0, a.dim() - 4), b.flatten(0, b.dim() - 4)
    return ms_ssim_per_image(a, b).mean()


def _psnr(a, b):
    mse = ((a.clamp(0, 1) - b) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return (10 * torch.log10(1.0 / mse)).mean()


def _mean(x):
    return x.mean() if torch.is_tensor(x) else x


LOSS_FUNCTIONS = {
    "mse": _mse, "l1": _l1, "ce": _ce, "cross_entropy": _ce, "msssim": _msssim, "psnr": _psnr,
    "mean": _mean, "bce": lambda p, t: F.binary_cross_entropy(p, t.float()),
}


@dataclass
class CompiledLoss:
    text: str
    code: str                   # text with port references replaced by placeholders
    ports: list                 # [(block, port)] in placeholder order

    def __call__(self, values: dict, variables: dict | None = None):
        env = dict(variables or {})
        for i, (b, p) in enumerate(self.ports):
            env[f"port_ref_{i}"] = values[f"{b}.{p}"]
        return E.evaluate(self.code, env, LOSS_FUNCTIONS)


def compile_loss(text: str) -> CompiledLoss:
    ports: list = []

    def sub(m):
        ref = (m.group(1), m.group(2))
        if ref not in ports:
            ports.append(ref)
        return f"port_ref_{ports.index(ref)}"

    code = _PORT_REF.sub(sub, text.strip())
    if "." in re.sub(r"\d+\.\d*|\.\d+", "", code):
        raise ExpressionError(f"cannot read {text!r}: write ports as block.port")
    E.names_used(code)  # parses: raises ExpressionError on forbidden constructs
    return CompiledLoss(text, code, ports)
