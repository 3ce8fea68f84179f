"""A/B timing that can decide a few-percent target on a noisy shared machine.

Every benchmark in ``bench/`` compares A (semflow) with B (a hand-written baseline) through
this module:

* A and B each run in a :class:`ChunkedWorker` (or an outside thread behind a
  :class:`Gate`): a thread that does its work in short chunks (e.g. 20 training steps, one sweep point) and, at every chunk boundary, blocks
  until the controller asks for the next chunk. So the engine's own loop runs unmodified
  (a tap subscriber calls ``boundary()``), and A and B alternate chunk by chunk.
* :func:`interleave` runs pairs of chunks, in a random order per pair (seeded), after a
  warm-up, and measures both wall time and process CPU time of each chunk. Only one worker
  runs at a time, so the process CPU time of a chunk is that worker's (plus whatever the
  process does meanwhile, e.g. a GUI thread drawing); single-threaded runs are then nearly
  insensitive to other tenants of the machine.
* :func:`ratio_ci` gives the median of the per-pair ratios A/B with a bootstrap 95%
  confidence interval over the pairs; :func:`verdict` says ``meets`` (interval at or below
  the target), ``misses`` (interval above it) or ``undecided: run longer``.
* Sampling can go on until the interval is narrower than a width, or a time budget is
  spent (``until_width``, ``budget_s``).
"""
from __future__ import annotations

import random
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


class StopChunks(Exception):
    """Raised inside a worker's ``boundary()`` when the controller is done with it."""


class Gate:
    """The hand-over between a worker thread and the controller, one chunk at a time.

    The worker calls :meth:`boundary` at the end of every chunk: control goes back to the
    controller, and the worker blocks until the next :meth:`run_chunk` (or gets
    :class:`StopChunks` after :meth:`stop`). ``pump`` (optional) is called while the
    controller waits, e.g. ``QApplication.processEvents`` so that a GUI keeps drawing;
    ``on_stop`` is called before the worker is released for the last time, for work that
    ends on a flag (a Runner's ``stop_requested``) rather than on the exception.
    """

    def __init__(self, name: str = "worker", on_stop: Callable[[], None] | None = None,
                 pump: Callable[[], None] | None = None):
        self.name, self.on_stop, self.pump = name, on_stop, pump
        self._go = threading.Semaphore(0)
        self._done = threading.Semaphore(0)
        self._stopping = False
        self.finished = False
        self.error: BaseException | None = None
        self.chunks = 0

    def boundary(self) -> None:
        """Called by the worker at the end of each chunk."""
        self.chunks += 1
        self._done.release()
        self._go.acquire()
        if self._stopping:
            raise StopChunks

    def _wait_done(self):
        if self.pump is None:
            self._done.acquire()
            return
        while not self._done.acquire(timeout=0.002):
            self.pump()

    def run_chunk(self) -> tuple[float, float]:
        """Let the worker run one chunk; returns (wall seconds, process CPU seconds)."""
        if self.finished:
            raise RuntimeError(f"{self.name}: the work ended before the benchmark did"
                               + (f" ({type(self.error).__name__}: {self.error})" if self.error else ""))
        t0, c0 = time.perf_counter(), time.process_time()
        self._go.release()
        self._wait_done()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if self.error is not None:
            raise RuntimeError(f"{self.name} failed: {type(self.error).__name__}: {self.error}") from self.error
        if self.finished:
            raise RuntimeError(f"{self.name}: the work ended before the benchmark did")
        return wall, cpu

    def wait_first_boundary(self) -> None:
        """For work started elsewhere: wait until it reaches its first boundary (untimed)."""
        self._wait_done()

    def stop(self, timeout: float = 60.0) -> None:
        self._stopping = True
        if self.on_stop is not None:
            self.on_stop()
        if not self.finished:
            self._go.release()


class ChunkedWorker(Gate):
    """A :class:`Gate` with its own thread running ``target(boundary)``; the target starts
    with the first :meth:`run_chunk`."""

    def __init__(self, target: Callable[[Callable[[], None]], None], name: str = "worker",
                 on_stop: Callable[[], None] | None = None, pump: Callable[[], None] | None = None):
        super().__init__(name, on_stop, pump)
        self.target = target
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.thread.start()

    def _main(self):
        self._go.acquire()
        try:
            if not self._stopping:
                self.target(self.boundary)
        except StopChunks:
            pass
        except BaseException as exc:  # reported by run_chunk in the controller's thread
            self.error = exc
        finally:
            self.finished = True
            self._done.release()

    def stop(self, timeout: float = 60.0) -> None:
        super().stop(timeout)
        self.thread.join(timeout)


@dataclass
class ABTimings:
    """Per-pair timings of A and B (seconds), in the order the pairs ran."""
    wall_a: list = field(default_factory=list)
    wall_b: list = field(default_factory=list)
    cpu_a: list = field(default_factory=list)
    cpu_b: list = field(default_factory=list)
    order: list = field(default_factory=list)       # "AB" or "BA" per pair
    seconds: float = 0.0

    @property
    def pairs(self) -> int:
        return len(self.wall_a)

    def ratios(self, kind: str = "cpu") -> np.ndarray:
        a, b = (self.cpu_a, self.cpu_b) if kind == "cpu" else (self.wall_a, self.wall_b)
        return np.asarray(a) / np.asarray(b)


def ratio_ci(ratios, level: float = 0.95, n_boot: int = 4000, seed: int = 0) -> tuple[float, float, float]:
    """Median of ``ratios`` and a percentile-bootstrap interval of that median over the pairs."""
    r = np.asarray(ratios, dtype=float)
    if r.size == 0:
        return float("nan"), float("nan"), float("nan")
    if r.size == 1:
        return float(r[0]), float("-inf"), float("inf")
    rng = np.random.default_rng(seed)
    boots = np.median(r[rng.integers(0, r.size, size=(n_boot, r.size))], axis=1)
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return float(np.median(r)), float(lo), float(hi)


def verdict(lo: float, hi: float, target: float) -> str:
    """For an upper-bound target (ratio <= target): meets, misses, or undecided."""
    if hi <= target:
        return "meets"
    if lo > target:
        return "misses"
    return "undecided: run longer"


def interleave(a: Gate, b: Gate, pairs: int = 30, warmup: int = 3,
               until_width: float | None = None, budget_s: float | None = None,
               max_pairs: int = 400, seed: int = 0, kind: str = "cpu",
               progress: Callable[[str], None] | None = print) -> ABTimings:
    """Alternate chunks of ``a`` and ``b`` (random order per pair) and time them.

    Runs ``warmup`` untimed pairs, then at least ``pairs`` timed pairs; with
    ``until_width`` it goes on until the bootstrap interval of the ``kind`` ratio is
    narrower than that, with ``budget_s`` until that many seconds are spent (whichever
    comes first, never beyond ``max_pairs``). Both workers are stopped at the end.
    """
    rng = random.Random(seed)
    out = ABTimings()
    t_start = time.perf_counter()
    try:
        for _ in range(warmup):
            a.run_chunk()
            b.run_chunk()
        i = 0
        while True:
            order = "AB" if rng.random() < 0.5 else "BA"
            res = {}
            for w in order:
                res[w] = (a if w == "A" else b).run_chunk()
            out.wall_a.append(res["A"][0]), out.cpu_a.append(res["A"][1])
            out.wall_b.append(res["B"][0]), out.cpu_b.append(res["B"][1])
            out.order.append(order)
            i += 1
            spent = time.perf_counter() - t_start
            if progress and (i % 10 == 0):
                m, lo, hi = ratio_ci(out.ratios(kind))
                progress(f"  {i} pairs, {spent:.0f} s: {kind} ratio {m:.4f} [{lo:.4f}, {hi:.4f}]")
            if i >= max_pairs:
                break
            if i < pairs:
                continue
            if budget_s is not None and spent >= budget_s:
                break
            if until_width is not None:
                _, lo, hi = ratio_ci(out.ratios(kind))
                if hi - lo > until_width and (budget_s is None or spent < budget_s):
                    continue
            break
    finally:
        out.seconds = time.perf_counter() - t_start
        a.stop()
        b.stop()
    return out


def report(t: ABTimings, label: str, target: float | None, unit: str = "chunk") -> str:
    """Median ratio with its 95% CI, for wall and CPU time, and the verdict on each."""
    lines = [f"{label}: {t.pairs} timed pairs of {unit}s ({t.seconds:.0f} s)"]
    for kind in ("wall", "cpu"):
        a = t.wall_a if kind == "wall" else t.cpu_a
        b = t.wall_b if kind == "wall" else t.cpu_b
        m, lo, hi = ratio_ci(t.ratios(kind))
        line = (f"  {kind:4s} ratio A/B {m:.4f}  95% CI [{lo:.4f}, {hi:.4f}]  "
                f"(median {unit}: A {statistics.median(a) * 1e3:.1f} ms, B {statistics.median(b) * 1e3:.1f} ms)")
        if target is not None:
            line += f"  target <= {target}: {verdict(lo, hi, target)}"
        lines.append(line)
    return "\n".join(lines)


def loop_worker(step: Callable[[], None], chunk: int, name: str) -> ChunkedWorker:
    """A worker that calls ``step()`` forever, with a boundary every ``chunk`` calls."""
    def target(boundary):
        while True:
            for _ in range(chunk):
                step()
            boundary()
    return ChunkedWorker(target, name)
