"""The uplink data phase of seed 002 (CSC-SA-Net, Sec. II, eqs. 2-4): analog precoding at the UEs,
superposition (NOMA) or orthogonal subcarriers (OMA) over the time-varying channel, analog
combining at the BS."""
from __future__ import annotations

import torch

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register

from ._common import N_USERS, array_params, awgn, check_channel, check_positive, normalize_power, user_channel


@register("channel.hybrid_uplink")
class HybridUplink(Block):
    """Hybrid analog-digital uplink of two UEs to the BS (seed 002, eqs. 2-4).

    s[k, q, n] = F_RF[k] s_BB[k, q, n] (eq. 2); y[q, n] = sum_k H[k, L+q, n] s[k, q, n] + n[q, n]
    (eq. 3, noise CN(0, N0 I) at the BS antennas, N0 = 10^(-snr_db/10)); y_BB = W_RF y (eq. 4).
    The channel of data symbol q is the draw's OFDM symbol ``first_symbol`` + q (the CSI-RS
    occupied symbols 0 .. L-1): the Doppler ages it between CSI acquisition and data.

    access = "noma": both UEs send on all F subcarriers and superimpose at the BS (the
             proposed system, "non-orthogonal superimposed at the BS receive antennas").
    access = "oma":  UE k's F/2 symbols go on subcarriers k, k+2, ... (the code's frequency
             interleave), so the users never interfere; y holds both on the full grid.

    ``tx_norm: per_ue`` scales each UE's antenna signal F_RF s to unit mean energy per RE (eq.
    20 for transmitters that do not normalise themselves, e.g. the separated baseline, whose
    DMRS grid follows the source encoder); the default ``none`` leaves it to UE-MSFNet.
    ``noise_at: rf`` (the authors' code) adds i.i.d. noise after combining instead, with
    variance N0 ||w_i||^2 on RF chain i (the same per-chain SNR as antenna noise when the rows
    of W_RF are orthogonal). ``agc`` (the code; default on) scales y_BB to unit mean power per
    example, a receiver AGC: the decoder sees the same scale in every training stage.
    ``ideal`` (runtime) replaces the whole link by the identity equivalent channel without
    noise, y_BB = sum_k s_BB[k] (OMA: each on its subcarriers): Stage I of Sec. III-H-1,
    "assuming the baseband equivalent channel is the identity matrix with no noise"
    (needs N_RF,r = N_RF,t).

    Shapes: s1, s2 complex (B, N_RF,t, Q, Fk) (Fk = F, or F/2 for oma),
            h complex (B, Nr, K*Nt, S, F) with S >= first_symbol + Q,
            f1, f2 complex (B, Nt, N_RF,t), w complex (B, N_RF,r, Nr)
            -> y complex (B, N_RF,r, Q, F).
    Taps: ``h_eff`` the equivalent channels W_RF H[k] F_RF[k] (B, K, Q, F, N_RF,r, N_RF,t).
    """
    inputs = {"s1": Port("complex", ("B", "Ns", "Q", "Fk"), tag="symbols", doc="UE 1 baseband symbols"),
              "s2": Port("complex", ("B", "Ns", "Q", "Fk"), tag="symbols", doc="UE 2 baseband symbols"),
              "h": Port("complex", ("B", "Nr", "Ntk", "S", "F"), tag="csi", doc="uplink channel draw"),
              "f1": Port("complex", ("B", "Nt", "Ns"), tag="csi", doc="UE 1 analog precoder"),
              "f2": Port("complex", ("B", "Nt", "Ns"), tag="csi", doc="UE 2 analog precoder"),
              "w": Port("complex", ("B", "Nrf", "Nr"), tag="csi", doc="BS analog combiner")}
    outputs = {"y": Port("complex", ("B", "Nrf", "Q", "F"), tag="symbols", doc="combined baseband Y_BB")}
    params = {
        **array_params("bs_antennas", "bs_rf", "ue_antennas", "n_subcarriers"),
        "access": Param(str, "noma", "noma (superposition) or oma (UE k on subcarriers k::2)",
                        choices=("noma", "oma")),
        "first_symbol": Param(int, 8, "OFDM symbol of the draw that carries data symbol 0 (= L)"),
        "snr_db": Param(float, 10.0, "SNR = Es/N0 per BS antenna in dB", runtime=True),
        "tx_norm": Param(str, "none", "none (UE-MSFNet applies eq. 20) or per_ue (scale F_RF s to "
                                      "unit energy per RE here)", choices=("none", "per_ue")),
        "noise_at": Param(str, "antenna", "antenna (eq. 3) or rf (after combining, the code)",
                          choices=("antenna", "rf")),
        "agc": Param(bool, True, "scale y_BB to unit mean power per example (the code's receiver)"),
        "ideal": Param(bool, False, "identity equivalent channel, no noise (Stage I)", runtime=True),
    }
    taps = {"h_eff": "equivalent channels W_RF H[k] F_RF[k] (B, K, Q, F, N_RF,r, N_RF,t)"}

    @classmethod
    def bind_dims(cls, p):
        f = p["n_subcarriers"]
        return {"Nr": p["bs_antennas"], "Ntk": N_USERS * p["ue_antennas"], "Nt": p["ue_antennas"],
                "Nrf": p["bs_rf"], "F": f, "Fk": f // 2 if p["access"] == "oma" else f}

    def __init__(self, **params):
        super().__init__(**params)
        p = self.p
        check_positive(self.type_id, p, ("bs_antennas", "bs_rf", "ue_antennas", "n_subcarriers"))
        if p.first_symbol < 0:
            raise ValueError(f"{self.type_id}: first_symbol must be >= 0, got {p.first_symbol}")
        if p.access == "oma" and p.n_subcarriers % 2:
            raise ValueError(f"{self.type_id}: oma needs an even number of subcarriers, got {p.n_subcarriers}")

    def _spread(self, s: torch.Tensor, k: int) -> torch.Tensor:
        """UE k's symbols on the full F-subcarrier grid (OMA: subcarriers k::2, zeros elsewhere)."""
        if self.p.access == "noma":
            return s
        grid = s.new_zeros(*s.shape[:-1], self.p.n_subcarriers)
        grid[..., k::N_USERS] = s
        return grid

    def forward(self, s1, s2, h, f1, f2, w):
        p = self.p
        q = s1.shape[2]
        xs = [self._spread(s, k) for k, s in enumerate((s1, s2))]
        if p.ideal:
            if xs[0].shape[1] != p.bs_rf:
                raise ValueError(f"{self.type_id}: ideal needs N_RF,r = N_RF,t, got {p.bs_rf} and {xs[0].shape[1]}")
            y = xs[0] + xs[1]
        else:
            check_channel(self.type_id, h, p.bs_antennas, p.ue_antennas, p.n_subcarriers, p.first_symbol + q)
            w = w.to(s1.dtype)
            h_data = h[:, :, :, p.first_symbol:p.first_symbol + q]              # (B, Nr, K Nt, Q, F)
            y_ant = 0
            heff = []
            for k, (x, f) in enumerate(zip(xs, (f1, f2))):
                hk = user_channel(h_data, k, p.ue_antennas)                    # (B, Nr, Nt, Q, F)
                f = f.to(s1.dtype)
                if p.tx_norm == "per_ue":       # unit mean ||F_RF s||^2 over the UE's own REs
                    used = q * (p.n_subcarriers // 2 if p.access == "oma" else p.n_subcarriers)
                    energy = torch.einsum("bus,bsqn->buqn", f, x).abs().square().sum(dim=(1, 2, 3))
                    x = x * torch.sqrt(used / energy.clamp_min(1e-20))[:, None, None, None]
                hf = torch.einsum("bruqn,bus->bqnrs", hk, f)                   # H[k] F_RF[k]
                y_ant = y_ant + torch.einsum("bqnrs,bsqn->brqn", hf, x)        # eqs. (2)-(3)
                heff.append(torch.einsum("bir,bqnrs->bqnis", w, hf))
            self.publish("h_eff", torch.stack(heff, 1))
            if p.noise_at == "antenna":
                y_ant = y_ant + awgn(y_ant.shape, y_ant, p.snr_db)
            y = torch.einsum("bir,brqn->biqn", w, y_ant)                       # eq. (4)
            if p.noise_at == "rf":
                row = w.abs().square().sum(-1)                                 # ||w_i||^2
                y = y + awgn(y.shape, y, p.snr_db) * row.sqrt()[:, :, None, None]
        if p.agc:
            y = normalize_power(y, (1, 2, 3))
        return {"y": y}
