"""Metrics shared by metric sinks and loss expressions: MS-SSIM and the Fréchet distance.

MS-SSIM for images of any size: 5-scale MS-SSIM needs more than 160 px, so smaller
images (32x32 crops, CIFAR) use fewer scales with renormalised weights. The sink
``sink.msssim`` and the loss function ``msssim(a, b)`` both call this, so a model
trained on (1 - msssim) optimises exactly the number evaluation reports.

The Fréchet distance between Gaussian fits of two feature sets (``frechet_distance``) is
the set-level reduction of FID-style sinks (``sink.frechet``; ``sink.fid`` computes
Inception features and reduces them the same way).
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


# --------------------------------------------------------------------------------------
# Fréchet distance between Gaussian fits of two feature sets (FID-style set-level metrics)
# --------------------------------------------------------------------------------------

def gaussian_statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D), in float64.

    The same estimate as ``numpy.cov(features, rowvar=False)``, which FID implementations
    (pytorch-fid, TTUR) use. Needs N >= 2."""
    x = features.detach().reshape(features.shape[0], -1).double()
    if x.shape[0] < 2:
        raise ValueError(f"gaussian_statistics: need at least 2 feature vectors, got {x.shape[0]}")
    mu = x.mean(0)
    xc = x - mu
    return mu, xc.T @ xc / (x.shape[0] - 1)


def _psd_sqrt(cov: torch.Tensor) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(cov)
    return (vecs * vals.clamp_min(0.0).sqrt()) @ vecs.T


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """Fréchet (2-Wasserstein) distance between N(mu1, cov1) and N(mu2, cov2):

        d^2 = ||mu1 - mu2||^2 + tr(cov1) + tr(cov2) - 2 tr((cov1 cov2)^(1/2))

    (Dowson & Landau 1982; the FID of Heusel et al., NeurIPS 2017, on Inception features).
    The trace term uses the symmetric form tr((S1^(1/2) cov2 S1^(1/2))^(1/2)), S1 = cov1^(1/2),
    whose eigenvalues are those of cov1 cov2, so it needs no non-symmetric matrix square
    root (``scipy.linalg.sqrtm``) and stays real for singular covariances (fewer samples
    than dimensions); eigenvalues below 0 from rounding are clipped to 0, and so is the
    result. float64 throughout."""
    mu1, mu2 = torch.as_tensor(mu1).double(), torch.as_tensor(mu2).double()
    cov1, cov2 = torch.as_tensor(cov1).double(), torch.as_tensor(cov2).double()
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape or cov1.shape != mu1.shape * 2:
        raise ValueError(f"frechet_distance: means {tuple(mu1.shape)}, {tuple(mu2.shape)} and covariances "
                         f"{tuple(cov1.shape)}, {tuple(cov2.shape)} do not fit one dimension D")
    s1 = _psd_sqrt(cov1)
    middle = s1 @ cov2 @ s1
    tr_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0.0).sqrt().sum()
    d2 = (mu1 - mu2).pow(2).sum() + torch.trace(cov1) + torch.trace(cov2) - 2.0 * tr_sqrt
    return max(float(d2), 0.0)


def frechet_distance_of_features(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between the Gaussian fits of feature sets a (N, D) and b (M, D)."""
    return frechet_distance(*gaussian_statistics(a), *gaussian_statistics(b))
