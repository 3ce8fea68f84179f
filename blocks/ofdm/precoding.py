"""Linear precoding of OFDM user grids: the flat precoders of ``blocks.mimo`` per resource element.

Seed 003 eq. (2)/(7): per RE (f, t), x_{f,t} = V_{f,t} s_{f,t} with V_{f,t} = [v_1 ... v_K] in
C^(N_m x N_k) computed from that RE's channel H_{f,t} (rows = users); seed 003's implementation
"applies the matrix operations for RZF to the last two tensor dimensions, with broadcasting"
(Sec. III-B) -- exactly what this block does, in the OFDM layout of ``blocks.ofdm``.
"""
from __future__ import annotations

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register

from ..mimo.precoders import MRT, RZF, WMMSE, ZF

_METHODS = {"zf": ZF, "rzf": RZF, "mrt": MRT, "wmmse": WMMSE}


@register("precoder.ofdm")
class OFDMPrecoder(Block):
    """ZF / RZF / MRT / WMMSE precoding per resource element of an OFDM grid (seed 003 eqs. 2, 7;
    seed 001 Algorithm 1 for WMMSE), wrapping ``precoder.zf/rzf/mrt/wmmse``.

    The channel h (B, K, Nt, S, F) is viewed as one K x Nt matrix per RE, (B, S, F, K, Nt),
    the flat precoder of ``method`` computes W per RE, and the user grid s (B, K, S, F) (one
    unit-energy stream per user, pilots included, e.g. ``csirs.ofdm_grid`` with n_streams = K)
    is precoded: x[:, :, s, f] = W[s, f] s[:, s, f].

    Power (DESIGN.md, as the flat precoders): W is normalized per example so that the mean
    over the S x F resource elements of ||W||_F^2 is 1, i.e. the transmit energy summed over
    the Nt antennas is 1 per RE on average (unit-energy streams); ZF/RZF/MRT keep the relative
    per-RE norms of their unnormalized matrices, WMMSE water-fills over the REs
    (``power_allocation``). ``normalize: signal`` instead scales x to exactly
    mean_RE ||x||^2 = 1 per example. Parameters of the other methods are ignored:
    alpha / learnable_alpha (rzf: V = H^H (H H^H + alpha N0 I)^-1), snr_db (rzf, wmmse),
    iterations / sigma_e2 / power_allocation (wmmse). Differentiable in s, h and a learnable
    alpha (``check_gradients``); ZF gradients blow up on ill-conditioned REs (seed 003 Fig. 10).

    w is returned in the OFDM layout: w[b, :, k, s, f] is user k's precoding vector on RE
    (s, f), matching h[b, k, :, s, f]; ``tensor.permute`` with dims [0, 3, 4, 1, 2] turns both
    into the per-RE matrix layout of ``sink.sum_rate`` / ``sink.spectral_efficiency``.

    Static channel: an h with one OFDM symbol (Sh = 1) serves a grid of any S. W is then
    computed once per subcarrier (S times cheaper) and applied to every symbol of it, and
    w keeps Sh = 1; x equals what an h expanded to all S symbols gives (the per-RE power
    normalisation and WMMSE's water-filling see each subcarrier S times, which changes
    neither).

    Shapes: s complex (B, K, S, F) optional, h complex (B, K, Nt, Sh, F) with Sh = S or 1
            -> x complex (B, Nt, S, F) (zeros (B, Nt, Sh, F) when s is unconnected: then
               only w is produced), w complex (B, Nt, K, Sh, F).
    """
    inputs = {"s": Port("complex", ("B", "K", "S", "F"), tag="symbols", optional=True,
                        doc="user grid: one unit-energy stream per user"),
              "h": Port("complex", ("B", "K", "Nt", "Sh", "F"), tag="csi",
                        doc="channel (estimate) per user, Tx antenna and RE; Sh = 1: static over the grid")}
    outputs = {"x": Port("complex", ("B", "Nt", "S", "F"), tag="symbols", doc="precoded grid"),
               "w": Port("complex", ("B", "Nt", "K", "Sh", "F"), tag="csi",
                         doc="precoding vectors per user and RE (Sh = 1 for a static h)")}
    params = {"method": Param(str, "rzf", "zf, rzf, mrt or wmmse", choices=tuple(_METHODS)),
              "alpha": Param(float, 1.0, "rzf: regularization times N0 (>= 0)"),
              "learnable_alpha": Param(bool, False, "rzf: train alpha (softplus, > 0)"),
              "snr_db": Param(float, 10.0, "rzf/wmmse: SNR (dB) the transmitter assumes, "
                                           "N0 = 10^(-snr_db/10)", runtime=True),
              "iterations": Param(int, 20, "wmmse: iterations"),
              "sigma_e2": Param(float, 0.0, "wmmse: CSI error variance per entry", runtime=True),
              "power_allocation": Param(str, "waterfilling", "wmmse: across REs",
                                        choices=("waterfilling", "equal")),
              "normalize": Param(str, "matrix", "matrix: mean_RE ||W||_F^2 = 1; signal: "
                                                "mean_RE ||x||^2 = 1 exactly",
                                 choices=("matrix", "signal"))}

    def __init__(self, **params):
        super().__init__(**params)
        cls = _METHODS[self.p.method]
        inner = {k: self.p[k] for k in cls.params}
        self.inner = cls(**inner)
        self.inner.name = f"{self.name}/{self.p.method}"

    def _sync(self):
        for k, spec in self.inner.params.items():
            if spec.runtime:
                self.inner.p[k] = self.p[k]

    def forward(self, h, s=None):
        if h.dim() != 5:
            raise ValueError(f"precoder.ofdm: h must be (B, K, Nt, S, F), got {tuple(h.shape)}")
        b, k, nt, ns, nf = h.shape
        if s is not None and (s.shape[:2] != (b, k) or s.shape[3] != nf or ns not in (1, s.shape[2])):
            raise ValueError(f"precoder.ofdm: s {tuple(s.shape)} does not fit h {tuple(h.shape)} "
                             f"(expects (B, K, S, F) = {(b, k, ns, nf)}, or any S when h has S = 1)")
        self._sync()
        hre = h.permute(0, 3, 4, 1, 2)                                # (B, Sh, F, K, Nt)
        if s is None:
            sre = None
        elif ns == 1:   # static h: the S symbols of a subcarrier are T symbols of one RE matrix
            sre = s.permute(0, 3, 1, 2).unsqueeze(1)                   # (B, 1, F, K, S)
        else:
            sre = s.permute(0, 2, 3, 1).unsqueeze(-1)                  # (B, S, F, K, 1)
        out = self.inner(h=hre, s=sre)
        w = out["w"].permute(0, 3, 4, 1, 2).contiguous()              # (B, Nt, K, Sh, F)
        if s is None:
            x = h.new_zeros(b, nt, ns, nf)
        elif ns == 1:
            x = out["x"][:, 0].permute(0, 2, 3, 1).contiguous()       # (B, F, Nt, S) -> (B, Nt, S, F)
        else:
            x = out["x"][..., 0].permute(0, 3, 1, 2).contiguous()     # (B, Nt, S, F)
        return {"x": x, "w": w}
