"""Runs on a worker QThread so the window never freezes: training stages, an evaluation
sweep, or a live inference loop, all through ``flowgraph.run.Runner``.

Pause and stop: training honours ``runner.pause_requested`` / ``stop_requested`` between
steps (stop leaves a checkpoint). ``Runner.evaluate`` has no such check, so during an
evaluation the worker listens to the first metric sink's tap and pauses or stops from
that callback, which runs on the engine thread between batches.
"""
from __future__ import annotations

import re
import threading
import time

import torch
from PySide6.QtCore import QThread, Signal

from flowgraph.block import Sink
from flowgraph.compile import sweep_points
from flowgraph.errors import NonFiniteError, ValidationError
from flowgraph.graph import loads_graph
from flowgraph.run import Runner

MODES = ("train + evaluate", "train", "evaluate", "live inference")
_BLOCK_IN_MESSAGE = re.compile(r"block '([A-Za-z_][\w/]*)'")


class _Stopped(Exception):
    pass


class RunWorker(QThread):
    runStarted = Signal(str)                 # run directory
    progress = Signal(int, int, str)         # value, maximum, text
    failed = Signal(str, str)                # message, block ('' when none is named)
    result = Signal(object)                  # evaluation result dict, or None
    stageProgress = Signal(str, float)       # the running stage ("eval" for the sweep), fraction done

    def __init__(self, spec_text: str, spec_path: str, hub, mode: str = "train + evaluate",
                 preset: str | None = None, overrides: dict | None = None, out=None,
                 checkpoint: str | None = None, live_batch: int = 8, max_frames: int = 0,
                 frame_interval: float = 0.02, parent=None):
        super().__init__(parent)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.spec_text, self.spec_path, self.hub, self.mode = spec_text, spec_path, hub, mode
        self.preset, self.overrides, self.out, self.checkpoint = preset, dict(overrides or {}), out, checkpoint
        self.live_batch, self.max_frames, self.frame_interval = live_batch, max_frames, frame_interval
        self.runner: Runner | None = None
        self.stopped = False
        self._stop = threading.Event()
        self._paused = False
        self._pending_vars: dict = {}
        self._vars_lock = threading.Lock()
        self._subs = []

    # ---- control (GUI thread) --------------------------------------------------------------
    def stop(self):
        self._stop.set()
        if self.runner is not None:
            self.runner.stop_requested = True

    def pause(self, on: bool):
        self._paused = bool(on)
        if self.runner is not None:
            self.runner.pause_requested = self._paused

    def set_variables(self, values: dict):
        """Queue variable changes; the live loop applies them between frames."""
        with self._vars_lock:
            self._pending_vars.update(values)

    # ---- engine thread ---------------------------------------------------------------------
    def _guard(self, *_):
        while self._paused and not self._stop.is_set():
            time.sleep(0.05)
        if self._stop.is_set():
            raise _Stopped()

    def run(self):
        try:
            spec = loads_graph(self.spec_text, self.spec_path)
            self.runner = r = Runner(spec, preset=self.preset, overrides=self.overrides, out=self.out,
                                     taps=self.hub, quiet=True)
            r.pause_requested, r.stop_requested = self._paused, self._stop.is_set()
            self.runStarted.emit(str(r.out))
            if self.checkpoint:
                r.load_weights(self.checkpoint)
            finished = True
            if self.mode in ("train + evaluate", "train") and spec.train:
                finished = self._train(r, spec)
            if finished and self.mode in ("train + evaluate", "evaluate") and self._has_metrics(r):
                self.result.emit(self._evaluate(r, spec))
            elif self.mode == "live inference":
                self._live(r)
            self.stopped = not finished
        except _Stopped:
            self.stopped = True
            self.progress.emit(0, 1, "stopped")
        except NonFiniteError as exc:
            self.failed.emit(str(exc), exc.block or "")
        except ValidationError as exc:
            for p in exc.problems:
                self.failed.emit(str(p), p.block or "")
        except Exception as exc:           # anything else: one line, next to the block it names
            m = _BLOCK_IN_MESSAGE.search(str(exc))
            self.failed.emit(f"{type(exc).__name__}: {exc}", m.group(1) if m else "")
        finally:
            for s in self._subs:
                s.close()
            self._subs.clear()
            if self.runner is not None:
                self.runner.close()

    @staticmethod
    def _has_metrics(r: Runner) -> bool:
        return bool((r.spec.evaluate or {}).get("metrics")) or any(
            isinstance(r.scheduler.block(n), Sink) for n in r.graph.order)

    def _train(self, r: Runner, spec) -> bool:
        steps = [r.stage_settings(i)["steps"] for i in range(len(spec.train))]
        names = [r.stage_settings(i)["name"] for i in range(len(spec.train))]
        total = max(1, sum(steps))

        def on_step(_name, row, _info):
            i = names.index(row["stage"]) if row.get("stage") in names else 0
            done = sum(steps[:i]) + int(row["step"])
            self.stageProgress.emit(str(row["stage"]), int(row["step"]) / max(1, steps[i]))
            self.progress.emit(done, total, f"[{row['stage']}] step {row['step']}/{steps[i]}  loss {row['loss']:.4g}")

        self._subs.append(self.hub.subscribe("train.step", on_step, min_interval=0.0))
        self.progress.emit(0, total, "training…")
        return r.train()

    def _evaluate(self, r: Runner, spec) -> dict:
        points = sweep_points(spec)
        done = [0]

        def on_point(_name, row, _info):
            done[0] += 1
            self.stageProgress.emit("eval", done[0] / max(1, len(points)))
            self.progress.emit(done[0], len(points), f"[eval] {done[0]}/{len(points)}")

        self._subs.append(self.hub.subscribe("eval.point", on_point, min_interval=0.0))
        sinks = [n for n in r.graph.order if isinstance(r.scheduler.block(n), Sink)]
        if sinks:                          # pause/stop between evaluation batches
            self._subs.append(self.hub.subscribe(f"{sinks[0]}.value", self._guard, min_interval=0.0))
        self.progress.emit(0, len(points), "[eval] …")
        return r.evaluate()

    def _live(self, r: Runner):
        """Stream frames through the graph until stopped; variables follow the GUI's
        controls between frames (GNU Radio's QT GUI Range). Frames are the source's
        held-out batches, or, for a graph without a source (pilots drawn through a
        channel, say), plain executions that draw their own data."""
        sch = r.scheduler
        sinks = [n for n in r.graph.order if isinstance(sch.block(n), Sink)]
        sch.eval()
        frame, changed = 0, set()

        def frames():
            if not sch.sources:
                yield None
                return
            src = sch.source()
            for data in src.eval_batches(self.live_batch):
                yield {src.name: {k: v.to(sch.device) for k, v in data.items()}}

        self.progress.emit(0, 0, "live inference")
        with torch.inference_mode():
            while True:
                for inject in frames():
                    self._guard()
                    with self._vars_lock:
                        pending, self._pending_vars = self._pending_vars, {}
                    if pending:
                        sch.set_variables(pending)
                        changed.update(pending)
                    now = {k: sch.variables.get(k) for k in changed}
                    self.hub.info = {"stage": "live", "frame": frame, "vars": now, "where": f"live frame {frame}"}
                    out = sch(inject=inject)
                    row = {"frame": frame, **now}
                    row.update({s: float(out[f"{s}.value"].float().mean()) for s in sinks})
                    self.hub.publish("live.frame", row)
                    frame += 1
                    if self.max_frames and frame >= self.max_frames:
                        return
                    time.sleep(self.frame_interval)     # a display loop: leave CPU to the GUI
