"""Segmentation-mask and beam-pattern views (generic, fed by taps only)."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gui_support import gui_state  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.gui
TIMEOUT_MS = 120_000
sys.path.insert(0, str(ROOT / "scripts"))
from screenshots import MIMO_GRAPH as MIMO  # noqa: E402  (the graph the docs show)


def test_colourise_labels_and_logits_with_the_mfnet_palette():
    from gui.views.segmentation import MFNET_PALETTE, colourise
    labels = torch.tensor([[[0, 1], [2, 8]]])                     # (B=1, H=2, W=2)
    img = colourise(labels)
    assert img.shape == (2, 2, 3)
    assert img[0, 1].tolist() == [64, 0, 128] and img[1, 1].tolist() == MFNET_PALETTE[8].tolist()   # car, bump
    logits = torch.zeros(2, 9, 3, 4)
    logits[:, 2] = 1.0                                            # every pixel "person"
    img = colourise(logits)
    assert img.shape == (3, 4 * 2 + 2, 3) and (img[:, :4] == MFNET_PALETTE[2]).all()
    with pytest.raises(ValueError):
        colourise(torch.zeros(4))


def test_segmentation_view_shows_a_label_tap(qtbot):
    from gui.model import EditorModel
    from gui.views import SegmentationView
    m = EditorModel()
    m.open(ROOT / "graphs" / "lcfsc.yaml")
    v = SegmentationView(m)
    qtbot.addWidget(v)
    m.open(ROOT / "graphs" / "mumimo_ofdm.yaml")
    assert v.sel.findText("dec.logits") < 0 and v.sel.findText("src.label") < 0   # (B, K, C), (B, K): no masks
    m.open(ROOT / "graphs" / "lcfsc.yaml")
    tap = "enc.mask"                                      # any internal tap may carry labels
    v.sel.setCurrentText(tap)
    v.show()
    v.on_tap(tap, torch.randint(0, 9, (2, 6, 5)), {"stage": "eval", "point": {"snr_db": 0}})
    v.draw_now()
    assert v.data[0].shape == (6, 5 * 2 + 2, 3) and "first 4 examples" in v.info.text()
    v.on_tap(tap, torch.zeros(2, 4, dtype=torch.long), {})   # (B, K): not a mask
    v.draw_now()
    assert "needs (B, H, W)" in v.info.text()


def test_beam_pattern_peaks_where_the_beam_points():
    from gui.views.beams import ANGLES, beam_pattern, steering
    for array, n_t, nx in (("ula", 8, None), ("upa", 16, 4)):
        a = steering(n_t, [30.0, -45.0], array, nx)                 # two RF chains, two beams
        f = a.T[None]                                               # (1, N_t, N_RF)
        p = beam_pattern(f, array, nx)
        assert p.shape == (len(ANGLES), 2)
        assert abs(ANGLES[p[:, 0].argmax()] - 30.0) < 0.5 and abs(ANGLES[p[:, 1].argmax()] + 45.0) < 0.5
        assert abs(p.max() - 1.0) < 1e-9                            # unit-norm: |a^H a| = 1 at the peak


def test_beam_view_follows_a_live_tap(qtbot, tmp_path):
    from gui.window import MainWindow
    g = tmp_path / "mimo.yaml"
    g.write_text(MIMO)
    w = MainWindow(out_root=str(tmp_path / "runs"), autosave_ms=10**7)
    w.ask = lambda *a: "discard"
    qtbot.addWidget(w)
    assert w.open_file(g)
    v = w.views["Beam pattern"]
    assert v.sel.currentText() == ""                                # nothing looks like an analog precoder
    v.sel.setCurrentText("ch.h")                                    # (B, N_r, N_t): N_r "antennas", N_t "chains"
    v.sel.activated.emit(v.sel.currentIndex())
    w._watch(v)
    w.view_tabs.setCurrentWidget(v)
    w.show()
    w.run_panel.start("live inference", frame_interval=0.0)
    qtbot.waitUntil(lambda: v.pattern is not None, timeout=TIMEOUT_MS)
    w.run_panel.stop_and_wait()
    assert v.pattern.shape == (361, 4) and np.isfinite(v.pattern).all()
