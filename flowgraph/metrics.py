"""Image-quality metrics shared by metric sinks and loss expressions.

MS-SSIM for images of any size: 5-scale MS-SSIM needs more than 160 px, so smaller
images (32x32 crops, CIFAR) use fewer scales with renormalised weights. The sink
``sink.msssim`` and the loss function ``msssim(a, b)`` both call this, so a model
trained on (1 - msssim) optimises exactly the number evaluation reports.
"""
from __future__ import annotations

import torch

#: Wang et al. 2003 scale weights (finest first)
MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


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
