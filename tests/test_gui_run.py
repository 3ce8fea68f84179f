"""GUI runs: the worker thread, tap-fed live views, runtime control, errors on blocks."""
from pathlib import Path

import pytest

from gui_support import gui_state, window  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.gui
DEEPJSCC = ROOT / "graphs" / "deepjscc_awgn.yaml"
TINY = ROOT / "tests" / "graphs" / "tiny.yaml"
TIMEOUT_MS = 120_000          # the CPU may be shared; the smoke run itself takes seconds


def finish(qtbot, w):
    qtbot.waitUntil(lambda: not w.run_panel.running, timeout=TIMEOUT_MS)
    qtbot.wait(50)                      # let the finished signal and the last flush through


def test_smoke_run_feeds_constellation_psnr_and_image_views(window, qtbot):
    w = window
    assert w.open_file(DEEPJSCC)
    views = w.views
    assert set(views["Constellation"].wanted()) == {"pn.x", "ch.y"}
    assert set(views["Images"].wanted()) == {"src.image", "dec.image"}
    worker = w.run_panel.start("train + evaluate", "smoke")
    assert worker is not None
    qtbot.waitUntil(lambda: views["Constellation"].updates > 0 and views["Images"].updates > 0,
                    timeout=TIMEOUT_MS)
    finish(qtbot, w)
    assert w.run_panel.errors == []
    curves, sweep = views["Loss / PSNR"], views["PSNR vs SNR"]
    assert len(curves.rows) == 4 and all("psnr" in r for _, r in curves.rows)   # every smoke step
    assert [r["snr_db"] for r in sweep.rows] == [0, 5, 10, 15, 20]               # the whole sweep
    assert all(r["psnr"] > 0 for r in sweep.rows)
    z, _info = views["Constellation"].data[1]
    assert z.dtype.kind == "c" and z.size > 0
    # both image taps arrived and render as same-sized grids (the view pairs them only when
    # two separately throttled deliveries come from one frame, which a 4-step run need not give)
    from gui.views.images import image_row
    top, bottom = (image_row(p[0]) for p in views["Images"].pending)
    assert top.shape == bottom.shape and top.ndim == 3
    assert views["Attention / mask"].updates > 0                                # enc.features tap
    assert w.run_panel.result["rows"][0]["psnr"] == sweep.rows[0]["psnr"]
    assert (w.run_panel.last_run / "metrics.json").is_file()
    assert "[eval] 5/5" in w.run_panel.log.toPlainText()


def test_live_inference_follows_the_runtime_control(window, qtbot):
    w = window
    assert w.open_file(TINY)
    w.control.add_control("sigma")                 # a second knob next to the default one
    curves = w.views["Loss / PSNR"]
    worker = w.run_panel.start("live inference", "smoke", frame_interval=0.0)
    qtbot.waitUntil(lambda: len(curves.live) >= 3, timeout=TIMEOUT_MS)
    quiet = [r["err"] for r in curves.live]
    w.control.set_value(30.0, "sigma")             # the slider's spin box: sigma 0.1 -> 30
    qtbot.waitUntil(lambda: any(r.get("sigma") == 30.0 for r in curves.live), timeout=TIMEOUT_MS)
    n = len(curves.live)
    qtbot.waitUntil(lambda: len(curves.live) >= n + 3, timeout=TIMEOUT_MS)
    noisy = [r["err"] for r in curves.live if r.get("sigma") == 30.0]
    assert sum(noisy) / len(noisy) > 20 * sum(quiet) / len(quiet)    # the error follows the noise
    w.run_panel.pause_btn.setChecked(True)
    qtbot.wait(300)
    paused_at = len(curves.live)
    qtbot.wait(300)
    assert len(curves.live) <= paused_at + 1
    w.run_panel.pause_btn.setChecked(False)
    w.run_panel.stop()
    finish(qtbot, w)
    assert worker.stopped and w.run_panel.errors == []


def test_run_error_is_shown_on_the_block(window, qtbot):
    w = window
    assert w.open_file(TINY)
    m = w.model
    m.add_block("testing.nan_after", "bad", params={"at": 2})
    assert m.connect("rx", "x", "bad", "x")[0] and m.connect("bad", "x", "dec", "x")[0]
    assert m.problems == []
    w.run_panel.start("train", "smoke")
    finish(qtbot, w)
    (message, block), = w.run_panel.errors
    assert block == "bad" and "non-finite" in message
    assert m.runtime_errors["bad"] == message
    item = w.scene.blocks["bad"]
    assert item.error == message and message in item.toolTip()


def test_stop_during_training(window, qtbot):
    w = window
    assert w.open_file(TINY)
    from gui.run_panel import NO_PRESET
    w.model.set_variable("steps", 10**6)
    worker = w.run_panel.start("train + evaluate", NO_PRESET)
    qtbot.waitUntil(lambda: w.run_panel.progress.value() > 0, timeout=TIMEOUT_MS)
    w.run_panel.stop()
    finish(qtbot, w)
    assert worker.stopped and w.run_panel.errors == [] and w.run_panel.result is None
    assert (w.run_panel.last_run / "checkpoints" / "last.pt").is_file()   # stop leaves a checkpoint


def test_image_view_pairs_an_original_only_with_its_own_reconstruction(qtbot):
    """The two image taps are throttled apart: a pair is shown only from one frame."""
    import torch
    from gui.model import EditorModel
    from gui.views.images import ImageGridView
    m = EditorModel()
    m.open(DEEPJSCC)
    v = ImageGridView(m)
    qtbot.addWidget(v)
    top, bottom = v.top.currentText(), v.bottom.currentText()
    x = torch.rand(2, 3, 8, 8)
    v.on_tap(top, x, {"stage": "train", "step": 1, "frame": 1})
    v.on_tap(bottom, x, {"stage": "train", "step": 2, "frame": 2})
    assert v.data == [None, None]                         # different frames: nothing shown
    v.on_tap(top, x, {"stage": "train", "step": 2, "frame": 2})
    assert v.data[0] is not None and v.data[0][0].shape == v.data[1][0].shape
