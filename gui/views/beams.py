"""Beam patterns of an analog precoder: |a(θ)ᴴ F| over angle, one curve per RF chain.

Fed by a complex tap of shape (..., N_t, N_RF) (example 0, leading indices 0). The array
response is a half-wavelength ULA, a(θ)_n = exp(jπ n sin θ)/√N_t, or, for a UPA of
N_x × N_y elements (N_t = N_x N_y, x fastest), its azimuth cut at zero elevation,
a = 1_{N_y} ⊗ a_x(θ)/√N_y (the phase changes along x only). Seed 002 (CSC-SA-Net) has
hybrid analog-digital precoders whose analog part this shows.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel, QSpinBox

from .base import PERIOD, LiveView, PlotWidget, TapSelector, describe_info, to_numpy

ANGLES = np.linspace(-90.0, 90.0, 361)
COLORS = ["#1f6fd1", "#d62728", "#2e9e44", "#f08a24", "#8e5cc9", "#17a2b8"]


def steering(n_t: int, angles_deg=ANGLES, array: str = "ula", nx: int | None = None) -> np.ndarray:
    """(len(angles), N_t) array responses, unit norm."""
    s = np.sin(np.deg2rad(np.asarray(angles_deg, dtype=np.float64)))[:, None]
    if array == "upa":
        nx = nx or int(round(np.sqrt(n_t)))
        if nx <= 0 or n_t % nx:
            raise ValueError(f"a UPA of {n_t} elements cannot have {nx} columns")
        ax = np.exp(1j * np.pi * np.arange(nx)[None, :] * s) / np.sqrt(nx)
        return np.tile(ax, (1, n_t // nx)) / np.sqrt(n_t // nx)
    return np.exp(1j * np.pi * np.arange(n_t)[None, :] * s) / np.sqrt(n_t)


def beam_pattern(f, array: str = "ula", nx: int | None = None, angles_deg=ANGLES) -> np.ndarray:
    """|a(θ)ᴴ F| for F of shape (..., N_t, N_RF) (leading indices 0): (len(angles), N_RF)."""
    a = to_numpy(f)
    if a.ndim < 2 or not np.iscomplexobj(a):
        raise ValueError(f"a beam pattern needs a complex (..., N_t, N_RF) precoder, got shape {a.shape}")
    while a.ndim > 2:
        a = a[0]
    return np.abs(steering(a.shape[0], angles_deg, array, nx).conj() @ a)


def _default_precoder(model, names):
    for n in names:
        block, _, port = n.partition(".")
        if any(k in port.lower() for k in ("rf", "analog", "f_a")):
            return n
    return None


class BeamPatternView(LiveView):
    title = "Beam pattern"

    def __init__(self, model, parent=None):
        super().__init__(model, parent)
        self.sel = self.add_selector("precoder", TapSelector(model, lambda n, k: k in ("complex", "tap"),
                                                             _default_precoder, allow_none=True))
        self.array = QComboBox()
        self.array.addItems(["ula", "upa"])
        self.nx = QSpinBox()
        self.nx.setRange(0, 1024)
        self.nx.setSpecialValueText("√N_t")
        self.db = QCheckBox("dB")
        for label, w in (("array", self.array), ("N_x", self.nx)):
            self.bar.addWidget(QLabel(label))
            self.bar.addWidget(w)
        self.bar.addWidget(self.db)
        self.finish_bar()
        for w in (self.array.currentTextChanged, self.nx.valueChanged, self.db.toggled):
            w.connect(lambda *_: self._recompute())
        self.plot = PlotWidget()
        self.plot.setLabel("bottom", "angle θ (degrees)")
        self.plot.setLabel("left", "|a(θ)ᴴ F|")
        self.plot.setXRange(-90, 90, padding=0)
        self.legend = self.plot.addLegend(offset=(-10, 10))
        self.layout_.addWidget(self.plot, 1)
        self.curves = []
        self.reset()

    def wanted(self):
        return {self.sel.currentText(): PERIOD["map"]} if self.sel.currentText() else {}

    def store(self, name, value, info):
        if name == self.sel.currentText():
            self.raw = (to_numpy(value), info)
            self._compute()

    def _compute(self):
        if self.raw is None:
            return
        try:
            self.pattern = beam_pattern(self.raw[0], self.array.currentText(), self.nx.value() or None)
            self.error = ""
        except ValueError as exc:
            self.pattern, self.error = None, str(exc)

    def _recompute(self):
        self._compute()
        self.draw_now()

    def redraw(self):
        if self.pattern is None:
            self.set_info(self.error)
            return
        p = self.pattern
        y = 20 * np.log10(np.maximum(p, 1e-6)) if self.db.isChecked() else p
        if len(self.curves) != p.shape[1]:
            for c in self.curves:
                self.plot.removeItem(c)
            self.legend.clear()
            self.curves = [self.plot.plot(pen=pg.mkPen(COLORS[i % len(COLORS)], width=2), name=f"RF chain {i}")
                           for i in range(p.shape[1])]
        for i, c in enumerate(self.curves):
            c.setData(ANGLES, y[:, i])
        self.plot.setLabel("left", "|a(θ)ᴴ F| (dB)" if self.db.isChecked() else "|a(θ)ᴴ F|")
        self.set_info(f"N_t={self.raw[0].shape[-2]}, N_RF={p.shape[1]}, {self.array.currentText()}, "
                      f"{describe_info(self.raw[1])}")

    def reset(self):
        self.raw, self.pattern, self.error = None, None, ""
        for c in self.curves:
            c.setData([], [])
        self.set_info("")
