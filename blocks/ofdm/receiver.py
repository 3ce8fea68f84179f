"""OFDM receiver: LS channel estimation with interpolation and LMMSE equalization (Sionna).

Seed 003, Sec. IV (classical benchmark): "At the receiver, Least Squares channel estimation
is first performed to acquire the channel state information. Subsequently, Linear Minimum
Mean Squared Error equalization is applied to recover the transmitted symbols based on the
estimated channel and noise variance." Both blocks rebuild the resource grid of
``csirs.ofdm_grid`` from the same params (n_symbols, n_subcarriers, n_streams,
pilot_symbols, pilot_seed), so they know its pilots and data REs.
"""
from __future__ import annotations

import torch

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register

from ._sionna import (grid_cache, grid_from_params, grid_params, noise_var, num_data,
                      sionna_state_safe)

_SNR = Param(float, 10.0, "SNR = Es/N0 per receive antenna in dB; N0 = 10^(-snr_db/10) is the "
                          "noise variance assumed by the receiver", runtime=True)


@register("estimator.ls_ofdm")
class LSOFDM(Block):
    """Least-squares OFDM channel estimation with interpolation (seed 003, Sec. IV; Sionna
    ``LSChannelEstimator``).

    At pilot REs of stream n: h_ls = y p* / |p|^2 with error variance N0 / |p|^2; the
    estimates are then interpolated over the grid: ``nn`` (nearest pilot), ``lin`` (linear
    in frequency, then in time between pilot OFDM symbols) or ``lin_time_avg`` (linear in
    frequency, averaged over the pilot OFDM symbols). For a precoded transmission the
    estimate is the effective channel of each stream.

    Shapes: y complex (B, K, S, F) -> h_hat complex (B, K, Nt, S, F),
            err_var real (B, K, Nt, S, F); Nt = n_streams (streams carrying pilots).
    """
    inputs = {"y": Port("complex", ("B", "K", "S", "F"), tag="symbols", doc="received grid per UE")}
    outputs = {"h_hat": Port("complex", ("B", "K", "Nt", "S", "F"), tag="csi", doc="LS estimate"),
               "err_var": Port("real", ("B", "K", "Nt", "S", "F"), doc="estimation error variance")}
    params = {**grid_params(),
              "interpolation": Param(str, "lin", "nn (nearest), lin (linear), lin_time_avg",
                                     choices=("nn", "lin", "lin_time_avg")),
              "snr_db": _SNR}

    def __init__(self, **params):
        super().__init__(**params)
        if not self.p.pilot_symbols:
            raise ValueError("estimator.ls_ofdm: needs at least one pilot OFDM symbol")
        self._sn = grid_cache(self)

    @classmethod
    def bind_dims(cls, p):
        return {"S": int(p["n_symbols"]), "F": int(p["n_subcarriers"]), "Nt": int(p["n_streams"])}

    def _build(self, device):
        from sionna.phy.ofdm import LSChannelEstimator
        rg = grid_from_params(self.p, device)
        return LSChannelEstimator(rg, interpolation_type=self.p.interpolation, device=device)

    @sionna_state_safe
    def forward(self, y):
        b, k, s, f = y.shape
        est = self._sn.get(y.device)
        no = torch.tensor(noise_var(self.p.snr_db), dtype=torch.float32, device=y.device)
        h_hat, err = est(y.unsqueeze(2), no)            # [B, K, 1, 1, Nt, S, F]
        nt = int(self.p.n_streams)
        return {"h_hat": h_hat.reshape(b, k, nt, s, f), "err_var": err.reshape(b, k, nt, s, f)}


@register("combiner.lmmse_ofdm")
class LMMSEOFDM(Block):
    """LMMSE equalization of an OFDM grid (seed 003, Sec. IV; Sionna ``LMMSEEqualizer``).

    Per RE, x_hat = (H^H (H H^H + S)^-1 applied and bias-corrected, Sionna's ``lmmse_equalizer``),
    where S is the noise-plus-estimation-error covariance N0 I + sum_n err_var_n I; it returns
    soft symbols and their effective noise variances (for ``classical.qam_demap``), at the data
    REs only, in resource-grid order (the layout of ``csirs.ofdm_grid``'s input).

    mode = "per_user": downlink MU-MIMO, each single-antenna UE k detects its own stream k and
           treats the other streams as interference (needs Nt = K; h_hat is the effective,
           precoded channel estimated from precoded pilots). Output row k comes from UE k.
    mode = "joint":    one receiver with K antennas detects all Nt streams jointly
           (point-to-point MIMO / uplink at the BS; needs K >= Nt for a useful result).

    ``err_var`` unconnected means perfect CSI (zero error variance).

    Shapes: y complex (B, K, S, F), h_hat complex (B, K, Nt, S, F),
            err_var real (B, K, Nt, S, F) optional
            -> x_hat complex (B, Nt, D), no_eff real (B, Nt, D).
    """
    inputs = {"y": Port("complex", ("B", "K", "S", "F"), tag="symbols", doc="received grid"),
              "h_hat": Port("complex", ("B", "K", "Nt", "S", "F"), tag="csi", doc="channel estimate"),
              "err_var": Port("real", ("B", "K", "Nt", "S", "F"), optional=True,
                              doc="channel estimation error variance (default 0)")}
    outputs = {"x_hat": Port("complex", ("B", "Nt", "D"), tag="symbols", doc="equalized data symbols"),
               "no_eff": Port("real", ("B", "Nt", "D"), doc="effective noise variance per symbol")}
    params = {**grid_params(),
              "mode": Param(str, "per_user", "per_user (downlink MU-MIMO, Nt = K) or joint",
                            choices=("per_user", "joint")),
              "whiten_interference": Param(bool, True, "whiten interference before equalizing "
                                                       "(Sionna; numerically more stable)"),
              "snr_db": _SNR}

    def __init__(self, **params):
        super().__init__(**params)
        self._sn = grid_cache(self)

    @classmethod
    def bind_dims(cls, p):
        d = {"S": int(p["n_symbols"]), "F": int(p["n_subcarriers"]), "Nt": int(p["n_streams"]),
             "D": num_data(p)}
        if p["mode"] == "per_user":
            d["K"] = int(p["n_streams"])
        return d

    def _build(self, device):
        import numpy as np
        from sionna.phy.mimo import StreamManagement
        from sionna.phy.ofdm import LMMSEEqualizer
        rg = grid_from_params(self.p, device)
        nt = int(self.p.n_streams)
        if self.p.mode == "per_user":
            sm = StreamManagement(np.ones([nt, 1], dtype=int), nt)     # K = Nt receivers, 1 stream each
        else:
            sm = StreamManagement(np.ones([1, 1], dtype=int), nt)      # one receiver, Nt streams
        return LMMSEEqualizer(rg, sm, whiten_interference=bool(self.p.whiten_interference),
                              device=device)

    @sionna_state_safe
    def forward(self, y, h_hat, err_var=None):
        b, k, s, f = y.shape
        nt = int(self.p.n_streams)
        if self.p.mode == "per_user":
            if k != nt:
                raise ValueError(f"combiner.lmmse_ofdm: mode per_user needs K = Nt, got K={k}, Nt={nt}")
            y7, h7 = y.unsqueeze(2), h_hat.unsqueeze(2).unsqueeze(3)    # [B,K,1,S,F], [B,K,1,1,Nt,S,F]
        else:
            y7, h7 = y.unsqueeze(1), h_hat.unsqueeze(1).unsqueeze(3)    # [B,1,K,S,F], [B,1,K,1,Nt,S,F]
        if err_var is None:
            ev = torch.zeros((), dtype=torch.float32, device=y.device)
        else:
            ev = err_var.unsqueeze(2 if self.p.mode == "per_user" else 1).unsqueeze(3)
        no = torch.tensor(noise_var(self.p.snr_db), dtype=torch.float32, device=y.device)
        x_hat, no_eff = self._sn.get(y.device)(y7, h7, ev, no)          # [B, 1, Nt, D]
        return {"x_hat": x_hat[:, 0], "no_eff": no_eff[:, 0]}


@register("combiner.zf_ofdm")
class ZFOFDM(Block):
    """Zero-forcing detection on every RE of an OFDM grid with an estimated channel (seed 002,
    Sec. IV-A: the separated baselines' "multi-user signal demodulation" after DMRS estimation).

    Per RE, x_hat = (H^H H)^-1 H^H y with the (K x Nt) channel estimate of that RE (K receive
    rows: antennas or RF chains; Nt streams, K >= Nt). ``csirs.ofdm_extract`` then keeps the
    data REs. Unlike ``combiner.lmmse_ofdm`` it needs no noise variance, so a receiver AGC does
    not affect it. Differentiable in y.

    Shapes: y complex (B, K, S, F), h_hat complex (B, K, Nt, S, F) -> x_hat complex (B, Nt, S, F).
    """
    inputs = {"y": Port("complex", ("B", "K", "S", "F"), tag="symbols", doc="received grid"),
              "h_hat": Port("complex", ("B", "K", "Nt", "S", "F"), tag="csi", doc="channel estimate")}
    outputs = {"x_hat": Port("complex", ("B", "Nt", "S", "F"), tag="symbols", doc="detected streams per RE")}
    params = {}

    def forward(self, y, h_hat):
        k, nt = h_hat.shape[1], h_hat.shape[2]
        if k < nt:
            raise ValueError(f"combiner.zf_ofdm: {k} receive rows cannot separate {nt} streams")
        hm = h_hat.to(y.dtype).permute(0, 3, 4, 1, 2)                 # (B, S, F, K, Nt)
        x = torch.linalg.solve(hm.mH @ hm, hm.mH @ y.permute(0, 2, 3, 1).unsqueeze(-1))
        return {"x_hat": x.squeeze(-1).permute(0, 3, 1, 2)}
