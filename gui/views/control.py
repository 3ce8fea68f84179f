"""Runtime control (GNU Radio's QT GUI Range): a slider and spin box bound to a graph
variable. While a live inference run streams, every change reaches the scheduler
between frames (``Scheduler.set_variables``) and the views respond."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QGridLayout, QLabel, QSlider, QVBoxLayout,
                               QWidget)

STEPS = 200


class ControlView(QWidget):
    title = "Runtime control"
    variableChanged = Signal(str, float)

    def __init__(self, model, parent=None):
        super().__init__(parent)
        self.model = model
        self.var = QComboBox()
        self.lo, self.hi, self.value = QDoubleSpinBox(), QDoubleSpinBox(), QDoubleSpinBox()
        for w in (self.lo, self.hi, self.value):
            w.setRange(-1e6, 1e6)
            w.setDecimals(2)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, STEPS)
        grid = QGridLayout()
        grid.addWidget(QLabel("variable"), 0, 0)
        grid.addWidget(self.var, 0, 1, 1, 3)
        grid.addWidget(QLabel("min"), 1, 0)
        grid.addWidget(self.lo, 1, 1)
        grid.addWidget(QLabel("max"), 1, 2)
        grid.addWidget(self.hi, 1, 3)
        grid.addWidget(self.slider, 2, 0, 1, 3)
        grid.addWidget(self.value, 2, 3)
        note = QLabel("Changes apply between frames of a <b>live inference</b> run.")
        note.setWordWrap(True)
        self.readout = QLabel()                 # the metrics of the latest live frame
        self.readout.setStyleSheet("font-size: 14pt;")
        lay = QVBoxLayout(self)
        lay.addLayout(grid)
        lay.addWidget(note)
        lay.addWidget(self.readout)
        lay.addStretch(1)
        self._quiet = False
        self.var.currentTextChanged.connect(self._on_var)
        self.slider.valueChanged.connect(self._on_slider)
        self.value.valueChanged.connect(self._on_value)
        model.changed.connect(lambda what: what in ("file", "saved", "variables") and self.refresh())
        self.refresh()

    def numeric_variables(self) -> dict:
        return {k: v for k, v in self.model.spec.variables.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)}

    def refresh(self):
        current = self.var.currentText()
        names = list(self.numeric_variables())
        self.var.blockSignals(True)
        self.var.clear()
        self.var.addItems(names)
        pick = current if current in names else ("snr_db" if "snr_db" in names else (names[0] if names else ""))
        self.var.setCurrentText(pick)
        self.var.blockSignals(False)
        self._on_var(pick)

    def _on_var(self, name: str):
        if not name:
            return
        v = float(self.numeric_variables().get(name, 0.0))
        sweep = ((self.model.spec.evaluate or {}).get("sweep") or {}).get(name)
        nums = [float(x) for x in sweep or [] if isinstance(x, (int, float))]
        lo, hi = (min(nums), max(nums)) if len(nums) > 1 else (v - 10, v + 10)
        self._quiet = True
        self.lo.setValue(min(lo, v))
        self.hi.setValue(max(hi, v))
        self.value.setValue(v)
        self._sync_slider(v)
        self._quiet = False

    def _sync_slider(self, v: float):
        span = self.hi.value() - self.lo.value() or 1.0
        self.slider.blockSignals(True)
        self.slider.setValue(round((v - self.lo.value()) / span * STEPS))
        self.slider.blockSignals(False)

    def _on_slider(self, i: int):
        self.value.setValue(self.lo.value() + (self.hi.value() - self.lo.value()) * i / STEPS)

    def _on_value(self, v: float):
        self._sync_slider(v)
        if not self._quiet and self.var.currentText():
            self.variableChanged.emit(self.var.currentText(), float(v))

    def on_frame(self, _name, row: dict, _info):
        """A ``live.frame`` row: show the metrics so the effect of the control is visible."""
        parts = [f"frame {row.get('frame')}"] + [f"{k} <b>{v:.3g}</b>" for k, v in row.items()
                                                   if k != "frame" and isinstance(v, float)]
        self.readout.setText("   ".join(parts))

    def set_value(self, v: float):
        self.value.setValue(v)
