"""MIMO metric sinks: channel-estimation NMSE, log-det spectral efficiency, MU-MISO sum rate."""
from __future__ import annotations

import math

import torch

from flowgraph.block import Port, Sink
from flowgraph.registry import register

from ._common import EPS, energy, herm, noise_var, snr_param


@register("sink.nmse")
class NMSE(Sink):
    """Channel-estimation NMSE per example: ||h_hat - h||^2 / ||h||^2 (linear, not dB).

    The NMSE metric of seed 001 Table I and of seed 000's estimator pretraining (Alg. 1).
    The sum runs over all of one example's entries (antennas, subcarriers, ...). Report
    10 log10 of the mean for dB. Note that the mean of per-example ratios exceeds the
    ratio of means (for LS on i.i.d. CN(0,1) H with n = Nr Nt entries by n / (n - 1)).

    Shapes: h_hat complex (B, ...), h complex (B, ...) same shape -> value real (B,).
    """
    inputs = {"h_hat": Port("complex", ("B", "..."), tag="csi", doc="estimate"),
              "h": Port("complex", ("B", "..."), tag="csi", doc="true channel")}
    higher_is_better = False
    unit = ""
    scale = "log"

    def forward(self, h_hat, h):
        if h_hat.shape != h.shape:
            raise ValueError(f"sink.nmse: h_hat {tuple(h_hat.shape)} and h {tuple(h.shape)} differ")
        b = h.shape[0]
        err = energy(h_hat - h).reshape(b, -1).sum(1)
        ref = energy(h).reshape(b, -1).sum(1)
        return {"value": err / ref.clamp_min(EPS)}


@register("sink.spectral_efficiency")
class SpectralEfficiency(Sink):
    """Log-det spectral efficiency per example (seed 002 CSC-SA-Net, eq. 30).

        eta = log2 det(I + (1/N0) H W W^H H^H)   [bit/s/Hz],  N0 = 10^(-snr_db/10),
    averaged over the ``...`` resource elements. W is the precoder (B, ..., Nt, S) with the
    package's unit-power normalization (P_t of eq. 30 is inside W); unconnected, W W^H = I/Nt
    (equal power on all antennas: the open-loop MIMO capacity). With an optimal receiver
    (MMSE-SIC) this rate is achievable; seed 002 also applies analog combiners W_RF, which
    can be folded into H. Use the TRUE channel for h and a precoder designed from the
    estimate to measure the effect of CSI errors. Differentiable (SE-pretraining loss).

    Shapes: h complex (B, ..., Nr, Nt), w complex (B, ..., Nt, S) optional -> value real (B,).
    """
    inputs = {"h": Port("complex", ("B", "...", "Nr", "Nt"), tag="csi", doc="true channel"),
              "w": Port("complex", ("B", "...", "Nt", "S"), tag="csi", optional=True,
                        doc="precoding matrix (unit total power)")}
    params = {"snr_db": snr_param()}
    unit = "bit/s/Hz"
    higher_is_better = True

    def forward(self, h, w=None):
        n0 = noise_var(self.p.snr_db)
        if w is None:
            cov = h @ herm(h) / h.shape[-1]
        else:
            hw = h @ w.to(h.dtype)
            cov = hw @ herm(hw)
        eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
        m = eye + cov / n0
        m = 0.5 * (m + herm(m))
        logdet = 2.0 * torch.log(torch.diagonal(torch.linalg.cholesky(m), dim1=-2, dim2=-1).real).sum(-1)
        return {"value": logdet.reshape(h.shape[0], -1).mean(1) / math.log(2.0)}


@register("sink.sum_rate")
class SumRate(Sink):
    """MU-MISO downlink sum rate per example (seed 001 eq. 10; seed 003 eq. 2 signal model).

        SINR_k = |h_k w_k|^2 / (sum_{j != k} |h_k w_j|^2 + N0),
        value = mean over the ``...`` REs of sum_k log2(1 + SINR_k)   [bit/s/Hz],
    N0 = 10^(-snr_db/10), W normalized by the precoders (mean_RE ||W||_F^2 = 1). Treats
    interference as noise with single-user decoding. Feed the TRUE channel h and the
    precoder's ``w`` (designed from an estimate) to measure imperfect-CSI losses.
    Differentiable (a negative sum-rate loss).

    Shapes: h complex (B, ..., K, Nt), w complex (B, ..., Nt, K) -> value real (B,).
    """
    inputs = {"h": Port("complex", ("B", "...", "K", "Nt"), tag="csi", doc="true channel, rows = users"),
              "w": Port("complex", ("B", "...", "Nt", "K"), tag="csi", doc="precoding matrix")}
    params = {"snr_db": snr_param()}
    unit = "bit/s/Hz"
    higher_is_better = True

    def forward(self, h, w):
        rates = per_user_rates(h, w.to(h.dtype), noise_var(self.p.snr_db))   # (B, ..., K)
        return {"value": rates.sum(-1).reshape(h.shape[0], -1).mean(1)}


def per_user_rates(h: torch.Tensor, w: torch.Tensor, n0: float) -> torch.Tensor:
    """log2(1 + SINR_k) for H (..., K, Nt), W (..., Nt, K) -> (..., K)."""
    g = energy(h @ w)                                          # |h_k w_j|^2
    sig = torch.diagonal(g, dim1=-2, dim2=-1)
    interf = g.sum(-1) - sig
    return torch.log2(1.0 + sig / (interf + n0))
