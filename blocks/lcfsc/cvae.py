"""Recurrent condition generation: the R-CVAE that outputs the learnable mask ratio m* (seed 000, Sec. IV).

Seed 000, eqs. (13)-(19), (21)-(23) and Fig. 8:

* proxy codewords y_bar = f_p(s, h_e, m) = g_ap(f_ep(s, h_e, m)) (eq. 13): the latest CFSC
  encoder run at the stable mask ratio m. In a graph this is a second
  ``extractor.swin_cfma`` + ``extractor.channel_modnet`` pair with the param m fixed and
  frozen weights copied from the CFSC encoder (graphs/lcfsc.yaml: its ``cfsc`` stage trains
  the encoder with ``fixed_m`` on, then ``copy_weights``, or ``init`` from a CFSC run); this
  block receives its output on the ``y_bar`` input.
* posterior encoder d_a(y_bar, m) -> (h_mu, h_sigma), prior encoder d_s(m) -> (f_mu, f_sigma)
  (log-variances), z = h_mu + eps (.) exp(h_sigma / 2), eps ~ N(0, I) (eq. 18, with the
  diagonal covariance exp(h_sigma) the paper defines just before it);
* decoder d_p(z, m) -> y_tilde, L_rec = ||y_tilde - y_bar||^2 per example (eq. 21);
* L_reg = KL(q(z | y_bar, m) || p(z | m)) per example (eq. 22), L_c = L_rec + L_reg (eq. 23);
* generation net d_q(z) -> beta = softmax(.) over the preset ratios M_bar and
  m* = M_bar beta^T (eq. 19), so m* lies in [min M_bar, max M_bar] and sum(beta) = 1.

Eq. (22) as printed omits the constant -1 of the Gaussian KL; it is included here so
that L_reg is the KL itself (>= 0, zero when the two Gaussians agree). Gradients are the
same either way. ``reduction: sum`` is eq. (21)'s sum over the CL codeword values;
``mean`` divides L_rec by CL and L_reg by the latent size (handy to keep lambda of eq. 24
O(1)). The paper does not give lambda.

In training z is sampled; in evaluation (eval mode) z = h_mu unless ``sample_eval``, so
evaluation is deterministic. m* gets its gradient from the reconstruction loss L1 through
NI-CFMA's straight-through mask (``extractor.swin_cfma``), and from nothing else: L_c does
not involve beta.

``fixed_m: true`` (runtime) outputs m = m_stable for every example instead of m*: the
encoder fed by this block is then CFSC at the stable m (loss and beta are computed as
usual). graphs/lcfsc.yaml trains its CFSC stage this way.
"""
from __future__ import annotations

import torch
from torch import nn

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register


#: seed 000, Sec. V-A2: the pre-set mask ratio vector M_bar
PAPER_MBAR = [0.001, 0.003, 0.005, 0.007, 0.009, 0.012, 0.014, 0.015]


def _mlp(din: int, hidden: int, dout: int, depth: int = 2) -> nn.Sequential:
    layers, d = [], din
    for _ in range(depth):
        layers += [nn.Linear(d, hidden), nn.GELU()]
        d = hidden
    return nn.Sequential(*layers, nn.Linear(d, dout))


@register("csirs.cvae_mask_ratio")
class CVAEMaskRatio(Block):
    """R-CVAE condition generator m* = zeta(m, y_bar) (seed 000, eqs. 14-19, 21-23, Fig. 8).

    Networks (MLPs with GELU): d_a([y_bar, m~]) -> 2L, d_s(m~) -> 2L, d_p([z, m~]) -> CL,
    d_q(z) -> K logits, with m~ = m / max(M_bar) the condition scaled to O(1) and L the
    latent size. ``normalize`` scales each example's y_bar to unit mean energy per value
    first (the power normalisation the transmitted codeword gets). ``fixed_m`` (runtime)
    replaces m* by m_stable for every example (CFSC at the stable m).

    Shapes: y_bar real (B, ...) with CL = in_dim values per example
            -> m real (B,) (m*), loss real (B,) (L_c per example), beta real (B, K).
    Taps: ``kl`` (B,) and ``rec`` (B,), the two terms of L_c.
    """
    inputs = {"y_bar": Port("real", ("B", "..."), doc="proxy codewords from the CFSC encoder at the stable m")}
    outputs = {"m": Port("real", ("B",), tag="scalar", doc="learned mask ratio m* = M_bar beta^T (eq. 19)"),
               "loss": Port("real", ("B",), tag="scalar", doc="L_c = L_rec + L_reg per example (eq. 23)"),
               "beta": Port("real", ("B", "K"), doc="weights over M_bar, sum to 1")}
    params = dict({
        "in_dim": Param(int, 6144, "CL: real values of y_bar per example (N tokens x c_out)"),
        "m_stable": Param(float, 0.009, "the stable mask ratio m: the CVAE's condition", runtime=True),
        "mbar": Param(list, list(PAPER_MBAR), "pre-set mask ratios M_bar (seed 000: 0.001..0.015; "
                                              "[0..1] for Fig. 12's 'LCFSC (m = 0~1)')"),
        "latent": Param(int, 16, "latent size L"),
        "hidden": Param(int, 128, "hidden width of the four MLPs"),
        "normalize": Param(bool, True, "scale y_bar to unit mean energy per value, per example"),
        "reduction": Param(str, "sum", "sum: eqs. (21)-(22) as printed; mean: per value / latent",
                           choices=("sum", "mean")),
        "sample_eval": Param(bool, False, "sample z in evaluation too (default: z = h_mu)"),
        "fixed_m": Param(bool, False, "output m = m_stable instead of m* (CFSC at the stable m, e.g. "
                                      "while training the proxy encoder)", runtime=True),
    })
    taps = {"kl": "L_reg per example (B,)", "rec": "L_rec per example (B,)"}

    @classmethod
    def bind_dims(cls, p):
        return {"K": len(p["mbar"])}

    def __init__(self, **params):
        super().__init__(**params)
        p, where = self.p, self.type_id
        mbar = [float(v) for v in p.mbar]
        if len(mbar) < 2 or any(not 0.0 <= v <= 1.0 for v in mbar):
            raise ValueError(f"{where}: mbar needs >= 2 ratios in [0, 1], got {p.mbar}")
        if p.in_dim < 1 or p.latent < 1 or p.hidden < 1:
            raise ValueError(f"{where}: in_dim, latent and hidden must be >= 1")
        self.register_buffer("mbar", torch.tensor(mbar), persistent=False)
        self.m_scale = max(max(mbar), 1e-6)
        L, H, D = p.latent, p.hidden, p.in_dim
        self.d_a = _mlp(D + 1, H, 2 * L)      # posterior q(z | y_bar, m)
        self.d_s = _mlp(1, H, 2 * L)          # prior p(z | m)
        self.d_p = _mlp(L + 1, H, D)          # decoder p(y_bar | z, m)
        self.d_q = _mlp(L, H, len(mbar))      # generation net -> beta

    def forward(self, y_bar):
        b = y_bar.shape[0]
        y = y_bar.reshape(b, -1)
        if y.shape[1] != self.p.in_dim:
            raise ValueError(f"csirs.cvae_mask_ratio: y_bar has {y.shape[1]} values per example, "
                             f"param in_dim is {self.p.in_dim}")
        if self.p.normalize:
            y = y * torch.rsqrt((y * y).mean(dim=1, keepdim=True).clamp_min(1e-12))
        cond = y.new_full((b, 1), float(self.p.m_stable) / self.m_scale)
        h_mu, h_sig = self.d_a(torch.cat((y, cond), dim=1)).chunk(2, dim=1)
        f_mu, f_sig = self.d_s(cond).chunk(2, dim=1)
        if self.training or self.p.sample_eval:
            z = h_mu + torch.randn_like(h_mu) * torch.exp(0.5 * h_sig)      # eq. (18)
        else:
            z = h_mu
        y_tilde = self.d_p(torch.cat((z, cond), dim=1))
        rec = ((y_tilde - y) ** 2).sum(dim=1)                                # eq. (21)
        kl = 0.5 * (f_sig - h_sig + torch.exp(h_sig - f_sig)
                    + (f_mu - h_mu) ** 2 * torch.exp(-f_sig) - 1.0).sum(dim=1)   # eq. (22)
        if self.p.reduction == "mean":
            rec, kl = rec / y.shape[1], kl / h_mu.shape[1]
        beta = torch.softmax(self.d_q(z), dim=1)
        m_star = beta @ self.mbar.to(beta.dtype)                             # eq. (19)
        if self.p.fixed_m:
            m_star = torch.full_like(m_star, float(self.p.m_stable))
        self.publish("kl", kl)
        self.publish("rec", rec)
        return {"m": m_star, "loss": rec + kl, "beta": beta}
