"""Batched Canny edge detection in torch, following ``skimage.feature.canny`` step by step.

Used by ``extractor.edge_map`` (seed 004's weights-free stand-in for MuGE) and by
``sink.edge_f1``. For an image batch (B, H, W) in [0, 1]:

1. Gaussian smoothing (scipy's kernel: radius int(4 sigma + 0.5), normalised), zero padding,
   divided by the smoothed all-ones image ("bleed-over" correction of skimage's
   ``_preprocess`` with mode='constant').
2. Sobel gradients along rows (isobel) and columns (jsobel), edge-replicated borders
   (scipy's mode='reflect' for a 1-px kernel radius), magnitude = hypot.
3. Non-maximum suppression with bilinear interpolation between the two neighbours on each
   side along the gradient (skimage's ``_nonmaximum_suppression_bilinear``); the 1-px border
   is never an edge.
4. Hysteresis: keep 8-connected runs of NMS survivors above ``low`` that contain a pixel at or
   above ``high`` (iterated 3x3 dilation instead of connected-component labelling).

Thresholds are absolute (skimage's defaults 0.1 / 0.2 of the dtype max) or, with
``use_quantiles``, quantiles of each image's gradient magnitude (numpy's linear percentile).
tests/test_sgdjscc_edges.py checks the result against skimage pixel by pixel.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

#: skimage.color.rgb2gray weights (ITU-R BT.709)
LUMA = (0.2125, 0.7154, 0.0721)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB -> (B, H, W) luminance as skimage.color.rgb2gray."""
    w = torch.tensor(LUMA, dtype=image.dtype, device=image.device)
    return (image * w.view(1, 3, 1, 1)).sum(1)


def gaussian_kernel(sigma: float, dtype=torch.float32, device=None) -> torch.Tensor:
    radius = int(4.0 * float(sigma) + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / float(sigma)) ** 2)
    return (k / k.sum()).to(dtype=dtype, device=device)


def _sep_conv(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Separable 2-D correlation with zero padding of (B, H, W) by the 1-D kernel k."""
    r = (len(k) - 1) // 2
    x = x.unsqueeze(1)
    x = F.conv2d(F.pad(x, (0, 0, r, r)), k.view(1, 1, -1, 1))
    x = F.conv2d(F.pad(x, (r, r, 0, 0)), k.view(1, 1, 1, -1))
    return x.squeeze(1)


def smooth(gray: torch.Tensor, sigma: float) -> torch.Tensor:
    k = gaussian_kernel(sigma, gray.dtype, gray.device)
    bleed = _sep_conv(torch.ones_like(gray[:1]), k) + torch.finfo(gray.dtype).eps
    return _sep_conv(gray, k) / bleed


def sobel(s: torch.Tensor):
    """(isobel, jsobel): scipy.ndimage.sobel along axis 0 (rows) and 1 (columns)."""
    p = F.pad(s.unsqueeze(1), (1, 1, 1, 1), mode="replicate").squeeze(1)
    di = p[:, 2:, :] - p[:, :-2, :]            # d/drow, still padded in columns
    dj = p[:, :, 2:] - p[:, :, :-2]            # d/dcol, still padded in rows
    isobel = di[:, :, :-2] + 2 * di[:, :, 1:-1] + di[:, :, 2:]
    jsobel = dj[:, :-2, :] + 2 * dj[:, 1:-1, :] + dj[:, 2:, :]
    return isobel, jsobel


def nonmax_bilinear(isobel, jsobel, mag, low):
    """skimage's bilinear non-maximum suppression: the magnitude where it is a local maximum
    along the gradient (and >= low, the interior only), else 0. low: (B,)."""
    b, h, w = mag.shape
    P = F.pad(mag, (1, 1, 1, 1))

    def at(dx, dy):                          # magnitude[x + dx, y + dy] for every pixel
        return P[:, 1 + dx:1 + dx + h, 1 + dy:1 + dy + w]

    ai, aj = isobel.abs(), jsobel.abs()
    up, down = isobel >= 0, isobel <= 0
    right, left = jsobel >= 0, jsobel <= 0
    cond1 = (up & right) | (down & left)
    safe = lambda a, c: a / torch.where(c > 0, c, torch.ones_like(c))   # noqa: E731
    # cond1 (both gradients of one sign)
    c1a = ai > aj
    w1 = torch.where(c1a, safe(aj, ai), safe(ai, aj))
    n11 = torch.where(c1a, at(1, 0), at(0, 1))
    n12 = at(1, 1)
    n21 = torch.where(c1a, at(-1, 0), at(0, -1))
    n22 = at(-1, -1)
    # cond2 (opposite signs)
    c2a = ai < aj
    w2 = torch.where(c2a, safe(ai, aj), safe(aj, ai))
    m11 = torch.where(c2a, at(0, 1), at(-1, 0))
    m12 = at(-1, 1)
    m21 = torch.where(c2a, at(0, -1), at(1, 0))
    m22 = at(1, -1)
    wt = torch.where(cond1, w1, w2)
    a1, a2 = torch.where(cond1, n11, m11), torch.where(cond1, n12, m12)
    b1, b2 = torch.where(cond1, n21, m21), torch.where(cond1, n22, m22)
    keep = ((a2 * wt + a1 * (1 - wt)) <= mag) & ((b2 * wt + b1 * (1 - wt)) <= mag)
    low = torch.as_tensor(low, dtype=mag.dtype, device=mag.device).reshape(-1, 1, 1)
    low = torch.where(low == 0, torch.full_like(low, 1e-14), low)
    interior = torch.zeros_like(mag, dtype=torch.bool)
    interior[:, 1:-1, 1:-1] = True
    keep = keep & interior & (mag >= low)
    return torch.where(keep, mag, torch.zeros_like(mag))


def hysteresis(nms: torch.Tensor, high) -> torch.Tensor:
    """8-connected runs of nms > 0 that hold a pixel >= high (bool (B, H, W))."""
    weak = nms > 0
    high = torch.as_tensor(high, dtype=nms.dtype, device=nms.device).reshape(-1, 1, 1)
    cur = weak & (nms >= high)
    for _ in range(nms.shape[-1] * nms.shape[-2]):
        nxt = weak & (F.max_pool2d(cur.unsqueeze(1).to(nms.dtype), 3, 1, 1).squeeze(1) > 0)
        if torch.equal(nxt, cur):
            break
        cur = nxt
    return cur


def canny(gray: torch.Tensor, sigma: float = 1.0, low: float = 0.1, high: float = 0.2,
          use_quantiles: bool = False) -> torch.Tensor:
    """Binary Canny edges (B, H, W) of grey images (B, H, W); see the module docstring."""
    if gray.dim() != 3:
        raise ValueError(f"canny expects (B, H, W), got {tuple(gray.shape)}")
    if high < low:
        raise ValueError("canny: the low threshold must not exceed the high one")
    s = smooth(gray, sigma)
    isobel, jsobel = sobel(s)
    mag = torch.sqrt(isobel * isobel + jsobel * jsobel)
    if use_quantiles:
        q = torch.quantile(mag.flatten(1), torch.tensor([low, high], dtype=mag.dtype, device=mag.device), dim=1)
        lo, hi = q[0], q[1]
    else:
        lo = torch.full((gray.shape[0],), float(low), dtype=mag.dtype, device=mag.device)
        hi = torch.full_like(lo, float(high))
    return hysteresis(nonmax_bilinear(isobel, jsobel, mag, lo), hi)


def dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Binary dilation of (B, H, W) by a (2r+1)^2 square."""
    if radius <= 0:
        return mask
    k = 2 * radius + 1
    return F.max_pool2d(mask.unsqueeze(1).float(), k, 1, radius).squeeze(1) > 0

