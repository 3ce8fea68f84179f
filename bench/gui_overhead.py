"""What the GUI's live views cost: the same training headless and with every view open.

    python bench/gui_overhead.py [--batch 64] [--filters 32] [--chunk 20] [--pairs 20] [--threads 1]

Trains graphs/deepjscc_awgn.yaml (the quick preset's model and batch by default) twice at
once, alternating in chunks of ``--chunk`` steps through ``bench/timing.py``:
A = as the GUI runs it: a RunWorker thread with all live views shown at once (not tabbed),
fed through the TapBridge while the GUI thread keeps processing events and drawing;
B = headless: ``Runner.train()`` in a plain thread with no view subscribed.
Both pause at chunk boundaries through a ``train.step`` subscriber (one on each side). The
GUI thread keeps drawing while either side runs, but only A's taps give it anything to draw.
Prints the median ratio A/B of wall and of process CPU time (all threads: drawing counts,
other programs' load does not) with bootstrap 95% CIs, and the verdict against <= 1.10.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
GRAPH = ROOT / "graphs" / "deepjscc_awgn.yaml"
ENDLESS = 10 ** 8

from timing import ChunkedWorker, Gate, interleave, report  # noqa: E402


def graph_text(chunk: int) -> str:
    """The graph with a log step (a train.step row, so a chunk boundary) every ``chunk`` steps."""
    text = GRAPH.read_text()
    marker = "    steps: $steps\n"
    assert marker in text, "graphs/deepjscc_awgn.yaml changed: update bench/gui_overhead.py"
    return text.replace(marker, marker + f"    log_every: {chunk}\n", 1)


def headless_worker(overrides: dict, chunk: int, out: Path) -> ChunkedWorker:
    from flowgraph.graph import loads_graph
    from flowgraph.run import Runner
    r = Runner(loads_graph(graph_text(chunk), str(GRAPH)), preset="smoke", overrides=overrides, out=out,
               quiet=True)

    def target(boundary):
        r.taps.subscribe("train.step", lambda *_: boundary(), min_interval=0.0)
        r.train()
    return ChunkedWorker(target, "headless", on_stop=lambda: setattr(r, "stop_requested", True))


def gui_gate(overrides: dict, chunk: int, out: Path, bridge, app) -> tuple[Gate, object]:
    """A RunWorker (its own QThread) behind a Gate: its train.step subscriber is the boundary."""
    from flowgraph.taps import TapHub
    from gui.worker import RunWorker
    hub = TapHub()
    bridge.attach(hub)
    w = RunWorker(graph_text(chunk), str(GRAPH), hub, mode="train", preset="smoke",
                  overrides=overrides, out=out)
    gate = Gate("gui", on_stop=w.stop, pump=app.processEvents)
    hub.subscribe("train.step", lambda *_: gate.boundary(), min_interval=0.0)
    w.finished.connect(lambda: setattr(gate, "finished", True))
    w.start()
    gate.wait_first_boundary()        # building and the first chunk: untimed
    return gate, w


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--filters", type=int, default=32)
    ap.add_argument("--chunk", type=int, default=20, help="training steps per chunk")
    ap.add_argument("--pairs", type=int, default=20, help="timed chunk pairs at least")
    ap.add_argument("--until-width", type=float, default=None,
                    help="keep sampling until the CPU-ratio CI is narrower than this")
    ap.add_argument("--budget", type=float, default=None, help="seconds at most")
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
    overrides = {"steps": ENDLESS, "batch": args.batch, "filters": args.filters}
    gate, w = gui_gate(overrides, args.chunk, tmp / "gui", bridge, app)
    t = interleave(gate, headless_worker(overrides, args.chunk, tmp / "headless"), pairs=args.pairs,
                   warmup=2, until_width=args.until_width, budget_s=args.budget,
                   progress=lambda m: print(m, flush=True))
    w.wait(60_000)
    app.processEvents()
    print(f"batch {args.batch}, filters {args.filters}, {args.chunk} steps per chunk, "
          f"threads {args.threads or 'default'}; {sum(v.updates for v in views)} tap deliveries, "
          f"{sum(v.draws for v in views)} redraws")
    print(report(t, "with all views (A) / headless (B)", 1.10))
    bridge.detach()
    for v in views:
        v.close()
        v.deleteLater()
    app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
