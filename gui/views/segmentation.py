"""Segmentation masks: an int (B, H, W) label tap, or (B, C, H, W) logits (arg-max over C),
colourised with a palette, first examples side by side, with the class legend.

The default palette and names are MFNet's 9 classes (seed 002, CSC-SA-Net; MFNet-pytorch
``util.get_palette``; see shared/specs/seed002.md), the dataset of the RGB-T system.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QLabel

from .base import PERIOD, GraphicsLayoutWidget, LiveView, TapSelector, describe_info, port_tag, to_numpy

MFNET_CLASSES = ("unlabelled", "car", "person", "bike", "curve", "car_stop", "guardrail", "color_cone", "bump")
MFNET_PALETTE = np.array([[0, 0, 0], [64, 0, 128], [64, 64, 0], [0, 128, 192], [0, 0, 192], [128, 128, 0],
                          [64, 64, 128], [192, 128, 128], [192, 64, 0]], dtype=np.uint8)
MAX_MASKS = 4


def colourise(t, palette=MFNET_PALETTE, n: int = MAX_MASKS) -> np.ndarray:
    """(B, H, W) class ids or (B, C, H, W) logits -> (H, n*W + gaps, 3) uint8; ids beyond the
    palette repeat it (a graph with more classes still shows distinct neighbours)."""
    a = to_numpy(t)
    if a.ndim == 4 and a.dtype.kind == "f":    # logits: the predicted class per pixel
        a = a.argmax(axis=1)
    if a.ndim != 3 or a.dtype.kind not in "iub":
        raise ValueError(f"a mask view needs (B, H, W) labels or (B, C, H, W) logits, got {a.dtype} {a.shape}")
    ids = np.asarray(a[:n]).astype(np.int64) % len(palette)
    rgb = palette[ids]                                          # B, H, W, 3
    gap = np.full((rgb.shape[1], 2, 3), 255, np.uint8)
    return np.concatenate([x for img in rgb for x in (img, gap)][:-1], axis=1)


def _declared_dims(model, name) -> int | None:
    block, _, port = name.partition(".")
    p = model.block_ports(block)[1].get(port) if block in model.spec.blocks else None
    return None if p is None or p.shape is None or "..." in p.shape else len(p.shape)


def _is_mask(model, name, kind):
    """int ports that can be (B, H, W), real logits that can be (B, C, H, W), internal taps."""
    dims = _declared_dims(model, name)
    return kind == "tap" or (kind == "int" and dims in (None, 3)) or \
        (kind == "real" and port_tag(model, name) == "logits" and dims in (None, 4))


def _default_mask(model, names):
    for want in ("logits", "label"):
        hit = next((n for n in names if port_tag(model, n) == want), None)
        if hit:
            return hit
    return next((n for n in names if "pred" in n or "seg" in n), None)


class SegmentationView(LiveView):
    title = "Segmentation"

    def __init__(self, model, parent=None):
        super().__init__(model, parent)
        self.sel = self.add_selector("tap", TapSelector(model, lambda n, k: _is_mask(model, n, k), _default_mask,
                                                        allow_none=True))
        self.finish_bar()
        self.glw = GraphicsLayoutWidget()
        self.vb = self.glw.addViewBox(lockAspect=True, invertY=True, enableMouse=False)
        self.image = pg.ImageItem()
        self.vb.addItem(self.image)
        self.layout_.addWidget(self.glw, 1)
        legend = "  ".join(f"<span style='background:rgb({r},{g},{b});color:{'white' if r + g + b < 300 else 'black'}'>"
                           f"&nbsp;{i} {name}&nbsp;</span>"
                           for i, (name, (r, g, b)) in enumerate(zip(MFNET_CLASSES, MFNET_PALETTE.tolist())))
        self.legend = QLabel(legend)
        self.legend.setWordWrap(True)
        self.layout_.addWidget(self.legend)
        self.reset()

    def wanted(self):
        return {self.sel.currentText(): PERIOD["images"]} if self.sel.currentText() else {}

    def store(self, name, value, info):
        if name != self.sel.currentText():
            return
        try:
            self.data = (colourise(value), info)
            self.error = ""
        except ValueError as exc:
            self.data, self.error = None, str(exc)

    def redraw(self):
        if self.data is None:
            self.set_info(self.error)
            return
        img, info = self.data
        self.image.setImage(img, levels=(0, 255))
        if img.shape != self._shape:
            self._shape = img.shape
            self.vb.autoRange(padding=0.02)
        self.set_info(f"first {MAX_MASKS} examples, {describe_info(info)}")

    def reset(self):
        self.data, self.error, self._shape = None, "", None
        self.image.clear()
        self.set_info("")
