"""CSI known at the transmitter: draw a 38.901 OFDM channel before the signal exists.

The OFDM channel blocks of ``blocks.ofdm`` draw H inside ``forward(x)``, which is the right
shape for receivers that estimate the channel. Seed 003's BS, however, uses the channel
before it transmits ("we assumed that the channel responses and noise variance are known
at the transmitter", Sec. III): the encoder's scenario adaptation and the precoder both
need H. A graph therefore splits the channel in two blocks:

    channel.ofdm_draw   ref -> h          a fresh UMi / UMa / RMa drop per batch (Sionna,
                                          through the ``channel.umi/uma/rma`` blocks)
    channel.apply       x, h -> y         y = H x + n per resource element (eq. 1;
                                          ``blocks.glue``)
"""
from __future__ import annotations

import math

import torch

from flowgraph import registry
from flowgraph.block import Block, Param, Port
from flowgraph.registry import register

from ..ofdm._sionna import sionna_state_safe
from ..ofdm.channels import NORMALIZE

#: params forwarded to the wrapped ``channel.<scenario>`` block
_FORWARDED = ("n_subcarriers", "n_symbols", "n_users", "carrier_frequency", "subcarrier_spacing",
              "cyclic_prefix", "min_speed", "max_speed", "los", "normalize", "pathloss", "shadow_fading")


@register("channel.ofdm_draw")
class OFDMChannelDraw(Block):
    """Draw the downlink CSI of a 3GPP TR 38.901 scenario for one batch (seed 003, Sec. II, Table II).

    Wraps the OFDM library's ``channel.umi`` / ``channel.uma`` / ``channel.rma`` (Sionna; BS
    with 4 antennas: 1 x 2 panel, dual cross-polarized, 38.901 pattern; K single-antenna
    UEs; 2.6 GHz, 15 kHz, CP 20; a new single-sector drop per batch, "the user locations
    and propagation geometry are randomly generated at each training"), but only draws H:
    no signal passes. Use ``channel.apply`` (``blocks.glue``) with the same h to transmit.

    ``user_correlation`` rho makes the multi-user channel ill-conditioned on purpose:
    h_k <- sqrt(1 - rho) h_k + sqrt(rho) h_0 for every user k >= 1. rho = 0 (default) leaves
    the 38.901 draw alone; rho = 1 gives every user the same channel, so H H^H is singular
    at every RE (the ZF failure of seed 003 Fig. 10 then occurs deterministically: at
    the paper's 4 x 4 size, 38.901 drops rarely exceed condition number ~500).

    ``scenario`` is a runtime param: one trained model can see UMi, UMa and RMa drops in
    turn (a train stage with ``scenario: choice([umi, uma, rma])`` redraws it per batch),
    and an evaluation sweep can list the scenarios. This is the paper's setting: "training
    separate models for every scenario is inefficient" (Sec. I), and the scenario
    adaptation exists so that one model serves all three. Each scenario keeps its own
    Sionna model, built on first use.

    ``normalize`` (``channel.umi``'s): ``per_link`` (default) gives every UE link unit average
    gain, which removes the path-loss differences between users that the scenario
    adaptation could read from |H|; ``per_drop`` with ``pathloss`` and ``shadow_fading``
    keeps them, with unit mean gain over the drop's K links (snr_db is then Es/N0 per receive
    antenna averaged over the drop's users).

    ``ref`` is any tensor whose first dim is the batch (e.g. the source images): it only
    sets B and the device.

    Shapes: ref (B, ...) -> h complex (B, K, Nt, S, F), Nt = 4, E|h|^2 = 1 per link
            (per_link) or over the K links (per_drop).
    """
    inputs = {"ref": Port("any", ("B", "..."), doc="any tensor with the batch first (sets B, device)")}
    outputs = {"h": Port("complex", ("B", "K", "Nt", "S", "F"), tag="csi",
                         doc="channel frequency response per UE, Tx antenna, RE")}
    params = {
        "scenario": Param(str, "umi", "3GPP TR 38.901 scenario (seed 003: umi, uma, rma)",
                          choices=("umi", "uma", "rma"), runtime=True),
        "n_subcarriers": Param(int, 64, "subcarriers F = N_f (seed 003: 32, 64, 128)"),
        "n_symbols": Param(int, 14, "OFDM symbols S = N_t (seed 003: 14)"),
        "n_users": Param(int, 4, "single-antenna UEs K = N_k (seed 003: 4)"),
        "carrier_frequency": Param(float, 2.6e9, "carrier frequency [Hz] (seed 003: 2.6 GHz)"),
        "subcarrier_spacing": Param(float, 15e3, "subcarrier spacing [Hz] (seed 003: 15 kHz)"),
        "cyclic_prefix": Param(int, 20, "cyclic prefix [samples] (seed 003: 20)"),
        "min_speed": Param(float, 0.0, "minimum UE speed [m/s]"),
        "max_speed": Param(float, 0.0, "maximum UE speed [m/s]"),
        "los": Param(str, "random", "LoS state: random (38.901 probability), los or nlos",
                     choices=("random", "los", "nlos")),
        "normalize": Param(str, "per_link", "per_link: unit average gain per example and UE link (Sionna "
                                            "normalize_channel); per_drop: unit mean gain over the drop's K "
                                            "links (SNR per drop; with pathloss the users keep their "
                                            "differences); none: raw gains", choices=NORMALIZE),
        "pathloss": Param(bool, False, "38.901 path loss (meaningful with normalize per_drop or none)"),
        "shadow_fading": Param(bool, False, "38.901 shadow fading (as pathloss)"),
        "user_correlation": Param(float, 0.0, "rho in [0, 1]: mix every user's channel with user 0's "
                                              "(1 = identical users, singular H H^H)"),
    }

    @classmethod
    def bind_dims(cls, p):
        return {"K": p["n_users"], "Nt": 4, "S": p["n_symbols"], "F": p["n_subcarriers"]}

    def __init__(self, **params):
        super().__init__(**params)
        if not 0.0 <= self.p.user_correlation <= 1.0:
            raise ValueError(f"channel.ofdm_draw: user_correlation must be in [0, 1], got {self.p.user_correlation}")
        # scenario -> (wrapped channel block, batch size its topology was built for); a
        # plain attribute, not a submodule: the wrapped blocks have no weights and keep
        # their Sionna objects out of state_dict themselves
        self.__dict__["_channels"] = {}
        self._channel(self.p.scenario)

    def _channel(self, scenario: str):
        if scenario not in self._channels:
            cls = registry.get(f"channel.{scenario}")
            self._channels[scenario] = [cls(**{k: self.p[k] for k in _FORWARDED}), None]
        return self._channels[scenario]

    @sionna_state_safe
    def forward(self, ref):
        b = ref.shape[0]
        entry = self._channel(self.p.scenario)
        ch, built_for = entry
        if b != built_for:
            # Sionna's system-level models freeze the topology shapes on the first drop;
            # a new batch size (training vs. evaluation batches) needs a reset first.
            model = ch._sn.get(ref.device).get("model")
            if model is not None and built_for is not None:
                model.reset_topology()
            entry[1] = b
        h = ch.sample_h(b, ref.device)
        rho = self.p.user_correlation
        if rho > 0:
            mixed = math.sqrt(1.0 - rho) * h[:, 1:] + math.sqrt(rho) * h[:, :1]
            h = torch.cat([h[:, :1], mixed], dim=1)
        return {"h": h}

