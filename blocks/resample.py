"""Trivial reference codec: keep a thumbnail, upsample it back (no learning, no channel).

A learned image codec that sends K real values per image should beat the plainest way of
spending K values: a K-value thumbnail (3 x s x s, 3 s^2 <= K) interpolated back to full
size. Sent without noise, the thumbnail is an *upper bound* for any scheme that transmits
those pixels; a learned codec below it at high SNR is no better than resizing. The
README's quality table reports it beside DeepJSCC (graphs/baselines/resample.yaml), as
issue 17 asked, with K = DeepJSCC's 2 x 512 real channel values per 32 x 32 crop.
"""
from __future__ import annotations

import torch.nn.functional as F

from flowgraph.block import Block, Param, Port
from flowgraph.registry import register

DOWN_MODES = ("area", "bilinear", "bicubic")
UP_MODES = ("nearest", "bilinear", "bicubic")


class _Resize(Block):
    """Shared: the one size param (``side_param``) must be positive."""
    side_param = ""

    def __init__(self, **params):
        super().__init__(**params)
        if self.p[self.side_param] < 1:
            raise ValueError(f"{self.type_id}: param '{self.side_param}' must be >= 1, "
                             f"got {self.p[self.side_param]}")


@register("extractor.downsample")
class Downsample(_Resize):
    """Image thumbnail: resize to side x side (trivial reference codec, blocks/resample.py).

    ``area`` averages pixel boxes; ``bilinear`` / ``bicubic`` use antialiased filters.
    The thumbnail keeps 3 * side^2 real values per image.

    Shapes: image real (B, 3, H, W) -> x real (B, 3, S, S), S = side.
    """
    inputs = {"image": Port("real", ("B", 3, "H", "W"), tag="image", doc="images in [0, 1]")}
    outputs = {"x": Port("real", ("B", 3, "S", "S"), tag="image", doc="the thumbnail")}
    params = {"side": Param(int, 16, "thumbnail side S (3 S^2 real values per image)"),
              "mode": Param(str, "area", "downsampling filter", choices=DOWN_MODES)}

    @classmethod
    def bind_dims(cls, p):
        return {"S": p["side"]}

    side_param = "side"

    def forward(self, image):
        s, mode = self.p.side, self.p.mode
        if mode == "area":
            return {"x": F.adaptive_avg_pool2d(image, s)}
        return {"x": F.interpolate(image, size=(s, s), mode=mode, antialias=True, align_corners=False)}


@register("decoder.upsample")
class Upsample(_Resize):
    """Interpolate a thumbnail back to size x size, clipped to [0, 1] (blocks/resample.py).

    Shapes: x real (B, 3, S, S) -> image real (B, 3, H, W) in [0, 1], H = W = size.
    """
    inputs = {"x": Port("real", ("B", 3, "S", "S"), tag="image", doc="thumbnail")}
    outputs = {"image": Port("real", ("B", 3, "H", "W"), tag="image", doc="reconstruction in [0, 1]")}
    params = {"size": Param(int, 32, "output side H = W"),
              "mode": Param(str, "bicubic", "interpolation", choices=UP_MODES)}

    @classmethod
    def bind_dims(cls, p):
        return {"H": p["size"], "W": p["size"]}

    side_param = "size"

    def forward(self, x):
        s, mode = self.p.size, self.p.mode
        extra = {} if mode == "nearest" else {"align_corners": False}
        return {"image": F.interpolate(x, size=(s, s), mode=mode, **extra).clamp(0.0, 1.0)}
