"""Taps: observe any port (or a block's internal tensor) without touching the block.

    hub = TapHub()
    sub = hub.subscribe("ch.y", lambda name, value, info: ..., min_interval=0.1)
    ...
    sub.close()

Subscribers receive detached CPU copies, throttled per subscription (``min_interval``
seconds between deliveries, or every ``every``-th publication). Publishing costs one
set lookup when nobody listens to that name. Names: ``block.port`` for ports,
``block.tap`` for internal taps a block publishes, and engine taps such as
``train.loss``, ``train.step`` (a dict of scalars per step), ``train.validate`` (a dict
per validation during training) and ``eval.point``.
Callbacks run on the engine's thread: a GUI marshals them to its own thread.
"""
from __future__ import annotations

import csv
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch


def detached_copy(value):
    if torch.is_tensor(value):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: detached_copy(v) for k, v in value.items()}
    return value


@dataclass
class Subscription:
    hub: "TapHub"
    name: str
    callback: Callable[[str, Any, dict], None]
    min_interval: float = 0.0
    every: int = 1
    _last: float = field(default=-1e18)
    _count: int = 0

    def due(self, now: float) -> bool:
        self._count += 1
        if self.every > 1 and (self._count - 1) % self.every:
            return False
        return now - self._last >= self.min_interval

    def close(self) -> None:
        self.hub.unsubscribe(self)


class TapHub:
    """Registry of tap subscriptions; the scheduler and trainer publish into it."""

    def __init__(self):
        self._subs: dict[str, list[Subscription]] = {}
        self._lock = threading.Lock()
        self.names: frozenset = frozenset()    # names with at least one subscriber
        self.blocks: frozenset = frozenset()   # block names with at least one subscriber
        self.info: dict = {}                   # context passed to callbacks (stage, step, ...)

    def subscribe(self, name: str, callback, min_interval: float = 0.1, every: int = 1) -> Subscription:
        sub = Subscription(self, name, callback, float(min_interval), max(1, int(every)))
        with self._lock:
            self._subs.setdefault(name, []).append(sub)
            self._refresh()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            lst = self._subs.get(sub.name, [])
            if sub in lst:
                lst.remove(sub)
            if not lst:
                self._subs.pop(sub.name, None)
            self._refresh()

    def _refresh(self):
        self.names = frozenset(self._subs)
        self.blocks = frozenset(n.split(".", 1)[0] for n in self._subs)

    def wants(self, name: str) -> bool:
        return name in self.names

    def publish(self, name: str, value, **info) -> None:
        if name not in self.names:
            return
        now = time.monotonic()
        with self._lock:
            due = [s for s in self._subs.get(name, []) if s.due(now)]
            for s in due:
                s._last = now
        if not due:
            return
        copy = detached_copy(value)
        ctx = dict(self.info, **info)
        for s in due:
            s.callback(name, copy, ctx)


class CsvTapLogger:
    """Writes scalar summaries of taps to a CSV file (mean of tensors), one row per delivery.

    ``CsvTapLogger(hub, "train.csv", ["train.step"])`` logs the trainer's per-step dict
    (step, stage, loss, lr, sink means); tensor taps are reduced to their mean (|x| for
    complex). ``fields`` fixes the header up front (else the first row's keys do), so
    columns that only later rows carry are kept.
    """

    def __init__(self, hub: TapHub, path: str | Path, names: list[str], min_interval: float = 0.0,
                 every: int = 1, append: bool = False, fields: list[str] | None = None):
        self.path = Path(path)
        self._writer = None
        self._fields: list[str] = []
        if append and self.path.is_file() and self.path.stat().st_size:
            # a resumed run continues the same file under the same header
            with open(self.path, newline="") as f:
                self._fields = next(csv.reader(f))
            self._file = open(self.path, "a", newline="")
            self._writer = csv.DictWriter(self._file, self._fields, extrasaction="ignore")
        else:
            self._file = open(self.path, "w", newline="")
            if fields:          # the header up front: later rows may carry columns the first lacks
                self._fields = list(fields)
                self._writer = csv.DictWriter(self._file, self._fields, extrasaction="ignore")
                self._writer.writeheader()
        self._subs = [hub.subscribe(n, self._on_value, min_interval, every) for n in names]

    @staticmethod
    def _scalar(v):
        if torch.is_tensor(v):
            v = v.abs() if v.is_complex() else v
            return float(v.float().mean())
        return v

    def _on_value(self, name, value, info):
        row = {k: self._scalar(v) for k, v in value.items()} if isinstance(value, dict) \
            else {"tap": name, "value": self._scalar(value), **{k: v for k, v in info.items()
                                                                if isinstance(v, (int, float, str))}}
        if self._writer is None:
            self._fields = list(row)
            self._writer = csv.DictWriter(self._file, self._fields, extrasaction="ignore")
            self._writer.writeheader()
        self._writer.writerow(row)
        self._file.flush()

    def close(self):
        for s in self._subs:
            s.close()
        self._file.close()
