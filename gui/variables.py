"""Variables panel: the graph's ``variables:`` as an editable table (undoable edits)."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QHBoxLayout, QInputDialog, QPushButton, QTableWidget, QTableWidgetItem,
                               QVBoxLayout, QWidget)

from .values import format_value, parse_text


class VariablesPanel(QWidget):
    def __init__(self, model, parent=None):
        super().__init__(parent)
        self.model = model
        self._quiet = False
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["variable", "value / expression"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().hide()
        add, remove = QPushButton("+"), QPushButton("−")
        add.setToolTip("add a variable")
        remove.setToolTip("remove the selected variable")
        buttons = QHBoxLayout()
        buttons.addWidget(add)
        buttons.addWidget(remove)
        buttons.addStretch(1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.table)
        lay.addLayout(buttons)
        add.clicked.connect(self._add)
        remove.clicked.connect(self._remove)
        self.table.itemChanged.connect(self._on_item)
        model.changed.connect(lambda what: what in ("variables", "file", "saved") and self.refresh())
        self.refresh()

    def refresh(self):
        self._quiet = True
        variables = self.model.spec.variables
        self.table.setRowCount(len(variables))
        for row, (name, value) in enumerate(variables.items()):
            key = QTableWidgetItem(name)
            key.setFlags(Qt.ItemIsEnabled | Qt.ItemIsSelectable)
            self.table.setItem(row, 0, key)
            self.table.setItem(row, 1, QTableWidgetItem(format_value(value)))
        self._quiet = False

    def _on_item(self, item):
        if self._quiet or item.column() != 1:
            return
        name = self.table.item(item.row(), 0).text()
        self.model.set_variable(name, parse_text(item.text()))

    def _add(self):
        name, ok = QInputDialog.getText(self, "New variable", "name:")
        if ok and name.strip():
            self.model.set_variable(name.strip(), 0)

    def _remove(self):
        row = self.table.currentRow()
        if row >= 0:
            self.model.remove_variable(self.table.item(row, 0).text())
