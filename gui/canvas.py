"""The graph canvas: a QGraphicsScene that draws the EditorModel and turns mouse
gestures into model edits. The scene holds no graph state of its own; ``sync()``
rebuilds items from the model whenever it changes (graphs have tens of blocks)."""
from __future__ import annotations

import zlib

from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetricsF, QPainter, QPainterPath, QPen
from shiboken6 import delete as _delete_cpp
from PySide6.QtWidgets import (QGraphicsEllipseItem, QGraphicsItem, QGraphicsPathItem, QGraphicsScene,
                               QGraphicsSimpleTextItem, QGraphicsTextItem, QGraphicsView, QMenu)

from .layout import GRID, HEADER_H, port_y
from .routing import route
from .style import PROBLEM, SELECTED, kind_color, stage_color

MIME_BLOCK = "application/x-semflow-block"


def discard(scene, item) -> None:
    """Take an item off the scene and delete it now. A removed item would otherwise be
    owned by Python, and blocks, ports and wires refer to each other: the cyclic garbage
    collector would then free them at a random moment, which with PySide6 can abort the
    process (seen while a run's worker thread was busy)."""
    if item.scene() is scene:
        scene.removeItem(item)
    _delete_cpp(item)
PORT_R = 6.0
RUNNING = QColor("#2e9e44")


class PortItem(QGraphicsEllipseItem):
    def __init__(self, block: "BlockItem", name: str, port, output: bool):
        super().__init__(-PORT_R, -PORT_R, 2 * PORT_R, 2 * PORT_R, block)
        self.block, self.name, self.port, self.output = block, name, port, output
        self.setBrush(kind_color(port.kind))
        self.setPen(QPen(QColor("#303030"), 1))
        self.setAcceptHoverEvents(True)
        self.setCursor(Qt.CrossCursor)
        self.label = QGraphicsSimpleTextItem(name, block)
        self.label.setFont(QFont("Sans", 8))

    def place(self, x: float, y: float):
        self.setPos(x, y)
        w = self.label.boundingRect().width()
        self.label.setPos(x - w - 10 if self.output else x + 10, y - 8)

    def anchor(self) -> QPointF:
        return self.scenePos()

    def hoverEnterEvent(self, event):
        # computed on hover: dims resolve from the latest validation
        self.setToolTip(self.block.scene().model.port_tooltip(self.block.name, self.name, self.output))
        self.setPen(QPen(QColor("#000000"), 2))
        super().hoverEnterEvent(event)

    def hoverLeaveEvent(self, event):
        self.setPen(QPen(QColor("#303030"), 1))
        super().hoverLeaveEvent(event)

    def mousePressEvent(self, event):
        if event.button() == Qt.LeftButton:
            self.scene().begin_wire(self)
            event.accept()
        else:
            super().mousePressEvent(event)

    def mouseMoveEvent(self, event):
        self.scene().move_wire(event.scenePos())

    def mouseReleaseEvent(self, event):
        self.scene().end_wire(event.scenePos())


class BlockItem(QGraphicsItem):
    def __init__(self, scene: "GraphScene", name: str):
        super().__init__()
        self.name = name
        self.setFlags(QGraphicsItem.ItemIsMovable | QGraphicsItem.ItemIsSelectable |
                      QGraphicsItem.ItemSendsGeometryChanges)
        self.setAcceptHoverEvents(True)
        self.ports: dict[tuple, PortItem] = {}
        self.edges: list = []
        self.w, self.h = 150.0, HEADER_H
        self.type_id, self.stage = "", ""
        self.problems: list[str] = []
        self.error = ""
        self.enabled, self.bypass = True, False
        self.unknown: list[str] | None = None     # unknown type: the suggested types
        self.is_graph = False
        self.running = False                      # the run's current stage trains this block
        self.progress: float | None = None        # that stage's progress, drawn on the node
        self._scene = scene

    def rebuild(self):
        """(Re)create ports from the block's type."""
        m = self._scene.model
        b = m.spec.blocks[self.name]
        for p in self.ports.values():
            discard(self._scene, p.label)
            discard(self._scene, p)
        self.ports.clear()
        self.type_id = b.type
        self.is_graph = b.is_graph
        self.stage = "graph" if b.is_graph else b.type.split(".", 1)[0]
        self.unknown = None if m.type_known(b.type) else m.type_suggestions(b.type)
        ins, outs = m.block_ports(self.name)
        self.prepareGeometryChange()
        self.w, self.h = m.block_size(self.name)
        for i, (pn, p) in enumerate(ins.items()):
            item = PortItem(self, pn, p, False)
            item.place(0, port_y(i))
            self.ports[(pn, False)] = item
        for i, (pn, p) in enumerate(outs.items()):
            item = PortItem(self, pn, p, True)
            item.place(self.w, port_y(i))
            self.ports[(pn, True)] = item

    def refresh_state(self):
        m = self._scene.model
        b = m.spec.blocks[self.name]
        self.enabled, self.bypass = b.enabled, b.bypass
        self.problems = m.block_problems(self.name)
        self.error = m.runtime_errors.get(self.name, "")
        tip = [f"{self.name}  ({self.type_id})"]
        if not self.enabled:
            tip.append("disabled")
        if self.bypass:
            tip.append("bypassed")
        if self.error:
            tip.append("run error: " + self.error)
        if self.unknown is not None:
            tip.append(f"unknown block type '{self.type_id}'" + (
                f": did you mean {', '.join(self.unknown)}? (right-click to change the type)" if self.unknown else ""))
        tip += self.problems
        self.setToolTip("\n".join(tip))
        self.setOpacity(1.0 if self.enabled else 0.45)
        self.update()

    def rect(self) -> QRectF:
        """The block's body in scene coordinates (port labels included: they sit inside)."""
        return QRectF(self.pos().x(), self.pos().y(), self.w, self.h)

    def boundingRect(self) -> QRectF:
        return QRectF(-4, -4, self.w + 8, self.h + 8)

    def paint(self, painter: QPainter, option, widget=None):
        painter.setRenderHint(QPainter.Antialiasing)
        body = QRectF(0, 0, self.w, self.h)
        if self.problems or self.error or self.unknown is not None:
            pen = QPen(PROBLEM, 3)
        elif self.isSelected():
            pen = QPen(SELECTED, 3)
        elif self.running:
            pen = QPen(RUNNING, 3)
        else:
            pen = QPen(QColor("#404040"), 1.2)
        if self.bypass or self.unknown is not None:
            pen.setStyle(Qt.DashLine)
        painter.setPen(pen)
        painter.setBrush(QBrush(QColor("#fdfdfd")))
        painter.drawRoundedRect(body, 6, 6)
        if self.is_graph:                          # a hierarchical block: a second frame inside
            painter.setPen(QPen(stage_color("graph"), 1))
            painter.setBrush(Qt.NoBrush)
            painter.drawRoundedRect(body.adjusted(3, 3, -3, -3), 4, 4)
        head = QPainterPath()
        head.addRoundedRect(QRectF(1, 1, self.w - 2, HEADER_H - 4), 5, 5)
        painter.fillPath(head, stage_color(self.stage).lighter(150))
        if not self.enabled:                       # disabled: hatched, unlike any stage colour
            painter.fillPath(head, QBrush(QColor("#707070"), Qt.BDiagPattern))
        painter.setPen(QColor("#101010"))
        painter.setFont(QFont("Sans", 9, QFont.Bold))
        painter.drawText(QRectF(8, 2, self.w - 16, 18), Qt.AlignLeft | Qt.AlignVCenter, self.name)
        painter.setFont(QFont("Sans", 7))
        sub = self.type_id + ("  [bypass]" if self.bypass else "") + ("  [disabled]" if not self.enabled else "")
        if self.unknown is not None:
            sub = "unknown: " + self.type_id
            painter.setPen(PROBLEM)
        painter.drawText(QRectF(8, 18, self.w - 16, 14), Qt.AlignLeft | Qt.AlignVCenter, sub)
        if self.progress is not None:               # the running stage's progress, on the node
            bar = QRectF(6, self.h - 5, (self.w - 12), 3)
            painter.fillRect(bar, QColor("#d8e8d8"))
            painter.fillRect(QRectF(bar.x(), bar.y(), bar.width() * max(0.0, min(1.0, self.progress)), 3), RUNNING)
        if self.problems or self.error:                     # badge: problems or a run error
            painter.setBrush(PROBLEM)
            painter.setPen(Qt.NoPen)
            painter.drawEllipse(QPointF(self.w - 4, 0), 8, 8)
            painter.setPen(QColor("white"))
            painter.setFont(QFont("Sans", 8, QFont.Bold))
            painter.drawText(QRectF(self.w - 12, -8, 16, 16), Qt.AlignCenter, "!")

    def itemChange(self, change, value):
        if change == QGraphicsItem.ItemPositionChange and self._scene.snap and self._scene.dragging:
            return QPointF(round(value.x() / GRID) * GRID, round(value.y() / GRID) * GRID)
        if change == QGraphicsItem.ItemPositionHasChanged:
            for e in self.edges:
                e.update_path()
        return super().itemChange(change, value)

    def mousePressEvent(self, event):
        self._scene.dragging = True
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event):
        super().mouseReleaseEvent(event)
        self._scene.dragging = False
        self._scene.commit_moves()

    def mouseDoubleClickEvent(self, event):
        self._scene.blockActivated.emit(self.name)


class EdgeItem(QGraphicsPathItem):
    def __init__(self, src: PortItem, dst: PortItem):
        super().__init__()
        self.src, self.dst = src, dst
        self.key = (src.block.name, src.name, dst.block.name, dst.name)
        self.setFlags(QGraphicsItem.ItemIsSelectable)
        self.setZValue(-1)
        self.color = kind_color(src.port.kind)
        self.setToolTip("{}.{} -> {}.{}".format(*self.key))
        src.block.edges.append(self)
        dst.block.edges.append(self)
        self.update_path()

    def update_path(self):
        """Orthogonal, around the blocks (gui/routing.py); one lane per source port."""
        a, b = self.src.anchor(), self.dst.anchor()
        scene = self.src.block._scene
        rects = [(r.left(), r.top(), r.right(), r.bottom()) for r in (it.rect() for it in scene.blocks.values())]
        lane = (zlib.crc32(f"{self.key[0]}.{self.key[1]}".encode()) % 5 - 2) * 4.0
        self.points = route((a.x(), a.y()), (b.x(), b.y()), rects, lane)
        path = QPainterPath(QPointF(*self.points[0]))
        for p in self.points[1:]:
            path.lineTo(QPointF(*p))
        self.setPath(path)

    def paint(self, painter, option, widget=None):
        self.setPen(QPen(SELECTED if self.isSelected() else self.color, 3 if self.isSelected() else 2))
        super().paint(painter, option, widget)


class VariableItem(QGraphicsItem):
    """GRC's Variable block: ``name = value`` on the canvas; double-click edits the value."""
    W, H = 170.0, 40.0

    def __init__(self, scene: "GraphScene", name: str):
        super().__init__()
        self.name, self._scene = name, scene
        self.setFlags(QGraphicsItem.ItemIsMovable | QGraphicsItem.ItemIsSelectable)

    def boundingRect(self) -> QRectF:
        return QRectF(-2, -2, self.W + 4, self.H + 4)

    def text(self) -> str:
        from .values import format_value
        return f"{self.name} = {format_value(self._scene.model.spec.variables.get(self.name))}"

    def paint(self, painter, option, widget=None):
        painter.setRenderHint(QPainter.Antialiasing)
        painter.setPen(QPen(SELECTED if self.isSelected() else QColor("#556270"), 2 if self.isSelected() else 1))
        painter.setBrush(QBrush(stage_color("variable").lighter(175)))
        painter.drawRoundedRect(QRectF(0, 0, self.W, self.H), 10, 10)
        painter.setPen(QColor("#102030"))
        painter.setFont(QFont("Sans", 7))
        painter.drawText(QRectF(10, 3, self.W - 20, 14), Qt.AlignLeft | Qt.AlignVCenter, "variable")
        painter.setFont(QFont("Sans", 9, QFont.Bold))
        painter.drawText(QRectF(10, 17, self.W - 20, 18), Qt.AlignLeft | Qt.AlignVCenter, self.text())

    def mouseReleaseEvent(self, event):
        super().mouseReleaseEvent(event)
        self._scene.commit_variable_moves()

    def mouseDoubleClickEvent(self, event):
        self._scene.variableActivated.emit(self.name)


class GraphScene(QGraphicsScene):
    blockActivated = Signal(str)      # double-click on a block
    message = Signal(str)             # a refused connection's reason, for the status bar
    emptyDoubleClicked = Signal(QPointF)       # double-click on empty canvas: block search
    wireDropped = Signal(object, QPointF)      # a wire let go on empty canvas: (PortItem, where)
    variableActivated = Signal(str)            # double-click on a variable block

    def __init__(self, model, parent=None):
        super().__init__(parent)
        self.model = model
        self.blocks: dict[str, BlockItem] = {}
        self.edges: dict[tuple, EdgeItem] = {}
        self.variables: dict[str, VariableItem] = {}
        self.notes: list = []             # refusal reasons shown for a few seconds
        self._wire: QGraphicsPathItem | None = None
        self._wire_from: PortItem | None = None
        self.last_refusal: str | None = None
        self.snap = True                 # moves land on the grid (View → Snap to grid)
        self.dragging = False
        self.setSceneRect(-2000, -2000, 8000, 5000)
        model.changed.connect(self._on_changed)
        model.validated.connect(self.refresh_states)
        self.sync()

    # ---- model -> items ------------------------------------------------------------------
    def _on_changed(self, what: str):
        if what == "file":                # another graph: the last graph's notes go
            for note in list(self.notes):
                self.drop_note(note)
        if what == "positions":
            self.sync_positions()
        elif what.startswith("block:"):
            name = what[6:]
            if name in self.blocks:
                self.blocks[name].refresh_state()
        elif what == "errors":
            self.refresh_states()
        elif what == "variables":
            self.sync_variables()
        else:
            self.sync()

    def sync(self):
        spec = self.model.spec
        for name in [n for n, it in self.blocks.items()
                     if n not in spec.blocks or spec.blocks[n].type != it.type_id]:
            self._remove_block(name)
        for name in spec.blocks:
            if name not in self.blocks:
                item = BlockItem(self, name)
                self.addItem(item)
                item.rebuild()
                self.blocks[name] = item
        for e in list(self.edges.values()):
            self._remove_edge(e)
        for c in spec.connections:
            src, dst = self.blocks.get(c.src), self.blocks.get(c.dst)
            if src is None or dst is None:
                continue
            a, b = src.ports.get((c.src_port, True)), dst.ports.get((c.dst_port, False))
            if a is not None and b is not None:
                e = EdgeItem(a, b)
                self.addItem(e)
                self.edges[e.key] = e
        self.sync_positions()
        self.refresh_states()
        self.sync_variables()

    def variable_blocks(self) -> dict:
        vb = (self.model.spec.gui or {}).get("variable_blocks")
        return {k: v for k, v in vb.items() if k in self.model.spec.variables} if isinstance(vb, dict) else {}

    def sync_variables(self):
        wanted = self.variable_blocks()
        for name in [n for n in self.variables if n not in wanted]:
            discard(self, self.variables.pop(name))
        for name, p in wanted.items():
            item = self.variables.get(name)
            if item is None:
                item = self.variables[name] = VariableItem(self, name)
                self.addItem(item)
            item.setPos(float(p[0]), float(p[1]))
            item.update()

    def add_variable_block(self, name: str, pos: QPointF):
        vb = dict(self.variable_blocks())
        vb[name] = [round(pos.x() / GRID) * GRID, round(pos.y() / GRID) * GRID]
        self.model.set_section("gui.variable_blocks", vb, f"show variable {name}")

    def commit_variable_moves(self):
        vb = self.variable_blocks()
        new = {n: [round(it.pos().x()), round(it.pos().y())] for n, it in self.variables.items()}
        if new != {n: list(p) for n, p in vb.items()}:
            self.model.set_section("gui.variable_blocks", new, "move variable blocks")

    def _remove_block(self, name):
        item = self.blocks.pop(name)
        for e in list(item.edges):
            self._remove_edge(e)
        item.edges.clear()
        item.ports.clear()
        discard(self, item)

    def _remove_edge(self, e: EdgeItem):
        for b in (e.src.block, e.dst.block):
            if e in b.edges:
                b.edges.remove(e)
        self.edges.pop(e.key, None)
        e.src = e.dst = None
        discard(self, e)

    def sync_positions(self):
        pos = self.model.positions()
        for name, item in self.blocks.items():
            p = pos.get(name)
            if p is not None and (item.pos().x(), item.pos().y()) != (float(p[0]), float(p[1])):
                item.setPos(float(p[0]), float(p[1]))
        self.reroute()

    def reroute(self):
        """Re-route every wire: a moved block changes which channels are free for all of them."""
        for e in self.edges.values():
            e.update_path()

    def set_running(self, blocks=(), progress: float | None = None):
        """Highlight the blocks the running stage trains, with its progress on each."""
        blocks = set(blocks)
        for name, item in self.blocks.items():
            on = name in blocks
            if item.running != on or (on and item.progress != progress):
                item.running, item.progress = on, (progress if on else None)
                item.update()

    def refresh_states(self):
        for name, item in self.blocks.items():
            if name in self.model.spec.blocks:        # a new file validates before items sync
                item.refresh_state()

    # ---- gestures -> model ---------------------------------------------------------------
    def commit_moves(self):
        self.reroute()
        pos = self.model.positions()
        moved = {n: (it.pos().x(), it.pos().y()) for n, it in self.blocks.items()
                 if [float(v) for v in pos.get(n, ())] != [it.pos().x(), it.pos().y()]}
        if moved:
            self.model.move_blocks(moved)

    def selected_blocks(self) -> list[str]:
        return [i.name for i in self.selectedItems() if isinstance(i, BlockItem)]

    def selected_edges(self) -> list[tuple]:
        return [i.key for i in self.selectedItems() if isinstance(i, EdgeItem)]

    def delete_selected(self):
        edges, blocks = self.selected_edges(), self.selected_blocks()
        if not edges and not blocks:
            return
        self.model.undo.beginMacro("delete selection")
        for key in edges:
            if key[0] not in blocks and key[2] not in blocks:
                self.model.disconnect(*key)
        self.model.delete_blocks(blocks)
        self.model.undo.endMacro()

    def begin_wire(self, port: PortItem):
        self._wire_from = port
        self._wire = QGraphicsPathItem()
        self._wire.setPen(QPen(kind_color(port.port.kind), 2, Qt.DashLine))
        self._wire.setZValue(10)
        self.addItem(self._wire)

    def _port_at(self, pos: QPointF) -> PortItem | None:
        for item in self.items(QRectF(pos.x() - 8, pos.y() - 8, 16, 16)):
            if isinstance(item, PortItem) and item is not self._wire_from:
                return item
        return None

    def _endpoints(self, a: PortItem, b: PortItem):
        if a.output == b.output:
            return None
        src, dst = (a, b) if a.output else (b, a)
        return src.block.name, src.name, dst.block.name, dst.name

    def move_wire(self, pos: QPointF):
        if self._wire is None:
            return
        a = self._wire_from.anchor()
        path = QPainterPath(a)
        path.lineTo(pos)
        self._wire.setPath(path)
        target = self._port_at(pos)
        ok = True
        if target is not None:                   # red while over a port that would be refused
            ends = self._endpoints(self._wire_from, target)
            ok = ends is not None and self.model.check_connection(*ends) is None
        self._wire.setPen(QPen(kind_color(self._wire_from.port.kind) if ok else PROBLEM, 2, Qt.DashLine))

    def end_wire(self, pos: QPointF):
        if self._wire is None:
            return
        start = self._wire_from
        discard(self, self._wire)
        self._wire, self._wire_from = None, None
        target = self._port_at(pos)
        if target is None:
            if (pos - start.anchor()).manhattanLength() > 20:     # let go on empty canvas
                self.wireDropped.emit(start, pos)
            return
        ends = self._endpoints(start, target)
        if ends is None:
            self.refuse("connect an output to an input", pos)
            return
        self.connect_ports(*ends, pos=pos)

    def connect_ports(self, src, sport, dst, dport, pos: QPointF | None = None) -> bool:
        ok, reason = self.model.connect(src, sport, dst, dport)
        if not ok:
            self.refuse(reason, pos)
        return ok

    def refuse(self, reason: str, pos: QPointF | None = None):
        """Show why a connection was refused, next to where it was dropped."""
        self.last_refusal = reason
        self.message.emit(f"connection refused: {reason}")
        note = QGraphicsTextItem(reason)
        note.setDefaultTextColor(PROBLEM)
        note.setFont(QFont("Sans", 9, QFont.Bold))
        note.setTextWidth(360)
        note.setZValue(20)
        note.setPos((pos or QPointF(0, 0)) + QPointF(12, 12))
        self.addItem(note)
        self.notes.append(note)
        QTimer.singleShot(5000, lambda: self.drop_note(note))

    def drop_note(self, note):
        if note in self.notes:
            self.notes.remove(note)
            discard(self, note)

    def fitting_blocks(self, port: PortItem) -> list[tuple[str, str]]:
        """(type id, port) of every registered block with a free port this wire can feed or
        come from: opposite direction, same dtype kind (or "any"); same tag first."""
        from flowgraph import registry
        kind, tag = port.port.kind, port.port.tag
        out = []
        for type_id, cls in registry.all_types().items():
            ports = cls.inputs if port.output else cls.outputs
            for pn, p in ports.items():
                if kind == p.kind or "any" in (kind, p.kind):
                    out.append((0 if (tag and p.tag == tag) else 1, type_id, pn))
                    break
        return [(t, pn) for _r, t, pn in sorted(out)]

    def connect_new_block(self, port: PortItem, type_id: str, port_name: str, pos: QPointF) -> str | None:
        """Add ``type_id`` where the wire was dropped and connect it (one undo step)."""
        m = self.model
        m.undo.beginMacro(f"add {type_id} and connect")
        try:
            x = pos.x() if port.output else pos.x() - 160
            name = m.add_block(type_id, pos=(round(x / GRID) * GRID, round((pos.y() - 40) / GRID) * GRID))
            me = (port.block.name, port.name)
            ends = (*me, name, port_name) if port.output else (name, port_name, *me)
            ok, reason = m.connect(*ends)
        finally:
            m.undo.endMacro()
        if not ok:
            self.refuse(reason, pos)
        return name

    def mouseDoubleClickEvent(self, event):
        item = self.itemAt(event.scenePos(), self.views()[0].transform()) if self.views() else None
        if item is None:
            self.emptyDoubleClicked.emit(event.scenePos())
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    def contextMenuEvent(self, event):
        item = self.itemAt(event.scenePos(), self.views()[0].transform()) if self.views() else None
        while item is not None and not isinstance(item, (BlockItem, EdgeItem, VariableItem)):
            item = item.parentItem()
        menu = QMenu()
        if isinstance(item, BlockItem):
            b = self.model.spec.blocks[item.name]
            menu.addAction("Disable" if b.enabled else "Enable",
                           lambda: self.model.set_state(item.name, enabled=not b.enabled))
            menu.addAction("Un-bypass" if b.bypass else "Bypass",
                           lambda: self.model.set_state(item.name, bypass=not b.bypass))
            menu.addAction("Delete", lambda: self.model.delete_blocks([item.name]))
            for t in item.unknown or ():
                menu.addAction(f"Change type to {t}", lambda t=t: self.model.set_type(item.name, t))
        elif isinstance(item, EdgeItem):
            menu.addAction("Disconnect", lambda: self.model.disconnect(*item.key))
        elif isinstance(item, VariableItem):
            vb = {k: v for k, v in self.variable_blocks().items() if k != item.name}
            menu.addAction("Remove from canvas",
                           lambda: self.model.set_section("gui.variable_blocks", vb, f"hide variable {item.name}"))
        else:
            menu.addAction("Auto layout", self.model.relayout)
            sub = menu.addMenu("Add variable block")
            for v in self.model.spec.variables:
                if v not in self.variables:
                    sub.addAction(v, lambda v=v, p=event.scenePos(): self.add_variable_block(v, p))
        menu.exec(event.screenPos())


class GraphView(QGraphicsView):
    """Zoom (wheel, Ctrl +/−/0), pan (middle-drag, Space-drag), rubber-band selection,
    arrow-key nudge, E/D/B block states, drop blocks from the palette."""
    MIN_READABLE = 0.6              # fit never shrinks text below this: scroll instead

    def __init__(self, scene: GraphScene, parent=None):
        super().__init__(scene, parent)
        self.setRenderHint(QPainter.Antialiasing)
        self.setDragMode(QGraphicsView.RubberBandDrag)
        self.setAcceptDrops(True)
        self.setTransformationAnchor(QGraphicsView.AnchorUnderMouse)
        self.setBackgroundBrush(QColor("#eef0f3"))
        self._pan_from = None
        self._space = False

    # ---- zoom and pan ------------------------------------------------------------------------
    def zoom(self, factor: float | None):
        """Multiply the scale by ``factor``; None: back to 100 %."""
        if factor is None:
            self.resetTransform()
        else:
            s = self.transform().m11() * factor
            if 0.1 <= s <= 4.0:
                self.scale(factor, factor)

    def pan(self, dx: float, dy: float):
        self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - int(dx))
        self.verticalScrollBar().setValue(self.verticalScrollBar().value() - int(dy))

    def mousePressEvent(self, event):
        if event.button() == Qt.MiddleButton or (self._space and event.button() == Qt.LeftButton):
            self._pan_from = event.position()
            self.viewport().setCursor(Qt.ClosedHandCursor)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event):
        if self._pan_from is not None:
            d = event.position() - self._pan_from
            self._pan_from = event.position()
            self.pan(d.x(), d.y())
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event):
        if self._pan_from is not None:
            self._pan_from = None
            self.viewport().setCursor(Qt.OpenHandCursor if self._space else Qt.ArrowCursor)
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def keyPressEvent(self, event):
        scene: GraphScene = self.scene()
        key, mods = event.key(), event.modifiers()
        if key == Qt.Key_Space and not event.isAutoRepeat():
            self._space = True
            self.viewport().setCursor(Qt.OpenHandCursor)
            return
        arrows = {Qt.Key_Left: (-1, 0), Qt.Key_Right: (1, 0), Qt.Key_Up: (0, -1), Qt.Key_Down: (0, 1)}
        names = scene.selected_blocks()
        if key in arrows and names:
            step = GRID * (5 if mods & Qt.ShiftModifier else 1)
            dx, dy = arrows[key]
            pos = scene.model.positions()
            scene.model.move_blocks({n: (pos[n][0] + dx * step, pos[n][1] + dy * step) for n in names if n in pos})
            return
        states = {Qt.Key_E: {"enabled": True}, Qt.Key_D: {"enabled": False}}
        if names and not mods and key in (Qt.Key_E, Qt.Key_D, Qt.Key_B):
            m = scene.model
            m.undo.beginMacro("block state")
            for n in names:
                if key == Qt.Key_B:
                    m.set_state(n, bypass=not m.spec.blocks[n].bypass)
                else:
                    m.set_state(n, **states[key])
            m.undo.endMacro()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event):
        if event.key() == Qt.Key_Space and not event.isAutoRepeat():
            self._space = False
            self.viewport().setCursor(Qt.ArrowCursor)
            return
        super().keyReleaseEvent(event)

    def drawBackground(self, painter, rect):
        super().drawBackground(painter, rect)
        painter.setPen(QPen(QColor("#dde1e6"), 1))
        step = 20
        left, top = int(rect.left()) - int(rect.left()) % step, int(rect.top()) - int(rect.top()) % step
        for x in range(left, int(rect.right()), step):
            painter.drawLine(QPointF(x, rect.top()), QPointF(x, rect.bottom()))
        for y in range(top, int(rect.bottom()), step):
            painter.drawLine(QPointF(rect.left(), y), QPointF(rect.right(), y))

    def wheelEvent(self, event):
        self.zoom(1.15 if event.angleDelta().y() > 0 else 1 / 1.15)

    def fit(self):
        """The whole graph in view; a big one stays readable (scale >= MIN_READABLE) and
        starts at its sources, the rest a scroll away."""
        items = self.scene().itemsBoundingRect()
        if items.isValid() and not items.isEmpty():
            self.fitInView(items.adjusted(-40, -40, 40, 40), Qt.KeepAspectRatio)
            s = self.transform().m11()
            if s > 1.0:                                # small graphs: do not blow them up
                self.resetTransform()
                self.centerOn(items.center())
            elif s < self.MIN_READABLE:
                self.resetTransform()
                self.scale(self.MIN_READABLE, self.MIN_READABLE)
                view_w = self.viewport().width() / self.MIN_READABLE
                self.centerOn(QPointF(items.left() - 40 + view_w / 2, items.center().y()))

    def dragEnterEvent(self, event):
        if event.mimeData().hasFormat(MIME_BLOCK):
            event.acceptProposedAction()
        else:
            super().dragEnterEvent(event)

    dragMoveEvent = dragEnterEvent

    def dropEvent(self, event):
        if not event.mimeData().hasFormat(MIME_BLOCK):
            return super().dropEvent(event)
        type_id = bytes(event.mimeData().data(MIME_BLOCK)).decode()
        p = self.mapToScene(event.position().toPoint())
        try:
            self.scene().model.add_block(type_id, pos=(p.x(), p.y()))
        except Exception as exc:          # unknown type: say so, keep the editor alive
            self.scene().message.emit(str(exc))
        event.acceptProposedAction()
