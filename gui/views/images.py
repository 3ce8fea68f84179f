"""Image grid: originals on top, reconstructions below (two image taps)."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from .base import PERIOD, GraphicsLayoutWidget, LiveView, TapSelector, describe_info, port_tag, to_numpy

MAX_IMAGES = 6


def _is_image(model, name, kind):
    return kind == "real" and port_tag(model, name) == "image"


def _source_image(model, names):
    return next((n for n in names if getattr(model.block_class(n.split(".")[0]), "inputs", None) == {}), None)


def _last_image(model, names):
    return names[-1] if names else None


def image_row(batch, n: int = MAX_IMAGES) -> np.ndarray:
    """(B, 3, H, W) or (B, H, W) in [0, 1] -> (H, n*W, 3) uint8, a 2 px gap between images."""
    a = to_numpy(batch)[:n].astype(np.float32, copy=False)
    if a.ndim == 3:
        a = np.repeat(a[:, None], 3, axis=1)
    if a.ndim != 4:
        return np.zeros((8, 8, 3), np.uint8)
    a = np.clip(a[:, :3], 0, 1).transpose(0, 2, 3, 1)          # B, H, W, C
    gap = np.ones((a.shape[1], 2, 3), np.float32)
    row = np.concatenate([x for img in a for x in (img, gap)][:-1], axis=1)
    return (row * 255).astype(np.uint8)


def _frame_key(info: dict) -> tuple:
    return (info.get("stage"), info.get("step"), info.get("frame"), str(info.get("point")))


class ImageGridView(LiveView):
    title = "Images"

    def __init__(self, model, parent=None):
        super().__init__(model, parent)
        accept = lambda n, k: _is_image(model, n, k)  # noqa: E731
        self.top = self.add_selector("original", TapSelector(model, accept, _source_image))
        self.bottom = self.add_selector("reconstructed", TapSelector(model, accept, _last_image))
        self.finish_bar()
        self.glw = GraphicsLayoutWidget()
        self.vb, self.items = [], []
        for row in range(2):
            vb = self.glw.addViewBox(row=row, col=0, lockAspect=True, invertY=True, enableMouse=False)
            item = pg.ImageItem()
            vb.addItem(item)
            self.vb.append(vb)
            self.items.append(item)
        self.layout_.addWidget(self.glw, 1)
        self.reset()

    def wanted(self):
        return {n: PERIOD["images"] for n in (self.top.currentText(), self.bottom.currentText()) if n}

    def store(self, name, value, info):
        # The two taps are throttled separately; show a pair only when both come from the
        # same frame (same step / sweep point), so an original sits over its reconstruction.
        for i, sel in enumerate((self.top, self.bottom)):
            if sel.currentText() == name:
                self.pending[i] = (value, info)
        a, b = self.pending
        if a is not None and b is not None and _frame_key(a[1]) == _frame_key(b[1]):
            self.data = [(image_row(a[0]), a[1]), (image_row(b[0]), b[1])]

    def redraw(self):
        for i in range(2):
            if self.data[i] is not None:
                img = self.data[i][0]
                self.items[i].setImage(img, levels=(0, 255))
                if img.shape != self._shapes[i]:         # re-range only when the grid changes
                    self._shapes[i] = img.shape
                    self.vb[i].autoRange(padding=0.02)
        info = next((d[1] for d in reversed(self.data) if d is not None), {})
        self.set_info(describe_info(info))

    def reset(self):
        self.data, self.pending, self._shapes = [None, None], [None, None], [None, None]
        for it in self.items:
            it.clear()
        self.set_info("")
