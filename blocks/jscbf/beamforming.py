"""Semantic-aware beamforming at the airship BS (seed 001 Deep JSCBF, Sec. III-C, Figs. 6-7, eqs. 10-29).

``precoder.jscbf_data``    -- data-driven semantic-aware beamforming network (Fig. 6): X_d.
``precoder.jscbf_wmmse``   -- model-driven semantic-aware beamforming network (Fig. 7): a
                              transformer emits the WMMSE parameter set A per subcarrier, the
                              closed form (26) gives F_BB, X_m = F_BB W_s (27).
``precoder.jscbf_combine`` -- X = min{sqrt(Q P_t), ||X_c||_F} X_c / ||X_c||_F with
                              X_c = beta_d X_d + beta_m X_m and learnable betas (eqs. 28-29).

The classical Algorithm 1 the model-driven branch is derived from is ``precoder.wmmse`` /
``precoder.ofdm method: wmmse`` (blocks/mimo/precoders.py); both call the same K x K solve
of eq. (26), ``wmmse_beamformer``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register

from ..mimo._common import noise_var
from ..mimo.precoders import wmmse_beamformer
from ._transformer import SequenceTransformer
from .encoder import _FUSION_MODES, real_tokens, split_complex

_W = Port("complex", ("B", "K", "Q", "F"), tag="symbols", doc="fused semantic features W_s")
_X = Port("complex", ("B", "Nt", "Q", "F"), tag="symbols", doc="transmit grid")


@register("precoder.jscbf_data")
class JSCBFData(Block):
    """Data-driven semantic-aware beamforming network (seed 001 Sec. III-C1, Fig. 6).

    "The complex-valued semantic feature matrix W_s is first transformed into a 1D real-valued
    input sequence with dimension N_c x 2QK, then processed by a transformer for further
    refinement, and finally transformed into the transmit signals X_d by a fully connected
    linear layer and subsequent transform operation." ``mode: joint`` (paper): one token per
    subcarrier [Re W_s[n], Im W_s[n]] (2QK reals) -> transformer -> 2 Nt Q reals -> X_d[n]
    (Nt x Q, eq. 9's real/imaginary split). ``mode: per_symbol`` (notebook): one sequence per
    OFDM symbol q with tokens of 2K reals, 2 Nt outputs each. ``use_csi: true`` appends the
    CSI semantics c[n] to every token (the notebook does; the paper lists W_s only). A
    nonlinear map: no linear beamforming structure is imposed.

    Shapes: w complex (B, K, Q, F), c real (B, F, Dc) optional -> x complex (B, Nt, Q, F).
    """
    inputs = {"w": _W, "c": Port("real", ("B", "F", "Dc"), optional=True, doc="CSI semantics (use_csi)")}
    outputs = {"x": Port("complex", ("B", "Nt", "Q", "F"), tag="symbols", doc="data-driven transmit grid X_d")}
    params = {"nt": Param(int, 64, "BS antennas Nt"),
              "n_users": Param(int, 4, "K UEs"),
              "q": Param(int, 128, "Q data OFDM symbols"),
              "csi_dim": Param(int, 64, "Dc: CSI semantic width (use_csi)"),
              "use_csi": Param(bool, False, "append c[n] to each token (notebook: true; paper: false)"),
              "mode": Param(str, "joint", "joint: one token per subcarrier (paper); per_symbol: one "
                                          "sequence per OFDM symbol (notebook)", choices=_FUSION_MODES),
              "d_model": Param(int, 128, "transformer width (notebook: 128)"),
              "layers": Param(int, 4, "transformer layers (notebook: 4)"),
              "heads": Param(int, 8, "attention heads (notebook: 8)")}

    @classmethod
    def bind_dims(cls, p):
        return {"Nt": p["nt"], "K": p["n_users"], "Q": p["q"], "Dc": p["csi_dim"]}

    def __init__(self, **params):
        super().__init__(**params)
        p = self.p
        extra = p.csi_dim if p.use_csi else 0
        if p.mode == "joint":
            self.net = SequenceTransformer(2 * p.q * p.n_users + extra, 2 * p.nt * p.q, p.d_model, p.layers, p.heads)
        else:
            self.net = SequenceTransformer(2 * p.n_users + extra, 2 * p.nt, p.d_model, p.layers, p.heads)

    def forward(self, w, c=None):
        b, k, q, nf = w.shape
        nt = self.p.nt
        if self.p.use_csi and c is None:
            raise ValueError("precoder.jscbf_data: use_csi is true but c is not connected")
        if self.p.mode == "joint":
            tokens = real_tokens(w.permute(0, 3, 1, 2).reshape(b, nf, k * q))      # (B, F, 2KQ)
            if self.p.use_csi:
                tokens = torch.cat((tokens, c.to(tokens.dtype)), dim=-1)
            x = split_complex(self.net(tokens), nt * q).reshape(b, nf, nt, q)
            return {"x": x.permute(0, 2, 3, 1).contiguous()}
        tokens = real_tokens(w.permute(0, 2, 3, 1))                               # (B, Q, F, 2K)
        if self.p.use_csi:
            tokens = torch.cat((tokens, c.to(tokens.dtype)[:, None].expand(b, q, nf, -1)), dim=-1)
        x = split_complex(self.net(tokens.reshape(b * q, nf, -1)), nt).reshape(b, q, nf, nt)
        return {"x": x.permute(0, 3, 1, 2).contiguous()}


#: softplus^{-1}(1): the raw value that gives lambda = 1
_SOFTPLUS_INV_1 = math.log(math.e - 1.0)


@register("precoder.jscbf_wmmse")
class JSCBFWMMSE(Block):
    """Model-driven semantic-aware beamforming network (seed 001 Sec. III-C2, Fig. 7, eqs. 10-27).

    "A transformer is employed to process the CSI semantic feature and generate the critical
    parameter set A ... The closed-form solution (26) is then utilized to obtain the
    beamformer": one transformer pass over the N_c subcarrier tokens of c emits A per
    subcarrier, eq. (26) is applied once (the paper's "deep unfolding" replaces Algorithm 1's
    iterations by the learned map; the notebook does the same), and X_m[n] = F_BB[n] W_s[n]
    (eq. 27). ``form``:
      paper: A = {p[n], lambda[k,n], e[k,n], R_e = sigma_e^2[n] I} (3K + 2 reals per
             subcarrier): p = N_c softmax_n(.) (sum_n p[n] = P_t = N_c, eq. 11; equal p = 1
             with ``learn_power: false``), lambda = softplus(.) > 0, e complex, sigma_e^2 =
             softplus(.) >= 0 (0 with ``robust: false``, the non-robust WMMSE). Eq. (26) with
             c_m = lambda_m |e_m|^2, sigma_n^2 = N0 = 10^(-snr_db/10):
                 f_k = (N0/p sum_m c_m I + sum_{m != k} c_m R_e + sum_m c_m h_m h_m^H)^{-1}
                       lambda_k e_k^* h_k,
             then F_BB[n] scaled to ||F_BB[n]||_F^2 = p[n] (Lemma 1 of [35], as in Algorithm 1).
             Offsets make the untrained network start at p = 1, lambda = 1, e = 1, sigma_e^2
             = 0.01: eq. (26) is then RZF with regularisation K N0 (Peel et al. 2005) plus a
             small robust term.
      code:  the notebook's variant (cell 11): f_k = (sum_m pri2_m h_m h_m^H + K sigma I)^{-1}
             pri1_k h_k with complex pri1, pri2 and a real sigma (all unconstrained, offsets
             pri1 = pri2 = 1), no R_e term, no p[n], no rescaling: the scale of F is free.
    (h_m in eq. 26 is the estimate h_hat: "h" there is a typo.) Both forms are solved in
    K x K form (``wmmse_beamformer``). The channel is static: the first OFDM symbol of h_hat
    is used. Differentiable in c, h_hat, w and the transformer.

    Shapes: c real (B, F, Dc), h_hat complex (B, K, Nt, S, F), w complex (B, K, Q, F)
            -> x complex (B, Nt, Q, F), f complex (B, Nt, K, 1, F) (F_BB per subcarrier, the
            ``precoder.ofdm`` layout: f[b, :, k, 0, n] = f_BB[k, n]).
    Taps (paper form): ``p`` (B, F), ``lam`` (B, F, K), ``e`` (B, F, K), ``se2`` (B, F).
    """
    inputs = {"c": Port("real", ("B", "F", "Dc"), doc="CSI semantic features"),
              "h_hat": Port("complex", ("B", "K", "Nt", "S", "F"), tag="csi", doc="estimated CSI (rows)"),
              "w": _W}
    outputs = {"x": Port("complex", ("B", "Nt", "Q", "F"), tag="symbols", doc="model-driven transmit grid X_m"),
               "f": Port("complex", ("B", "Nt", "K", 1, "F"), tag="csi", doc="beamformers F_BB per subcarrier")}
    params = {"nt": Param(int, 64, "BS antennas Nt"),
              "n_users": Param(int, 4, "K UEs"),
              "csi_dim": Param(int, 64, "Dc: CSI semantic width"),
              "form": Param(str, "paper", "paper: A = {p, lambda, e, R_e} and eq. 26; code: the "
                                          "notebook's unconstrained variant", choices=("paper", "code")),
              "robust": Param(bool, True, "paper form: keep the R_e = sigma_e^2 I term of eq. 26"),
              "learn_power": Param(bool, True, "paper form: learned p[n] (false: p[n] = 1)"),
              "d_model": Param(int, 256, "transformer width (notebook: 256)"),
              "layers": Param(int, 1, "transformer layers (notebook: 1)"),
              "heads": Param(int, 8, "attention heads (notebook: 8)"),
              "snr_db": Param(float, 20.0, "SNR (dB) the BS assumes: sigma_n^2 = 10^(-snr_db/10)",
                              runtime=True)}
    taps = {"p": "learned power per subcarrier (B, F), sum = N_c", "lam": "lambda (B, F, K)",
            "e": "equaliser e (B, F, K)", "se2": "CSI error variance sigma_e^2 (B, F)"}

    @classmethod
    def bind_dims(cls, p):
        return {"Nt": p["nt"], "K": p["n_users"], "Dc": p["csi_dim"]}

    def __init__(self, **params):
        super().__init__(**params)
        p = self.p
        k = p.n_users
        dout = 3 * k + 2 if p.form == "paper" else 4 * k + 1
        self.net = SequenceTransformer(p.csi_dim, dout, p.d_model, p.layers, p.heads)
        with torch.no_grad():                      # start near the offsets (RZF), not at random A
            self.net.head.weight.mul_(0.1)
            self.net.head.bias.zero_()

    def _paper(self, a, hr):
        k, nf = self.p.n_users, a.shape[1]
        p = nf * torch.softmax(a[..., 0], dim=1) if self.p.learn_power else a.new_ones(a.shape[:2])
        lam = F.softplus(a[..., 1:1 + k] + _SOFTPLUS_INV_1)
        e = torch.complex(1.0 + a[..., 1 + k:1 + 2 * k], a[..., 1 + 2 * k:1 + 3 * k])
        se2 = F.softplus(a[..., 1 + 3 * k] - 4.6) if self.p.robust else a.new_zeros(a.shape[:2])
        c = lam * e.abs().square()
        csum = c.sum(-1, keepdim=True)
        beta = noise_var(self.p.snr_db) / p[..., None] * csum + se2[..., None] * (csum - c)
        f = wmmse_beamformer(hr, c, lam * e.conj(), beta)                # eq. (26), (B, F, Nt, K)
        nrm = f.abs().square().sum(dim=(-2, -1)).clamp_min(1e-12)
        f = f * (p / nrm).sqrt()[..., None, None].to(f.dtype)            # ||F_BB[n]||^2 = p[n]
        for name, t in (("p", p), ("lam", lam), ("e", e), ("se2", se2)):
            self.publish(name, t)
        return f

    def _code(self, a, hr):
        k = self.p.n_users
        pri1 = torch.complex(1.0 + a[..., :k], a[..., k:2 * k])
        pri2 = torch.complex(1.0 + a[..., 2 * k:3 * k], a[..., 3 * k:4 * k])
        sigma = a[..., 4 * k:4 * k + 1].expand(*a.shape[:2], k) * k        # K sigma I
        return wmmse_beamformer(hr, pri2, pri1, sigma)

    def forward(self, c, h_hat, w):
        b, k, nt, _, nf = h_hat.shape
        if w.shape[0] != b or w.shape[1] != k or w.shape[3] != nf:
            raise ValueError(f"precoder.jscbf_wmmse: w {tuple(w.shape)} does not fit h_hat {tuple(h_hat.shape)}")
        a = self.net(c.float())                                           # (B, F, 3K+2 | 4K+1)
        hr = h_hat[:, :, :, 0, :].permute(0, 3, 1, 2).to(torch.complex64)  # (B, F, K, Nt): rows
        f = self._paper(a, hr) if self.p.form == "paper" else self._code(a, hr)
        x = torch.einsum("bfnk,bkqf->bnqf", f, w.to(f.dtype))            # eq. (27)
        return {"x": x, "f": f.permute(0, 2, 3, 1).unsqueeze(3).contiguous()}


@register("precoder.jscbf_combine")
class JSCBFCombine(Block):
    """Hybrid data- and model-driven beamforming and the power constraint (seed 001 eqs. 28-29).

        X_c = beta_d X_d + beta_m X_m                                          (28)
        X   = min{sqrt(Q P_t), ||X_c||_F} X_c / ||X_c||_F                      (29)

    with learnable beta_d, beta_m (``learn_beta``; the notebook initialises beta_d = 0,
    beta_m = 1, so the data-driven branch is off until beta_d moves). P_t = power * N_c (the
    frame may carry at most energy ``power`` per resource element summed over the antennas,
    docs/conventions.md), one Frobenius norm per example over the whole Nt x Q x N_c frame.
    ``power_rule``:
      paper: eq. (29), the frame energy is capped at Q P_t, never raised;
      equal: ||X||_F^2 = Q P_t exactly;
      code:  the notebook's rule (cell 11): each subcarrier n scaled to energy Q power using
             the branch powers ||beta_d X_d[n]||^2 + ||beta_m X_m[n]||^2 computed separately
             (the cross term is ignored; no power allocation across subcarriers is possible).
    An unconnected or switched-off branch counts as zero: ``use_data: false`` (or x_d
    unconnected) is Table II's "model-driven beamforming only", ``use_model: false`` (or x_m
    unconnected) data-driven only.

    Shapes: x_d complex (B, Nt, Q, F) optional, x_m complex (B, Nt, Q, F) optional
            -> x complex (B, Nt, Q, F).
    Taps: ``beta_d``, ``beta_m`` (scalars), ``energy`` = ||X||_F^2 / (Q N_c) per example (B,).
    """
    inputs = {"x_d": Port("complex", ("B", "Nt", "Q", "F"), tag="symbols", optional=True, doc="data-driven X_d"),
              "x_m": Port("complex", ("B", "Nt", "Q", "F"), tag="symbols", optional=True, doc="model-driven X_m")}
    outputs = {"x": _X}
    params = {"beta_d_init": Param(float, 0.0, "initial beta_d (notebook: 0)"),
              "beta_m_init": Param(float, 1.0, "initial beta_m (notebook: 1)"),
              "learn_beta": Param(bool, True, "learnable betas (false: fixed at their initial values)"),
              "power_rule": Param(str, "paper", "paper (eq. 29 cap), equal (always Q P_t) or code "
                                                "(per-subcarrier, notebook)", choices=("paper", "equal", "code")),
              "power": Param(float, 1.0, "P_t / N_c: energy per resource element summed over antennas"),
              "use_data": Param(bool, True, "add the data-driven branch (false: model-driven only, Table II)"),
              "use_model": Param(bool, True, "add the model-driven branch (false: data-driven only)")}
    taps = {"beta_d": "beta_d (scalar)", "beta_m": "beta_m (scalar)",
            "energy": "frame energy per resource element, (B,)"}

    def __init__(self, **params):
        super().__init__(**params)
        p = self.p
        betas = torch.tensor([p.beta_d_init, p.beta_m_init])
        if p.learn_beta:
            self.beta = nn.Parameter(betas)
        else:
            self.register_buffer("beta", betas)
        if p.power <= 0:
            raise ValueError(f"precoder.jscbf_combine: power must be > 0, got {p.power}")

    def forward(self, x_d=None, x_m=None):
        x_d = x_d if self.p.use_data else None
        x_m = x_m if self.p.use_model else None
        if x_d is None and x_m is None:
            raise ValueError("precoder.jscbf_combine: no branch left: connect and enable x_d, x_m or both")
        ref = x_m if x_m is not None else x_d
        b, _, q, nf = ref.shape
        bd, bm = self.beta[0], self.beta[1]
        parts = [t for t in ((bd * x_d) if x_d is not None else None,
                             (bm * x_m) if x_m is not None else None) if t is not None]
        xc = parts[0] if len(parts) == 1 else parts[0] + parts[1]             # eq. (28)
        self.publish("beta_d", bd.detach())
        self.publish("beta_m", bm.detach())
        if self.p.power_rule == "code":
            pn = sum(t.abs().square().sum(dim=(1, 2)) for t in parts)         # (B, F)
            x = xc * (q * self.p.power / pn.clamp_min(1e-12)).sqrt()[:, None, None, :]
        else:
            cap = math.sqrt(q * nf * self.p.power)                            # sqrt(Q P_t)
            nrm = xc.abs().square().sum(dim=(1, 2, 3)).clamp_min(1e-24).sqrt()
            target = nrm.clamp(max=cap) if self.p.power_rule == "paper" else torch.full_like(nrm, cap)
            x = xc * (target / nrm)[:, None, None, None]                      # eq. (29)
        self.publish("energy", x.abs().square().sum(dim=(1, 2, 3)) / (q * nf))
        return {"x": x}
