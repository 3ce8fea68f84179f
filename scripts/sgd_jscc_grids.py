"""Image grids for seed 004 (SGD-JSCC), the Figs. 10-13 analogues: the same held-out images at
several eq. SNRs, through VAEJSCC (dm_phase off), SGD-JSCC and optionally ADJSCC, with the
sent and the decoded edge maps.

    .venv/bin/python scripts/sgd_jscc_grids.py --checkpoint RUN/checkpoints/last.pt \
        [--adjscc ADJSCC_RUN/checkpoints/last.pt] [--snr -15 -5 5] [--images 8] \
        [--set VAR=VALUE ...] --out docs/img/sgd_jscc_grid.png

Every row sees the same channel noise for a given SNR (the RNG is reseeded per SNR and
system), so rows differ only by the receiver. One PNG: a column block per SNR.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flowgraph.cli import _parse_set  # noqa: E402
from flowgraph.graph import load_graph  # noqa: E402
from flowgraph.run import Runner  # noqa: E402


def outputs(runner: Runner, data: dict, point: dict, keys: list, seed: int) -> dict:
    sch = runner.scheduler
    sch.eval()
    sch.reset_variables(point)
    torch.manual_seed(seed)
    with torch.inference_mode():
        out = sch(inject={sch.source().name: data})
    return {k: out[k].detach().cpu() for k in keys}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, help="a graphs/sgd_jscc.yaml run's checkpoint")
    ap.add_argument("--graph", default=str(ROOT / "graphs/sgd_jscc.yaml"))
    ap.add_argument("--adjscc", default="", help="a graphs/sgd_jscc_baselines/adjscc.yaml run's checkpoint")
    ap.add_argument("--adjscc-graph", default=str(ROOT / "graphs/sgd_jscc_baselines/adjscc.yaml"))
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--set", action="append", default=[], metavar="VAR=VALUE")
    ap.add_argument("--snr", type=float, nargs="+", default=[-15.0, -5.0, 5.0])
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--first", type=int, default=0, help="index of the first held-out image")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    import tempfile
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tmp = Path(tempfile.mkdtemp(prefix="sgd-grid-"))
    sets = _parse_set(args.set)
    sgd = Runner(load_graph(args.graph), preset=args.preset, overrides=sets, out=tmp / "sgd", quiet=True)
    sgd.load_weights(args.checkpoint)
    adj = None
    if args.adjscc:
        adj = Runner(load_graph(args.adjscc_graph), preset=args.preset, out=tmp / "adj", quiet=True)
        adj.load_weights(args.adjscc)
    src = sgd.scheduler.source()
    batches, seen = [], 0
    for data in src.eval_batches(64):
        batches.append(data)
        seen += len(data["image"])
        if seen >= args.first + args.images:
            break
    data = {k: torch.cat([b[k] for b in batches])[args.first:args.first + args.images] for k in batches[0]}
    rows = ["original", "VAEJSCC", "SGD-JSCC"] + (["ADJSCC"] if adj else []) + ["edges sent", "edges decoded"]
    cols = []
    for i, snr in enumerate(args.snr):
        seed = 1000 + i
        off = outputs(sgd, data, {"snr_db": snr, "dm_phase": "off"}, ["dec.image"], seed)
        on = outputs(sgd, data, {"snr_db": snr}, ["dec.image", "edges.edge", "edec.prob"], seed)
        block = [data["image"], off["dec.image"], on["dec.image"]]
        if adj:
            block.append(outputs(adj, data, {"snr_db": snr}, ["dec.image"], seed)["dec.image"])
        block += [on["edges.edge"].expand(-1, 3, -1, -1), on["edec.prob"].expand(-1, 3, -1, -1)]
        cols.append(block)
    n, h = args.images, data["image"].shape[-1]
    fig, axes = plt.subplots(len(rows), len(args.snr), figsize=(2.2 * n * len(args.snr) / 4, 1.2 * len(rows) * 2.2 * n / 16 + 1),
                             squeeze=False)
    for j, snr in enumerate(args.snr):
        for r, name in enumerate(rows):
            strip = cols[j][r].clamp(0, 1).permute(0, 2, 3, 1).numpy()          # (n, h, w, 3)
            axes[r, j].imshow(np.concatenate(list(strip), axis=1), interpolation="nearest")
            axes[r, j].set_xticks([]), axes[r, j].set_yticks([])
            if j == 0:
                axes[r, j].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
        axes[0, j].set_title(f"eq. SNR {snr:g} dB", fontsize=10)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out} ({len(rows)} rows x {len(args.snr)} SNRs x {n} images of {h} px)")


if __name__ == "__main__":
    main()
