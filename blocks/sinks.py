"""Metric sinks: PSNR, MS-SSIM, MSE, segmentation mIoU and a Fréchet distance.

Every sink gives one value per example (``value``, (B,)), so evaluation can average
per-image values and report their spread (DESIGN.md: "PSNR is computed per image, then
averaged" -- not the PSNR of the batch-mean MSE). Some metrics are defined over a whole
set instead; their sinks also output additive per-example statistics ``stats`` (B, ...)
and reduce the concatenated statistics of one evaluation point with ``reduce_stats``
(the set-level metric contract, docs/graph-format.md "Set-level metrics"):

    sink.psnr     stats = per-example MSE        -> psnr_of_mse = 10 log10(max^2 / mean MSE)
    sink.miou     stats = confusion matrix (C, C) -> miou_dataset (mIoU of the summed matrix)
    sink.frechet  stats = [features of pred, of target] -> frechet_set (Gaussian-fit distance)
"""
from __future__ import annotations

from typing import ClassVar

import torch

from flowgraph.block import Param, Port, Sink
from flowgraph.metrics import frechet_distance_of_features, ms_ssim_per_image
from flowgraph.registry import register
from flowgraph.stats import resample_weights

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

    Set level (issue 20's second convention, common in papers and public code): ``stats``
    holds MSE_b (floored as above) and ``reduce_stats`` gives the PSNR of the mean MSE over
    the evaluation point, 10 log10(max_val^2 / mean_b MSE_b), reported as ``<name>_of_mse``.
    It is never above the per-image mean (Jensen), by ~0.5 dB on CIFAR-10-like sets.

    Shapes: pred real (B, ...), target real (B, ...) same shape -> value real (B,) in dB,
            stats real (B, 1) = MSE_b.
    """
    inputs = dict(_PAIR)
    outputs = {"value": Port("real", ("B",), tag="scalar", doc="PSNR per example (dB)"),
               "stats": Port("real", ("B", 1), doc="MSE per example, for the PSNR of the mean MSE")}
    params = {"max_val": Param(float, 1.0, "peak value of the signal (1.0 for images in [0, 1])")}
    unit = "dB"
    higher_is_better = True
    set_suffix: ClassVar[str] = "of_mse"

    def forward(self, pred, target):
        _check_pair("sink.psnr", pred, target)
        m = self.p.max_val
        mse = per_example_mse(pred.clamp(0.0, m), target)
        mse = mse.clamp_min(MSE_FLOOR * m * m)
        return {"value": 10.0 * torch.log10((m * m) / mse), "stats": mse.unsqueeze(1)}

    def reduce_stats(self, stats: torch.Tensor) -> float:
        """PSNR of the mean MSE over every example of one evaluation point."""
        m = self.p.max_val
        return float(10.0 * torch.log10(torch.tensor(m * m, dtype=torch.float64) / stats.double().mean()))

    def reduce_stats_resampled(self, stats: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        m = self.p.max_val
        mean_mse = resample_weights(index, stats.shape[0]) @ stats[:, 0].double() / index.shape[1]
        return 10.0 * torch.log10((m * m) / mean_mse)


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


# ----------------------------------------------------------------------------- segmentation

def confusion_matrices(pred: torch.Tensor, label: torch.Tensor, n_classes: int,
                       ignore_index: int = -1) -> torch.Tensor:
    """Per-example confusion matrices cf[b, gt, pred] (B, C, C), int64, of predicted classes
    pred (B, ...) against labels (B, ...); pixels labelled ``ignore_index`` are not counted."""
    b, c = label.shape[0], n_classes
    gt, pr = label.reshape(b, -1).long(), pred.reshape(b, -1).long()
    keep = gt != ignore_index
    bad = keep & ((gt < 0) | (gt >= c))
    if bad.any():
        raise ValueError(f"label value {int(gt[bad][0])} is outside 0..{c - 1} (and not ignore_index "
                         f"{ignore_index})")
    example = torch.arange(b, device=gt.device).unsqueeze(1).expand_as(gt)
    flat = (example * c * c + gt * c + pr)[keep]
    return torch.bincount(flat, minlength=b * c * c).reshape(b, c, c)


def class_iou(cf: torch.Tensor, convention: str = "standard") -> torch.Tensor:
    """IoU per class (..., C) from confusion matrices cf[..., gt, pred] (..., C, C), float64.

    standard: IoU_c = TP / (TP + FP + FN); NaN for a class absent from both labels and
              predictions (left out of the mean).
    mfnet:    MFNet-pytorch ``calculate_result`` (seed 002 CSC-SA-Net's metric, seed002.md
              Sec. 3.4): class 0 is "unlabelled" and its IoU is 0; for c >= 1 pixels of
              class 0 are neither false positives nor false negatives,
              IoU_c = cf[c,c] / (sum_{p>=1} cf[c,p] + sum_{g>=1} cf[g,c] - cf[c,c]), and a class
              never predicted has IoU 0 (also when that denominator is 0, where MFNet's
              code would give 0/0 = NaN).
    """
    cf = cf.double()
    tp = torch.diagonal(cf, dim1=-2, dim2=-1)
    if convention == "mfnet":
        rows, cols = cf[..., 1:].sum(-1), cf[..., 1:, :].sum(-2)     # sum_{p>=1} cf[c, p], sum_{g>=1} cf[g, c]
        denom = rows + cols - tp
        predicted = cf.sum(-2) > 0
        iou = torch.where(predicted & (denom > 0), tp / denom.clamp_min(1.0), torch.zeros_like(tp))
        iou[..., 0] = 0.0
        return iou
    union = cf.sum(-1) + cf.sum(-2) - tp
    return torch.where(union > 0, tp / union.clamp_min(1.0), torch.full_like(tp, float("nan")))


def mean_iou(cf: torch.Tensor, convention: str = "standard") -> torch.Tensor:
    """mIoU (...,) of confusion matrices (..., C, C): standard = mean over the classes present
    (NaN when none is), mfnet = mean over all C entries including IoU_0 = 0 (so 8/9 of the
    object-class mean for MFNet's 9 classes)."""
    iou = class_iou(cf, convention)
    return iou.mean(-1) if convention == "mfnet" else iou.nanmean(-1)


@register("sink.miou")
class MIoU(Sink):
    """Mean intersection over union of a semantic segmentation (seed 002 CSC-SA-Net, eq. 29).

    The predicted class of a pixel is the argmax of its logits over axis 1. Per example,
    a confusion matrix cf[gt, pred] counts its pixels (labels equal to ``ignore_index``
    are not counted); ``value`` is that image's mIoU, ``stats`` the matrix itself.
    Set level (what segmentation papers report): ``reduce_stats`` sums the matrices of
    every image of the evaluation point and takes the mIoU of the sum, reported as
    ``<name>_dataset``. It differs from the mean of per-image mIoUs: large and small
    objects weigh by their pixels, and a class missing from one image does not count there.

    ``convention`` (see ``class_iou``): ``standard`` = mean over classes present in labels or
    predictions; ``mfnet`` = MFNet-pytorch's ``calculate_result`` used by seed 002's code:
    class 0 is the unlabelled class with IoU 0, its pixels are neither false positives nor
    false negatives for the other classes, never-predicted classes count 0, and the mean is
    over all C entries. An image without any counted pixel has no standard per-image mIoU
    (NaN).

    Shapes: logits real (B, C, ...), label int (B, ...) (logits without axis 1)
            -> value real (B,) in [0, 1], stats int (B, C, C).
    """
    inputs = {"logits": Port("real", ("B", "C", "..."), tag="logits", doc="class scores per pixel"),
              "label": Port("int", ("B", "..."), tag="label", doc="class per pixel")}
    outputs = {"value": Port("real", ("B",), tag="scalar", doc="mIoU per image"),
               "stats": Port("int", ("B", "C", "C"), doc="confusion matrix cf[gt, pred] per image")}
    params = {"n_classes": Param(int, 0, "C, the number of classes (0 = read it from the logits)"),
              "convention": Param(str, "standard", "standard (mean over present classes) or mfnet "
                                  "(class 0 unlabelled, MFNet calculate_result)",
                                  choices=("standard", "mfnet")),
              "ignore_index": Param(int, -1, "label value of pixels not counted (void)")}
    higher_is_better = True
    unit = ""
    log_in_training = True
    set_suffix: ClassVar[str] = "dataset"

    @classmethod
    def bind_dims(cls, p):
        return {"C": p["n_classes"]} if p.get("n_classes", 0) > 0 else {}

    def forward(self, logits, label):
        c = logits.shape[1]
        if self.p.n_classes and c != self.p.n_classes:
            raise ValueError(f"sink.miou: logits have {c} classes, param n_classes is {self.p.n_classes}")
        if tuple(label.shape) != tuple(logits.shape[:1] + logits.shape[2:]):
            raise ValueError(f"sink.miou: label {tuple(label.shape)} does not fit logits {tuple(logits.shape)} "
                             f"(expects logits without axis 1)")
        cf = confusion_matrices(logits.detach().argmax(1), label, c, self.p.ignore_index)
        return {"value": mean_iou(cf, self.p.convention).float(), "stats": cf}

    def reduce_stats(self, stats: torch.Tensor) -> float:
        """Dataset mIoU: the mIoU of the summed confusion matrix."""
        return float(mean_iou(stats.sum(0), self.p.convention))

    def reduce_stats_resampled(self, stats: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        w = resample_weights(index, stats.shape[0])
        return mean_iou(torch.einsum("rn,ncd->rcd", w, stats.double()), self.p.convention)

    def class_iou(self, stats: torch.Tensor) -> list[float]:
        """IoU per class of the summed confusion matrix (for per-class tables)."""
        return class_iou(stats.sum(0), self.p.convention).tolist()


# ----------------------------------------------------------------------------- Fréchet distance

@register("sink.frechet")
class Frechet(Sink):
    """Fréchet distance between the feature distributions of predictions and targets, fitted
    as Gaussians over the whole evaluation point (the FID formula of Heusel et al., NeurIPS
    2017, eq. 6, on any features; seed 004 SGD-JSCC reports FID with Inception features).

    Each example's pred and target are flattened to D features. Set level: ``stats`` holds
    [f_pred, f_target] (B, 2D); ``reduce_stats`` fits mean and covariance of each half over
    every example and returns d^2 = ||mu_p - mu_t||^2 + tr(S_p + S_t - 2 (S_p S_t)^(1/2))
    (``flowgraph.metrics.frechet_distance``), reported as ``<name>_set``. A Fréchet distance
    is a property of sets: ``value`` (||f_pred - f_target||^2 per example, a diagnostic) is not
    reported (``per_example = False``). Use few features (D well below the number of
    examples) or a feature extractor upstream; ``sink.fid`` is this with Inception features.

    Shapes: pred real (B, ...), target real (B, ...) same shape, D values per example
            -> value real (B,), stats real (B, 2D).
    """
    inputs = {"pred": Port("real", ("B", "..."), doc="features (or images) of the reconstruction"),
              "target": Port("real", ("B", "..."), doc="features (or images) of the reference")}
    outputs = {"value": Port("real", ("B",), tag="scalar", doc="||f_pred - f_target||^2 (diagnostic)"),
               "stats": Port("real", ("B", "D2"), doc="[f_pred, f_target] per example")}
    params = {}
    higher_is_better = False
    unit = ""
    per_example: ClassVar[bool] = False
    set_bootstrap: ClassVar[bool] = False     # one eigendecomposition of D x D per resample
    set_suffix: ClassVar[str] = "set"

    def forward(self, pred, target):
        _check_pair("sink.frechet", pred, target)
        fp, ft = pred.reshape(pred.shape[0], -1), target.reshape(target.shape[0], -1)
        return {"value": ((fp - ft) ** 2).sum(1), "stats": torch.cat([fp, ft], 1).detach()}

    def reduce_stats(self, stats: torch.Tensor) -> float:
        d = stats.shape[1] // 2
        return frechet_distance_of_features(stats[:, :d], stats[:, d:])
