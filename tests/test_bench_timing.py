"""The benchmark timing helper (bench/timing.py): interval, verdicts, chunked workers.

Synthetic timings only: no assertion here depends on how fast this machine is.
"""
import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from timing import ABTimings, ChunkedWorker, interleave, loop_worker, ratio_ci, verdict  # noqa: E402


def test_interval_covers_the_true_median_and_shrinks_with_more_pairs():
    rng = np.random.default_rng(1)
    true = 1.05
    small = true * np.exp(rng.normal(0, 0.08, 20))
    large = true * np.exp(rng.normal(0, 0.08, 800))
    m_s, lo_s, hi_s = ratio_ci(small, seed=2)
    m_l, lo_l, hi_l = ratio_ci(large, seed=2)
    assert lo_s <= m_s <= hi_s and lo_l <= m_l <= hi_l
    assert lo_l < true < hi_l
    assert (hi_l - lo_l) < (hi_s - lo_s) / 3          # ~1/sqrt(40) of the width
    # the median of the ratios, not their mean: one huge outlier barely moves it
    spiked = np.append(large, 50.0)
    assert ratio_ci(spiked)[0] == pytest.approx(m_l, rel=2e-3)


def test_coverage_of_the_bootstrap_interval_is_near_95_percent():
    rng = np.random.default_rng(7)
    hits = 0
    for k in range(200):
        r = np.exp(rng.normal(0, 0.1, 60))              # true median 1
        _, lo, hi = ratio_ci(r, seed=k, n_boot=1000)
        hits += lo <= 1.0 <= hi
    assert 0.88 <= hits / 200 <= 0.995


def test_verdicts_only_when_the_interval_decides():
    assert verdict(0.98, 1.02, 1.03) == "meets"
    assert verdict(1.031, 1.06, 1.03) == "misses"
    assert verdict(1.01, 1.05, 1.03) == "undecided: run longer"
    rng = np.random.default_rng(3)
    clear_miss = 1.08 * np.exp(rng.normal(0, 0.02, 100))
    assert verdict(*ratio_ci(clear_miss)[1:], 1.03) == "misses"
    clear_meet = 0.99 * np.exp(rng.normal(0, 0.02, 100))
    assert verdict(*ratio_ci(clear_meet)[1:], 1.03) == "meets"
    noisy_few = 1.03 * np.exp(rng.normal(0, 0.2, 6))
    assert verdict(*ratio_ci(noisy_few)[1:], 1.03) == "undecided: run longer"


def test_interleave_alternates_chunks_in_random_order_and_stops_both_workers():
    log = []
    a = loop_worker(lambda: log.append("a"), 3, "A")
    b = loop_worker(lambda: log.append("b"), 2, "B")
    t = interleave(a, b, pairs=12, warmup=1, progress=None, seed=5)
    assert t.pairs == 12 and isinstance(t, ABTimings)
    assert set(t.order) == {"AB", "BA"}                 # both orders occur
    assert a.finished and b.finished and a.error is None and b.error is None
    # every chunk is one run of the loop: 13 chunks of 3 a's and 13 of 2 b's, never mixed
    assert log.count("a") == 13 * 3 and log.count("b") == 13 * 2
    assert re.fullmatch(r"(aaa|bb)*", "".join(log))     # one worker at a time
    assert all(w >= 0 for w in t.wall_a + t.wall_b)


def test_until_width_keeps_sampling_and_max_pairs_bounds_it():
    a = loop_worker(lambda: None, 1, "A")
    b = loop_worker(lambda: None, 1, "B")
    t = interleave(a, b, pairs=4, warmup=0, until_width=1e-12, max_pairs=25, progress=None)
    assert t.pairs == 25


def test_a_failing_worker_is_reported_not_hung():
    def target(boundary):
        boundary()
        raise ValueError("boom")
    bad = ChunkedWorker(target, "bad")
    good = loop_worker(lambda: None, 1, "good")
    with pytest.raises(RuntimeError, match="bad failed: ValueError: boom"):
        interleave(bad, good, pairs=5, warmup=0, progress=None)
    assert bad.finished and good.finished
