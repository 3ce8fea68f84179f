"""Hierarchical blocks, block search, find, wire-drop offers (issue 16: 8 and GRC's features)."""
import shutil
from pathlib import Path

import pytest

from flowgraph.compile import compile_graph
from flowgraph.graph import load_graph

from gui_support import gui_state, window  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.gui
HIER = ROOT / "graphs" / "hier" / "deepjscc_awgn.yaml"
DEEPJSCC = ROOT / "graphs" / "deepjscc_awgn.yaml"


def test_shipped_part_is_used_by_two_graphs():
    users = [p for p in (ROOT / "graphs").rglob("*.yaml") if "graph:../parts/deepjscc_tx.yaml" in p.read_text()]
    assert len(users) >= 2
    part = load_graph(ROOT / "graphs" / "parts" / "deepjscc_tx.yaml")
    assert set(part.ports["inputs"]) == {"image"} and set(part.ports["outputs"]) == {"x"}
    for p in users:
        cg = compile_graph(load_graph(p), preset="smoke")
        assert cg.problems == []
        assert "tx/enc" in cg.blocks and cg.blocks["tx/enc"].params["filters"] == 8   # params passed in


def test_graph_block_ports_params_and_its_tab(window, qtbot):
    w = window
    assert w.open_file(HIER)
    ins, outs = w.model.block_ports("tx")
    assert list(ins) == ["image"] and list(outs) == ["x"]
    assert w.scene.blocks["tx"].is_graph and ("tx", "x", "ch", "x") in w.scene.edges
    tab = w.open_subgraph("tx")
    assert w.canvas_tabs.currentWidget() is tab and set(tab.model.spec.blocks) == {"enc", "pn"}
    assert w.open_subgraph("tx") is tab                               # one tab per file


def test_subgraph_path_is_saved_relative_to_the_including_file(window, tmp_path, monkeypatch):
    shutil.copytree(ROOT / "graphs" / "parts", tmp_path / "lib" / "parts")
    monkeypatch.chdir(tmp_path)
    w = window
    w.model.new_graph()
    name = w.model.add_block("graph:lib/parts/deepjscc_tx.yaml")          # as the palette gives it
    (tmp_path / "deep" / "er").mkdir(parents=True)
    w.model.save(tmp_path / "deep" / "er" / "g.yaml")
    saved = load_graph(tmp_path / "deep" / "er" / "g.yaml")
    assert saved.blocks[name].type == "graph:../../lib/parts/deepjscc_tx.yaml"
    monkeypatch.chdir(ROOT)                                               # works from anywhere
    assert not any("not found" in str(p) for p in compile_graph(load_graph(tmp_path / "deep/er/g.yaml")).problems)


def test_make_graph_block_from_selection(window, tmp_path):
    w = window
    shutil.copy(DEEPJSCC, tmp_path / "g.yaml")
    assert w.open_file(tmp_path / "g.yaml")
    before = compile_graph(w.model.spec, preset="smoke")
    w.scene.clearSelection()
    for n in ("enc", "pn"):
        w.scene.blocks[n].setSelected(True)
    name = w.make_subgraph(tmp_path / "parts" / "tx.yaml")
    m = w.model
    part = load_graph(tmp_path / "parts" / "tx.yaml")
    assert part.ports == {"inputs": {"image": "enc.image"}, "outputs": {"x": "pn.x"}}   # from the cut wires
    assert set(part.variables) == {"c", "filters"}
    assert m.spec.blocks[name].params == {"c": "$c", "filters": "$filters"}
    assert {str(c) for c in m.spec.connections} >= {f"src.image -> {name}.image", f"{name}.x -> ch.x"}
    assert m.spec.train[0]["trainable"] == [name, "dec"]
    assert m.problems == []
    after = compile_graph(m.spec, preset="smoke")
    assert after.problems == [] and len(after.blocks) == len(before.blocks)
    m.undo.undo()                                                          # one step back
    assert {"enc", "pn"} <= set(m.spec.blocks) and name not in m.spec.blocks
    assert m.spec.train[0]["trainable"] == ["enc", "dec"]


def test_fuzzy_block_search_on_double_click_adds_the_block(window):
    from PySide6.QtCore import QPointF
    from gui.search import fuzzy_score
    assert fuzzy_score("awgn", "channel.awgn") > fuzzy_score("awgn", "channel.apply_wgn_x") > 0
    assert fuzzy_score("chawg", "channel.awgn") is not None and fuzzy_score("zz", "channel.awgn") is None
    w = window
    assert w.open_file(DEEPJSCC)
    pop = w.block_search(QPointF(300, 300))
    pop.edit.setText("chawgn")
    assert pop.shown()[0] == "channel.awgn"
    pop.choose_current()
    assert "awgn" in w.model.spec.blocks and w.model.positions()["awgn"] == [300, 300]


def test_find_block_selects_it(window):
    w = window
    assert w.open_file(DEEPJSCC)
    pop = w.find_block()
    pop.edit.setText("awgn")                                           # by type
    assert pop.shown() == ["ch"]
    pop.choose_current()
    assert w.scene.selected_blocks() == ["ch"] and w.properties.block == "ch"


def test_wire_dropped_on_empty_canvas_offers_fitting_blocks(window):
    from PySide6.QtCore import QPointF
    w = window
    assert w.open_file(DEEPJSCC)
    port = w.scene.blocks["pn"].ports[("x", True)]                       # a complex output
    got = []
    w.scene.wireDropped.connect(lambda p, at: got.append((p, at)))
    w.scene.begin_wire(port)
    w.scene.end_wire(QPointF(2000, 900))
    assert got and got[0][0] is port
    pop = w.offer_fitting_blocks(port, QPointF(2000, 900))
    offered = pop.shown()
    assert ("channel.awgn", "x") in offered and not any(t == "sink.psnr" for t, _ in offered)   # real inputs
    pop.edit.setText("rayleigh")
    assert pop.shown()[0][0] == "channel.rayleigh"
    steps = w.model.undo.count()
    pop.choose_current()
    assert "pn.x -> rayleigh.x" in [str(c) for c in w.model.spec.connections]
    assert w.model.undo.count() == steps + 1


def test_a_part_on_its_own_has_no_problem_for_its_exposed_inputs(qtbot):
    from gui.model import EditorModel
    m = EditorModel()
    m.open(ROOT / "graphs" / "parts" / "deepjscc_tx.yaml")
    assert m.problems == []                                 # enc.image is fed by the including graph
    m.spec.ports = {"inputs": {}, "outputs": {"x": "pn.x"}}
    m.revalidate()
    assert any("required input 'image'" in p.message for p in m.problems)
