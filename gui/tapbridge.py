"""Carry tap values from the engine thread to the GUI thread, throttled and coalesced.

Tap callbacks run on the engine's thread and must be cheap: they only park the value
(the newest tensor per tap; every row for row taps such as ``train.step``) and, when
nothing is parked yet, emit a queued Qt signal. The GUI thread then delivers what is
parked at most every ``interval_ms``, so a fast run never floods the event queue and
views redraw a bounded number of times per second whatever the engine's speed.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

from PySide6.QtCore import QObject, QTimer, Signal

ROW_TAPS = {"train.step", "eval.point", "live.frame"}    # every value matters: keep them all


class TapBridge(QObject):
    _wake = Signal()

    def __init__(self, interval_ms: int = 250, parent=None):
        super().__init__(parent)
        self.interval_ms = interval_ms
        self._handlers: dict[str, list[tuple[Callable, float]]] = {}
        self._hub = None
        self._subs: dict[str, object] = {}
        self._lock = threading.Lock()
        self._latest: dict[str, tuple] = {}
        self._rows: dict[str, list] = {}
        self._scheduled = False
        self._last_flush = 0.0
        self.delivered = 0
        self._wake.connect(self._on_wake)          # queued: emitted from the engine thread

    # ---- who listens -----------------------------------------------------------------------
    def watch(self, name: str, handler: Callable, min_interval: float = 0.1) -> None:
        self._handlers.setdefault(name, []).append((handler, min_interval))
        self._resubscribe()

    def unwatch(self, handler: Callable) -> None:
        for name in list(self._handlers):
            self._handlers[name] = [(h, i) for h, i in self._handlers[name] if h != handler]
            if not self._handlers[name]:
                del self._handlers[name]
        self._resubscribe()

    def attach(self, hub) -> None:
        """Subscribe every watched tap on a run's TapHub (before the run starts)."""
        self.detach()
        self._hub = hub
        self._resubscribe()

    def detach(self) -> None:
        for sub in self._subs.values():
            sub.close()
        self._subs.clear()
        self._hub = None

    def _resubscribe(self):
        if self._hub is None:
            return
        for name in [n for n in self._subs if n not in self._handlers]:
            self._subs.pop(name).close()
        for name, handlers in self._handlers.items():
            if name not in self._subs:
                interval = 0.0 if name in ROW_TAPS else min(i for _, i in handlers)
                self._subs[name] = self._hub.subscribe(name, self._on_tap, min_interval=interval)

    # ---- engine thread ---------------------------------------------------------------------
    def _on_tap(self, name, value, info):
        with self._lock:
            if name in ROW_TAPS:
                self._rows.setdefault(name, []).append((value, info))
            else:
                self._latest[name] = (value, info)
            wake = not self._scheduled
            self._scheduled = True
        if wake:
            self._wake.emit()

    # ---- GUI thread ------------------------------------------------------------------------
    def _on_wake(self):
        wait = self.interval_ms / 1000 - (time.monotonic() - self._last_flush)
        QTimer.singleShot(max(0, int(wait * 1000)), self.flush)

    def flush(self):
        with self._lock:
            latest, rows = self._latest, self._rows
            self._latest, self._rows = {}, {}
            self._scheduled = False
        self._last_flush = time.monotonic()
        for name, items in rows.items():
            for value, info in items:
                self._deliver(name, value, info)
        for name, (value, info) in latest.items():
            self._deliver(name, value, info)

    def _deliver(self, name, value, info):
        for handler, _ in list(self._handlers.get(name, ())):
            handler(name, value, info)
            self.delivered += 1
