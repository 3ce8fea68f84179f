"""UE-CSANet and BS-CSANet: channel semantics, feedback bits and the analog beams of seed 002
(CSC-SA-Net, Secs. III-C and III-D, eqs. 10-11, 15-19, Figs. 3-4, footnote 5)."""
from __future__ import annotations

import torch
from torch import nn

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register

from ._common import N_USERS, array_params, check_positive
from ._csanet import Branch, TransformerStack, dequantize, quantize, sine_positions, unit_modulus

_TRANSFORMER = {
    "d_model": Param(int, 192, "Transformer width d_model (the authors' code: 192)"),
    "heads": Param(int, 8, "attention heads (code: 8)"),
    "layers": Param(int, 2, "Transformer layers U per Transformer (code: 2)"),
    "ff": Param(int, 768, "MLP width of each Transformer layer (code: 768)"),
    "d_csi": Param(int, 192, "channel semantic feature width d_CSI (code: 192)"),
    "feedback_bits": Param(int, 1024, "feedback bits B per UE (seed 002: 1024; Fig. 9 sweeps 4-1024)"),
    "quant_bits": Param(int, 2, "bits per fed-back scalar (footnote 5: 2, four intervals; the "
                                "code: 4)"),
    "phase_param": Param(str, "exp", "analog matrix from real phases exp(j Theta) (exp, eqs. 16/18) "
                                     "or from complex values z/|z| (project, the code)",
                         choices=("exp", "project")),
}


def _check(where: str, p) -> None:
    check_positive(where, p, ("d_model", "heads", "layers", "ff", "d_csi", "feedback_bits", "quant_bits"))
    if p.feedback_bits % p.quant_bits:
        raise ValueError(f"{where}: feedback_bits {p.feedback_bits} is not a multiple of "
                         f"quant_bits {p.quant_bits}")


def _phases(n: int, param: str) -> int:
    """Network outputs needed for an analog matrix with n entries."""
    return n if param == "exp" else 2 * n


@register("estimator.ue_csanet")
class UECSANet(Block):
    """UE-side channel semantic-aware network of one UE (seed 002, Sec. III-C, eqs. 15-17, Fig. 3).

    The UE's received CSI-RS Y_p[k] (N_c x N_RF,t x L) is reshaped to N_c x N_RF,t L and its
    real and imaginary parts concatenated (eq. 15): a sequence of N_c subcarrier tokens of
    2 N_RF,t L reals. A linear embedding to d_model, a position embedding (sinusoidal, the
    paper; ``pos_embedding: learned`` is the code's zero-initialised table), U Transformer
    layers and a linear layer give the UE-side channel semantic feature S_CSI,UE (N_c x d_CSI).
    Two branches follow (each Linear + LayerNorm, a Transformer, a linear layer on the
    flattened sequence):

    * precoder: the phases Theta_RF of the analog precoder, F_RF = exp(j Theta_RF) (eq. 16),
      wideband (one matrix for all subcarriers and data symbols);
    * feedback: sigmoid codeword of B / quant_bits scalars, quantized to B bits (footnote 5:
      equal intervals on (0, 1), MSB first), with a straight-through gradient (``ste``).

    Shapes: y_p complex (B, K, F, L, N_RF,t) (row ``user`` is used)
            -> f_rf complex (B, Nt, N_RF,t) with |entries| = 1, bits real (B, Bfb) in {0, 1},
               s_csi real (B, F, D_csi).
    """
    inputs = {"y_p": Port("complex", ("B", "K", "F", "L", "Nrf"), tag="symbols",
                          doc="received CSI-RS of all UEs (csirs.bs_csirsnet)")}
    outputs = {"f_rf": Port("complex", ("B", "Nt", "Nrf"), tag="csi", doc="analog precoder F_RF[k]"),
               "bits": Port("real", ("B", "Bfb"), tag="bits", doc="feedback bits q[k]"),
               "s_csi": Port("real", ("B", "F", "Dc"), doc="UE-side channel semantic feature")}
    params = {
        "user": Param(int, 0, "which UE k this network serves (row of y_p; 0 = RGB UE, 1 = thermal)"),
        "n_pilot_symbols": Param(int, 8, "CSI-RS OFDM symbols L"),
        **array_params("ue_antennas", "ue_rf", "n_subcarriers"),
        **_TRANSFORMER,
        "pos_embedding": Param(str, "sine", "sine (the paper) or learned (the code)",
                               choices=("sine", "learned")),
        "ste": Param(bool, True, "straight-through gradient through the quantizer (footnote 5); "
                                 "false: the feedback branch gets no gradient"),
    }

    @classmethod
    def bind_dims(cls, p):
        return {"K": N_USERS, "F": p["n_subcarriers"], "L": p["n_pilot_symbols"], "Nrf": p["ue_rf"],
                "Nt": p["ue_antennas"], "Bfb": p["feedback_bits"], "Dc": p["d_csi"]}

    def __init__(self, **params):
        super().__init__(**params)
        p = self.p
        _check(self.type_id, p)
        check_positive(self.type_id, p, ("n_pilot_symbols", "ue_antennas", "ue_rf", "n_subcarriers"))
        if not 0 <= p.user < N_USERS:
            raise ValueError(f"{self.type_id}: user must be 0 or 1, got {p.user}")
        f, d = p.n_subcarriers, p.d_model
        self.embed = nn.Linear(2 * p.ue_rf * p.n_pilot_symbols, d)
        if p.pos_embedding == "learned":
            self.pos = nn.Parameter(torch.zeros(f, d))
        else:
            self.register_buffer("pos", sine_positions(f, d), persistent=False)
        self.trunk = TransformerStack(d, p.heads, p.layers, p.ff)
        self.to_csi = nn.Linear(d, p.d_csi)
        self.precoder = Branch(p.d_csi, d, p.heads, p.layers, p.ff, f,
                               _phases(p.ue_antennas * p.ue_rf, p.phase_param))
        self.feedback = Branch(p.d_csi, d, p.heads, p.layers, p.ff, f, p.feedback_bits // p.quant_bits)

    def forward(self, y_p):
        p = self.p
        y = y_p[:, p.user]                                                    # (B, F, L, N_RF,t)
        y = y.permute(0, 1, 3, 2).reshape(y.shape[0], y.shape[1], -1)         # N_c x N_RF,t L
        tokens = torch.cat([y.real, y.imag], dim=-1).float()                  # eq. (15)
        s_csi = self.to_csi(self.trunk(self.embed(tokens) + self.pos))        # S_CSI,UE
        f_rf = unit_modulus(self.precoder(s_csi), p.phase_param)              # eq. (16)
        f_rf = f_rf.reshape(-1, p.ue_antennas, p.ue_rf)
        code = torch.sigmoid(self.feedback(s_csi))
        bits = quantize(code, p.quant_bits, ste=p.ste)                        # footnote 5
        return {"f_rf": f_rf, "bits": bits, "s_csi": s_csi}


@register("combiner.bs_csanet")
class BSCSANet(Block):
    """BS-side channel semantic-aware network (seed 002, Sec. III-D, eqs. 18-19, Fig. 4).

    The feedback of both UEs (error-free) is dequantized to the interval centres (footnote 5)
    and concatenated (K B / quant_bits scalars); a linear layer maps it to N_c x d_model
    tokens, LayerNorm, a Transformer and a linear layer give the BS-side channel semantic
    feature S_CSI,BS (N_c x d_CSI). A second branch (Linear + LayerNorm, a Transformer, a
    linear layer on the flattened sequence) gives the phases Phi_RF of the analog combiner,
    W_RF = exp(j Phi_RF) (eq. 18), wideband.

    Shapes: bits1 real (B, Bfb), bits2 real (B, Bfb) in {0, 1}
            -> w_rf complex (B, N_RF,r, Nr) with |entries| = 1, s_csi real (B, F, D_csi).
    Tap: ``w_rf_h`` W_RF^H (B, Nr, N_RF,r), the combiner as (antennas, RF chains) for the
         GUI's beam-pattern view.
    """
    inputs = {"bits1": Port("real", ("B", "Bfb"), tag="bits", doc="feedback bits of UE 1"),
              "bits2": Port("real", ("B", "Bfb"), tag="bits", doc="feedback bits of UE 2")}
    outputs = {"w_rf": Port("complex", ("B", "Nrf", "Nr"), tag="csi", doc="analog combiner W_RF"),
               "s_csi": Port("real", ("B", "F", "Dc"), doc="BS-side channel semantic feature")}
    params = {
        **array_params("bs_antennas", "bs_rf", "n_subcarriers"),
        **_TRANSFORMER,
    }
    taps = {"w_rf_h": "the analog combiner as W_RF^H (B, Nr, N_RF,r)"}

    @classmethod
    def bind_dims(cls, p):
        return {"F": p["n_subcarriers"], "Nrf": p["bs_rf"], "Nr": p["bs_antennas"],
                "Bfb": p["feedback_bits"], "Dc": p["d_csi"]}

    def __init__(self, **params):
        super().__init__(**params)
        p = self.p
        _check(self.type_id, p)
        check_positive(self.type_id, p, ("bs_antennas", "bs_rf", "n_subcarriers"))
        f, d = p.n_subcarriers, p.d_model
        self.embed = nn.Linear(N_USERS * p.feedback_bits // p.quant_bits, f * d)
        self.embed_norm = nn.LayerNorm(d)
        self.trunk = TransformerStack(d, p.heads, p.layers, p.ff)
        self.to_csi = nn.Linear(d, p.d_csi)
        self.combiner = Branch(p.d_csi, d, p.heads, p.layers, p.ff, f,
                               _phases(p.bs_rf * p.bs_antennas, p.phase_param))

    def forward(self, bits1, bits2):
        p = self.p
        x = torch.cat([dequantize(bits1.float(), p.quant_bits), dequantize(bits2.float(), p.quant_bits)], 1)
        tokens = self.embed_norm(self.embed(x).reshape(x.shape[0], p.n_subcarriers, p.d_model))
        s_csi = self.to_csi(self.trunk(tokens))                               # S_CSI,BS
        w_rf = unit_modulus(self.combiner(s_csi), p.phase_param).reshape(-1, p.bs_rf, p.bs_antennas)
        self.publish("w_rf_h", w_rf.detach().mH)                              # eq. (18)
        return {"w_rf": w_rf, "s_csi": s_csi}
