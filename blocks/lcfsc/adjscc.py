"""ADJSCC baseline with MIMO CSI as side information (seed 000, Sec. V-A3, Fig. 1b).

ADJSCC: Xu, Ai, Chen, Yang, Tan, "Wireless Image Transmission Using Deep Source Channel
Coding With Attention Modules", IEEE TCSVT 2021. A 5-layer CNN codec (like DeepJSCC) with
an attention-feature (AF) module after each hidden layer: the context
c = [mean_{h,w} f, side] passes FC -> ReLU -> FC -> sigmoid and scales the channels of f.
ADJSCC's side information is the SNR; seed 000's benchmark "directly blends both MIMO CSI
and SNR as side information with original features in attention modules", so here
side = [SNR_dB / 20, vec(Re h), vec(Im h)] (1 + 2 Nr Nt values) when ``use_csi`` is on.

Encoder: conv5x5/2 (F) -> AF -> conv5x5/2 (F) -> AF -> conv5x5 (F) -> AF -> conv5x5 (F) -> AF
-> conv5x5 (c), PReLU after every hidden conv: features (B, c, H/4, W/4), real. Decoder
mirrors it with transposed convs and a sigmoid. GDN is replaced by PReLU (noted).
CBR = (c H W / 16 / 2) / (3 H W) = c / 96; c = 6 gives 1/16.
"""
from __future__ import annotations

import torch
from torch import nn

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register



class AFModule(nn.Module):
    """Attention-feature module: f * sigmoid(FC(ReLU(FC([GAP(f), side])))) (ADJSCC, Fig. 3)."""

    def __init__(self, channels: int, side: int):
        super().__init__()
        hidden = max(channels // 4, 4)
        self.net = nn.Sequential(nn.Linear(channels + side, hidden), nn.ReLU(),
                                 nn.Linear(hidden, channels), nn.Sigmoid())

    def forward(self, f, side):
        ctx = torch.cat((f.mean(dim=(2, 3)), side), dim=1)
        return f * self.net(ctx)[:, :, None, None]


_PARAMS = dict({
    "channels": Param(int, 6, "c: feature maps sent; CBR = c / 96 (6 -> 1/16)"),
    "filters": Param(int, 256, "width F of the hidden layers (ADJSCC: 256)"),
    "nt": Param(int, 2, "transmit antennas Nt (size of the CSI side information)"),
    "nr": Param(int, 2, "receive antennas Nr"),
    "use_csi": Param(bool, True, "feed vec(h) to the AF modules (false: SNR only, the original ADJSCC)"),
    "snr_db": Param(float, 10.0, "channel SNR in dB (side information)", runtime=True),
})


class _SideInfo(Block):
    """Common side-information handling of the ADJSCC pair."""

    def side_dim(self) -> int:
        return 1 + (2 * self.p.nr * self.p.nt if self.p.use_csi else 0)

    def side(self, ref: torch.Tensor, h) -> torch.Tensor:
        b = ref.shape[0]
        s = [ref.new_full((b, 1), float(self.p.snr_db) / 20.0)]
        if self.p.use_csi:
            if h is None:
                raise ValueError(f"{self.type_id}: use_csi is on but input h is not connected")
            if tuple(h.shape[1:]) != (self.p.nr, self.p.nt):
                raise ValueError(f"{self.type_id}: h must be (B, {self.p.nr}, {self.p.nt}), got {tuple(h.shape)}")
            hv = h.reshape(b, -1)
            s += [hv.real.to(ref.dtype), hv.imag.to(ref.dtype)]
        return torch.cat(s, dim=1)

    @classmethod
    def bind_dims(cls, p):
        return {"Nr": p["nr"], "Nt": p["nt"]}


@register("extractor.adjscc")
class ADJSCCEncoder(_SideInfo):
    """ADJSCC encoder with SNR + flattened MIMO CSI side information (seed 000 Sec. V-A3; Xu et al. 2021).

    See the module docstring for the layers. Side info: [snr_db / 20, Re vec(h), Im vec(h)].

    Shapes: image real (B, 3, H, W) (H, W multiples of 4), h complex (B, Nr, Nt) optional
            -> z real (B, c, H/4, W/4).
    """
    inputs = {"image": Port("real", ("B", 3, "H", "W"), tag="image"),
              "h": Port("complex", ("B", "Nr", "Nt"), tag="csi", optional=True, doc="estimated CSI")}
    outputs = {"z": Port("real", ("B", "c", "h", "w"), doc="features, CBR = c/96 once paired")}
    params = dict(_PARAMS)

    @classmethod
    def bind_dims(cls, p):
        return {"Nr": p["nr"], "Nt": p["nt"], "c": p["channels"]}

    def __init__(self, **params):
        super().__init__(**params)
        f, c, s = self.p.filters, self.p.channels, self.side_dim()
        self.convs = nn.ModuleList([nn.Conv2d(3, f, 5, 2, 2), nn.Conv2d(f, f, 5, 2, 2),
                                    nn.Conv2d(f, f, 5, 1, 2), nn.Conv2d(f, f, 5, 1, 2)])
        self.acts = nn.ModuleList(nn.PReLU(f) for _ in range(4))
        self.afs = nn.ModuleList(AFModule(f, s) for _ in range(4))
        self.last = nn.Conv2d(f, c, 5, 1, 2)

    def forward(self, image, h=None):
        if image.shape[-1] % 4 or image.shape[-2] % 4:
            raise ValueError(f"extractor.adjscc: H and W must be multiples of 4, got {tuple(image.shape[-2:])}")
        side = self.side(image, h)
        f = image
        for conv, act, af in zip(self.convs, self.acts, self.afs):
            f = af(act(conv(f)), side)
        return {"z": self.last(f)}


@register("decoder.adjscc")
class ADJSCCDecoder(_SideInfo):
    """ADJSCC decoder with SNR + flattened MIMO CSI side information (seed 000 Sec. V-A3; Xu et al. 2021).

    tconv5x5 (F) -> AF -> tconv5x5 (F) -> AF -> tconv5x5 (F) -> AF -> tconv5x5/2 (F) -> AF
    -> tconv5x5/2 (3) -> sigmoid; PReLU after every hidden layer.

    Shapes: z real (B, c, h, w), h complex (B, Nr, Nt) optional -> image real (B, 3, 4h, 4w).
    """
    inputs = {"z": Port("real", ("B", "c", "h", "w"), doc="received (equalized) features"),
              "h": Port("complex", ("B", "Nr", "Nt"), tag="csi", optional=True, doc="estimated CSI")}
    outputs = {"image": Port("real", ("B", 3, "H", "W"), tag="image", doc="reconstruction in (0, 1)")}
    params = dict(_PARAMS)

    bind_dims = ADJSCCEncoder.bind_dims

    def __init__(self, **params):
        super().__init__(**params)
        f, c, s = self.p.filters, self.p.channels, self.side_dim()
        self.convs = nn.ModuleList([nn.ConvTranspose2d(c, f, 5, 1, 2), nn.ConvTranspose2d(f, f, 5, 1, 2),
                                    nn.ConvTranspose2d(f, f, 5, 1, 2),
                                    nn.ConvTranspose2d(f, f, 5, 2, 2, output_padding=1)])
        self.acts = nn.ModuleList(nn.PReLU(f) for _ in range(4))
        self.afs = nn.ModuleList(AFModule(f, s) for _ in range(4))
        self.last = nn.ConvTranspose2d(f, 3, 5, 2, 2, output_padding=1)

    def forward(self, z, h=None):
        side = self.side(z, h)
        f = z
        for conv, act, af in zip(self.convs, self.acts, self.afs):
            f = af(act(conv(f)), side)
        return {"image": torch.sigmoid(self.last(f))}
