"""Offscreen screenshots of the GUI for the docs: ``python scripts/screenshots.py``.

Writes PNGs to docs/img/: the editor with graphs/deepjscc_awgn.yaml open, validation
(a refused connection, a block with a problem), the train-stage editor, a hierarchical
block with its sub-graph tab, the window during a smoke run, each live view after it,
live inference steered by the runtime control, the |H| heat map of a small MIMO pilot
graph streaming live, and the segmentation and beam-pattern views fed from taps.

    --steps N     train N steps instead of the smoke preset's 4 (nicer reconstructions)
    --out DIR     where to write the PNGs (default docs/img)
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MIMO_GRAPH = """\
format: 1
name: mimo_ls_pilots
description: LS estimation of a correlated 8x4 flat MIMO channel from DFT pilots (no source; live only)
variables: {snr_db: 10, nt: 4, nr: 8}
blocks:
  pil:  {type: csirs.pilots, params: {nt: $nt, num_pilots: 8}}
  ch:   {type: channel.mimo_flat, params: {nt: $nt, nr: $nr, snr_db: $snr_db, correlation: kronecker,
                                       rho_tx: 0.8, rho_rx: 0.9}}
  est:  {type: estimator.ls}
  nmse: {type: sink.nmse}
connections:
  - pil.pilots -> ch.pilots
  - ch.y_pilots -> est.y_pilots
  - pil.pilots -> est.pilots
  - est.h_hat -> nmse.h_hat
  - ch.h -> nmse.h
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=0, help="training steps (default: the smoke preset's)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "img"))
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)          # a shared 2-core box: spinning OpenMP threads cost 10x
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from PySide6.QtWidgets import QApplication
    app = QApplication.instance() or QApplication([])
    from gui.window import MainWindow

    tmp = Path(tempfile.mkdtemp(prefix="semflow-shots-"))
    w = MainWindow(out_root=str(tmp / "runs"), autosave_ms=10**8)
    w.ask = lambda *a: "discard"
    w.resize(1600, 1000)
    w.show()
    saved = []

    def pump(seconds: float = 0.2):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.01)

    def wait(cond, timeout: float = 600.0):
        end = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > end:
                raise TimeoutError("screenshot script: timed out waiting")
            pump(0.05)

    def shot(widget, name: str):
        pump(0.3)
        for v in w.views.values():             # views redraw lazily (a time budget): catch up
            if v.isVisible():
                v.draw_now()
        pump(0.1)
        path = out / name
        widget.grab().save(str(path))
        saved.append(path)
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")

    # ---- the editor ------------------------------------------------------------------------
    w.open_file(ROOT / "graphs" / "deepjscc_awgn.yaml")
    pump(0.5)
    w.view.fit()
    w.scene.blocks["src"].setSelected(True)
    shot(w, "gui_editor.png")

    # ---- validation: a refused connection and a block with a problem -------------------------
    w.scene.clearSelection()
    w.model.disconnect("src", "image", "msssim", "target")
    src, ch = w.scene.blocks["src"].ports[("image", True)], w.scene.blocks["ch"].ports[("x", False)]
    w.scene.begin_wire(src)
    w.scene.end_wire(ch.anchor())                  # real image into a complex channel: refused
    shot(w.view, "gui_validation.png")
    w.model.undo.undo()
    for note in list(w.scene.notes):               # the refusal's note belongs to that picture only
        w.scene.drop_note(note)

    # ---- the train-stage editor ------------------------------------------------------------
    w.side_tabs.setCurrentWidget(w.stage_editor)
    w.stage_editor.loss.setText("mse(dec.image, src.image) + 0.1 * l1(dec.img, src.image)")
    w.scene.clearSelection()
    for n in w.model.spec.train[0]["trainable"]:
        w.scene.blocks[n].setSelected(True)
    shot(w, "gui_train_editor.png")
    w.stage_editor.show_stage()
    w.side_tabs.setCurrentWidget(w.properties)

    # ---- a hierarchical block and its sub-graph tab ------------------------------------------
    w.open_file(ROOT / "graphs" / "hier" / "deepjscc_awgn.yaml")
    pump(0.3)
    w.view.fit()
    w.scene.clearSelection()
    w.scene.blocks["tx"].setSelected(True)
    w.properties.show_block("tx")
    tab = w.open_subgraph("tx")
    pump(0.3)
    tab.view.fit()
    w.canvas_tabs.setCurrentIndex(0)
    pump(0.2)
    main = w.view.grab()
    w.canvas_tabs.setCurrentWidget(tab)
    pump(0.2)
    sub_img = tab.grab()
    from PySide6.QtGui import QPainter, QPixmap
    both = QPixmap(main.width(), main.height() + sub_img.height() + 6)
    both.fill()
    p = QPainter(both)
    p.drawPixmap(0, 0, main)
    p.drawPixmap(0, main.height() + 6, sub_img)
    p.end()
    both.save(str(out / "gui_hier.png"))
    saved.append(out / "gui_hier.png")
    print("wrote gui_hier.png (the graph, and below it the tab of its tx sub-graph)")
    w.close_subgraph(w.canvas_tabs.indexOf(tab))
    w.open_file(ROOT / "graphs" / "deepjscc_awgn.yaml")
    pump(0.3)

    # ---- a smoke run: the window while it runs, then every live view -------------------------
    overrides = {"steps": args.steps} if args.steps else {}
    w.run_panel.start("train + evaluate", "smoke", overrides=overrides)
    bar = w.run_panel.progress                    # a third of the way through training
    wait(lambda: bar.value() >= max(2, bar.maximum() // 3) or not w.run_panel.running)
    w.view_tabs.setCurrentWidget(w.views["Loss / PSNR"])
    shot(w, "gui_running.png")
    wait(lambda: not w.run_panel.running)
    pump(0.5)
    if w.run_panel.errors:
        print("run failed:", w.run_panel.errors, file=sys.stderr)
        return 1
    names = {"Constellation": "constellation", "Attention / mask": "mask", "Loss / PSNR": "curves",
             "PSNR vs SNR": "sweep", "Images": "images"}
    for title, slug in names.items():
        w.view_tabs.setCurrentWidget(w.views[title])
        shot(w.docks["Live views"], f"gui_view_{slug}.png")

    # ---- live inference steered by the runtime control (weights of the run above) ------------
    w.docks["Runtime control"].raise_()
    w.view_tabs.setCurrentWidget(w.views["Constellation"])
    w.run_panel.start("live inference", overrides=overrides)
    wait(lambda: len(w.views["Loss / PSNR"].live) >= 3)
    w.control.set_value(0.0)                       # drag the SNR down: the cloud spreads
    wait(lambda: any(r.get("snr_db") == 0.0 for r in w.views["Loss / PSNR"].live[-1:]))
    pump(1.0)
    shot(w, "gui_live_control.png")
    w.run_panel.stop()
    wait(lambda: not w.run_panel.running)

    # ---- |H| heat map: a MIMO pilot graph streaming live -------------------------------------
    mimo = tmp / "mimo_ls_pilots.yaml"
    mimo.write_text(MIMO_GRAPH)
    w.open_file(mimo)
    w.view_tabs.setCurrentWidget(w.views["|H| heat map"])
    w.run_panel.start("live inference")
    wait(lambda: w.views["|H| heat map"].updates >= 3)
    pump(0.5)
    shot(w.docks["Live views"], "gui_view_heatmap.png")
    w.run_panel.stop()
    wait(lambda: not w.run_panel.running)

    # ---- segmentation and beam pattern, fed by hand --------------------------------------------
    # no shipped block publishes an analog precoder or a mask yet: each view's tap handler
    # gets what such a tap would deliver (a label map; a DFT-steered 16 x 3 precoder)
    import numpy as np
    import torch
    from gui.views.beams import steering
    seg, beams = w.views["Segmentation"], w.views["Beam pattern"]
    yy, xx = np.mgrid[0:48, 0:64]
    labels = np.zeros((4, 48, 64), np.int64)
    for b in range(4):
        labels[b][(yy - 30 - 2 * b) ** 2 + (xx - 20 - 6 * b) ** 2 < 90] = 1           # car
        labels[b][(abs(xx - 45 + b) < 3) & (yy > 14) & (yy < 40)] = 2                # person
        labels[b][yy > 42] = 4                                                        # curve
        labels[b][(abs(yy - 36) < 2) & (xx > 50)] = 8                                 # bump
    f = steering(16, [-40.0, 10.0, 35.0]).T[None] * np.sqrt(16)                       # (1, 16, 3)
    for tap, view in (("demo.x", seg), ("demo.x", beams)):
        view.sel.addItem("demo.x") if view.sel.findText("demo.x") < 0 else None
        view.sel.setCurrentText(tap)
        view.sel.user_chosen = True
    w.view_tabs.setCurrentWidget(seg)
    seg.on_tap("demo.x", torch.from_numpy(labels), {"stage": "eval", "point": {"snr_db": 10}})
    shot(w.docks["Live views"], "gui_view_segmentation.png")
    w.view_tabs.setCurrentWidget(beams)
    beams.db.setChecked(True)
    beams.on_tap("demo.x", torch.from_numpy(f.astype(np.complex64)), {"stage": "live", "frame": 0})
    shot(w.docks["Live views"], "gui_view_beams.png")
    w.model.undo.clear()
    w.close()
    print(f"{len(saved)} screenshots in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
