"""2-D maps of one tap: an attention weight / mask image, and a heat map of |H|."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from .base import PERIOD, GraphicsLayoutWidget, LiveView, TapSelector, as_map, describe_info, port_tag


class MapView(LiveView):
    """ImageItem of example 0 of a tap, reduced to 2-D (see :func:`as_map`), with a colour bar."""
    colormap = "viridis"
    reduce = "mean"
    note = "example 0, leading dims averaged"
    x_label, y_label = "", ""

    def __init__(self, model, accept, default, parent=None):
        super().__init__(model, parent)
        self.sel = self.add_selector("tap", TapSelector(model, accept, default))
        self.finish_bar()
        self.glw = GraphicsLayoutWidget()
        self.plot = self.glw.addPlot()
        self.plot.invertY(True)                 # row 0 on top, like an image
        self.plot.setLabel("bottom", self.x_label)
        self.plot.setLabel("left", self.y_label)
        self.image = pg.ImageItem()
        self.plot.addItem(self.image)
        self.cbar = pg.ColorBarItem(colorMap=pg.colormap.get(self.colormap), interactive=False, width=12)
        self.cbar.setImageItem(self.image, insert_in=self.plot)
        self.plot.disableAutoRange()            # ranges change with the map's shape only:
        self.layout_.addWidget(self.glw, 1)     # re-ranging every frame redraws the axes
        self.reset()

    def wanted(self):
        return {self.sel.currentText(): PERIOD["map"]} if self.sel.currentText() else {}

    def store(self, name, value, info):
        if name == self.sel.currentText():
            self.data = (as_map(value, self.reduce), info)

    def redraw(self):
        if self.data is None:
            return
        a, info = self.data
        self.image.setImage(a, autoLevels=False)
        if a.shape != self._shape:
            self._shape = a.shape
            self.plot.setRange(xRange=(0, a.shape[1]), yRange=(0, a.shape[0]), padding=0.02)
        lo, hi = float(np.min(a)), float(np.max(a))
        hi = hi if hi > lo else lo + 1e-9
        old = self._levels                      # sticky colour scale: widen at once, narrow
        if old is None or lo < old[0] or hi > old[1] or (hi - lo) < 0.5 * (old[1] - old[0]):  # only when
            self._levels = (lo, hi)             # the data use less than half of it
            self.cbar.setLevels(self._levels)
        else:
            self.image.setLevels(old)
        self.set_info(f"{a.shape[0]}×{a.shape[1]} ({self.note}), {describe_info(info)}")

    def reset(self):
        self.data, self._shape, self._levels = None, None, None
        self.image.clear()
        self.set_info("")


def _first_internal_tap(model, names):
    """A mask first (of a block the last train stage trains: the system, not a proxy),
    then attention weights, then any internal tap."""
    taps = [n for n in names if model.tap_names().get(n) == "tap"]
    trained = set((model.spec.train[-1].get("trainable") or []) if model.spec.train else [])
    for want in ("mask", "attn", "attention"):
        hits = [n for n in taps if want in n.split(".", 1)[1]]
        best = [n for n in hits if n.split(".", 1)[0] in trained]
        if best or hits:
            return (best or hits)[0]
    return taps[0] if taps else None


class MaskView(MapView):
    """Attention weights or a mask: any internal tap a block publishes, or a mask-tagged port."""
    title = "Attention / mask"

    def __init__(self, model, parent=None):
        def accept(n, k):              # internal taps first; any real port of a block works too
            return k == "tap" or (k == "real" and n.split(".", 1)[0] in model.spec.blocks)
        super().__init__(model, accept, _first_internal_tap, parent)


def _csi_first(model, names):
    return next((n for n in names if port_tag(model, n) == "csi"), None)


class HeatmapView(MapView):
    """|H| over (subcarriers × OFDM symbols) or (antennas × antennas): any complex port."""
    title = "|H| heat map"
    colormap = "inferno"
    x_label, y_label = "last dim (Tx antenna / subcarrier)", "second-last dim (Rx antenna / OFDM symbol)"
    reduce = "first"                       # one link: user / Rx antenna 0, Tx antenna 0, ...
    note = "|.| of example 0, leading indices 0"

    def __init__(self, model, parent=None):
        super().__init__(model, lambda n, k: k == "complex", _csi_first, parent)
