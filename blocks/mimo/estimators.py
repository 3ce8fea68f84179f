"""Flat-MIMO channel estimators: LS, LMMSE, genie (perfect) and a noisy-CSI stand-in."""
from __future__ import annotations

import torch

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register

from ._common import complex_normal, energy, exp_corr_sqrt, herm, noise_var, snr_param

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


def kron_covariance(nr: int, nt: int, rho_rx: float, rho_tx: float, dtype, device) -> torch.Tensor:
    """Covariance of vec(H) (columns stacked: entry (i, j) at i + Nr j) for the Kronecker model
    H = R_rx^(1/2) G R_tx^(1/2) of ``channel.mimo_flat``: R_tx^T (x) R_rx, exponential R (Loyka 2001)."""
    r_rx, r_tx = (exp_corr_sqrt(n, rho, torch.complex128, device) for n, rho in ((nr, rho_rx), (nt, rho_tx)))
    return torch.kron((r_tx @ r_tx).T.contiguous(), r_rx @ r_rx).to(dtype)


def lmmse_correlated(y: torch.Tensor, tau: torch.Tensor, r_h: torch.Tensor, n0: float) -> torch.Tensor:
    """LMMSE estimate of H from Y = H tau + N under a prior vec(H) ~ CN(0, R_h) (Kay 1993, Thm. 12.1).

    vec(Y) = A vec(H) + vec(N) with A = tau^T (x) I_Nr, so
        vec(H_hat) = R_h A^H (A R_h A^H + N0 I)^{-1} vec(Y).
    y (B, Nr, Np), tau (B|1, Nt, Np), r_h (B|1, Nr Nt, Nr Nt) -> (B, Nr, Nt). R_h may be singular.
    """
    b, nr, np_ = y.shape
    nt = tau.shape[-2]
    tau = tau.to(y.dtype).expand(b, -1, -1)
    eye = torch.eye(nr, dtype=y.dtype, device=y.device)
    a = torch.einsum("bjp,ik->bpijk", tau, eye).reshape(b, np_ * nr, nt * nr)   # rows i + Nr p
    r = r_h.to(y.dtype).expand(b, -1, -1)
    ra = r @ herm(a)                                                            # R A^H
    gram = a @ ra + n0 * torch.eye(np_ * nr, dtype=y.dtype, device=y.device)
    vec_y = y.transpose(-2, -1).reshape(b, np_ * nr, 1)
    vec_h = ra @ torch.linalg.solve(gram, vec_y)                                # (B, Nt Nr, 1)
    return vec_h.reshape(b, nt, nr).transpose(-2, -1)


@register("estimator.lmmse")
class LMMSE(Block):
    """Linear MMSE MIMO channel estimate (seed 000 eq. 9 model; Kay 1993, Ch. 12).

    With tau_hat = H tau + n, n ~ CN(0, N0) and N0 = 10^(-snr_db/10) what the receiver
    assumes:

    * ``covariance: iid`` (default), vec(H) ~ CN(0, I):
          h_LMMSE = tau_hat tau^H (tau tau^H + N0 I)^{-1}.
      For orthogonal pilots tau tau^H = c I: NMSE = N0 / (c + N0) < N0 / c (LS), the gap
      being largest at low SNR.
    * ``covariance: kronecker``: the exponential Kronecker prior of ``channel.mimo_flat``
      (R_h = R_tx^T (x) R_rx with [R]_ij = rho^|i-j|, ``rho_tx``, ``rho_rx``).
    * the optional input ``r_h`` (any R_h, e.g. a sample covariance) overrides the param.
    With a prior R_h, vec(H_hat) = R_h A^H (A R_h A^H + N0 I)^{-1} vec(tau_hat), A = tau^T (x) I
    (vec stacks columns: entry (i, j) of H is element i + Nr j). A prior that matches the
    channel's correlation lowers the NMSE below both LS and the i.i.d. LMMSE (the prior
    mean-square error is the minimum among linear estimators); a wrong prior can lose.

    Shapes: y_pilots complex (B, Nr, Np), pilots complex (B, Nt, Np), r_h complex
            (B, Nr Nt, Nr Nt) optional (batch B or 1) -> h_hat complex (B, Nr, Nt).
    """
    inputs = {**_PILOT_INPUTS,
              "r_h": Port("complex", ("B", "N", "N"), tag="csi", optional=True,
                          doc="covariance of vec(H), N = Nr Nt, columns stacked (batch B or 1); "
                              "overrides the covariance param")}
    outputs = dict(_H_HAT)
    params = {"snr_db": snr_param("SNR (dB) the estimator assumes: N0 = 10^(-snr_db/10)"),
              "covariance": Param(str, "iid", "prior of H when r_h is unconnected: iid (CN(0, I)) or "
                                              "kronecker (exponential, rho_tx / rho_rx)",
                                  choices=("iid", "kronecker")),
              "rho_tx": Param(float, 0.0, "kronecker prior: transmit correlation coefficient in [0, 1]"),
              "rho_rx": Param(float, 0.0, "kronecker prior: receive correlation coefficient in [0, 1]")}

    def __init__(self, **params):
        super().__init__(**params)
        for k in ("rho_tx", "rho_rx"):
            if not 0.0 <= self.p[k] <= 1.0:
                raise ValueError(f"estimator.lmmse: {k} must lie in [0, 1], got {self.p[k]}")

    def forward(self, y_pilots, pilots, r_h=None):
        _check("estimator.lmmse", y_pilots, pilots)
        n0 = noise_var(self.p.snr_db)
        nr, nt = y_pilots.shape[-2], pilots.shape[-2]
        if r_h is None and self.p.covariance == "iid":
            return {"h_hat": _solve_right(y_pilots, pilots, n0)}
        if r_h is None:
            r_h = kron_covariance(nr, nt, self.p.rho_rx, self.p.rho_tx, y_pilots.dtype,
                                  y_pilots.device).unsqueeze(0)
        elif r_h.dim() != 3 or tuple(r_h.shape[-2:]) != (nr * nt, nr * nt):
            raise ValueError(f"estimator.lmmse: r_h must be (B, {nr * nt}, {nr * nt}) for Nr={nr}, Nt={nt}, "
                             f"got {tuple(r_h.shape)}")
        return {"h_hat": lmmse_correlated(y_pilots, pilots, r_h, n0)}


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
