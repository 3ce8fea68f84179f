"""UE-MSFNet and BS-MSFNet: source-channel semantic fusion at the UEs and at the BS of seed 002
(CSC-SA-Net, Secs. III-E, III-F, III-G, eqs. 20-27, Figs. 5-7).

The feature grid maps onto the subcarriers: position (i, j) of the Hs x Ws grid of the MFNet
encoder sits on subcarrier n = Ws i + j (the authors' code; the paper's 10 x 10 grid on its
N_c = 100 subcarriers). NOMA (``access: noma``): every UE uses all N_c subcarriers. OMA
(``access: oma``): the encoder pools once more (by ``oma_pool``) to N_c / 2 positions, UE k
sends on subcarriers k, k + 2, ... (``channel.hybrid_uplink``), and the BS reassembles the two
users' halves (``oma_combine``).
"""
from __future__ import annotations

import torch
from torch import nn

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register

from ._common import array_params, check_positive
from ._mfnet import SFA, MFNetDecoder, MFNetEncoder, check_geometry, check_widths

#: params shared by both MSFNets (MFNet geometry, access, SFA, payload)
_SHARED = {
    "height": Param(int, 480, "image height H (seed 002: 480)"),
    "width": Param(int, 640, "image width W (seed 002: 640)"),
    "widths": Param(list, [16, 48, 48, 96, 192], "MFNet stage widths (MFNet: 16, 48, 48, 96, 192)"),
    "compress": Param(list, [96, 96], "widths of the compress convs between the last stage and d_s "
                                      "(the code: 96, 96)"),
    "d_s": Param(int, 64, "source semantic feature channels d_s (seed 002: 64)"),
    "pool5": Param(list, [3, 4], "fifth max-pool (H, W) after the four /2 pools (seed 002 at "
                                 "480 x 640: [3, 4] -> 10 x 10 grid = N_c); [1, 1] = none"),
    "oma_pool": Param(list, [1, 2], "OMA: extra pooling factor (H, W) halving the grid to N_c / 2 "
                                    "positions (the code at 480 x 640: [2, 1])"),
    "access": Param(str, "noma", "noma (superposition, the proposed system) or oma (each UE on half "
                                 "the subcarriers)", choices=("noma", "oma")),
    "q_symbols": Param(int, 4, "data OFDM symbols Q per UE (seed 002: 1 and 4; Fig. 11 sweeps 1-5)"),
    "sfa": Param(bool, True, "SFA gating by the channel semantic feature (Sec. III-G); false: "
                             "G = 1 and no s_csi input"),
    "csi_gating": Param(bool, True, "use the SFA gating now (false: G = 1 for this stage; Stage I "
                                    "'ignoring any CSI semantic features')", runtime=True),
    "d_c": Param(int, 16, "CSI context size d_c of the SFA (seed 002: 16)"),
    "d_csi": Param(int, 192, "width d_CSI of the channel semantic feature s_csi"),
    **array_params("n_subcarriers"),
}


def _geometry(where: str, p) -> tuple[int, int, list[int]]:
    """(Hs, Ws, pooling) of the feature grid for this block's access mode; checks N_c."""
    widths, _ = check_widths(where, p["widths"], p["compress"])
    pool = [int(a) for a in p["pool5"]]
    if p["access"] == "oma":
        pool = [a * int(b) for a, b in zip(pool, p["oma_pool"])]
    hs, ws = check_geometry(where, p["height"], p["width"], pool)
    n_pos = hs * ws
    expected = p["n_subcarriers"] // 2 if p["access"] == "oma" else p["n_subcarriers"]
    if n_pos != expected or (p["access"] == "oma" and p["n_subcarriers"] % 2):
        raise ValueError(f"{where}: the {hs}x{ws} feature grid ({p['access']}) has {n_pos} positions, "
                         f"but N_c = {p['n_subcarriers']} needs {expected}")
    return hs, ws, pool


def _check_shared(where: str, p) -> tuple[int, int, list[int]]:
    check_positive(where, p, ("height", "width", "d_s", "q_symbols", "d_c", "d_csi", "n_subcarriers"))
    if len(p["pool5"]) != 2 or len(p["oma_pool"]) != 2:
        raise ValueError(f"{where}: pool5 and oma_pool take two values (H, W)")
    return _geometry(where, p)


def _grid_dims(p) -> dict:
    pool = [int(a) for a in p["pool5"]]
    if p["access"] == "oma":
        pool = [a * int(b) for a, b in zip(pool, p["oma_pool"])]
    n_pos = (p["height"] // (16 * pool[0])) * (p["width"] // (16 * pool[1]))
    return {"H": p["height"], "W": p["width"], "Q": p["q_symbols"], "Fk": n_pos,
            "F": p["n_subcarriers"], "Dc": p["d_csi"]}


@register("extractor.ue_msfnet")
class UEMSFNet(Block):
    """UE-side multimodal semantic fusion network of one UE (seed 002, Sec. III-E, eqs. 20-21, Fig. 5).

    The MFNet encoder (``in_channels`` 3 for the RGB UE, 1 for the thermal UE) extracts the
    source semantic feature F_s (d_s x Hs x Ws); the SFA module (eqs. 23-27) recalibrates it
    with the UE's channel semantic feature S_CSI,UE[k]; a fully connected layer per grid
    position gives 2 Q N_RF,t reals, i.e. the baseband symbols S_BB[k] on the position's
    subcarrier (Q symbols x N_RF,t streams, real and imaginary parts). No DMRS is inserted
    ("implicit DMRS"). Power (eq. 20, P_t = 1): S_BB <- sqrt(P_t N Q) S_BB / ||F_RF S_BB||_F
    (``power_norm: eq20``, needs f_rf), i.e. unit energy per RE at the antennas; ``baseband``
    (the code) scales S_BB alone to mean ||s||^2 = P_t / N_t per RE, which is the same for
    orthogonal unit-modulus columns of F_RF.

    ``symbol_map: code_real_only`` reproduces the authors' code, which sets imag = real
    (half the head's outputs are never used). ``sfa: false`` removes the SFA module.

    Shapes: image real (B, C, H, W) in [0, 1], s_csi real (B, F, D_csi) optional (sfa),
            f_rf complex (B, Nt, N_RF,t) optional (eq20)
            -> s_bb complex (B, N_RF,t, Q, Fk), Fk = F (noma) or F / 2 (oma).
    Taps: ``feat`` the source semantic feature F_s (B, d_s, Hs, Ws); ``gate`` the SFA factors
          G (B, d_s).
    """
    inputs = {"image": Port("real", ("B", "C", "H", "W"), tag="image", doc="RGB or thermal image"),
              "s_csi": Port("real", ("B", "F", "Dc"), optional=True, doc="UE-side channel semantics"),
              "f_rf": Port("complex", ("B", "Nt", "Nrf"), tag="csi", optional=True,
                           doc="the UE's analog precoder (eq. 20)")}
    outputs = {"s_bb": Port("complex", ("B", "Nrf", "Q", "Fk"), tag="symbols",
                            doc="baseband semantic symbols S_BB[k]")}
    params = {
        "in_channels": Param(int, 3, "image channels C (3 = RGB UE, 1 = thermal UE)"),
        **_SHARED,
        **array_params("ue_antennas", "ue_rf"),
        "power_norm": Param(str, "eq20", "eq20 (||F_RF S_BB|| of eq. 20) or baseband (the code)",
                            choices=("eq20", "baseband")),
        "symbol_map": Param(str, "complex", "complex (re + j im) or code_real_only (imag = real, "
                                            "the code's bug)", choices=("complex", "code_real_only")),
    }
    taps = {"feat": "source semantic feature F_s (B, d_s, Hs, Ws)", "gate": "SFA factors G (B, d_s)"}

    @classmethod
    def bind_dims(cls, p):
        return {**_grid_dims(p), "C": p["in_channels"], "Nt": p["ue_antennas"], "Nrf": p["ue_rf"]}

    def __init__(self, **params):
        super().__init__(**params)
        p = self.p
        self.hs, self.ws, pool = _check_shared(self.type_id, p)
        check_positive(self.type_id, p, ("in_channels", "ue_antennas", "ue_rf"))
        self.encoder = MFNetEncoder(p.in_channels, p.widths, p.compress, p.d_s, pool)
        self.sfa = SFA(p.d_s, p.n_subcarriers * p.d_csi, p.d_c) if p.sfa else None
        self.head = nn.Linear(p.d_s, 2 * p.q_symbols * p.ue_rf)

    def forward(self, image, s_csi=None, f_rf=None):
        p = self.p
        feat = self.encoder(image)                                       # F_s (B, d_s, Hs, Ws)
        self.publish("feat", feat)
        if self.sfa is not None and p.csi_gating:
            if s_csi is None:
                raise ValueError(f"{self.type_id}: sfa needs the input 's_csi' (or set sfa: false)")
            feat, g = self.sfa(feat, s_csi)
            self.publish("gate", g)
        b = feat.shape[0]
        v = self.head(feat.flatten(2).transpose(1, 2))                   # (B, Fk, 2 Q N_RF,t)
        v = v.reshape(b, -1, p.q_symbols, p.ue_rf, 2)
        imag = v[..., 0] if p.symbol_map == "code_real_only" else v[..., 1]
        s = torch.complex(v[..., 0], imag).permute(0, 3, 2, 1)           # (B, N_RF,t, Q, Fk)
        if p.power_norm == "eq20":
            if f_rf is None:
                raise ValueError(f"{self.type_id}: power_norm eq20 needs the input 'f_rf'")
            x = torch.einsum("bur,brqn->buqn", f_rf.to(s.dtype), s)     # F_RF S_BB
            energy = x.abs().square().sum(dim=(1, 2, 3))
        else:
            energy = s.abs().square().sum(dim=(1, 2, 3)) * p.ue_antennas
        scale = torch.sqrt(s.shape[2] * s.shape[3] / energy.clamp_min(1e-20))   # P_t = 1
        return {"s_bb": s * scale[:, None, None, None]}


@register("decoder.bs_msfnet")
class BSMSFNet(Block):
    """BS-side multimodal semantic fusion network (seed 002, Sec. III-F, eq. 22, Fig. 6).

    The aggregated baseband signal Y_BB (N_RF,r x Q x N_c) is read per subcarrier as
    2 N Q reals (real and imaginary parts) on the feature grid; a fully connected layer
    maps them to d_s channels (F_y, d_s x Hs x Ws), the SFA module fuses it with the BS-side
    channel semantic feature S_CSI,BS, and the MFNet decoder (nearest unpooling, no skips)
    gives 9-class segmentation logits R. No channel estimation and no per-user detection:
    under NOMA the two modalities arrive superimposed ("over-the-air semantic fusion").

    OMA: the BS splits y into UE 1's subcarriers (0, 2, ...) and UE 2's (1, 3, ...) and
    concatenates the two users' features per position (``oma_combine: concat``, the paper's
    "the two users' received features are concatenated"), or adds them (``sum``, the code).
    The same block decodes the separated baseline's ZF-equalised symbols: there the N rows
    of y are the users' streams and ``sfa`` is false.

    Shapes: y complex (B, N, Q, F), s_csi real (B, F, D_csi) optional (sfa)
            -> logits real (B, n_classes, H, W).
    Taps: ``pred`` the predicted label map argmax (B, H, W); ``gate`` the SFA factors (B, d_s).
    """
    inputs = {"y": Port("complex", ("B", "N", "Q", "F"), tag="symbols", doc="received baseband Y_BB"),
              "s_csi": Port("real", ("B", "F", "Dc"), optional=True, doc="BS-side channel semantics")}
    outputs = {"logits": Port("real", ("B", "Cls", "H", "W"), tag="logits", doc="segmentation logits R")}
    params = {
        **_SHARED,
        "n_rows": Param(int, 2, "rows N of y: BS RF chains N_RF,r (seed 002: 2), or user streams"),
        "n_classes": Param(int, 9, "segmentation classes (MFNet: 9, unlabelled included)"),
        "oma_combine": Param(str, "concat", "OMA: concat (the paper) or sum (the code) of the two "
                                            "users' received features", choices=("concat", "sum")),
    }
    taps = {"pred": "predicted label map (B, H, W)", "gate": "SFA factors G (B, d_s)"}

    @classmethod
    def bind_dims(cls, p):
        d = _grid_dims(p)
        return {"H": d["H"], "W": d["W"], "Q": d["Q"], "F": d["F"], "Dc": d["Dc"],
                "N": p["n_rows"], "Cls": p["n_classes"]}

    def __init__(self, **params):
        super().__init__(**params)
        p = self.p
        self.hs, self.ws, pool = _check_shared(self.type_id, p)
        check_positive(self.type_id, p, ("n_rows", "n_classes"))
        per_user = 2 * p.n_rows * p.q_symbols
        concat = p.access == "oma" and p.oma_combine == "concat"
        self.embed = nn.Linear(2 * per_user if concat else per_user, p.d_s)
        self.sfa = SFA(p.d_s, p.n_subcarriers * p.d_csi, p.d_c) if p.sfa else None
        self.decoder = MFNetDecoder(p.n_classes, p.widths, p.compress, p.d_s, pool)

    def _features(self, y):
        """(B, N, Q, F) complex -> (B, positions, reals per position)."""
        def reals(t):                                  # (B, N, Q, n) -> (B, n, 2 N Q)
            t = t.flatten(1, 2).transpose(1, 2)
            return torch.cat([t.real, t.imag], dim=-1)
        if self.p.access == "noma":
            return reals(y)
        y1, y2 = y[..., 0::2], y[..., 1::2]            # UE 1's and UE 2's subcarriers
        if self.p.oma_combine == "sum":
            return reals(y1 + y2)
        return torch.cat([reals(y1), reals(y2)], dim=-1)

    def forward(self, y, s_csi=None):
        p = self.p
        x = self.embed(self._features(y).float())                           # (B, Fk, d_s)
        feat = x.transpose(1, 2).reshape(x.shape[0], p.d_s, self.hs, self.ws)
        if self.sfa is not None and p.csi_gating:
            if s_csi is None:
                raise ValueError(f"{self.type_id}: sfa needs the input 's_csi' (or set sfa: false)")
            feat, g = self.sfa(feat, s_csi)
            self.publish("gate", g)
        logits = self.decoder(feat)
        self.publish("pred", logits.argmax(1))
        return {"logits": logits}
