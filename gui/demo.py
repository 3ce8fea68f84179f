"""Help → Live demo: DeepJSCC over AWGN whose PSNR follows the SNR slider.

The first time, a small DeepJSCC (graphs/deepjscc_awgn.yaml, 16 filters) is trained for
``DEMO["steps"]`` steps over SNRs drawn uniformly in [0, 20] dB (under a minute of CPU time;
3 minutes of wall time on a two-core box shared with other jobs); its run folder is kept in
the per-user state folder and reused afterwards.
Then live inference starts, with the runtime control on ``snr_db``.
"""
from __future__ import annotations

import json
from pathlib import Path

from .model import state_dir

GRAPH = Path(__file__).resolve().parents[1] / "graphs" / "deepjscc_awgn.yaml"
PRESET = "smoke"
DEMO = {"steps": 1200, "batch": 16, "filters": 16, "lr": 2.0e-3, "train_snr_db": "uniform(0, 20)",
        "eval_images": 64}


def demo_dir() -> Path:
    return state_dir() / "demo-deepjscc"


def trained(overrides: dict) -> bool:
    """A finished demo training with these settings is on disk."""
    d = demo_dir()
    try:
        same = json.loads((d / "demo.json").read_text(encoding="utf-8")) == overrides
    except (OSError, ValueError):
        return False
    return same and (d / "checkpoints" / "last.pt").is_file()


def start_demo(window, overrides: dict | None = None, **live_kwargs):
    """Open the graph, train once if needed, then stream live inference (returns at once)."""
    overrides = dict(DEMO if overrides is None else overrides)
    if not window.open_file(GRAPH):
        return None
    panel, d = window.run_panel, demo_dir()

    def live():
        panel.last_run, panel.last_run_graph = d, (window.model.spec.name, PRESET)
        window.docks["Runtime control"].raise_()
        window.view_tabs.setCurrentWidget(window.views["Loss / PSNR"])
        return panel.start("live inference", PRESET, overrides=overrides, **live_kwargs)

    if trained(overrides):
        return live()

    def done():
        panel.runFinished.disconnect(done)
        if not panel.errors and not panel.worker.stopped:
            (d / "demo.json").write_text(json.dumps(overrides), encoding="utf-8")
            live()

    d.parent.mkdir(parents=True, exist_ok=True)
    panel.runFinished.connect(done)
    window.statusBar().showMessage("live demo: training a small DeepJSCC once (under a minute of CPU time)…", 60_000)
    return panel.start("train", PRESET, out=d, overrides=overrides)
