"""Constellation scatter of complex ports, two side by side (channel input | output)."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QHBoxLayout

from .base import PERIOD, LiveView, PlotWidget, TapSelector, channel_ports, describe_info, to_numpy

MAX_POINTS = 1024       # enough to see the cloud; drawing more only costs time


class ConstellationView(LiveView):
    title = "Constellation"

    def __init__(self, model, parent=None):
        super().__init__(model, parent)
        complex_only = lambda n, k: k == "complex"  # noqa: E731
        self.left = self.add_selector("left", TapSelector(model, complex_only, lambda m, ns: channel_ports(m)[0]))
        self.right = self.add_selector("right", TapSelector(model, complex_only, lambda m, ns: channel_ports(m)[1]))
        self.finish_bar()
        row = QHBoxLayout()
        self.plots, self.scatters = [], []
        self.data, self.dirty = [None, None], [False, False]
        for _ in range(2):
            w = PlotWidget()
            w.setAspectLocked(True)
            w.setLabel("bottom", "I")
            w.setLabel("left", "Q")
            s = pg.ScatterPlotItem(size=4, pen=None, brush=pg.mkBrush(31, 111, 209, 140))
            w.addItem(s)
            w.setRange(xRange=(-1.5, 1.5), yRange=(-1.5, 1.5))
            w.addLine(x=0, pen=pg.mkPen("#bbb"))
            w.addLine(y=0, pen=pg.mkPen("#bbb"))
            self.plots.append(w)
            self.scatters.append(s)
            row.addWidget(w)
        self.layout_.addLayout(row, 1)
        self.ranges = [0.0, 0.0]
        for sel in (self.left, self.right):
            sel.currentTextChanged.connect(lambda _t: self._titles())
        self._titles()

    def _titles(self):
        for plot, sel in zip(self.plots, (self.left, self.right)):
            plot.setTitle(sel.currentText(), size="9pt")

    def wanted(self):
        return {n: PERIOD["scatter"] for n in (self.left.currentText(), self.right.currentText()) if n}

    def store(self, name, value, info):
        z = to_numpy(value).reshape(-1)[:MAX_POINTS]
        for i, sel in enumerate((self.left, self.right)):
            if sel.currentText() == name:
                self.data[i] = (z, info)
                self.dirty[i] = True

    def redraw(self):
        for i, (plot, sc) in enumerate(zip(self.plots, self.scatters)):
            if self.data[i] is None or not self.dirty[i]:
                continue
            self.dirty[i] = False
            z, info = self.data[i]
            sc.setData(np.real(z), np.imag(z))
            r = float(np.max(np.abs(z))) * 1.1 if z.size else 1.0
            if not 0.7 < r / (self.ranges[i] or 1e-30) < 1.05:    # re-range only on real change
                self.ranges[i] = r * 1.1
                plot.setRange(xRange=(-r * 1.1, r * 1.1), yRange=(-r * 1.1, r * 1.1), padding=0)
            self.set_info(describe_info(info))

    def reset(self):
        self.data, self.dirty = [None, None], [False, False]
        self.ranges = [0.0, 0.0]
        for s in self.scatters:
            s.clear()
        self.set_info("")
