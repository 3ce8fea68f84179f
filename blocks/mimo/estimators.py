"""Flat-MIMO channel estimators: LS, LMMSE, genie (perfect) and a noisy-CSI stand-in."""
from __future__ import annotations

import torch

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register

from ._common import complex_normal, energy, herm, noise_var, snr_param

_PILOT_INPUTS = {
    "y_pilots": Port("complex", ("B", "Nr", "Np"), tag="symbols", doc="received pilots tau_hat = H tau + n"),
    "pilots": Port("complex", ("B", "Nt", "Np"), tag="symbols", doc="transmitted pilots tau (batch B or 1)"),
}
_H_HAT = {"h_hat": Port("complex", ("B", "Nr", "Nt"), tag="csi", doc="channel estimate")}


def _solve_right(y: torch.Tensor, tau: torch.Tensor, reg: float) -> torch.Tensor:
    """Y tau^H (tau tau^H + reg I)^{-1}, batched; (B, Nr, Np), (B|1, Nt, Np) -> (B, Nr, Nt)."""
    tau = tau.to(y.dtype)
    gram = tau @ herm(tau)                                            # (B, Nt, Nt) Hermitian
    if reg:
        gram = gram + reg * torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    # X = Y tau^H A^{-1}  <=>  A X^H = tau Y^H  (A Hermitian)
    return herm(torch.linalg.solve(gram, tau @ herm(y)))


def _check(where, y_pilots, pilots):
    if y_pilots.shape[-1] == 0:
        raise ValueError(f"{where}: y_pilots is empty -- connect pilots to channel.mimo_flat.pilots")
    if pilots.shape[-1] != y_pilots.shape[-1]:
        raise ValueError(f"{where}: pilots have Np={pilots.shape[-1]}, y_pilots Np={y_pilots.shape[-1]}")
    if pilots.shape[-1] < pilots.shape[-2]:
        raise ValueError(f"{where}: Np={pilots.shape[-1]} < Nt={pilots.shape[-2]}: tau tau^H is singular")


@register("estimator.ls")
class LS(Block):
    """Least-squares MIMO channel estimate (seed 000 LCFSC, eqs. 9-10).

    h_LS = tau_hat tau^{-1} for square tau (eq. 10); for Np > Nt the right pseudo-inverse
    h_LS = tau_hat tau^H (tau tau^H)^{-1}. For orthogonal pilots tau tau^H = c I
    (c = power Np / Nt for csirs.pilots) the error has i.i.d. CN(0, N0/c) entries, so
    NMSE = N0 / c = Nt N0 / (power Np) (checked in tests/test_mimo_estimators.py).
    Differentiable in both inputs (a learnable tau gets a gradient).

    Shapes: y_pilots complex (B, Nr, Np), pilots complex (B, Nt, Np) -> h_hat complex (B, Nr, Nt).
    """
    inputs = dict(_PILOT_INPUTS)
    outputs = dict(_H_HAT)

    def forward(self, y_pilots, pilots):
        _check("estimator.ls", y_pilots, pilots)
        return {"h_hat": _solve_right(y_pilots, pilots, 0.0)}


@register("estimator.lmmse")
class LMMSE(Block):
    """Linear MMSE MIMO channel estimate for an i.i.d. CN(0, 1) channel (seed 000 eq. 9 model).

    With tau_hat = H tau + n, vec(H) ~ CN(0, I) and n ~ CN(0, N0):
        h_LMMSE = tau_hat tau^H (tau tau^H + N0 I)^{-1}
    (the LMMSE estimator of the Bayesian linear model, Kay 1993, Ch. 12).
    For orthogonal pilots tau tau^H = c I: NMSE = N0 / (c + N0) < N0 / c (LS), the gap
    being largest at low SNR. The prior assumes i.i.d. unit-variance entries (no Kronecker
    correlation); N0 = 10^(-snr_db/10) is what the receiver assumes.

    Shapes: y_pilots complex (B, Nr, Np), pilots complex (B, Nt, Np) -> h_hat complex (B, Nr, Nt).
    """
    inputs = dict(_PILOT_INPUTS)
    outputs = dict(_H_HAT)
    params = {"snr_db": snr_param("SNR (dB) the estimator assumes: N0 = 10^(-snr_db/10)")}

    def forward(self, y_pilots, pilots):
        _check("estimator.lmmse", y_pilots, pilots)
        return {"h_hat": _solve_right(y_pilots, pilots, noise_var(self.p.snr_db))}


@register("estimator.perfect")
class Perfect(Block):
    """Genie channel estimate: h_hat = h (perfect CSI; the upper-bound baseline of seeds 000-003).

    Shapes: h complex (B, ...) -> h_hat complex (B, ...), same tensor.
    """
    inputs = {"h": Port("complex", ("B", "..."), tag="csi", doc="true channel")}
    outputs = {"h_hat": Port("complex", ("B", "..."), tag="csi")}

    def forward(self, h):
        return {"h_hat": h}


@register("estimator.noisy_csi")
class NoisyCSI(Block):
    """True channel plus Gaussian error at a given NMSE (seed 001 JSCBF, eq. 13 and Table I).

    h_hat = h + e,  e ~ CN(0, nmse * E|h|^2) i.i.d. per entry, nmse = 10^(nmse_db/10), with
    E|h|^2 the mean entry energy of each example's h (detached), so E||h_hat - h||^2 /
    ||h||^2 = nmse per example. Stands in for a named estimator's accuracy, e.g. seed 001's
    GMMV-LAMP at 20 dB SNR: NMSE 0.205, 0.063, 0.020, 0.011, 0.006 for 4, 8, 16, 32, 64
    pilot OFDM symbols (-6.9, -12.0, -17.0, -19.6, -22.2 dB). The error is independent of
    h, as seed 001 assumes for its robust WMMSE (``precoder.wmmse``'s sigma_e2 = nmse for
    CN(0, 1) channels).

    Shapes: h complex (B, ...) -> h_hat complex (B, ...).
    """
    inputs = {"h": Port("complex", ("B", "..."), tag="csi", doc="true channel")}
    outputs = {"h_hat": Port("complex", ("B", "..."), tag="csi")}
    params = {"nmse_db": Param(float, -20.0, "estimation NMSE in dB", runtime=True)}

    def forward(self, h):
        dims = tuple(range(1, h.dim()))
        p = energy(h.detach()).mean(dim=dims, keepdim=True) if dims else energy(h.detach())
        var = 10.0 ** (self.p.nmse_db / 10.0)
        e = complex_normal(h.shape, h, 1.0).to(h.dtype) * torch.sqrt(var * p).to(h.dtype)
        return {"h_hat": h + e}
