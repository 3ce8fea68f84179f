"""What the GUI's live views cost: the same run headless and with every view open.

    python bench/gui_overhead.py [--steps 300] [--batch 16] [--filters 16] [--reps 3] [--threads 1]

Runs graphs/deepjscc_awgn.yaml (smoke preset with ``--steps`` training steps at
``--batch`` and ``--filters``, then the evaluation sweep: seconds, not minutes)
alternately (a) headless: ``Runner.run()`` with no tap subscribers, and (b) as the
GUI runs it: a RunWorker thread with all six live views shown at once
(not tabbed), fed through the TapBridge, while the Qt event loop draws them. Runs are
interleaved so machine load drifts hit both alike. Prints wall times and the ratio of
medians and of minima, and the ratio of process CPU time (all threads, so the GUI
thread's drawing counts, while other programs' load does not: the steadier number on
a shared machine). The target is <= 1.10 (views may cost at most 10% extra).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
GRAPH = ROOT / "graphs" / "deepjscc_awgn.yaml"


def headless(overrides: dict, out: Path) -> tuple[float, float]:
    from flowgraph.graph import load_graph
    from flowgraph.run import Runner
    r = Runner(load_graph(GRAPH), preset="smoke", overrides=overrides, out=out, quiet=True)
    t0, c0 = time.perf_counter(), time.process_time()
    r.run()
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    r.close()
    return dt, cpu


def with_views(overrides: dict, out: Path, app, views, bridge) -> tuple[float, float, int, int]:
    from PySide6.QtCore import QEventLoop, Qt

    from flowgraph.taps import TapHub
    from gui.worker import RunWorker
    hub = TapHub()
    bridge.attach(hub)
    for v in views:
        v.clear()
    w = RunWorker(GRAPH.read_text(), str(GRAPH), hub, mode="train + evaluate", preset="smoke",
                  overrides=overrides, out=out)
    # the worker times the same span as headless(): train + evaluate, not building the blocks
    marks = {}
    w.runStarted.connect(lambda _o: marks.update(t0=time.perf_counter(), c0=time.process_time()),
                         Qt.DirectConnection)
    loop = QEventLoop()                       # as in the app: the GUI thread sleeps until events
    w.finished.connect(loop.quit)
    w.start()
    loop.exec()
    t1, c1 = time.perf_counter(), time.process_time()
    app.processEvents()
    bridge.flush()
    bridge.detach()
    return (t1 - marks.get("t0", t1), c1 - marks.get("c0", c1), sum(v.updates for v in views),
            sum(v.draws for v in views))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--filters", type=int, default=16)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (0: torch's default); 1 (default) is steadier on a busy machine")
    args = ap.parse_args(argv)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)

    from PySide6.QtWidgets import QApplication
    app = QApplication.instance() or QApplication([])
    from gui.model import EditorModel
    from gui.tapbridge import TapBridge
    from gui.views import ALL_VIEWS
    model = EditorModel()
    model.open(GRAPH)
    bridge = TapBridge()
    views = []
    for i, cls in enumerate(ALL_VIEWS):              # all shown at once: every view draws
        v = cls(model)
        v.resize(640, 360)
        v.move(40 * i, 30 * i)
        v.show()
        for name, interval in v.wanted().items():
            bridge.watch(name, v.on_tap, interval)
        views.append(v)
    app.processEvents()

    tmp = Path(tempfile.mkdtemp(prefix="semflow-guibench-"))
    overrides = {"steps": args.steps, "batch": args.batch, "filters": args.filters}
    headless(dict(overrides, steps=2), tmp / "warm")    # imports, dataset cache, first-call costs
    wall = {"headless": [], "gui": []}
    cpu = {"headless": [], "gui": []}
    for rep in range(args.reps):
        order = ("headless", "gui") if rep % 2 == 0 else ("gui", "headless")
        for kind in order:
            out = tmp / f"{kind}{rep}"
            if kind == "headless":
                dt, c = headless(overrides, out)
                note = ""
            else:
                dt, c, n, d = with_views(overrides, out, app, views, bridge)
                note = f"  ({n} tap deliveries, {d} redraws)"
            wall[kind].append(dt)
            cpu[kind].append(c)
            print(f"rep {rep}: {kind:8s} wall {dt:6.2f} s  cpu {c:6.2f} s{note}", flush=True)
    med = {k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in wall}
    r_wall = med["gui"][0] / med["headless"][0]
    r_min = min(wall["gui"]) / min(wall["headless"])
    r_cpu = med["gui"][1] / med["headless"][1]
    print(f"\nsmoke preset with {overrides}, reps={args.reps}, threads={args.threads or 'default'}")
    print(f"wall: headless median {med['headless'][0]:.2f} s, with all views {med['gui'][0]:.2f} s: "
          f"ratio of medians {r_wall:.3f}, of minima {r_min:.3f}")
    print(f"cpu:  headless median {med['headless'][1]:.2f} s, with all views {med['gui'][1]:.2f} s: "
          f"ratio {r_cpu:.3f}  (process CPU time, all threads: drawing included, other load excluded)")
    print(f"target <= 1.10 -> {'OK' if min(r_wall, r_min, r_cpu) <= 1.10 and r_cpu <= 1.10 else 'OVER'}",
          flush=True)
    for v in views:
        v.close()
        v.deleteLater()
    app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
