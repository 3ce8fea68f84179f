"""Help → Live demo: train a small DeepJSCC once, then PSNR follows the SNR slider live."""
from pathlib import Path

import pytest

from gui_support import gui_state, window  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.gui
TIMEOUT_MS = 300_000


def live_psnr(qtbot, w, snr: float, frames: int = 6) -> float:
    curves = w.views["Loss / PSNR"]
    w.control.set_value(snr, "snr_db")
    qtbot.waitUntil(lambda: sum(r.get("snr_db") == snr for r in curves.live) >= frames, timeout=TIMEOUT_MS)
    vals = [r["psnr"] for r in curves.live if r.get("snr_db") == snr]
    return sum(vals) / len(vals)


def test_demo_trains_once_then_goes_live(window, qtbot):
    from gui import demo
    w = window
    tiny = {"steps": 4, "batch": 4, "filters": 8, "eval_images": 8}
    worker = w.start_demo(tiny, frame_interval=0.0)
    assert worker.mode == "train"
    qtbot.waitUntil(lambda: w.run_panel.running and w.run_panel.worker.mode == "live inference",
                    timeout=TIMEOUT_MS)
    assert demo.trained(tiny) and w.run_panel.worker.checkpoint == str(demo.demo_dir() / "checkpoints" / "last.pt")
    assert not w.model.dirty
    w.run_panel.stop_and_wait()
    again = w.start_demo(tiny, frame_interval=0.0)                  # second time: no training
    assert again.mode == "live inference"
    w.run_panel.stop_and_wait()


@pytest.mark.slow
def test_demo_psnr_follows_the_snr_slider(window, qtbot):
    w = window
    w.start_demo(frame_interval=0.0)                                 # the real demo: ~30 s of training
    qtbot.waitUntil(lambda: w.run_panel.running and w.run_panel.worker.mode == "live inference",
                    timeout=TIMEOUT_MS)
    low, high = live_psnr(qtbot, w, 0.0), live_psnr(qtbot, w, 20.0)
    print(f"demo live PSNR: {low:.2f} dB at 0 dB SNR, {high:.2f} dB at 20 dB SNR")
    assert high > low + 2.0
