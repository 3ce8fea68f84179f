"""Layers shared by the seed-003 blocks: depthwise-separable convs, residual blocks, the
grid <-> feature-map folds, and the decoder heads of Table I.

Seed 003 = Li, Zhang, Liu, "Scenario-Adaptive MU-MIMO OFDM Semantic Communication With
Asymmetric Neural Network" (../shared/seeds/003_e25feb2856eb9e73.txt). Table I gives each
conv layer as (filters, kernel size, stride).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class SepConv2d(nn.Module):
    """Depthwise-separable 2-D convolution (MobileNets, seed 003 ref. [23], Sec. III-C).

    A k x k depthwise conv (one filter per input channel, no bias) followed by a 1 x 1
    pointwise conv (with bias): c_in*k*k + c_in*c_out + c_out parameters instead of
    c_in*c_out*k*k + c_out ('same' padding, stride 1).
    """

    def __init__(self, c_in: int, c_out: int, k: int = 3):
        super().__init__()
        self.depthwise = nn.Conv2d(c_in, c_in, k, padding=k // 2, groups=c_in, bias=False)
        self.pointwise = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


def conv_bn_relu(c_in: int, c_out: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    """Conv2D + BN + ReLU, 'same' padding (Table I's "Conv2D+BN+ReLU (filters, k, stride)")."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def sep_bn_relu(c_in: int, c_out: int, k: int = 3) -> nn.Sequential:
    """SepConv2D + BN + ReLU (Table I, decoder)."""
    return nn.Sequential(SepConv2d(c_in, c_out, k), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class ResBlock(nn.Module):
    """Residual block (He et al. 2016): relu(BN(conv(relu(BN(conv_s(x))))) + shortcut(x)).

    Two 3x3 Conv2D+BN layers, the first with stride ``stride``; the shortcut is the
    identity, or a 1x1 Conv2D+BN (stride ``stride``) when the shape changes.
    Shapes: (N, c_in, H, W) -> (N, c_out, H/stride, W/stride).
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out))
        self.shortcut = (nn.Identity() if stride == 1 and c_in == c_out else
                         nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride), nn.BatchNorm2d(c_out)))

    def forward(self, x):
        return F.relu(self.body(x) + self.shortcut(x))


# ----------------------------------------------------------------------------- layouts

def complex_to_channels(z: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Complex (N, C, ...) -> real (N, 2C, ...): real parts of all C channels, then imaginary
    parts ("the real and imaginary parts are concatenated along the channel dimension",
    seed 003 Sec. III-B)."""
    return torch.cat([z.real, z.imag], dim=dim)


def channels_to_complex(r: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Inverse of :func:`complex_to_channels`: real (N, 2C, ...) -> complex (N, C, ...)."""
    re, im = r.chunk(2, dim=dim)
    return torch.complex(re, im)


def fold_channels(c: int, s: int, f: int, side: int) -> int:
    """Channels of the feature map that :func:`grid_to_map` makes from a (c, S, F) grid."""
    return math.ceil(c * s * f / (side * side))


def grid_to_map(g: torch.Tensor, side: int) -> torch.Tensor:
    """Fold a real resource grid (N, c, S, F) into a feature map (N, C, side, side).

    The grid is read subcarrier-major (f, then OFDM symbol s, then channel c), zero-padded
    to a multiple of side^2 and cut into side^2 equal runs, one per map position, so each
    position holds a band of neighbouring subcarriers over all OFDM symbols (the pilot
    symbols included) and C = ceil(c*S*F / side^2) values. This is how seed 003's
    receiver feeds N_f x N_t grid values to a restoration net that upsamples an 8 x 8 map
    twice to a 32 x 32 image (Table I).
    """
    n, c, s, f = g.shape
    flat = g.permute(0, 3, 2, 1).reshape(n, -1)                  # (N, F*S*c), subcarrier-major
    ch = fold_channels(c, s, f, side)
    pad = ch * side * side - flat.shape[1]
    if pad:
        flat = F.pad(flat, (0, pad))
    return flat.reshape(n, side * side, ch).transpose(1, 2).reshape(n, ch, side, side)


# ----------------------------------------------------------------------------- heads

class RestorationNet(nn.Module):
    """Restoration net of seed 003, Table I (image branch of the UE decoder).

    Conv2D+ReLU (w0, 1, 1) -> Upsampling x2 -> SepConv2D+BN+ReLU (w1, 3, 1) -> Upsampling x2
    -> SepConv2D+BN+ReLU (w2, 3, 1) -> SepConv2D (w3, 3, 1) -> Conv2D+Sigmoid (3, 3, 1);
    paper widths (w0, w1, w2, w3) = (128, 64, 32, 16). Nearest-neighbour upsampling (Keras'
    UpSampling2D default). Shapes: (N, c_in, s, s) -> image (N, 3, 4s, 4s) in (0, 1).
    """

    def __init__(self, c_in: int, widths=(128, 64, 32, 16)):
        super().__init__()
        w0, w1, w2, w3 = widths
        self.net = nn.Sequential(
            nn.Conv2d(c_in, w0, 1), nn.ReLU(inplace=True),
            nn.Upsample(scale_factor=2, mode="nearest"), sep_bn_relu(w0, w1),
            nn.Upsample(scale_factor=2, mode="nearest"), sep_bn_relu(w1, w2),
            SepConv2d(w2, w3),
            nn.Conv2d(w3, 3, 3, padding=1), nn.Sigmoid())

    def forward(self, x):
        return self.net(x)


class ClassificationNet(nn.Module):
    """Classification net of seed 003, Table I (semantic branch of the UE decoder).

    [SepConv2D+ReLU (w, 3, 1) + MaxPool 2] for w in (16, 32, 64) -> global average pooling
    ("utilizes global average pooling", Sec. III-C; on the paper's 8 x 8 input the three
    pools already leave 1 x 1, so it equals Table I's Flatten) -> Dense+ReLU (hidden = 128)
    -> Dense (num_classes). Shapes: (N, c_in, s, s) -> logits (N, num_classes).
    """

    def __init__(self, c_in: int, widths=(16, 32, 64), hidden: int = 128, num_classes: int = 10):
        super().__init__()
        layers, c = [], c_in
        for w in widths:
            layers += [SepConv2d(c, w), nn.ReLU(inplace=True), nn.MaxPool2d(2, ceil_mode=True)]
            c = w
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(c, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.head(self.features(x))


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters (BatchNorm running statistics are buffers, not counted)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
