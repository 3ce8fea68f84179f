"""Train-stage, evaluation-sweep and preset editors; the running stage on the canvas."""
from pathlib import Path

import pytest

from flowgraph.graph import load_graph

from gui_support import gui_state, window  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.gui
DEEPJSCC = ROOT / "graphs" / "deepjscc_awgn.yaml"
TIMEOUT_MS = 120_000


def test_loss_is_validated_while_typing(window):
    from gui.stages import check_loss
    w = window
    assert w.open_file(DEEPJSCC)
    m = w.model
    assert check_loss(m, "mse(dec.image, src.image)") is None
    assert check_loss(m, "mse(dec.img, src.image)") == "block 'dec' has no output 'img' (outputs: image)"
    assert check_loss(m, "mse(nope.image, src.image)") == "no block 'nope' in this graph"
    assert check_loss(m, "mze(dec.image, src.image)").startswith("unknown loss function 'mze'")
    ed = w.stage_editor
    ed.loss.setText("mse(dec.img, src.image)")
    assert "no output 'img'" in ed.loss_msg.text()
    ed.loss.editingFinished.emit()
    assert m.spec.train[0]["loss"] == "mse(dec.image, src.image)"          # a broken loss is not written
    ed.loss.setText("mse(dec.image, src.image) + 0.1 * l1(dec.image, src.image)")
    assert "loss ok" in ed.loss_msg.text()
    ed.loss.editingFinished.emit()
    assert m.spec.train[0]["loss"] == "mse(dec.image, src.image) + 0.1 * l1(dec.image, src.image)"


def test_stage_editor_trainable_from_canvas_optimizer_steps(window, tmp_path):
    w = window
    path = tmp_path / "g.yaml"
    path.write_text(DEEPJSCC.read_text())
    assert w.open_file(path)
    m, ed = w.model, w.stage_editor
    w.scene.clearSelection()
    w.scene.blocks["dec"].setSelected(True)
    ed.trainable_from_selection()
    assert m.spec.train[0]["trainable"] == ["dec"]
    ed.opt.setCurrentText("sgd")
    ed.opt.activated.emit(ed.opt.currentIndex())
    ed.lr.setText("0.01")
    ed.lr.editingFinished.emit()
    ed.steps.setText("$steps * 2")
    ed.steps.editingFinished.emit()
    st = m.spec.train[0]
    assert st["optimizer"] == {"type": "sgd", "lr": 0.01} and st["steps"] == "$steps * 2"
    assert st["schedule"] == {"type": "cosine", "min_factor": 0.05}        # keys without a widget stay
    ed.add_stage()
    assert len(m.spec.train) == 2 and m.spec.train[1]["stage"] == "stage2"
    assert any("train stage 'stage2'" in p.message for p in m.problems)     # an empty loss is a problem
    ed.remove_stage()
    m.save()
    assert load_graph(path).train[0]["optimizer"] == {"type": "sgd", "lr": 0.01}
    for _ in range(6):                       # trainable, optimizer, lr, steps, add, remove
        m.undo.undo()
    assert m.spec.train[0]["trainable"] == ["enc", "dec"]


def test_study_editor_sweep_metrics_and_presets(window):
    w = window
    assert w.open_file(DEEPJSCC)
    m, ed = w.model, w.study_editor
    assert ed.sweep.item(0, 0).text() == "snr_db" and ed.sweep.item(0, 1).text() == "[0, 5, 10, 15, 20]"
    ed.sweep.item(0, 1).setText("[0, 10]")
    assert m.spec.evaluate["sweep"] == {"snr_db": [0, 10]}
    ed.sweep.item(0, 1).setText("7")
    assert "must be a list" in ed.msg.text() and m.spec.evaluate["sweep"] == {"snr_db": [0, 10]}
    ed.metrics.item(1).setCheckState(ed.metrics.item(0).checkState().__class__(0))   # untick msssim
    assert m.spec.evaluate["metrics"] == ["psnr"]
    row = [ed.presets.item(r, 0).text() for r in range(ed.presets.rowCount())].index("smoke")
    ed.presets.item(row, 1).setText("{steps: 2, batch: 2}")
    assert m.spec.presets["smoke"] == {"steps": 2, "batch": 2}
    assert w.run_panel.preset.findText("smoke") >= 0


def test_running_stage_is_highlighted_on_the_canvas(window, qtbot):
    w = window
    assert w.open_file(DEEPJSCC)
    seen = []
    w.run_panel.stageProgress.connect(lambda s, f: seen.append((s, {n for n, it in w.scene.blocks.items()
                                                                       if it.running}, f)))
    w.run_panel.start("train + evaluate", "smoke")
    qtbot.waitUntil(lambda: not w.run_panel.running, timeout=TIMEOUT_MS)
    qtbot.wait(50)
    train = [s for s in seen if s[0] == "e2e"]
    assert train and train[-1][1] == {"enc", "dec"} and train[-1][2] == 1.0
    ev = [s for s in seen if s[0] == "eval"]
    assert ev and ev[-1][1] == {"psnr", "msssim"}
    assert seen[-1][0] == "" and not any(it.running for it in w.scene.blocks.values())
