"""Statistics of evaluation results: means with 95% intervals, for one run and across runs.

- :func:`summarize` — mean, std and a 95% CI of per-example values. Values of the same
  held-out example seen in several Monte-Carlo repeats are correlated (same image), so the
  variance of the mean is the cluster-robust one (clusters = examples); with one value per
  example it is the usual s^2 / n. Proportions (error rates, accuracies) get a Wilson score
  interval, which stays inside [0, 1] where the normal approximation does not.
- :func:`bootstrap_interval` — a seeded percentile bootstrap over examples for set-level
  metrics (a confusion-matrix mIoU, a Fréchet distance), whose value is not a mean.
- :func:`across_seeds` and :func:`paired_difference` — pooling several seeds of one
  configuration (t interval over the seeds' means) and paired per-example differences
  between two runs that evaluated the same examples.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

#: two-sided 95% quantile of the standard normal
Z95 = 1.959963984540054


def t95(dof: int) -> float:
    """Two-sided 95% quantile of Student's t with ``dof`` degrees of freedom."""
    if dof <= 0:
        return float("nan")
    from scipy.stats import t
    return float(t.ppf(0.975, dof))


def wilson(p: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``p`` observed over ``n`` trials (within [0, 1])."""
    if not n or n <= 0 or not math.isfinite(p):
        return float("nan"), float("nan")
    p = min(1.0, max(0.0, p))
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # at p = 0 (p = 1) the lower (upper) end is exactly 0 (1); say so despite rounding
    return (0.0 if p == 0 else max(0.0, centre - half)), (1.0 if p == 1 else min(1.0, centre + half))


def _var_of_mean(v: torch.Tensor, clusters: torch.Tensor | None) -> float:
    """Variance of the mean of ``v``: s^2/n, or the cluster-robust (CR1) variance when
    values share clusters (the same example in several repeats)."""
    n = v.numel()
    if n < 2:
        return 0.0
    if clusters is None or torch.unique(clusters).numel() == n:
        return float(v.var(unbiased=True)) / n
    ids, inv = torch.unique(clusters, return_inverse=True)
    c = ids.numel()
    if c < 2:
        return 0.0
    resid = torch.zeros(c, dtype=torch.float64).index_add_(0, inv, v - v.mean())
    return float((resid ** 2).sum()) / (n * n) * c / (c - 1)


def summarize(values, clusters=None, proportion: bool = False) -> dict:
    """Mean, std (of the values), a 95% CI of the mean (``ci95`` half-width, ``lo``, ``hi``), n.

    ``clusters`` (one id per value) marks values of the same example; ``proportion`` uses a
    Wilson interval with the effective sample size p(1-p)/Var(mean) (the number of values
    when each example is seen once and the values are 0/1)."""
    v = torch.as_tensor(values, dtype=torch.float64).flatten()
    cl = None if clusters is None else torch.as_tensor(clusters).flatten()
    n = v.numel()
    if n == 0:
        nan = float("nan")
        return {"mean": nan, "std": nan, "ci95": nan, "lo": nan, "hi": nan, "n": 0}
    mean = float(v.mean())
    std = float(v.std(unbiased=True)) if n > 1 else 0.0
    var = _var_of_mean(v, cl)
    if proportion:
        p = min(1.0, max(0.0, mean))
        n_eff = p * (1 - p) / var if var > 0 else float(n)
        lo, hi = wilson(p, n_eff)
    else:
        half = Z95 * math.sqrt(var)
        lo, hi = mean - half, mean + half
    return {"mean": mean, "std": std, "ci95": (hi - lo) / 2, "lo": lo, "hi": hi, "n": n}


def bootstrap_interval(statistic: Callable[[torch.Tensor], float], clusters: torch.Tensor, draws: int,
                       seed: int, batched: Callable[[torch.Tensor], torch.Tensor | None] | None = None
                       ) -> tuple[float, float]:
    """Percentile 95% interval of ``statistic(rows)`` over ``draws`` resamples of the examples
    with replacement. ``clusters[i]`` is the example of row i (an example's repeats are its
    rows, resampled together); ``statistic`` gets one resample's row indices, grouped by
    example. ``batched``, when given, gets all resamples at once, (draws, rows) row indices ->
    (draws,) values (or None to fall back): one tensor operation instead of ``draws`` calls,
    which matters because this runs for every set-level column at every evaluation point."""
    clusters = torch.as_tensor(clusters, dtype=torch.long).flatten()
    order = torch.argsort(clusters, stable=True)
    _, counts = torch.unique_consecutive(clusters[order], return_counts=True)
    n = counts.numel()
    if draws <= 0 or n < 2:
        return float("nan"), float("nan")
    g = torch.Generator().manual_seed(int(seed))
    picks = torch.randint(n, (draws, n), generator=g)
    if bool((counts == counts[0]).all()):          # every example has the same number of rows
        index = order.view(n, int(counts[0]))[picks].reshape(draws, -1)
        values = batched(index) if batched is not None else None
        got = values.double().flatten() if values is not None else [float(statistic(row)) for row in index]
    else:                                          # e.g. the last pass of evaluate.until cut short
        starts, got = torch.cumsum(counts, 0) - counts, []
        for pick in picks:
            lengths = counts[pick]
            # row j of the resample, in picked example s, reads order[starts[s] + (j - first row of s)]
            shift = torch.repeat_interleave(starts[pick] - (torch.cumsum(lengths, 0) - lengths), lengths)
            got.append(float(statistic(order[torch.arange(shift.numel()) + shift])))
    t = torch.as_tensor(got, dtype=torch.float64)
    t = t[torch.isfinite(t)]
    if t.numel() < 2:
        return float("nan"), float("nan")
    lo, hi = torch.quantile(t, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    return lo, hi


def resample_weights(index: torch.Tensor, rows: int) -> torch.Tensor:
    """(R, N) row indices of R resamples -> (R, rows) how often each row was drawn: additive
    statistics of all resamples are then one product, ``weights @ stats``."""
    w = torch.zeros(index.shape[0], rows, dtype=torch.float64)
    return w.scatter_add_(1, index, torch.ones(index.shape, dtype=torch.float64))


def across_seeds(means: Sequence[float]) -> dict:
    """Pool runs of one configuration that differ in seed: mean of their means and a t
    interval across seeds (k - 1 degrees of freedom)."""
    m = torch.tensor([float(x) for x in means], dtype=torch.float64)
    k = m.numel()
    mean = float(m.mean())
    if k < 2:
        return {"mean": mean, "lo": float("nan"), "hi": float("nan"), "ci95": float("nan"), "seeds": k}
    half = t95(k - 1) * float(m.std(unbiased=True)) / math.sqrt(k)
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "ci95": half, "seeds": k}


def paired_difference(a, b) -> dict:
    """Mean of the per-example differences a_i - b_i with a 95% CI (the examples pair up)."""
    d = torch.as_tensor(a, dtype=torch.float64) - torch.as_tensor(b, dtype=torch.float64)
    s = summarize(d)
    return {"diff": s["mean"], "lo": s["lo"], "hi": s["hi"], "n": s["n"], "paired": True}


def unpaired_difference(a: dict, b: dict) -> dict:
    """Difference of two independent means given their 95% half-widths (normal approximation)."""
    half = math.sqrt(a["ci95"] ** 2 + b["ci95"] ** 2)
    d = a["mean"] - b["mean"]
    return {"diff": d, "lo": d - half, "hi": d + half, "paired": False}
