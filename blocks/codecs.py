"""Learned source-channel codecs: DeepJSCC encoder (extractor) and decoder.

Reference: E. Bourtsoulatze, D. Burth Kurka, D. Gündüz, "Deep Joint Source-Channel
Coding for Wireless Image Transmission", IEEE Trans. Cogn. Commun. Netw. 5(3), 2019
(arXiv:1809.01733), Sec. III and Fig. 2. The optional GDN/IGDN activations follow the
later DeepJSCC variants (Kurka & Gündüz, "DeepJSCC-f", IEEE JSAIT 2020), which take
them from Ballé et al., "Density modeling of images using a generalized normalization
transformation", ICLR 2016.

Real -> complex pairing (both blocks use the same convention)
    The encoder's last conv layer gives a real tensor f of shape (B, c, H/4, W/4).
    It is flattened per example in C-order (channel, row, column) to a real vector
    v of length 2N = c*(H/4)*(W/4), and consecutive values form one complex channel
    symbol:  z[n] = v[2n] + j*v[2n+1],  n = 0..N-1  (``torch.view_as_complex``).
    So N = c*H*W/32 complex channel uses per example and
    CBR = N / (3*H*W) = c / 96   (c = 16 -> 1/6, c = 8 -> 1/12).
    The decoder undoes exactly this pairing. 2N must be even, i.e. c*(H/4)*(W/4)
    even (always true for H, W multiples of 8; otherwise use an even c).

Power normalization is *not* done here: put a ``channel.power_norm`` block between
the encoder and the channel (the paper's "normalization" layer, Fig. 2, eq. 2).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register


class GDN(nn.Module):
    """Generalized divisive normalization (Ballé et al. 2016), per pixel across channels.

    GDN:  y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2);  IGDN (inverse=True): times.
    Non-negativity by squaring the stored parameters (beta = b^2 + 1e-6, gamma = g^2);
    gamma starts at 0.1*I with 1e-4 off the diagonal (kept non-zero so every entry
    gets a gradient). Shapes: (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, channels: int, inverse: bool = False):
        super().__init__()
        self.inverse = inverse
        self.beta = nn.Parameter(torch.ones(channels))
        eye = torch.eye(channels)
        self.gamma = nn.Parameter(torch.sqrt(0.1 * eye + 1e-4 * (1.0 - eye)))

    def forward(self, x):
        c = x.shape[1]
        beta = self.beta ** 2 + 1e-6
        gamma = (self.gamma ** 2).view(c, c, 1, 1)
        norm = F.conv2d(x * x, gamma, beta)
        return x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)


def _act(kind: str, channels: int, inverse: bool) -> nn.Module:
    return GDN(channels, inverse=inverse) if kind == "gdn" else nn.PReLU(channels)


def _widths(filters: int) -> tuple[int, int]:
    # Paper (Fig. 2): 16 filters in the outer layers, 32 in the inner ones.
    return max(1, filters // 2), filters


def _check_common(p, where):
    if p.channels < 1:
        raise ValueError(f"{where}: param 'channels' must be >= 1, got {p.channels}")
    if p.filters < 2:
        raise ValueError(f"{where}: param 'filters' must be >= 2, got {p.filters}")


_CODEC_PARAMS = {
    "channels": Param(int, 16, "c: feature maps of the encoder's last layer. N = c*H*W/32 complex "
                               "symbols per example, CBR = c/96 (c=16 -> 1/6)"),
    "filters": Param(int, 32, "width F of the inner conv layers; the outer hidden layer has F/2. "
                              "F=32 is the paper's 16/32/32/32 network"),
    "gdn": Param(bool, False, "use GDN (encoder) / IGDN (decoder) instead of PReLU after the hidden "
                              "layers, as in later DeepJSCC variants (DeepJSCC-f)"),
}


@register("extractor.deepjscc")
class DeepJSCCEncoder(Block):
    """DeepJSCC encoder (Bourtsoulatze, Kurka, Gündüz, IEEE TCCN 2019, Sec. III, Fig. 2).

    Five 5x5 conv layers, each followed by PReLU:
        conv(3 -> F/2, stride 2), conv(F/2 -> F, stride 2), conv(F -> F) x2, conv(F -> c)
    (paper: F = 32, i.e. 16/32/32/32/c filters). Two stride-2 layers downsample by 4:
    features (B, c, H/4, W/4), 'same' padding (H, W must be multiples of 4).
    With ``gdn`` the four hidden PReLUs become GDN (DeepJSCC-f style); the last layer
    keeps its PReLU.

    The real features are flattened per example in (channel, row, column) order and
    consecutive pairs become complex symbols z[n] = v[2n] + j v[2n+1] (module docstring).
    No power normalization here (use ``channel.power_norm``).

    Shapes: image real (B, 3, H, W), values in [0, 1]  ->  z complex (B, N),
            N = c*H*W/32, CBR = N/(3HW) = c/96.
    """
    inputs = {"image": Port("real", ("B", 3, "H", "W"), tag="image", doc="images in [0, 1]")}
    outputs = {"z": Port("complex", ("B", "N"), tag="symbols",
                         doc="N = c*H*W/32 complex channel symbols (not power-normalized)")}
    params = dict(_CODEC_PARAMS)
    taps = {"features": "real encoder output (B, c, H/4, W/4) before the complex pairing"}

    def __init__(self, **params):
        super().__init__(**params)
        _check_common(self.p, "extractor.deepjscc")
        f1, f = _widths(self.p.filters)
        c = self.p.channels
        act = "gdn" if self.p.gdn else "prelu"
        self.net = nn.Sequential(
            nn.Conv2d(3, f1, 5, stride=2, padding=2), _act(act, f1, False),
            nn.Conv2d(f1, f, 5, stride=2, padding=2), _act(act, f, False),
            nn.Conv2d(f, f, 5, stride=1, padding=2), _act(act, f, False),
            nn.Conv2d(f, f, 5, stride=1, padding=2), _act(act, f, False),
            nn.Conv2d(f, c, 5, stride=1, padding=2), nn.PReLU(c),
        )

    def forward(self, image):
        b, ch, h, w = image.shape
        if h % 4 or w % 4:
            raise ValueError(f"extractor.deepjscc: image height and width must be multiples of 4, "
                             f"got {h}x{w}")
        feat = self.net(image)
        self.publish("features", feat)
        v = feat.reshape(b, -1)
        if v.shape[1] % 2:
            raise ValueError(f"extractor.deepjscc: c*(H/4)*(W/4) = {v.shape[1]} real values cannot be "
                             f"paired into complex symbols; use an even 'channels'")
        z = torch.view_as_complex(v.reshape(b, -1, 2).contiguous())
        return {"z": z}


@register("decoder.deepjscc")
class DeepJSCCDecoder(Block):
    """DeepJSCC decoder (Bourtsoulatze, Kurka, Gündüz, IEEE TCCN 2019, Sec. III, Fig. 2).

    Mirror of ``extractor.deepjscc``: the complex symbols are unpaired back to real
    features (B, c, H/4, W/4) (v[2n] = Re z[n], v[2n+1] = Im z[n]), then five 5x5
    transposed convs:
        tconv(c -> F), tconv(F -> F) x2 (stride 1, PReLU),
        tconv(F -> F/2, stride 2, PReLU), tconv(F/2 -> 3, stride 2, sigmoid).
    With ``gdn`` the four hidden PReLUs become IGDN.

    Image size: with ``size`` = 0 (default) the decoder assumes a square image and infers
    H = W = 4*sqrt(2N/c) from the number of received symbols; ``size`` > 0 fixes
    H = W = size and checks N against it (and binds the port dims for validation).

    Shapes: z complex (B, N) -> image real (B, 3, H, W) in (0, 1), N = c*H*W/32.
    """
    inputs = {"z": Port("complex", ("B", "N"), tag="symbols", doc="received (equalized) symbols")}
    outputs = {"image": Port("real", ("B", 3, "H", "W"), tag="image", doc="reconstruction in (0, 1)")}
    params = dict(_CODEC_PARAMS, size=Param(int, 0, "image side H = W; 0 infers a square image "
                                                   "from N and channels"))

    @classmethod
    def bind_dims(cls, p):
        if p.get("size", 0) > 0:
            s = p["size"]
            return {"H": s, "W": s, "N": p["channels"] * s * s // 32}
        return {}

    def __init__(self, **params):
        super().__init__(**params)
        _check_common(self.p, "decoder.deepjscc")
        if self.p.size < 0 or self.p.size % 4:
            raise ValueError(f"decoder.deepjscc: param 'size' must be 0 or a positive multiple of 4, "
                             f"got {self.p.size}")
        f1, f = _widths(self.p.filters)
        c = self.p.channels
        act = "gdn" if self.p.gdn else "prelu"
        self.net = nn.Sequential(
            nn.ConvTranspose2d(c, f, 5, stride=1, padding=2), _act(act, f, True),
            nn.ConvTranspose2d(f, f, 5, stride=1, padding=2), _act(act, f, True),
            nn.ConvTranspose2d(f, f, 5, stride=1, padding=2), _act(act, f, True),
            nn.ConvTranspose2d(f, f1, 5, stride=2, padding=2, output_padding=1), _act(act, f1, True),
            nn.ConvTranspose2d(f1, 3, 5, stride=2, padding=2, output_padding=1), nn.Sigmoid(),
        )

    def _side(self, n: int) -> int:
        c = self.p.channels
        if self.p.size > 0:
            s = self.p.size // 4
            if 2 * n != c * s * s:
                raise ValueError(f"decoder.deepjscc: got N={n} complex symbols per example, expected "
                                 f"channels*size^2/32 = {c * s * s // 2} (channels={c}, size={self.p.size})")
            return s
        s = math.isqrt(2 * n // c) if (2 * n) % c == 0 else 0
        if s == 0 or c * s * s != 2 * n:
            raise ValueError(f"decoder.deepjscc: N={n} complex symbols do not make a square "
                             f"{c} x s x s feature map (channels={c}); set param 'size'")
        return s

    def forward(self, z):
        b, n = z.shape
        s = self._side(n)
        feat = torch.view_as_real(z).reshape(b, self.p.channels, s, s)
        feat = feat.to(self.net[0].weight.dtype)
        return {"image": self.net(feat)}


@register("decoder.deepjscc_seg")
class DeepJSCCSegDecoder(DeepJSCCDecoder):
    """DeepJSCC decoder with a per-pixel classification head: the receiver segments the image
    instead of reconstructing it (task-oriented semantic communication).

    The layers of ``decoder.deepjscc`` (Bourtsoulatze, Kurka, Gündüz, IEEE TCCN 2019, Fig. 2)
    with the last transposed conv giving ``classes`` logit maps and no sigmoid: the
    semantic segmentation task of seed 002 (CSC-SA-Net), trained with the pixel
    cross-entropy of its eq. 28 (``ce(dec.logits, src.label)``) and scored with mIoU, eq. 29
    (``sink.miou``). Image size as ``decoder.deepjscc`` (``size`` or inferred square).

    Shapes: z complex (B, N) -> logits real (B, C, H, W), C = classes, N = c*H*W/32.
    """
    outputs = {"logits": Port("real", ("B", "C", "H", "W"), tag="logits", doc="class scores per pixel")}
    params = dict(DeepJSCCDecoder.params, classes=Param(int, 4, "C: classes per pixel (logit maps)"))

    @classmethod
    def bind_dims(cls, p):
        return {**super().bind_dims(p), "C": p["classes"]}

    def __init__(self, **params):
        super().__init__(**params)
        if self.p.classes < 2:
            raise ValueError(f"decoder.deepjscc_seg: param 'classes' must be >= 2, got {self.p.classes}")
        f1 = _widths(self.p.filters)[0]
        # the image head tconv(F/2 -> 3) + sigmoid becomes a logit head tconv(F/2 -> C)
        self.net[-2] = nn.ConvTranspose2d(f1, self.p.classes, 5, stride=2, padding=2, output_padding=1)
        self.net[-1] = nn.Identity()

    def forward(self, z):
        return {"logits": super().forward(z)["image"]}
