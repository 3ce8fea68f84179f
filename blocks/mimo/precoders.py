"""Linear precoders for the MU-MISO / SU-MIMO downlink: ZF, RZF, MRT, SVD, WMMSE.

Common contract (DESIGN.md power convention, see blocks/mimo/__init__.py):

    h (B, ..., K, Nt): the channel matrix H whose row k is user k's channel h_k
                       (y_k = h_k x + n_k, seed 003 eq. 1); for single-user MIMO pass
                       the (B, Nr, Nt) matrix, K = Nr streams.
    s (B, ..., K, T):  one unit-energy symbol stream per user (optional: unconnected,
                       x is an empty (B, ..., Nt, 0) tensor and only w is produced).
    w (B, ..., Nt, K): precoding matrix W, normalized per example so that the mean over
                       the ``...`` resource elements of ||W||_F^2 is 1.
    x (B, ..., Nt, T): x = W s, so E||x_t||^2 = 1 per symbol time for i.i.d. unit-energy
                       streams. ``normalize: signal`` rescales x (and w with it) per example
                       to exactly mean_(RE, t) ||x_t||^2 = 1 instead.

``...`` is any number of resource-element dims (subcarriers, OFDM symbols) over which the
power budget is shared; flat MIMO has none.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register

from ._common import (EPS, energy, flatten_re, herm, noise_var, normalize_matrix, snr_param, svd_fixed,
                      waterfill)


def rzf_matrix(h: torch.Tensor, reg) -> torch.Tensor:
    """W = H^H (H H^H + reg I)^{-1}; H (..., K, Nt) -> W (..., Nt, K). reg = 0 gives ZF (K <= Nt)."""
    k = h.shape[-2]
    eye = torch.eye(k, dtype=h.dtype, device=h.device)
    a = h @ herm(h) + reg * eye
    return herm(torch.linalg.solve(a, h))   # A Hermitian: (A^{-1} H)^H = H^H A^{-1}


def wmmse_beamformer(hr: torch.Tensor, c: torch.Tensor, g: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Eq. 26 of seed 001 (Deep JSCBF) solved in K x K form (push-through identity).

    With H's rows h_m (hr, (..., K, Nt)), weights c_m (= lambda_m |e_m|^2 in eq. 26), the
    right-hand factors g_k (= lambda_k e_k^*) and the per-user regularisers beta_k
    (= N0/p sum_m c_m + sigma_e^2 (sum_m c_m - c_k) when R_e = sigma_e^2 I):

        f_k = (beta_k I_Nt + sum_m c_m h_m^H h_m)^{-1} g_k h_k^H
            = H^H (beta_k I_K + diag(c) H H^H)^{-1} u_k g_k,

    u_k the k-th unit vector: K solves of size K x K per resource element instead of K of
    size Nt x Nt ((Nt/K)^3 fewer flops). c and g may be complex (the authors' notebook
    variant); the identity holds for any c as long as the matrices are invertible.
    Shapes: hr (..., K, Nt), c (..., K), g (..., K), beta (..., K) -> F (..., Nt, K).
    """
    k = hr.shape[-2]
    dt = hr.dtype
    eye = torch.eye(k, dtype=dt, device=hr.device)
    gram = hr @ herm(hr)                                                    # (..., K, K)
    m = beta.to(dt)[..., :, None, None] * eye + (c.to(dt)[..., :, None] * gram)[..., None, :, :]
    rhs = (eye * g.to(dt)[..., :, None])[..., None]                         # (..., K, K, 1): u_k g_k
    z = torch.linalg.solve(m, rhs)[..., 0]                                  # (..., K, K): row k = z_k
    return herm(hr) @ z.transpose(-2, -1)


class _Precoder(Block):
    inputs = {"s": Port("complex", ("B", "...", "K", "T"), tag="symbols", optional=True,
                        doc="unit-energy symbol stream per user/stream"),
              "h": Port("complex", ("B", "...", "K", "Nt"), tag="csi", doc="channel (estimate), rows = users")}
    outputs = {"x": Port("complex", ("B", "...", "Nt", "T"), tag="symbols", doc="precoded signal x = W s"),
               "w": Port("complex", ("B", "...", "Nt", "K"), tag="csi", doc="precoding matrix W")}
    _NORMALIZE = Param(str, "matrix",
                       "matrix: mean_RE ||W||_F^2 = 1; signal: mean ||x_t||^2 = 1 exactly",
                       choices=("matrix", "signal"))

    def matrix(self, h: torch.Tensor) -> torch.Tensor:
        """Unnormalized precoding matrix (B, ..., Nt, K)."""
        raise NotImplementedError

    def forward(self, h, s=None):
        if h.dim() < 3:
            raise ValueError(f"{self.type_id}: h must be (B, ..., K, Nt), got {tuple(h.shape)}")
        w = normalize_matrix(self.matrix(h))
        if s is None:
            x = h.new_zeros(*w.shape[:-1], 0)
        else:
            if s.shape[:-1] != w.shape[:-2] + (w.shape[-1],):
                raise ValueError(f"{self.type_id}: s {tuple(s.shape)} does not fit W {tuple(w.shape)} "
                                 f"(expects (B, ..., {w.shape[-1]}, T))")
            x = w @ s.to(w.dtype)
            if self.p.normalize == "signal" and x.shape[-1] > 0:
                p = energy(x).sum(dim=-2).reshape(x.shape[0], -1).mean(dim=1)    # (B,)
                scale = p.clamp_min(EPS).rsqrt().reshape((-1,) + (1,) * (x.dim() - 1)).to(x.dtype)
                x, w = x * scale, w * scale
        return {"x": x, "w": w}


@register("precoder.zf")
class ZF(_Precoder):
    """Zero-forcing precoder W = H^H (H H^H)^{-1}, normalized (seed 003 eq. 7 with alpha = 0).

    H W is diagonal (no inter-user interference); needs K <= Nt and a well-conditioned
    H H^H (seed 003 Sec. III reports NaN losses when training through ZF).
    Shapes: s (B, ..., K, T) optional, h (B, ..., K, Nt) -> x (B, ..., Nt, T), w (B, ..., Nt, K).
    """
    params = {"normalize": _Precoder._NORMALIZE}

    def matrix(self, h):
        if h.shape[-2] > h.shape[-1]:
            raise ValueError(f"precoder.zf: K={h.shape[-2]} users > Nt={h.shape[-1]} antennas")
        return rzf_matrix(h, 0.0)


@register("precoder.mrt")
class MRT(_Precoder):
    """Maximum-ratio transmission W = H^H, normalized (the alpha -> infinity limit of seed 003 eq. 7).

    Shapes: s (B, ..., K, T) optional, h (B, ..., K, Nt) -> x (B, ..., Nt, T), w (B, ..., Nt, K).
    """
    params = {"normalize": _Precoder._NORMALIZE}

    def matrix(self, h):
        return herm(h)


@register("precoder.rzf")
class RZF(_Precoder):
    """Regularized zero forcing with an optionally learnable factor (seed 003, eq. 7).

        V = H^H (H H^H + alpha sigma^2 I)^{-1},  sigma^2 = N0 = 10^(-snr_db/10),
    then normalized per example (mean_RE ||V||_F^2 = 1). alpha -> 0 gives ZF, alpha -> inf
    the MRT direction H^H. With this block's unit total power, alpha = K is the classic
    sum-rate-optimal choice for i.i.d. channels (Peel, Hochwald, Swindlehurst 2005, the
    reference [21] of seed 003). ``learnable_alpha: true`` makes alpha = softplus(a) a
    trainable nn.Parameter (positive by construction; initialized to ``alpha``), as in
    seed 003's hybrid learnable residual RZF (the residual network is not part of this block).

    Shapes: s (B, ..., K, T) optional, h (B, ..., K, Nt) -> x (B, ..., Nt, T), w (B, ..., Nt, K).
    """
    params = {"alpha": Param(float, 1.0, "regularization, times the noise variance N0 (>= 0)"),
              "learnable_alpha": Param(bool, False, "train alpha (softplus-parametrized, > 0)"),
              "snr_db": snr_param("SNR (dB) the transmitter assumes: sigma^2 = 10^(-snr_db/10)"),
              "normalize": _Precoder._NORMALIZE}

    def __init__(self, **params):
        super().__init__(**params)
        a = self.p.alpha
        if a < 0:
            raise ValueError(f"precoder.rzf: alpha must be >= 0, got {a}")
        if self.p.learnable_alpha:
            if a <= 0:
                raise ValueError("precoder.rzf: learnable_alpha needs alpha > 0")
            raw = a + math.log(-math.expm1(-a))       # softplus^{-1}(a)
            self.alpha_raw = nn.Parameter(torch.tensor(raw, dtype=torch.float32))

    def current_alpha(self) -> torch.Tensor | float:
        if self.p.learnable_alpha:
            return F.softplus(self.alpha_raw)
        return self.p.alpha

    def matrix(self, h):
        alpha = self.current_alpha()
        if isinstance(alpha, torch.Tensor):
            alpha = alpha.to(h.real.dtype)
        return rzf_matrix(h, alpha * noise_var(self.p.snr_db))


@register("precoder.svd")
class SVD(_Precoder):
    """Single-user eigen-beamforming: W = V_S diag(sqrt(p)) from H = U S V^H (water-filling).

    Sends S streams on the S strongest right singular vectors of H (Nr x Nt); with
    ``combiner.svd`` (U^H y) the channel becomes S parallel channels y_i = s_i sqrt(p_i)
    sigma_i + n_i (Telatar 1999; Tse & Viswanath 2005, Sec. 7.1.1). Power:
      waterfilling: p_i = (mu - N0/sigma_i^2)^+, sum over streams and the ``...`` resource
                    elements = number of REs (capacity-achieving, Cover & Thomas eq. 9.74)
      equal:        p_i = 1/S.
    The log-det rate it achieves is what seed 002 eq. 30 (``sink.spectral_efficiency``)
    measures. SVD phases are fixed by ``svd_fixed`` (shared with combiner.svd).

    Shapes: s complex (B, ..., S, T) optional, h complex (B, ..., Nr, Nt), S <= min(Nr, Nt)
            -> x (B, ..., Nt, T), w (B, ..., Nt, S). Without s, S = min(Nr, Nt).
    """
    inputs = {"s": Port("complex", ("B", "...", "S", "T"), tag="symbols", optional=True,
                        doc="S unit-energy streams"),
              "h": Port("complex", ("B", "...", "Nr", "Nt"), tag="csi", doc="single-user MIMO channel")}
    outputs = {"x": Port("complex", ("B", "...", "Nt", "T"), tag="symbols"),
               "w": Port("complex", ("B", "...", "Nt", "S"), tag="csi", doc="W = V_S diag(sqrt(p))")}
    params = {"power_allocation": Param(str, "waterfilling", "across streams and REs",
                                        choices=("waterfilling", "equal")),
              "snr_db": snr_param("SNR (dB) used by water-filling: N0 = 10^(-snr_db/10)"),
              "normalize": _Precoder._NORMALIZE}

    def forward(self, h, s=None):
        nstreams = min(h.shape[-2:]) if s is None else s.shape[-2]
        if nstreams > min(h.shape[-2:]):
            raise ValueError(f"precoder.svd: {nstreams} streams > min(Nr, Nt) = {min(h.shape[-2:])}")
        self._streams = nstreams
        return super().forward(h, s)

    def matrix(self, h):
        _, sv, v = svd_fixed(h)
        ns = self._streams
        v, sv = v[..., :ns], sv[..., :ns]
        if self.p.power_allocation == "equal":
            p = torch.full_like(sv, 1.0 / ns)
        else:
            g = sv ** 2 / noise_var(self.p.snr_db)                 # (B, ..., S)
            gf = g.reshape(g.shape[0], -1)                         # all streams of all REs
            n_re = gf.shape[1] // ns
            p = waterfill(gf, float(n_re)).reshape(g.shape)
        return v * p.sqrt().to(v.dtype).unsqueeze(-2)


@register("precoder.wmmse")
class WMMSE(_Precoder):
    """WMMSE sum-rate precoder under imperfect CSI (seed 001 JSCBF, Algorithm 1, eqs. 10-26).

    Per resource element n (the ``...`` dims; flat MIMO has one) and with H_hat's row k the
    estimated channel of user k, the CSI error covariance R_e = sigma_e2 I (eq. 13) and
    N0 = 10^(-snr_db/10), iterate from the normalized ZF beamformer (MRT if K > Nt):
      3: p[n] by water-filling over the REs (only when there are several REs and
         ``power_allocation: waterfilling``): gains g[n] = mean_k |h_k f_k|^2 / N0 of the
         unit-norm beamformer of RE n, sum_n p[n] = number of REs (eq. 11).
      4: T_k = sum_m |h_k f_m|^2 + N0 + sum_{m != k} f_m^H R_e f_m           (eqs. 17-18)
         e_k = (h_k f_k)^* / T_k,  eps_k = 1 - |h_k f_k|^2 / T_k,  lambda_k = 1 / eps_k
                                                                        (eqs. 19, 20, 24)
      5: f_k = (N0/p sum_m c_m I + sum_{m != k} c_m R_e + sum_m c_m h_m^H h_m)^{-1}
               lambda_k e_k^* h_k^H,  c_m = lambda_m |e_m|^2,            (eq. 26)
         then F scaled to ||F||_F^2 = p[n]; solved in K x K form (``wmmse_beamformer``).
    Eq. 26 is the power-constraint-free form of Hu et al. 2021 (Lemma 1, seed 001's ref.
    [35]): the noise term N0 ||F||^2/p makes the rate scale invariant, so the rescaling
    replaces the bisection on the Lagrange multiplier of Shi et al. 2011. With sigma_e2 = 0
    every iteration is block-coordinate descent on the WMSE, so the sum rate never falls
    below that of the ZF start (tests/test_mimo_precoders.py). Fully differentiable
    (``iterations`` unrolled; seed 001 Sec. III-C unfolds it with a transformer).

    Shapes: s (B, ..., K, T) optional, h (B, ..., K, Nt) -> x (B, ..., Nt, T), w (B, ..., Nt, K).
    """
    params = {"iterations": Param(int, 20, "WMMSE iterations I_1"),
              "sigma_e2": Param(float, 0.0, "CSI error variance per entry, R_e = sigma_e2 I "
                                            "(= the estimate's NMSE for CN(0,1) channels)", runtime=True),
              "snr_db": snr_param("SNR (dB) the transmitter assumes: sigma_n^2 = 10^(-snr_db/10)"),
              "power_allocation": Param(str, "waterfilling", "across the ``...`` REs (step 3)",
                                        choices=("waterfilling", "equal")),
              "normalize": _Precoder._NORMALIZE}

    def matrix(self, h):
        hf, mid = flatten_re(h)                                    # (B, R, K, Nt)
        b, r, k, nt = hf.shape
        n0 = noise_var(self.p.snr_db)
        se2 = float(self.p.sigma_e2)
        rdt = hf.real.dtype
        # ZF start; the EPS ridges keep a vanishing estimate (h_hat ~ 0) finite instead of singular
        f = herm(hf) if k > nt else rzf_matrix(hf, EPS)
        p = torch.ones(b, r, dtype=rdt, device=hf.device)          # power per RE, sum = R

        def scale_to(f, p):
            nrm = energy(f).sum(dim=(-2, -1))
            return f * (p / nrm.clamp_min(EPS)).sqrt().to(f.dtype)[..., None, None]

        fdir = scale_to(f, p)                                      # unit ||F||_F per RE
        for _ in range(self.p.iterations):
            if r > 1 and self.p.power_allocation == "waterfilling":
                g = energy(torch.diagonal(hf @ fdir, dim1=-2, dim2=-1)).mean(-1) / n0
                p = waterfill(g, float(r))
            ps = p.clamp_min(1e-6)                                 # REs switched off keep a direction
            f = scale_to(fdir, ps)
            gmat = hf @ f                                          # (B, R, K, K): h_k f_m
            sig = torch.diagonal(gmat, dim1=-2, dim2=-1)           # (B, R, K)
            fk2 = energy(f).sum(dim=-2)                            # ||f_m||^2 (B, R, K)
            t = energy(gmat).sum(-1) + n0 + se2 * (fk2.sum(-1, keepdim=True) - fk2)
            e = sig.conj() / t                                     # eq. 19
            eps = (1.0 - energy(sig) / t).clamp_min(EPS)           # eq. 20
            lam = 1.0 / eps                                        # eq. 24
            c = lam * energy(e)                                    # (B, R, K)
            csum = c.sum(-1, keepdim=True)
            beta = n0 / ps[..., None] * csum + se2 * (csum - c) + EPS   # (B, R, K)
            fk = wmmse_beamformer(hf, c, lam * e.conj(), beta)     # eq. 26, (B, R, Nt, K)
            fdir = scale_to(fk, torch.ones_like(p))
        f = scale_to(fdir, p)
        return f.reshape(b, *mid, nt, k)
