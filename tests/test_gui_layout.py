"""Layered layout, wires routed around blocks, readable fit, canvas gestures (issue 16: 7 and
GRC's everyday canvas features)."""
from pathlib import Path

import pytest

from gui_support import gui_state  # noqa: F401  (fixtures)

from graph_checks import shipped_graphs

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.gui
GRAPHS = [p.relative_to(ROOT / "graphs").as_posix() for p in shipped_graphs()]
DEEPJSCC = ROOT / "graphs" / "deepjscc_awgn.yaml"


def scene_of(path):
    from gui.canvas import GraphScene
    from gui.model import EditorModel
    m = EditorModel()
    m.open(path)
    return m, GraphScene(m)


def overlaps(scene, pad: float = 10.0) -> list:
    rects = {n: it.rect().adjusted(-pad, -pad, pad, pad) for n, it in scene.blocks.items()}
    names = sorted(rects)
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1:] if rects[a].intersects(rects[b])]


def crossing_wires(scene) -> list:
    from gui.routing import crossings
    rects = [(r.left(), r.top(), r.right(), r.bottom()) for r in (it.rect() for it in scene.blocks.values())]
    return [k for k, e in scene.edges.items() if crossings(e.points, rects)]


@pytest.mark.parametrize("graph", GRAPHS)
def test_shipped_layout_has_no_overlapping_blocks_and_no_wire_through_a_block(graph, qtbot):
    m, scene = scene_of(ROOT / "graphs" / graph)
    assert set(m.spec.gui.get("positions", {})) >= set(m.spec.blocks), "every block has a stored position"
    assert overlaps(scene) == []
    assert crossing_wires(scene) == []


@pytest.mark.parametrize("graph", ["mumimo_ofdm.yaml", "lcfsc.yaml", "baselines/jpeg_ldpc_qam_mimo.yaml"])
def test_auto_layout_is_layered_left_to_right(graph, qtbot):
    m, scene = scene_of(ROOT / "graphs" / graph)
    m.relayout()
    pos = m.positions()
    for c in m.spec.connections:                                    # signal flows left to right
        assert pos[c.src][0] < pos[c.dst][0], str(c)
    xs = sorted({p[0] for p in pos.values()})
    assert len(xs) < len(pos)                                       # columns, not one long strip
    assert all(v % 20 == 0 for p in pos.values() for v in p)        # on the grid
    assert overlaps(scene) == [] and crossing_wires(scene) == []


def test_route_goes_around_a_block_in_the_way():
    from gui.routing import crossings, route
    blocks = [(0, 0, 100, 60), (200, -20, 300, 80), (400, 0, 500, 60)]
    pts = route((100, 30), (400, 30), blocks)                       # straight would cut block 2
    assert crossings(pts, blocks) == 0 and len(pts) > 2
    assert all(a[0] == b[0] or a[1] == b[1] for a, b in zip(pts, pts[1:]))   # orthogonal


def test_fit_of_a_big_graph_stays_readable(qtbot):
    from gui.canvas import GraphView
    m, scene = scene_of(ROOT / "graphs" / "lcfsc.yaml")
    view = GraphView(scene)
    qtbot.addWidget(view)
    view.resize(900, 500)
    view.show()
    view.fit()
    assert view.transform().m11() >= GraphView.MIN_READABLE - 1e-9
    src = view.mapFromScene(scene.blocks["src"].rect().center())
    assert view.viewport().rect().contains(src)                     # starts at the source


def test_zoom_pan_nudge_snap_and_block_state_keys(qtbot):
    from PySide6.QtCore import QPoint, Qt
    from gui.canvas import GraphView
    m, scene = scene_of(DEEPJSCC)
    view = GraphView(scene)
    qtbot.addWidget(view)
    view.resize(600, 400)
    view.show()
    view.resetTransform()
    view.zoom(1.25)
    assert abs(view.transform().m11() - 1.25) < 1e-9
    view.zoom(None)
    assert view.transform().m11() == 1.0
    h = view.horizontalScrollBar().value()
    qtbot.mousePress(view.viewport(), Qt.MiddleButton, pos=QPoint(300, 200))
    qtbot.mouseMove(view.viewport(), QPoint(200, 200))
    qtbot.mouseRelease(view.viewport(), Qt.MiddleButton, pos=QPoint(200, 200))
    assert view.horizontalScrollBar().value() == h + 100             # middle-drag pans
    h = view.horizontalScrollBar().value()
    qtbot.keyPress(view, Qt.Key_Space)
    qtbot.mousePress(view.viewport(), Qt.LeftButton, pos=QPoint(300, 200))
    qtbot.mouseMove(view.viewport(), QPoint(350, 200))
    qtbot.mouseRelease(view.viewport(), Qt.LeftButton, pos=QPoint(350, 200))
    qtbot.keyRelease(view, Qt.Key_Space)
    assert view.horizontalScrollBar().value() == h - 50              # space-drag pans
    scene.blocks["ch"].setSelected(True)
    x, y = m.positions()["ch"]
    qtbot.keyClick(view, Qt.Key_Right)
    qtbot.keyClick(view, Qt.Key_Down, Qt.ShiftModifier)
    assert m.positions()["ch"] == [x + 20, y + 100]                  # arrow nudge, Shift x5
    qtbot.keyClick(view, Qt.Key_D)
    assert m.spec.blocks["ch"].enabled is False
    qtbot.keyClick(view, Qt.Key_E)
    assert m.spec.blocks["ch"].enabled is True
    qtbot.keyClick(view, Qt.Key_B)
    assert m.spec.blocks["ch"].bypass is True
    m.undo.undo()
    assert m.spec.blocks["ch"].bypass is False
    item = scene.blocks["pn"]                                        # a drag lands on the grid
    scene.dragging = True
    item.setPos(113, 47)
    scene.dragging = False
    assert (item.pos().x(), item.pos().y()) == (120, 40)


def test_unknown_block_type_keeps_its_wires_and_suggests(tmp_path, qtbot):
    text = DEEPJSCC.read_text().replace("type: channel.awgn", "type: channel.agwn")
    path = tmp_path / "typo.yaml"
    path.write_text(text)
    m, scene = scene_of(path)
    item = scene.blocks["ch"]
    assert item.unknown and item.unknown[0] == "channel.awgn"
    assert ("pn", "x", "ch", "x") in scene.edges and ("ch", "y", "dec", "z") in scene.edges
    assert "did you mean channel.awgn" in item.toolTip()
    m.set_type("ch", "channel.awgn")
    assert scene.blocks["ch"].unknown is None and m.problems == []
    assert ("pn", "x", "ch", "x") in scene.edges


def test_classical_and_disabled_blocks_look_different():
    from gui.style import stage_color
    assert stage_color("classical").name() != "#cccccc" and stage_color("classical").saturation() > 60
