"""Runs: training stages, evaluation sweeps, and the run directory they leave behind.

A run directory holds::

    graph.yaml            the graph as run (preset and --set applied, variables resolved)
    subgraphs/            copies of the sub-graph files it uses (graph.yaml points at them)
    run.json              command, seed, device, preset, overrides, package versions, git
                          commit, sha256 of every graph file; one entry per resume
    log.txt               everything the run printed
    train.csv, train.png  per-step loss, learning rate and metric means; their curves
    metrics.json/.csv     evaluation: per sweep point, mean / std / 95% CI of every metric
    <metric>_vs_<var>.png one plot per metric (every sweep variable shown)
    images.png            evaluate.image_grid: examples and reconstructions at chosen points
    checkpoints/last.pt   state_dicts, optimizer, RNG states, run metadata and a content
                          hash (flowgraph/checkpoint.py: written atomically, verified on load)
    checkpoints/best.pt   the best validated weights (a stage's validate:, keep: best)
    run.lock              held while the run lives (flowgraph/lock.py)

An existing directory is only reused with ``resume=True`` (``--resume``): that loads
``checkpoints/last.pt`` and continues the same stage at the same step with the same RNG
states, so the parameters at the end equal those of an uninterrupted run with the same
seed. The first checkpoint is written seconds into training, later ones by time.

The Runner is assembled from one module per concern: ``training.py`` (stages),
``evaluation.py`` (sweeps, CBR), ``report.py`` (tables, plots), ``checkpoint.py``
(atomic files) and ``rundir.py`` (log, versions).
"""
from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

from . import expr as E
from . import rng
from .block import Sink
from .checkpoint import atomic_torch_save, check_for_eval, load_checkpoint, run_metadata, save_checkpoint
from .compile import CompiledGraph, compile_graph
from .errors import SemflowError, ValidationError
from .evaluation import EvaluationMixin
from .graph import GraphSpec
from .limits import Limits
from .lock import LOCK_NAME, RunLock
from .resources import check_memory
from .report import format_table, plot_metrics, plot_training  # noqa: F401 (re-exported)
from .rundir import Log, git_info, graph_files, package_versions, prepare_run_dir, record_run, write_self_contained
from .scheduler import Scheduler
from .taps import TapHub
from .training import TrainingMixin

__all__ = ["Runner", "Log", "load_checkpoint", "atomic_torch_save", "format_table", "plot_metrics"]


class Runner(TrainingMixin, EvaluationMixin):
    """Builds a graph and runs its training stages and/or evaluation.

    ``Runner(spec, preset="smoke", overrides={"snr_db": 5}, out="runs/x", seed=0)``
    then ``.train()``, ``.evaluate()``, or ``.run()`` for both.
    """

    def __init__(self, spec: GraphSpec, preset: str | None = None, overrides: dict | None = None,
                 out: str | Path | None = None, device: str = "cpu", seed: int = 0,
                 taps: TapHub | None = None, quiet: bool = False, check_finite: bool = True,
                 command: list | None = None, resume: bool = False, limits: Limits | None = None):
        check_device(device)
        self.spec = spec
        self.limits = limits or Limits()
        self.graph: CompiledGraph = compile_graph(spec, preset=preset, overrides=overrides, limits=self.limits)
        if not self.graph.ok:
            raise ValidationError(self.graph.problems)
        self.preset, self.overrides, self.seed, self.device = preset, dict(overrides or {}), int(seed), device
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.resume = resume
        # one run at a time writes into a directory (flowgraph/lock.py); a live run there is
        # named before anything else is said about the directory
        held = RunLock(out).acquire() if out and (Path(out) / LOCK_NAME).is_file() else None
        try:
            self.out = prepare_run_dir(out, Path("runs") / f"{spec.name}-{preset or 'default'}-{stamp}", resume)
        except SemflowError:
            if held is not None:
                held.release()
            raise
        self.out.mkdir(parents=True, exist_ok=True)
        self.lock = held or RunLock(self.out).acquire()
        self.log = Log(self.out / "log.txt", quiet=quiet)
        if self.lock.stale_note():
            self.log(self.lock.stale_note())
        self.taps = taps or TapHub()
        self.stop_requested = False        # set from another thread (GUI stop button)
        self.pause_requested = False
        torch.manual_seed(self.seed)
        random.seed(self.seed)
        np.random.seed(self.seed % 2**32)
        check_memory(self.graph, self.limits, bool(spec.train), device)   # before allocating anything
        self.scheduler = Scheduler(self.graph, device=device, taps=self.taps, check_finite=check_finite)
        self.checkpoint_meta = run_metadata(spec, self.graph, preset, overrides)
        # libraries' own RNGs (registered by block packages); some reseed torch's too,
        # so the global torch seed is set again after them
        rng.seed_all(self.seed + 3)
        torch.manual_seed(self.seed)
        self.scheduler.seed_sources(self.seed + 2)
        self.var_generator = torch.Generator().manual_seed(self.seed + 1)
        self._write_run_info(command)

    # ---- run directory ---------------------------------------------------------------------
    def _write_run_info(self, command):
        resumed = self.resume and (self.out / "graph.yaml").is_file()
        if not resumed:   # a resumed run keeps the graph.yaml it started with
            resolved = self.spec.to_dict()
            resolved["variables"] = {k: (repr(v) if isinstance(v, E.Distribution) else v)
                                     for k, v in self.graph.root.values.items()}
            resolved.pop("presets", None)
            header = (f"# resolved by semflow from {self.spec.path}"
                      f" (preset: {self.preset or 'none'}, --set: {self.overrides or 'none'})\n")
            write_self_contained(resolved, self.spec, self.out, header)
        info = {"graph": self.spec.path, "name": self.spec.name, "preset": self.preset,
                "overrides": self.overrides, "seed": self.seed, "device": self.device,
                "command": command or sys.argv, "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "seeds": {"torch": self.seed, "variables": self.seed + 1, "sources": self.seed + 2},
                "git": git_info(), "graph_files": graph_files(self.spec), "versions": package_versions()}
        record_run(self.out / "run.json", info, resume=self.resume)

    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoints" / "last.pt"

    def _save_checkpoint(self, stage_idx: int, step: int, opt=None, sched=None, done=False,
                         extra: dict | None = None, path: Path | None = None):
        """``extra``: the training features' own state (EMA, discriminator optimizer, best
        validation); ``path``: another file than last.pt (best.pt)."""
        save_checkpoint({
            "stage": stage_idx, "step": step, "done": done,
            "blocks": self.scheduler.state_dict(),
            "optimizer": opt.state_dict() if opt is not None else None,
            "lr_scheduler": sched.state_dict() if sched is not None else None,
            "rng": {"torch": torch.get_rng_state(), "variables": self.var_generator.get_state(),
                    "external": rng.get_states()},
            "seed": self.seed,
            **(extra or {}),
        }, path or self.checkpoint_path, self.checkpoint_meta)

    def load_weights(self, path: str | Path, allow_other_graph: bool = False) -> dict:
        """Load a checkpoint's weights for evaluation, after checking it fits this graph
        (flowgraph/checkpoint.py: integrity, graph, architecture)."""
        ckpt = load_checkpoint(path)
        for note in check_for_eval(ckpt, self, allow_other_graph):
            self.log(f"note: {path}: {note}")
        state = ckpt["blocks"]
        missing, unexpected = self.scheduler.load_state_dict(state, strict=False)
        if unexpected:
            raise SemflowError(f"{path}: checkpoint has entries this graph lacks: {', '.join(unexpected[:5])}")
        if missing:
            self.log(f"note: {path}: blocks without saved state keep their initial weights: "
                     f"{', '.join(sorted({m.split('.')[0] for m in missing}))}")
        return ckpt

    def train(self, resume: bool | None = None, stop_after: int | None = None) -> bool:
        """Run every training stage (see TrainingMixin.train), then draw train.png."""
        try:
            return super().train(resume=self.resume if resume is None else resume, stop_after=stop_after)
        finally:
            try:
                sinks = [n for n in self.graph.order if isinstance(self.scheduler.block(n), Sink)]
                plot_training(self.out / "train.csv", self.out / "train.png", sinks)
            except Exception as exc:  # a plot must never hide the run's own outcome
                self.log(f"note: training plot failed ({type(exc).__name__}: {exc})")

    def run(self, resume: bool | None = None, stop_after: int | None = None) -> dict | None:
        finished = self.train(resume=resume, stop_after=stop_after) if self.spec.train else True
        if not finished:
            return None
        result = self.evaluate() if (self.spec.evaluate or {}).get("metrics") or self._has_sinks() else None
        self.log(f"run directory: {self.out}")
        return result

    def _has_sinks(self) -> bool:
        return any(isinstance(self.scheduler.block(n), Sink) for n in self.graph.order)

    def close(self):
        self.log.close()
        self.lock.release()


def check_device(device: str) -> None:
    """Refuse a device this machine cannot run on, in one line."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise SemflowError(f"--device {device}: unknown device (use cpu, cuda or cuda:N)") from None
    if dev.type == "cpu":
        return
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SemflowError(f"--device {device}: CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise SemflowError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        return
    if dev.type == "mps" and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return
    raise SemflowError(f"--device {device}: not supported here (use cpu, cuda or cuda:N)")
