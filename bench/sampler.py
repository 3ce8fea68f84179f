"""Seed 004 (SGD-JSCC) sampler cost: K denoising steps against one DeepJSCC decoder pass.

The sampler dominates SGD-JSCC's evaluation. This measures, in one process and alternating
A B A B (so machine drift hits both), the time of one ``decoder.sgd_diffusion`` sample call
(K steps from m = S^-1(d) at the given SNR; with and without the ControlNet edge branch and
classifier-free guidance) and of one ``decoder.deepjscc`` pass over the same batch, and
prints the median ratio and its spread. The models are the graph's quick-preset sizes
(graphs/sgd_jscc.yaml: latent 4 x 8 x 8, DiT width 64, 4 heads, 2 + 2 blocks), untrained: the cost does
not depend on the weights.

    .venv/bin/python bench/sampler.py [--batch 64] [--steps 5 10 20 50] [--reps 7] [--threads 1]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import blocks  # noqa: E402,F401
from blocks.sgdjscc import _schedule as S  # noqa: E402
from flowgraph.testing import build  # noqa: E402


def timed(fn, n=1):
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, nargs="+", default=[5, 10, 20, 50])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--snr", type=float, default=0.0)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    b, n = args.batch, 128
    dec = build("decoder.deepjscc", {"channels": 4, "size": 32}).eval()
    dm = build("decoder.sgd_diffusion", {"dim": args.dim, "heads": 4}).eval()
    z = torch.randn(b, n, dtype=torch.cfloat)
    d = torch.full((b, n), float(S.d_of_snr_db(args.snr)))
    tokens = torch.randint(0, 25, (b, 4))
    edge = (torch.rand(b, 1, 32, 32) > 0.85).float()
    configs = {"text": dict(use_edge=False, guidance_scale=1.0),
               "text+edge": dict(use_edge=True, guidance_scale=1.0),
               "text+edge+CFG": dict(use_edge=True, guidance_scale=4.0, guidance_schedule="pcs")}
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {b}, DiT width {args.dim}, "
          f"{sum(p.numel() for p in dm.parameters()) / 1e6:.2f} M parameters (with ControlNet), "
          f"SNR {args.snr} dB, {args.reps} repetitions (+1 warm-up)")
    with torch.inference_mode():
        for name, cfg in configs.items():
            for k, v in cfg.items():
                dm.set_runtime(k, v)
            for k_steps in args.steps:
                dm.set_runtime("steps", k_steps)
                ratios, t_dm, t_dec = [], [], []
                for rep in range(args.reps + 1):
                    a = timed(lambda: dm(z=z, d=d, tokens=tokens, edge=edge))
                    c = timed(lambda: dec(z=z), n=5)
                    if rep:
                        ratios.append(a / c)
                        t_dm.append(a)
                        t_dec.append(c)
                print(f"{name:14s} K={k_steps:3d}: sampler / decoder pass = {statistics.median(ratios):8.1f} "
                      f"[{min(ratios):.1f}, {max(ratios):.1f}]  (sampler {statistics.median(t_dm) * 1e3:.0f} ms, "
                      f"decoder {statistics.median(t_dec) * 1e3:.1f} ms; per step "
                      f"{statistics.median(ratios) / k_steps:.1f} decoder passes)", flush=True)


if __name__ == "__main__":
    main()
