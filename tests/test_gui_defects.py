"""Regression tests for the GUI's first-day defects (issue 16, defects 1-6 and 9-10)."""
import difflib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flowgraph.graph import load_graph

from gui_support import gui_state, window  # noqa: F401  (fixtures)

from graph_checks import shipped_graphs

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.gui
GRAPHS = [p.relative_to(ROOT / "graphs").as_posix() for p in shipped_graphs()]
TINY = ROOT / "tests" / "graphs" / "tiny.yaml"
TIMEOUT_MS = 120_000


def changed_lines(a: str, b: str) -> list[str]:
    return [ln for ln in difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=0)
            if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]


# ---- 1: list values in the Variables and Properties panels ---------------------------------
def test_list_values_show_in_variables_and_properties(qtbot):
    from gui.model import EditorModel
    from gui.properties import PropertyPanel
    from gui.values import parse_text
    from gui.variables import VariablesPanel
    m = EditorModel()
    for graph in ("lcfsc.yaml", "mumimo_ofdm.yaml", "cfsc.yaml", "witt_mimo.yaml", "baselines/djscc_mumimo.yaml"):
        m.open(ROOT / "graphs" / graph)
        panel = VariablesPanel(m)
        qtbot.addWidget(panel)
        rows = panel.table.rowCount()
        assert rows == len(m.spec.variables), graph                       # lcfsc had 10 of 38
        for r in range(rows):
            name, text = panel.table.item(r, 0).text(), panel.table.item(r, 1).text()
            assert parse_text(text) == m.spec.variables[name], (graph, name, text)
    m.open(ROOT / "graphs" / "lcfsc.yaml")
    props = PropertyPanel(m)
    qtbot.addWidget(props)
    props.show_block("src")                 # batch: $batch comes after list-valued params elsewhere
    ed = props.editors["batch"]
    assert ed.toggle.isChecked() and ed.expr.text() == "$batch"
    props.show_block("unmap")               # shape: [$tokens, $c_out], a list of expressions
    assert parse_text(props.editors["shape"].current_text()) == ["$tokens", "$c_out"]
    assert not m.dirty                      # showing values never writes them


# ---- 2: saving keeps comments and layout; one edit = one changed line -----------------------
@pytest.mark.parametrize("graph", GRAPHS)
def test_edit_one_param_and_save_changes_one_line(graph, tmp_path, qtbot):
    from gui.model import EditorModel
    shutil.copytree(ROOT / "graphs", tmp_path / "graphs")          # sub-graph paths resolve the same
    path = tmp_path / "graphs" / graph
    before = path.read_text()
    m = EditorModel()
    m.open(path)
    block, key = next((n, k) for n, b in m.spec.blocks.items() for k in b.params)
    m.set_param(block, key, 12.5)
    m.save()
    after = path.read_text()
    lines = changed_lines(before, after)
    assert len(lines) == 2 and lines[0].startswith("-") and lines[1].startswith("+"), "\n".join(lines)
    assert "12.5" in lines[1] and before.count("#") == after.count("#")
    assert load_graph(path).blocks[block].params[key] == 12.5
    m.move_blocks({block: (1234, 567)})                             # a move changes the positions line
    m.save()
    assert len(changed_lines(after, path.read_text())) == 2


def test_save_keeps_comments_and_flow_style_of_untouched_parts(tmp_path, qtbot):
    from gui.model import EditorModel
    path = tmp_path / "mumimo_ofdm.yaml"
    shutil.copy(ROOT / "graphs" / "mumimo_ofdm.yaml", path)
    before = path.read_text()
    m = EditorModel()
    m.open(path)
    m.move_blocks({"enc": (10, 20)})
    m.set_variable("alpha", 0.5)
    m.add_block("sink.psnr", "psnr2")
    assert m.connect("dec", "image", "psnr2", "pred")[0]
    m.save()
    after = path.read_text()
    lines = changed_lines(before, after)
    assert "+  alpha: 0.5                         # RZF regularization alpha (x sigma^2, eq. 7); 0 = ZF" in lines
    assert "+  - dec.image -> psnr2.pred" in lines
    assert len([ln for ln in lines if ln.startswith("-")]) == 2     # the alpha line and the positions line
    assert [ln for ln in before.splitlines() if "#" in ln and "alpha" not in ln] == \
           [ln for ln in after.splitlines() if "#" in ln and "alpha" not in ln]


# ---- 3: a typed decimal in a float spin box -----------------------------------------------
def test_float_spin_box_takes_a_typed_decimal(qtbot):
    from PySide6.QtCore import Qt
    from gui.model import EditorModel
    from gui.properties import PropertyPanel
    m = EditorModel()
    m.open(ROOT / "graphs" / "deepjscc_awgn.yaml")
    panel = PropertyPanel(m)
    qtbot.addWidget(panel)
    panel.show()
    panel.show_block("ch")
    ed = panel.editors["snr_db"]
    ed.toggle.setChecked(False)
    box = ed.typed
    box.lineEdit().selectAll()
    qtbot.keyClicks(box.lineEdit(), "12.5")
    assert m.spec.blocks["ch"].params["snr_db"] == "$snr_db"         # nothing committed while typing
    qtbot.keyClick(box.lineEdit(), Qt.Key_Return)
    assert m.spec.blocks["ch"].params["snr_db"] == 12.5
    assert m.undo.count() == 1


# ---- 4: autosave in the state folder, gone after save / discard, never during a dialog -------
def test_autosave_lives_in_the_state_folder_and_goes_on_save_as_and_discard(window, tmp_path):
    from gui.model import autosave_path, recovery_for, state_dir
    w = window
    src = tmp_path / "g.yaml"
    shutil.copy(TINY, src)
    assert w.open_file(src)
    w.model.set_variable("sigma", 0.3)
    a = w.model.autosave()
    assert a == autosave_path(src) and a.parent.parent == state_dir() == tmp_path / "state"
    assert not list(tmp_path.glob("*.autosave"))                       # nothing next to the graph
    w.model.save(tmp_path / "other.yaml")                               # Save as
    assert recovery_for(src) is None and recovery_for(tmp_path / "other.yaml") is None
    asked = []
    w.ask = lambda *a: asked.append(a[0]) or "discard"
    w.model.set_variable("sigma", 0.9)
    w.model.autosave()
    assert w.open_file(src)                                             # Discard the edits of other.yaml
    assert asked == ["Unsaved changes"]
    assert recovery_for(tmp_path / "other.yaml") is None
    assert w.open_file(tmp_path / "other.yaml")                          # no "may have crashed" prompt
    assert asked == ["Unsaved changes"]


def test_autosave_never_fires_during_a_modal_dialog(window, qtbot):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QMessageBox
    from gui.model import recovery_for
    w = window
    assert w.open_file(TINY)
    w.model.set_variable("sigma", 0.4)
    box = QMessageBox(QMessageBox.Question, "Unsaved changes", "Save?", QMessageBox.Discard, w)
    fired = []

    def during():
        fired.append(True)
        w._autosave()                           # the timer fires while the question is open
        box.done(0)

    QTimer.singleShot(50, during)
    box.exec()
    assert fired and recovery_for(TINY) is None
    w._autosave()
    assert recovery_for(TINY) is not None
    w.model.discard_changes()
    assert recovery_for(TINY) is None


# ---- 5 and 6: a run belongs to its graph; views forget old data ------------------------------
def test_opening_another_graph_stops_the_run_and_clears_the_views(window, qtbot):
    from gui.run_panel import NO_PRESET
    w = window
    assert w.open_file(TINY)
    w.model.set_variable("steps", 10**6)
    curves = w.views["Loss / PSNR"]
    worker = w.run_panel.start("train", NO_PRESET)
    qtbot.waitUntil(lambda: len(curves.rows) > 0, timeout=TIMEOUT_MS)
    asked = []
    w.ask = lambda title, *a: asked.append(title) or "cancel"
    assert not w.open_file(ROOT / "graphs" / "deepjscc_awgn.yaml")        # keep running
    assert w.run_panel.running and asked == ["A run is in progress"]
    w.ask = lambda title, *a: asked.append(title) or ("yes" if title.startswith("A run") else "discard")
    assert w.open_file(ROOT / "graphs" / "deepjscc_awgn.yaml")
    assert not w.run_panel.running and worker.isFinished() and worker.stopped
    assert curves.rows == [] and curves.updates == 0                         # stale data gone
    qtbot.wait(400)                                                          # nothing arrives later
    assert curves.rows == [] and w.control.readout.text() == ""


def test_changing_a_views_tap_clears_it(window, qtbot):
    w = window
    assert w.open_file(ROOT / "graphs" / "deepjscc_awgn.yaml")
    view = w.views["Constellation"]
    import torch
    view.on_tap("pn.x", torch.randn(4, 8, dtype=torch.complex64), {"stage": "e2e", "step": 1})
    assert view.data[0] is not None
    i = view.left.findText("ch.y")
    view.left.setCurrentIndex(i)
    assert view.data == [None, None]


# ---- 9 and 10 ---------------------------------------------------------------------------
def test_problems_list_wraps_long_lines(window):
    w = window
    assert w.open_file(TINY)
    w.model.set_param("enc", "n", "$nope_" + "x" * 200)
    assert w.problems.count() > 0 and w.problems.wordWrap()
    assert w.problems.item(0).toolTip() == w.problems.item(0).text()


def test_gui_prints_the_xcb_hint_when_the_platform_plugin_fails(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="xcb", DISPLAY=":987654", SEMFLOW_STATE_DIR=str(tmp_path))
    env.pop("WAYLAND_DISPLAY", None)
    r = subprocess.run([sys.executable, "-m", "gui"], env=env, cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode != 0
    hint = [ln for ln in r.stderr.splitlines() if ln.startswith("semflow gui:")]
    assert len(hint) == 1 and "libxcb-cursor0" in hint[0] and "QT_QPA_PLATFORM=offscreen" in hint[0]


def test_run_error_naming_a_block_type_lands_on_its_block(qtbot):
    from gui.model import EditorModel
    m = EditorModel()
    m.open(ROOT / "graphs" / "deepjscc_awgn.yaml")
    m.set_runtime_error(None, "RuntimeError: channel.awgn: expected a complex tensor")
    assert list(m.runtime_errors) == ["ch"]
    m.clear_runtime_errors()
    m.set_runtime_error(None, "ValueError: something about 'dec' went wrong")
    assert list(m.runtime_errors) == ["dec"]


def test_mask_view_opens_on_the_trained_encoders_mask(qtbot):
    from gui.model import EditorModel
    from gui.views import MaskView
    m = EditorModel()
    m.open(ROOT / "graphs" / "lcfsc.yaml")
    v = MaskView(m)
    qtbot.addWidget(v)
    assert v.sel.currentText() == "enc.mask"


def test_pause_shows_its_state_and_stop_is_always_visible(window, qtbot):
    w = window
    assert w.open_file(TINY)
    w.show()
    w.model.set_variable("steps", 10**6)
    from gui.run_panel import NO_PRESET
    w.run_panel.start("train", NO_PRESET)
    assert w.stop_action.isEnabled() and w.pause_action.isEnabled()
    w.docks["Runtime control"].raise_()                      # the Run tab hidden: Stop is still there
    w.pause_action.setChecked(True)
    assert w.run_panel.pause_btn.isChecked() and w.pause_action.text() == "▶ Resume"
    assert w.run_panel.status.text().startswith("paused")
    w.pause_action.setChecked(False)
    w.stop_action.trigger()
    qtbot.waitUntil(lambda: not w.stop_action.isEnabled(), timeout=TIMEOUT_MS)   # after the finished signal
    assert not w.run_panel.running


def test_help_lists_the_keys(window):
    dlg = window.show_help()
    text = dlg.findChild(__import__("PySide6.QtWidgets", fromlist=["QTextBrowser"]).QTextBrowser).toPlainText()
    assert "Ctrl+F" in text and "E / D / B" in text and "Space" in text
    dlg.close()
