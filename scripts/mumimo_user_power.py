"""How a trained seed 003 model shares its transmit power between the K users of a frame.

Seed 003 normalizes the encoder output of a frame's K users jointly (``channel.power_norm``
over (K, D)), so the energy per symbol of user k, e_k = mean_d |x_kd|^2, only satisfies
mean_k e_k = 1: one user may take most of it. This script evaluates a run's checkpoint on
its held-out split, listens to the tap ``pn.x`` (the normalized symbols, (B, K, D)) and
prints the distribution of the users' energies: the share of the strongest and the
weakest user of each frame, and how often a user gets less than a tenth of an equal share.

    .venv/bin/python scripts/mumimo_user_power.py RUN_DIR [--snr 0] [--scenario umi]

RUN_DIR is a finished ``semflow run`` of graphs/mumimo_ofdm.yaml (or an ablation file):
its graph.yaml, run.json (preset and --set values) and checkpoints/last.pt are used.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flowgraph.graph import load_graph  # noqa: E402
from flowgraph.run import Runner  # noqa: E402
from flowgraph.taps import TapHub  # noqa: E402


def user_energies(run_dir: Path, points: list[dict]) -> torch.Tensor:
    """Energy per symbol of every user, (frames, K), at the given sweep points."""
    info = json.loads((run_dir / "run.json").read_text())
    hub, seen = TapHub(), []
    hub.subscribe("pn.x", lambda name, x, meta: seen.append(x.abs().square().mean(-1)), min_interval=0.0)
    with tempfile.TemporaryDirectory() as tmp:
        # the run's graph.yaml has its preset and --set values applied already
        r = Runner(load_graph(run_dir / "graph.yaml"), out=Path(tmp) / "run", seed=info.get("seed", 0),
                   taps=hub, quiet=True)
        try:
            r.load_weights(run_dir / "checkpoints" / "last.pt")
            r.evaluate(points=points, write=False)
        finally:
            r.close()
    return torch.cat(seen)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--snr", type=float, default=0.0, help="evaluation SNR [dB] (default 0)")
    ap.add_argument("--scenario", default="umi")
    a = ap.parse_args(argv)
    e = user_energies(a.run_dir, [{"snr_db": a.snr, "scenario": a.scenario}])     # (N, K)
    k = e.shape[1]
    top, low = e.max(1).values, e.min(1).values
    q = torch.tensor([0.1, 0.5, 0.9])
    print(f"{a.run_dir}: {e.shape[0]} frames of K = {k} users at {a.snr:g} dB, {a.scenario}; "
          f"energy per symbol (mean over users = 1)")
    print(f"  strongest user: median {top.median():.2f}, 10/90 % {top.quantile(q[0]):.2f} / {top.quantile(q[2]):.2f}, "
          f"max {top.max():.2f}")
    print(f"  weakest user:   median {low.median():.3f}, 10/90 % {low.quantile(q[0]):.3f} / {low.quantile(q[2]):.3f}")
    print(f"  frames where a user gets < 0.1 (a tenth of an equal share): {(low < 0.1).float().mean():.1%}")
    print(f"  users with < 0.1: {(e < 0.1).float().mean():.1%}; with > 2: {(e > 2).float().mean():.1%}")


if __name__ == "__main__":
    main()
