"""Property panel: a form generated from the selected block's params.

Each param gets a typed widget (spin box, check box, combo box for choices, line edit),
its doc string as tooltip, a ``$`` toggle that swaps the widget for an expression field
(``$snr_db``, ``$c * 2``) and a reset button back to the default. Edits go through the
model, so they are undoable and validated.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel,
                               QLineEdit, QScrollArea, QSizePolicy, QSpinBox, QStackedWidget, QToolButton,
                               QVBoxLayout, QWidget)

from flowgraph.expr import is_expression

from .commands import UNSET
from .values import format_value, parse_text


class ParamEditor(QWidget):
    """One param: typed widget or expression field. Emits ``committed(value)``."""
    committed = Signal(object)
    reset = Signal()

    def __init__(self, pspec, parent=None):
        super().__init__(parent)
        self.pspec = pspec
        self._quiet = False
        self.typed = self._typed_widget(pspec)
        self.expr = QLineEdit(placeholderText="$variable or expression")
        self.stack = QStackedWidget()
        self.stack.addWidget(self.typed)
        self.stack.addWidget(self.expr)
        self.toggle = QToolButton(text="$", checkable=True, toolTip="write an expression over variables")
        self.reset_btn = QToolButton(text="↺", toolTip="back to the default")
        for w in (self, self.stack):             # one line high, whatever the page
            w.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.typed.setMinimumWidth(60)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.stack, 1)
        lay.addWidget(self.toggle)
        lay.addWidget(self.reset_btn)
        self.toggle.toggled.connect(self._on_toggle)
        self.expr.editingFinished.connect(self._commit_expr)
        self.reset_btn.clicked.connect(self.reset)
        default = "required" if pspec.required else f"default {format_value(pspec.default)}"
        self.setToolTip(f"{pspec.type.__name__}, {default}" + ("; runtime" if pspec.runtime else "")
                        + (f"\n{pspec.doc}" if pspec.doc else ""))

    def _typed_widget(self, p):
        t = p.type
        if p.choices:
            w = QComboBox()
            w.addItems([format_value(c) for c in p.choices])
            w.activated.connect(lambda i: self._emit(p.choices[i]))
        elif t is bool:
            w = QCheckBox()
            w.toggled.connect(self._emit)
        elif t is int:
            w = QSpinBox()
            w.setRange(-2**31 + 1, 2**31 - 1)
            w.setKeyboardTracking(False)       # commit on Enter / focus out / arrows, not per key
            w.valueChanged.connect(self._emit)
        elif t is float:
            w = QDoubleSpinBox()
            w.setRange(-1e12, 1e12)
            w.setDecimals(6)
            w.setKeyboardTracking(False)       # typing 12.5 must not commit 1, 12, 12. on the way
            w.valueChanged.connect(self._emit)
        else:                                  # str, list, dict: YAML text
            w = QLineEdit()
            w.editingFinished.connect(lambda: self._emit(w.text() if t is str else parse_text(w.text())))
        return w

    def _emit(self, value):
        if not self._quiet:
            self.committed.emit(value)

    def _commit_expr(self):
        if not self._quiet and self.expr.text().strip():
            self.committed.emit(parse_text(self.expr.text()) if self.pspec.type is not str
                                else self.expr.text().strip())

    def current_text(self) -> str:
        """What the editor shows, as text (the expression field or the typed widget)."""
        w = self.expr if self.toggle.isChecked() else self.typed
        if isinstance(w, QComboBox):
            return w.currentText()
        if isinstance(w, QCheckBox):
            return "true" if w.isChecked() else "false"
        if isinstance(w, (QSpinBox, QDoubleSpinBox)):
            return format_value(w.value())
        return w.text()

    def _on_toggle(self, on: bool):
        self.stack.setCurrentIndex(1 if on else 0)

    def show_text(self, text: str):
        self._quiet = True
        self.toggle.setChecked(True)
        self.expr.setText(text)
        self._quiet = False

    def set_value(self, value, is_default: bool):
        """Show ``value`` without emitting; expressions (and ill-typed values) use the text field."""
        self._quiet = True
        try:
            self.reset_btn.setEnabled(not is_default)
            as_expr = is_expression(value) or (value is not None and self.pspec.check(value) is not None)
            self.toggle.setChecked(bool(as_expr))
            if as_expr:
                self.expr.setText(format_value(value))
                return
            w = self.typed
            if value is None:
                return
            if isinstance(w, QComboBox):
                w.setCurrentIndex(list(self.pspec.choices).index(value))
            elif isinstance(w, QCheckBox):
                w.setChecked(bool(value))
            elif isinstance(w, (QSpinBox, QDoubleSpinBox)):
                w.setValue(value)
            else:
                w.setText(format_value(value))
        finally:
            self._quiet = False


class PropertyPanel(QWidget):
    def __init__(self, model, parent=None):
        super().__init__(parent)
        self.model = model
        self.block: str | None = None
        self.editors: dict[str, ParamEditor] = {}
        self.title = QLabel("<i>select a block</i>")
        self.title.setWordWrap(True)
        self.enabled = QCheckBox("enabled")
        self.bypass = QCheckBox("bypass")
        self.doc = QLabel(wordWrap=True)
        self.doc.setStyleSheet("color: #555;")
        self.problems = QLabel(wordWrap=True)
        self.problems.setStyleSheet("color: #c62828;")
        self.problems.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.form_host = QWidget()
        host = QVBoxLayout(self.form_host)
        self.form = QFormLayout()
        self.form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        host.addLayout(self.form)
        host.addStretch(1)
        scroll = QScrollArea(widgetResizable=True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        scroll.setWidget(self.form_host)
        states = QHBoxLayout()
        states.addWidget(self.enabled)
        states.addWidget(self.bypass)
        states.addStretch(1)
        lay = QVBoxLayout(self)
        lay.addWidget(self.title)
        lay.addLayout(states)
        lay.addWidget(self.doc)
        lay.addWidget(scroll, 1)
        lay.addWidget(self.problems)
        self.enabled.clicked.connect(lambda on: self.block and self.model.set_state(self.block, enabled=on))
        self.bypass.clicked.connect(lambda on: self.block and self.model.set_state(self.block, bypass=on))
        model.changed.connect(self._on_changed)
        model.validated.connect(self._show_problems)
        self.show_block(None)

    def _on_changed(self, what: str):
        if self.block is not None and self.block not in self.model.spec.blocks:
            self.show_block(None)
        elif what == "file":
            self.show_block(None)
        elif what == "saved" and self.block is not None:
            self.show_block(self.block)
        elif self.block is not None and what in (f"block:{self.block}", "structure"):
            self.refresh()

    def show_block(self, name: str | None):
        self.block = name
        while self.form.rowCount():
            self.form.removeRow(0)
        self.editors.clear()
        on = name is not None
        for w in (self.enabled, self.bypass):
            w.setVisible(on)
        if not on:
            self.title.setText("<i>select a block</i>")
            self.doc.clear()
            self.problems.clear()
            return
        b = self.model.spec.blocks[name]
        cls = self.model.block_class(name)
        self.title.setText(f"<b>{name}</b> &nbsp; <span style='color:#666'>{b.type}</span>")
        doc = (cls.__doc__ or "").strip().split("\n\n")[0] if cls else ""
        self.doc.setText(doc)
        for key, pspec in (cls.params.items() if cls else ()):
            ed = ParamEditor(pspec)
            ed.committed.connect(lambda v, k=key: self.model.set_param(self.block, k, v))
            ed.reset.connect(lambda k=key: self.model.reset_param(self.block, k))
            label = QLabel(key + ("*" if pspec.required else ""))
            label.setToolTip(ed.toolTip())
            self.form.addRow(label, ed)
            self.editors[key] = ed
        if cls is None and b.is_graph:                # graph blocks: their params are the sub-graph's variables
            for key, value in b.params.items():
                ed = QLineEdit(format_value(value))
                ed.editingFinished.connect(
                    lambda k=key, e=ed: self.model.set_param(self.block, k, parse_text(e.text())))
                self.form.addRow(QLabel(key), ed)
        self.refresh()

    def refresh(self):
        if self.block is None:
            return
        b = self.model.spec.blocks[self.block]
        cls = self.model.block_class(self.block)
        self.enabled.setChecked(b.enabled)
        self.bypass.setChecked(b.bypass)
        for key, ed in self.editors.items():
            given = b.params.get(key, UNSET)
            default = None if cls.params[key].required else cls.params[key].default
            try:
                ed.set_value(default if given is UNSET else given, given is UNSET)
            except (ValueError, TypeError, OverflowError):    # a value the typed widget cannot show:
                ed.show_text(format_value(given))             # as text, never a wrong number
        self._show_problems()

    def _show_problems(self):
        if self.block is None or self.block not in self.model.spec.blocks:
            return
        lines = self.model.block_problems(self.block)
        err = self.model.runtime_errors.get(self.block)
        if err:
            lines = ["run error: " + err] + lines
        self.problems.setText("\n".join(lines))
