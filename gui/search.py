"""Fuzzy search popups: add a block by typing (double-click on empty canvas), find a block
in the graph (Ctrl+F), and pick the block to connect a wire dropped on empty canvas."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QDialog, QLineEdit, QListWidget, QListWidgetItem, QVBoxLayout

DATA_ROLE = Qt.UserRole + 7


def fuzzy_score(query: str, text: str) -> float | None:
    """None unless the letters of ``query`` occur in ``text`` in order; higher is better:
    consecutive letters, a match at the start or after ``.``/``_`` and short texts score."""
    q, t = query.lower().replace(" ", ""), text.lower()
    if not q:
        return 0.0
    if q in t:                                  # a plain substring beats any scattered match
        i = t.index(q)
        return 100.0 + (10 if i == 0 or t[i - 1] in "._/ " else 0) - 0.01 * len(t)
    score, at, run = 0.0, 0, 0
    for ch in q:
        i = t.find(ch, at)
        if i < 0:
            return None
        run = run + 1 if i == at else 0
        score += 1 + run + (2 if i == 0 or t[i - 1] in "._/ " else 0)
        at = i + 1
    return score - 0.01 * len(t)


class SearchPopup(QDialog):
    """A line edit over a list; Enter (or a double-click) chooses. ``chosen(data)``."""
    chosen = Signal(object)

    def __init__(self, title: str, items: list[tuple[str, str, object]], parent=None):
        """``items``: (label, searchable text, data)."""
        super().__init__(parent, Qt.Popup if parent is not None else Qt.Dialog)
        self.setWindowTitle(title)
        self.items = items
        self.edit = QLineEdit(placeholderText=title)
        self.list = QListWidget()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.edit)
        lay.addWidget(self.list)
        self.edit.textChanged.connect(self.filter)
        self.edit.returnPressed.connect(self.choose_current)
        self.list.itemActivated.connect(lambda _it: self.choose_current())
        self.resize(420, 320)
        self.filter("")

    def filter(self, text: str):
        ranked = []
        for k, (label, hay, data) in enumerate(self.items):
            s = fuzzy_score(text, hay)
            if s is not None:
                ranked.append((-s, k, label, data))
        self.list.clear()
        for _s, _k, label, data in sorted(ranked)[:200]:
            it = QListWidgetItem(label)
            it.setData(DATA_ROLE, data)
            self.list.addItem(it)
        if self.list.count():
            self.list.setCurrentRow(0)

    def shown(self) -> list:
        return [self.list.item(i).data(DATA_ROLE) for i in range(self.list.count())]

    def keyPressEvent(self, event):
        if event.key() in (Qt.Key_Down, Qt.Key_Up) and self.list.count():
            row = self.list.currentRow() + (1 if event.key() == Qt.Key_Down else -1)
            self.list.setCurrentRow(max(0, min(self.list.count() - 1, row)))
            return
        super().keyPressEvent(event)

    def choose_current(self):
        it = self.list.currentItem()
        if it is not None:
            self.chosen.emit(it.data(DATA_ROLE))
            self.accept()
