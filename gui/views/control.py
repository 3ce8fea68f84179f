"""Runtime controls (GNU Radio's QT GUI Range / Chooser / Check Box): widgets bound to graph
variables, several at once. While a live inference run streams, every change reaches the
scheduler between frames (``Scheduler.set_variables``) and the views respond.

The controls are part of the graph file (``gui: controls:``), so a graph opens with its
knobs::

    gui:
      controls:
        - {var: snr_db, widget: range, min: -5, max: 20, step: 0.5}
        - {var: scenario, widget: chooser, options: [umi, uma, rma]}
        - {var: pilot_guidance, widget: check}

A graph without them gets a range for ``snr_db`` (or its first numeric variable), its span
from the evaluation sweep.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QGridLayout, QHBoxLayout, QLabel,
                               QMenu, QPushButton, QSlider, QToolButton, QVBoxLayout, QWidget)

from ..values import format_value, parse_text

STEPS = 200
WIDGETS = ("range", "chooser", "check")


def _numeric(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def default_control(model, var: str) -> dict:
    """A control suited to the variable's value: a range (span from the sweep), a chooser
    (options from the sweep, or the choices of a param that uses it) or a check box."""
    value = model.spec.variables.get(var)
    sweep = ((model.spec.evaluate or {}).get("sweep") or {}).get(var)
    sweep = list(sweep) if isinstance(sweep, list) else []
    if isinstance(value, bool):
        return {"var": var, "widget": "check"}
    if _numeric(value):
        nums = [float(x) for x in sweep if _numeric(x)]
        lo, hi = (min(nums), max(nums)) if len(nums) > 1 else (float(value) - 10, float(value) + 10)
        return {"var": var, "widget": "range", "min": min(lo, float(value)), "max": max(hi, float(value)),
                "step": 0.5}
    options = [x for x in sweep if isinstance(x, str)]
    for name, b in model.spec.blocks.items():          # a param written as $var with choices
        cls = model.block_class(name)
        for k, raw in b.params.items():
            p = cls.params.get(k) if cls else None
            if raw == f"${var}" and p is not None and p.choices:
                options = options or list(p.choices)
    if value not in options and value is not None:
        options = [value] + options
    return {"var": var, "widget": "chooser", "options": options}


class Control(QWidget):
    """One knob: label, widget, remove button. ``changed(var, value)``."""
    changed = Signal(str, object)
    removed = Signal()

    def __init__(self, spec: dict, value, parent=None):
        super().__init__(parent)
        self.spec = dict(spec)
        self.var, self.kind = spec["var"], spec.get("widget", "range")
        self._quiet = False
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(QLabel(f"<b>{self.var}</b>"))
        if self.kind == "range":
            self.lo, self.hi = float(spec.get("min", 0)), float(spec.get("max", 1))
            self.slider = QSlider(Qt.Horizontal)
            self.slider.setRange(0, STEPS)
            self.box = QDoubleSpinBox()
            self.box.setRange(-1e9, 1e9)
            self.box.setDecimals(3)
            self.box.setSingleStep(float(spec.get("step", 0.5)))
            self.box.setKeyboardTracking(False)
            lay.addWidget(QLabel(format_value(self.lo)))
            lay.addWidget(self.slider, 1)
            lay.addWidget(QLabel(format_value(self.hi)))
            lay.addWidget(self.box)
            self.slider.valueChanged.connect(self._on_slider)
            self.box.valueChanged.connect(self._on_box)
        elif self.kind == "chooser":
            self.combo = QComboBox()
            self.options = list(spec.get("options") or [])
            self.combo.addItems([format_value(o) for o in self.options])
            lay.addWidget(self.combo, 1)
            self.combo.activated.connect(lambda i: self._emit(self.options[i]))
        else:
            self.check = QCheckBox()
            lay.addWidget(self.check, 1)
            self.check.toggled.connect(self._emit)
        rm = QToolButton(text="✕", toolTip="remove this control")
        rm.clicked.connect(self.removed)
        lay.addWidget(rm)
        self.set_value(value)

    def _emit(self, value):
        if not self._quiet:
            self.changed.emit(self.var, value)

    def _on_slider(self, i: int):
        self.box.setValue(self.lo + (self.hi - self.lo) * i / STEPS)

    def _on_box(self, v: float):
        self._sync_slider(v)
        self._emit(float(v))

    def _sync_slider(self, v: float):
        span = (self.hi - self.lo) or 1.0
        self.slider.blockSignals(True)
        self.slider.setValue(round((v - self.lo) / span * STEPS))
        self.slider.blockSignals(False)

    def value(self):
        if self.kind == "range":
            return float(self.box.value())
        if self.kind == "chooser":
            i = self.combo.currentIndex()
            return self.options[i] if 0 <= i < len(self.options) else None
        return self.check.isChecked()

    def set_value(self, v, emit: bool = False):
        """Show ``v``; ``emit`` also sends it to a running graph (as a user's change would)."""
        self._quiet = not emit
        try:
            if self.kind == "range" and _numeric(v):
                self.box.setValue(float(v))
                self._sync_slider(float(v))
            elif self.kind == "chooser" and v in self.options:
                self.combo.setCurrentIndex(self.options.index(v))
                self._emit(v) if emit else None
            elif self.kind == "check":
                self.check.setChecked(bool(v))
        finally:
            self._quiet = False


class ControlView(QWidget):
    title = "Runtime control"
    variableChanged = Signal(str, object)

    def __init__(self, model, parent=None):
        super().__init__(parent)
        self.model = model
        self.controls: list[Control] = []
        self.add_btn = QPushButton("+ control")
        self.add_btn.setToolTip("bind a range / chooser / check box to a graph variable")
        self.menu = QMenu(self)
        self.add_btn.setMenu(self.menu)
        self.menu.aboutToShow.connect(self._fill_menu)
        self.grid = QGridLayout()
        note = QLabel("Changes apply between frames of a <b>live inference</b> run; the controls are "
                      "saved with the graph (<code>gui: controls:</code>).")
        note.setWordWrap(True)
        self.readout = QLabel()                 # the metrics of the latest live frame
        self.readout.setStyleSheet("font-size: 14pt;")
        self.readout.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(self.add_btn)
        top.addStretch(1)
        self.box = QVBoxLayout()
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addLayout(self.box)
        lay.addWidget(note)
        lay.addWidget(self.readout)
        lay.addStretch(1)
        model.changed.connect(lambda what: what in ("file", "saved", "variables", "gui") and self.refresh())
        self.refresh()

    # ---- which controls ----------------------------------------------------------------------
    def specs(self) -> list[dict]:
        """The graph's ``gui: controls:``, or the default one."""
        given = (self.model.spec.gui or {}).get("controls")
        if isinstance(given, list):
            return [dict(c) for c in given if isinstance(c, dict) and c.get("var") in self.model.spec.variables]
        variables = self.model.spec.variables
        numeric = [k for k, v in variables.items() if _numeric(v)]
        pick = "snr_db" if "snr_db" in numeric else (numeric[0] if numeric else None)
        return [default_control(self.model, pick)] if pick else []

    def refresh(self):
        for c in self.controls:
            self.box.removeWidget(c)
            c.hide()                      # gone at once, deleted when the event loop comes round
            c.deleteLater()
        self.controls = []
        for spec in self.specs():
            c = Control(spec, self.model.spec.variables.get(spec["var"]))
            c.changed.connect(self.variableChanged)
            c.removed.connect(lambda s=spec: self.remove_control(s["var"]))
            self.box.addWidget(c)
            self.controls.append(c)

    def control(self, var: str) -> Control | None:
        return next((c for c in self.controls if c.var == var), None)

    def _store(self, specs: list[dict], text: str):
        self.model.set_section("gui.controls", specs, text)

    def add_control(self, var: str, widget: str | None = None, **options) -> None:
        spec = default_control(self.model, var)
        if widget and widget != spec["widget"]:
            spec = {"var": var, "widget": widget}
            if widget == "range":
                v = self.model.spec.variables.get(var)
                v = float(v) if _numeric(v) else 0.0
                spec.update(min=v - 10, max=v + 10, step=0.5)
            if widget == "chooser":
                spec["options"] = [self.model.spec.variables.get(var)]
        spec.update(options)
        specs = [s for s in self.specs() if s["var"] != var] + [spec]
        self._store(specs, f"add control for {var}")

    def remove_control(self, var: str) -> None:
        self._store([s for s in self.specs() if s["var"] != var], f"remove control for {var}")

    def _fill_menu(self):
        self.menu.clear()
        shown = {c.var for c in self.controls}
        for var, value in self.model.spec.variables.items():
            if var in shown or isinstance(value, (list, dict)):
                continue
            self.menu.addAction(f"{var} = {format_value(value)}", lambda v=var: self.add_control(v))

    # ---- values ------------------------------------------------------------------------------
    def set_value(self, v, var: str | None = None):
        """Turn a knob as the user would (default: the first range): the run follows."""
        c = self.control(var) if var else next((c for c in self.controls if c.kind == "range"), None)
        if c is not None:
            c.set_value(parse_text(v) if isinstance(v, str) else v, emit=True)

    def on_frame(self, _name, row: dict, _info):
        """A ``live.frame`` row: show the metrics so the effect of the controls is visible."""
        parts = [f"frame {row.get('frame')}"] + [f"{k} <b>{v:.3g}</b>" for k, v in row.items()
                                                   if k != "frame" and isinstance(v, float)]
        self.readout.setText("   ".join(parts))
