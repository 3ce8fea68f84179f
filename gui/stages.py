"""Editors for what used to be typed only: train stages, the evaluation sweep, presets.

Each editor works on a copy of its section and writes it back through
``EditorModel.set_section`` (one undo step per change, validated like every edit). Keys an
editor has no widget for (``schedule``, ``ema``, stage variables, ...) are kept as they are.
"""
from __future__ import annotations

import copy

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QComboBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QListWidget,
                               QListWidgetItem, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout,
                               QWidget)

from flowgraph.errors import SemflowError
from flowgraph.losses import LOSS_FUNCTIONS, compile_loss
from flowgraph.yamlio import plain

from .values import format_value, parse_text

OPTIMIZERS = ("adam", "adamw", "sgd")


def check_loss(model, text: str) -> str | None:
    """Why a loss expression cannot work in this graph, or None: syntax, unknown functions,
    ports no block has (the same rules the engine applies, said while typing)."""
    if not text.strip():
        return "a stage needs a loss, e.g. mse(dec.image, src.image)"
    try:
        loss = compile_loss(text)
    except SemflowError as exc:
        return str(exc)
    import re
    for fn in re.findall(r"([A-Za-z_]\w*)\s*\(", loss.code):
        if fn not in LOSS_FUNCTIONS:
            return f"unknown function '{fn}' (known: {', '.join(sorted(LOSS_FUNCTIONS))})"
    taps = model.tap_names()
    for block, port in loss.ports:
        top = block.split("/", 1)[0]
        if top not in model.spec.blocks:
            return f"no block '{top}' in this graph"
        if "/" not in block and f"{block}.{port}" not in taps:
            outs = ", ".join(model.block_ports(block)[1]) or "none"
            return f"block '{block}' has no output '{port}' (outputs: {outs})"
    return None


class StageEditor(QWidget):
    """The ``train:`` stages: list, and name / trainable blocks / loss / optimizer / steps."""

    def __init__(self, model, scene=None, parent=None):
        super().__init__(parent)
        self.model, self.scene = model, scene
        self.stages = QListWidget()
        add, rm, up = QPushButton("+ stage"), QPushButton("− stage"), QPushButton("↑")
        self.name = QLineEdit()
        self.trainable = QListWidget()
        self.from_sel = QPushButton("trainable = the blocks selected on the canvas")
        self.loss = QLineEdit(placeholderText="mse(dec.image, src.image)")
        self.loss_msg = QLabel(wordWrap=True)
        self.opt = QComboBox()
        self.opt.addItems(OPTIMIZERS)
        self.lr = QLineEdit(placeholderText="1e-3 or $lr")
        self.steps = QLineEdit(placeholderText="1000 or $steps")
        self.problems = QLabel(wordWrap=True)
        self.problems.setStyleSheet("color: #c62828;")
        form = QFormLayout()
        form.addRow("stage", self.name)
        form.addRow("trainable", self.trainable)
        form.addRow("", self.from_sel)
        form.addRow("loss", self.loss)
        form.addRow("", self.loss_msg)
        form.addRow("optimizer", self.opt)
        form.addRow("learning rate", self.lr)
        form.addRow("steps", self.steps)
        buttons = QHBoxLayout()
        for b in (add, rm, up):
            buttons.addWidget(b)
        buttons.addStretch(1)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("<b>train stages</b> (run in order)"))
        lay.addWidget(self.stages, 0)
        lay.addLayout(buttons)
        lay.addLayout(form, 1)
        lay.addWidget(self.problems)
        self.stages.setMaximumHeight(90)
        add.clicked.connect(self.add_stage)
        rm.clicked.connect(self.remove_stage)
        up.clicked.connect(self.move_up)
        self.stages.currentRowChanged.connect(lambda _r: self.show_stage())
        self.name.editingFinished.connect(lambda: self._set("stage", self.name.text().strip() or None))
        self.trainable.itemChanged.connect(self._trainable_changed)
        self.from_sel.clicked.connect(self.trainable_from_selection)
        self.loss.textChanged.connect(self._check_loss)
        self.loss.editingFinished.connect(self._commit_loss)
        self.opt.activated.connect(lambda _i: self._set_opt("type", self.opt.currentText()))
        self.lr.editingFinished.connect(lambda: self._set_opt("lr", parse_text(self.lr.text())))
        self.steps.editingFinished.connect(lambda: self._set("steps", parse_text(self.steps.text())))
        model.changed.connect(lambda what: what in ("file", "saved", "structure") and self.refresh())
        model.validated.connect(self._show_problems)
        self._quiet = False
        self.refresh()

    # ---- model -> widgets --------------------------------------------------------------------
    @property
    def row(self) -> int:
        return self.stages.currentRow()

    def train(self) -> list:
        return copy.deepcopy(plain(self.model.spec.train))

    def refresh(self):
        row = max(self.row, 0)
        self._quiet = True
        self.stages.clear()
        for i, st in enumerate(self.model.spec.train):
            self.stages.addItem(f"{i + 1}. {st.get('stage', f'stage{i + 1}')}")
        self._quiet = False
        if self.stages.count():
            self.stages.setCurrentRow(min(row, self.stages.count() - 1))
        self.show_stage()

    def show_stage(self):
        if self._quiet:
            return
        self._quiet = True
        try:
            on = 0 <= self.row < len(self.model.spec.train)
            for w in (self.name, self.trainable, self.from_sel, self.loss, self.opt, self.lr, self.steps):
                w.setEnabled(on)
            st = self.model.spec.train[self.row] if on else {}
            self.name.setText(str(st.get("stage", "")))
            self.trainable.clear()
            chosen = set(st.get("trainable") or [])
            for n in self.model.spec.blocks:
                it = QListWidgetItem(n)
                it.setFlags(Qt.ItemIsEnabled | Qt.ItemIsUserCheckable)
                it.setCheckState(Qt.Checked if n in chosen else Qt.Unchecked)
                self.trainable.addItem(it)
            self.loss.setText(str(st.get("loss", "")))
            self.loss.setCursorPosition(0)            # read from the start
            opt = st.get("optimizer") or {}
            self.opt.setCurrentText(str(opt.get("type", "adam")))
            self.lr.setText(format_value(opt.get("lr", "")))
            self.steps.setText(format_value(st.get("steps", "")))
        finally:
            self._quiet = False
        self._check_loss(self.loss.text())
        self._show_problems()

    def _show_problems(self):
        lines = [str(p) for p in self.model.problems if "train stage" in p.message]
        self.problems.setText("\n".join(lines))

    # ---- widgets -> model --------------------------------------------------------------------
    def _write(self, train: list, text: str):
        self.model.set_section("train", train, text)

    def _set(self, key: str, value):
        if self._quiet or not 0 <= self.row < len(self.model.spec.train):
            return
        train = self.train()
        if value in (None, ""):
            train[self.row].pop(key, None)
        else:
            train[self.row][key] = value
        self._write(train, f"train stage {self.row + 1}: {key}")

    def _set_opt(self, key: str, value):
        if self._quiet or not 0 <= self.row < len(self.model.spec.train):
            return
        train = self.train()
        opt = dict(train[self.row].get("optimizer") or {"type": "adam"})
        if value in (None, ""):
            opt.pop(key, None)
        else:
            opt[key] = value
        train[self.row]["optimizer"] = opt
        self._write(train, f"train stage {self.row + 1}: optimizer {key}")

    def _trainable_changed(self, _item):
        if self._quiet:
            return
        names = [self.trainable.item(i).text() for i in range(self.trainable.count())
                 if self.trainable.item(i).checkState() == Qt.Checked]
        self._set("trainable", names)

    def set_trainable(self, names):
        self._set("trainable", [n for n in self.model.spec.blocks if n in set(names)])

    def trainable_from_selection(self):
        if self.scene is not None:
            self.set_trainable(self.scene.selected_blocks())

    def _check_loss(self, text: str):
        reason = check_loss(self.model, text) if self.loss.isEnabled() else None
        self.loss_msg.setText(f"<span style='color:#c62828'>{reason}</span>" if reason
                              else "<span style='color:#2e7d32'>loss ok ✓</span>" if text else "")
        return reason

    def _commit_loss(self):
        if check_loss(self.model, self.loss.text()) is None:      # a broken loss is not written
            self._set("loss", self.loss.text().strip())

    def add_stage(self):
        train = self.train()
        trainable = [n for n in self.model.spec.blocks if self.model.block_class(n) is not None and
                     getattr(self.model.block_class(n), "trainable", True)][:1]
        train.append({"stage": f"stage{len(train) + 1}", "trainable": trainable, "loss": "",
                      "optimizer": {"type": "adam", "lr": 1e-3}, "steps": 100})
        self._write(train, "add train stage")
        self.stages.setCurrentRow(len(train) - 1)

    def remove_stage(self):
        if 0 <= self.row < len(self.model.spec.train):
            train = self.train()
            train.pop(self.row)
            self._write(train, "remove train stage")

    def move_up(self):
        r = self.row
        if r > 0:
            train = self.train()
            train[r - 1], train[r] = train[r], train[r - 1]
            self._write(train, "reorder train stages")
            self.stages.setCurrentRow(r - 1)


class StudyEditor(QWidget):
    """``evaluate:`` (sweep values per variable, metrics, batch) and ``presets:``."""

    def __init__(self, model, parent=None):
        super().__init__(parent)
        self.model = model
        self.sweep = QTableWidget(0, 2)
        self.sweep.setHorizontalHeaderLabels(["swept variable", "values"])
        self.sweep.horizontalHeader().setStretchLastSection(True)
        self.sweep.verticalHeader().hide()
        self.metrics = QListWidget()
        self.batch = QLineEdit(placeholderText="evaluation batch")
        self.presets = QTableWidget(0, 2)
        self.presets.setHorizontalHeaderLabels(["preset", "overrides"])
        self.presets.horizontalHeader().setStretchLastSection(True)
        self.presets.verticalHeader().hide()
        add_sweep, rm_sweep = QPushButton("+ variable"), QPushButton("−")
        add_preset, rm_preset = QPushButton("+ preset"), QPushButton("−")
        row1, row2 = QHBoxLayout(), QHBoxLayout()
        for r, ws in ((row1, (add_sweep, rm_sweep)), (row2, (add_preset, rm_preset))):
            for w in ws:
                r.addWidget(w)
            r.addStretch(1)
        self.msg = QLabel(wordWrap=True)
        self.msg.setStyleSheet("color: #c62828;")
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("<b>evaluation sweep</b> (every combination is one point)"))
        lay.addWidget(self.sweep, 1)
        lay.addLayout(row1)
        form = QFormLayout()
        form.addRow("metrics", self.metrics)
        form.addRow("batch", self.batch)
        lay.addLayout(form)
        lay.addWidget(QLabel("<b>presets</b> (variable overrides, e.g. <code>{steps: 4, batch: 4}</code>)"))
        lay.addWidget(self.presets, 1)
        lay.addLayout(row2)
        lay.addWidget(self.msg)
        self.metrics.setMaximumHeight(90)
        self._quiet = False
        self.sweep.itemChanged.connect(self._sweep_changed)
        self.presets.itemChanged.connect(self._presets_changed)
        self.metrics.itemChanged.connect(self._metrics_changed)
        self.batch.editingFinished.connect(self._batch_changed)
        add_sweep.clicked.connect(lambda: self._add_row(self.sweep, "snr_db", "[0, 5, 10]"))
        rm_sweep.clicked.connect(lambda: self._remove_row(self.sweep, self._sweep_changed))
        add_preset.clicked.connect(lambda: self._add_row(self.presets, "new", "{steps: 10}"))
        rm_preset.clicked.connect(lambda: self._remove_row(self.presets, self._presets_changed))
        model.changed.connect(lambda what: what in ("file", "saved", "structure") and self.refresh())
        self.refresh()

    def refresh(self):
        self._quiet = True
        try:
            ev = plain(self.model.spec.evaluate or {})
            sweep = ev.get("sweep") or {}
            self.sweep.setRowCount(len(sweep))
            for r, (k, v) in enumerate(sweep.items()):
                self.sweep.setItem(r, 0, QTableWidgetItem(k))
                self.sweep.setItem(r, 1, QTableWidgetItem(format_value(v)))
            from .views.plots import metric_names
            chosen = set(ev.get("metrics") or [])
            self.metrics.clear()
            for n in metric_names(self.model):
                it = QListWidgetItem(n)
                it.setFlags(Qt.ItemIsEnabled | Qt.ItemIsUserCheckable)
                it.setCheckState(Qt.Checked if n in chosen else Qt.Unchecked)
                self.metrics.addItem(it)
            self.batch.setText(format_value(ev.get("batch", "")))
            presets = plain(self.model.spec.presets or {})
            self.presets.setRowCount(len(presets))
            for r, (k, v) in enumerate(presets.items()):
                self.presets.setItem(r, 0, QTableWidgetItem(k))
                self.presets.setItem(r, 1, QTableWidgetItem(format_value(v)))
        finally:
            self._quiet = False

    def _rows(self, table) -> dict:
        out = {}
        for r in range(table.rowCount()):
            k, v = table.item(r, 0), table.item(r, 1)
            if k is not None and k.text().strip():
                out[k.text().strip()] = parse_text(v.text()) if v is not None else None
        return out

    def _evaluate(self) -> dict:
        return copy.deepcopy(plain(self.model.spec.evaluate or {}))

    def _sweep_changed(self, *_):
        if self._quiet:
            return
        rows = self._rows(self.sweep)
        bad = [k for k, v in rows.items() if not isinstance(v, list)]
        if bad:
            self.msg.setText(f"sweep values of {', '.join(bad)} must be a list such as [0, 5, 10]")
            return
        self.msg.clear()
        ev = self._evaluate()
        ev["sweep"] = rows
        self.model.set_section("evaluate", ev, "edit the evaluation sweep")

    def _metrics_changed(self, _item):
        if self._quiet:
            return
        ev = self._evaluate()
        ev["metrics"] = [self.metrics.item(i).text() for i in range(self.metrics.count())
                         if self.metrics.item(i).checkState() == Qt.Checked]
        self.model.set_section("evaluate", ev, "edit the evaluation metrics")

    def _batch_changed(self):
        ev = self._evaluate()
        value = parse_text(self.batch.text())
        if value in ("", None):
            ev.pop("batch", None)
        else:
            ev["batch"] = value
        self.model.set_section("evaluate", ev, "edit the evaluation batch")

    def _presets_changed(self, *_):
        if self._quiet:
            return
        rows = self._rows(self.presets)
        bad = [k for k, v in rows.items() if not isinstance(v, dict)]
        if bad:
            self.msg.setText(f"preset {', '.join(bad)} must be a mapping such as {{steps: 4}}")
            return
        self.msg.clear()
        self.model.set_section("presets", rows, "edit presets")

    def _add_row(self, table, key, value):
        r = table.rowCount()
        self._quiet = True
        table.insertRow(r)
        table.setItem(r, 0, QTableWidgetItem(key))
        self._quiet = False
        table.setItem(r, 1, QTableWidgetItem(value))

    def _remove_row(self, table, commit):
        r = table.currentRow()
        if r >= 0:
            self._quiet = True
            table.removeRow(r)
            self._quiet = False
            commit()
