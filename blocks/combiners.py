"""Receive combiners / equalizers.

Reference: Tse & Viswanath, "Fundamentals of Wireless Communication", 2005,
Sec. 8.3.3 (linear MMSE receiver; scalar case) and Sec. 3.1 (coherent detection with
known h); Kay, "Fundamentals of Statistical Signal Processing: Estimation Theory",
1993, eq. (12.6) (LMMSE estimator).
"""
from __future__ import annotations

import torch

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register

from .channels import noise_var


@register("combiner.mmse_scalar")
class MMSEScalar(Block):
    """Per-symbol (scalar) linear MMSE or zero-forcing equalization with known CSI.

    For y = h x + n, E|x|^2 = 1, n ~ CN(0, N0), N0 = 10^(-snr_db/10):
        mmse: x_hat = conj(h) y / (|h|^2 + N0)      (LMMSE, Kay eq. 12.6, scalar case)
        zf:   x_hat = conj(h) y / |h|^2 = y / h      (|h|^2 floored at 1e-12)
    MMSE shrinks deep-faded symbols towards 0 instead of amplifying their noise;
    at high SNR both coincide. Pair it with ``channel.rayleigh`` (whose ``h`` has y's shape).

    Shapes: y complex (B, ...), h complex (B, ...) same shape -> x complex (B, ...).
    """
    inputs = {"y": Port("complex", ("B", "..."), tag="symbols"),
              "h": Port("complex", ("B", "..."), tag="csi", doc="channel gain per element, y's shape")}
    outputs = {"x": Port("complex", ("B", "..."), tag="symbols", doc="equalized symbols")}
    params = {"snr_db": Param(float, 10.0, "SNR = Es/N0 in dB the receiver assumes (N0 = 10^(-snr_db/10))",
                              runtime=True),
              "mode": Param(str, "mmse", "mmse or zf (zero forcing; ablation)", choices=("mmse", "zf"))}

    def forward(self, y, h):
        if y.shape != h.shape:
            raise ValueError(f"combiner.mmse_scalar: y {tuple(y.shape)} and h {tuple(h.shape)} "
                             f"must have the same shape")
        g = h.real ** 2 + h.imag ** 2
        if self.p.mode == "mmse":
            den = g + noise_var(self.p.snr_db)
        else:
            den = g.clamp_min(1e-12)
        return {"x": torch.conj(h) * y / den}
