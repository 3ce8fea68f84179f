"""Shared helpers of the flat-MIMO blocks: noise, correlation, normalization, water-filling, SVD.

All functions batch over leading dims and are differentiable where the math allows.
Random draws use the global torch RNG (as ``blocks/channels.py`` does), so the
engine's RNG checkpointing covers them.
"""
from __future__ import annotations

import math

import torch

from flowgraph.block import Param

#: guard used in divisions by energies / gains
EPS = 1e-12


def noise_var(snr_db: float) -> float:
    """N0 = 10^(-SNR/10): SNR = Es/N0 per receive antenna with Es = 1 (package docstring)."""
    return 10.0 ** (-float(snr_db) / 10.0)


def snr_param(doc: str = "SNR = Es/N0 per receive antenna in dB; N0 = 10^(-snr_db/10)") -> Param:
    return Param(float, 10.0, doc, runtime=True)


def complex_normal(shape, like: torch.Tensor, var: float = 1.0) -> torch.Tensor:
    """CN(0, var) samples with ``like``'s complex dtype and device: sqrt(var/2) (a + j b)."""
    real_dtype = like.real.dtype if like.is_complex() else like.dtype
    ab = torch.randn(*shape, 2, dtype=real_dtype, device=like.device)
    return torch.view_as_complex(ab) * math.sqrt(var / 2.0)


def herm(a: torch.Tensor) -> torch.Tensor:
    """Conjugate transpose of the last two dims."""
    return a.mH


def energy(a: torch.Tensor) -> torch.Tensor:
    return a.real ** 2 + a.imag ** 2


def exp_corr_sqrt(n: int, rho: float, dtype, device) -> torch.Tensor:
    """Hermitian square root R^(1/2) of the exponential correlation matrix R_ij = rho^|i-j|.

    (Loyka, "Channel capacity of MIMO architecture using the exponential correlation
    matrix", IEEE Commun. Lett. 2001.) R has unit diagonal, so correlated entries stay
    CN(0, 1). Computed by eigendecomposition, so rho = 1 (rank one) also works.
    """
    real = torch.float64
    idx = torch.arange(n, dtype=real, device=device)
    r = rho ** (idx[:, None] - idx[None, :]).abs()
    lam, q = torch.linalg.eigh(r)
    root = (q * lam.clamp_min(0).sqrt()) @ q.T
    return root.to(dtype)


def flatten_re(a: torch.Tensor, core: int = 2) -> tuple[torch.Tensor, tuple]:
    """Reshape (B, ..., m, n) to (B, R, m, n), R = prod(...); return it and the ``...`` shape."""
    mid = tuple(a.shape[1:a.dim() - core])
    return a.reshape(a.shape[0], -1, *a.shape[a.dim() - core:]), mid


def normalize_matrix(w: torch.Tensor) -> torch.Tensor:
    """Scale W (B, ..., Nt, K) per example so that mean over ``...`` of ||W||_F^2 = 1."""
    wf, _ = flatten_re(w)
    p = energy(wf).sum(dim=(-2, -1)).mean(dim=1)           # (B,)
    scale = p.clamp_min(EPS).rsqrt()
    return w * scale.reshape((-1,) + (1,) * (w.dim() - 1)).to(w.dtype)


def waterfill(g: torch.Tensor, total) -> torch.Tensor:
    """Water-filling over the last dim: maximize sum_i log(1 + p_i g_i) s.t. sum_i p_i = total.

    g (..., M) >= 0 are gains (SNR per unit power); total is a float or a tensor
    broadcastable to g.shape[:-1]. Returns p (..., M) >= 0 with p_i = (mu - 1/g_i)^+
    (Cover & Thomas, Elements of Information Theory, 2nd ed., eq. 9.74).
    Exact (sort-based, no iteration) and differentiable in g and total.
    """
    inv = 1.0 / g.clamp_min(EPS)
    inv_sorted, _ = torch.sort(inv, dim=-1)
    m = torch.arange(1, g.shape[-1] + 1, dtype=g.dtype, device=g.device)
    total = torch.as_tensor(total, dtype=g.dtype, device=g.device)
    mu_m = (total[..., None] + torch.cumsum(inv_sorted, dim=-1)) / m
    active = (mu_m > inv_sorted)                              # a prefix 1..m*
    m_star = active.sum(dim=-1, keepdim=True).clamp_min(1)   # >= 1 for total > 0
    mu = torch.gather(mu_m, -1, m_star - 1)
    return (mu - inv).clamp_min(0.0)


def svd_fixed(h: torch.Tensor):
    """Thin SVD H = U diag(S) V^H with a fixed phase gauge (batch over leading dims).

    Each right singular vector v_i is rotated so that its largest-magnitude entry is real
    positive, and u_i by the same phase, so U^H H V = diag(S) still holds. Precoder and
    combiner call this same function and therefore agree on the phases; the gauge fix
    also makes gradients through the SVD well defined.
    Shapes: h (..., Nr, Nt) -> U (..., Nr, S), S (..., S) real, V (..., Nt, S), S = min(Nr, Nt).
    """
    u, s, vh = torch.linalg.svd(h, full_matrices=False)
    v = herm(vh)
    idx = energy(v).argmax(dim=-2, keepdim=True)             # (..., 1, S)
    pivot = torch.gather(v, -2, idx)                         # (..., 1, S)
    phase = pivot.conj() / pivot.abs().clamp_min(EPS)
    return u * phase, s, v * phase
