"""Metric sinks: PSNR, MS-SSIM and MSE, one value per example.

All three reduce over every non-batch dim of one example, so evaluation can average
per-image values and report their spread (DESIGN.md: "PSNR is computed per image,
then averaged" -- not the PSNR of the batch-mean MSE).
"""
from __future__ import annotations

import torch

from flowgraph.block import Param, Port, Sink
from flowgraph.metrics import ms_ssim_per_image
from flowgraph.registry import register

#: MSE floor as a fraction of max_val^2: PSNR is capped at 10*log10(1/1e-10) = 100 dB.
MSE_FLOOR = 1e-10
#: the standard MS-SSIM weights (Wang, Simoncelli, Bovik 2003), finest scale first


def _check_pair(where, pred, target):
    if pred.shape != target.shape:
        raise ValueError(f"{where}: pred {tuple(pred.shape)} and target {tuple(target.shape)} "
                         f"must have the same shape")


def per_example_mse(pred, target):
    return ((pred - target) ** 2).reshape(pred.shape[0], -1).mean(dim=1)


_PAIR = {"pred": Port("real", ("B", "..."), tag="image", doc="reconstruction"),
         "target": Port("real", ("B", "..."), tag="image", doc="reference")}


@register("sink.psnr")
class PSNR(Sink):
    """Peak signal-to-noise ratio per example (e.g. Bourtsoulatze et al. 2019, eq. 6).

    PSNR_b = 10 log10(max_val^2 / MSE_b), MSE_b = mean over all of example b's values of
    (clamp(pred_b, 0, max_val) - target_b)^2. pred is clamped to the valid range first
    (a displayed/stored image cannot leave it). MSE_b is floored at 1e-10 * max_val^2,
    so identical images give 100 dB instead of inf. Averaging over a test set happens in
    evaluation: mean of per-image PSNR, not PSNR of the mean MSE.

    Shapes: pred real (B, ...), target real (B, ...) same shape -> value real (B,) in dB.
    """
    inputs = dict(_PAIR)
    params = {"max_val": Param(float, 1.0, "peak value of the signal (1.0 for images in [0, 1])")}
    unit = "dB"
    higher_is_better = True

    def forward(self, pred, target):
        _check_pair("sink.psnr", pred, target)
        m = self.p.max_val
        mse = per_example_mse(pred.clamp(0.0, m), target)
        mse = mse.clamp_min(MSE_FLOOR * m * m)
        return {"value": 10.0 * torch.log10((m * m) / mse)}


@register("sink.mse")
class MSE(Sink):
    """Mean squared error per example: MSE_b = mean_i (pred_b,i - target_b,i)^2 (no clamping).

    Shapes: pred real (B, ...), target real (B, ...) same shape -> value real (B,).
    """
    inputs = dict(_PAIR)
    params = {}
    unit = ""
    higher_is_better = False

    def forward(self, pred, target):
        _check_pair("sink.mse", pred, target)
        return {"value": per_example_mse(pred, target)}


@register("sink.msssim")
class MSSSIM(Sink):
    """Multi-scale SSIM per image (Wang, Simoncelli, Bovik, Asilomar 2003, eq. 7).

    MS-SSIM_b = prod_l cs_l^(w_l) * ssim_L^(w_L), computed with ``pytorch-msssim``
    (size_average=False), values in [0, 1]. pred is clamped to [0, max_val] first.
    The standard 5 scales with an 11-px window need images larger than 160 px; for
    smaller images (``levels``/``win_size`` = 0, automatic) a 7-px window (sigma 1.5)
    and as many scales as fit are used, with the first L standard weights
    (0.0448, 0.2856, 0.3001, 0.2363, 0.1333) renormalized to sum to 1:
    32x32 -> 3 scales (32/16/8 px), weights (0.0711, 0.4530, 0.4760);
    images of 12 px or less fall back to single-scale SSIM. Report the setting with results:
    small-image MS-SSIM values are not comparable with the standard 5-scale ones.

    Shapes: pred real (B, C, H, W), target real (B, C, H, W) -> value real (B,).
    """
    log_in_training = False     # ~8 ms per batch of 32: evaluation reports it
    inputs = {"pred": Port("real", ("B", "C", "H", "W"), tag="image", doc="reconstruction"),
              "target": Port("real", ("B", "C", "H", "W"), tag="image", doc="reference")}
    params = {"max_val": Param(float, 1.0, "data range (1.0 for images in [0, 1])"),
              "levels": Param(int, 0, "number of scales (0 = automatic from the image size)"),
              "win_size": Param(int, 0, "odd Gaussian window size (0 = automatic: 11 if > 160 px, else 7)")}
    unit = ""
    higher_is_better = True

    def forward(self, pred, target):
        _check_pair("sink.msssim", pred, target)
        if self.p.win_size > 0 and self.p.win_size % 2 == 0:
            raise ValueError(f"sink.msssim: param 'win_size' must be odd, got {self.p.win_size}")
        m = self.p.max_val
        val = ms_ssim_per_image(pred.clamp(0.0, m), target, data_range=m,
                                levels=self.p.levels, win_size=self.p.win_size)
        return {"value": val}

