"""Runs as first-class objects: the run history (run directories on disk), "open run"
(``RUN/graph.yaml`` into the editor, ``RUN/metrics.json`` into the PSNR-vs-SNR view, its
checkpoint for evaluate / live inference), and curves of several runs overlaid.

The GUI reads runs only from their files. Overlaid runs are read through
``flowgraph.compare.curves``, the machinery of ``semflow compare``, so the GUI and the
compare figures draw the same numbers (seeds pooled, the same intervals: Wilson for
proportions, bootstrap for set-level values).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout,
                               QWidget)

from flowgraph.compare import curves
from flowgraph.errors import SemflowError
from flowgraph.report import bounds


@dataclass
class RunInfo:
    path: Path
    graph: str
    preset: str
    started: str
    metrics: bool
    checkpoint: bool


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def list_runs(root) -> list[RunInfo]:
    """Run directories under ``root`` (those with a ``graph.yaml``), newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for d in sorted((p for p in root.iterdir() if (p / "graph.yaml").is_file()),
                    key=lambda p: p.stat().st_mtime, reverse=True):
        info = _json(d / "run.json")
        started = info.get("started") or time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(d.stat().st_mtime))
        out.append(RunInfo(d, str(info.get("name") or _json(d / "metrics.json").get("graph") or d.name),
                           str(info.get("preset") or ""), started, (d / "metrics.json").is_file(),
                           (d / "checkpoints" / "last.pt").is_file()))
    return out


def sweep_series(rows: list[dict], sweep: list[str], metric: str) -> dict[str, list[tuple]]:
    """Rows of one evaluation (live ``eval.point`` taps) -> {series label: [(x, mean, lo, hi), ...]}:
    x is the first numeric swept variable, one series per value of the others (e.g. per
    scenario); lo/hi the row's 95% interval as ``semflow compare`` reads it."""
    x = next((v for v in sweep if any(isinstance(r.get(v), (int, float)) and not isinstance(r.get(v), bool)
                                      for r in rows)), None)
    others = [v for v in sweep if v != x]
    series: dict[str, list[tuple]] = {}
    for r in rows:
        if metric not in r or x is None or not isinstance(r.get(x), (int, float)):
            continue
        label = ", ".join(f"{v}={r.get(v)}" for v in others)
        series.setdefault(label, []).append((float(r[x]), float(r[metric]), *bounds(r, metric)))
    return {k: sorted(v) for k, v in series.items()}


def run_series(run_dir, metric: str) -> dict[str, list[tuple]]:
    """One run's (or study's) curves as ``semflow compare`` draws them; {} when it has none."""
    try:
        return curves([Path(run_dir).as_posix()], metric)
    except SemflowError:
        return {}


class RunHistory(QWidget):
    """The run directories of this session's output folder; open one, or overlay several."""
    openRequested = Signal(str)
    overlayRequested = Signal(list)

    def __init__(self, roots, parent=None):
        super().__init__(parent)
        self.roots = [Path(r) for r in roots]
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["run", "graph", "preset", "started"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QTableWidget.SelectRows)
        refresh, open_btn, overlay = QPushButton("↻"), QPushButton("Open run"), QPushButton("Overlay checked")
        refresh.setToolTip("re-read the run folders")
        open_btn.setToolTip("load RUN/graph.yaml and RUN/metrics.json; evaluate / live inference use its weights")
        overlay.setToolTip("draw the checked runs' curves in the PSNR vs SNR view")
        bar = QHBoxLayout()
        for b in (refresh, open_btn, overlay):
            bar.addWidget(b)
        bar.addStretch(1)
        self.where = QLabel()
        self.where.setStyleSheet("color: #555;")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(bar)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.where)
        refresh.clicked.connect(self.refresh)
        open_btn.clicked.connect(self._open)
        overlay.clicked.connect(lambda: self.overlayRequested.emit(self.checked()))
        self.table.cellDoubleClicked.connect(lambda r, _c: self.openRequested.emit(self.runs[r].path.as_posix()))
        self.runs: list[RunInfo] = []
        self.refresh()

    def refresh(self):
        self.runs = [r for root in self.roots for r in list_runs(root)]
        self.table.setRowCount(len(self.runs))
        for i, r in enumerate(self.runs):
            first = QTableWidgetItem(r.path.name)
            first.setFlags(Qt.ItemIsEnabled | Qt.ItemIsSelectable | Qt.ItemIsUserCheckable)
            first.setCheckState(Qt.Unchecked)
            first.setToolTip(str(r.path) + ("" if r.metrics else "\n(no metrics.json yet)"))
            self.table.setItem(i, 0, first)
            for j, text in enumerate((r.graph, r.preset, r.started), start=1):
                it = QTableWidgetItem(text)
                it.setFlags(Qt.ItemIsEnabled | Qt.ItemIsSelectable)
                self.table.setItem(i, j, it)
        self.where.setText("folders: " + ", ".join(str(r) for r in self.roots))

    def checked(self) -> list[str]:
        return [self.runs[i].path.as_posix() for i in range(self.table.rowCount())
                if self.table.item(i, 0).checkState() == Qt.Checked]

    def _open(self):
        row = self.table.currentRow()
        if 0 <= row < len(self.runs):
            self.openRequested.emit(self.runs[row].path.as_posix())
