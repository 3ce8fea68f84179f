"""Runs as first-class objects: history, open run, overlay; the sweep view's series."""
import json
from pathlib import Path

import pytest

from gui_support import gui_state  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.gui
DEEPJSCC = ROOT / "graphs" / "deepjscc_awgn.yaml"
TIMEOUT_MS = 120_000


def fake_run(root: Path, name: str, graph_text: str, rows, sweep=("snr_db",)):
    d = root / name
    d.mkdir(parents=True)
    (d / "graph.yaml").write_text(graph_text)
    (d / "metrics.json").write_text(json.dumps({"graph": name, "preset": "smoke", "metrics": ["psnr"],
                                                "sweep": list(sweep), "rows": rows}))
    (d / "run.json").write_text(json.dumps({"name": name, "preset": "smoke", "started": "2026-01-01T00:00:00"}))
    return d


def test_sweep_series_one_per_scenario():
    from gui.runs import sweep_series
    rows = [{"snr_db": s, "scenario": sc, "psnr": s + k, "psnr_ci95": 0.1}
            for k, sc in enumerate(["umi", "uma", "rma"]) for s in (-7, 0, 7)]
    series = sweep_series(rows, ["snr_db", "scenario"], "psnr")
    assert list(series) == ["scenario=umi", "scenario=uma", "scenario=rma"]
    assert series["scenario=uma"] == [(-7.0, -6.0, -6.1, -5.9), (0.0, 1.0, 0.9, 1.1), (7.0, 8.0, 7.9, 8.1)]
    assert list(sweep_series(rows, ["scenario", "snr_db"], "psnr")) == list(series)   # x: the numeric one


def test_sweep_view_draws_a_series_per_scenario(qtbot):
    from gui.model import EditorModel
    from gui.views import SweepView
    m = EditorModel()
    m.open(ROOT / "graphs" / "mumimo_ofdm.yaml")
    v = SweepView(m)
    qtbot.addWidget(v)
    v.metric_box.setCurrentText("psnr")
    for sc in ("umi", "uma", "rma"):
        for s in (-7, 0, 7):
            v.on_tap("eval.point", {"snr_db": s, "scenario": sc, "psnr": 20.0 + s, "psnr_ci95": 0.5}, {})
    v.show()
    v.draw_now()
    curves = [it for it in v.items if hasattr(it, "xData")]
    assert len(curves) == 3 and all(list(c.xData) == [-7, 0, 7] for c in curves)   # no zig-zag


def test_run_history_open_run_and_overlay(qtbot, tmp_path):
    from gui.window import MainWindow
    runs = tmp_path / "runs"
    text = DEEPJSCC.read_text()
    a = fake_run(runs, "a", text, [{"snr_db": s, "psnr": 20 + s, "psnr_ci95": 0.2} for s in (0, 10)])
    b = fake_run(runs, "b", text, [{"snr_db": s, "psnr": 22 + s, "psnr_ci95": 0.2} for s in (0, 10)])
    w = MainWindow(out_root=str(runs), autosave_ms=10**7)
    w.ask = lambda *x: "discard"
    qtbot.addWidget(w)
    hist = w.run_history
    assert {r.path.name for r in hist.runs} == {"a", "b"}
    assert w.open_run(a)
    assert w.model.path == a / "graph.yaml" and w.run_panel.last_run == a
    sweep = w.views["PSNR vs SNR"]
    assert [r["psnr"] for r in sweep.rows] == [20, 30]
    for i, r in enumerate(hist.runs):
        hist.table.item(i, 0).setCheckState(hist.table.item(i, 0).checkState().__class__(2))
    hist.overlayRequested.emit(hist.checked())
    assert set(sweep.overlays) == {a.as_posix(), b.as_posix()}
    sweep.show()
    sweep.draw_now()
    ys = sorted(tuple(c.yData) for c in sweep.items if hasattr(c, "yData"))
    assert (22.0, 32.0) in ys and ys.count((20.0, 30.0)) == 2       # live rows of a + overlays of a, b


def test_a_finished_gui_run_appears_in_the_history(qtbot, tmp_path):
    from gui.window import MainWindow
    w = MainWindow(out_root=str(tmp_path / "runs"), autosave_ms=10**7)
    w.ask = lambda *x: "discard"
    qtbot.addWidget(w)
    assert w.open_file(ROOT / "tests" / "graphs" / "tiny.yaml")
    w.run_panel.start("train + evaluate", "smoke")
    qtbot.waitUntil(lambda: not w.run_panel.running, timeout=TIMEOUT_MS)
    qtbot.wait(50)
    assert [r.path for r in w.run_history.runs] == [w.run_panel.last_run]
