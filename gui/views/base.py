"""Shared pieces of the live views: the base class, tap pickers, tensor reshaping.

Views are fed only by taps (through :class:`gui.tapbridge.TapBridge`), never by reaching
into blocks. They keep the newest data always but draw only while visible, so hidden
tabs cost nothing but a dict assignment per delivery.
"""
from __future__ import annotations

import time
import weakref

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget
from shiboken6 import isValid

pg.setConfigOptions(imageAxisOrder="row-major", background="w", foreground="k", antialias=False)

#: seconds between deliveries of one tap to a view (the engine copies a tensor only this
#: often). Together with the TapBridge's coalescing this bounds what views cost a run:
#: bench/gui_overhead.py measures it with every view open.
PERIOD = {"scatter": 0.5, "map": 0.5, "images": 1.0}
#: the fraction of wall time all visible views together may spend redrawing and painting
DRAW_BUDGET = 0.05
_VIEWS: "weakref.WeakSet[LiveView]" = weakref.WeakSet()


def visible_views() -> int:
    # a view whose widget Qt already deleted may linger in the WeakSet until Python collects it
    return max(1, sum(1 for v in list(_VIEWS) if isValid(v) and v.isVisible()))


class _Timed:
    """Mixin for pyqtgraph widgets: accumulates the time spent painting them."""
    _paint_cost = 0.0

    def paintEvent(self, event):
        t0 = time.perf_counter()
        super().paintEvent(event)
        self._paint_cost += time.perf_counter() - t0

    def take_paint_cost(self) -> float:
        cost, self._paint_cost = self._paint_cost, 0.0
        return cost


class PlotWidget(_Timed, pg.PlotWidget):
    pass


class GraphicsLayoutWidget(_Timed, pg.GraphicsLayoutWidget):
    pass


class TapSelector(QComboBox):
    """Picks one tap among those the model's graph can publish that ``accept(name, kind)``."""

    def __init__(self, model, accept, default=None, parent=None, allow_none: bool = False):
        super().__init__(parent)
        self.model, self.accept, self.default = model, accept, default
        self.allow_none = allow_none      # an empty first entry: the view shows nothing until picked
        self.user_chosen = False          # a pick the user made survives edits of the graph
        self.setMinimumContentsLength(12)
        self.setSizeAdjustPolicy(QComboBox.AdjustToContents)
        self.activated.connect(lambda _i: setattr(self, "user_chosen", True))
        self.refresh()

    def refresh(self, new_graph: bool = False):
        if new_graph:
            self.user_chosen = False
        current = self.currentText()
        names = [n for n, k in self.model.tap_names().items() if self.accept(n, k)]
        self.blockSignals(True)
        self.clear()
        self.addItems(([""] if self.allow_none else []) + names)
        if current in names and self.user_chosen:
            self.setCurrentText(current)
        elif names:
            pick = self.default(self.model, names) if self.default else None
            self.setCurrentText(pick if pick in names else ("" if self.allow_none else names[0]))
        self.blockSignals(False)
        if self.currentText() != current:
            self.currentTextChanged.emit(self.currentText())


class LiveView(QWidget):
    """Base: ``wanted()`` names the taps to subscribe; ``on_tap`` stores, ``render`` draws."""
    title = "view"
    tapsChanged = Signal()

    def __init__(self, model, parent=None):
        super().__init__(parent)
        self.model = model
        self.updates = 0                  # deliveries received (tests wait on this)
        self.draws = 0                    # redraws done
        self._stale = False
        self._last_draw, self._redraw_cost = 0.0, 0.0
        _VIEWS.add(self)
        self.bar = QHBoxLayout()
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(2, 2, 2, 2)
        self.layout_.addLayout(self.bar)
        model.changed.connect(lambda what: what in ("file", "saved", "structure") and self.refresh_selectors(what == "file"))

    def finish_bar(self):
        """Right end of the tool bar: where the shown data comes from. A QLabel, not a plot
        title: re-laying out a plot on every update would cost more than drawing it."""
        self.bar.addStretch(1)
        self.info = QLabel()
        self.info.setStyleSheet("color: #555;")
        self.bar.addWidget(self.info)

    def set_info(self, text: str):
        if self.info.text() != text:
            self.info.setText(text)

    def add_selector(self, label: str, selector: TapSelector) -> TapSelector:
        self.bar.addWidget(QLabel(label))
        self.bar.addWidget(selector)
        selector.currentTextChanged.connect(lambda _t: self.tapsChanged.emit())
        return selector

    def selectors(self) -> list[TapSelector]:
        return [w for w in self.findChildren(TapSelector)]

    def refresh_selectors(self, new_graph: bool = False):
        for s in self.selectors():
            s.refresh(new_graph)

    def wanted(self) -> dict[str, float]:
        """{tap name: min seconds between deliveries}."""
        return {}

    def on_tap(self, name: str, value, info: dict):
        self.updates += 1
        self.store(name, value, info)
        if not self._stale:                     # one redraw for everything one flush delivers
            self._stale = True
            # what the last redraw cost, its painting included, sets when the next may come:
            # the visible views together spend at most DRAW_BUDGET of the time drawing,
            # however slow the machine (one view on screen refreshes more often than six)
            cost = self._redraw_cost + sum(w.take_paint_cost() for w in self.findChildren(_Timed))
            share = DRAW_BUDGET / visible_views()
            wait = max(0.0, self._last_draw + cost / share - time.monotonic())
            QTimer.singleShot(int(wait * 1000), self._redraw_if_shown)

    def _redraw_if_shown(self):
        if self.isVisible() and self._stale:
            self.draw_now()

    def draw_now(self):
        self._stale = False
        self.draws += 1
        t0 = time.perf_counter()
        self.redraw()
        self._redraw_cost = time.perf_counter() - t0
        self._last_draw = time.monotonic()

    def showEvent(self, event):
        super().showEvent(event)
        if self._stale:
            self.draw_now()

    def store(self, name, value, info):
        raise NotImplementedError

    def redraw(self):
        raise NotImplementedError

    def clear(self):
        """Forget data from an earlier run (the window calls this when a run starts)."""
        self.updates = self.draws = 0
        self._stale = False
        self.reset()

    def reset(self):
        """Subclasses drop their data here."""


# ---- defaults for tap pickers --------------------------------------------------------------
def channel_ports(model) -> tuple[str | None, str | None]:
    """(what a channel block receives, what it puts out): the natural constellation pair."""
    for name in model.spec.blocks:
        cls = model.block_class(name)
        port = getattr(cls, "channel_input", None)
        if not port:
            continue
        feed = next((f"{c.src}.{c.src_port}" for c in model.spec.connections
                     if c.dst == name and c.dst_port == port), None)
        out = next((f"{name}.{p}" for p, spec in cls.outputs.items() if spec.kind == "complex"), None)
        return feed, out
    return None, None


def port_tag(model, tap: str) -> str | None:
    block, _, port = tap.partition(".")
    p = model.block_ports(block)[1].get(port) if block in model.spec.blocks else None
    return getattr(p, "tag", None)


def _num(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def describe_info(info: dict) -> str:
    """Where a tap value comes from: "e2e step 40", "eval snr_db=5", "live frame 12 snr_db=3.0"."""
    stage = info.get("stage", "")
    if "point" in info:
        return f"{stage} " + ", ".join(f"{k}={v}" for k, v in (info["point"] or {}).items())
    if "frame" in info:
        variables = (info.get("vars") or {}).items()
        return f"{stage} frame {info['frame']} " + ", ".join(f"{k}={_num(v)}" for k, v in variables)
    if "step" in info:
        return f"{stage} step {info['step']}"
    return str(stage)


# ---- tensors to arrays ------------------------------------------------------------------------
def to_numpy(t) -> np.ndarray:
    if torch.is_tensor(t):
        t = t.detach()
        if t.dtype in (torch.bfloat16, torch.float16):
            t = t.float()
        return t.numpy()
    return np.asarray(t)


def as_map(t, reduce: str = "mean") -> np.ndarray:
    """A 2-D float map of example 0: |.| of complex; leading dims averaged (``mean``: heads,
    channels) or indexed at 0 (``first``: user 0, antenna 0 of a channel); 1-D wrapped in rows."""
    a = to_numpy(t)
    if np.iscomplexobj(a):
        a = np.abs(a)
    a = a.astype(np.float32, copy=False)
    if a.ndim >= 2:
        a = a[0]                           # example 0 of the batch
    while a.ndim > 2:
        a = a.mean(axis=0) if reduce == "mean" else a[0]
    if a.ndim == 1:                        # a long vector reads better wrapped into rows
        w = 32 if a.size > 64 and a.size % 32 == 0 else a.size
        a = a.reshape(-1, w)
    if a.ndim == 0:
        a = a.reshape(1, 1)
    return a
