"""Run panel: mode and preset, run / pause / stop, progress bar and log.

A run copies the graph as it is now (YAML text), builds a fresh TapHub, hooks the
views' taps to it through the TapBridge and starts a :class:`RunWorker`. The log panel
tails the run directory's ``log.txt``; errors go to the log and onto the block that
raised them.
"""
from __future__ import annotations

import html
import time
from pathlib import Path

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QPlainTextEdit, QProgressBar, QPushButton,
                               QVBoxLayout, QWidget)

from flowgraph.taps import TapHub

from .worker import MODES, RunWorker

NO_PRESET = "(no preset)"
TRAINING_MODES = ("train + evaluate", "train")


class RunPanel(QWidget):
    runStarted = Signal()
    runFinished = Signal()
    runningChanged = Signal(bool)
    stageProgress = Signal(str, float)          # relayed from the worker: highlight on the canvas

    def __init__(self, model, bridge, out_root: str | None = None, parent=None):
        super().__init__(parent)
        self.model, self.bridge, self.out_root = model, bridge, out_root
        self.worker: RunWorker | None = None
        self.hub: TapHub | None = None
        self.last_run: Path | None = None
        self.last_run_graph: tuple | None = None      # (graph name, preset) the last run trained
        self.current_run: Path | None = None
        self.run_graph_name = ""                    # the graph the running worker was started from
        self.errors: list[tuple[str, str]] = []
        self.result = None
        self._log_pos = 0
        self._finished_for = None
        self.mode = QComboBox()
        self.mode.addItems(MODES)
        self.preset = QComboBox()
        self.run_btn, self.pause_btn, self.stop_btn = QPushButton("▶ Run"), QPushButton("❚❚ Pause"), QPushButton("■ Stop")
        self.pause_btn.setCheckable(True)
        self.progress = QProgressBar()
        self.status = QLabel("idle")
        self.log = QPlainTextEdit(readOnly=True)
        self.log.setMaximumBlockCount(5000)
        top = QHBoxLayout()
        for w in (QLabel("mode"), self.mode, QLabel("preset"), self.preset, self.run_btn, self.pause_btn,
                  self.stop_btn):
            top.addWidget(w)
        top.addStretch(1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(top)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        lay.addWidget(self.log, 1)
        self.run_btn.clicked.connect(lambda: self.start())
        self.pause_btn.toggled.connect(self.pause)
        self.stop_btn.clicked.connect(self.stop)
        self._tail = QTimer(self, interval=300)
        self._tail.timeout.connect(self._read_log)
        model.changed.connect(lambda what: what in ("file", "saved") and self.refresh_presets(what == "file"))
        self.refresh_presets()
        self._set_running(False)

    def refresh_presets(self, new_graph: bool = True):
        names = list(self.model.spec.presets or {})
        current = self.preset.currentText()
        self.preset.clear()
        self.preset.addItems([NO_PRESET] + names)
        if not new_graph and current in names:
            self.preset.setCurrentText(current)
        elif "smoke" in names:            # the "does it run?" preset: seconds, not hours
            self.preset.setCurrentText("smoke")

    @property
    def running(self) -> bool:
        return self.worker is not None and self.worker.isRunning()

    def _set_running(self, on: bool):
        self.run_btn.setEnabled(not on)
        self.pause_btn.setEnabled(on)
        self.stop_btn.setEnabled(on)
        self.mode.setEnabled(not on)
        self.preset.setEnabled(not on)
        if not on:
            self.pause_btn.setChecked(False)
        self.runningChanged.emit(on)

    def start(self, mode: str | None = None, preset: str | None = None, out=None,
              **worker_kwargs) -> RunWorker | None:
        if self.running:
            return None
        if mode:
            self.mode.setCurrentText(mode)
        if preset:
            self.preset.setCurrentText(preset)
        mode, preset = self.mode.currentText(), self.preset.currentText()
        m = self.model
        if m.problems:
            self.append(f"cannot run: the graph has {len(m.problems)} problem(s); see the Problems panel", error=True)
            return None
        checkpoint = None
        if mode in ("evaluate", "live inference") and self.last_run is not None \
                and self.last_run_graph == (m.spec.name, preset):     # weights of this graph only
            ckpt = self.last_run / "checkpoints" / "last.pt"
            checkpoint = str(ckpt) if ckpt.is_file() else None
        if out is None and self.out_root:
            out = Path(self.out_root) / f"{m.spec.name}-gui-{time.strftime('%Y%m%d-%H%M%S')}-{id(self) % 1000}"
        self.hub = TapHub()
        self.bridge.attach(self.hub)
        self.errors, self.result = [], None
        m.clear_runtime_errors()
        self.run_graph_name = m.title.rstrip(" *")
        self.worker = RunWorker(m.spec.dumps(), str(m.path or m.spec.path), self.hub, mode=mode,
                                preset=None if preset == NO_PRESET else preset, out=out, checkpoint=checkpoint,
                                **worker_kwargs)
        if mode in TRAINING_MODES:
            self.last_run_graph = (m.spec.name, preset)
        self.worker.runStarted.connect(self._on_started)
        self.worker.progress.connect(self._on_progress)
        self.worker.stageProgress.connect(self.stageProgress)
        self.worker.failed.connect(self._on_failed)
        self.worker.result.connect(self._on_result)
        self.worker.finished.connect(self._on_finished)
        self.log.clear()
        self.append(f"{mode} of {m.spec.name}" + (f" (preset {preset})" if preset != NO_PRESET else "")
                    + (f", weights from {checkpoint}" if checkpoint else ""))
        self.status.setText("starting…")
        self._set_running(True)
        self.runStarted.emit()
        self.worker.start()
        return self.worker

    def stop(self):
        if self.worker is not None:
            self.worker.stop()
            self.status.setText("stopping…")

    def stop_and_wait(self, timeout_ms: int = 30_000) -> None:
        """Stop the run and deliver its last signals, so nothing of it reaches the next graph."""
        if not self.running:
            return
        self.stop()
        self.worker.wait(timeout_ms)
        self._on_finished()

    def pause(self, on: bool):
        self.pause_btn.setText("▶ Resume" if on else "❚❚ Pause")
        self.progress.setStyleSheet("QProgressBar::chunk { background: #e0a000; }" if on else "")
        if self.worker is not None:
            self.worker.pause(on)
            self.status.setText("paused — press Resume (F6) to go on" if on else "running")

    def set_variable(self, name: str, value: float):
        if self.running:
            self.worker.set_variables({name: value})

    def append(self, text: str, error: bool = False):
        if error:
            self.log.appendHtml(f"<span style='color:#c62828'>{html.escape(text)}</span>")
        else:
            self.log.appendPlainText(text)

    # ---- worker signals (GUI thread) -------------------------------------------------------
    def _on_started(self, out: str):
        if self.worker.mode in TRAINING_MODES:         # evaluation and live runs reuse its weights
            self.last_run = Path(out)
        self.current_run = Path(out)
        self._log_pos = 0
        self._tail.start()
        self.status.setText(f"running — run directory {out}")

    def _on_progress(self, value: int, maximum: int, text: str):
        self.progress.setRange(0, maximum)
        self.progress.setValue(value)
        self.progress.setFormat(text)
        self.status.setText(text)

    def _on_failed(self, message: str, block: str):
        self.errors.append((message, block))
        self.append(("error in block '" + block + "': " if block else "error: ") + message, error=True)
        self.model.set_runtime_error(block or None, message)
        self.status.setText("failed: " + message.splitlines()[0][:200])

    def _on_result(self, result):
        self.result = result

    def _on_finished(self):
        if self.worker is None or self._finished_for is self.worker:
            return                          # already handled (stop_and_wait, then the signal)
        self._finished_for = self.worker
        self._read_log()
        self._tail.stop()
        self.bridge.flush()
        self.bridge.detach()
        self._set_running(False)
        self.stageProgress.emit("", 0.0)
        w = self.worker
        if not self.errors:
            self.status.setText("stopped" if w.stopped else f"finished — {self.current_run}")
            if not w.stopped and self.progress.maximum() == 0:
                self.progress.setRange(0, 1)
                self.progress.setValue(1)
        self.runFinished.emit()

    def _read_log(self):
        if self.current_run is None:
            return
        path = self.current_run / "log.txt"
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                f.seek(self._log_pos)
                text = f.read()
                self._log_pos = f.tell()
        except OSError:
            return
        if text:
            self.log.appendPlainText(text.rstrip("\n"))
