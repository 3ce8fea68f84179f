"""Metric sinks: PSNR, MS-SSIM and MSE, one value per example.

All three reduce over every non-batch dim of one example, so evaluation can average
per-image values and report their spread (DESIGN.md: "PSNR is computed per image,
then averaged" -- not the PSNR of the batch-mean MSE).
"""
from __future__ import annotations

import torch

from flowgraph.block import Param, Port, Sink
from flowgraph.registry import register

#: MSE floor as a fraction of max_val^2: PSNR is capped at 10*log10(1/1e-10) = 100 dB.
MSE_FLOOR = 1e-10
#: the standard MS-SSIM weights (Wang, Simoncelli, Bovik 2003), finest scale first
MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


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


def msssim_config(side: int, levels: int = 0, win_size: int = 0) -> tuple[int, int]:
    """(levels, win_size) used for images whose smaller side is ``side`` (0 = automatic).

    Automatic rule: side > 160 -> the standard 5 levels with an 11-px window (what
    ``pytorch_msssim.ms_ssim`` requires). Smaller images: a 7-px Gaussian window
    (sigma 1.5) and the most levels L <= 5 whose coarsest scale ceil(side/2^(L-1))
    still holds the window: 32x32 -> L = 3 (32, 16, 8 px); 12 px or less -> L = 1 (plain SSIM);
    below 7 px the window shrinks to the largest odd size <= side.
    """
    if win_size <= 0:
        win_size = 11 if side > 160 else 7
        if side < win_size:
            win_size = max(1, side if side % 2 else side - 1)
    if levels <= 0:
        levels = 1
        while levels < 5 and -(-side // 2 ** levels) >= win_size:   # ceil: pooling pads odd sides
            levels += 1
    return levels, win_size


def ms_ssim_per_image(pred, target, data_range=1.0, levels=0, win_size=0, win_sigma=1.5):
    """MS-SSIM per image (B,) for (B, C, H, W) tensors, any size (see ``msssim_config``).

    Standard case (5 levels, 11-px window): ``pytorch_msssim.ms_ssim`` itself. Fewer
    levels: the same computation (``pytorch_msssim`` per-scale SSIM/contrast terms,
    2x average pooling between scales, relu on the terms) with the first L standard
    weights renormalized to sum to 1; L = 1 is SSIM.
    """
    from pytorch_msssim import ms_ssim, ssim
    from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim

    side = min(pred.shape[-2:])
    levels, win_size = msssim_config(side, levels, win_size)
    if levels == 5 and win_size == 11 and side > (win_size - 1) * 16:
        return ms_ssim(pred, target, data_range=data_range, size_average=False,
                       win_size=win_size, win_sigma=win_sigma)
    if levels == 1:
        return ssim(pred, target, data_range=data_range, size_average=False,
                    win_size=win_size, win_sigma=win_sigma, nonnegative_ssim=True)
    w = torch.tensor(MSSSIM_WEIGHTS[:levels], dtype=pred.dtype, device=pred.device)
    w = w / w.sum()
    win = _fspecial_gauss_1d(win_size, win_sigma).repeat([pred.shape[1], 1, 1, 1])
    x, y = pred, target
    terms = []
    for i in range(levels):
        ssim_c, cs_c = _ssim(x, y, data_range=data_range, win=win, size_average=False)
        if i < levels - 1:
            terms.append(torch.relu(cs_c))
            pad = [s % 2 for s in x.shape[2:]]
            x = torch.nn.functional.avg_pool2d(x, kernel_size=2, padding=pad)
            y = torch.nn.functional.avg_pool2d(y, kernel_size=2, padding=pad)
    terms.append(torch.relu(ssim_c))
    stacked = torch.stack(terms, dim=0)                    # (levels, B, C)
    return torch.prod(stacked ** w.view(-1, 1, 1), dim=0).mean(dim=1)


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

