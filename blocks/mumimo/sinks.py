"""Multi-user metric sinks for seed 003 (Sec. IV, Figs. 9 and 11): PSNR and classification accuracy;
seed 001 (Deep JSCBF, Figs. 9-12) adds per-user MS-SSIM, linear and in dB.

One value per example (a frame with K users), as every ``Sink``: evaluation then reports
mean, spread and confidence interval over examples.
"""
from __future__ import annotations

import torch

from flowgraph.block import Param, Port, Sink
from flowgraph.metrics import ms_ssim_per_image
from flowgraph.registry import register

from ..sinks import MSE_FLOOR


@register("sink.user_psnr")
class UserPSNR(Sink):
    """PSNR of every user's image, averaged over the users of an example (seed 003, Fig. 9).

    PSNR_{b,k} = 10 log10(max_val^2 / MSE_{b,k}), MSE over the 3 H W values of user k's
    image, pred clamped to [0, max_val] and MSE floored at 1e-10 max_val^2 (as
    ``sink.psnr``); value_b = mean_k PSNR_{b,k}. This is "PSNR per image, then averaged"
    (DESIGN.md): ``sink.psnr`` on (B, K, 3, H, W) would give the PSNR of the users' mean
    MSE instead, which a single badly served user dominates.

    Shapes: pred real (B, K, 3, H, W), target real (B, K, 3, H, W) -> value real (B,) [dB].
    """
    inputs = {"pred": Port("real", ("B", "K", 3, "H", "W"), tag="image", doc="reconstructions"),
              "target": Port("real", ("B", "K", 3, "H", "W"), tag="image", doc="references")}
    params = {"max_val": Param(float, 1.0, "peak value (1.0 for images in [0, 1])")}
    unit = "dB"
    higher_is_better = True

    def forward(self, pred, target):
        if pred.shape != target.shape:
            raise ValueError(f"sink.user_psnr: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
        m = self.p.max_val
        mse = ((pred.clamp(0.0, m) - target) ** 2).flatten(2).mean(dim=2)       # (B, K)
        psnr = 10.0 * torch.log10((m * m) / mse.clamp_min(MSE_FLOOR * m * m))
        return {"value": psnr.mean(dim=1)}


@register("sink.user_msssim")
class UserMSSSIM(Sink):
    """MS-SSIM of every user's image, averaged over the users of an example (seed 001 Deep
    JSCBF, Figs. 9-12 and Table II report it in dB).

    MS-SSIM_{b,k} as ``sink.msssim`` (``flowgraph.metrics.ms_ssim_per_image``: fewer scales
    and a 7-px window below 161 px, so 32x32 images use 3 scales), pred clamped to
    [0, max_val]. ``db: false``: value_b = mean_k MS-SSIM_{b,k} in [0, 1]; ``db: true``:
    value_b = mean_k -10 log10(1 - MS-SSIM_{b,k}) (per image, then averaged: the mean of dB
    values is not the dB of the mean; 1 - MS-SSIM floored at 1e-10, i.e. at most 100 dB).
    The paper does not define its dB scale; -10 log10(1 - MS-SSIM) is the usual one and
    matches its numbers (e.g. 12.07 dB = 0.938).

    Shapes: pred real (B, K, 3, H, W), target real (B, K, 3, H, W) -> value real (B,).
    """
    log_in_training = False
    inputs = {"pred": Port("real", ("B", "K", 3, "H", "W"), tag="image", doc="reconstructions"),
              "target": Port("real", ("B", "K", 3, "H", "W"), tag="image", doc="references")}
    params = {"max_val": Param(float, 1.0, "data range (1.0 for images in [0, 1])"),
              "db": Param(bool, False, "report -10 log10(1 - MS-SSIM) per image (dB) instead of MS-SSIM")}
    higher_is_better = True
    unit = ""            # a class attribute, read before any instance exists: name the block ms_db

    def forward(self, pred, target):
        if pred.shape != target.shape:
            raise ValueError(f"sink.user_msssim: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
        b, k = pred.shape[:2]
        m = self.p.max_val
        val = ms_ssim_per_image(pred.clamp(0.0, m).flatten(0, 1), target.flatten(0, 1), data_range=m)
        val = val.reshape(b, k)
        if self.p.db:
            val = -10.0 * torch.log10((1.0 - val).clamp_min(MSE_FLOOR))
        return {"value": val.mean(dim=1)}


@register("sink.accuracy")
class Accuracy(Sink):
    """Classification accuracy per example: the fraction of its users whose arg-max class
    equals the label (seed 003, Fig. 11; averaged over the test set it is the accuracy over
    all images). Labels < 0 (unlabelled) are left out of the fraction; an example with no
    labelled user counts NaN.

    Shapes: logits real (B, ..., C), label int (B, ...) -> value real (B,) in [0, 1].
    """
    inputs = {"logits": Port("real", ("B", "...", "C"), tag="logits", doc="class scores"),
              "label": Port("int", ("B", "..."), tag="label", doc="true class")}
    params = {}
    unit = ""
    higher_is_better = True
    proportion = True

    def forward(self, logits, label):
        if logits.shape[:-1] != label.shape:
            raise ValueError(f"sink.accuracy: logits {tuple(logits.shape)} do not fit labels {tuple(label.shape)}")
        b = label.shape[0]
        hit = (logits.argmax(dim=-1) == label).reshape(b, -1).float()
        valid = (label >= 0).reshape(b, -1).float()
        return {"value": (hit * valid).sum(dim=1) / valid.sum(dim=1)}
