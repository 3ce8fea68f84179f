"""The hybrid learnable residual RZF precoder of seed 003 (Sec. III-B, eqs. 7-9, Fig. 4)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register

from ._layers import channels_to_complex, complex_to_channels, conv_bn_relu
from .encoder import noise_var

#: guard in divisions by energies (an all-zero example stays zero)
EPS = 1e-12


def rzf_ofdm(h: torch.Tensor, reg) -> torch.Tensor:
    """RZF matrix per resource element, seed 003 eq. 7: V = H^H (H H^H + reg I)^{-1}.

    h (B, K, Nt, S, F) -> V (B, S, F, Nt, K). ``reg`` = alpha * sigma^2 (float or 0-dim
    tensor); reg = 0 is zero forcing. The K x K system is solved with
    ``torch.linalg.solve_ex`` without error checks, so a singular H H^H (ZF on an
    ill-conditioned channel) gives NaN/Inf values -- which the engine reports with the
    block's name -- instead of an exception (seed 003, Fig. 10).
    """
    hm = h.permute(0, 3, 4, 1, 2)                                   # (B, S, F, K, Nt): H_{f,t}
    k = hm.shape[-2]
    eye = torch.eye(k, dtype=hm.dtype, device=hm.device)
    a = hm @ hm.mH + reg * eye
    sol, _ = torch.linalg.solve_ex(a, hm, check_errors=False)      # A^{-1} H (A Hermitian)
    return sol.mH                                                   # H^H A^{-1}


def total_power_normalize(x: torch.Tensor, power: float = 1.0) -> torch.Tensor:
    """Scale each example of x (B, Nt, S, F) so that mean over REs of sum_n |x_n|^2 = power
    (the total transmit power constraint E[|X|^2] <= P of seed 003 Sec. III-B, met with
    equality; the MIMO convention of docs/conventions.md)."""
    e = (x.real ** 2 + x.imag ** 2).sum(dim=1).mean(dim=(1, 2))     # (B,)
    scale = (power / e.clamp_min(EPS)).sqrt()
    return x * scale.reshape(-1, 1, 1, 1).to(x.dtype)


@register("precoder.residual_rzf")
class ResidualRZF(Block):
    """Hybrid learnable residual RZF precoder (seed 003, Sec. III-B, eqs. 7-9, Fig. 4).

    Per resource element (f, t) with H_{f,t} (K x Nt) and the user symbols s_{f,t} (K):

    1. Coarse RZF (eq. 7): V = H^H (H H^H + alpha sigma^2 I)^{-1}, sigma^2 = 10^(-snr_db/10),
       with alpha = softplus(a) a trainable scalar when ``learnable_alpha`` (initialized to
       ``alpha``; positive by construction), else the fixed ``alpha``. alpha = 0 is ZF,
       which yields NaN/Inf on a singular H H^H (Fig. 10). ``alpha: mmse`` is
       alpha = K / P, the MMSE-optimal regularization K sigma^2 / P of classical RZF
       (Peel et al. 2005, seed 003 ref. [21]); seed 003's alpha = 1 is its "typical
       choice" sigma^2 (eq. 3). V is normalized per example to
       mean_RE ||V||_F^2 = 1 (as ``precoder.rzf``), so the coarse signal V s carries unit
       total power per RE for unit-energy streams and sits on the same scale as the
       correction below (an implementation choice: eq. 9 does not say how the two terms are
       scaled).
    2. Residual refinement (eq. 8): Delta X = F_p(S_temp; zeta), S_temp = the coarse signal
       (Nt antennas) and the CSI (K x Nt), real and imaginary parts stacked as channels
       (2 Nt (1 + K) = 40 for 4 x 4), with OFDM symbols x subcarriers as the spatial axes:
       Conv2D+BN+ReLU (w, 3, 1) -> Conv2D+BN+ReLU (w, 3, 1) -> Conv2D (2 Nt, 1, 1);
       paper width w = 64 (0.061 M parameters, Table III).
    3. X = V s + Delta X (eq. 9), normalized per example to the total power constraint:
       mean over REs of sum_n |x_n|^2 = ``power``.

    ``residual: false`` drops step 2: a plain (learnable-alpha) RZF, "Ours (RZF)" with
    ``learnable_alpha: false``. Pilot REs are precoded like data REs (the precoder sees
    the whole grid S_ofdm, Sec. II), so each UE receives its pilots through its effective
    channel.

    Shapes: s complex (B, K, S, F) user-symbol grid, h complex (B, K, Nt, S, F)
            -> x complex (B, Nt, S, F).
    Taps: ``coarse`` the normalized RZF signal V s (B, Nt, S, F), ``delta`` Delta X.
    """
    inputs = {"s": Port("complex", ("B", "K", "S", "F"), tag="symbols", doc="user-symbol grid S_ofdm"),
              "h": Port("complex", ("B", "K", "Nt", "S", "F"), tag="csi", doc="CSI known at the BS")}
    outputs = {"x": Port("complex", ("B", "Nt", "S", "F"), tag="symbols",
                         doc="precoded grid, total energy `power` per RE")}
    params = {
        "n_users": Param(int, 4, "users K = N_k"),
        "n_tx": Param(int, 4, "BS antennas Nt = N_m"),
        "alpha": Param(float, 1.0, "RZF regularization alpha (times sigma^2, eq. 7); initial value "
                                   "when learnable; 0 = ZF; mmse: n_users / power (K sigma^2 / P)",
                       named=("mmse",)),
        "learnable_alpha": Param(bool, True, "train alpha (softplus-parametrized, needs alpha > 0)"),
        "residual": Param(bool, True, "add the residual CNN correction Delta X (eqs. 8-9); false = plain RZF"),
        "width": Param(int, 64, "filters of the two 3x3 layers of F_p (Table I: 64)"),
        "power": Param(float, 1.0, "total transmit energy per RE, summed over antennas"),
        "snr_db": Param(float, 10.0, "SNR (dB) the BS assumes: sigma^2 = 10^(-snr_db/10)", runtime=True),
    }
    taps = {"coarse": "normalized RZF signal V s (B, Nt, S, F)", "delta": "residual correction (B, Nt, S, F)"}

    @classmethod
    def bind_dims(cls, p):
        return {"K": p["n_users"], "Nt": p["n_tx"]}

    def __init__(self, **params):
        super().__init__(**params)
        p = self.p
        if p.power <= 0:
            raise ValueError(f"precoder.residual_rzf: power must be > 0, got {p.power}")
        self.alpha0 = p.n_users / p.power if p.alpha == "mmse" else p.alpha
        if self.alpha0 < 0:
            raise ValueError(f"precoder.residual_rzf: alpha must be >= 0, got {p.alpha}")
        if p.learnable_alpha:
            if self.alpha0 <= 0:
                raise ValueError("precoder.residual_rzf: learnable_alpha needs alpha > 0 "
                                 "(alpha = 0 is ZF: set learnable_alpha: false)")
            a = self.alpha0
            raw = a + math.log(-math.expm1(-a))                  # softplus^{-1}(alpha)
            self.alpha_raw = nn.Parameter(torch.tensor(raw, dtype=torch.float32))
        if p.residual:
            c_in = 2 * p.n_tx * (1 + p.n_users)
            self.refine = nn.Sequential(conv_bn_relu(c_in, p.width), conv_bn_relu(p.width, p.width),
                                        nn.Conv2d(p.width, 2 * p.n_tx, 1))
        else:
            self.refine = None

    def current_alpha(self):
        return F.softplus(self.alpha_raw) if self.p.learnable_alpha else self.alpha0

    def forward(self, s, h):
        b, k, nt, n_s, n_f = h.shape
        if s.shape != (b, k, n_s, n_f):
            raise ValueError(f"precoder.residual_rzf: s {tuple(s.shape)} does not fit h {tuple(h.shape)}")
        alpha = self.current_alpha()
        if torch.is_tensor(alpha):
            alpha = alpha.to(h.real.dtype)
        v = rzf_ofdm(h, alpha * noise_var(self.p.snr_db))              # (B, S, F, Nt, K)
        vpow = (v.real ** 2 + v.imag ** 2).sum(dim=(-2, -1)).mean(dim=(1, 2))   # (B,)
        v = v * vpow.clamp_min(EPS).rsqrt().reshape(-1, 1, 1, 1, 1).to(v.dtype)
        coarse = (v @ s.permute(0, 2, 3, 1).unsqueeze(-1).to(v.dtype)).squeeze(-1)   # (B, S, F, Nt)
        x = coarse.permute(0, 3, 1, 2)                                  # (B, Nt, S, F)
        self.publish("coarse", x)
        if self.refine is not None:
            s_temp = torch.cat([complex_to_channels(x), complex_to_channels(h.reshape(b, k * nt, n_s, n_f))],
                               dim=1)                                   # (B, 2 Nt (1 + K), S, F)
            delta = channels_to_complex(self.refine(s_temp))            # (B, Nt, S, F), eq. 8
            self.publish("delta", delta)
            x = x + delta                                               # eq. 9
        return {"x": total_power_normalize(x, self.p.power)}
