"""BS-CSIRS-Net: the learnable downlink CSI-RS of seed 002 (CSC-SA-Net, Sec. III-B, eqs. 9, 12-14)."""
from __future__ import annotations

import math

import torch
from torch import nn

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register

from ._common import N_USERS, array_params, awgn, check_channel, check_positive, normalize_power


@register("csirs.bs_csirsnet")
class BSCSIRSNet(Block):
    """Learnable downlink CSI-RS and the UEs' received pilots (seed 002 BS-CSIRS-Net, Sec. III-B).

    For OFDM symbols l = 0 .. L-1 and subcarriers n, UE k receives (eq. 9)
        Y_p[k, l, n] = V_RF[l] (H[k, l, n]^T X_RF[l] x_BB[l, n] + z[k, l, n]),
    with trainable x_BB[l, n] in C^{N_RF,r}, BS phases P_RF[l] in R^{N_r x N_RF,r} and UE
    combiner phases Q_RF[l] in R^{N_RF,t x N_t}: X_RF = exp(j P_RF) (eq. 12), V_RF =
    exp(j Q_RF) (eq. 13), both unit modulus; x_BB <- sqrt(P_t) x_BB / ||X_RF x_BB|| (eq. 14,
    P_t = 1: unit energy per RE summed over the BS antennas). The downlink channel is the
    transpose of the uplink H (TDD reciprocity, as the authors' code does); one V_RF set is
    shared by both UEs. The noise z ~ CN(0, N0 I) is taken at the UE antennas, before V_RF
    (the physical reading of eq. 9, consistent with eq. 3's antenna noise).

    Options from the authors' code (../shared/specs/seed002.md Sec. 6): ``pilot_noise: false``
    (noiseless CSI-RS), ``rf_param: free`` (X_RF an unconstrained complex matrix) and
    ``power_norm: rx_agc`` (no eq. 14; the received pilot is scaled to unit mean power per
    example instead).

    Shapes: h complex (B, Nr, K*Nt, S, F), S >= L (symbols 0 .. L-1 are used)
            -> y_p complex (B, K, F, L, N_RF,t), K = 2.
    Taps: ``x_rf`` X_RF (L, Nr, N_RF,r) and ``v_rf`` V_RF^H (L, Nt, N_RF,t): the analog CSI-RS
    matrices as (antennas, RF chains), the layout of the GUI's beam-pattern view.
    """
    inputs = {"h": Port("complex", ("B", "Nr", "Ntk", "S", "F"), tag="csi",
                        doc="uplink channel (channel.sparse_draw, model seed002)")}
    outputs = {"y_p": Port("complex", ("B", "K", "F", "L", "Nrf"), tag="symbols",
                           doc="received CSI-RS per UE, subcarrier, CSI-RS symbol, UE RF chain")}
    params = {
        "n_pilot_symbols": Param(int, 8, "CSI-RS OFDM symbols L (seed 002: 8; Fig. 8 sweeps 1-8)"),
        **array_params(),
        "pilot_noise": Param(bool, True, "add the CSI-RS noise z of eq. 9 (the authors' code: none)"),
        "snr_db": Param(float, 10.0, "CSI-RS SNR = Es/N0 per UE antenna in dB", runtime=True),
        "rf_param": Param(str, "phase", "X_RF = exp(j P_RF) (phase, eq. 12) or an unconstrained "
                                        "complex matrix (free, the code)", choices=("phase", "free")),
        "power_norm": Param(str, "tx_eq14", "tx_eq14 (eq. 14) or rx_agc (the code: received pilot "
                                            "scaled to unit mean power)", choices=("tx_eq14", "rx_agc")),
    }
    taps = {"x_rf": "analog BS CSI-RS matrices X_RF (L, Nr, N_RF,r)",
            "v_rf": "analog UE CSI-RS combiners as V_RF^H (L, Nt, N_RF,t)"}

    @classmethod
    def bind_dims(cls, p):
        return {"Nr": p["bs_antennas"], "Ntk": N_USERS * p["ue_antennas"], "F": p["n_subcarriers"],
                "K": N_USERS, "L": p["n_pilot_symbols"], "Nrf": p["ue_rf"]}

    def __init__(self, **params):
        super().__init__(**params)
        p = self.p
        check_positive(self.type_id, p, ("n_pilot_symbols", "bs_antennas", "bs_rf", "ue_antennas",
                                         "ue_rf", "n_subcarriers"))
        L, nr, crf, nt, urf, f = (p.n_pilot_symbols, p.bs_antennas, p.bs_rf, p.ue_antennas, p.ue_rf,
                                  p.n_subcarriers)
        self.x_bb = nn.Parameter(torch.randn(L, f, crf, 2) * math.sqrt(0.5))
        if p.rf_param == "phase":
            self.p_rf = nn.Parameter(torch.rand(L, nr, crf) * 2 * math.pi)
        else:
            self.x_rf_free = nn.Parameter(torch.randn(L, nr, crf, 2) * math.sqrt(0.5))
        self.q_rf = nn.Parameter(torch.rand(L, urf, nt) * 2 * math.pi)

    def analog(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(X_RF (L, Nr, N_RF,r), V_RF (L, N_RF,t, Nt)), eqs. (12)-(13)."""
        if self.p.rf_param == "phase":
            x_rf = torch.polar(torch.ones_like(self.p_rf), self.p_rf)
        else:
            x_rf = torch.view_as_complex(self.x_rf_free)
        return x_rf, torch.polar(torch.ones_like(self.q_rf), self.q_rf)

    def forward(self, h):
        p = self.p
        L, nt = p.n_pilot_symbols, p.ue_antennas
        check_channel(self.type_id, h, p.bs_antennas, nt, p.n_subcarriers, L)
        x_rf, v_rf = self.analog()
        x_rf, v_rf = x_rf.to(h.dtype), v_rf.to(h.dtype)
        x_bb = torch.view_as_complex(self.x_bb).to(h.dtype)                   # (L, F, N_RF,r)
        t = torch.einsum("lrc,lfc->lfr", x_rf, x_bb)                          # X_RF x_BB per RE
        if p.power_norm == "tx_eq14":
            t = t / t.abs().square().sum(-1, keepdim=True).clamp_min(1e-20).sqrt()   # eq. (14)
        # H^T X_RF x_BB for both UEs at once: a broadcast product summed over the BS antennas
        # (an einsum here would copy h into a batched-matvec layout: 10x slower)
        r = (h[:, :, :, :L] * t.permute(2, 0, 1)[None, :, None]).sum(1)      # (B, K Nt, L, F)
        if p.pilot_noise:
            r = r + awgn(r.shape, r, p.snr_db)
        r = r.reshape(r.shape[0], N_USERS, nt, L, -1)
        y_p = torch.einsum("liu,bkulf->bkfli", v_rf, r)                       # V_RF (...)
        if p.power_norm == "rx_agc":
            y_p = normalize_power(y_p, (2, 3, 4))
        self.publish("x_rf", x_rf.detach())
        self.publish("v_rf", v_rf.detach().mH)
        return {"y_p": y_p}
