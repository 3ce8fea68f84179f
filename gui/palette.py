"""Block palette: registered blocks grouped by stage (plus graph files usable as blocks),
searchable; drag an entry onto the canvas, or press Enter to add it; double-click shows
the block's documentation."""
from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QLineEdit, QTextBrowser, QTreeWidget,
                               QTreeWidgetItem, QVBoxLayout, QWidget)

from flowgraph import STAGES, registry
from flowgraph.graph import GRAPH_TYPE_PREFIX

from .canvas import MIME_BLOCK

GRAPH_GROUP = "graph blocks"
STAGE_TITLES = {"source": "source", "extractor": "semantic extractor", "csirs": "CSI-RS",
                "estimator": "estimator", "precoder": "precoder", "channel": "channel",
                "combiner": "combiner", "decoder": "decoder", "sink": "metric sink",
                "classical": "classical", GRAPH_GROUP: GRAPH_GROUP}
TYPE_ROLE = Qt.UserRole + 1


def graph_block_files(dirs) -> list[str]:
    """Graph files that expose ports (``ports:``), hence usable as blocks."""
    out = []
    for d in dirs:
        for p in sorted(Path(d).glob("**/*.yaml")):
            try:
                if "\nports:" in "\n" + p.read_text(encoding="utf-8"):
                    out.append(str(p))
            except OSError:
                continue
    return out


def doc_html(type_id: str) -> str:
    """A block type's documentation (the same facts as ``semflow describe``) as HTML."""
    if type_id.startswith(GRAPH_TYPE_PREFIX):
        path = type_id[len(GRAPH_TYPE_PREFIX):]
        return f"<h3>{html.escape(type_id)}</h3><pre>{html.escape(Path(path).read_text(encoding='utf-8'))}</pre>"
    d = registry.get(type_id).describe()
    e = html.escape
    parts = [f"<h3>{e(d['type'])}</h3><p><i>stage: {e(d['stage'])}</i></p><pre>{e(d['doc'])}</pre>"]
    for title in ("inputs", "outputs"):
        rows = "".join(f"<tr><td><b>{e(n)}</b></td><td>{e(p['kind'])}</td>"
                       f"<td>({e(','.join(map(str, p['shape'])) if p['shape'] else '*')})</td>"
                       f"<td>{e(p['tag'] or '')}{' optional' if p['optional'] else ''}</td><td>{e(p['doc'])}</td></tr>"
                       for n, p in d[title].items())
        parts.append(f"<h4>{title}</h4><table cellspacing=6>{rows or '<tr><td>(none)</td></tr>'}</table>")
    rows = "".join(f"<tr><td><b>{e(n)}</b></td><td>{e(p['type'])}</td>"
                   f"<td>{'REQUIRED' if p['required'] else e(repr(p['default']))}</td>"
                   f"<td>{'runtime' if p['runtime'] else ''}</td>"
                   f"<td>{e(p['doc'])}{(' one of ' + e(str(p['choices']))) if p['choices'] else ''}</td></tr>"
                   for n, p in d["params"].items())
    parts.append(f"<h4>params</h4><table cellspacing=6>{rows or '<tr><td>(none)</td></tr>'}</table>")
    if d["taps"]:
        parts.append("<h4>taps</h4>" + "".join(f"<p><b>{e(n)}</b>: {e(t)}</p>" for n, t in d["taps"].items()))
    return "".join(parts)


class _Tree(QTreeWidget):
    entered = Signal(str)        # Enter on a block entry (double-click is for documentation)

    def keyPressEvent(self, event):
        item = self.currentItem()
        if event.key() in (Qt.Key_Return, Qt.Key_Enter) and item is not None and item.data(0, TYPE_ROLE):
            self.entered.emit(item.data(0, TYPE_ROLE))
        else:
            super().keyPressEvent(event)

    def mimeData(self, items):
        data = QMimeData()
        type_id = items[0].data(0, TYPE_ROLE) if items else None
        if type_id:
            data.setData(MIME_BLOCK, type_id.encode())
        return data

    def mimeTypes(self):
        return [MIME_BLOCK]


class Palette(QWidget):
    addRequested = Signal(str)

    def __init__(self, graph_dirs=("graphs",), parent=None):
        super().__init__(parent)
        self.graph_dirs = list(graph_dirs)
        self.search = QLineEdit(placeholderText="search blocks…")
        self.search.setClearButtonEnabled(True)
        self.tree = _Tree()
        self.tree.setHeaderHidden(True)
        self.tree.setDragEnabled(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.search)
        lay.addWidget(self.tree)
        self.search.textChanged.connect(self.filter)
        self.tree.itemDoubleClicked.connect(self._on_double)
        self.tree.entered.connect(self.addRequested)
        self.populate()

    def populate(self):
        self.tree.clear()
        groups: dict[str, list] = {}
        for type_id, cls in registry.all_types().items():
            doc = (cls.__doc__ or "").strip().splitlines()
            groups.setdefault(cls.stage(), []).append((type_id, type_id.split(".", 1)[1], doc[0] if doc else ""))
        for path in graph_block_files(self.graph_dirs):
            groups.setdefault(GRAPH_GROUP, []).append((GRAPH_TYPE_PREFIX + path, Path(path).stem, path))
        order = [s for s in STAGES if s in groups] + sorted(s for s in groups if s not in STAGES and s != GRAPH_GROUP)
        for stage in order + ([GRAPH_GROUP] if GRAPH_GROUP in groups else []):
            top = QTreeWidgetItem([STAGE_TITLES.get(stage, stage)])
            top.setFlags(Qt.ItemIsEnabled)
            for type_id, label, tip in groups[stage]:
                it = QTreeWidgetItem([label])
                it.setData(0, TYPE_ROLE, type_id)
                it.setToolTip(0, f"{type_id}\n{tip}")
                it.setFlags(Qt.ItemIsEnabled | Qt.ItemIsSelectable | Qt.ItemIsDragEnabled)
                top.addChild(it)
            self.tree.addTopLevelItem(top)
        self.tree.expandAll()

    def filter(self, text: str):
        text = text.strip().lower()
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            shown = 0
            for j in range(top.childCount()):
                it = top.child(j)
                hit = not text or text in it.data(0, TYPE_ROLE).lower() or text in it.toolTip(0).lower()
                it.setHidden(not hit)
                shown += hit
            top.setHidden(shown == 0)
            top.setExpanded(True)

    def visible_types(self) -> list[str]:
        out = []
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            out += [top.child(j).data(0, TYPE_ROLE) for j in range(top.childCount()) if not top.child(j).isHidden()
                    and not top.isHidden()]
        return out

    def _on_double(self, item, _col):
        type_id = item.data(0, TYPE_ROLE)
        if type_id:
            show_doc(type_id, self)


def html_dialog(title: str, text: str, parent=None, size=(640, 520)) -> QDialog:
    """A non-modal window showing HTML, with a Close button (block docs, Help)."""
    dlg = QDialog(parent)
    dlg.setWindowTitle(title)
    view = QTextBrowser()
    view.setHtml(text)
    buttons = QDialogButtonBox(QDialogButtonBox.Close)
    buttons.rejected.connect(dlg.reject)
    lay = QVBoxLayout(dlg)
    lay.addWidget(view)
    lay.addWidget(buttons)
    dlg.resize(*size)
    dlg.show()
    return dlg


def show_doc(type_id: str, parent=None) -> QDialog:
    return html_dialog(type_id, doc_html(type_id), parent)
