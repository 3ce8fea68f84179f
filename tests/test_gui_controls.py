"""Variable blocks on the canvas and runtime controls (range / chooser / check box, several at once)."""
from pathlib import Path

import pytest

from flowgraph.graph import load_graph

from gui_support import gui_state, window  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.gui
TINY = ROOT / "tests" / "graphs" / "tiny.yaml"
TIMEOUT_MS = 120_000


def test_default_controls_and_widget_kinds(qtbot):
    from gui.model import EditorModel
    from gui.views.control import ControlView, default_control
    m = EditorModel()
    m.open(ROOT / "graphs" / "mumimo_ofdm.yaml")
    v = ControlView(m)
    qtbot.addWidget(v)
    assert [c.var for c in v.controls] == ["snr_db"] and v.controls[0].kind == "range"
    assert (v.controls[0].lo, v.controls[0].hi) == (-7.0, 7.0)                 # span of the sweep
    assert default_control(m, "scenario") == {"var": "scenario", "widget": "chooser",
                                              "options": ["umi", "uma", "rma"]}
    v.add_control("scenario")
    v.add_control("user_correlation")
    m.set_variable("flag", True)
    v.add_control("flag")
    assert [(c.var, c.kind) for c in v.controls] == [("snr_db", "range"), ("scenario", "chooser"),
                                                     ("user_correlation", "range"), ("flag", "check")]
    got = []
    v.variableChanged.connect(lambda k, val: got.append((k, val)))
    v.set_value("rma", "scenario")
    v.control("flag").check.setChecked(False)
    v.control("snr_db").slider.setValue(200)                                    # the slider's far end
    assert got == [("scenario", "rma"), ("flag", False), ("snr_db", 7.0)]
    m.undo.undo()                                                               # adding is undoable
    assert v.control("flag") is None


def test_controls_and_variable_blocks_are_saved_with_the_graph(window, tmp_path):
    from PySide6.QtCore import QPointF
    w = window
    path = tmp_path / "g.yaml"
    path.write_text(TINY.read_text())
    assert w.open_file(path)
    w.control.add_control("sigma")
    w.scene.add_variable_block("sigma", QPointF(-200, 200))
    assert "sigma" in w.scene.variables and w.scene.variables["sigma"].text() == "sigma = 0.1"
    w.model.set_variable("sigma", 0.25)
    assert w.scene.variables["sigma"].text() == "sigma = 0.25"
    w.model.save()
    g = load_graph(path)
    assert g.gui["variable_blocks"] == {"sigma": [-200, 200]}
    assert [c["var"] for c in g.gui["controls"]] == ["sigma"]


def test_several_controls_steer_a_live_run_at_once(window, qtbot):
    w = window
    assert w.open_file(TINY)
    w.control.add_control("sigma")
    curves = w.views["Loss / PSNR"]
    w.run_panel.start("live inference", "smoke", frame_interval=0.0)
    qtbot.waitUntil(lambda: len(curves.live) >= 2, timeout=TIMEOUT_MS)
    w.control.set_value(5.0, "sigma")
    qtbot.waitUntil(lambda: any(r.get("sigma") == 5.0 for r in curves.live), timeout=TIMEOUT_MS)
    w.run_panel.stop_and_wait()
