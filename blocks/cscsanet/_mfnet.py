"""MFNet encoder/decoder and the SFA module: the source-semantic layers of seed 002.

Seed 002 = Wu, Gao, "E2E Learning Massive MIMO for Multimodal Semantic Non-Orthogonal
Transmission and Fusion" (CSC-SA-Net, ../shared/seeds/002_aedd076013fb2eee.txt).

* :class:`MFNetEncoder` -- "the source semantic extraction network ... consistent with the
  encoder described in [26] ... convolutional layers for feature extraction and max pooling
  for dimensionality reduction" (Sec. III-E). The layers are MFNet's (Ha et al., IROS 2017,
  ref. [51]) as the authors' code builds them: ConvBnLeakyReLU 3x3 (slope 0.2), max-pool 2
  after each of the first four stages, two MiniInception stages, a fifth pool ``pool5``
  (paper geometry 480x640: (3, 4) -> a 10x10 grid), then 3x3 "compress" convs to d_s.
* :class:`MFNetDecoder` -- "convolutional layers for feature extraction and nearest-neighbor
  unpooling for upsampling" (Sec. III-F): the mirror image, without skip connections (the
  encoders live at the UEs). Every layer is ConvBnLeakyReLU, the last one included, as in
  MFNet.
* :class:`SFA` -- the semantic fusion attention module (Sec. III-G, eqs. 23-27, Fig. 7).

Default widths are MFNet's: (16, 48, 48, 96, 192), compress (96, 96), d_s = 64; with two
encoders and one decoder they hold 3.37 M parameters (Table II: "3.37M").
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_lrelu(c_in: int, c_out: int, dilation: int = 1) -> nn.Sequential:
    """MFNet's ConvBnLeakyRelu2d: 3x3 conv ('same' padding) + BN + LeakyReLU(0.2)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=dilation, dilation=dilation),
                         nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, inplace=True))


class MiniInception(nn.Module):
    """MFNet's mini-inception: three rounds of [3x3 conv || 3x3 dilation-2 conv], each half
    of ``c_out`` channels, concatenated. Shapes: (N, c_in, H, W) -> (N, c_out, H, W)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"MiniInception needs an even width, got {c_out}")
        half = c_out // 2
        self.rounds = nn.ModuleList()
        for r in range(3):
            src = c_in if r == 0 else c_out
            self.rounds.append(nn.ModuleList([conv_bn_lrelu(src, half), conv_bn_lrelu(src, half, 2)]))

    def forward(self, x):
        for left, right in self.rounds:
            x = torch.cat([left(x), right(x)], dim=1)
        return x


def check_widths(where: str, widths, compress) -> tuple[list[int], list[int]]:
    widths = [int(w) for w in widths]
    compress = [int(c) for c in compress]
    if len(widths) != 5 or any(w < 1 for w in widths) or widths[3] % 2 or widths[4] % 2:
        raise ValueError(f"{where}: widths must be 5 positive sizes (the last two even), got {widths}")
    if any(c < 1 for c in compress):
        raise ValueError(f"{where}: compress widths must be positive, got {compress}")
    return widths, compress


class MFNetEncoder(nn.Module):
    """MFNet encoder (seed 002 Sec. III-E, ref. [26]/[51]) for one modality.

    Shapes: (N, in_channels, H, W) -> F_s (N, d_s, H / (16 ph), W / (16 pw)), (ph, pw) = pool5.
    """

    def __init__(self, in_channels: int, widths, compress, d_s: int, pool5):
        super().__init__()
        w0, w1, w2, w3, w4 = widths
        self.pool5 = tuple(int(p) for p in pool5)
        self.stages = nn.ModuleList([
            conv_bn_lrelu(in_channels, w0),
            nn.Sequential(conv_bn_lrelu(w0, w1), conv_bn_lrelu(w1, w1)),
            nn.Sequential(conv_bn_lrelu(w1, w2), conv_bn_lrelu(w2, w2)),
            MiniInception(w2, w3),
            MiniInception(w3, w4),
        ])
        chans = [w4, *compress, d_s]
        self.compress = nn.Sequential(*[conv_bn_lrelu(a, b) for a, b in zip(chans[:-1], chans[1:])])

    def forward(self, x):
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i < 4:
                x = F.max_pool2d(x, 2)
        if self.pool5 != (1, 1):
            x = F.max_pool2d(x, self.pool5)
        return self.compress(x)


class MFNetDecoder(nn.Module):
    """MFNet decoder without skip connections (seed 002 Sec. III-F): decompress convs
    d_s -> ... -> w4, nearest unpooling by ``pool5``, a w4 -> w3 conv, then four rounds of
    [nearest x2 unpooling, conv] down to ``n_classes``.

    Shapes: (N, d_s, Hs, Ws) -> logits (N, n_classes, 16 ph Hs, 16 pw Ws).
    """

    def __init__(self, n_classes: int, widths, compress, d_s: int, pool5):
        super().__init__()
        w0, w1, w2, w3, w4 = widths
        self.pool5 = tuple(int(p) for p in pool5)
        chans = [d_s, *reversed(list(compress)), w4]
        self.decompress = nn.Sequential(*[conv_bn_lrelu(a, b) for a, b in zip(chans[:-1], chans[1:])])
        self.decode5 = conv_bn_lrelu(w4, w3)
        self.decode = nn.ModuleList([conv_bn_lrelu(w3, w2), conv_bn_lrelu(w2, w1),
                                     conv_bn_lrelu(w1, w0), conv_bn_lrelu(w0, n_classes)])

    def forward(self, x):
        x = self.decompress(x)
        if self.pool5 != (1, 1):
            x = F.interpolate(x, scale_factor=self.pool5, mode="nearest")
        x = self.decode5(x)
        for conv in self.decode:
            x = conv(F.interpolate(x, scale_factor=2, mode="nearest"))
        return x


class SFA(nn.Module):
    """Semantic fusion attention (seed 002 Sec. III-G, eqs. 23-27, Fig. 7).

    I_source = GAP(F_s) (eq. 23); v_CSI = FC(F_CSI) in R^{d_c} on the flattened channel
    semantic feature (eq. 24); I = [I_source, v_CSI] (eq. 25);
    G = sigmoid(W2 ReLU(W1 I + b1) + b2) in (0, 1)^{d_s} (eq. 26, hidden width d_s);
    F_hat_s^i = G_i F_s^i (eq. 27).

    Shapes: F_s (N, d_s, Hs, Ws), F_CSI (N, Fc, D_csi) -> (N, d_s, Hs, Ws), G (N, d_s).
    """

    def __init__(self, d_s: int, csi_numel: int, d_c: int = 16):
        super().__init__()
        self.csi_fc = nn.Linear(csi_numel, d_c)
        self.factor = nn.Sequential(nn.Linear(d_s + d_c, d_s), nn.ReLU(inplace=True),
                                    nn.Linear(d_s, d_s), nn.Sigmoid())

    def forward(self, feat: torch.Tensor, csi: torch.Tensor):
        i_source = feat.mean(dim=(2, 3))                               # eq. (23)
        v_csi = self.csi_fc(csi.flatten(1).to(feat.dtype))             # eq. (24)
        g = self.factor(torch.cat([i_source, v_csi], dim=1))           # eqs. (25)-(26)
        return feat * g[:, :, None, None], g                           # eq. (27)


def grid_shape(height: int, width: int, pool5) -> tuple[int, int]:
    """Feature grid (Hs, Ws) of an MFNet encoder on H x W images."""
    ph, pw = (int(p) for p in pool5)
    return height // (16 * ph), width // (16 * pw)


def check_geometry(where: str, height: int, width: int, pool5) -> tuple[int, int]:
    ph, pw = (int(p) for p in pool5)
    if ph < 1 or pw < 1 or height % (16 * ph) or width % (16 * pw):
        raise ValueError(f"{where}: image {height}x{width} must be divisible by 16 x pool5 = "
                         f"{16 * ph}x{16 * pw}")
    return grid_shape(height, width, pool5)
