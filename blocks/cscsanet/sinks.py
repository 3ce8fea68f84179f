"""Spectral efficiency of the hybrid uplink: the physical-layer pretraining objective of seed 002
(CSC-SA-Net, Sec. III-H-2, eqs. 30-32)."""
from __future__ import annotations

import math

import torch

from flowgraph.block import Param, Port, Sink
from flowgraph.registry import register

from ._common import N_USERS, array_params, check_channel, noise_var, user_channel


def hybrid_rates(h_k: torch.Tensor, f: torch.Tensor, w: torch.Tensor, n0: float,
                 whiten: bool = False) -> torch.Tensor:
    """eta = log2 det(I + (P_t / (N_s N0)) W H F F^H H^H W^H) per RE (eq. 30), P_t = 1.

    W and F enter with unit-norm rows / columns (the phase-shifter matrices divided by
    sqrt(Nr) and sqrt(Nt)), each of the N_s streams carrying P_t / N_s; the noise after
    combining is then white with variance N0 when the rows of W are orthogonal. ``whiten``
    uses the exact noise covariance N0 W W^H instead (it matters when rows are close).

    Shapes: h_k (B, Nr, Nt, Q, F), f (B, Nt, Ns), w (B, Nrf, Nr) -> (B, Q, F) in bit/s/Hz.
    """
    f = f / f.abs().square().sum(1, keepdim=True).clamp_min(1e-20).sqrt()
    w = w / w.abs().square().sum(2, keepdim=True).clamp_min(1e-20).sqrt()
    heff = torch.einsum("bir,bruqn,bus->bqnis", w, h_k, f)             # (B, Q, F, Nrf, Ns)
    c = 1.0 / (f.shape[-1] * n0)
    gram = c * heff @ heff.mH
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    if whiten:
        r = (w @ w.mH)[:, None, None] + 1e-6 * eye
        return (_logdet(r + gram) - _logdet(r)) / math.log(2.0)
    return _logdet(eye + gram) / math.log(2.0)


def _logdet(m: torch.Tensor) -> torch.Tensor:
    m = 0.5 * (m + m.mH)
    return 2.0 * torch.log(torch.diagonal(torch.linalg.cholesky(m), dim1=-2, dim2=-1).real).sum(-1)


@register("sink.hybrid_se")
class HybridSE(Sink):
    """Spectral efficiency of the two UEs' hybrid links, each without inter-user interference
    (seed 002, eqs. 30-31; the loss of eq. 32 is its negative).

        eta_{k,q,n} = log2 det(I + (P_t / sigma^2) (W_RF H[k,q,n] F_RF[k]) (W_RF H[k,q,n] F_RF[k])^H)
    with unit-norm rows of W_RF and columns of F_RF (see :func:`hybrid_rates`), sigma^2 = N0 =
    10^(-snr_db/10). value = sum_k of the mean over data symbols q and subcarriers n
    (eq. 31 up to the constant Q N_c), in bit/s/Hz per RE.

    ``symbols: first`` evaluates only data symbol 0 (the authors' code: OFDM symbol L);
    ``reduce: min`` takes the weaker user instead of the sum (the code's max-min objective).
    Differentiable in f1, f2 and w (Stage II).

    Shapes: h complex (B, Nr, K*Nt, S, F), f1, f2 complex (B, Nt, Ns), w complex (B, Nrf, Nr)
            -> value real (B,) in bit/s/Hz.
    """
    inputs = {"h": Port("complex", ("B", "Nr", "Ntk", "S", "F"), tag="csi", doc="uplink channel draw"),
              "f1": Port("complex", ("B", "Nt", "Ns"), tag="csi", doc="UE 1 analog precoder"),
              "f2": Port("complex", ("B", "Nt", "Ns"), tag="csi", doc="UE 2 analog precoder"),
              "w": Port("complex", ("B", "Nrf", "Nr"), tag="csi", doc="BS analog combiner")}
    params = {
        **array_params("bs_antennas", "ue_antennas", "n_subcarriers"),
        "snr_db": Param(float, 10.0, "SNR P_t / sigma^2 in dB (per BS antenna)", runtime=True),
        "first_symbol": Param(int, 8, "OFDM symbol of data symbol 0 (= L)"),
        "q_symbols": Param(int, 4, "data OFDM symbols Q"),
        "symbols": Param(str, "all", "all data symbols (eq. 31) or the first only (the code)",
                         choices=("all", "first")),
        "reduce": Param(str, "sum", "sum over users (eq. 31) or min (the code's max-min)",
                        choices=("sum", "min")),
        "whiten": Param(bool, False, "exact noise covariance N0 W W^H after combining"),
    }
    unit = "bit/s/Hz"
    higher_is_better = True

    @classmethod
    def bind_dims(cls, p):
        return {"Nr": p["bs_antennas"], "Ntk": N_USERS * p["ue_antennas"], "Nt": p["ue_antennas"],
                "F": p["n_subcarriers"]}

    def forward(self, h, f1, f2, w):
        p = self.p
        n_sym = 1 if p.symbols == "first" else p.q_symbols
        check_channel(self.type_id, h, p.bs_antennas, p.ue_antennas, p.n_subcarriers,
                      p.first_symbol + n_sym)
        h_data = h[:, :, :, p.first_symbol:p.first_symbol + n_sym]
        n0 = noise_var(p.snr_db)
        per_user = torch.stack([
            hybrid_rates(user_channel(h_data, k, p.ue_antennas), f.to(h.dtype), w.to(h.dtype), n0,
                         p.whiten).mean(dim=(1, 2)) for k, f in enumerate((f1, f2))], dim=1)   # (B, K)
        value = per_user.min(1).values if p.reduce == "min" else per_user.sum(1)
        return {"value": value}
