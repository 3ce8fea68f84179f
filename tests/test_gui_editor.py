"""GUI editor model, canvas and panels (pytest-qt, offscreen). Runs live in test_gui_run.py."""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

from flowgraph.compile import compile_graph  # noqa: E402
from flowgraph.graph import load_graph  # noqa: E402

from gui_support import gui_state  # noqa: F401  (fixtures)

pytestmark = pytest.mark.gui
DEEPJSCC = ROOT / "graphs" / "deepjscc_awgn.yaml"
TINY = ROOT / "tests" / "graphs" / "tiny.yaml"


@pytest.fixture
def model(qtbot):
    from gui.model import EditorModel
    return EditorModel()


def build_tiny(m):
    """src -> enc -> cx -> ch -> rx -> dec -> err, through the editor API only."""
    m.add_block("testing.vectors", "src", params={"n": 4})
    m.add_block("testing.affine", "enc", params={"n": 4, "m": 8})
    m.add_block("testing.to_complex", "cx")
    m.add_block("testing.noise", "ch")
    m.add_block("testing.to_real", "rx")
    m.add_block("testing.affine", "dec", params={"n": 8, "m": 4})
    m.add_block("testing.mse", "err")
    for a, b in [("src.x", "enc.x"), ("enc.y", "cx.x"), ("cx.z", "ch.z"), ("ch.z", "rx.z"),
                 ("rx.x", "dec.x"), ("dec.y", "err.pred"), ("src.x", "err.target")]:
        ok, reason = m.connect(*a.split("."), *b.split("."))
        assert ok, reason


def test_build_graph_with_editor_api_undo_redo(model):
    m = model
    m.add_block("testing.vectors", "src")
    m.add_block("testing.affine", "enc")
    assert any("required input 'x'" in line for line in m.block_problems("enc"))   # live validation
    assert m.connect("src", "x", "enc", "x") == (True, None)
    assert m.block_problems("enc") == []
    m.set_param("enc", "m", 6)
    assert m.spec.blocks["enc"].params == {"m": 6}
    assert m.dirty
    steps = m.undo.count()
    m.undo.undo()                                      # param change
    assert m.spec.blocks["enc"].params == {}
    m.undo.undo()                                      # connect
    assert m.spec.connections == []
    m.undo.redo()
    m.undo.redo()
    assert [str(c) for c in m.spec.connections] == ["src.x -> enc.x"]
    assert m.spec.blocks["enc"].params == {"m": 6}
    assert m.undo.count() == steps
    while m.undo.canUndo():
        m.undo.undo()
    assert m.spec.blocks == {} and not m.dirty


def test_every_edit_is_undoable(model):
    m = model
    build_tiny(m)
    m.set_variable("sigma", 0.1)
    snapshots = [m.spec.to_dict()]
    edits = [lambda: m.move_blocks({"enc": (300, 40)}),
             lambda: m.disconnect("cx", "z", "ch", "z"),
             lambda: m.set_param("ch", "sigma", "$sigma"),
             lambda: m.set_variable("sigma", 0.5),
             lambda: m.set_variable("extra", "$sigma * 2"),
             lambda: m.set_state("ch", bypass=True),
             lambda: m.set_state("rx", enabled=False),
             lambda: m.delete_blocks(["enc"]),
             lambda: m.remove_variable("extra")]
    for edit in edits:
        edit()
        assert m.spec.to_dict() != snapshots[-1], edit
        snapshots.append(m.spec.to_dict())
    for expected in reversed(snapshots[:-1]):
        m.undo.undo()
        assert m.spec.to_dict() == expected          # order of blocks, connections, variables too
    for expected in snapshots[1:]:
        m.undo.redo()
        assert m.spec.to_dict() == expected


def test_mismatched_connection_is_refused_with_reason(model, qtbot):
    from gui.canvas import GraphScene
    m = model
    build_tiny(m)
    m.add_block("testing.affine", "wide", params={"n": 5, "m": 4})
    before, steps = m.spec.to_dict(), m.undo.count()
    ok, reason = m.connect("enc", "y", "ch", "z")                 # real into complex
    assert not ok and reason == "kind mismatch: enc.y is real but ch.z expects complex"
    ok, reason = m.connect("enc", "y", "wide", "x")               # (B,M=8) into (B,N=5)
    assert not ok and "enc.y (B,M) -> wide.x expects (B,N): M=8 but N=5" == reason
    ok, reason = m.connect("dec", "y", "enc", "x")                # would close a loop
    assert not ok and reason.startswith("cycle")
    assert m.spec.to_dict() == before and m.undo.count() == steps
    scene = GraphScene(m)                                         # dragging a wire on the canvas
    out_port, in_port = scene.blocks["enc"].ports[("y", True)], scene.blocks["ch"].ports[("z", False)]
    with qtbot.waitSignal(scene.message) as sig:
        scene.begin_wire(out_port)
        scene.move_wire(in_port.anchor())
        scene.end_wire(in_port.anchor())
    assert sig.args[0] == "connection refused: kind mismatch: enc.y is real but ch.z expects complex"
    assert scene.last_refusal == "kind mismatch: enc.y is real but ch.z expects complex"
    assert m.spec.to_dict() == before
    scene.begin_wire(scene.blocks["wide"].ports[("y", True)])    # a good drop connects
    scene.end_wire(scene.blocks["err"].ports[("target", False)].anchor())
    assert "wide.y -> err.target" in [str(c) for c in m.spec.connections]
    assert ("wide", "y", "err", "target") in scene.edges


def test_connecting_a_fed_input_replaces_its_feed(model):
    m = model
    build_tiny(m)
    assert m.connect("enc", "y", "dec", "x") == (True, None)      # both (B,8): replaces rx.x -> dec.x
    assert "rx.x -> dec.x" not in [str(c) for c in m.spec.connections]
    m.undo.undo()
    assert "rx.x -> dec.x" in [str(c) for c in m.spec.connections]


def test_save_load_round_trip(model, tmp_path):
    m = model
    m.open(DEEPJSCC)
    assert not m.dirty and m.problems == []
    first = m.spec.to_dict()
    m.save(tmp_path / "a.yaml")
    again = load_graph(tmp_path / "a.yaml")
    assert again.to_dict() == first                         # layout under gui: included
    assert again.gui["positions"]["enc"] == first["gui"]["positions"]["enc"]
    build = type(m)()
    build_tiny(build)
    build.move_blocks({"src": (-50, 30)})
    path = build.save(tmp_path / "built.yaml")
    assert not build.dirty and build.title == "built.yaml"
    loaded = load_graph(path)
    assert loaded.to_dict() == build.spec.to_dict()
    assert loaded.gui["positions"]["src"] == [-50, 30]
    loaded.save(tmp_path / "again.yaml")
    assert (tmp_path / "again.yaml").read_text() == path.read_text()


def test_problems_match_semflow_validate(model, tmp_path):
    from gui.canvas import GraphScene
    m = model
    build_tiny(m)
    m.disconnect("src", "x", "err", "target")
    path = m.save(tmp_path / "broken.yaml")
    expected = [str(p) for p in compile_graph(load_graph(path)).problems]
    assert expected and m.block_problems("err") == expected        # same lines as `semflow validate`
    scene = GraphScene(m)
    item = scene.blocks["err"]
    assert item.problems == expected and expected[0] in item.toolTip()
    assert scene.blocks["src"].problems == []


def test_port_tooltip_resolves_dims(model):
    m = model
    m.open(DEEPJSCC)
    assert m.port_tooltip("src", "image", True).startswith("src.image: real (B,3,32,32)")
    assert "declared (B,3,H,W)" in m.port_tooltip("dec", "image", True)
    assert m.port_tooltip("ch", "x", False).startswith("ch.x: complex (B,...)")


def test_copy_paste(model):
    m = model
    build_tiny(m)
    text = m.copy_blocks(["enc", "cx"])
    new = m.paste(text)
    assert new == ["enc_2", "cx_2"]
    assert "enc_2.y -> cx_2.x" in [str(c) for c in m.spec.connections]
    assert m.spec.blocks["enc_2"].params == {"n": 4, "m": 8}
    m.undo.undo()                                                  # one step
    assert "enc_2" not in m.spec.blocks and "cx_2" not in m.spec.blocks
    assert m.paste("not a clipboard") == []


def test_auto_layout_when_no_positions(model, tmp_path):
    text = DEEPJSCC.read_text().split("\ngui:")[0] + "\n"
    (tmp_path / "nolayout.yaml").write_text(text)
    m = model
    m.open(tmp_path / "nolayout.yaml")
    pos = m.positions()
    assert set(pos) == set(m.spec.blocks) and not m.dirty
    for c in m.spec.connections:                                   # signal flows left to right
        assert pos[c.src][0] < pos[c.dst][0]
    assert len({tuple(p) for p in pos.values()}) == len(pos)       # nothing on top of each other


def test_autosave_and_recovery(qtbot, tmp_path):
    from gui.model import autosave_path, recovery_for
    from gui.window import MainWindow
    path = tmp_path / "g.yaml"
    path.write_text(TINY.read_text())
    w = MainWindow(autosave_ms=10**7)
    qtbot.addWidget(w)
    w.ask = lambda *a: "yes"
    assert w.open_file(path)
    w.model.set_variable("sigma", 0.7)
    assert w.model.autosave() == autosave_path(path)
    assert recovery_for(path) == autosave_path(path)
    w.model.undo.setClean()                                  # pretend the editor crashed here
    w2 = MainWindow(autosave_ms=10**7)
    qtbot.addWidget(w2)
    w2.ask = lambda *a: "yes"                                # "Recover it?" -> yes
    assert w2.open_file(path)
    assert w2.model.spec.variables["sigma"] == 0.7 and w2.model.dirty
    assert w2.model.path == path
    w2.ask = lambda *a: "save"                               # unsaved-changes prompt -> save
    assert w2.maybe_save()
    assert load_graph(path).variables["sigma"] == 0.7 and recovery_for(path) is None


def test_palette_groups_searches_and_documents(qtbot):
    from gui.palette import Palette, doc_html
    p = Palette(graph_dirs=[])
    qtbot.addWidget(p)
    groups = [p.tree.topLevelItem(i).text(0) for i in range(p.tree.topLevelItemCount())]
    assert groups[:2] == ["source", "semantic extractor"] and "channel" in groups and "metric sink" in groups
    p.search.setText("awgn")
    assert p.visible_types() == ["channel.awgn"]
    html = doc_html("channel.awgn")
    assert "snr_db" in html and "params" in html


def test_property_panel_edits_params(model, qtbot):
    from gui.properties import PropertyPanel
    m = model
    m.open(DEEPJSCC)
    panel = PropertyPanel(m)
    qtbot.addWidget(panel)
    panel.show_block("ch")
    ed = panel.editors["snr_db"]
    assert ed.toggle.isChecked() and ed.expr.text() == "$snr_db"     # expressions open as text
    ed.expr.setText("$snr_db + 3")
    ed.expr.editingFinished.emit()
    assert m.spec.blocks["ch"].params["snr_db"] == "$snr_db + 3"
    ed.toggle.setChecked(False)
    ed.typed.setValue(7.5)                                             # a typed spin box
    assert m.spec.blocks["ch"].params["snr_db"] == 7.5
    panel.bypass.click()
    assert m.spec.blocks["ch"].bypass
    m.undo.undo()
    m.undo.undo()
    m.undo.undo()
    assert m.spec.blocks["ch"].params["snr_db"] == "$snr_db" and not m.spec.blocks["ch"].bypass


def test_drag_from_palette_copy_paste_delete_in_window(qtbot):
    from PySide6.QtCore import QPointF, Qt
    from PySide6.QtGui import QDropEvent
    from gui.window import MainWindow
    w = MainWindow(autosave_ms=10**7)
    qtbot.addWidget(w)
    w.ask = lambda *a: "discard"
    assert w.open_file(TINY)
    pal = w.blocks_palette
    pal.search.setText("testing.noise")
    item = next(pal.tree.topLevelItem(i).child(j) for i in range(pal.tree.topLevelItemCount())
                for j in range(pal.tree.topLevelItem(i).childCount())
                if not pal.tree.topLevelItem(i).child(j).isHidden())
    mime = pal.tree.mimeData([item])                          # what a drag carries
    drop = QDropEvent(QPointF(100, 80), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    w.view.dropEvent(drop)
    assert "noise" in w.model.spec.blocks and "noise" in w.scene.blocks
    w.scene.clearSelection()
    w.scene.blocks["enc"].setSelected(True)
    w.scene.blocks["cx"].setSelected(True)
    w.copy()
    w.paste()
    assert {"enc_2", "cx_2"} <= set(w.model.spec.blocks) and set(w.scene.selected_blocks()) == {"enc_2", "cx_2"}
    w.scene.delete_selected()
    assert "enc_2" not in w.model.spec.blocks
    w.scene.clearSelection()
    w.scene.edges[("cx", "z", "ch", "z")].setSelected(True)   # a selected wire deletes too
    w.scene.delete_selected()
    assert "cx.z -> ch.z" not in [str(c) for c in w.model.spec.connections]
    assert any("required input 'z'" in p for p in w.model.block_problems("ch"))
    w.model.undo.undo()
    assert "cx.z -> ch.z" in [str(c) for c in w.model.spec.connections] and not w.model.block_problems("ch")
