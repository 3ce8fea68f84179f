"""Runs: training stages, evaluation sweeps, and the run directory they leave behind.

A run directory holds::

    graph.yaml            the graph as run (preset and --set applied, variables resolved)
    run.json              command, seed, device, preset, overrides, package versions
    log.txt               everything the run printed
    train.csv             per-step loss, learning rate and metric means (a tap logger)
    metrics.json/.csv     evaluation: per sweep point, mean / std / 95% CI of every metric
    <metric>_vs_<var>.png one plot per metric against the first sweep variable
    checkpoints/last.pt   state_dicts, optimizer, RNG states, run metadata and a content
                          hash (flowgraph/checkpoint.py: written atomically, verified on load)
    run.lock              held while the run lives (flowgraph/lock.py)

Resuming (``--resume``) loads ``checkpoints/last.pt`` and continues the same stage at
the same step with the same RNG states, so the parameters at the end equal those of
an uninterrupted run with the same seed.

The Runner is assembled from one module per concern: ``training.py`` (stages),
``evaluation.py`` (sweeps, CBR), ``report.py`` (tables, plots), ``checkpoint.py``
(atomic files) and ``rundir.py`` (log, versions).
"""
from __future__ import annotations

import json
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
from .lock import RunLock
from .resources import check_memory
from .report import format_table, plot_metrics  # noqa: F401 (re-exported)
from .rundir import Log, package_versions
from .scheduler import Scheduler
from .taps import TapHub
from .training import TrainingMixin
from .yamlio import dump_yaml

__all__ = ["Runner", "Log", "load_checkpoint", "atomic_torch_save", "format_table", "plot_metrics"]


class Runner(TrainingMixin, EvaluationMixin):
    """Builds a graph and runs its training stages and/or evaluation.

    ``Runner(spec, preset="smoke", overrides={"snr_db": 5}, out="runs/x", seed=0)``
    then ``.train()``, ``.evaluate()``, or ``.run()`` for both.
    """

    def __init__(self, spec: GraphSpec, preset: str | None = None, overrides: dict | None = None,
                 out: str | Path | None = None, device: str = "cpu", seed: int = 0,
                 taps: TapHub | None = None, quiet: bool = False, check_finite: bool = True,
                 command: list | None = None, limits: Limits | None = None):
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise SemflowError(f"--device {device}: CUDA is not available on this machine")
        self.spec = spec
        self.limits = limits or Limits()
        self.graph: CompiledGraph = compile_graph(spec, preset=preset, overrides=overrides, limits=self.limits)
        if not self.graph.ok:
            raise ValidationError(self.graph.problems)
        self.preset, self.overrides, self.seed, self.device = preset, dict(overrides or {}), int(seed), device
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.out = Path(out) if out else Path("runs") / f"{spec.name}-{preset or 'default'}-{stamp}"
        self.out.mkdir(parents=True, exist_ok=True)
        self.lock = RunLock(self.out).acquire()      # one run at a time writes here (flowgraph/lock.py)
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
        resolved = self.spec.to_dict()
        resolved["variables"] = {k: (repr(v) if isinstance(v, E.Distribution) else v)
                                 for k, v in self.graph.root.values.items()}
        resolved.pop("presets", None)
        header = (f"# resolved by semflow from {self.spec.path}"
                  f" (preset: {self.preset or 'none'}, --set: {self.overrides or 'none'})\n")
        (self.out / "graph.yaml").write_text(header + dump_yaml(resolved))
        info = {"graph": self.spec.path, "name": self.spec.name, "preset": self.preset,
                "overrides": self.overrides, "seed": self.seed, "device": self.device,
                "command": command or sys.argv, "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "seeds": {"torch": self.seed, "variables": self.seed + 1, "sources": self.seed + 2},
                "versions": package_versions()}
        (self.out / "run.json").write_text(json.dumps(info, indent=2, default=str))

    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoints" / "last.pt"

    def _save_checkpoint(self, stage_idx: int, step: int, opt=None, sched=None, done=False):
        save_checkpoint({
            "stage": stage_idx, "step": step, "done": done,
            "blocks": self.scheduler.state_dict(),
            "optimizer": opt.state_dict() if opt is not None else None,
            "lr_scheduler": sched.state_dict() if sched is not None else None,
            "rng": {"torch": torch.get_rng_state(), "variables": self.var_generator.get_state(),
                    "external": rng.get_states()},
            "seed": self.seed,
        }, self.checkpoint_path, self.checkpoint_meta)

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

    def run(self, resume: bool = False, stop_after: int | None = None) -> dict | None:
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
