"""Scalar curves: loss and a metric against the training step (and live frames), and a
metric against the swept variable as an evaluation sweep proceeds."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QComboBox, QLabel

from flowgraph.block import Sink

from .base import GraphicsLayoutWidget, LiveView, PlotWidget


def metric_names(model) -> list[str]:
    """Metric sinks of the graph (evaluate.metrics first)."""
    listed = list((model.spec.evaluate or {}).get("metrics") or [])
    sinks = [n for n in model.spec.blocks if (c := model.block_class(n)) is not None and issubclass(c, Sink)]
    return listed + [s for s in sinks if s not in listed]


def set_label(plot, side: str, text: str):
    """Axis label, set only when it changes (re-laying out a plot is costly)."""
    axis = plot.getAxis(side)
    if axis.labelText != text:
        plot.setLabel(side, text)


class _MetricPicker(QComboBox):
    def __init__(self, model):
        super().__init__()
        self.model = model
        self.refresh()

    def refresh(self):
        current = self.currentText()
        names = metric_names(self.model)
        self.blockSignals(True)
        self.clear()
        self.addItems(names)
        if current in names:
            self.setCurrentText(current)
        elif "psnr" in names:
            self.setCurrentText("psnr")
        self.blockSignals(False)


def add_metric_picker(view: LiveView, model) -> _MetricPicker:
    """A metric chooser in the view's tool bar that redraws on change and follows edits."""
    box = _MetricPicker(model)
    view.bar.addWidget(QLabel("metric"))
    view.bar.addWidget(box)
    view.finish_bar()
    box.currentTextChanged.connect(lambda _t: view.redraw())
    model.changed.connect(lambda what: what in ("file", "saved", "structure") and box.refresh())
    return box


class CurvesView(LiveView):
    """train.step rows: loss and a metric against the (cumulative) step; live.frame rows too."""
    title = "Loss / PSNR"

    def __init__(self, model, parent=None):
        super().__init__(model, parent)
        self.metric_box = add_metric_picker(self, model)
        self.glw = GraphicsLayoutWidget()
        self.loss_plot = self.glw.addPlot(row=0, col=0)
        self.loss_plot.setLabel("left", "loss")
        self.loss_plot.setLabel("bottom", "step")
        self.metric_plot = self.glw.addPlot(row=1, col=0)
        self.metric_plot.setLabel("bottom", "step (training) / frame (live)")
        self.metric_plot.addLegend(offset=(-10, 10))
        self.loss_curve = self.loss_plot.plot(pen=pg.mkPen("#d62728", width=2), symbol="o", symbolSize=4)
        self.train_curve = self.metric_plot.plot(pen=pg.mkPen("#1f6fd1", width=2), symbol="o", symbolSize=4,
                                                 name="training")
        self.live_curve = self.metric_plot.plot(pen=pg.mkPen("#2e9e44", width=1.5), name="live")
        self.layout_.addWidget(self.glw, 1)
        self.reset()

    def wanted(self):
        return {"train.step": 0.0, "live.frame": 0.0}

    def reset(self):
        self.rows, self.live, self._offset, self._stage, self._last = [], [], 0, None, 0
        for c in (self.loss_curve, self.train_curve, self.live_curve):
            c.setData([], [])

    def store(self, name, value, info):
        if name == "live.frame":
            self.live.append(value)
            self.live = self.live[-2000:]
            return
        if value.get("stage") != self._stage:          # stages continue the x axis
            self._offset, self._stage = self._last, value.get("stage")
        x = self._offset + int(value["step"])
        self._last = x
        self.rows.append((x, value))

    def redraw(self):
        m = self.metric_box.currentText()
        set_label(self.metric_plot, "left", m)
        self.loss_curve.setData([x for x, _ in self.rows], [r["loss"] for _, r in self.rows])
        pts = [(x, r[m]) for x, r in self.rows if m in r]
        self.train_curve.setData([p[0] for p in pts], [p[1] for p in pts])
        live = [(r["frame"], r[m]) for r in self.live if m in r]
        self.live_curve.setData([p[0] for p in live], [p[1] for p in live])
        last = self.live[-1] if self.live else (self.rows[-1][1] if self.rows else None)
        self.set_info("" if last is None else "latest: " + ", ".join(
            f"{k} {v:.4g}" for k, v in last.items() if isinstance(v, float)))


COLORS = ["#1f6fd1", "#d62728", "#2e9e44", "#f08a24", "#8e5cc9", "#17a2b8", "#8c564b", "#e377c2"]


class SweepView(LiveView):
    """eval.point rows: a metric (mean ± 95% CI) against the first numeric swept variable,
    one series per value of the other swept variables (e.g. per scenario); curves of
    earlier runs (``metrics.json``, see gui/runs.py) can be overlaid, dashed."""
    title = "PSNR vs SNR"

    def __init__(self, model, parent=None):
        super().__init__(model, parent)
        self.metric_box = add_metric_picker(self, model)
        self.plot = PlotWidget()
        self.legend = self.plot.addLegend(offset=(-10, 10))
        self.layout_.addWidget(self.plot, 1)
        self.items: list = []
        self.overlays: list[str] = []          # run directories drawn next to the live sweep
        self.reset()

    def wanted(self):
        return {"eval.point": 0.0}

    def reset(self):
        self.rows = []
        self._clear_items()

    def _clear_items(self):
        for it in self.items:
            self.plot.removeItem(it)
        self.items = []
        self.legend.clear()

    def sweep_vars(self) -> list[str]:
        return list((self.model.spec.evaluate or {}).get("sweep") or {})

    def store(self, name, value, info):
        self.rows.append(value)

    def show_rows(self, rows: list[dict]):
        """Draw a finished evaluation (an opened run's metrics.json) as if it had streamed."""
        self.rows = list(rows)
        self.draw_now()

    def set_overlays(self, run_dirs: list[str]):
        self.overlays = list(run_dirs)
        self.draw_now()

    def series(self) -> dict:
        from ..runs import sweep_series
        return sweep_series(self.rows, self.sweep_vars(), self.metric_box.currentText())

    def _add(self, label, pts, color, dashed=False):
        xs, ys, lo, hi = (np.array([p[i] for p in pts]) for i in range(4))
        pen = pg.mkPen(color, width=2, style=pg.QtCore.Qt.DashLine if dashed else pg.QtCore.Qt.SolidLine)
        curve = self.plot.plot(xs, ys, pen=pen, symbol="t" if dashed else "o", symbolSize=7,
                               symbolBrush=color, name=label or "sweep")
        err = pg.ErrorBarItem(x=xs, y=ys, top=hi - ys, bottom=ys - lo, pen=pg.mkPen(color), beam=0.4)
        self.plot.addItem(err)
        self.items += [curve, err]

    def redraw(self):
        from ..runs import run_series
        m = self.metric_box.currentText()
        self._clear_items()
        series = self.series()
        for i, (label, pts) in enumerate(series.items()):
            self._add(label, pts, COLORS[i % len(COLORS)])
        k = len(series)
        for run in self.overlays:
            for label, pts in run_series(run, m).items():
                self._add(label, pts, COLORS[k % len(COLORS)], dashed=True)
                k += 1
        xvar = next(iter(self.sweep_vars()), None)
        set_label(self.plot, "bottom", xvar or "sweep point")
        set_label(self.plot, "left", m)
        n = sum(len(p) for p in series.values())
        self.set_info(f"{n} sweep point(s) in {len(series)} series" + (f", {len(self.overlays)} run(s) overlaid"
                                                                        if self.overlays else "") + "; bars: 95% CI")
