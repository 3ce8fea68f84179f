"""The UE-side lightweight pilot-guided decoder of seed 003 (Sec. III-C, Table I, Figs. 3 and 5)."""
from __future__ import annotations

import torch
from torch import nn

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register

from ._layers import (ClassificationNet, RestorationNet, SepConv2d, complex_to_channels, fold_channels,
                      grid_to_map, sep_bn_relu)


class PilotGuidedAttention(nn.Module):
    """Pilot-guided attention (seed 003, Sec. III-C, Table I, Fig. 5).

    On the time-frequency grid (OFDM symbols x subcarriers as spatial axes, so a 3x3 kernel
    covers received pilots, their clean references and the neighbouring data REs):
        U = [Re y, Im y, Re Y_p, Im Y_p]                         received grid ++ Y_p
        A = sigmoid(SepConv(2)(SepConv+BN+ReLU(w)(SepConv+BN+ReLU(w)(U))))   weight map
        Z = [A * [Re y, Im y], Re Y_p, Im Y_p]                   re-concatenated with Y_p
    "The output of the pilot-guided module is then applied to the received symbols through
    element-wise multiplication ... the modulated features are concatenated with the known
    pilot information in a residual manner" (Sec. III). Paper width w = 64.
    Shapes: y real (N, 2, S, F), y_p real (N, 2, S, F) -> Z (N, 4, S, F), A (N, 2, S, F).
    """

    def __init__(self, width: int = 64):
        super().__init__()
        self.net = nn.Sequential(sep_bn_relu(4, width), sep_bn_relu(width, width),
                                 SepConv2d(width, 2), nn.Sigmoid())

    def forward(self, y, y_p):
        a = self.net(torch.cat([y, y_p], dim=1))
        return torch.cat([a * y, y_p], dim=1), a


@register("decoder.pilot_guided")
class PilotGuidedDecoder(Block):
    """Lightweight pilot-guided decoder at each UE (seed 003, Sec. III-C, eq. 5, Table I).

    Every UE k decodes only its own received grid y_k with the same small network (users
    folded into the batch; "all UEs perform decoding in parallel using identical
    lightweight decoder architectures"):

    1. Pilot-guided attention (``PilotGuidedAttention``): y_k ++ Y_p,k -> sigmoid weight
       map A -> Z = [A * y_k, Y_p,k] on the S x F grid; published as tap ``attention``.
       ``pilot_guidance: false`` ("Ours (w/o Pilot)") removes the module and Y_p: Z = y_k.
    2. Z, pilot OFDM symbols included, is folded into a (C, H/4, W/4) feature map
       (``grid_to_map``: each map position holds a band of subcarriers over all OFDM
       symbols), C = ceil(c * S * F / (H/4 * W/4)), c = 4 with pilot guidance, 2 without.
       The pilot symbols stay: Y_p is zero at every data RE, so dropping them before the
       backbone would discard the re-concatenated reference.
    3. Two parallel heads (Table I): the restoration net (Conv2D 1x1 128, two x2
       upsamplings, depthwise-separable convs 64/32/16, Conv2D+Sigmoid 3) -> image, and the
       classification net (SepConv+ReLU+MaxPool 16/32/64, pooling, Dense 128, Dense
       classes) -> logits; trained with MSE + cross-entropy.

    Depthwise-separable convs (MobileNets) keep the UE side small; see
    ``blocks.mumimo.complexity`` for the parameter count beside Table III.

    Shapes: y complex (B, K, S, F), pilot_ref complex (B, K, S, F) (optional when
            pilot_guidance is false; row k = the pilots of stream k, i.e. Y_p of UE k)
            -> image real (B, K, 3, H, W) in (0, 1), logits real (B, K, num_classes).
    Taps: ``attention`` the weight map A, real (B, K, 2, S, F) (real/imag part weights).
    """
    inputs = {"y": Port("complex", ("B", "K", "S", "F"), tag="symbols", doc="received grid per UE"),
              "pilot_ref": Port("complex", ("B", "K", "S", "F"), tag="symbols", optional=True,
                                doc="sparse pilot reference Y_p per UE")}
    outputs = {"image": Port("real", ("B", "K", 3, "H", "W"), tag="image", doc="reconstruction per user"),
               "logits": Port("real", ("B", "K", "C"), tag="logits", doc="class scores per user")}
    params = {
        "size": Param(int, 32, "image side H = W (multiple of 4)"),
        "n_subcarriers": Param(int, 64, "subcarriers F = N_f"),
        "n_symbols": Param(int, 14, "OFDM symbols S = N_t (pilot symbols included)"),
        "num_classes": Param(int, 10, "classes of the classification head"),
        "pilot_guidance": Param(bool, True, "use Y_p and the pilot-guided attention (false: 'w/o Pilot')"),
        "attention_width": Param(int, 64, "filters of the attention's two SepConv layers (Table I: 64)"),
        "restoration_widths": Param(list, [128, 64, 32, 16], "restoration net widths (Table I)"),
        "classifier_widths": Param(list, [16, 32, 64], "classification SepConv widths (Table I)"),
        "classifier_hidden": Param(int, 128, "hidden Dense of the classification net (Table I: 128)"),
    }
    taps = {"attention": "pilot-guided weight map A (B, K, 2, S, F)"}

    @classmethod
    def bind_dims(cls, p):
        return {"H": p["size"], "W": p["size"], "S": p["n_symbols"], "F": p["n_subcarriers"],
                "C": p["num_classes"]}

    def __init__(self, **params):
        super().__init__(**params)
        p = self.p
        if p.size < 4 or p.size % 4:
            raise ValueError(f"decoder.pilot_guided: size must be a positive multiple of 4, got {p.size}")
        if len(p.restoration_widths) != 4:
            raise ValueError("decoder.pilot_guided: restoration_widths takes four values")
        self.side = p.size // 4
        self.attention = PilotGuidedAttention(p.attention_width) if p.pilot_guidance else None
        c_in = fold_channels(4 if p.pilot_guidance else 2, p.n_symbols, p.n_subcarriers, self.side)
        self.restoration = RestorationNet(c_in, [int(w) for w in p.restoration_widths])
        self.classifier = ClassificationNet(c_in, [int(w) for w in p.classifier_widths],
                                            p.classifier_hidden, p.num_classes)

    def forward(self, y, pilot_ref=None):
        b, k, s, f = y.shape
        yr = complex_to_channels(y.reshape(b * k, 1, s, f))             # (BK, 2, S, F)
        if self.attention is not None:
            if pilot_ref is None:
                raise ValueError("decoder.pilot_guided: pilot_guidance needs the input 'pilot_ref' (Y_p)")
            yp = complex_to_channels(pilot_ref.reshape(b * k, 1, s, f))
            z, a = self.attention(yr, yp)
            self.publish("attention", a.reshape(b, k, 2, s, f))
        else:
            z = yr
        m = grid_to_map(z, self.side)
        image = self.restoration(m)
        logits = self.classifier(m)
        return {"image": image.reshape(b, k, *image.shape[1:]), "logits": logits.reshape(b, k, -1)}
