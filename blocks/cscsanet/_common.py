"""Shared params and helpers of the seed-002 (CSC-SA-Net) blocks: the hybrid array sizes,
the channel layout and the AWGN convention.

Channel layout (``channel.sparse_draw`` with ``model: seed002``): h (B, Nr, K*Nt, S, F),
user k's uplink channel H[k, q, n] (eq. 6) in columns k*Nt .. (k+1)*Nt-1; OFDM symbols
q = 0 .. L-1 carry the downlink CSI-RS (TDD reciprocity: the downlink channel is H^T) and
q = L .. L+Q-1 the uplink data.
"""
from __future__ import annotations

import math

import torch

from flowgraph.block import Param

from ..mimo._common import complex_normal, noise_var  # noqa: F401  (re-exported for the blocks)

#: users of the paper's system (UE 1 sends RGB, UE 2 thermal)
N_USERS = 2


_ARRAY = {
    "bs_antennas": Param(int, 64, "BS ULA antennas N_r (seed 002: 64)"),
    "bs_rf": Param(int, 2, "BS RF chains N_RF,r (seed 002: 2)"),
    "ue_antennas": Param(int, 8, "antennas per UE ULA N_t (seed 002: 8)"),
    "ue_rf": Param(int, 2, "RF chains per UE N_RF,t (seed 002: 2)"),
    "n_subcarriers": Param(int, 100, "subcarriers N_c (seed 002: 100)"),
}


def array_params(*names: str) -> dict:
    """The hybrid-array params (paper defaults) that several blocks declare with the same names."""
    return {n: _ARRAY[n] for n in (names or _ARRAY)}


def check_positive(where: str, p, names) -> None:
    for n in names:
        if p[n] < 1:
            raise ValueError(f"{where}: param '{n}' must be >= 1, got {p[n]}")


def user_channel(h: torch.Tensor, k: int, nt: int) -> torch.Tensor:
    """User k's uplink channel (B, Nr, Nt, S, F) out of the stacked (B, Nr, K*Nt, S, F)."""
    return h[:, :, k * nt:(k + 1) * nt]


def check_channel(where: str, h: torch.Tensor, nr: int, nt: int, f: int, min_symbols: int) -> None:
    if h.dim() != 5 or h.shape[1] != nr or h.shape[2] != N_USERS * nt or h.shape[4] != f \
            or h.shape[3] < min_symbols:
        raise ValueError(f"{where}: h {tuple(h.shape)} does not fit (B, Nr={nr}, K*Nt={N_USERS * nt}, "
                         f"S>={min_symbols}, F={f})")


def awgn(shape, like: torch.Tensor, snr_db: float) -> torch.Tensor:
    """CN(0, N0) noise, N0 = 10^(-snr_db/10) (docs/conventions.md)."""
    return complex_normal(shape, like, noise_var(snr_db))


def mean_power(x: torch.Tensor, dims) -> torch.Tensor:
    return (x.real ** 2 + x.imag ** 2).mean(dim=dims, keepdim=True)


def normalize_power(x: torch.Tensor, dims, power: float = 1.0) -> torch.Tensor:
    """Scale each example so that its mean |x|^2 over ``dims`` is ``power``."""
    return x * torch.rsqrt(mean_power(x, dims).clamp_min(1e-20)) * math.sqrt(power)
