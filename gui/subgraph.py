"""A sub-graph open in its own tab: its own model, canvas and undo history; saving it
refreshes the graph blocks that use it in the main graph."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from .canvas import GraphScene, GraphView
from .model import EditorModel


class SubgraphTab(QWidget):
    saved = Signal(str)

    def __init__(self, path, parent=None):
        super().__init__(parent)
        self.model = EditorModel(self)
        self.model.open(path)
        self.scene = GraphScene(self.model, self)
        self.view = GraphView(self.scene)
        ports = self.model.spec.ports or {}
        info = QLabel(f"<b>{Path(path).name}</b> &nbsp; inputs: {', '.join(ports.get('inputs') or {}) or '—'}"
                      f" &nbsp; outputs: {', '.join(ports.get('outputs') or {}) or '—'}"
                      f" &nbsp; variables (params of the graph block): {', '.join(self.model.spec.variables) or '—'}")
        self.save_btn = QPushButton("Save sub-graph")
        self.save_btn.clicked.connect(self.save)
        self.model.dirtyChanged.connect(lambda d: self.save_btn.setText("Save sub-graph" + (" *" if d else "")))
        bar = QHBoxLayout()
        bar.addWidget(info, 1)
        bar.addWidget(self.save_btn)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(bar)
        lay.addWidget(self.view, 1)

    @property
    def path(self) -> Path:
        return self.model.path

    def save(self):
        self.model.save()
        self.saved.emit(str(self.model.path))
